"""Backend-agnostic scaled dot-product attention on the (B, T, N, H) layout."""

import keras
from keras import ops

from keras_attention.ops.blocked_attention import blocked_dot_product_attention
from keras_attention.ops.masks import causal_mask
from keras_attention.ops.masks import mask_fill_value
from keras_attention.ops.masks import merge_masks

# Above this many logits per (batch, head) the plain path would hold a
# (T, S) matrix larger than 4 MiB in float32 per head; the blocked path
# keeps memory linear in S instead.
AUTO_BLOCKED_MIN_LOGITS = 2048 * 2048

IMPLEMENTATIONS = ("plain", "blocked", "fused")

# Under JAX, `keras.ops.dot_product_attention` runs cuDNN's fused (flash)
# attention kernel on a GPU for float16 and bfloat16 inputs: it never writes
# the (B, N, T, S) scores to memory, which the plain path spends most of
# its time on once the matrix products run in half precision.
AUTO_FUSED_DTYPES = ("float16", "bfloat16")


def dot_product_attention(
    query,
    key,
    value,
    mask=None,
    bias=None,
    is_causal=False,
    scale=None,
    implementation=None,
    block_size=512,
    return_attention_scores=False,
):
    """Scaled dot-product attention with grouped key/value heads.

    Computes `softmax(query . key^T * scale + bias) . value` per head, with
    the softmax in float32 whatever the input dtype. Rows where the mask
    leaves nothing to attend to give zeros, never NaN.

    Key and value may have fewer heads `K` than the query's `N` (grouped-query
    attention; `K = 1` is multi-query attention): each key/value head serves
    `G = N // K` consecutive query heads.

    Three implementations give the same results: `"plain"` materializes the
    `(B, N, T, S)` scores; `"blocked"` walks the keys in blocks of
    `block_size` with an online softmax, so memory grows linearly with `S`,
    and recomputes the blocks in the backward pass (FlashAttention-2). On a
    CPU (TensorFlow) the blocked path takes about 1.1-1.2 times the plain
    path's time for a training step, 1.3-1.4 times for the forward pass
    alone, and a fraction of its memory (`benchmarks/results/attention.md`).
    `"fused"` hands the work to `keras.ops.dot_product_attention`, which
    runs the backend's fused kernel where it has one (cuDNN's flash
    attention under JAX on a GPU, for float16 and bfloat16) and its own
    float32-softmax computation elsewhere.

    Args:
        query: tensor `(B, T, N, H)`.
        key: tensor `(B, S, K, H)`, `K` divides `N`.
        value: tensor `(B, S, K, Hv)`.
        mask: optional boolean tensor, True where attention is allowed:
            `(B, T, S)` or broadcastable to `(B, N, T, S)`.
        bias: optional additive tensor broadcastable to `(B, N, T, S)`
            (rank 3 `(B, T, S)` is also accepted).
        is_causal: bool. Query `t` only attends keys `s <= t`. The blocked
            path makes this mask block by block, never as a `(T, S)`
            tensor. Defaults to `False`.
        scale: float. Multiplies the logits. Defaults to `1 / sqrt(H)`.
        implementation: `None`, `"plain"`, `"blocked"` or `"fused"`. `None`
            picks, when scores are not requested: the fused path under JAX on
            a GPU for float16 and bfloat16 inputs without mask or bias; else
            the blocked path when `T * S >= 2048 * 2048`; else the plain
            path. Defaults to `None`.
        block_size: int. Keys per block on the blocked path. Defaults to `512`.
        return_attention_scores: bool. Also return the `(B, N, T, S)`
            attention probabilities (plain path only). Defaults to `False`.

    Returns:
        The attention output `(B, T, N, Hv)`, in the query's dtype; with
        `return_attention_scores=True`, a tuple `(output, scores)`.

    Example:

    >>> import numpy as np
    >>> from keras_attention.ops import dot_product_attention
    >>> query = np.random.rand(2, 5, 8, 16).astype("float32")
    >>> key = np.random.rand(2, 7, 2, 16).astype("float32")  # 2 key/value heads
    >>> tuple(dot_product_attention(query, key, key).shape)
    (2, 5, 8, 16)
    """
    query = ops.convert_to_tensor(query)
    key = ops.convert_to_tensor(key, dtype=query.dtype)
    value = ops.convert_to_tensor(value, dtype=query.dtype)
    _validate_inputs(query, key, value)
    if implementation not in (None,) + IMPLEMENTATIONS:
        raise ValueError(
            f"Unknown implementation: {implementation!r}. Expected one of "
            f"{(None,) + IMPLEMENTATIONS}."
        )
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(
            "`block_size` must be a positive integer. Received: "
            f"block_size={block_size!r}. Pass for example block_size=512."
        )
    if scale is None:
        scale = 1.0 / float(query.shape[-1]) ** 0.5
    mask = _standardize_rank4("mask", mask, "bool", query, key.shape[1])
    bias = _standardize_rank4("bias", bias, None, query, key.shape[1])

    if implementation is None:
        implementation = _auto_implementation(query, key, mask, bias, return_attention_scores)
    if implementation != "plain" and return_attention_scores:
        raise ValueError(
            "`return_attention_scores=True` needs the (B, N, T, S) scores, "
            f"which the {implementation} implementation never holds. Pass "
            "implementation='plain' (or None) to get the scores."
        )
    if implementation == "fused":
        fused_mask, has_visible_key = mask, None
        if mask is not None:
            # keras spreads a row with no visible key over the masked keys.
            has_visible_key = ops.any(mask, axis=-1, keepdims=True)  # [B|1, N|1, T, 1]
        if keras.backend.backend() == "tensorflow" and key.shape[2] == 1 and query.shape[2] > 1:
            # keras's TensorFlow einsum does not broadcast a single key/value head.
            key = ops.repeat(key, query.shape[2], axis=2)
            value = ops.repeat(value, query.shape[2], axis=2)
        if mask is not None and bias is not None:
            # keras's PyTorch backend takes a mask or a bias, not both.
            bias = ops.where(mask, bias, mask_fill_value(bias.dtype))
            fused_mask = None
        output = ops.dot_product_attention(
            query, key, value, bias=bias, mask=fused_mask, scale=scale, is_causal=is_causal
        )
        return _zero_empty_rows(output, has_visible_key, False)
    if implementation == "blocked":
        # The blocked path makes the causal mask block by block: a (T, S)
        # mask would undo its linear memory (1 GiB of booleans at T = 32768).
        return blocked_dot_product_attention(
            query,
            key,
            value,
            mask=mask,
            bias=bias,
            scale=scale,
            block_size=block_size,
            is_causal=is_causal,
        )
    # Without an explicit mask, causality alone never empties a row (query t
    # always sees key 0), so the fully-masked-row check can be skipped.
    can_empty_rows = mask is not None
    if is_causal:
        query_length, key_length = ops.shape(query)[1], ops.shape(key)[1]
        causal = ops.expand_dims(causal_mask(query_length, key_length), 1)
        mask = merge_masks(mask, causal)  # [B|1, N|1, T, S]
    output, scores = _plain_attention(
        query, key, value, mask, bias, scale, can_empty_rows, return_attention_scores
    )
    if return_attention_scores:
        return output, scores
    return output


