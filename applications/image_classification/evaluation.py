"""Using a trained ViT: evaluate, predict top-k, attention rollout, export."""

import math
from pathlib import Path

import keras
import numpy as np

from applications.common import (
    UserError,
    export_model,
    load_model,
    load_settings,
    load_trained_model,
    macro_f1,
    model_path,
    predict_evenly,
)
from applications.image_classification.mirror_average import MirrorAverage
from keras_attention.heads import ClassificationHead
from keras_attention.layers import TransformerEncoder

# === Metrics ===


def evaluate_arrays(model, images, labels, class_names, batch_size=256):
    """Accuracy, macro-F1 (`applications.common.macro_f1`), mean cross-entropy and the confusion matrix."""
    from sklearn.metrics import confusion_matrix

    if len(images) == 0:
        return {"accuracy": float("nan"), "macro_f1": float("nan"), "loss": float("nan"),
                "examples": 0, "confusion_matrix": []}
    probabilities = np.asarray(predict_evenly(model, images, batch_size), dtype="float64")
    predicted = probabilities.argmax(axis=-1)
    labels = np.asarray(labels)
    everything = list(range(len(class_names)))
    picked = probabilities[np.arange(len(labels)), labels]
    return {
        "accuracy": float((predicted == labels).mean()),
        "macro_f1": macro_f1(labels, predicted, len(class_names)),
        "loss": float(-np.log(np.maximum(picked, 1e-12)).mean()),
        "examples": int(len(labels)),
        "confusion_matrix": confusion_matrix(labels, predicted, labels=everything).tolist(),
    }


