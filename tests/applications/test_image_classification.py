"""The ViT image-classification application: data, model, training, using a run."""

import dataclasses
import gzip
import json
import os
import struct
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from applications import cli
from applications.common import RemoteFile, UserError
from applications.common.data import fetch
from applications.image_classification import (
    ImageData,
    attention_rollout,
    build_vit,
    evaluate,
    export,
    finetune,
    load_data,
    load_digits,
    predict,
    read_fashion_mnist,
    read_image_file,
    read_image_folder,
    train,
)
from applications.image_classification.data import FASHION_MNIST
from applications.image_classification.recipe import recipe_for

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
FAST = dict(size="micro", patch_size=2, warmup_epochs=1, batch_size=64, quiet=True)

# === Data ===


def _save(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype="uint8"), mode).save(path)
    return path


def _folder(root, classes=("cat", "dog"), per_class=3, size=(12, 10), mode="RGB"):
    rng = np.random.default_rng(0)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    for name in classes:
        for i in range(per_class):
            _save(root / name / f"{i}.png", rng.integers(0, 255, shape))
    return root


def test_digits():
    data = load_digits()
    assert data.class_names == [str(i) for i in range(10)] and data.image_shape == (8, 8, 1)
    sizes = {k: len(y) for k, (x, y) in data.splits.items()}
    assert sizes == {"train": 1295, "validation": 143, "test": 359}  # A fifth held out.
    assert data.get("all")[0].dtype == np.uint8 and data.get("all")[0].max() == 255
    assert np.array_equal(load_digits().get("test")[1], data.get("test")[1])  # Always the same fifth.


def _write_idx(path, array):
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype("uint8").tobytes())


def test_fashion_mnist_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, count in (("train", 40), ("t10k", 10)):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 255, (count, 28, 28)))
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(count) % 10)
    data = load_data(str(tmp_path))  # Recognized by its files.
    assert data.name == "fashion-mnist" and data.class_names[9] == "ankle boot"
    assert {k: x.shape for k, (x, y) in data.splits.items()} == {
        "train": (30, 28, 28, 1), "validation": (10, 28, 28, 1), "test": (10, 28, 28, 1)}
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(UserError, match="Could not read the IDX file"):
        read_fashion_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(UserError, match="lacks t10k-labels"):
        read_fashion_mnist(tmp_path)


@pytest.mark.skipif(not (SHARED_DATA / "images" / "fashion-mnist").exists(), reason="shared data absent")
def test_fashion_mnist_by_name_resolves_in_the_data_dir(monkeypatch):
    monkeypatch.setenv("KERAS_ATTENTION_DATA", str(SHARED_DATA))
    data = load_data("fashion-mnist")
    assert len(data.get("test")[1]) == 10000 and len(data.get("train")[1]) == 54000


@pytest.mark.skipif(not (SHARED_DATA / "images" / "fashion-mnist").exists(), reason="shared data absent")
def test_fashion_mnist_download_checks_the_published_checksums(monkeypatch, tmp_path):
    # The published files, served from the shared folder instead of the network.
    shared = SHARED_DATA / "images" / "fashion-mnist"
    files = {name: RemoteFile((shared / name).as_uri(), remote.sha256)
             for name, remote in FASHION_MNIST.files.items()}
    local = dataclasses.replace(FASHION_MNIST, files=files)
    monkeypatch.setenv("KERAS_ATTENTION_DATA", str(tmp_path))
    folder = fetch(local)
    assert folder == tmp_path / "images" / "fashion-mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(FASHION_MNIST.files)


def test_image_folder_of_any_size_and_mode(tmp_path):
    root = _folder(tmp_path / "pets")
    _save(root / "cat" / "gray.png", np.full((30, 40), 200), "L")
    _save(root / "dog" / "rgba.png", np.full((5, 5, 4), 100), "RGBA")
    Image.fromarray(np.zeros((9, 9, 3), "uint8")).save(root / "dog" / "photo.jpg", quality=90)
    data = read_image_folder(root, image_size=(16, 16))
    assert data.class_names == ["cat", "dog"] and data.image_shape == (16, 16, 3)
    assert sum(len(y) for _, y in data.splits.values()) == 9
    gray = read_image_folder(root, image_size=(8, 8), channels=1)
    assert gray.image_shape == (8, 8, 1)


