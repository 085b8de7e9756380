"""The common ground of the applications: data, downloads, run folders, training, export."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from applications.common import (
    HISTORY_FILE,
    LEARNING_CURVES_FILE,
    KnownDataSet,
    RemoteFile,
    RunFolder,
    UserError,
    check_split,
    data_dir,
    download,
    export_model,
    fit,
    load_model,
    print_table,
    read_history,
    resolve_data,
    set_seed,
    stratified_split,
    warmup_cosine,
    write_json,
)

ROOT = Path(__file__).resolve().parents[2]

# === Data directory and downloads ===


def _source(tmp_path, content=b"the original bytes\n"):
    source = tmp_path / "server" / "file.bin"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(content)
    return source, hashlib.sha256(content).hexdigest()


def test_data_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_ATTENTION_DATA", str(tmp_path))
    assert data_dir() == tmp_path
    monkeypatch.delenv("KERAS_ATTENTION_DATA")
    assert data_dir() == Path("~/.keras/datasets").expanduser()


def test_download_checks_the_checksum_and_writes_atomically(tmp_path):
    source, sha256 = _source(tmp_path)
    target = tmp_path / "data" / "sub" / "file.bin"
    assert download(source.as_uri(), target, sha256) == target
    assert target.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]  # No temporary left.


def test_download_with_a_wrong_checksum_leaves_no_file(tmp_path):
    source, _ = _source(tmp_path)
    target = tmp_path / "data" / "file.bin"
    with pytest.raises(UserError, match="Checksum mismatch"):
        download(source.as_uri(), target, "0" * 64)
    assert list(target.parent.iterdir()) == []


def test_download_of_a_missing_url_is_a_user_error(tmp_path):
    target = tmp_path / "data" / "file.bin"
    with pytest.raises(UserError, match="Could not download"):
        download((tmp_path / "nowhere.bin").as_uri(), target)
    assert list(target.parent.iterdir()) == []


@pytest.mark.parametrize("failure", ["cut", "interrupt"])
def test_a_download_cut_or_interrupted_mid_body_leaves_no_file(monkeypatch, tmp_path, failure):
    import http.client
    import io
    import urllib.request

    class Response(io.BytesIO):
        def read(self, size=-1):
            if self.tell():  # The second chunk never comes.
                raise http.client.IncompleteRead(b"", 10) if failure == "cut" else KeyboardInterrupt
            return super().read(4)

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Response(b"12345678"))
    target = tmp_path / "data" / "file.bin"
    with pytest.raises(UserError if failure == "cut" else KeyboardInterrupt):
        download("https://example.org/file.bin", target)
    assert list(target.parent.iterdir()) == []


def test_resolve_data_downloads_a_known_data_set_into_the_data_dir(monkeypatch, tmp_path):
    source, sha256 = _source(tmp_path)
    monkeypatch.setenv("KERAS_ATTENTION_DATA", str(tmp_path / "cache"))
    known = KnownDataSet("toy", "things/toy", {"file.bin": RemoteFile(source.as_uri(), sha256)})
    path, dataset = resolve_data("toy", [known])
    assert dataset is known and path == tmp_path / "cache" / "things" / "toy"
    assert (path / "file.bin").read_bytes() == source.read_bytes()
    source.unlink()  # A second resolution uses the cached file.
    assert resolve_data("toy", [known])[0] == path


def test_resolve_data_paths_defaults_and_errors(tmp_path):
    assert resolve_data(str(tmp_path)) == (tmp_path, None)
    known = KnownDataSet("bundled", "bundled")
    assert resolve_data(None, [known], default="bundled")[1] is known
    with pytest.raises(UserError, match="not a known data set .known: bundled"):
        resolve_data("nonsense", [known])
    with pytest.raises(UserError, match="No data given"):
        resolve_data(None, [known])


def test_splits():
    assert check_split("test", {"train", "test"}) == "test"
    assert check_split("all", {"train"}) == "all"
    with pytest.raises(UserError, match="no 'test' split"):
        check_split("test", {"train"})
    with pytest.raises(UserError, match="Unknown split"):
        check_split("dev", {"train"})
    labels = np.array([0] * 10 + [1] * 5 + [2] * 2)
    rest, held_out = stratified_split(labels, 0.2, seed=3)
    assert sorted(np.concatenate([rest, held_out]).tolist()) == list(range(len(labels)))
    assert np.bincount(labels[held_out]).tolist() == [2, 1, 1]  # Every class on both sides.
    again = stratified_split(labels, 0.2, seed=3)
    assert np.array_equal(again[1], held_out)


# === Run folder ===


def test_run_folder_appears_whole_on_success(tmp_path):
    with RunFolder(tmp_path / "run") as run:
        run.file("model.keras").write_text("model")
        run.checkpoint_dir.mkdir()
        assert not (tmp_path / "run").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["model.keras"]


@pytest.mark.parametrize("error", [RuntimeError("boom"), UserError("bad data")])
def test_a_failed_run_leaves_nothing(tmp_path, error):
    with pytest.raises(type(error)):
        with RunFolder(tmp_path / "run") as run:
            run.file("model.keras").write_text("half")
            raise error
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_run_keeps_only_its_checkpoint_then_resumes(tmp_path, capsys):
    with pytest.raises(KeyboardInterrupt):
        with RunFolder(tmp_path / "run") as run:
            run.checkpoint_dir.mkdir()
            (run.checkpoint_dir / "training_metadata.json").write_text('{"epoch": 2}')
            run.file("model.keras").write_text("half")
            raise KeyboardInterrupt
    assert not (tmp_path / "run").exists()
    partial = tmp_path / ".run.partial"
    assert sorted(p.name for p in partial.iterdir()) == ["checkpoint"]
    assert "--resume" in capsys.readouterr().err
    with pytest.raises(UserError, match="Pass --resume"):
        with RunFolder(tmp_path / "run"):
            pass
    with RunFolder(tmp_path / "run", resume=True) as run:
        assert run.resumed and run.completed_epochs() == 2
    assert (tmp_path / "run").exists() and not partial.exists()


def test_overwrite_starts_an_interrupted_run_over(tmp_path):
    partial = tmp_path / ".run.partial"
    (partial / "checkpoint").mkdir(parents=True)
    (partial / "checkpoint" / "training_metadata.json").write_text('{"epoch": 2}')
    with RunFolder(tmp_path / "run", overwrite=True) as run:
        assert not run.resumed and not run.checkpoint_dir.exists()
        run.file("model.keras").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_failed_resume_keeps_the_checkpoint_even_on_a_user_error(tmp_path):
    partial = tmp_path / ".run.partial"
    (partial / "checkpoint").mkdir(parents=True)
    (partial / "checkpoint" / "training_metadata.json").write_text('{"epoch": 2}')
    with pytest.raises(UserError):
        with RunFolder(tmp_path / "run", resume=True):
            raise UserError("--resume: the checkpoint does not fit this model")
    assert (partial / "checkpoint" / "training_metadata.json").exists()


def test_run_folder_refuses_to_replace_a_run_unless_asked(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "settings.json").write_text("{}")
    with pytest.raises(UserError, match="already exists"):
        with RunFolder(tmp_path / "run"):
            pass
    with RunFolder(tmp_path / "run", overwrite=True) as run:
        run.file("new.txt").write_text("new")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_overwrite_leaves_a_folder_that_is_not_a_run_alone(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="is not a run or an export"):
        with RunFolder(tmp_path / "notes", overwrite=True):
            pass
    with pytest.raises(UserError, match="is not a run or an export"):
        export_model(_tiny_model(), tmp_path / "notes", overwrite=True)
    assert (tmp_path / "notes" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]


def test_write_json_and_print_table(tmp_path, capsys):
    path = write_json(tmp_path / "m.json", {"accuracy": np.float32(0.5), "matrix": np.eye(2, dtype=int)})
    assert json.loads(path.read_text()) == {"accuracy": 0.5, "matrix": [[1, 0], [0, 1]]}
    print_table({"accuracy": 0.98765, "examples": 3, "matrix": [[1]]})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["metric", "value"] and lines[2].split() == ["accuracy", "0.9877"]
    assert len(lines) == 4  # Nested values are left out of the table.


# === Training ===


def test_warmup_cosine_schedule():
    schedule = warmup_cosine(1e-2, total_steps=110, warmup_steps=10, final_fraction=0.1)
    values = [float(schedule(step)) for step in (0, 5, 10, 60, 110)]
    assert values[0] == 0.0 and values[1] == pytest.approx(5e-3)
    assert values[2] == pytest.approx(1e-2) and values[3] == pytest.approx(5.5e-3, rel=1e-3)
    assert values[4] == pytest.approx(1e-3)
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert float(restored(60)) == pytest.approx(values[3])


def _tiny_model():
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2)]
    )
    model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _tiny_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    return x, (x[:, 0] > 0).astype("int64")


class _Stop(keras.callbacks.Callback):
    """Interrupt training at the end of epoch `epoch` (after the checkpoint)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch
        self.epochs_run = []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs_run.append(epoch)
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_fit_writes_history_and_curves_and_resumes_after_an_interruption(tmp_path):
    x, y = _tiny_data()
    set_seed(1)
    with pytest.raises(KeyboardInterrupt):
        with RunFolder(tmp_path / "run") as run:
            fit(_tiny_model(), (x, y), run, epochs=4, batch_size=16, quiet=True, callbacks=[_Stop(1)])
    partial = tmp_path / ".run.partial"
    assert not (tmp_path / "run").exists() and not list(partial.rglob("*.keras"))
    assert [int(r["epoch"]) for r in read_history(partial / HISTORY_FILE)] == [0, 1]

    set_seed(1)
    tracker = _Stop(-1)
    with RunFolder(tmp_path / "run", resume=True) as run:
        history = fit(_tiny_model(), (x, y), run, epochs=4, batch_size=16, quiet=True, callbacks=[tracker])
    assert tracker.epochs_run == [2, 3]  # Only the epochs left.
    assert [int(r["epoch"]) for r in history] == [0, 1, 2, 3]
    assert {"loss", "learning_rate", "seconds"} <= set(history[0])
    files = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert files == [HISTORY_FILE, LEARNING_CURVES_FILE]


