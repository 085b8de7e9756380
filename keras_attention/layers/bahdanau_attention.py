"""Additive (Bahdanau) attention."""

import keras
from keras import ops

from keras_attention.layers.layer_utils import clone_initializer
from keras_attention.layers.scaled_dot_product_attention import BaseAttention


@keras.saving.register_keras_serializable(package="keras_attention")
class BahdanauAttention(BaseAttention):
    """Additive attention: `score(q, k) = v^T tanh(W1 q + W2 k)`.

    The attention of Bahdanau et al. for RNN encoder-decoders: the decoder
    state (the query) and each encoder output (the keys) are projected to
    `units`, added, passed through `tanh` and scored by a learned vector `v`;
    the context is the softmax-weighted sum of the values. With `W1 = W2 = I`
    it reduces to `keras.layers.AdditiveAttention`, whose `scale` is `v`.

    The query may be a whole decoder sequence `(B, T, D)` (teacher forcing)
    or a single decoder state `(B, D)` (one decoding step), in which case the
    context is `(B, Dv)` and the attention scores `(B, S)`. Encoder positions
    are masked by `key_padding_mask` or by the Keras mask of the encoder
    outputs (`Embedding(mask_zero=True)` followed by an RNN). The softmax
    runs in float32; a query with no visible key gets a zero context.

    Args:
        units: int. Size of the projections `W1`, `W2` and of `v`.
        dropout: float. Fraction of the attention scores dropped during
            training. Defaults to `0.0`.
        seed: int. Seed of the dropout. Defaults to `None`.
        kernel_initializer: str or initializer. Initializer of `W1`, `W2`
            and `v`. Defaults to `"glorot_uniform"`.
        **kwargs: base layer arguments, such as `name` and `dtype`.

    Call arguments:
        query: tensor `(B, T, Dq)`, or `(B, Dq)` for a single decoder state.
        value: tensor `(B, S, Dv)`, usually the encoder outputs.
        key: optional tensor `(B, S, Dk)`. Defaults to `value`.
        key_padding_mask: optional boolean `(B, S)`, True for real encoder
            positions. Defaults to the Keras masks of `value` and `key`.
        query_padding_mask: optional boolean `(B, T)` (sequence queries
            only); padded queries get a zero context. Defaults to the Keras
            mask of `query`.
        attention_mask: optional boolean `(B, T, S)`, merged with the above.
        use_causal_mask: bool. Sequence queries only. Defaults to `False`.
        return_attention_scores: bool. Also return the attention scores (the
            softmax, before dropout). Defaults to `False`.
        training: bool. Apply dropout. Defaults to `None`.

    Returns:
        The context `(B, T, Dv)` (or `(B, Dv)`) and, with
        `return_attention_scores=True`, the scores `(B, T, S)` (or `(B, S)`).

    Example:

    >>> import numpy as np
    >>> from keras_attention.layers import BahdanauAttention
    >>> encoder_outputs = np.random.rand(2, 6, 8).astype("float32")
    >>> decoder_state = np.random.rand(2, 16).astype("float32")
    >>> padding_mask = np.array([[True] * 6, [True] * 4 + [False] * 2])
    >>> attention = BahdanauAttention(units=10)
    >>> context, scores = attention(
    ...     decoder_state, encoder_outputs, key_padding_mask=padding_mask,
    ...     return_attention_scores=True)
    >>> tuple(context.shape), tuple(scores.shape)
    ((2, 8), (2, 6))

    References:
        - [Bahdanau et al., 2015](https://arxiv.org/abs/1409.0473)
    """

    def __init__(
        self,
        units,
        dropout=0.0,
        seed=None,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(dropout=dropout, seed=seed, **kwargs)
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise ValueError(
                f"`units` must be a positive integer. Received: units={units!r}"
            )
        self.units = units
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build_scores(self, query_dim, key_dim):
        self.query_dense, self.key_dense, self.score_dense = additive_score_layers(
            self, query_dim, key_dim, self.units, self.kernel_initializer
        )

    def compute_logits(self, query, key):
        return additive_logits(query, key, self.query_dense, self.key_dense, self.score_dense)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config


def additive_score_layers(layer, query_dim, key_dim, units, kernel_initializer):
    """Create and build `W1` (query), `W2` (key) and `v` (score) for `layer`.

    Shared by `BahdanauAttention` and `LuongAttention(score="concat")`, whose
    `v^T tanh(W [q; k])` is the same score with `W = [W1, W2]`.
    """
    sublayers = []
    for name, input_dim, output_dim in (
        ("query_dense", query_dim, units),
        ("key_dense", key_dim, units),
        ("score_dense", units, 1),
    ):
        dense = keras.layers.Dense(
            output_dim,
            use_bias=False,
            kernel_initializer=clone_initializer(kernel_initializer),
            dtype=layer.dtype_policy,
            name=name,
        )
        dense.build((None, input_dim))
        sublayers.append(dense)
    return sublayers


def additive_logits(query, key, query_dense, key_dense, score_dense):
    """Return `v^T tanh(W1 q + W2 k)` as `(B, T, S)` logits."""
    query = query_dense(query)  # [B, T, U]
    key = key_dense(key)  # [B, S, U]
    hidden = ops.tanh(ops.expand_dims(query, 2) + ops.expand_dims(key, 1))  # [B, T, S, U]
    return ops.squeeze(score_dense(hidden), -1)  # [B, T, S]