def test_image_folder_gray_images_give_a_gray_model_input(tmp_path):
    root = _folder(tmp_path / "gray", mode="L", size=(6, 6))
    data = read_image_folder(root)
    assert data.image_shape == (6, 6, 1)  # Auto: every image is gray.


def test_image_folder_with_train_and_test_folders(tmp_path):
    _folder(tmp_path / "train", per_class=5)
    _folder(tmp_path / "test", per_class=2)
    data = read_image_folder(tmp_path, image_size=(8, 8))
    assert len(data.get("test")[1]) == 4 and len(data.get("train")[1]) + len(data.get("validation")[1]) == 10


def test_a_corrupt_image_is_skipped_with_a_warning(tmp_path, capsys):
    root = _folder(tmp_path / "pets")
    (root / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    data = read_image_folder(root, image_size=(8, 8))
    assert sum(len(y) for _, y in data.splits.values()) == 6
    assert "skipped: Could not decode the image" in capsys.readouterr().err
    with pytest.raises(UserError, match="Could not decode"):
        read_image_file(root / "cat" / "broken.png")


def test_folder_errors(tmp_path):
    with pytest.raises(UserError, match="one class only"):
        read_image_folder(_folder(tmp_path / "one", classes=("cat",)), image_size=(8, 8))
    root = _folder(tmp_path / "empty_class")
    (root / "bird").mkdir()
    with pytest.raises(UserError, match=r"class folders \['bird'\] .* hold no images"):
        read_image_folder(root, image_size=(8, 8))
    (tmp_path / "nothing" / "cat").mkdir(parents=True)
    with pytest.raises(UserError, match="No images"):
        read_image_folder(tmp_path / "nothing")
    root = _folder(tmp_path / "all_broken")
    for path in root.rglob("*.png"):
        path.write_bytes(b"junk")
    with pytest.raises(UserError, match="None of the"):
        read_image_folder(root, image_size=(8, 8))
    with pytest.raises(UserError, match="not a known data set"):
        load_data(str(tmp_path / "does-not-exist"))


def test_image_files_gray_for_rgb_rgb_for_gray_and_very_large(tmp_path):
    gray = _save(tmp_path / "gray.png", np.full((20, 30), 90), "L")
    color = _save(tmp_path / "color.png", np.dstack([np.full((20, 30), v) for v in (255, 0, 0)]))
    as_rgb = read_image_file(gray, (10, 10), channels=3)
    assert as_rgb.shape == (10, 10, 3) and (as_rgb == 90).all()
    as_gray = read_image_file(color, (10, 10), channels=1)
    assert as_gray.shape == (10, 10, 1) and (as_gray == 76).all()  # ITU-R 601-2 luma of red.
    large = _save(tmp_path / "large.png", np.full((3000, 4000, 3), 128))
    assert read_image_file(large, (28, 28), channels=1).shape == (28, 28, 1)
    with pytest.raises(UserError, match="No such image file"):
        read_image_file(tmp_path / "missing.png")


def test_image_files_are_resized_by_the_models_own_rule(tmp_path):
    # Noise, on which an antialiased resize (Pillow's, before) and the model's differ by far.
    image = np.random.default_rng(0).integers(0, 256, (24, 20, 3)).astype("uint8")
    path = _save(_folder(tmp_path / "photos", size=(20, 24)) / "cat" / "noise.png", image)
    keras.utils.set_random_seed(0)
    model = build_vit((8, 8, 3), num_classes=2, size="micro", patch_size=2)
    model.save(tmp_path / "model.keras")
    # An array (digits, Fashion-MNIST, from_arrays; `model.predict` by hand) is resized by the
    # model's Resizing layer; a file (train and evaluate on a folder, predict) by resize_image.
    inside = keras.ops.convert_to_numpy(model.get_layer("resizing")(image[None].astype("float32")))[0]
    read = read_image_file(path, (8, 8))
    np.testing.assert_allclose(read, inside, atol=0.5 + 1e-4)  # Only the rounding to uint8.
    folder = read_image_folder(tmp_path / "photos", image_size=(8, 8))
    assert any((x == read).all() for x in np.concatenate([x for x, _ in folder.splits.values()]))
    # predict gives the model those pixels, so its answer for the file is the model's for the
    # array as it is, up to that rounding (0.0001 here; Pillow's resize moved it by 0.018).
    predicted = predict(tmp_path / "model.keras", [path], top_k=2, quiet=True)["predictions"][0]
    probabilities = np.sort(model.predict(read[None], verbose=0)[0])[::-1]
    np.testing.assert_allclose(predicted["probabilities"], probabilities, atol=1e-6)
    probabilities = np.sort(model.predict(image[None], verbose=0)[0])[::-1]
    np.testing.assert_allclose(predicted["probabilities"], probabilities, atol=0.01)


def test_a_16_bit_png_is_read_on_its_full_scale(tmp_path):
    # Two 16-bit images differing in one pixel (240 or 256) read the same: about black.
    for top in (240, 256):
        path = tmp_path / f"gray16_{top}.png"
        Image.fromarray(np.array([[0, 16], [128, top]], dtype="uint16")).save(path)
        assert Image.open(path).mode == "I;16"
        assert read_image_file(path, channels=1).max() <= 1


def test_arrays():
    rng = np.random.default_rng(0)
    images = rng.random((40, 6, 6, 3))  # Floats in 0-1.
    data = ImageData.from_arrays(images, np.array(["b", "a"] * 20))
    assert data.class_names == ["a", "b"] and data.get("train")[0].dtype == np.uint8
    assert data.with_channels(1).image_shape == (6, 6, 1)
    with pytest.raises(UserError, match="one class only"):
        ImageData.from_arrays(images, np.zeros(40, int), class_names=["a"])
    with pytest.raises(UserError, match="40 images but 3 labels"):
        ImageData.from_arrays(images, [0, 1, 0])
    with pytest.raises(UserError, match="must lie in 0..1"):
        ImageData.from_arrays(images, np.arange(40) % 3, class_names=["a", "b"])
    with pytest.raises(UserError, match="Expected images of shape"):
        ImageData.from_arrays(np.zeros((4, 6)), [0, 1, 0, 1])


# === Model ===


def test_vit_takes_raw_images_of_any_size_and_reloads_safely(tmp_path):
    model = build_vit((8, 8, 1), num_classes=3, size="micro", patch_size=2, pooling="mean")
    images = np.random.default_rng(0).integers(0, 255, (2, 8, 8, 1)).astype("uint8")
    probabilities = model.predict(images, verbose=0)
    assert probabilities.shape == (2, 3)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)
    assert model.predict(np.zeros((1, 24, 16, 1), "uint8"), verbose=0).shape == (1, 3)  # Resized inside.
    model.save(tmp_path / "vit.keras")
    reloaded = keras.saving.load_model(tmp_path / "vit.keras", safe_mode=True)
    np.testing.assert_allclose(reloaded.predict(images, verbose=0), probabilities, atol=1e-6)
    maps = attention_rollout(reloaded, images)
    assert maps.shape == (2, 4, 4) and maps.min() == 0.0 and maps.max() == pytest.approx(1.0)


