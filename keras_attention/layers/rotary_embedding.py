"""Rotary position embedding (RoPE)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_attention")
class RotaryEmbedding(keras.layers.Layer):
    """Rotary position embedding (RoFormer), applied to queries or keys.

    Rotates each pair of features `(i, i + H/2)` of the vector at position `p`
    by the angle `p * theta_i / scaling_factor`, with
    `theta_i = max_wavelength ** (-2i / H)`. Applied to both queries and keys
    before the dot product, it makes their score depend on the content and
    on the *offset* between the positions only, not on the absolute
    positions, and it has no weights, so it serves any length. Use it on the
    `(B, T, N, H)` projections inside attention, or on a `(B, T, D)` tensor.
    The values equal `keras_hub.layers.RotaryEmbedding` with its default
    (`"linear"`) scaling. The angles are computed in float32 and cast to the
    compute dtype.

    Args:
        max_wavelength: float. The longest wavelength of the rotations.
            Defaults to `10000`.
        scaling_factor: float. Positions are divided by it: above 1 it
            stretches the trained range of positions over longer sequences
            (linear position interpolation). Defaults to `1.0`.
        sequence_axis: int. The sequence axis of the input. Defaults to `1`.
        feature_axis: int. The feature axis of the input, of even size.
            Defaults to `-1`.
        **kwargs: other arguments of `keras.layers.Layer`, such as `name` and
            `dtype`.

    Call arguments:
        inputs: a tensor with a sequence and an (even) feature axis, usually
            `(B, T, N, H)` or `(B, T, D)`.
        start_index: int or scalar integer tensor. Absolute position of the
            first of the `T` inputs, for cached decoding where one step sees
            only the new tokens. Defaults to `0`.

    Returns:
        The rotated input, of its shape, in the layer's compute dtype.

    Example:

    >>> import numpy as np
    >>> import keras
    >>> from keras_attention.layers import RotaryEmbedding
    >>> query = np.ones((2, 6, 4, 8), dtype="float32")  # (B, T, N, H)
    >>> rotated = RotaryEmbedding()(query)
    >>> tuple(rotated.shape)
    (2, 6, 4, 8)
    >>> # Position 0 is not rotated; rotations keep the norm.
    >>> bool(np.allclose(keras.ops.convert_to_numpy(rotated)[:, 0], 1.0))
    True
    >>> norms = np.linalg.norm(keras.ops.convert_to_numpy(rotated), axis=-1)
    >>> bool(np.allclose(norms, np.sqrt(8), atol=1e-5))
    True

    References:
        - [Su et al., 2021](https://arxiv.org/abs/2104.09864)
        - [Chen et al., 2023](https://arxiv.org/abs/2306.15595) (position
          interpolation, `scaling_factor`)
    """

    def __init__(
        self,
        max_wavelength=10000,
        scaling_factor=1.0,
        sequence_axis=1,
        feature_axis=-1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(max_wavelength, (int, float)) or max_wavelength <= 1:
            raise ValueError(
                "`max_wavelength` must be a number greater than 1. "
                f"Received: max_wavelength={max_wavelength}"
            )
        if not isinstance(scaling_factor, (int, float)) or scaling_factor <= 0:
            raise ValueError(
                "`scaling_factor` must be a positive number (1.0 leaves positions "
                f"unscaled). Received: scaling_factor={scaling_factor}"
            )
        if not isinstance(sequence_axis, int) or not isinstance(feature_axis, int):
            raise ValueError(
                "`sequence_axis` and `feature_axis` must be integers. Received: "
                f"sequence_axis={sequence_axis}, feature_axis={feature_axis}"
            )
        self.max_wavelength = max_wavelength
        self.scaling_factor = scaling_factor
        self.sequence_axis = sequence_axis
        self.feature_axis = feature_axis
        self.supports_masking = True

    def build(self, input_shape):
        sequence_axis, feature_axis = self._normalize_axes(len(input_shape))
        hidden_dim = input_shape[feature_axis]
        if hidden_dim is None or hidden_dim % 2:
            raise ValueError(
                "RotaryEmbedding rotates pairs of features, so the feature axis "
                f"(axis {self.feature_axis}) must have a known, even size. Received: "
                f"input_shape={tuple(input_shape)}"
            )
        self.built = True

    def call(self, inputs, start_index=0):
        rank = len(inputs.shape)
        sequence_axis, feature_axis = self._normalize_axes(rank)
        x = ops.moveaxis(inputs, (feature_axis, sequence_axis), (-1, 1))  # [B, T, ..., H]
        hidden_dim = x.shape[-1]
        sequence_length = ops.shape(x)[1]

        positions = ops.cast(ops.arange(sequence_length), "float32")
        positions = positions + ops.cast(start_index, "float32")  # [T]
        exponents = ops.arange(0, hidden_dim, 2, dtype="float32") / hidden_dim
        inverse_frequencies = ops.power(float(self.max_wavelength), -exponents)
        inverse_frequencies = inverse_frequencies / float(self.scaling_factor)  # [H/2]
        angles = ops.einsum("t,f->tf", positions, inverse_frequencies)  # [T, H/2]
        angles = ops.concatenate([angles, angles], axis=-1)  # [T, H]
        # Broadcast over the batch and every axis between T and H (heads).
        angles = ops.reshape(angles, (1, -1) + (1,) * (rank - 3) + (hidden_dim,))  # [1, T, ..., H]
        cos = ops.cast(ops.cos(angles), self.compute_dtype)
        sin = ops.cast(ops.sin(angles), self.compute_dtype)

        # Rotating the pair (x1, x2) by a gives (x1 cos a - x2 sin a, x2 cos a + x1 sin a).
        x1, x2 = ops.split(x, 2, axis=-1)  # [B, T, ..., H/2] each
        half_rotated = ops.concatenate([-x2, x1], axis=-1)  # [B, T, ..., H]
        outputs = x * cos + half_rotated * sin
        return ops.moveaxis(outputs, (-1, 1), (feature_axis, sequence_axis))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "max_wavelength": self.max_wavelength,
                "scaling_factor": self.scaling_factor,
                "sequence_axis": self.sequence_axis,
                "feature_axis": self.feature_axis,
            }
        )
        return config

    def _normalize_axes(self, rank):
        sequence_axis = self.sequence_axis + rank if self.sequence_axis < 0 else self.sequence_axis
        feature_axis = self.feature_axis + rank if self.feature_axis < 0 else self.feature_axis
        if rank < 3 or not (0 < sequence_axis < rank) or not (0 < feature_axis < rank):
            raise ValueError(
                "RotaryEmbedding expects inputs of shape (B, T, D) or (B, T, N, H) "
                "with `sequence_axis` and `feature_axis` in range and not the batch "
                f"axis 0. Received: an input of rank {rank}, "
                f"sequence_axis={self.sequence_axis}, feature_axis={self.feature_axis}"
            )
        if sequence_axis == feature_axis:
            raise ValueError(
                "`sequence_axis` and `feature_axis` must be different axes. Received: "
                f"sequence_axis={self.sequence_axis}, feature_axis={self.feature_axis} "
                f"for an input of rank {rank}"
            )
        return sequence_axis, feature_axis
