"""Multi-head attention: a drop-in for `keras.layers.MultiHeadAttention`."""

import keras
from keras import ops

from keras_attention.layers.layer_utils import clone_initializer
from keras_attention.layers.layer_utils import validate_shape
from keras_attention.ops.attention import cached_dot_product_attention
from keras_attention.ops.attention import dot_product_attention
from keras_attention.ops.masks import compute_attention_mask
from keras_attention.ops.masks import merge_masks
from keras_attention.ops.masks import sliding_window_mask

ATTENTION_IMPLEMENTATIONS = (None, "plain", "blocked", "fused")

# The one attention axis supported, the sequence axis of `(B, T, dim)`
# inputs, in the spellings keras accepts for it.
SEQUENCE_AXIS = (None, 1, -2, (1,), (-2,), [1], [-2])


@keras.saving.register_keras_serializable(package="keras_attention")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head attention, with grouped key/value heads and a decoding cache.

    A drop-in for `keras.layers.MultiHeadAttention` (Vaswani et al., 2017):
    the same constructor arguments, the same call arguments, and the same
    weights in the same order (`query`, `key`, [`gate`,] `value`,
    `attention_output` `EinsumDense` sublayers), so that
    `layer.set_weights(keras_layer.get_weights())` gives the same outputs and
    attention scores. The softmax runs in float32 whatever the dtype policy,
    and a query with no visible key gets zeros, never NaN.

    On top of keras's layer:
    - `num_key_value_heads`: grouped-query attention (Ainslie et al., 2023);
      the key and value projections have `K` heads, each serving
      `num_heads // K` query heads. `K = 1` is multi-query attention
      (Shazeer, 2019). Defaults to `num_heads`, plain multi-head attention.
    - `attention_implementation="blocked"`: walk the keys in blocks with an
      online softmax, so no `(T, S)` matrix is held; for long sequences.
      `"fused"`: the backend's fused kernel through
      `keras.ops.dot_product_attention` (cuDNN flash attention under JAX on
      a GPU, which the default picks there for float16 and bfloat16).
    - a key/value cache for incremental decoding, with the call convention
      of `keras_hub.layers.CachedMultiHeadAttention`. A step writes the new
      keys and values with one update of the cache and, for one query
      token, attends over it in place, without copying its key and value
      halves.

    Inputs are sequences `(B, T, dim)`; attention runs over the sequence
    axis only (for attention over several axes of images or videos, use
    `keras.layers.MultiHeadAttention`).

    Args:
        num_heads: int. Number of attention heads `N`.
        key_dim: int. Size `H` of each query and key head.
        value_dim: int. Size of each value head. Defaults to `None`, which
            means `key_dim`.
        dropout: float. Fraction of the attention scores dropped during
            training. Defaults to `0.0`.
        use_bias: bool. Whether the projections have biases. Defaults to
            `True`.
        output_shape: int or tuple of int. Shape of the output besides the
            batch and sequence axes. Defaults to `None`, which means the last
            dimension of `query`.
        attention_axes: `None` or the sequence axis (`1`, `-2`, `(1,)`).
            Other axes raise a `ValueError`. Defaults to `None`.
        sliding_window: int. If set, query `t` only attends keys `s` with
            `|t - s| < sliding_window`; combine with `use_causal_mask=True`
            for causal local attention. Defaults to `None` (full attention).
        flash_attention: bool. `True` selects the memory-efficient blocked
            path (like `attention_implementation="blocked"`), `False` the
            plain path. Defaults to `None`, which leaves the choice to
            `attention_implementation`.
        kernel_initializer: initializer of the projection kernels. Defaults
            to `"glorot_uniform"`.
        bias_initializer: initializer of the projection biases. Defaults to
            `"zeros"`.
        kernel_regularizer: regularizer of the projection kernels. Defaults
            to `None`.
        bias_regularizer: regularizer of the projection biases. Defaults to
            `None`.
        activity_regularizer: regularizer of the projections' outputs, as
            keras (not of the layer's own outputs). Defaults to `None`.
        kernel_constraint: constraint of the projection kernels. Defaults to
            `None`.
        bias_constraint: constraint of the projection biases. Defaults to
            `None`.
        use_gate: bool. Gate the attention output with a sigmoid projection
            of the query (Qiu et al., 2025), as keras. Defaults to `False`.
        seed: int. Seed of the dropout. Defaults to `None`.
        num_key_value_heads: int. Number `K` of key/value heads; must divide
            `num_heads`. Defaults to `None`, which means `num_heads`.
        attention_implementation: `None`, `"plain"`, `"blocked"` or
            `"fused"`. `None` picks, when neither the scores nor dropout are
            needed: the fused path under JAX on a GPU for float16 and
            bfloat16 without a mask; else the blocked path when
            `T * S >= 2048 * 2048`; else the plain path. Defaults to `None`.
        **kwargs: base layer arguments, such as `name` and `dtype`.

    Call arguments:
        query: tensor `(B, T, dim)`.
        value: tensor `(B, S, dim)`.
        key: optional tensor `(B, S, dim)`. Defaults to `value`.
        query_mask: optional boolean `(B, T)`, True for real queries; padded
            queries get zero attention. Defaults to the Keras mask of `query`.
        value_mask: optional boolean `(B, S)`, True for real keys. Defaults to
            the Keras mask of `value`.
        key_mask: optional boolean `(B, S)`, merged with `value_mask`.
            Defaults to the Keras mask of `key`.
        attention_mask: optional boolean `(B, T, S)`, True where query `t`
            may attend key `s`. Merged with the padding masks.
        return_attention_scores: bool. Also return the attention scores
            `(B, N, T, S)`. Defaults to `False`.
        training: bool. Apply dropout. Defaults to `None`.
        use_causal_mask: bool. Query `t` attends keys `s <= t` only (in
            absolute positions, `cache_update_index + t` with a cache).
            Defaults to `False`.
        cache: optional tensor `(B, 2, S, K, key_dim)`: the projected keys
            (`cache[:, 0]`) and values (`cache[:, 1]`) of the `S` positions.
            Needs `value_dim == key_dim`.
        cache_update_index: int or int tensor. Where the projections of the
            new `key`/`value` tokens are written into `cache`. `None` with a
            cache uses the cache as is (and ignores `key`/`value`). With a
            cache, `value_mask`/`key_mask` may cover the cache `(B, S)` or
            only the new tokens, in which case earlier positions count as
            real (mask them with `attention_mask`).

    Returns:
        `attention_output` `(B, T, dim)` (or `(B, T) + output_shape`); with
        `return_attention_scores=True`, `(attention_output, attention_scores)`;
        with a cache, `(attention_output, cache)` or
        `(attention_output, attention_scores, cache)`, as
        `keras_hub.layers.CachedMultiHeadAttention`.

    Example:

    >>> import numpy as np
    >>> from keras_attention.layers import MultiHeadAttention
    >>> query = np.random.rand(2, 4, 16).astype("float32")
    >>> value = np.random.rand(2, 6, 16).astype("float32")
    >>> layer = MultiHeadAttention(num_heads=4, key_dim=8, num_key_value_heads=2)
    >>> outputs, scores = layer(query, value, return_attention_scores=True)
    >>> tuple(outputs.shape), tuple(scores.shape)
    ((2, 4, 16), (2, 4, 4, 6))

    Decoding one token at a time with a cache of 5 positions:

    >>> cache = np.zeros((2, 2, 5, 2, 8), "float32")  # (B, 2, S, K, key_dim)
    >>> token = np.random.rand(2, 1, 16).astype("float32")
    >>> outputs, cache = layer(token, token, cache=cache, cache_update_index=0,
    ...                        use_causal_mask=True)
    >>> tuple(outputs.shape), tuple(cache.shape)
    ((2, 1, 16), (2, 2, 5, 2, 8))

    References:
        - [Vaswani et al., 2017](https://arxiv.org/abs/1706.03762)
        - [Shazeer, 2019](https://arxiv.org/abs/1911.02150)
        - [Ainslie et al., 2023](https://arxiv.org/abs/2305.13245)
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        value_dim=None,
        dropout=0.0,
        use_bias=True,
        output_shape=None,
        attention_axes=None,
        sliding_window=None,
        flash_attention=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        use_gate=False,
        seed=None,
        num_key_value_heads=None,
        attention_implementation=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # As keras: the activity regularizer applies to each projection's output
        # only. Kept off `Layer.activity_regularizer`, which would also apply it
        # to the output (counted again through the output projection), the
        # scores and the cache.
        self._activity_regularizer = keras.regularizers.get(activity_regularizer)
        _check_positive_int("num_heads", num_heads)
        _check_positive_int("key_dim", key_dim)
        _check_positive_int("value_dim", value_dim, allow_none=True)
        _check_positive_int("num_key_value_heads", num_key_value_heads, allow_none=True)
        _check_positive_int("sliding_window", sliding_window, allow_none=True)
        if num_key_value_heads is not None and num_heads % num_key_value_heads != 0:
            raise ValueError(
                "`num_key_value_heads` must divide `num_heads`: each key/value "
                f"head serves num_heads // num_key_value_heads query heads. "
                f"Received: num_heads={num_heads}, "
                f"num_key_value_heads={num_key_value_heads}"
            )
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(
                f"`dropout` must be a float in [0, 1). Received: dropout={dropout!r}"
            )
        _normalize_output_shape(output_shape)
        if attention_axes not in SEQUENCE_AXIS:
            raise ValueError(
                "`attention_axes` must be None or the sequence axis (1, -2, "
                "(1,)): this layer attends over the sequence axis of (B, T, dim) "
                f"inputs. Received: attention_axes={attention_axes!r}. For "
                "attention over several axes, use keras.layers.MultiHeadAttention."
            )
        if flash_attention not in (None, True, False):
            raise ValueError(
                "`flash_attention` must be None, True or False. Received: "
                f"flash_attention={flash_attention!r}"
            )
        if attention_implementation not in ATTENTION_IMPLEMENTATIONS:
            raise ValueError(
                "Unknown attention_implementation: "
                f"{attention_implementation!r}. Expected one of "
                f"{ATTENTION_IMPLEMENTATIONS}."
            )
        flash_choice = {True: "blocked", False: "plain", None: None}[flash_attention]
        if None not in (flash_choice, attention_implementation) and flash_choice != attention_implementation:
            raise ValueError(
                f"`flash_attention={flash_attention}` selects the "
                f"{flash_choice!r} implementation, which contradicts "
                f"`attention_implementation={attention_implementation!r}`. "
                "Set only one of them."
            )
        if dropout > 0 and {"blocked", "fused"} & {flash_choice, attention_implementation}:
            raise ValueError(
                "Dropout on the attention scores needs them materialized, which "
                "the memory-efficient (flash / blocked / fused) paths never do. Received: "
                f"dropout={dropout}, flash_attention={flash_attention}, "
                f"attention_implementation={attention_implementation!r}. Set "
                "dropout=0.0, or leave both at None."
            )
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim
        self.dropout = dropout
        self.use_bias = use_bias
        # Not `self.output_shape`: a layer attribute of that name conflicts
        # with `Model.summary()` (keras stores it privately too).
        self._output_shape = output_shape
        self.attention_axes = attention_axes
        self.sliding_window = sliding_window
        self.flash_attention = flash_attention
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.use_gate = use_gate
        self.seed = seed
        self.num_key_value_heads = num_key_value_heads
        self.attention_implementation = attention_implementation
        self.supports_masking = True

    def build(self, query_shape, value_shape, key_shape=None):
        key_shape = value_shape if key_shape is None else key_shape
        for name, shape, layout in (
            ("query", query_shape, "(B, T, dim)"),
            ("value", value_shape, "(B, S, dim)"),
            ("key", key_shape, "(B, S, dim)"),
        ):
            if len(shape) != 3:
                raise ValueError(
                    f"`{name}` must have rank 3, with shape {layout}. Received: "
                    f"{name}.shape={tuple(shape)}. For attention over several "
                    "axes, use keras.layers.MultiHeadAttention."
                )
        if None not in (key_shape[1], value_shape[1]) and key_shape[1] != value_shape[1]:
            raise ValueError(
                "`key` and `value` must have the same length S. Received: "
                f"key.shape={tuple(key_shape)}, value.shape={tuple(value_shape)}"
            )
        value_dim = self.value_dim or self.key_dim
        num_key_value_heads = self.num_key_value_heads or self.num_heads

        # Created in keras's order, so that get_weights() lists the same
        # weights in the same order: query, key, [gate,] value, output.
        self._query_dense = self._projection("query", self.num_heads, self.key_dim)
        self._query_dense.build(query_shape)
        self._key_dense = self._projection("key", num_key_value_heads, self.key_dim)
        self._key_dense.build(key_shape)
        if self.use_gate:
            self._gate_dense = self._projection(
                "gate", self.num_heads, value_dim, activation="sigmoid"
            )
            self._gate_dense.build(query_shape)
        self._value_dense = self._projection("value", num_key_value_heads, value_dim)
        self._value_dense.build(value_shape)

        output_shape = _normalize_output_shape(self._output_shape) or (query_shape[-1],)
        output_letters = "efgh"[: len(output_shape)]
        self._output_dense = keras.layers.EinsumDense(
            f"abcd,cd{output_letters}->ab{output_letters}",
            output_shape=(None,) + tuple(output_shape),
            bias_axes=output_letters if self.use_bias else None,
            name="attention_output",
            **self._sublayer_kwargs(),
        )
        self._output_dense.build((query_shape[0], query_shape[1], self.num_heads, value_dim))
        self._dropout_layer = keras.layers.Dropout(
            self.dropout, seed=self.seed, dtype=self.dtype_policy, name="attention_dropout"
        )
        self._dropout_layer.build((query_shape[0], self.num_heads, query_shape[1], None))

    @property
    def query_dense(self):
        return self._query_dense

    @property
    def key_dense(self):
        return self._key_dense

    @property
    def value_dense(self):
        return self._value_dense

    @property
    def output_dense(self):
        return self._output_dense

    def _sublayer_kwargs(self):
        return dict(
            kernel_initializer=clone_initializer(self.kernel_initializer),
            bias_initializer=clone_initializer(self.bias_initializer),
            kernel_regularizer=self.kernel_regularizer,
            bias_regularizer=self.bias_regularizer,
            activity_regularizer=self._activity_regularizer,
            kernel_constraint=self.kernel_constraint,
            bias_constraint=self.bias_constraint,
            dtype=self.dtype_policy,
        )

    def _projection(self, name, num_heads, head_dim, activation=None):
        """An `EinsumDense` from `(B, L, dim)` to `(B, L, heads, head_dim)`."""
        layer = keras.layers.EinsumDense(
            "abc,cde->abde",
            output_shape=(None, num_heads, head_dim),
            bias_axes="de" if self.use_bias else None,
            activation=activation,
            name=name,
            **self._sublayer_kwargs(),
        )
        # The inputs may carry a Keras mask (already folded into the attention
        # mask); passing it on avoids keras's "layer does not support masking"
        # warning and keeps the projections' outputs aligned with it.
        layer.supports_masking = True
        return layer

    def call(
        self,
        query,
        value,
        key=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        attention_mask=None,
        return_attention_scores=False,
        training=None,
        use_causal_mask=False,
        cache=None,
        cache_update_index=None,
    ):
        if key is None:
            key = value
        if cache is None and cache_update_index is not None:
            raise ValueError(
                "`cache_update_index` needs a `cache` to update. Received: "
                f"cache=None, cache_update_index={cache_update_index!r}"
            )
        implementation = self._implementation()
        if return_attention_scores and implementation in ("blocked", "fused"):
            raise ValueError(
                "`return_attention_scores=True` needs the (B, N, T, S) scores, "
                f"which the {implementation} path never holds. Received: "
                f"flash_attention={self.flash_attention}, "
                f"attention_implementation={self.attention_implementation!r}. "
                "Leave both at None to get the scores."
            )

        if self.use_gate:
            gate = self._gate_dense(query)  # [B, T, N, Hv]
        query_heads = self._query_dense(query)  # [B, T, N, H]
        if cache is None:
            key_heads = self._key_dense(key)  # [B, S, K, H]
            value_heads = self._value_dense(value)  # [B, S, K, Hv]
        else:
            cache = ops.cast(self._validate_cache(cache, query), self.compute_dtype)
            _check_update_index(cache_update_index, cache, value)
            if cache_update_index is not None:
                # One update of the whole cache: slicing out its key and value
                # halves, updating each and stacking them back copied the
                # cache five times per step.
                new_key_value = ops.stack(
                    (self._key_dense(key), self._value_dense(value)), axis=1
                )  # [B, 2, T_new, K, H]
                cache = ops.slice_update(cache, [0, 0, cache_update_index, 0, 0], new_key_value)

        mask = self._compute_attention_mask(
            query,
            value,
            key,
            query_mask=query_mask,
            value_mask=value_mask,
            key_mask=key_mask,
            attention_mask=attention_mask,
            # Without a cache, causality goes down to the attention kernel,
            # which never builds a (T, S) mask on the blocked path; with a
            # cache, queries start at `cache_update_index`, which the mask
            # carries.
            use_causal_mask=use_causal_mask and cache is not None,
            cache=cache,
            cache_update_index=cache_update_index,
        )  # [B|1, T, S] or None

        # Dropout acts on the probabilities, so it needs them materialized,
        # as do the returned scores: both take the plain path.
        use_dropout = bool(training) and self.dropout > 0
        needs_scores = return_attention_scores or use_dropout
        scale = 1.0 / float(self.key_dim) ** 0.5
        if cache is not None and query.shape[1] == 1 and not use_dropout:
            # A decoding step reads the cache in place (the same results as
            # the plain path on its key and value halves).
            outputs = cached_dot_product_attention(
                query_heads,
                cache,
                mask=mask,
                scale=scale,
                return_attention_scores=return_attention_scores,
            )  # [B, 1, N, Hv] (and scores [B, N, 1, S])
        else:
            if cache is not None:
                key_heads, value_heads = cache[:, 0, ...], cache[:, 1, ...]  # [B, S, K, H]
            outputs = dot_product_attention(
                query_heads,
                key_heads,
                value_heads,
                mask=mask,
                is_causal=use_causal_mask and cache is None,
                scale=scale,
                implementation="plain" if needs_scores else implementation,
                return_attention_scores=needs_scores,
            )  # [B, T, N, Hv] (and scores [B, N, T, S])
        attention_output, attention_scores = outputs if needs_scores else (outputs, None)
        if use_dropout:
            dropped_scores = self._dropout_layer(attention_scores, training=training)
            attention_output = _weighted_sum(dropped_scores, value_heads)  # [B, T, N, Hv]
        if self.use_gate:
            attention_output = ops.multiply(attention_output, gate)
        attention_output = self._output_dense(attention_output)  # [B, T, dim]

        outputs = (attention_output,)
        if return_attention_scores:
            outputs += (attention_scores,)
        if cache is not None:
            outputs += (cache,)
        return outputs[0] if len(outputs) == 1 else outputs

    def _implementation(self):
        if self.flash_attention is not None:
            return "blocked" if self.flash_attention else "plain"
        return self.attention_implementation

    def _validate_cache(self, cache, query):
        value_dim = self.value_dim or self.key_dim
        if value_dim != self.key_dim:
            raise ValueError(
                "`cache` stacks keys and values in one tensor, which needs "
                f"value_dim == key_dim. Received: key_dim={self.key_dim}, "
                f"value_dim={value_dim}"
            )
        num_key_value_heads = self.num_key_value_heads or self.num_heads
        return validate_shape(
            "cache",
            cache,
            (query.shape[0], 2, None, num_key_value_heads, self.key_dim),
            "(B, 2, S, num_key_value_heads, key_dim)",
            broadcast_axes=(),
        )

    def _compute_attention_mask(
        self,
        query,
        value,
        key,
        query_mask,
        value_mask,
        key_mask,
        attention_mask,
        use_causal_mask,
        cache,
        cache_update_index,
    ):
        """Validate every mask and merge them into one `(B, T, S)` mask."""
        batch_size, query_length = query.shape[0], query.shape[1]
        # S: the cache's length, or the keys'.
        keys = key if cache is None else cache
        key_axis = 1 if cache is None else 2
        key_length, dynamic_key_length = keys.shape[key_axis], ops.shape(keys)[key_axis]
        query_mask = validate_shape(
            "query_mask", query_mask, (batch_size, query_length), "(B, T)"
        )
        key_padding_masks = []
        for name, mask, tokens in (("value_mask", value_mask, value), ("key_mask", key_mask, key)):
            if mask is None:
                continue
            if not hasattr(mask, "shape"):
                mask = ops.convert_to_tensor(mask)
            splice = (
                cache is not None
                and cache_update_index is not None
                and len(mask.shape) == 2
                and None not in (mask.shape[1], key_length)
                and mask.shape[1] != key_length
            )
            if splice:
                # A mask of the new tokens only: write it into an all-True
                # mask of the cache at the update index.
                mask = validate_shape(name, mask, (batch_size, tokens.shape[1]), "(B, S_new)")
                full = ops.ones((ops.shape(mask)[0], dynamic_key_length), "int32")
                mask = ops.slice_update(full, [0, cache_update_index], ops.cast(mask, "int32"))
            else:
                mask = validate_shape(name, mask, (batch_size, key_length), "(B, S)")
            key_padding_masks.append(mask)
        attention_mask = validate_shape(
            "attention_mask",
            attention_mask,
            (batch_size, query_length, key_length),
            "(B, T, S)",
            broadcast_axes=(0, 1, 2),
        )
        start_index = 0 if cache_update_index is None else cache_update_index
        query_length, key_length = ops.shape(query)[1], dynamic_key_length
        mask = compute_attention_mask(
            query_length,
            key_length,
            query_padding_mask=query_mask,
            key_padding_mask=merge_masks(*key_padding_masks),
            attention_mask=attention_mask,
            use_causal_mask=use_causal_mask,
            start_index=start_index,
        )
        if self.sliding_window is not None:
            window = sliding_window_mask(
                query_length, key_length, self.sliding_window, start_index
            )  # [1, T, S]
            mask = merge_masks(mask, window)
        return mask

    def compute_output_shape(self, query_shape, value_shape, key_shape=None):
        output_shape = _normalize_output_shape(self._output_shape) or (query_shape[-1],)
        return tuple(query_shape[:-1]) + tuple(output_shape)

    def compute_output_spec(
        self,
        query,
        value,
        key=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        attention_mask=None,
        return_attention_scores=False,
        training=None,
        use_causal_mask=False,
        cache=None,
        cache_update_index=None,
    ):
        output_shape = self.compute_output_shape(
            query.shape, value.shape, None if key is None else key.shape
        )
        outputs = (keras.KerasTensor(output_shape, dtype=self.compute_dtype),)
        if return_attention_scores:
            key_length = value.shape[1] if cache is None else cache.shape[2]
            scores_shape = (query.shape[0], self.num_heads, query.shape[1], key_length)
            outputs += (keras.KerasTensor(scores_shape, dtype=self.compute_dtype),)
        if cache is not None:
            outputs += (keras.KerasTensor(cache.shape, dtype=self.compute_dtype),)
        return outputs[0] if len(outputs) == 1 else outputs

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "value_dim": self.value_dim,
                "dropout": self.dropout,
                "use_bias": self.use_bias,
                "output_shape": self._output_shape,
                "attention_axes": self.attention_axes,
                "sliding_window": self.sliding_window,
                "flash_attention": self.flash_attention,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": keras.regularizers.serialize(
                    self._activity_regularizer
                ),
                "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
                "bias_constraint": keras.constraints.serialize(self.bias_constraint),
                "use_gate": self.use_gate,
                "seed": self.seed,
                "num_key_value_heads": self.num_key_value_heads,
                "attention_implementation": self.attention_implementation,
            }
        )
        return config


def _weighted_sum(scores, value):
    """`scores [B, N, T, S]` times `value [B, S, K, Hv]`, grouped: `[B, T, N, Hv]`."""
    batch_size, num_heads, query_length, key_length = ops.shape(scores)
    num_key_value_heads = ops.shape(value)[2]
    grouped = ops.reshape(
        scores,
        (batch_size, num_key_value_heads, num_heads // num_key_value_heads, query_length, key_length),
    )  # [B, K, G, T, S]
    output = ops.einsum("bkgts,bskh->btkgh", grouped, value)  # [B, T, K, G, Hv]
    return ops.reshape(output, (batch_size, query_length, num_heads, ops.shape(value)[-1]))  # [B, T, N, Hv]


def _check_update_index(cache_update_index, cache, value):
    """A Python int index must leave room in the cache for the new tokens."""
    if not isinstance(cache_update_index, int) or isinstance(cache_update_index, bool):
        return  # None, or a tensor (checked by the backend, if at all)
    cache_length, new_tokens = cache.shape[2], value.shape[1]
    if cache_length is None or new_tokens is None:
        return
    if not 0 <= cache_update_index <= cache_length - new_tokens:
        raise ValueError(
            f"`cache_update_index` must be in [0, {cache_length - new_tokens}] "
            f"to write {new_tokens} new token(s) into a cache of "
            f"S={cache_length} positions. Received: "
            f"cache_update_index={cache_update_index}"
        )


def _check_positive_int(name, value, allow_none=False):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        expected = "a positive integer or None" if allow_none else "a positive integer"
        raise ValueError(f"`{name}` must be {expected}. Received: {name}={value!r}")


def _normalize_output_shape(output_shape):
    """`None`, an int or a sequence of ints, as a tuple (or `None`)."""
    if output_shape is None:
        return None
    if isinstance(output_shape, int) and not isinstance(output_shape, bool):
        output_shape = (output_shape,)
    if not isinstance(output_shape, (tuple, list)) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in output_shape
    ) or not 1 <= len(output_shape) <= 4:
        raise ValueError(
            "`output_shape` must be a positive int or a tuple of 1 to 4 "
            f"positive ints. Received: output_shape={output_shape!r}"
        )
    return tuple(output_shape)