def test_vit_with_a_convolutional_stem_keeps_the_patch_grid(tmp_path):
    model = build_vit((16, 16, 1), num_classes=3, size="micro", patch_size=4, stem_filters=(4, 8))
    embedding = model.get_layer("patch_embedding")
    assert embedding.stem_filters == (4, 8) and embedding.patch_projection.kernel.shape[:2] == (1, 1)
    images = np.random.default_rng(0).integers(0, 255, (2, 16, 16, 1)).astype("uint8")
    probabilities = model.predict(images, verbose=0)
    model.save(tmp_path / "vit.keras")
    reloaded = keras.saving.load_model(tmp_path / "vit.keras", safe_mode=True)
    np.testing.assert_allclose(reloaded.predict(images, verbose=0), probabilities, atol=1e-6)
    assert attention_rollout(reloaded, images).shape == (2, 4, 4)  # 16 / 4: the grid of a plain patch 4.


def test_test_time_flip_predicts_the_mean_over_each_image_and_its_mirror(tmp_path):
    from applications.common import with_new_head

    model = build_vit((8, 8, 1), num_classes=3, size="micro", patch_size=2, pooling="mean", test_time_flip=True)
    plain = build_vit((8, 8, 1), num_classes=3, size="micro", patch_size=2, pooling="mean")
    plain.set_weights(model.get_weights())  # The mirror layers have no weights.
    images = np.random.default_rng(0).integers(0, 255, (3, 8, 8, 1)).astype("uint8")
    mirrored = images[:, :, ::-1]
    expected = (plain.predict(images, verbose=0) + plain.predict(mirrored, verbose=0)) / 2
    probabilities = model.predict(images, verbose=0)
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)
    np.testing.assert_allclose(model.predict(mirrored, verbose=0), probabilities, atol=1e-6)
    assert not np.allclose(probabilities, plain.predict(images, verbose=0), atol=1e-3)
    # Training sees each image once, as it is.
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(images, training=True)),
                               keras.ops.convert_to_numpy(plain(images, training=True)), atol=1e-6)
    model.save(tmp_path / "vit.keras")
    reloaded = keras.saving.load_model(tmp_path / "vit.keras", safe_mode=True)
    np.testing.assert_allclose(reloaded.predict(images, verbose=0), probabilities, atol=1e-6)
    assert attention_rollout(reloaded, images).shape == (3, 4, 4)  # Of the images as they are.
    renewed = with_new_head(reloaded, 5)
    assert renewed.layers[-1] is reloaded.get_layer("mirror_merge")
    assert renewed.predict(images, verbose=0).shape == (3, 5)
    np.testing.assert_allclose(renewed.predict(mirrored, verbose=0), renewed.predict(images, verbose=0),
                               atol=1e-6)