def _auto_implementation(query, key, mask, bias, return_attention_scores):
    """The implementation `implementation=None` stands for (see the docstring)."""
    if return_attention_scores:
        return "plain"
    if (
        keras.backend.backend() == "jax"
        and keras.backend.standardize_dtype(query.dtype) in AUTO_FUSED_DTYPES
        and mask is None
        and bias is None
        and keras.distribution.list_devices()[0].startswith("gpu")
    ):
        return "fused"
    long_enough = _static_product(query.shape[1], key.shape[1]) >= AUTO_BLOCKED_MIN_LOGITS
    return "blocked" if long_enough else "plain"


def _plain_attention(
    query, key, value, mask, bias, scale, can_empty_rows, return_attention_scores
):
    """Materialize the scores; returns `(output [B,T,N,Hv], scores [B,N,T,S])`."""
    batch_size, query_length, num_heads, head_dim = ops.shape(query)
    num_key_value_heads = ops.shape(key)[2]
    groups = num_heads // num_key_value_heads
    # Scale the query, not the logits: fewer multiplications, and the
    # product stays in range in float16 (as keras.layers.MultiHeadAttention).
    query = ops.multiply(query, ops.cast(scale, query.dtype))
    query = ops.reshape(
        query, (batch_size, query_length, num_key_value_heads, groups, head_dim)
    )  # [B, T, K, G, H]
    logits = ops.einsum("btkgh,bskh->bkgts", query, key)  # [B, K, G, T, S]
    logits = ops.reshape(
        logits, (batch_size, num_heads, query_length, ops.shape(key)[1])
    )  # [B, N, T, S]
    scores, has_visible_key = _masked_softmax(
        logits, mask, bias, can_empty_rows, return_attention_scores
    )
    scores = ops.cast(scores, value.dtype)
    grouped_scores = ops.reshape(
        scores, (batch_size, num_key_value_heads, groups, query_length, -1)
    )  # [B, K, G, T, S]
    output = ops.einsum("bkgts,bskh->btkgh", grouped_scores, value)  # [B, T, K, G, Hv]
    output = ops.reshape(
        output, (batch_size, query_length, num_heads, ops.shape(value)[-1])
    )  # [B, T, N, Hv]
    return _zero_empty_rows(output, has_visible_key, return_attention_scores), scores