def test_resuming_with_another_model_is_a_user_error_that_keeps_the_checkpoint(tmp_path):
    x, y = _tiny_data()
    with pytest.raises(KeyboardInterrupt):
        with RunFolder(tmp_path / "run") as run:
            fit(_tiny_model(), (x, y), run, epochs=3, batch_size=16, quiet=True, callbacks=[_Stop(0)])
    wider = keras.Sequential([keras.Input((4,)), keras.layers.Dense(16), keras.layers.Dense(2)])
    wider.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(UserError, match="does not fit this model.*flags of the interrupted run"):
        with RunFolder(tmp_path / "run", resume=True) as run:
            fit(wider, (x, y), run, epochs=3, batch_size=16, quiet=True)
    assert RunFolder(tmp_path / "run").completed_epochs() == 1


def test_same_seed_same_result(tmp_path):
    x, y = _tiny_data()
    weights = []
    for name in ("a", "b", "a-again"):
        set_seed(7 if name != "b" else 8)
        model = _tiny_model()
        with RunFolder(tmp_path / name) as run:
            fit(model, (x, y), run, epochs=2, batch_size=16, quiet=True, shuffle=True)
        weights.append(model.get_weights())
    for first, again in zip(weights[0], weights[2]):
        np.testing.assert_array_equal(first, again)
    assert not all(np.array_equal(a, b) for a, b in zip(weights[0], weights[1]))


