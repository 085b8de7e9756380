"""Multiplicative (Luong) attention with the dot, general and concat scores."""

import keras
from keras import ops

from keras_attention.layers.bahdanau_attention import additive_logits
from keras_attention.layers.bahdanau_attention import additive_score_layers
from keras_attention.layers.layer_utils import clone_initializer
from keras_attention.layers.scaled_dot_product_attention import BaseAttention

SCORES = ("dot", "general", "concat")


@keras.saving.register_keras_serializable(package="keras_attention")
class LuongAttention(BaseAttention):
    """Luong attention with the `"dot"`, `"general"` or `"concat"` score.

    The global attention of Luong et al. for RNN encoder-decoders, scoring the
    decoder state `q` (the query) against each encoder output `k`:
    - `"dot"`: `q . k` (`q` and `k` of the same size, no weights);
    - `"general"`: `q^T W k`, with `W` of shape `(Dq, Dk)`;
    - `"concat"`: `v^T tanh(W [q; k])`, computed as `v^T tanh(W1 q + W2 k)`
      with `W = [W1, W2]` (the score of `BahdanauAttention`).
    The context is the softmax-weighted sum of the values. Luong's attentional
    state `tanh(Wc [context; q])` is one `Dense(activation="tanh")` away, on
    the concatenation, and is left to the model.

    The query may be a whole decoder sequence `(B, T, D)` or a single decoder
    state `(B, D)`, in which case the context is `(B, Dv)` and the scores
    `(B, S)`. Encoder positions are masked by `key_padding_mask` or by the
    Keras mask of the encoder outputs. The softmax runs in float32; a query
    with no visible key gets a zero context.

    Args:
        score: str. One of `"dot"`, `"general"`, `"concat"`. Defaults to
            `"dot"`.
        units: int. Size of `W1`, `W2` and `v` of the `"concat"` score (the
            only score that uses it). Defaults to `None`, which means the key
            size.
        dropout: float. Fraction of the attention scores dropped during
            training. Defaults to `0.0`.
        seed: int. Seed of the dropout. Defaults to `None`.
        kernel_initializer: str or initializer. Initializer of the score
            weights. Defaults to `"glorot_uniform"`.
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
    >>> from keras_attention.layers import LuongAttention
    >>> encoder_outputs = np.random.rand(2, 6, 8).astype("float32")
    >>> decoder_outputs = np.random.rand(2, 3, 16).astype("float32")
    >>> attention = LuongAttention(score="general")
    >>> context, scores = attention(
    ...     decoder_outputs, encoder_outputs, return_attention_scores=True)
    >>> tuple(context.shape), tuple(scores.shape)
    ((2, 3, 8), (2, 3, 6))

    References:
        - [Luong et al., 2015](https://arxiv.org/abs/1508.04025)
    """

    def __init__(
        self,
        score="dot",
        units=None,
        dropout=0.0,
        seed=None,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(dropout=dropout, seed=seed, **kwargs)
        if score not in SCORES:
            raise ValueError(f"Unknown score: {score!r}. Expected one of {SCORES}.")
        if units is not None:
            if score != "concat":
                raise ValueError(
                    f"`units` is used by score='concat' only. Received: "
                    f"units={units!r} with score={score!r}; leave units=None."
                )
            if isinstance(units, bool) or not isinstance(units, int) or units < 1:
                raise ValueError(
                    f"`units` must be a positive integer or None. Received: units={units!r}"
                )
        self.score = score
        self.units = units
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build_scores(self, query_dim, key_dim):
        if self.score == "dot":
            if query_dim != key_dim:
                raise ValueError(
                    "LuongAttention(score='dot') needs `query` and `key` of the "
                    f"same size. Received: query size {query_dim}, key size "
                    f"{key_dim}. Use score='general' or score='concat'."
                )
        elif self.score == "general":
            # q^T W k = (q W) . k: W projects the query (one vector per
            # decoding step) rather than every encoder position.
            self.query_dense = keras.layers.Dense(
                key_dim,
                use_bias=False,
                kernel_initializer=clone_initializer(self.kernel_initializer),
                dtype=self.dtype_policy,
                name="query_dense",
            )
            self.query_dense.build((None, query_dim))
        else:
            units = key_dim if self.units is None else self.units
            self.query_dense, self.key_dense, self.score_dense = additive_score_layers(
                self, query_dim, key_dim, units, self.kernel_initializer
            )

    def compute_logits(self, query, key):
        if self.score == "dot":
            return ops.einsum("btd,bsd->bts", query, key)  # [B, T, S]
        if self.score == "general":
            query = self.query_dense(query)  # [B, T, Dk]
            return ops.einsum("btd,bsd->bts", query, key)  # [B, T, S]
        return additive_logits(query, key, self.query_dense, self.key_dense, self.score_dense)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "score": self.score,
                "units": self.units,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
