"""Memory-efficient attention: keys in blocks with an online softmax.

The forward pass walks the keys in blocks of `block_size`, carrying per query
row the log-sum-exp of the logits seen so far and the output normalized over
them, both in float32 (Milakov & Gimelshein, 2018; Rabe & Staats, 2021).
Only one `(T, block_size)` block of logits is alive at a time, so memory
grows linearly with the key length `S`.

The backward pass is FlashAttention-2's (Dao, 2023): the forward saves only
its output and the row log-sum-exp; each block's probabilities are
recomputed from them, so forward plus backward also stays linear in `S`.

A key length that is not a multiple of the block size needs no padding: the
last block is shifted left to end at `S`, and the keys it shares with the
previous block are masked out. Nothing of size `(T, S)` (a padded copy of the
mask or bias, a causal mask) is ever made.

On CPU, TensorFlow runs one kernel per op with no fusion, so every pass over
a block of logits costs memory traffic; the steps below are arranged to make
as few passes per block as the plain path does (see `_forward`, `_backward`).
"""

import math

import keras
from keras import ops

from keras_attention.ops.masks import mask_fill_value

# Masked logits are set to FILL; a row's log-sum-exp starts at FLOOR, above
# FILL, so that while a row has seen nothing visible `exp(FILL - FLOOR)`
# underflows to exactly 0 and its output stays 0 (zeros, not a uniform
# average over padding) with no extra pass over the block to zero masked
# entries. Real logits never come near -1e38, so FLOOR never outweighs a
# visible key.
FILL = mask_fill_value("float32")  # -2.38e38
FLOOR = 0.5 * FILL  # -1.19e38

# Blocks are rounded up to this many keys: matmul kernels prefer aligned
# panels, and it costs at most a few overlapping keys in the last block.
BLOCK_ALIGNMENT = 8

# The fast forward step accepts a block when its weights exp(logits - R) sum
# below this per row: far from float32 overflow (3.4e38) even after the
# matmul with the values and summed over thousands of blocks.
FAST_STEP_LIMIT = 1e20