def _masked_softmax(logits, mask, bias, can_empty_rows, return_attention_scores):
    """Float32 softmax of `logits [B, N, T, S]` under `mask` and `bias`.

    Returns `(scores, has_visible_key)`: `has_visible_key [B|1, N|1, T, 1]`
    marks the rows that see at least one key (`None` when no row can be
    empty); with `return_attention_scores`, the other rows of `scores` are
    zeroed here, otherwise `_zero_empty_rows` zeroes them in the output.
    """
    logits = ops.cast(logits, "float32")
    if bias is not None:
        logits = logits + ops.cast(bias, "float32")
    if mask is not None:
        logits = ops.where(mask, logits, mask_fill_value("float32"))
    scores = ops.softmax(logits, axis=-1)  # [B, N, T, S], float32
    has_visible_key = None
    if can_empty_rows:
        # A row with no visible key would spread uniformly over the masked
        # keys. The check reads the mask, which is usually shared by the
        # heads (N times smaller than the scores).
        has_visible_key = ops.any(mask, axis=-1, keepdims=True)  # [B|1, N|1, T, 1]
        if return_attention_scores:
            scores = ops.where(has_visible_key, scores, 0.0)
    return scores, has_visible_key


def _zero_empty_rows(output, has_visible_key, return_attention_scores):
    """Zero the rows of `output [B, T, N, Hv]` whose query sees no key."""
    if has_visible_key is None or return_attention_scores:
        return output
    # Zero the rows of the output rather than of the scores: T * Hv
    # values instead of T * S.
    has_visible_key = ops.transpose(has_visible_key, (0, 2, 1, 3))  # [B|1, T, N|1, 1]
    return ops.where(has_visible_key, output, ops.zeros((), output.dtype))


def cached_dot_product_attention(query, cache, mask=None, scale=None, return_attention_scores=False):
    """Attention of one query position over a key/value cache, read in place.

    The decoding step of `MultiHeadAttention`: the same results as
    `dot_product_attention(query, cache[:, 0], cache[:, 1], mask)`, without
    the copies that slicing the keys and values out of the `(B, 2, S, K, H)`
    cache and transposing them for a batched matmul make at every step (on a
    CPU they cost more than the attention itself). The cache is viewed as
    `(B, 2 S, K * H)`, a free reshape, and multiplied by the query spread
    block-diagonally over the `K` key/value heads (zeros elsewhere), so each
    query head meets only its own key head; the products with the values
    (for the logits) and with the keys (for the output, by zero weights) are
    computed and dropped. That takes `2 K` times the flops of one query
    position, little next to the copies of the whole cache it saves, and too
    much for long queries: use `dot_product_attention` for `T > 1`.

    Args:
        query: tensor `(B, 1, N, H)`.
        cache: tensor `(B, 2, S, K, H)`: keys (`cache[:, 0]`) and values
            (`cache[:, 1]`), `K` dividing `N`, `K` and `H` known statically.
        mask: optional boolean tensor broadcastable to `(B, N, 1, S)`
            (rank 3 `(B, 1, S)` is also accepted), True where attention is
            allowed.
        scale: float. Multiplies the logits. Defaults to `1 / sqrt(H)`.
        return_attention_scores: bool. Also return the `(B, N, 1, S)`
            attention probabilities. Defaults to `False`.

    Returns:
        The attention output `(B, 1, N, H)`, in the query's dtype; with
        `return_attention_scores=True`, a tuple `(output, scores)`.
    """
    query = ops.convert_to_tensor(query)
    cache = ops.convert_to_tensor(cache, dtype=query.dtype)
    if len(query.shape) != 4 or query.shape[1] != 1:
        raise ValueError(
            "`query` must have shape (B, 1, N, H): one position. Received: "
            f"query.shape={tuple(query.shape)}. Use dot_product_attention for longer queries."
        )
    if len(cache.shape) != 5 or cache.shape[1] != 2 or None in cache.shape[3:]:
        raise ValueError(
            "`cache` must have shape (B, 2, S, K, H) with K and H known. "
            f"Received: cache.shape={tuple(cache.shape)}"
        )
    num_heads, head_dim = query.shape[2], query.shape[3]
    num_key_value_heads = cache.shape[3]
    if num_heads % num_key_value_heads != 0 or cache.shape[4] != head_dim:
        raise ValueError(
            "The cache's K key/value heads must divide the query's N heads, "
            "and both must have the head size H. Received: "
            f"query.shape={tuple(query.shape)}, cache.shape={tuple(cache.shape)}"
        )
    if scale is None:
        scale = 1.0 / float(head_dim) ** 0.5
    mask = _standardize_rank4("mask", mask, "bool", query, cache.shape[2])
    groups = num_heads // num_key_value_heads
    batch_size, key_length = ops.shape(cache)[0], ops.shape(cache)[2]
    width = num_key_value_heads * head_dim

    query = ops.multiply(query, ops.cast(scale, query.dtype))
    query = ops.reshape(
        query, (batch_size, num_key_value_heads, groups, 1, head_dim)
    )  # [B, K, G, 1, H]
    # diagonal[k', k] = 1 where key/value head k serves query head (k', g).
    diagonal = ops.reshape(
        ops.eye(num_key_value_heads, dtype=query.dtype),
        (1, num_key_value_heads, 1, num_key_value_heads, 1),
    )
    spread = ops.reshape(query * diagonal, (batch_size, num_heads, width))  # [B, N, K*H]
    flat_cache = ops.reshape(cache, (batch_size, 2 * key_length, width))  # [B, 2S, K*H]
    logits = ops.einsum("bnd,bsd->bns", spread, flat_cache)  # [B, N, 2S]
    logits = ops.expand_dims(logits[:, :, :key_length], 2)  # [B, N, 1, S], the keys' half

    scores, has_visible_key = _masked_softmax(
        logits, mask, None, mask is not None, return_attention_scores
    )  # [B, N, 1, S]
    scores = ops.cast(scores, query.dtype)
    # Zero weights on the keys' half: the sum runs over the values only.
    weights = ops.concatenate([ops.zeros_like(scores), scores], axis=-1)[:, :, 0]  # [B, N, 2S]
    output = ops.einsum("bns,bsd->bnd", weights, flat_cache)  # [B, N, K*H]
    output = ops.reshape(
        output, (batch_size, num_key_value_heads, groups, num_key_value_heads, head_dim)
    )  # [B, K', G, K, H]: query head (k', g) against every value head k
    output = ops.sum(output * diagonal, axis=3)  # [B, K, G, H], its own value head
    output = ops.reshape(output, (batch_size, 1, num_heads, head_dim))  # [B, 1, N, H]
    output = _zero_empty_rows(output, has_visible_key, return_attention_scores)
    if return_attention_scores:
        return output, scores
    return output