def test_a_saved_vit_reloads_in_a_new_process_once_the_model_module_is_imported(tmp_path):
    import subprocess
    import sys

    model = build_vit((8, 8, 1), num_classes=3, size="micro", patch_size=4, stem_filters=(4,), test_time_flip=True)
    model.save(tmp_path / "vit.keras")
    script = ("import keras, applications.image_classification.model; "
              f"print(keras.saving.load_model({str(tmp_path / 'vit.keras')!r}, safe_mode=True).output_shape)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("(None, 3)")


def test_mirror_average_stages():
    from applications.image_classification.mirror_average import MirrorAverage

    with pytest.raises(ValueError, match="Unknown stage: 'both'"):
        MirrorAverage("both")
    layer = MirrorAverage("merge", name="mirror_merge")
    assert MirrorAverage.from_config(layer.get_config()).get_config() == layer.get_config()
    outputs = keras.ops.convert_to_numpy(layer(np.array([[0.2, 0.8], [0.6, 0.4]]), training=False))
    np.testing.assert_allclose(outputs, [[0.4, 0.6]])  # Each example with its mirror, by hand.
    assert keras.ops.convert_to_numpy(layer(np.ones((2, 2)), training=True)).shape == (2, 2)


def test_random_erasing_fills_a_rectangle_of_some_images():
    from applications.image_classification.recipe import augmenter

    images = np.full((64, 28, 28, 1), 128, "uint8")
    labels = np.eye(2, dtype="float32")[np.arange(64) % 2]
    erased, same_labels = augmenter({"erase": 0.5}, seed=0)(images, labels)
    changed = (np.asarray(erased) != 128).reshape(64, -1).mean(axis=1)
    assert 16 <= np.count_nonzero(changed) <= 48  # About half of the images...
    assert changed.max() <= 0.34  # ...each in a rectangle of at most a third of it.
    np.testing.assert_array_equal(same_labels, labels)


def test_stem_filters_from_the_command_line(tmp_path, capsys):
    output = tmp_path / "run"
    code = cli.main(["train", "image-classification", "--epochs", "1", "--size", "micro", "--patch-size", "4",
                     "--stem-filters", "4,8", "--max-examples", "64", "--quiet", "--output", str(output)])
    assert code == 0
    recipe = json.loads((output / "settings.json").read_text())["recipe"]
    assert recipe["model"]["stem_filters"] == [4, 8]
    assert cli.main(["train", "image-classification", "--stem-filters", "4,x"]) == 2
    assert "expected filters like 32,64" in capsys.readouterr().err
    code = cli.main(["train", "image-classification", "--patch-size", "2", "--stem-filters", "4,8",
                     "--output", str(tmp_path / "bad")])
    assert code == 1 and not (tmp_path / "bad").exists()
    assert "multiple of 4" in capsys.readouterr().err


def test_a_reloaded_vit_gets_a_new_head_for_other_classes(tmp_path):
    from applications.common import with_new_head

    model = build_vit((8, 8, 1), num_classes=3, size="micro", patch_size=2, pooling="mean", head_dropout=0.3)
    model.save(tmp_path / "vit.keras")
    reloaded = keras.saving.load_model(tmp_path / "vit.keras", safe_mode=True)
    renewed = with_new_head(reloaded, 5)
    images = np.random.default_rng(0).integers(0, 255, (2, 8, 8, 1)).astype("uint8")
    probabilities = renewed.predict(images, verbose=0)
    assert probabilities.shape == (2, 5)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)  # The softmax is kept.
    old, new = reloaded.get_layer("head"), renewed.get_layer("head")
    assert new is not old and (new.pooling, new.dropout, new.name) == ("mean", 0.3, "head")
    # Everything below the head is the trained model's own layers and weights.
    assert renewed.get_layer("final_norm") is reloaded.get_layer("final_norm")
    assert {id(v) for v in renewed.weights} - {id(v) for v in new.weights} == \
        {id(v) for v in reloaded.weights} - {id(v) for v in old.weights}


