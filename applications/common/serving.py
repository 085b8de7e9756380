"""Loading a trained model, exporting a serving artifact, and running it.

`--model` accepts a run folder (holding `model.keras`), a `.keras` file, or an
exported TensorFlow SavedModel folder: `load_model` returns a `keras.Model`
for the first two and an `ExportedModel` (same `predict`) for the last, so
`predict --model EXPORT_DIR` runs the export.
"""

import json
import os
import shutil
from pathlib import Path

import keras
import numpy as np

from applications.common.errors import UserError
from applications.common.run_folder import MODEL_FILE, SETTINGS_FILE, check_replaceable, write_json


def _is_saved_model(path):
    return path.is_dir() and (path / "saved_model.pb").exists()


def model_path(path):
    """Check a `--model` value; returns the `.keras` file or SavedModel folder."""
    if path is None:
        raise UserError("No model given: pass --model RUN (a run folder, a .keras file or an export).")
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"--model {path}: no such file or folder. Give a run folder written by train.")
    if _is_saved_model(path) or path.is_file():
        return path
    if (path / MODEL_FILE).exists():
        return path / MODEL_FILE
    raise UserError(f"--model {path}: the folder holds neither {MODEL_FILE} nor an exported saved_model.pb.")


def load_settings(path):
    """The `settings.json` of a run or export (next to its `.keras` file); `{}` if none."""
    path = Path(path).expanduser()
    folder = path if path.is_dir() else path.parent
    settings = folder / SETTINGS_FILE
    return json.loads(settings.read_text()) if settings.exists() else {}


class ExportedModel:
    """An exported SavedModel with the `predict` of a `keras.Model`."""

    def __init__(self, path):
        import tensorflow as tf

        self.path = Path(path)
        self._artifact = tf.saved_model.load(str(path))
        self._serve = self._artifact.signatures.get("serve") or self._artifact.serve

    def __call__(self, inputs):
        outputs = self._serve(inputs)
        if isinstance(outputs, dict):  # A signature returns a dict of outputs.
            outputs = outputs[sorted(outputs)[0]] if len(outputs) == 1 else outputs
        return outputs

    def predict(self, inputs, batch_size=32, verbose=0):
        import tensorflow as tf

        inputs = np.asarray(inputs) if not isinstance(inputs, (list, tuple)) else inputs
        dtype = self._serve.structured_input_signature[1]
        spec = next(iter(dtype.values())) if isinstance(dtype, dict) else None
        results = []
        for start in range(0, len(inputs), batch_size):
            batch = inputs[start : start + batch_size]
            batch = tf.convert_to_tensor(batch, dtype=spec.dtype if spec is not None else None)
            results.append(np.asarray(self(batch)))
        return np.concatenate(results) if results else np.zeros((0,))


def load_model(path):
    """Load `--model`: a `keras.Model` (safe mode), or an `ExportedModel`."""
    path = model_path(path)
    if _is_saved_model(path):
        return ExportedModel(path)
    import keras_attention  # noqa: F401  Registers the library's classes (layers, schedules).

    try:
        return keras.saving.load_model(path, safe_mode=True)
    except (ValueError, OSError, KeyError, TypeError) as error:
        # TypeError: a class keras cannot locate, as in a run of another application.
        raise UserError(
            f"Could not load the model {path}: {str(error).splitlines()[0]} Is it a run of "
            "this application?"
        ) from None


def load_trained_model(path):
    """Load `--model` as a `keras.Model`: fine-tuning, exporting and pictures need its layers."""
    model = load_model(path)
    if isinstance(model, ExportedModel):
        raise UserError(f"--model {path} is an export; give the run folder written by train.")
    return model


def _export_for_inference(model, path, input_signature=None):
    """`model.export`, but tracing `model(inputs, training=False)`.

    `model.export` traces `model(inputs)` with `training=None`, and then a
    keras preprocessing layer such as `Resizing` (whose `call` defaults to
    `training=True`) switches training on for the layers after it: dropout
    would be active in the export. Tracing with `training=False` rules that out.
    """
    if input_signature is None:
        spec = lambda t: keras.InputSpec(shape=t.shape, dtype=t.dtype, name=t.name.split(":")[0])  # noqa: E731
        try:
            structure = model.input  # A tensor, list or dict, as the model takes it.
        except (AttributeError, ValueError):  # A reloaded Sequential model has `inputs` only.
            structure = model.inputs[0] if len(model.inputs) == 1 else model.inputs
        input_signature = [keras.tree.map_structure(spec, structure)]

    def serve(*inputs):
        return model(inputs[0] if len(inputs) == 1 else list(inputs), training=False)

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", serve, input_signature=input_signature)
    archive.write_out(str(path), verbose=False)


def export_model(model, path, settings=None, input_signature=None, overwrite=False):
    """Write a TensorFlow SavedModel of `model` (endpoint `serve`), atomically.

    The endpoint runs the model in inference mode (`training=False`).

    Args:
        model: the `keras.Model` to export; it should take raw inputs.
        path: str or Path. The export folder.
        settings: dict or None. Written as `settings.json` beside the
            SavedModel (class names and the like, for `predict`).
        input_signature: optional, as for `keras.Model.export`.
        overwrite: bool. Replace an existing folder.

    Returns:
        The export `Path`.
    """
    path = Path(path).expanduser()
    if path.exists() and not overwrite:
        raise UserError(
            f"The export folder {path} already exists. Choose another --output or pass --overwrite."
        )
    check_replaceable(path)
    work = path.parent / f".{path.name}.partial"
    shutil.rmtree(work, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        _export_for_inference(model, work, input_signature)
        if settings is not None:
            write_json(work / SETTINGS_FILE, settings)
        if path.exists():
            shutil.rmtree(path)
        os.replace(work, path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return path


def export_run(path, output=None, overwrite=False):
    """`export_model` of the run at `path` with its settings; by default into `export` beside it."""
    model = load_trained_model(path)
    model_file = model_path(path)
    output = output or model_file.parent / "export"
    export_model(model, output, settings=load_settings(model_file), overwrite=overwrite)
    print(f"Exported {path} to {output}")
    return {"export": str(output)}