def save_confusion_matrix(matrix, class_names, path):
    """A confusion-matrix picture (rows: true class, columns: predicted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix)
    if matrix.size == 0:
        return None
    size = max(4.0, 0.45 * len(class_names) + 2)
    figure, axis = plt.subplots(figsize=(size, size))
    axis.imshow(matrix, cmap="Blues")
    ticks = range(len(class_names))
    axis.set_xticks(ticks, class_names, rotation=90)
    axis.set_yticks(ticks, class_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    if len(class_names) <= 20:
        for (i, j), count in np.ndenumerate(matrix):
            axis.text(j, i, str(count), ha="center", va="center", fontsize=7,
                      color="white" if count > matrix.max() / 2 else "black")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


# === Attention rollout ===


def attention_scores(model, images):
    """The attention scores of each encoder layer, `[(B, N, T, T)]`.

    Runs the layers of a ViT built by `build_vit` one by one on uint8
    `images` of the model's size, asking each `TransformerEncoder` for its
    scores.
    """
    x = keras.ops.convert_to_tensor(np.asarray(images))
    scores = []
    for layer in model.layers:
        if isinstance(layer, (keras.layers.InputLayer, MirrorAverage)):  # The images as they are.
            continue
        if isinstance(layer, ClassificationHead):
            break
        if isinstance(layer, TransformerEncoder):
            x, layer_scores = layer(x, return_attention_scores=True)
            scores.append(keras.ops.convert_to_numpy(keras.ops.cast(layer_scores, "float32")))
        else:
            x = layer(x)
    if not scores:
        raise ValueError("The model has no TransformerEncoder layers: attention rollout needs a ViT.")
    return scores


def attention_rollout(model, images):
    """Attention rollout (Abnar & Zuidema, 2020) over all layers, as patch grids.

    Each layer's head-averaged attention is mixed with the identity (the
    residual path), rows renormalized, and the layers multiplied. The map of
    an image is the class token's row (class-token pooling) or the mean row
    (mean pooling) over the patches.

    Returns:
        float array `(B, grid_height, grid_width)`, each map scaled to [0, 1].
    """
    scores = attention_scores(model, images)
    tokens = scores[0].shape[-1]
    identity = np.eye(tokens, dtype="float64")
    rollout = np.broadcast_to(identity, (len(images), tokens, tokens))
    for layer_scores in scores:
        attention = 0.5 * layer_scores.astype("float64").mean(axis=1) + 0.5 * identity  # [B, T, T]
        attention /= attention.sum(axis=-1, keepdims=True)
        rollout = attention @ rollout
    embedding = model.get_layer("patch_embedding")
    if embedding.use_class_token:
        maps = rollout[:, 0, 1:]  # [B, P]
    else:
        maps = rollout.mean(axis=1)  # [B, P]
    resizing = model.get_layer("resizing")
    patch = embedding.patch_size if isinstance(embedding.patch_size, tuple) else (embedding.patch_size,) * 2
    grid = (resizing.height // patch[0], resizing.width // patch[1])
    maps = maps.reshape(len(images), *grid)
    low = maps.min(axis=(1, 2), keepdims=True)
    high = maps.max(axis=(1, 2), keepdims=True)
    return (maps - low) / np.maximum(high - low, 1e-12)


def save_rollout_picture(model, images, path, titles=None):
    """Save the images with their attention rollout overlaid, as a PNG grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = np.asarray(images)
    maps = attention_rollout(model, images)
    count = len(images)
    columns = min(count, 4)
    rows = math.ceil(count / columns)
    figure, axes = plt.subplots(rows, 2 * columns, figsize=(2.2 * 2 * columns, 2.4 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for index, (image, attention) in enumerate(zip(images, maps)):
        row, column = divmod(index, columns)
        height, width = image.shape[:2]
        shown = image[..., 0] if image.shape[-1] == 1 else image
        left, right = axes[row][2 * column], axes[row][2 * column + 1]
        left.imshow(shown, cmap="gray" if image.shape[-1] == 1 else None, vmin=0, vmax=255)
        if titles is not None:
            left.set_title(str(titles[index]), fontsize=8)
        right.imshow(shown, cmap="gray" if image.shape[-1] == 1 else None, vmin=0, vmax=255)
        right.imshow(attention, cmap="jet", alpha=0.5, extent=(-0.5, width - 0.5, height - 0.5, -0.5),
                     interpolation="bilinear")
        right.set_title("attention rollout", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


# === Trained models ===


def model_geometry(model, settings):
    """(image_size, channels) a trained model takes: from the model, else its settings."""
    if isinstance(model, keras.Model):
        from applications.image_classification.model import channels_of, image_size_of

        return image_size_of(model), channels_of(model)
    if "image_size" in settings and "channels" in settings:
        return tuple(settings["image_size"]), int(settings["channels"])
    raise UserError("The export lacks its settings.json (image size and channels): export it again.")


def class_names_of(model, settings):
    names = settings.get("class_names")
    if names:
        return list(names)
    return [str(i) for i in range(int(model.output_shape[-1]))] if isinstance(model, keras.Model) else None


def evaluate(model, data=None, split=None, batch_size=256):
    """Evaluate a trained run on `data` (default: the data it was trained on).

    Args:
        model: a run folder, `.keras` file or exported SavedModel folder.
        data: `--data`, or None for the run's own data set.
        split: "train", "validation", "test", "all" or None (test where
            there is one, else all).
        batch_size: int.

    Returns:
        A dict: `accuracy`, `macro_f1`, `loss`, `examples`, `split`, `data`,
        `confusion_matrix`.
    """
    from applications.image_classification.data import load_data

    settings = load_settings(model_path(model))
    model = load_model(model)
    image_size, channels = model_geometry(model, settings)
    class_names = class_names_of(model, settings)
    if data is None:
        data = settings.get("data")
        if data in (None, "arrays"):
            raise UserError("This run was trained on arrays: pass --data to evaluate it.")
    data = load_data(data, image_size=image_size, channels=channels, class_names=class_names)
    data = data.with_channels(channels)
    labels_map = _label_map(data.class_names, class_names, data.name)
    split = split or ("test" if "test" in data.splits else "all")
    images, labels = data.get(split)
    results = evaluate_arrays(model, images, labels_map[labels], class_names, batch_size)
    return {"accuracy": results.pop("accuracy"), **results, "split": split, "data": data.name}


def _label_map(data_classes, model_classes, name):
    unknown = [c for c in data_classes if c not in model_classes]
    if unknown:
        raise UserError(
            f"The data {name} has labels the model does not know: {unknown}. "
            f"The model's classes are {model_classes}."
        )
    return np.array([model_classes.index(c) for c in data_classes], dtype="int64")


def predict(model, files, top_k=3, attention_dir=None, batch_size=32, quiet=False):
    """Top-k labels and probabilities for image files; optional attention pictures.

    Args:
        model: a run folder, `.keras` file or exported SavedModel folder.
        files: list of image paths (any size and mode: converted, and resized
            to the model's size by `resize_image`, as training and evaluation
            read image folders).
        top_k: int. How many labels to report per image.
        attention_dir: str, Path or None. Write `<file stem>_attention.png`
            (attention rollout over the image) there (keras models only).
        batch_size: int.
        quiet: bool. Do not print the predictions.

    Returns:
        `{"predictions": [{"file", "labels", "probabilities"}, ...]}`.
    """
    from applications.image_classification.data import read_image_file

    if not files:
        raise UserError("No image files given: pass one or more paths after the flags.")
    settings = load_settings(model_path(model))
    model = load_model(model)
    image_size, channels = model_geometry(model, settings)
    class_names = class_names_of(model, settings)
    images = np.stack([read_image_file(f, image_size, channels) for f in files])
    probabilities = np.asarray(model.predict(images, batch_size=batch_size, verbose=0), dtype="float64")
    if class_names is None:
        class_names = [str(i) for i in range(probabilities.shape[-1])]
    top_k = max(1, min(top_k, len(class_names)))
    predictions = []
    for path, row in zip(files, probabilities):
        best = np.argsort(-row)[:top_k]
        predictions.append({"file": str(path), "labels": [class_names[i] for i in best],
                            "probabilities": [round(float(row[i]), 6) for i in best]})
        if not quiet:
            shown = ", ".join(f"{class_names[i]} {row[i]:.3f}" for i in best)
            print(f"{path}: {shown}")
    if attention_dir is not None:
        if not isinstance(model, keras.Model):
            raise UserError("Attention pictures need the run folder (model.keras), not an export.")
        folder = Path(attention_dir)
        folder.mkdir(parents=True, exist_ok=True)
        for path, image, prediction in zip(files, images, predictions):
            picture = folder / f"{Path(path).stem}_attention.png"
            title = f"{prediction['labels'][0]} ({prediction['probabilities'][0]:.2f})"
            save_rollout_picture(model, image[None], picture, [title])
            prediction["attention_picture"] = str(picture)
            if not quiet:
                print(f"Wrote {picture}")
    return {"predictions": predictions}


def export(model, output=None, overwrite=False):
    """Export a trained run as a TensorFlow SavedModel taking raw uint8 images.

    The export's `serve` endpoint takes uint8 images `(B, height, width,
    channels)` of any size and returns the class probabilities; its
    `settings.json` holds the class names, so
    `keras-attention predict image-classification --model EXPORT FILES` runs it.
    """
    source = model_path(model)
    settings = load_settings(source)
    model = load_trained_model(source)
    image_size, channels = model_geometry(model, settings)
    settings = {**settings, "image_size": list(image_size), "channels": channels,
                "class_names": class_names_of(model, settings)}
    run_folder = source.parent if source.is_file() else source
    output = Path(output) if output else run_folder / "export"
    export_model(model, output, settings=settings, overwrite=overwrite)
    print(f"Exported {source} to {output} (a TensorFlow SavedModel; endpoint 'serve', uint8 images).")
    return {"export": str(output)}