def _shuffled_batches(x, y, seed=3):
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed).batch(4)


class _Recorder(keras.layers.Layer):
    """Passes its inputs through and records the first feature of each training batch."""

    def __init__(self, batches, **kwargs):
        super().__init__(**kwargs)
        self.record = batches.append  # Not the list itself, which Keras would track as a copy.

    def call(self, inputs, training=None):
        if training:
            self.record(keras.ops.convert_to_numpy(inputs)[:, 0].astype(int).tolist())
        return inputs


def _recorded_run(run_folder, seed=5):
    examples = np.arange(10, dtype="float32")[:, None]
    batches = []
    set_seed(seed)
    model = keras.Sequential([keras.Input((1,)), _Recorder(batches), keras.layers.Dense(1)])
    model.compile("sgd", "mse", run_eagerly=True)
    with RunFolder(run_folder) as run:
        history = fit(model, _shuffled_batches(examples, examples), run, epochs=3, quiet=True,
                      validation_data=_shuffled_batches(examples, examples))
    return [batches[i:i + 3] for i in range(0, 9, 3)], history, model, examples


def test_fit_epochs_of_a_dataset_are_reshuffled_whole_passes(tmp_path):
    # `fit` repeats a dataset of known size and cuts it into epochs by steps: one iterator
    # serves the whole run, and each epoch must still be one whole pass, shuffled anew.
    epochs, history, model, examples = _recorded_run(tmp_path / "run")
    assert [len(batches) for batches in epochs] == [3, 3, 3]  # Batches of 4, 4, 2.
    orders = [sum(batches, []) for batches in epochs]
    for order in orders:
        assert sorted(order) == list(range(10))
    assert len({tuple(order) for order in orders}) == 3
    again, _, _, _ = _recorded_run(tmp_path / "again")
    assert again == epochs  # Same seed, same batches.
    assert float(history[-1]["val_loss"]) == pytest.approx(model.evaluate(examples, examples, verbose=0))


