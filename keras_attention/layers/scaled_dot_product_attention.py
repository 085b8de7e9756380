"""Scaled dot-product attention without projections."""

import keras
from keras import ops

from keras_attention.layers.layer_utils import validate_shape
from keras_attention.ops.masks import compute_attention_mask
from keras_attention.ops.masks import mask_fill_value
from keras_attention.ops.masks import merge_masks


class BaseAttention(keras.layers.Layer):
    """Score, mask, softmax and weighted sum: what single-head attentions share.

    Subclasses create their scoring weights in `build_scores(query_dim,
    key_dim)` and compute the `(B, T, S)` logits in `compute_logits(query,
    key)`; everything else (masks, single-state queries, the float32
    softmax, dropout on the attention scores, output shapes) lives here, so
    that `ScaledDotProductAttention`, `LuongAttention` and `BahdanauAttention`
    treat masks identically. Private to the package (not exported).

    Args:
        dropout: float. Fraction of the attention scores to drop during
            training. Defaults to `0.0`.
        seed: int. Seed of the dropout. Defaults to `None`.
        **kwargs: base layer arguments, such as `name` and `dtype`.
    """

    def __init__(self, dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(
                "`dropout` must be a float in [0, 1). "
                f"Received: dropout={dropout!r}"
            )
        self.dropout = dropout
        self.seed = seed
        self.supports_masking = True

    def build(self, query_shape, value_shape, key_shape=None):
        key_shape = value_shape if key_shape is None else key_shape
        if len(query_shape) not in (2, 3):
            raise ValueError(
                f"{self.__class__.__name__}: `query` must be a sequence "
                "(B, T, D) or a single state (B, D). Received: "
                f"query.shape={tuple(query_shape)}"
            )
        for name, shape in (("value", value_shape), ("key", key_shape)):
            if len(shape) != 3:
                raise ValueError(
                    f"{self.__class__.__name__}: `{name}` must have shape "
                    f"(B, S, D). Received: {name}.shape={tuple(shape)}"
                )
        if None not in (key_shape[1], value_shape[1]) and key_shape[1] != value_shape[1]:
            raise ValueError(
                f"{self.__class__.__name__}: `key` and `value` must have the "
                f"same length S. Received: key.shape={tuple(key_shape)}, "
                f"value.shape={tuple(value_shape)}"
            )
        self.build_scores(query_shape[-1], key_shape[-1])
        self.attention_dropout = keras.layers.Dropout(
            self.dropout,
            seed=self.seed,
            dtype=self.dtype_policy,
            name="attention_dropout",
        )
        self.attention_dropout.build((None, None, None))

    def build_scores(self, query_dim, key_dim):
        """Create the scoring weights; `query_dim` and `key_dim` are `D`."""

    def compute_logits(self, query, key):
        """Return the `(B, T, S)` logits of `query [B, T, D]` against `key [B, S, D]`."""
        raise NotImplementedError

    def call(
        self,
        query,
        value,
        key=None,
        query_padding_mask=None,
        key_padding_mask=None,
        attention_mask=None,
        use_causal_mask=False,
        return_attention_scores=False,
        training=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
    ):
        key = value if key is None else key
        single_state = len(query.shape) == 2
        if single_state:
            if use_causal_mask or query_padding_mask is not None:
                raise ValueError(
                    f"{self.__class__.__name__}: a single-state query (B, D) "
                    "takes neither `use_causal_mask` nor `query_padding_mask`; "
                    "mask the encoder positions with `key_padding_mask`. "
                    f"Received: query.shape={tuple(query.shape)}"
                )
            query = ops.expand_dims(query, 1)  # [B, 1, D]
            query_mask = None

        batch_size, query_length = query.shape[0], query.shape[1]
        key_length = key.shape[1]
        key_padding_mask = validate_shape(
            "key_padding_mask", key_padding_mask, (batch_size, key_length), "(B, S)"
        )
        query_padding_mask = validate_shape(
            "query_padding_mask", query_padding_mask, (batch_size, query_length), "(B, T)"
        )
        attention_mask = validate_shape(
            "attention_mask", attention_mask, (batch_size, query_length, key_length), "(B, T, S)"
        )
        # An explicit padding mask wins over the implicit Keras mask.
        if key_padding_mask is None:
            key_padding_mask = merge_masks(value_mask, key_mask)  # [B, S]
        if query_padding_mask is None:
            query_padding_mask = query_mask  # [B, T]
        mask = compute_attention_mask(
            ops.shape(query)[1],
            ops.shape(key)[1],
            query_padding_mask=query_padding_mask,
            key_padding_mask=key_padding_mask,
            attention_mask=attention_mask,
            use_causal_mask=use_causal_mask,
        )  # [B|1, T|1, S] or None

        logits = self.compute_logits(query, key)  # [B, T, S]
        attention_scores = masked_softmax(logits, mask)  # [B, T, S], float32
        attention_scores = ops.cast(attention_scores, self.compute_dtype)
        dropped_scores = self.attention_dropout(attention_scores, training=training)
        outputs = ops.einsum("bts,bsd->btd", dropped_scores, value)  # [B, T, Dv]

        if single_state:
            outputs = ops.squeeze(outputs, 1)  # [B, Dv]
            attention_scores = ops.squeeze(attention_scores, 1)  # [B, S]
        if return_attention_scores:
            return outputs, attention_scores
        return outputs

    def compute_output_shape(self, query_shape, value_shape, key_shape=None):
        return (*query_shape[:-1], value_shape[-1])

    def compute_output_spec(self, query, value, key=None, return_attention_scores=False, **kwargs):
        key = value if key is None else key
        output_shape = self.compute_output_shape(query.shape, value.shape, key.shape)
        outputs = keras.KerasTensor(output_shape, dtype=self.compute_dtype)
        if not return_attention_scores:
            return outputs
        scores_shape = (*query.shape[:-1], key.shape[1])  # [B, T, S] or [B, S]
        return outputs, keras.KerasTensor(scores_shape, dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update({"dropout": self.dropout, "seed": self.seed})
        return config


def masked_softmax(logits, mask):
    """Softmax over the last axis in float32; rows with nothing visible give zeros.

    Args:
        logits: tensor `(B, T, S)`.
        mask: boolean tensor broadcastable to `(B, T, S)`, True where the key
            is visible, or `None`.

    Returns:
        A float32 tensor `(B, T, S)`.
    """
    logits = ops.cast(logits, "float32")
    if mask is None:
        return ops.softmax(logits, axis=-1)
    logits = ops.where(mask, logits, mask_fill_value("float32"))
    scores = ops.softmax(logits, axis=-1)
    # A row with no visible key would otherwise spread uniformly over padding.
    return ops.where(ops.any(mask, axis=-1, keepdims=True), scores, 0.0)


@keras.saving.register_keras_serializable(package="keras_attention")
class ScaledDotProductAttention(BaseAttention):
    """Scaled dot-product attention over a query, keys and values, no projections.

    Computes `softmax(query . key^T * scale) . value` for one head, like
    `keras.layers.Attention(score_mode="dot")` with the scaling of
    Vaswani et al.: `scale` defaults to `1 / sqrt(D)`. With `scale=1.0` it
    gives the same results as `keras.layers.Attention(use_scale=use_scale)`.
    Use it where the inputs are already projected (a decoder state attending
    to encoder outputs, a pooling query); `MultiHeadAttention` adds the
    projections and heads.

    The query may be a sequence `(B, T, D)` or a single state `(B, D)` (one
    step of an RNN decoder), in which case the outputs are `(B, Dv)` and the
    scores `(B, S)`. The softmax runs in float32; a query with no visible key
    gets zeros, not NaN.

    Args:
        scale: float. Fixed factor on the logits. Defaults to `None`, which
            means `1 / sqrt(D)` with `D` the key size.
        use_scale: bool. Also multiply the logits by a learned scalar,
            initialized to `1` (as `keras.layers.Attention`). Defaults to
            `False`.
        dropout: float. Fraction of the attention scores dropped during
            training. Defaults to `0.0`.
        seed: int. Seed of the dropout. Defaults to `None`.
        **kwargs: base layer arguments, such as `name` and `dtype`.

    Call arguments:
        query: tensor `(B, T, D)`, or `(B, D)` for a single decoder state.
        value: tensor `(B, S, Dv)`.
        key: optional tensor `(B, S, D)`. Defaults to `value`.
        query_padding_mask: optional boolean `(B, T)`, True for real queries;
            padded queries give zero outputs. Defaults to the Keras mask of
            `query`.
        key_padding_mask: optional boolean `(B, S)`, True for real keys.
            Defaults to the Keras masks of `value` and `key`, merged.
        attention_mask: optional boolean `(B, T, S)`, True where query `t`
            may attend key `s`. Merged with the padding masks.
        use_causal_mask: bool. Query `t` attends keys `s <= t` only.
            Defaults to `False`.
        return_attention_scores: bool. Also return the attention scores (the
            softmax, before dropout). Defaults to `False`.
        training: bool. Apply dropout. Defaults to `None`.

    Returns:
        The outputs `(B, T, Dv)` (or `(B, Dv)`) and, with
        `return_attention_scores=True`, the scores `(B, T, S)` (or `(B, S)`).
        The Keras mask of `query` passes on to the outputs.

    Example:

    >>> import numpy as np
    >>> from keras_attention.layers import ScaledDotProductAttention
    >>> query = np.random.rand(2, 4, 8).astype("float32")
    >>> value = np.random.rand(2, 6, 8).astype("float32")
    >>> layer = ScaledDotProductAttention()
    >>> outputs, scores = layer(query, value, return_attention_scores=True)
    >>> tuple(outputs.shape), tuple(scores.shape)
    ((2, 4, 8), (2, 4, 6))

    References:
        - [Vaswani et al., 2017](https://arxiv.org/abs/1706.03762)
    """

    def __init__(self, scale=None, use_scale=False, dropout=0.0, seed=None, **kwargs):
        super().__init__(dropout=dropout, seed=seed, **kwargs)
        if scale is not None and (
            isinstance(scale, bool) or not isinstance(scale, (int, float)) or scale <= 0
        ):
            raise ValueError(
                "`scale` must be a positive float or None (for 1 / sqrt(D)). "
                f"Received: scale={scale!r}"
            )
        self.scale = scale
        self.use_scale = use_scale

    def build_scores(self, query_dim, key_dim):
        if query_dim != key_dim:
            raise ValueError(
                "ScaledDotProductAttention needs `query` and `key` of the same "
                f"size D. Received: query size {query_dim}, key size {key_dim}. "
                "Project them to one size first, or use LuongAttention("
                "score='general')."
            )
        self.fixed_scale = self.scale if self.scale is not None else 1.0 / float(key_dim) ** 0.5
        self.learned_scale = None
        if self.use_scale:
            self.learned_scale = self.add_weight(
                name="learned_scale", shape=(), initializer="ones", trainable=True
            )

    def compute_logits(self, query, key):
        # Scale the query, not the logits: the product stays in range in float16.
        query = ops.multiply(query, ops.cast(self.fixed_scale, query.dtype))
        logits = ops.einsum("btd,bsd->bts", query, key)  # [B, T, S]
        if self.learned_scale is not None:
            logits = ops.multiply(logits, ops.cast(self.learned_scale, logits.dtype))
        return logits

    def get_config(self):
        config = super().get_config()
        config.update({"scale": self.scale, "use_scale": self.use_scale})
        return config
