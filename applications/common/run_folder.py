"""A run folder that appears whole or not at all, and can resume.

A training run works in a hidden folder beside its target
(`RUN` -> `.RUN.partial`) and renames it to `RUN` only when everything is
written. A run that fails leaves no `RUN` folder and no `model.keras`: its
work folder is removed, except when a training run was interrupted after at
least one completed epoch, in which case only the checkpoint stays in
`.RUN.partial`, for `--resume`.
"""

import json
import os
import shutil
import sys
from pathlib import Path

from applications.common.errors import UserError

MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
SETTINGS_FILE = "settings.json"
LEARNING_CURVES_FILE = "learning_curves.png"
CHECKPOINT_FOLDER = "checkpoint"
# Written by `keras.callbacks.BackupAndRestore` after each completed epoch.
_CHECKPOINT_METADATA = "training_metadata.json"


def write_json(path, value):
    """Write JSON atomically (a temporary file renamed into place)."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_text(json.dumps(value, indent=2, sort_keys=False, default=_to_json) + "\n")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)  # Left only when the write or rename failed.
    return path


def _to_json(value):
    if hasattr(value, "tolist"):  # NumPy arrays and scalars.
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"Not JSON-serializable: {type(value).__name__}")


def check_replaceable(path):
    """`--overwrite` replaces a run or an export, never a folder of something else."""
    path = Path(path)
    if path.is_dir() and any(path.iterdir()):
        if not any((path / name).exists() for name in (MODEL_FILE, SETTINGS_FILE, "saved_model.pb")):
            raise UserError(
                f"--overwrite: {path} is not a run or an export (it holds no {MODEL_FILE}, "
                f"{SETTINGS_FILE} or saved_model.pb), so it is left alone. Choose another --output."
            )
    elif path.exists() and not path.is_dir():
        raise UserError(f"--output {path} is a file, not a folder. Choose another --output.")


class RunFolder:
    """The folder one training run writes, used as a context manager.

    Args:
        path: str or Path. The run folder to create.
        resume: bool. Continue an interrupted run at `path` from its
            checkpoint (starts afresh, with a note, when there is none).
        overwrite: bool. Replace an existing run at `path` once this run
            succeeds.

    Inside the `with` block, write files with `run.file(name)` (a path in the
    work folder) and checkpoint into `run.checkpoint_dir`; `run.resumed` says
    whether a checkpoint was found. On success the work folder, less its
    checkpoint, becomes `path`.
    """

    def __init__(self, path, resume=False, overwrite=False):
        self.path = Path(path).expanduser()
        self.work = self.path.parent / f".{self.path.name}.partial"
        self.resume = resume
        self.overwrite = overwrite
        self.resumed = False

    @property
    def checkpoint_dir(self):
        return self.work / CHECKPOINT_FOLDER

    def completed_epochs(self):
        """How many epochs the checkpoint holds (0 when there is none)."""
        metadata = self.checkpoint_dir / _CHECKPOINT_METADATA
        if not metadata.exists():
            return 0
        return int(json.loads(metadata.read_text()).get("epoch", 0))

    def file(self, name):
        """The path of `name` inside the run being written."""
        return self.work / name

    def __enter__(self):
        if self.path.exists() and not self.overwrite:
            raise UserError(
                f"The run folder {self.path} already exists. Choose another --output, "
                "or pass --overwrite to replace it."
            )
        check_replaceable(self.path)
        if self.work.exists() and self.overwrite and not self.resume:
            shutil.rmtree(self.work)  # Start over, as the message below offers.
        if self.work.exists():
            if not self.resume:
                raise UserError(
                    f"An interrupted run of {self.path} is waiting in {self.work} "
                    f"({self.completed_epochs()} epochs done). Pass --resume to continue it, "
                    "or --overwrite to start over."
                )
            self.resumed = self.completed_epochs() > 0
            if self.resumed:
                print(f"Resuming {self.path} after epoch {self.completed_epochs()}.")
            else:
                shutil.rmtree(self.work)
        elif self.resume:
            print(f"Nothing to resume at {self.path}: starting a new run.")
        self.work.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is None:
            self._publish()
            return False
        # A resumed run keeps its checkpoint whatever stopped it (a mistaken flag
        # must not lose the epochs done before).
        keep = self.completed_epochs() > 0 and (self.resumed or not issubclass(exc_type, UserError))
        if keep:
            # Keep only what resuming needs: never a model.keras in a failed run.
            for entry in self.work.iterdir():
                if entry.name not in (CHECKPOINT_FOLDER, HISTORY_FILE):
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            print(
                f"Run interrupted after epoch {self.completed_epochs()}: {self.path} was not "
                "written. Rerun the same command with --resume to continue.",
                file=sys.stderr,
            )
        else:
            shutil.rmtree(self.work, ignore_errors=True)
        return False

    def _publish(self):
        shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
        if self.path.exists():  # --overwrite: swap, then delete the old run.
            old = self.path.parent / f".{self.path.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(self.path, old)
            os.replace(self.work, self.path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.work, self.path)