def blocked_dot_product_attention(
    query,
    key,
    value,
    mask=None,
    bias=None,
    scale=None,
    block_size=512,
    is_causal=False,
):
    """Scaled dot-product attention that never holds a `(T, S)` matrix.

    Same results as the plain path of
    `keras_attention.ops.dot_product_attention` (forward and gradients, to
    float32 rounding), with memory linear in the key length. Usually called
    through `dot_product_attention(..., implementation="blocked")`, which
    checks the arguments and brings masks to rank 4.

    Args:
        query: tensor `(B, T, N, H)`.
        key: tensor `(B, S, K, H)`, `K` divides `N` (grouped key/value heads).
        value: tensor `(B, S, K, Hv)`.
        mask: optional boolean tensor of rank 4 broadcastable to
            `(B, N, T, S)`, True where attention is allowed.
        bias: optional tensor of rank 4 broadcastable to `(B, N, T, S)`,
            added to the logits. It receives a gradient.
        scale: float. Multiplies the logits. Defaults to `1 / sqrt(H)`.
        block_size: int. Keys per block. Reduced automatically (to `S`, or
            to balance the blocks) when `S` is known. Defaults to `512`.
        is_causal: bool. Query `t` attends keys `s <= t`; the causal mask is
            made block by block, never as a `(T, S)` tensor. Defaults to
            `False`.

    Returns:
        The attention output `(B, T, N, Hv)` in the query's dtype.

    Example:

    >>> import numpy as np
    >>> from keras import ops
    >>> from keras_attention.ops import dot_product_attention
    >>> from keras_attention.ops.blocked_attention import blocked_dot_product_attention
    >>> rng = np.random.default_rng(0)
    >>> query = rng.normal(size=(1, 6, 4, 8)).astype("float32")
    >>> key = rng.normal(size=(1, 10, 2, 8)).astype("float32")
    >>> blocked = blocked_dot_product_attention(query, key, key, block_size=4, is_causal=True)
    >>> plain = dot_product_attention(query, key, key, is_causal=True, implementation="plain")
    >>> bool(np.allclose(ops.convert_to_numpy(blocked), ops.convert_to_numpy(plain), atol=1e-5))
    True
    """
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(
            "`block_size` must be a positive integer. Received: "
            f"block_size={block_size!r}. Pass for example block_size=512."
        )
    query = ops.convert_to_tensor(query)
    key = ops.convert_to_tensor(key, dtype=query.dtype)
    value = ops.convert_to_tensor(value, dtype=query.dtype)
    for name, tensor in (("query", query), ("key", key), ("value", value)):
        if len(tensor.shape) != 4:
            raise ValueError(
                f"`{name}` must have rank 4 with layout (B, T, N, H). "
                f"Received: {name}.shape={tuple(tensor.shape)}"
            )
    if scale is None:
        scale = 1.0 / math.sqrt(query.shape[-1])

    batch_size, query_length, num_heads, head_dim = ops.shape(query)
    key_length = ops.shape(key)[1]
    num_key_value_heads = key.shape[2]
    value_dim = value.shape[-1]
    groups = num_heads // num_key_value_heads
    block_size = _resolve_block_size(
        key.shape[1] if key.shape[1] is not None else key_length, block_size
    )
    # The last block is shifted to end at S when S is not a multiple of the
    # block size; its keys already seen by the previous block are masked.
    needs_overlap_mask = not (
        isinstance(key.shape[1], int) and key.shape[1] % block_size == 0
    )

    # Scale the query once rather than every block of logits: T*H instead of
    # T*S multiplications, as the plain path does.
    query = ops.multiply(query, ops.cast(scale, query.dtype))
    query = ops.reshape(
        query, (batch_size, query_length, num_key_value_heads, groups, head_dim)
    )  # [B, T, K, G, H]
    query = ops.transpose(query, (0, 2, 3, 1, 4))  # [B, K, G, T, H]
    # Keys and values head-major once, so every block is one contiguous
    # slice and every block product a plain batched matmul.
    key = ops.transpose(key, (0, 2, 1, 3))  # [B, K, S, H]
    value = ops.transpose(value, (0, 2, 1, 3))  # [B, K, S, Hv]
    mask = _to_grouped_rank5("mask", mask, num_key_value_heads, groups)
    bias = _to_grouped_rank5("bias", bias, num_key_value_heads, groups)

    blocks = _Blocks(
        key_length=key_length,
        block_size=block_size,
        num_blocks=_ceil_div(key_length, block_size),
        query_length=query_length,
        is_causal=is_causal,
        needs_overlap_mask=needs_overlap_mask,
    )
    if bias is None:
        output = _attention_without_bias(blocks, mask)(query, key, value)
    else:
        output = _attention_with_bias(blocks, mask)(query, key, value, bias)
    # [B, K, G, T, Hv]
    output = ops.transpose(output, (0, 3, 1, 2, 4))  # [B, T, K, G, Hv]
    return ops.reshape(
        output, (batch_size, query_length, num_heads, value_dim)
    )  # [B, T, N, Hv]