def test_fit_turns_tf_data_autotuning_off(tmp_path):
    # Dropping an autotuned iterator waits for the autotuning thread, and Keras drops the
    # validation iterator every epoch: 8-30 s stalls per epoch on the 2-core machine.
    x, y = _tiny_data()
    model = _tiny_model()
    received = {}
    keras_fit = model.fit

    def recording_fit(x, y=None, validation_data=None, **kwargs):
        received.update(x=x, validation_data=validation_data, validation_steps=kwargs.get("validation_steps"))
        return keras_fit(x, y, validation_data=validation_data, **kwargs)

    model.fit = recording_fit
    train, validation = _shuffled_batches(x, y), _shuffled_batches(x, y)
    assert train.options().autotune.enabled is None  # Unset: on, tf.data's default.
    with RunFolder(tmp_path / "run") as run:
        fit(model, train, run, epochs=1, quiet=True, validation_data=validation)
    assert received["x"].options().autotune.enabled is False
    assert received["validation_data"].options().autotune.enabled is False
    validation_pass = received["validation_data"].take(received["validation_steps"]).unbatch()
    features = np.concatenate([f.numpy() for f, _ in validation_pass.batch(len(x))])
    np.testing.assert_array_equal(np.sort(features, axis=0), np.sort(x, axis=0))  # The same examples.


class _TwoReplicaModel:
    """Stands for a model built under a two-replica tf.distribute strategy."""

    distribute_strategy = type("Strategy", (), {"num_replicas_in_sync": 2})()

    def __init__(self):
        self.calls = []

    def predict(self, inputs, batch_size, verbose):
        self.calls.append((len(inputs), batch_size))
        return np.asarray([[float(len(str(example)))] for example in inputs])


def test_batches_and_predictions_split_evenly_across_replicas():
    from applications.common import predict_evenly, replicas
    from applications.common.training import _evenly_split

    model = _TwoReplicaModel()
    assert replicas(model) == 2 and replicas(_tiny_model()) == 1
    x = np.arange(11, dtype="float32")
    batches = _evenly_split(_shuffled_batches(x, x), model)  # Batches of 4, 4, 3; then 4, 4, 2.
    assert [len(features) for features, _ in batches] == [4, 4, 2]
    single = _evenly_split(_shuffled_batches(x[:5], x[:5]).map(lambda features, labels: features), model)
    assert [len(features) for features in single] == [4]  # The batch of 1 is cut to nothing, dropped.
    texts = ["a", "bb", "ccc"]
    np.testing.assert_array_equal(predict_evenly(model, texts, batch_size=3), [[1.0], [2.0], [3.0]])
    assert model.calls == [(4, 4)]  # Padded with a copy of the last; the batch rounded up to 4.
    assert predict_evenly(model, np.zeros((4, 2)), batch_size=2).shape == (4, 1)
    assert model.calls[-1] == (4, 2)