def _standardize_rank4(name, tensor, dtype, query, key_length):
    """Bring a mask or bias to rank 4 `(B|1, N|1, T|1, S|1)` and check its shape."""
    if tensor is None:
        return None
    tensor = ops.convert_to_tensor(tensor)
    if dtype is not None:
        tensor = ops.cast(tensor, dtype)
    rank = len(tensor.shape)
    if rank == 3:
        tensor = ops.expand_dims(tensor, 1)  # [B, 1, T, S]
    elif rank != 4:
        raise ValueError(
            f"`{name}` must have shape (B, T, S) or be broadcastable to "
            f"(B, N, T, S). Received: {name}.shape={tuple(tensor.shape)}"
        )
    expected = (query.shape[0], query.shape[2], query.shape[1], key_length)
    for size, target in zip(tensor.shape, expected):
        if size is not None and target is not None and size not in (1, target):
            raise ValueError(
                f"`{name}` must be broadcastable to (B, N, T, S) = {expected}: "
                f"each axis of size 1 or equal. Received: "
                f"{name}.shape={tuple(tensor.shape)}"
                + (" (a rank-3 mask is read as (B, T, S))" if rank == 3 else "")
            )
    return tensor


def _validate_inputs(query, key, value):
    for name, tensor in (("query", query), ("key", key), ("value", value)):
        if len(tensor.shape) != 4:
            raise ValueError(
                f"`{name}` must have rank 4 with layout (B, T, N, H). "
                f"Received: {name}.shape={tuple(tensor.shape)}"
            )
    num_heads, num_key_value_heads = query.shape[2], key.shape[2]
    if value.shape[2] != num_key_value_heads:
        raise ValueError(
            "`key` and `value` must have the same number of heads. Received: "
            f"key.shape={tuple(key.shape)}, value.shape={tuple(value.shape)}"
        )
    if num_heads % num_key_value_heads != 0:
        raise ValueError(
            "The number of key/value heads must divide the number of query "
            f"heads. Received: {num_key_value_heads} key/value heads for "
            f"{num_heads} query heads (query.shape={tuple(query.shape)}, "
            f"key.shape={tuple(key.shape)})"
        )
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(
            "`query` and `key` must have the same head size H. Received: "
            f"query.shape={tuple(query.shape)}, key.shape={tuple(key.shape)}"
        )
    if None not in (key.shape[1], value.shape[1]) and key.shape[1] != value.shape[1]:
        raise ValueError(
            "`key` and `value` must have the same length S (one value per "
            f"key). Received: key.shape={tuple(key.shape)}, "
            f"value.shape={tuple(value.shape)}"
        )


def _static_product(query_length, key_length):
    """`T * S` when both are known at trace time, else 0 (use the plain path)."""
    if query_length is None or key_length is None:
        return 0
    return query_length * key_length
