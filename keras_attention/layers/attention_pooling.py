"""Attention pooling: a sequence to one vector with a learned query."""

import keras
from keras import ops

from keras_attention.layers.layer_utils import validate_shape
from keras_attention.ops.attention import dot_product_attention
from keras_attention.ops.masks import compute_attention_mask


@keras.saving.register_keras_serializable(package="keras_attention")
class AttentionPooling(keras.layers.Layer):
    """Pool a sequence `(B, T, D)` into one vector `(B, D)` with a learned query.

    Each of `num_heads` heads holds a learned query of size `H = D / N` and
    takes a softmax-weighted average of its `H` features over the sequence,
    scored by `query . x_t / sqrt(H)`; the heads' averages are concatenated.
    There are no projections: the output stays in the input's space, and a
    zero query (the default initialization) starts as mean pooling. Padded
    positions get zero weight, so padding changes nothing; a sequence with no
    real position pools to zeros.

    Args:
        num_heads: int. Number of heads `N`; must divide `D`. Defaults to `1`.
        query_initializer: str or initializer. Initializer of the `(N, H)`
            queries. Defaults to `"zeros"` (mean pooling at the start).
        **kwargs: base layer arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: tensor `(B, T, D)`.
        padding_mask: optional boolean `(B, T)`, True for real positions.
            Defaults to the Keras mask of `inputs`.
        return_attention_scores: bool. Also return the pooling weights.
            Defaults to `False`.

    Returns:
        The pooled vectors `(B, D)` and, with `return_attention_scores=True`,
        the weights `(B, N, T)`, which sum to 1 over `T` (0 for a sequence
        with no real position).

    Example:

    >>> import numpy as np
    >>> from keras_attention.layers import AttentionPooling
    >>> inputs = np.random.rand(2, 5, 8).astype("float32")
    >>> padding_mask = np.array([[True] * 5, [True] * 3 + [False] * 2])
    >>> pooled, weights = AttentionPooling(num_heads=2)(
    ...     inputs, padding_mask=padding_mask, return_attention_scores=True)
    >>> tuple(pooled.shape), tuple(weights.shape)
    ((2, 8), (2, 2, 5))
    """

    def __init__(self, num_heads=1, query_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1:
            raise ValueError(
                f"`num_heads` must be a positive integer. Received: num_heads={num_heads!r}"
            )
        self.num_heads = num_heads
        self.query_initializer = keras.initializers.get(query_initializer)
        self.supports_masking = True

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(
                "AttentionPooling expects inputs of shape (B, T, D) with a known "
                f"D. Received: inputs.shape={tuple(input_shape)}"
            )
        hidden_dim = input_shape[-1]
        if hidden_dim % self.num_heads != 0:
            raise ValueError(
                f"`num_heads` must divide the feature size D. Received: "
                f"num_heads={self.num_heads}, D={hidden_dim} "
                f"(inputs.shape={tuple(input_shape)})"
            )
        self.head_dim = hidden_dim // self.num_heads
        self.query = self.add_weight(
            name="query",
            shape=(self.num_heads, self.head_dim),
            initializer=self.query_initializer,
            trainable=True,
        )

    def call(self, inputs, padding_mask=None, return_attention_scores=False, mask=None):
        # An explicit padding mask wins over the implicit Keras mask.
        padding_mask = mask if padding_mask is None else padding_mask
        padding_mask = validate_shape(
            "padding_mask", padding_mask, (inputs.shape[0], inputs.shape[1]), "(B, T)"
        )
        batch_size, sequence_length = ops.shape(inputs)[0], ops.shape(inputs)[1]
        values = ops.reshape(
            inputs, (batch_size, sequence_length, self.num_heads, self.head_dim)
        )  # [B, T, N, H]
        query = ops.cast(self.query, self.compute_dtype)
        query = ops.broadcast_to(
            query[None, None], (batch_size, 1, self.num_heads, self.head_dim)
        )  # [B, 1, N, H]
        attention_mask = compute_attention_mask(
            1, sequence_length, key_padding_mask=padding_mask
        )  # [B, 1, T] or None
        pooled, scores = dot_product_attention(
            query,
            values,
            values,
            mask=attention_mask,
            implementation="plain",
            return_attention_scores=True,
        )  # [B, 1, N, H], [B, N, 1, T]
        pooled = ops.reshape(pooled, (batch_size, self.num_heads * self.head_dim))  # [B, D]
        if return_attention_scores:
            return pooled, ops.squeeze(scores, 2)  # [B, N, T]
        return pooled

    def compute_mask(self, inputs, mask=None):
        # The pooled vector has no sequence axis left to mask.
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def compute_output_spec(self, inputs, return_attention_scores=False, **kwargs):
        output_shape = self.compute_output_shape(inputs.shape)
        pooled = keras.KerasTensor(output_shape, dtype=self.compute_dtype)
        if not return_attention_scores:
            return pooled
        scores_shape = (inputs.shape[0], self.num_heads, inputs.shape[1])  # [B, N, T]
        return pooled, keras.KerasTensor(scores_shape, dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "query_initializer": keras.initializers.serialize(self.query_initializer),
            }
        )
        return config