def test_one_iterator_repeats_only_datasets_of_known_size():
    from applications.common.training import _one_iterator

    x, y = _tiny_data()
    dataset = _shuffled_batches(x, y)
    repeated, steps = _one_iterator(dataset)
    assert steps == 16  # 64 examples in batches of 4.
    batches = [features.numpy() for features, _ in repeated.take(2 * steps)]
    first, second = np.concatenate(batches[:steps]), np.concatenate(batches[steps:])
    for epoch in (first, second):  # Each epoch is one whole pass...
        np.testing.assert_array_equal(np.sort(epoch, axis=0), np.sort(x, axis=0))
    assert not np.array_equal(first, second)  # ...reshuffled.
    assert _one_iterator(dataset.repeat())[1] is None  # Infinite.
    assert _one_iterator(dataset.filter(lambda features, labels: True))[1] is None  # Unknown size.
    arrays = (x, y)
    assert _one_iterator(arrays) == (arrays, None)
    assert _one_iterator(None) == (None, None)


# === Export and loading ===


def test_export_runs_in_inference_mode_after_a_preprocessing_layer(tmp_path):
    inputs = keras.Input((None, None, 1), dtype="uint8")
    x = keras.layers.Resizing(4, 4)(keras.layers.Rescaling(1 / 255)(inputs))  # call(training=True)
    outputs = keras.layers.Dense(2)(keras.layers.Dropout(0.5)(keras.layers.Flatten()(x)))
    model = keras.Model(inputs, outputs)
    images = np.random.default_rng(0).integers(0, 255, (3, 6, 6, 1)).astype("uint8")
    exported = load_model(export_model(model, tmp_path / "export"))
    np.testing.assert_allclose(exported.predict(images), model.predict(images, verbose=0), atol=1e-6)


def test_export_runs_like_the_model_and_load_model_errors(tmp_path):
    model = _tiny_model()
    x, _ = _tiny_data()
    model.save(tmp_path / "model.keras")
    write_json(tmp_path / "settings.json", {"class_names": ["a", "b"]})
    export = export_model(load_model(tmp_path), tmp_path / "export", settings={"class_names": ["a", "b"]})
    assert json.loads((export / "settings.json").read_text()) == {"class_names": ["a", "b"]}
    exported = load_model(export)
    np.testing.assert_allclose(exported.predict(x[:5]), model.predict(x[:5], verbose=0), atol=1e-5)
    assert not (tmp_path / ".export.partial").exists()
    with pytest.raises(UserError, match="already exists"):
        export_model(model, export)
    with pytest.raises(UserError, match="no such file"):
        load_model(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds neither"):
        load_model(tmp_path / "empty")
    (tmp_path / "broken.keras").write_bytes(b"not a zip file")
    with pytest.raises(UserError, match="Could not load"):
        load_model(tmp_path / "broken.keras")


def test_load_model_in_a_fresh_process_finds_the_library_classes(tmp_path):
    # A saved model refers to our layers and, through its optimizer, our
    # schedule; a new process has imported neither before loading it.
    from keras_attention.finetune import WarmupSchedule
    from keras_attention.layers import TransformerEncoder

    inputs = keras.Input((3, 8))
    model = keras.Model(inputs, keras.layers.Dense(2)(TransformerEncoder(16, num_heads=2)(inputs)))
    model.compile(optimizer=keras.optimizers.Adam(WarmupSchedule(1e-3, warmup_steps=2, decay="inverse_sqrt")), loss="mse")
    model.fit(np.ones((4, 3, 8)), np.zeros((4, 3, 2)), verbose=0)
    model.save(tmp_path / "model.keras")
    code = (
        "import sys; from applications.common.serving import load_model; "
        "print(type(load_model(sys.argv[1]).optimizer.learning_rate).__name__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "model.keras")],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_load_model_of_an_unknown_class_is_a_user_error(tmp_path):
    @keras.saving.register_keras_serializable(package="elsewhere")
    class Elsewhere(keras.layers.Dense):
        pass

    inputs = keras.Input((4,))
    keras.Model(inputs, Elsewhere(2)(inputs)).save(tmp_path / "model.keras")
    del keras.saving.get_custom_objects()["elsewhere>Elsewhere"]  # As in a process that lacks it.
    with pytest.raises(UserError, match="Could not load .*Is it a run of this application"):
        load_model(tmp_path / "model.keras")
