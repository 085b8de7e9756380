"""The fixed sine/cosine position encoding of the original Transformer."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_attention")
class SinusoidalPositionEncoding(keras.layers.Layer):
    """Fixed sinusoidal position encoding (Vaswani et al., 2017).

    Returns, for an input of shape `(B, T, D)`, the encoding of its positions:
    a tensor of the same shape to add to the input. Feature `2i` of position
    `p` is `sin(p / max_wavelength ** (2i / D))` and feature `2i + 1` is
    `cos(p / max_wavelength ** (2i / D))`, the same values as
    `keras_hub.layers.SinePositionEncoding`. The encoding has no weights and
    serves any sequence length; use it where inputs vary in length (speech
    frames) or exceed any length seen in training. The angles are computed in
    float32 and cast to the layer's compute dtype: in float16 a position
    above 2048 could not even be represented exactly.

    Args:
        max_wavelength: float. The longest wavelength of the sine and cosine
            curves. Defaults to `10000`.
        **kwargs: other arguments of `keras.layers.Layer`, such as `name` and
            `dtype`.

    Call arguments:
        inputs: a tensor of shape `(..., T, D)`, usually `(B, T, D)`. Only its
            shape and dtype are used.
        start_index: int or scalar integer tensor. Absolute position of the
            first of the `T` positions, for cached decoding where one step
            sees only the new tokens. Defaults to `0`.

    Returns:
        The encoding, of the input's shape, in the layer's compute dtype.

    Example:

    >>> import numpy as np
    >>> import keras
    >>> from keras_attention.layers import SinusoidalPositionEncoding
    >>> embeddings = np.zeros((2, 5, 4), dtype="float32")
    >>> encoding = SinusoidalPositionEncoding()(embeddings)
    >>> tuple(encoding.shape)
    (2, 5, 4)
    >>> keras.ops.convert_to_numpy(encoding)[0, 1].round(4).tolist()
    [0.8415, 0.5403, 0.01, 1.0]

    References:
        - [Vaswani et al., 2017](https://arxiv.org/abs/1706.03762)
    """

    def __init__(self, max_wavelength=10000, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(max_wavelength, (int, float)) or max_wavelength <= 1:
            raise ValueError(
                "`max_wavelength` must be a number greater than 1. "
                f"Received: max_wavelength={max_wavelength}"
            )
        self.max_wavelength = max_wavelength
        self.supports_masking = True

    def build(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(
                "SinusoidalPositionEncoding expects inputs of shape (B, T, D) "
                f"with a sequence and a feature axis. Received: input_shape={tuple(input_shape)}"
            )
        self.built = True

    def call(self, inputs, start_index=0):
        shape = ops.shape(inputs)
        sequence_length, hidden_dim = shape[-2], shape[-1]
        positions = ops.cast(ops.arange(sequence_length), "float32")
        positions = positions + ops.cast(start_index, "float32")  # [T]
        # Features 2i and 2i + 1 share the timescale max_wavelength ** (-2i / D).
        feature_index = ops.arange(hidden_dim)  # [D]
        exponents = ops.cast(2 * (feature_index // 2), "float32") / ops.cast(hidden_dim, "float32")
        timescales = ops.power(ops.cast(1.0 / self.max_wavelength, "float32"), exponents)  # [D]
        angles = ops.einsum("t,d->td", positions, timescales)  # [T, D]
        is_cosine = ops.equal(feature_index % 2, 1)  # [D]
        encoding = ops.where(is_cosine, ops.cos(angles), ops.sin(angles))  # [T, D]
        encoding = ops.cast(encoding, self.compute_dtype)
        return ops.broadcast_to(encoding, shape)  # [..., T, D]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"max_wavelength": self.max_wavelength})
        return config