def test_vit_without_a_training_flag_runs_in_inference_mode():
    # keras' Resizing defaults to training=True and would switch dropout on after it.
    model = build_vit((8, 8, 1), num_classes=3, size="micro", patch_size=2, dropout=0.5, head_dropout=0.5)
    images = np.random.default_rng(0).integers(0, 255, (2, 8, 8, 1)).astype("uint8")
    expected = model.predict(images, verbose=0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(images)), expected, atol=1e-6)


def test_vit_settings_are_validated():
    with pytest.raises(ValueError, match="Unknown size: 'huge'"):
        build_vit((8, 8, 1), 2, size="huge")
    with pytest.raises(ValueError, match="Unknown pooling: 'max'"):
        build_vit((8, 8, 1), 2, pooling="max")
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        build_vit((8, 8, 1), 2, hidden_dim=10, num_heads=4)
    with pytest.raises(ValueError, match="Unknown ViT settings"):
        build_vit((8, 8, 1), 2, depth=3)
    with pytest.raises(ValueError, match="at least 2 classes"):
        build_vit((8, 8, 1), 1)
    with pytest.raises(UserError, match="num_heads=0: expected a positive whole number"):
        build_vit((8, 8, 1), 2, num_heads=0)  # Was a ZeroDivisionError.
    with pytest.raises(UserError, match="num_layers=0: expected a positive whole number"):
        build_vit((8, 8, 1), 2, num_layers=0)
    with pytest.raises(UserError, match="dropout=1.5: expected a rate"):
        build_vit((8, 8, 1), 2, dropout=1.5)
    with pytest.raises(UserError, match="image size 9x9 is not divisible by the patch size 2: give --image-size 8x8"):
        build_vit((8, 8, 1), 2, image_size=(9, 9), patch_size=2)
    with pytest.raises(UserError, match="learning_rate=0"):
        recipe_for("digits", learning_rate=0.0)
    with pytest.raises(UserError, match="warmup_epochs=-5"):
        recipe_for("digits", warmup_epochs=-5)


def test_bad_model_and_schedule_flags_are_refused_before_training(tmp_path, capsys):
    output = tmp_path / "run"
    train_command = ["train", "image-classification", "--output", str(output), "--quiet"]
    # Values wrong by themselves: argparse refuses them (exit status 2).
    for flag, value in (("--num-heads", "0"), ("--num-layers", "0"), ("--num-layers", "-1"),
                        ("--intermediate-dim", "0"), ("--hidden-dim", "0"), ("--patch-size", "0"),
                        ("--warmup-epochs", "-5"), ("--learning-rate", "0")):
        assert cli.main([*train_command, flag, value]) == 2, flag
        error = capsys.readouterr().err
        assert f"argument {flag}: expected" in error and "Traceback" not in error
    assert cli.main(["predict", "image-classification", "--model", str(tmp_path / "missing"), "digit.png",
                     "--top-k", "0"]) == 2
    assert "argument --top-k: expected a positive whole number" in capsys.readouterr().err
    # Values wrong together or for the data: one line, exit status 1, before any training.
    for flags, message in (
        (["--image-size", "1"], "The image size 1x1 is not divisible by the patch size 2: give --image-size 2x2"),
        (["--hidden-dim", "10", "--num-heads", "4"], "hidden_dim=10 is not divisible by num_heads=4"),
    ):
        assert cli.main([*train_command, *flags]) == 1
        error = capsys.readouterr().err.strip()
        assert error.startswith(f"keras-attention: error: {message}") and "\n" not in error
    assert list(tmp_path.iterdir()) == []  # No run folder, no .run.partial.


