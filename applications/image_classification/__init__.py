"""Vision Transformer image classification.

From Python:

    from applications.image_classification import ImageData, build_vit, train

    model = build_vit((28, 28, 1), num_classes=10, size="small", patch_size=4)
    model.fit(images, keras.utils.to_categorical(labels), epochs=10)  # your own loop

    metrics = train(ImageData.from_arrays(images, labels), output="runs/mine")
    model = keras.saving.load_model("runs/mine/model.keras")  # takes uint8 images
    model.predict(images)  # class probabilities

From the command line: `keras-attention train image-classification` (see
`docs/applications/image_classification.md`).
"""

import importlib

# Names -> the module defining them, imported on first use (PEP 562), so that
# `keras-attention ... --help` does not import keras.
_EXPORTS = {
    "data": ["KNOWN_DATASETS", "ImageData", "load_data", "load_digits", "read_fashion_mnist",
             "read_image_file", "read_image_folder", "resize_image"],
    "evaluation": ["attention_rollout", "evaluate", "evaluate_arrays", "export", "predict",
                   "save_rollout_picture"],
    "model": ["VIT_SIZES", "build_vit", "vit_settings"],
    "recipe": ["RECIPES", "finetune", "make_dataset", "recipe_for", "train"],
}
_SOURCE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_SOURCE)


def __getattr__(name):
    if name in _SOURCE:
        module = importlib.import_module(f"applications.image_classification.{_SOURCE[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'applications.image_classification' has no attribute {name!r}")


def __dir__():
    return __all__
