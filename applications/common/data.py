"""Where data lives: the data directory, named data sets, checked downloads, splits.

`--data` takes a path (a file or a folder) or the name of a known data set. A
name resolves inside the data directory (`KERAS_ATTENTION_DATA`, default
`~/.keras/datasets`); files that are missing there are downloaded when the
machine is online, checked against their SHA-256 and written atomically (a
failed or corrupt download leaves no file behind).
"""

import dataclasses
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from applications.common.errors import UserError

DATA_ENVIRONMENT_VARIABLE = "KERAS_ATTENTION_DATA"
SPLITS = ("train", "validation", "test", "all")


def data_dir():
    """The data directory: `$KERAS_ATTENTION_DATA`, else `~/.keras/datasets`."""
    path = os.environ.get(DATA_ENVIRONMENT_VARIABLE)
    return Path(path).expanduser() if path else Path("~/.keras/datasets").expanduser()


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """One file of a known data set: where to fetch it and its SHA-256."""

    url: str
    sha256: str


@dataclasses.dataclass(frozen=True)
class KnownDataSet:
    """A data set known by name.

    Args:
        name: str. The name users pass to `--data` (`"fashion-mnist"`).
        folder: str. Its folder inside the data directory
            (`"images/fashion-mnist"`).
        files: dict. File name inside `folder` -> `RemoteFile`. Empty for a
            data set that needs no files (one bundled with a package).
        description: str. One line for `--help`.
    """

    name: str
    folder: str
    files: dict = dataclasses.field(default_factory=dict)
    description: str = ""

    def path(self):
        return data_dir() / self.folder


def sha256_of(path, chunk_size=1 << 20):
    """The SHA-256 hex digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url, path, sha256=None, timeout=60):
    """Download `url` to `path`, check its SHA-256, write atomically.

    The bytes go to a temporary file beside `path`, which is renamed to `path`
    only when the download is complete and its checksum matches; otherwise the
    temporary file is removed and a `UserError` says why. `url` may be any
    URL `urllib` opens, `file://` included.

    Args:
        url: str. Where to fetch the file.
        path: str or Path. Where to write it.
        sha256: str or None. The expected hex digest; `None` skips the check.
        timeout: float. Seconds to wait for the server.

    Returns:
        The `Path` written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    digest = hashlib.sha256()
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
        if sha256 is not None and digest.hexdigest() != sha256.lower():
            raise UserError(
                f"Checksum mismatch for {url}: expected SHA-256 {sha256}, received "
                f"{digest.hexdigest()}. The download was discarded; try again, or place the "
                f"original file at {path}."
            )
        os.replace(temporary, path)
    except UserError:
        raise
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
        # HTTPException: a connection cut mid-body (IncompleteRead) is not an OSError.
        raise UserError(f"Could not download {url} to {path}: {error}.") from None
    finally:
        if os.path.exists(temporary):  # Whatever stopped it, Ctrl-C included.
            os.remove(temporary)
    return path


def resolve_data(spec, known=(), default=None):
    """Turn a `--data` value into a path, or the name of a known data set.

    Args:
        spec: str, Path or None. A path that exists, or a known data-set name.
        known: iterable of `KnownDataSet`.
        default: str or None. The name used when `spec` is None.

    Returns:
        `(path, dataset)`: the resolved `Path` and the `KnownDataSet` (or
        `None` when `spec` is a plain path). A known data set's missing files
        are downloaded first.
    """
    known = {d.name: d for d in known}
    spec = default if spec is None else spec
    if spec is None:
        raise UserError("No data given: pass --data PATH or the name of a known data set.")
    path = Path(spec).expanduser()
    if path.exists():
        return path, None
    if str(spec) in known:
        dataset = known[str(spec)]
        fetch(dataset)
        return dataset.path(), dataset
    names = ", ".join(sorted(known)) or "none"
    raise UserError(
        f"--data {spec!r}: no such file or folder, and not a known data set "
        f"(known: {names}). Give an existing path or one of those names."
    )


def fetch(dataset):
    """Make sure every file of a known data set is in the data directory."""
    folder = dataset.path()
    for name, remote in dataset.files.items():
        target = folder / name
        if not target.exists():
            print(f"Downloading {dataset.name} {name} from {remote.url} to {target}")
            download(remote.url, target, remote.sha256)
    return folder


def check_split(split, available):
    """Validate a `--split` value against the splits a data set has."""
    if split not in SPLITS:
        raise UserError(f"Unknown split {split!r}. Expected one of {', '.join(SPLITS)}.")
    if split != "all" and split not in available:
        raise UserError(
            f"This data has no {split!r} split (it has: {', '.join(sorted(available))}). "
            "Use one of those or --split all."
        )
    return split


def decode_lines(raw, name):
    """Split UTF-8 bytes into stripped lines; a `UserError` names the first bad line."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise UserError(
            f"{name} is not UTF-8 text (line {line}, byte {error.start}). Convert it to UTF-8 "
            "(for example with `iconv -f latin1 -t utf-8`)."
        ) from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.strip() for line in lines]


def stratified_split(labels, fraction, seed=0):
    """Split indices into (rest, held_out), holding out `fraction` of each class.

    Deterministic for a given `seed`; every class with at least two examples
    keeps at least one example on each side.

    Example:
    >>> rest, held_out = stratified_split([0, 0, 0, 0, 1, 1, 1, 1, 1, 1], 0.5)
    >>> len(rest), len(held_out)
    (5, 5)
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    rest, held_out = [], []
    for value in np.unique(labels):
        indices = np.flatnonzero(labels == value)
        rng.shuffle(indices)
        count = int(round(len(indices) * fraction))
        if len(indices) >= 2:
            count = min(max(count, 1), len(indices) - 1)
        held_out.extend(indices[:count])
        rest.extend(indices[count:])
    return np.sort(np.array(rest, dtype="int64")), np.sort(np.array(held_out, dtype="int64"))