class _Blocks:
    """Static description of the walk over key blocks, shared by both passes."""

    def __init__(
        self,
        key_length,
        block_size,
        num_blocks,
        query_length,
        is_causal,
        needs_overlap_mask,
    ):
        self.key_length = key_length
        self.block_size = block_size
        self.num_blocks = num_blocks
        self.query_length = query_length
        self.is_causal = is_causal
        self.needs_overlap_mask = needs_overlap_mask

    def start(self, index):
        """First key of block `index`; the last block ends exactly at S."""
        last_start = self.key_length - self.block_size
        if isinstance(index, int) and isinstance(last_start, int):
            # Python ints (eager PyTorch loops) keep slicing on the fast path.
            return min(index * self.block_size, last_start)
        return ops.minimum(index * self.block_size, last_start)

    def keys(self, tensor, start):
        """Block of keys from a `[B, K, S, H]` tensor: `[B, K, bs, H]`."""
        batch_size, heads, _, head_dim = ops.shape(tensor)
        return ops.slice(
            tensor, (0, 0, start, 0), (batch_size, heads, self.block_size, head_dim)
        )

    def last_axis(self, tensor, start):
        """Block of a rank-5 mask or bias along its key axis (size 1 broadcasts)."""
        if tensor.shape[-1] == 1:
            return tensor
        shape = ops.shape(tensor)
        return ops.slice(
            tensor, (0, 0, 0, 0, start), tuple(shape[:4]) + (self.block_size,)
        )

    def mask(self, mask, index, start):
        """Everything that hides keys in block `index`, or None: `[.., T|1, bs]`."""
        key_positions = start + ops.arange(self.block_size)  # [bs]
        block_mask = None if mask is None else self.last_axis(mask, start)
        if self.needs_overlap_mask:
            # Keys before index * bs were counted by the previous block.
            fresh = key_positions >= index * self.block_size  # [bs]
            block_mask = fresh if block_mask is None else ops.logical_and(block_mask, fresh)
        if self.is_causal:
            query_positions = ops.arange(self.query_length)  # [T]
            causal = ops.expand_dims(query_positions, -1) >= key_positions  # [T, bs]
            block_mask = (
                causal if block_mask is None else ops.logical_and(block_mask, causal)
            )
        return block_mask

    def logits(self, query, key_block, mask_block, bias_block):
        """Masked float32 logits of one block: `[B, K, G, T, bs]`."""
        logits = ops.einsum("bkgth,bksh->bkgts", query, key_block)  # [B, K, G, T, bs]
        logits = ops.cast(logits, "float32")
        if bias_block is not None:
            logits = logits + ops.cast(bias_block, "float32")
        if mask_block is not None:
            logits = ops.where(mask_block, logits, FILL)
        return logits


def _attention_without_bias(blocks, mask):
    @ops.custom_gradient
    def attention(query, key, value):
        with_ones = _with_ones(query, key, value)
        output, log_sum_exp = _forward(blocks, query, key, value, mask, None, *with_ones)

        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            d_query, d_key, d_value, _ = _backward(
                blocks,
                query,
                key,
                value,
                mask,
                None,
                *with_ones,
                output,
                log_sum_exp,
                upstream,
            )
            return d_query, d_key, d_value

        return output, grad

    return attention


def _attention_with_bias(blocks, mask):
    @ops.custom_gradient
    def attention(query, key, value, bias):
        with_ones = _with_ones(query, key, value)
        output, log_sum_exp = _forward(blocks, query, key, value, mask, bias, *with_ones)

        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            return _backward(
                blocks,
                query,
                key,
                value,
                mask,
                bias,
                *with_ones,
                output,
                log_sum_exp,
                upstream,
            )

        return output, grad

    return attention


def _with_ones(query, key, value):
    """`([k, 1], [v, 1])` for the float32 folds, `(None, None)` otherwise.

    Folding a per-row shift into a matmul (`[q, -R] . [k, 1] = logits - R`)
    needs the shift in the matmul's dtype: rounded to float16 or bfloat16 it
    would cost accuracy, so lower precisions take the unfolded steps.
    """
    if _dtype_name(query.dtype) != "float32":
        return None, None
    return _append_ones(key), _append_ones(value)  # [B, K, S, H+1], [B, K, S, Hv+1]