# === Training and using a run ===


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A micro ViT trained briefly on the real digits (the whole training split)."""
    output = tmp_path_factory.mktemp("runs") / "digits"
    # No shifts: a short run learns faster without them (about 0.83 after 10 epochs).
    metrics = train("digits", output, epochs=10, learning_rate=5e-3, translate=0.0, **FAST)
    return output, metrics


def test_training_on_digits_learns_and_writes_a_whole_run_folder(digits_run):
    output, metrics = digits_run
    assert metrics["test_accuracy"] >= 0.6  # Chance is 0.1; the full recipe reaches >= 0.98.
    assert metrics["test_examples"] == 359 and metrics["train_examples"] == 1295
    assert sorted(p.name for p in output.iterdir()) == sorted([
        "model.keras", "metrics.json", "history.csv", "settings.json", "learning_curves.png",
        "attention_rollout.png", "confusion_matrix.png"])
    assert not list(output.parent.glob(".*partial"))
    settings = json.loads((output / "settings.json").read_text())
    assert settings["class_names"][:2] == ["0", "1"] and settings["recipe"]["model"]["size"] == "micro"
    model = keras.saving.load_model(output / "model.keras", safe_mode=True)
    images, labels = load_digits().get("test")
    accuracy = (model.predict(images, verbose=0).argmax(-1) == labels).mean()
    assert accuracy == pytest.approx(metrics["test_accuracy"])


def test_evaluate_from_the_command_line(digits_run, tmp_path, capsys):
    output, metrics = digits_run
    assert cli.main(["evaluate", "image-classification", "--model", str(output),
                     "--json", str(tmp_path / "m.json")]) == 0
    results = json.loads((tmp_path / "m.json").read_text())
    assert results["accuracy"] == pytest.approx(metrics["test_accuracy"]) and results["split"] == "test"
    assert "accuracy" in capsys.readouterr().out
    assert evaluate(output, split="all")["examples"] == 1797


def test_predict_top_k_with_attention_pictures_then_export_and_run_it(digits_run, tmp_path, capsys):
    output, _ = digits_run
    images, labels = load_digits().get("test")
    files = [_save(tmp_path / f"digit{i}.png", images[i, ..., 0], "L") for i in range(3)]
    files.append(_save(tmp_path / "big_color.png", np.repeat(np.kron(images[3], np.ones((8, 8, 1))), 3, -1)))
    results = predict(output, files, top_k=2, attention_dir=tmp_path / "pictures")["predictions"]
    assert [len(r["labels"]) for r in results] == [2, 2, 2, 2]
    assert all(r["probabilities"][0] >= r["probabilities"][1] for r in results)
    assert (tmp_path / "pictures" / "digit0_attention.png").stat().st_size > 1000
    assert "digit0.png:" in capsys.readouterr().out

    assert cli.main(["export", "image-classification", "--model", str(output),
                     "--output", str(tmp_path / "export")]) == 0
    exported = predict(tmp_path / "export", files, top_k=2, quiet=True)["predictions"]
    for ours, theirs in zip(results, exported):
        assert ours["labels"] == theirs["labels"]
        np.testing.assert_allclose(ours["probabilities"], theirs["probabilities"], atol=1e-4)
    argv = ["predict", "image-classification", "--model", str(tmp_path / "export"), str(files[0])]
    assert cli.main(argv) == 0
    # An export has no layers to export again or fine-tune.
    with pytest.raises(UserError, match="is an export; give the run folder"):
        export(tmp_path / "export", tmp_path / "again")
    with pytest.raises(UserError, match="is an export; give the run folder"):
        finetune(tmp_path / "export", "digits", tmp_path / "tuned", epochs=1, quiet=True)
    assert not (tmp_path / "again").exists() and not (tmp_path / "tuned").exists()
    with pytest.raises(UserError, match="Could not decode"):
        predict(output, [_broken(tmp_path)])


def _broken(tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"\xff\xd8\xff not a jpeg")
    return path


def test_evaluate_with_labels_the_model_does_not_know(digits_run, tmp_path):
    output, _ = digits_run
    images, _ = load_digits().get("test")
    for name in ("3", "cat"):
        for i in range(2):
            _save(tmp_path / "data" / name / f"{i}.png", images[i, ..., 0], "L")
    with pytest.raises(UserError, match=r"labels the model does not know: \['cat'\]"):
        evaluate(output, data=str(tmp_path / "data"))


def test_finetune_on_a_folder_with_new_classes_replaces_the_head(digits_run, tmp_path):
    output, _ = digits_run
    images, labels = load_digits().get("train")
    for label, name in ((0, "zero"), (1, "one")):
        for i, image in enumerate(images[labels == label][:10]):
            _save(tmp_path / "data" / name / f"{i}.png", np.kron(image[..., 0], np.ones((2, 2))), "L")
    metrics = finetune(output, str(tmp_path / "data"), tmp_path / "tuned", epochs=1, **{
        k: v for k, v in FAST.items() if k not in ("size", "patch_size")})
    settings = json.loads((tmp_path / "tuned" / "settings.json").read_text())
    assert settings["class_names"] == ["one", "zero"] and settings["fine_tuned"]
    model = keras.saving.load_model(tmp_path / "tuned" / "model.keras", safe_mode=True)
    assert model.output_shape == (None, 2) and metrics["test_examples"] == 4


def test_finetune_from_the_command_line_on_the_same_classes_keeps_the_head(digits_run, tmp_path):
    output, _ = digits_run
    argv = ["finetune", "image-classification", "--model", str(output), "--data", "digits", "--epochs", "1",
            "--max-examples", "128", "--warmup-epochs", "0", "--quiet", "--output", str(tmp_path / "tuned")]
    assert cli.main(argv) == 0
    before = keras.saving.load_model(output / "model.keras").get_layer("head").get_weights()
    after = keras.saving.load_model(tmp_path / "tuned" / "model.keras").get_layer("head").get_weights()
    assert after[0].shape == before[0].shape and not np.array_equal(after[0], before[0])  # Trained on.


class _Interrupt(keras.callbacks.Callback):
    def __init__(self, at_epoch=None, at_batch=None):
        super().__init__()
        self.at_epoch, self.at_batch = at_epoch, at_batch

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.at_batch:
            raise RuntimeError("the machine went away")

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at_epoch:
            raise KeyboardInterrupt


SUBSET = dict(FAST, max_examples=256, epochs=3, learning_rate=3e-3)


def test_a_run_failing_midway_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        train("digits", tmp_path / "run", callbacks=[_Interrupt(at_batch=1)], **SUBSET)
    assert list(tmp_path.iterdir()) == []


def test_resume_after_an_interruption_and_same_seed_same_result(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        train("digits", tmp_path / "run", callbacks=[_Interrupt(at_epoch=0)], **SUBSET)
    assert not (tmp_path / "run").exists() and not list(tmp_path.rglob("model.keras"))
    resumed = train("digits", tmp_path / "run", resume=True, **SUBSET)
    history = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["0", "1", "2"]

    first = train("digits", tmp_path / "a", **SUBSET)
    again = train("digits", tmp_path / "b", **SUBSET)
    for key in ("test_accuracy", "test_macro_f1", "validation_accuracy"):
        assert first[key] == again[key]
    weights_a = keras.saving.load_model(tmp_path / "a" / "model.keras").get_weights()
    weights_b = keras.saving.load_model(tmp_path / "b" / "model.keras").get_weights()
    for a, b in zip(weights_a, weights_b):
        np.testing.assert_array_equal(a, b)
    assert resumed["epochs"] == 3


def test_training_from_the_command_line_with_a_user_mistake(tmp_path, capsys):
    root = _folder(tmp_path / "one", classes=("cat",))
    code = cli.main(["train", "image-classification", "--data", str(root), "--output", str(tmp_path / "run")])
    assert code == 1 and not (tmp_path / "run").exists()
    assert "one class only" in capsys.readouterr().err


def test_training_on_arrays_in_python(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (60, 8, 8, 3), dtype="uint8")
    labels = (images[..., 0].mean(axis=(1, 2)) > 127).astype(int)
    metrics = train(ImageData.from_arrays(images, labels, ["dark", "light"]), tmp_path / "run",
                    epochs=1, **FAST)
    assert metrics["train_examples"] == 43 and os.path.exists(tmp_path / "run" / "model.keras")
