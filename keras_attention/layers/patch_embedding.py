"""Images to patch tokens: the Vision Transformer stem."""

import numbers

import keras
from keras import ops

from keras_attention.layers.layer_utils import clone_initializer
from keras_attention.layers.position_embedding import PositionEmbedding


@keras.saving.register_keras_serializable(package="keras_attention")
class PatchEmbedding(keras.layers.Layer):
    """Cut images into patches and embed each one: the Vision Transformer stem.

    Splits a `(B, height, width, channels)` image into non-overlapping
    `patch_size` patches, projects each to `hidden_dim` with one strided
    `Conv2D` (the same as flattening the patch and applying a `Dense`), and
    adds a learned position embedding. Patches come out in row-major order:
    token `r * (width / pw) + c` is the patch in patch-row `r`, patch-column
    `c`. With `use_class_token=True` a learned class token is prepended at
    index 0 (read it with a class-token pooling), and it gets a position of
    its own.

    With `stem_filters`, a convolutional stem (Xiao et al., 2021) replaces
    part of the patchify step: one 3x3 stride-2 `Conv2D` (then
    `BatchNormalization` and ReLU) per entry, each halving the image, then
    the strided projection covers what is left of the patch. The tokens are
    the same grid as without a stem (a patch of 4 with two stem layers: a
    1x1 projection of the 4x-reduced map), but each one sees overlapping
    neighbourhoods: a locality prior that small data sets need.

    The position table has one row per patch of the image size the layer is
    built for, so the layer serves images of that size only; calling it on
    another size raises a `ValueError`. Resize or crop images to the build
    size (for example with `keras.layers.Resizing`). Images must be
    channels-last with height and width multiples of the patch size.

    Args:
        patch_size: int or tuple of 2 ints. Patch height and width.
        hidden_dim: int. The size of each patch token.
        use_class_token: bool. Prepend a learned class token. Defaults to
            `False`.
        stem_filters: tuple of ints. The filters of each stride-2 layer of a
            convolutional stem; the patch height and width must be multiples
            of `2 ** len(stem_filters)`. Defaults to `()`: no stem, one
            strided projection of each patch.
        kernel_initializer: str or `keras.initializers.Initializer`.
            Initializer of the patch projection. Defaults to
            `"glorot_uniform"`.
        embeddings_initializer: str or `keras.initializers.Initializer`.
            Initializer of the position table and the class token. Defaults to
            `"random_normal"` (standard deviation 0.05).
        **kwargs: other arguments of `keras.layers.Layer`, such as `name` and
            `dtype`.

    Call arguments:
        inputs: images, `(B, height, width, channels)`, of the build size.

    Returns:
        Patch tokens, `(B, P, hidden_dim)` with
        `P = (height / ph) * (width / pw)`, or `(B, P + 1, hidden_dim)` with
        the class token first, in the compute dtype.

    Example:

    >>> import numpy as np
    >>> from keras_attention.layers import PatchEmbedding
    >>> images = np.zeros((2, 28, 28, 1), dtype="float32")
    >>> layer = PatchEmbedding(patch_size=7, hidden_dim=32, use_class_token=True)
    >>> tuple(layer(images).shape)
    (2, 17, 32)

    References:
        - [Dosovitskiy et al., 2021](https://arxiv.org/abs/2010.11929)
        - [Xiao et al., 2021](https://arxiv.org/abs/2106.14881) (convolutional stem)
    """

    def __init__(
        self,
        patch_size,
        hidden_dim,
        use_class_token=False,
        stem_filters=(),
        kernel_initializer="glorot_uniform",
        embeddings_initializer="random_normal",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(patch_size, (tuple, list)):
            valid = len(patch_size) == 2 and all(_is_positive_int(s) for s in patch_size)
        else:
            valid = _is_positive_int(patch_size)
        if not valid:
            raise ValueError(
                "`patch_size` must be a positive integer or a tuple of 2 positive "
                f"integers (height, width). Received: patch_size={patch_size}"
            )
        if not _is_positive_int(hidden_dim):
            raise ValueError(f"`hidden_dim` must be a positive integer. Received: hidden_dim={hidden_dim}")
        if not isinstance(stem_filters, (tuple, list)) or not all(_is_positive_int(f) for f in stem_filters):
            raise ValueError(
                "`stem_filters` must be a tuple of positive integers (one per stride-2 stem "
                f"layer), or () for no stem. Received: stem_filters={stem_filters}"
            )
        if isinstance(patch_size, (tuple, list)):
            self.patch_size = tuple(int(s) for s in patch_size)
        else:
            self.patch_size = int(patch_size)
        stride = 2 ** len(stem_filters)
        if any(side % stride for side in self._patch_hw()):
            raise ValueError(
                f"A stem of {len(stem_filters)} stride-2 layers reduces the image {stride}x, "
                f"so the patch size must be a multiple of {stride}. Received: "
                f"patch_size={patch_size}, stem_filters={stem_filters}. Use fewer stem "
                "layers or a larger patch."
            )
        self.hidden_dim = int(hidden_dim)
        self.use_class_token = bool(use_class_token)
        self.stem_filters = tuple(int(f) for f in stem_filters)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != 4:
            raise ValueError(
                "PatchEmbedding expects channels-last images of shape "
                f"(B, height, width, channels). Received: input_shape={input_shape}. "
                "Add a channel axis to grayscale images."
            )
        height, width, channels = input_shape[1:]
        if height is None or width is None or channels is None:
            raise ValueError(
                "PatchEmbedding needs a known image size to size its position "
                f"table. Received: input_shape={input_shape}. Give "
                "`keras.Input(shape=(height, width, channels))`."
            )
        patch_height, patch_width = self._patch_hw()
        if height % patch_height or width % patch_width:
            raise ValueError(
                f"The image size {height}x{width} is not divisible by the patch size "
                f"{patch_height}x{patch_width}. Resize or crop the images to a "
                f"multiple of the patch size, e.g. "
                f"{height // patch_height * patch_height or patch_height}x"
                f"{width // patch_width * patch_width or patch_width}."
            )
        self._image_size = (height, width)
        num_patches = (height // patch_height) * (width // patch_width)
        num_positions = num_patches + int(self.use_class_token)

        self.stem_convolutions, self.stem_normalizations = [], []
        shape = input_shape
        for i, filters in enumerate(self.stem_filters):
            # No bias: the batch normalization after the convolution has one.
            convolution = keras.layers.Conv2D(
                filters,
                kernel_size=3,
                strides=2,
                padding="same",
                use_bias=False,
                kernel_initializer=clone_initializer(self.kernel_initializer),
                dtype=self.dtype_policy,
                name=f"stem_convolution_{i}",
            )
            normalization = keras.layers.BatchNormalization(dtype=self.dtype_policy, name=f"stem_normalization_{i}")
            convolution.build(shape)
            shape = convolution.compute_output_shape(shape)
            normalization.build(shape)
            self.stem_convolutions.append(convolution)
            self.stem_normalizations.append(normalization)
        stride = 2 ** len(self.stem_filters)
        self.patch_projection = keras.layers.Conv2D(
            filters=self.hidden_dim,
            kernel_size=(patch_height // stride, patch_width // stride),
            strides=(patch_height // stride, patch_width // stride),
            padding="valid",
            data_format="channels_last",
            kernel_initializer=clone_initializer(self.kernel_initializer),
            dtype=self.dtype_policy,
            name="patch_projection",
        )
        self.patch_projection.build(shape)
        if self.use_class_token:
            self.class_token = self.add_weight(
                name="class_token",
                shape=(1, 1, self.hidden_dim),
                initializer=clone_initializer(self.embeddings_initializer),
                trainable=True,
            )
        self.position_embedding = PositionEmbedding(
            sequence_length=num_positions,
            initializer=clone_initializer(self.embeddings_initializer),
            dtype=self.dtype_policy,
            name="position_embedding",
        )
        self.position_embedding.build((None, num_positions, self.hidden_dim))
        self.built = True

    def call(self, inputs):
        if tuple(inputs.shape[1:3]) != self._image_size:
            raise ValueError(
                f"PatchEmbedding was built for {self._image_size[0]}x{self._image_size[1]} "
                f"images, and its position table has one row per patch of that size. "
                f"Received images of shape {tuple(inputs.shape)}. Resize the images "
                "to the build size, or build a new layer for the new size."
            )
        x = ops.cast(inputs, self.compute_dtype)
        for convolution, normalization in zip(self.stem_convolutions, self.stem_normalizations):
            x = ops.relu(normalization(convolution(x)))  # [B, height / 2^i, width / 2^i, filters]
        patches = self.patch_projection(x)  # [B, height / ph, width / pw, D]
        # P from the static grid, not -1: with a dynamic batch size a -1 would leave P
        # unknown, and keras's TensorFlow einsum then skips its matmul path in every
        # attention layer after this one (training steps about 25% slower on a CPU).
        num_patches = patches.shape[1] * patches.shape[2]
        patches = ops.reshape(patches, (ops.shape(patches)[0], num_patches, self.hidden_dim))  # [B, P, D]
        if self.use_class_token:
            class_token = ops.cast(self.class_token, self.compute_dtype)
            class_token = ops.broadcast_to(class_token, (ops.shape(patches)[0], 1, self.hidden_dim))  # [B, 1, D]
            patches = ops.concatenate([class_token, patches], axis=1)  # [B, P + 1, D]
        return patches + self.position_embedding(patches)

    def compute_output_shape(self, input_shape):
        patch_height, patch_width = self._patch_hw()
        height, width = input_shape[1], input_shape[2]
        num_patches = None
        if height is not None and width is not None:
            num_patches = (height // patch_height) * (width // patch_width) + int(self.use_class_token)
        return (input_shape[0], num_patches, self.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "patch_size": self.patch_size,
                "hidden_dim": self.hidden_dim,
                "use_class_token": self.use_class_token,
                "stem_filters": self.stem_filters,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
            }
        )
        return config

    def _patch_hw(self):
        if isinstance(self.patch_size, tuple):
            return self.patch_size
        return (self.patch_size, self.patch_size)


def _is_positive_int(value):
    return not isinstance(value, bool) and isinstance(value, numbers.Integral) and value > 0