def _forward(blocks, query, key, value, mask, bias, key_with_ones, value_with_ones):
    """Online softmax over key blocks.

    Returns `(output [B, K, G, T, Hv] in the query's dtype,
    log_sum_exp [B, K, G, T, 1] in float32)`. For a row that never saw a
    visible key the output is zeros (as on the plain path) and log_sum_exp is
    FLOOR, so the backward pass recomputes exp(FILL - FLOOR) = 0 probabilities.
    """
    if key_with_ones is None or keras.backend.backend() == "jax":
        # XLA fuses the exact step's passes into one loop over the block, so
        # on JAX the folded steps would only double what is compiled.
        return _forward_exact(blocks, query, key, value, mask, bias)
    return _forward_folded(
        blocks, query, key, value, mask, bias, key_with_ones, value_with_ones
    )


def _exact_block(blocks, query, key, value, mask, bias, index):
    """One block's probabilities (softmax over the block) and log-sum-exp.

    Returns `(block_log_sum_exp [B, K, G, T, 1], probabilities
    [B, K, G, T, bs])`, both float32, and the block's start.
    """
    start = blocks.start(index)
    bias_block = None if bias is None else blocks.last_axis(bias, start)
    logits = blocks.logits(
        query, blocks.keys(key, start), blocks.mask(mask, index, start), bias_block
    )  # [B, K, G, T, bs]
    # TensorFlow's fused softmax does max, subtraction, exponential and sum
    # in about the time of one exponential.
    probabilities = ops.softmax(logits, axis=-1)  # [B, K, G, T, bs]
    # The largest probability is exp(max - lse) = 1 / sum, never below
    # 1 / bs, so the block's log-sum-exp comes back without underflow. A
    # fully masked block gives about FILL.
    block_log_sum_exp = ops.max(logits, axis=-1, keepdims=True) - ops.log(
        ops.max(probabilities, axis=-1, keepdims=True)
    )  # [B, K, G, T, 1]
    return block_log_sum_exp, probabilities, start


def _forward_exact(blocks, query, key, value, mask, bias):
    """Carries, per query row, the log-sum-exp of the logits seen so far and
    the output normalized over them; each block is folded in with its own
    log-sum-exp as weight."""
    row_shape = tuple(ops.shape(query)[:4]) + (1,)
    output_shape = tuple(ops.shape(query)[:4]) + (ops.shape(value)[-1],)
    # FLOOR: no key seen yet, so exp(FILL - FLOOR) = 0 weights every fully
    # masked block of a row by exactly zero.
    log_sum_exp = ops.full(row_shape, FLOOR, dtype="float32")  # [B, K, G, T, 1]
    output = ops.zeros(output_shape, dtype="float32")  # [B, K, G, T, Hv]

    def step(index, carry):
        log_sum_exp, output = carry
        block_log_sum_exp, probabilities, start = _exact_block(
            blocks, query, key, value, mask, bias, index
        )
        new_log_sum_exp = ops.logaddexp(log_sum_exp, block_log_sum_exp)
        block_output = ops.einsum(
            "bkgts,bksh->bkgth",
            ops.cast(probabilities, value.dtype),
            blocks.keys(value, start),
        )  # [B, K, G, T, Hv]
        output = output * ops.exp(log_sum_exp - new_log_sum_exp) + ops.cast(
            block_output, "float32"
        ) * ops.exp(block_log_sum_exp - new_log_sum_exp)
        return new_log_sum_exp, output

    log_sum_exp, output = _serial_fori_loop(
        0, blocks.num_blocks, step, (log_sum_exp, output)
    )
    return ops.cast(output, query.dtype), log_sum_exp


