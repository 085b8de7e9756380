"""`MirrorAverage`: test-time flip averaging, inside the model."""

import keras
from keras import ops

STAGES = ("split", "merge")


@keras.saving.register_keras_serializable(package="keras_attention")
class MirrorAverage(keras.layers.Layer):
    """Average a model's predictions over each image and its left-right mirror image.

    Used in pairs around a network: `MirrorAverage("split")` after the image
    preprocessing and `MirrorAverage("merge")` on the output. At inference,
    `split` turns a batch of `B` images `(B, H, W, C)` into the `2B` images of the
    batch followed by their mirror images, and `merge` averages the two halves
    of its input `(2B, ...)` back to `(B, ...)`. In training both pass their
    input through unchanged, so training costs nothing more (the random flips of
    the data augmentation already show the network both sides). Suits images
    whose classes do not change under a mirror (clothes, photographs; not
    digits or text).

    Saving it inside the model means that `predict`, `evaluate`, the
    validation of `fit` and an exported artifact all give the averaged
    prediction.

    Args:
        stage: str. `"split"` (images in, images and mirror images out) or
            `"merge"` (the two halves averaged).
        **kwargs: base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: `split`: images `(B, H, W, C)`; `merge`: any `(2B, ...)` tensor.
        training: bool. In training, the layer returns `inputs` as they are.

    Example:
    >>> import keras, numpy as np
    >>> from applications.image_classification.mirror_average import MirrorAverage
    >>> images = np.arange(4.0).reshape(1, 1, 4, 1)  # one image, a row of 4 pixels
    >>> pair = keras.ops.convert_to_numpy(MirrorAverage("split")(images))
    >>> pair[:, 0, :, 0].tolist()
    [[0.0, 1.0, 2.0, 3.0], [3.0, 2.0, 1.0, 0.0]]
    >>> keras.ops.convert_to_numpy(MirrorAverage("merge")(pair[:, 0, :, 0])).tolist()
    [[1.5, 1.5, 1.5, 1.5]]
    """

    def __init__(self, stage, **kwargs):
        super().__init__(**kwargs)
        if stage not in STAGES:
            raise ValueError(f"Unknown stage: {stage!r}. Expected one of {STAGES}.")
        self.stage = stage
        self.supports_masking = False

    def call(self, inputs, training=None):
        if training:
            return inputs
        if self.stage == "split":
            return ops.concatenate([inputs, ops.flip(inputs, axis=2)], axis=0)  # [2B, H, W, C]
        pairs = ops.reshape(inputs, (2, -1, *inputs.shape[1:]))  # [2, B, ...]
        return ops.mean(pairs, axis=0)  # [B, ...]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"stage": self.stage})
        return config
