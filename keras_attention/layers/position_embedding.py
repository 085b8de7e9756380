"""A learned absolute position embedding."""

import numbers

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_attention")
class PositionEmbedding(keras.layers.Layer):
    """Learned absolute position embedding (BERT, GPT-2, ViT).

    Holds one trainable vector per position, a `(sequence_length, D)` table,
    and returns, for an input of shape `(B, T, D)`, the vectors of positions
    `start_index ... start_index + T - 1` broadcast to the input's shape, to
    add to the input. Inputs may be shorter than `sequence_length`, never
    longer: a learned table has nothing for a position it has never had a
    row for (use `SinusoidalPositionEncoding` or `RotaryEmbedding` there).
    The same arguments and weight as `keras_hub.layers.PositionEmbedding`.

    Args:
        sequence_length: int. The number of positions, the longest sequence
            the layer serves.
        initializer: str or `keras.initializers.Initializer`. Initializer of
            the table. Defaults to `"glorot_uniform"`.
        **kwargs: other arguments of `keras.layers.Layer`, such as `name` and
            `dtype`.

    Call arguments:
        inputs: a tensor of shape `(..., T, D)`, usually `(B, T, D)`. Only its
            shape is used.
        start_index: int or scalar integer tensor. Position of the first of
            the `T` inputs, for cached decoding where one step sees only the
            new tokens. Defaults to `0`. A Python int is checked against
            `sequence_length`; a tensor cannot be, so keep
            `start_index + T <= sequence_length` yourself.

    Returns:
        The position embeddings, of the input's shape, in the layer's compute
        dtype.

    Example:

    >>> import numpy as np
    >>> from keras_attention.layers import PositionEmbedding
    >>> embeddings = np.zeros((2, 5, 8), dtype="float32")
    >>> layer = PositionEmbedding(sequence_length=16)
    >>> tuple(layer(embeddings).shape)
    (2, 5, 8)
    >>> tuple(layer.position_embeddings.shape)
    (16, 8)

    References:
        - [Devlin et al., 2019](https://arxiv.org/abs/1810.04805)
    """

    def __init__(self, sequence_length, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if isinstance(sequence_length, bool) or not isinstance(sequence_length, numbers.Integral) or sequence_length < 1:
            raise ValueError(
                "`sequence_length` must be a positive integer, the number of "
                f"positions. Received: sequence_length={sequence_length}"
            )
        self.sequence_length = int(sequence_length)
        self.initializer = keras.initializers.get(initializer)
        self.supports_masking = True

    def build(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(
                "PositionEmbedding expects inputs of shape (B, T, D) with a "
                f"known feature size D. Received: input_shape={tuple(input_shape)}"
            )
        _check_length(input_shape[-2], 0, self.sequence_length)
        hidden_dim = input_shape[-1]
        self.position_embeddings = self.add_weight(
            name="embeddings",
            shape=(self.sequence_length, hidden_dim),
            initializer=self.initializer,
            trainable=True,
        )
        self.built = True

    def call(self, inputs, start_index=0):
        shape = ops.shape(inputs)
        sequence_length, hidden_dim = shape[-2], shape[-1]
        _check_length(inputs.shape[-2], start_index, self.sequence_length)
        table = ops.cast(self.position_embeddings, self.compute_dtype)
        positions = ops.slice(table, (start_index, 0), (sequence_length, hidden_dim))  # [T, D]
        return ops.broadcast_to(positions, shape)  # [..., T, D]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sequence_length": self.sequence_length,
                "initializer": keras.initializers.serialize(self.initializer),
            }
        )
        return config


def _check_length(length, start_index, sequence_length):
    """Raise if positions `start_index ... start_index + length - 1` overrun the table."""
    if not isinstance(start_index, numbers.Integral):
        return  # A tensor: only known at run time.
    if start_index < 0:
        raise ValueError(f"`start_index` must be non-negative. Received: start_index={start_index}")
    if length is not None and start_index + length > sequence_length:
        raise ValueError(
            f"PositionEmbedding has {sequence_length} positions (`sequence_length`), "
            f"but received a sequence of length {length} starting at position "
            f"{start_index}. Truncate the inputs to {sequence_length} positions "
            "or build the layer with a larger `sequence_length`."
        )