def _forward_folded(blocks, query, key, value, mask, bias, key_with_ones, value_with_ones):
    """The float32 forward pass, at the plain path's cost per key.

    Carries, per query row, a reference `R` (a log-sum-exp of keys seen so
    far), `[q, -R]`, and the sums `[sum_s w_s v_s, sum_s w_s]` of the weights
    `w_s = exp(logit_s - R)`. Most blocks take the fast step: one matmul
    `[q, -R] . [k, 1] = logits - R`, one exponential, and one matmul with
    `[v, 1]` that gathers the values and the weights' row sums together,
    added to the sums as they are. When a block's weights could overflow (a
    logit far above `R`, or a row with no key seen yet: `R` = FLOOR), the
    block is redone by the exact step, which moves `R` up to the block's
    log-sum-exp and rescales the sums. The first block is always exact.
    """
    row_shape = tuple(ops.shape(query)[:4]) + (1,)
    sums_shape = tuple(ops.shape(query)[:4]) + (ops.shape(value_with_ones)[-1],)
    reference = ops.full(row_shape, FLOOR, dtype="float32")  # [B, K, G, T, 1]
    sums = ops.zeros(sums_shape, dtype="float32")  # [B, K, G, T, Hv+1]

    def exact_step(index, carry):
        reference, _, sums = carry
        block_log_sum_exp, probabilities, start = _exact_block(
            blocks, query, key, value, mask, bias, index
        )
        new_reference = ops.maximum(reference, block_log_sum_exp)  # [B, K, G, T, 1]
        block_sums = ops.einsum(
            "bkgts,bksh->bkgth", probabilities, blocks.keys(value_with_ones, start)
        )  # [B, K, G, T, Hv+1], the last column 1: the block's probabilities sum to 1
        sums = sums * ops.exp(reference - new_reference) + block_sums * ops.exp(
            block_log_sum_exp - new_reference
        )
        shifted_query = ops.concatenate([query, -new_reference], axis=-1)  # [B, K, G, T, H+1]
        return new_reference, shifted_query, sums

    def fast_step(index, carry):
        reference, shifted_query, sums = carry
        start = blocks.start(index)
        bias_block = None if bias is None else blocks.last_axis(bias, start)
        shifted_logits = blocks.logits(
            shifted_query,
            blocks.keys(key_with_ones, start),
            blocks.mask(mask, index, start),
            bias_block,
        )  # [B, K, G, T, bs], logits - R
        block_sums = ops.einsum(
            "bkgts,bksh->bkgth",
            ops.exp(shifted_logits),
            blocks.keys(value_with_ones, start),
        )  # [B, K, G, T, Hv+1]
        # Weights summing to 1e20 per row leave float32 far from overflow;
        # more (or infinite: a row that has seen no key) means: redo exactly.
        return ops.cond(
            ops.all(block_sums[..., -1:] < FAST_STEP_LIMIT),
            lambda: (reference, shifted_query, sums + block_sums),
            lambda: exact_step(index, carry),
        )

    carry = exact_step(0, (reference, None, sums))
    reference, _, sums = _serial_fori_loop(1, blocks.num_blocks, fast_step, carry)
    # Every row that saw a visible key has a total weight of at least 1 (the
    # block that set R contributed exp(0)); the others have 0 and zero sums.
    total = sums[..., -1:]  # [B, K, G, T, 1]
    safe_total = ops.where(total > 0.0, total, 1.0)
    output = sums[..., :-1] / safe_total  # [B, K, G, T, Hv]
    log_sum_exp = reference + ops.log(safe_total)  # [B, K, G, T, 1]
    return ops.cast(output, query.dtype), log_sum_exp


def _backward(
    blocks,
    query,
    key,
    value,
    mask,
    bias,
    key_with_ones,
    value_with_ones,
    output,
    log_sum_exp,
    d_output,
):
    """FlashAttention-2 backward: recompute each block's probabilities.

    Returns the gradients of `(query, key, value, bias)` (bias: None when
    there is none).
    """
    dtype = query.dtype
    d_output = ops.cast(d_output, dtype)  # [B, K, G, T, Hv]
    # D = rowsum(dO * O): the softmax Jacobian's diagonal term, per row.
    d_row = ops.sum(
        ops.cast(d_output, "float32") * ops.cast(output, "float32"),
        axis=-1,
        keepdims=True,
    )  # [B, K, G, T, 1]
    # In float32, fold the two per-row subtractions into the matmuls:
    # [q, -lse] . [k, 1] = logits - lse and [dO, -D] . [v, 1] = dP - D, two
    # passes fewer over each block.
    fold = key_with_ones is not None
    if fold:
        shifted_query = ops.concatenate([query, -log_sum_exp], axis=-1)  # [B, K, G, T, H+1]
        shifted_d_output = ops.concatenate([d_output, -d_row], axis=-1)  # [B, K, G, T, Hv+1]

    d_query = ops.zeros(ops.shape(query), dtype="float32")  # [B, K, G, T, H]
    d_key = ops.zeros(ops.shape(key), dtype=dtype)  # [B, K, S, H]
    d_value = ops.zeros(ops.shape(value), dtype=dtype)  # [B, K, S, Hv]
    d_bias = None
    bias_reduction_axes = ()
    if bias is not None:
        d_bias = ops.zeros(ops.shape(bias), dtype="float32")
        # The bias broadcasts over the axes where it has size 1: its gradient
        # sums the block's logit gradients over them.
        bias_reduction_axes = tuple(axis for axis in range(5) if bias.shape[axis] == 1)
    # A bias constant over the keys sums its gradient over every block; any
    # other bias gets the block's slice.
    bias_is_constant_over_keys = 4 in bias_reduction_axes

    def step(reverse_index, carry):
        d_query, d_key, d_value, d_bias = carry
        # Last block first: its keys shared with the previous block get zero
        # gradients, which the previous block then overwrites with the right
        # ones.
        index = blocks.num_blocks - 1 - reverse_index
        start = blocks.start(index)
        key_block = blocks.keys(key, start)  # [B, K, bs, H]
        mask_block = blocks.mask(mask, index, start)
        bias_block = None if bias is None else blocks.last_axis(bias, start)
        if fold:
            shifted_logits = blocks.logits(
                shifted_query, blocks.keys(key_with_ones, start), mask_block, bias_block
            )  # [B, K, G, T, bs], logits - lse
        else:
            shifted_logits = blocks.logits(query, key_block, mask_block, bias_block)
            shifted_logits = shifted_logits - log_sum_exp
        probabilities = ops.exp(shifted_logits)  # [B, K, G, T, bs]
        d_value_block = ops.einsum(
            "bkgts,bkgth->bksh", ops.cast(probabilities, dtype), d_output
        )  # [B, K, bs, Hv]
        if fold:
            d_shifted = ops.einsum(
                "bkgth,bksh->bkgts",
                shifted_d_output,
                blocks.keys(value_with_ones, start),
            )  # [B, K, G, T, bs], dP - D
        else:
            d_probabilities = ops.einsum(
                "bkgth,bksh->bkgts", d_output, blocks.keys(value, start)
            )  # [B, K, G, T, bs]
            d_shifted = ops.cast(d_probabilities, "float32") - d_row
        d_logits = probabilities * d_shifted  # [B, K, G, T, bs]
        if bias is not None:
            d_bias_block = d_logits
            if bias_reduction_axes:
                d_bias_block = ops.sum(d_logits, axis=bias_reduction_axes, keepdims=True)
            if bias_is_constant_over_keys:
                d_bias = d_bias + d_bias_block
            else:
                d_bias = ops.slice_update(d_bias, (0, 0, 0, 0, start), d_bias_block)
        d_logits = ops.cast(d_logits, dtype)
        d_query = d_query + ops.cast(
            ops.einsum("bkgts,bksh->bkgth", d_logits, key_block), "float32"
        )  # [B, K, G, T, H]
        d_key_block = ops.einsum("bkgts,bkgth->bksh", d_logits, query)  # [B, K, bs, H]
        d_key = ops.slice_update(d_key, (0, 0, start, 0), d_key_block)
        d_value = ops.slice_update(d_value, (0, 0, start, 0), d_value_block)
        return d_query, d_key, d_value, d_bias

    carry = (d_query, d_key, d_value)
    if bias is None:

        def step_without_bias(reverse_index, carry):
            return step(reverse_index, carry + (None,))[:3]

        d_query, d_key, d_value = _serial_fori_loop(
            0, blocks.num_blocks, step_without_bias, carry
        )
    else:
        d_query, d_key, d_value, d_bias = _serial_fori_loop(
            0, blocks.num_blocks, step, carry + (d_bias,)
        )
        d_bias = ops.cast(d_bias, bias.dtype)
    return ops.cast(d_query, dtype), d_key, d_value, d_bias


def _serial_fori_loop(lower, upper, body, carry):
    """`ops.fori_loop(lower, upper, body, carry)` whose iterations never overlap.

    On TensorFlow, `fori_loop` is a `tf.while_loop`, which starts up to 10
    iterations at once as soon as their inputs are ready. A block's logits
    need only the block index, so up to 10 blocks of `(T, bs)` logits would
    be alive together (measured: 12 blocks' worth of memory in the backward
    pass at T = 8192). Deriving each index from the carry the previous
    iteration produced chains the iterations; the derived index always
    equals `index + 1` (the NaN test only makes it data-dependent).
    """

    def step(_, state):
        index, carry = state
        carry = body(index, carry)
        witness = ops.reshape(carry[0], (-1,))[:1]
        pending = ops.cast(ops.any(ops.isnan(witness)), "int32")
        index = ops.minimum(index + 1, upper + pending)
        return index, carry

    index = ops.convert_to_tensor(lower, dtype="int32")
    _, carry = ops.fori_loop(lower, upper, step, (index, carry))
    return carry


def _append_ones(tensor):
    """`[..., H]` to `[..., H+1]` with a last column of ones."""
    ones = ops.ones_like(tensor[..., :1])
    return ops.concatenate([tensor, ones], axis=-1)


def _dtype_name(dtype):
    return keras.backend.standardize_dtype(dtype)


def _to_grouped_rank5(name, tensor, num_key_value_heads, groups):
    """`(B|1, N|1, T|1, S|1)` to `(B|1, K|1, G|1, T|1, S|1)`, matching the logits."""
    if tensor is None:
        return None
    if len(tensor.shape) != 4:
        raise ValueError(
            f"`{name}` must have rank 4, broadcastable to (B, N, T, S). "
            f"Received: {name}.shape={tuple(tensor.shape)}. Pass it through "
            "`keras_attention.ops.dot_product_attention`, which accepts "
            "(B, T, S) too."
        )
    batch, heads, rows, columns = ops.shape(tensor)
    if tensor.shape[1] == 1:
        return ops.reshape(tensor, (batch, 1, 1, rows, columns))  # [B, 1, 1, T, S]
    return ops.reshape(
        tensor, (batch, num_key_value_heads, groups, rows, columns)
    )  # [B, K, G, T, S]


def _resolve_block_size(key_length, block_size):
    """Balance the blocks when `S` is known: S=600, 512 gives 2 blocks of 304.

    `key_length` is the static `S` (int) or, when unknown at trace time, the
    scalar tensor: blocks then never exceed `S`.
    """
    if not isinstance(key_length, int):
        return ops.minimum(block_size, key_length)
    if key_length <= block_size:
        return key_length
    num_blocks = _ceil_div(key_length, block_size)
    balanced = _ceil_div(key_length, num_blocks)
    if balanced < 8 * BLOCK_ALIGNMENT:
        # Small blocks (tests, short keys) are kept exact.
        return balanced
    aligned = _ceil_div(balanced, BLOCK_ALIGNMENT) * BLOCK_ALIGNMENT
    return min(aligned, key_length)


def _ceil_div(numerator, denominator):
    return (numerator + denominator - 1) // denominator
