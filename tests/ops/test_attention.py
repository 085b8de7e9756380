"""Tests of `dot_product_attention`: both implementations, against references."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_attention.ops import attention as attention_module
from keras_attention.ops.attention import cached_dot_product_attention
from keras_attention.ops import dot_product_attention
from keras_attention.ops import mask_fill_value
from keras_attention.ops.blocked_attention import blocked_dot_product_attention

IMPLEMENTATIONS = ("plain", "blocked", "fused")


def skip_unsupported_float16(implementation):
    """JAX's own attention (the fused path off a GPU) has no float16 on a CPU."""
    if implementation == "fused" and keras.backend.backend() == "jax":
        if not keras.distribution.list_devices()[0].startswith("gpu"):
            pytest.skip("JAX's dot_general takes no float16 with float32 accumulation on a CPU")


# === Helpers ===


def numpy_attention(query, key, value, mask=None, bias=None, scale=None, is_causal=False):
    """Reference in float64 NumPy: (B, T, N, H) layout, rows with no key give 0."""
    query, key, value = (np.asarray(x, "float64") for x in (query, key, value))
    num_heads, num_key_value_heads = query.shape[2], key.shape[2]
    key = np.repeat(key, num_heads // num_key_value_heads, axis=2)
    value = np.repeat(value, num_heads // num_key_value_heads, axis=2)
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    logits = np.einsum("btnh,bsnh->bnts", query, key) * scale
    if bias is not None:
        bias = np.asarray(bias, "float64")
        logits = logits + (bias[:, None] if bias.ndim == 3 else bias)
    visible = np.ones(logits.shape, bool)
    if mask is not None:
        mask = np.asarray(mask, bool)
        visible &= mask[:, None] if mask.ndim == 3 else mask
    if is_causal:
        visible &= np.tril(np.ones(logits.shape[-2:], bool))
    logits = np.where(visible, logits, -np.inf)
    row_max = logits.max(-1, keepdims=True)
    weights = np.where(visible, np.exp(logits - np.where(np.isfinite(row_max), row_max, 0)), 0)
    total = weights.sum(-1, keepdims=True)
    probabilities = weights / np.where(total > 0, total, 1)
    return np.einsum("bnts,bsnh->btnh", probabilities, value)


def to_numpy(x):
    return ops.convert_to_numpy(ops.cast(x, "float32"))


def value_and_gradients(functions, arrays, cotangent):
    """For each function: `function(*arrays)` and the gradients of
    `sum(output * cotangent)` with respect to every array."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        def all_gradients(*arrays):
            results = []
            for function in functions:

                def loss(*tensors, function=function):
                    output = function(*tensors)
                    return (output.astype("float32") * cotangent).sum(), output

                (_, output), gradients = jax.value_and_grad(
                    loss, argnums=tuple(range(len(arrays))), has_aux=True
                )(*arrays)
                results.append((output, gradients))
            return results

        # One compilation for all: eager JAX would compile every loop and
        # branch anew, and each jit call compiles separately.
        results = jax.jit(all_gradients)(*arrays)
    elif backend == "tensorflow":
        import tensorflow as tf

        results = []
        for function in functions:
            tensors = [tf.convert_to_tensor(a) for a in arrays]
            with tf.GradientTape() as tape:
                tape.watch(tensors)
                output = function(*tensors)
                loss = tf.reduce_sum(tf.cast(output, "float32") * cotangent)
            results.append((output, tape.gradient(loss, tensors)))
    else:
        import torch

        results = []
        for function in functions:
            tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
            output = function(*tensors)
            (output.float() * torch.tensor(cotangent)).sum().backward()
            results.append((output, [t.grad for t in tensors]))
    return [
        (to_numpy(output), [to_numpy(gradient) for gradient in gradients])
        for output, gradients in results
    ]


def compiled(function):
    """`function` traced and compiled the way each backend trains.

    Eager JAX compiles each loop and branch of the blocked path on every
    call (seconds each); one `jax.jit` compiles the whole call once.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(function)
    if backend == "jax":
        import jax

        return jax.jit(function)
    return function


def attend(query, key, value, **kwargs):
    """`dot_product_attention`, compiled under JAX (see `compiled`)."""
    if keras.backend.backend() != "jax":
        return dot_product_attention(query, key, value, **kwargs)
    return compiled(lambda *tensors: dot_product_attention(*tensors, **kwargs))(query, key, value)


def random_inputs(
    batch=2, query_length=5, key_length=11, heads=4, key_value_heads=2, head_dim=8, seed=0
):
    rng = np.random.default_rng(seed)
    query = rng.normal(size=(batch, query_length, heads, head_dim)).astype("float32")
    key = rng.normal(size=(batch, key_length, key_value_heads, head_dim)).astype("float32")
    value = rng.normal(size=(batch, key_length, key_value_heads, head_dim)).astype("float32")
    return query, key, value


def random_mask(shape, seed=1, empty_row=None):
    """Random boolean mask that keeps key 0 visible (keras gives uniform, not
    zero, attention to fully masked rows); `empty_row=(b, t)` masks one row."""
    mask = np.random.default_rng(seed).random(shape) > 0.4
    mask[..., 0] = True
    if empty_row is not None:
        batch, row = empty_row
        # A (B, 1, 1, S) padding mask has one row per sequence: it empties all.
        mask[batch, ..., min(row, shape[-2] - 1), :] = False
    return mask


# === Equivalence ===


# Grouped heads (K=2 for N=4): keras's TensorFlow backend cannot broadcast a
# single key/value head, and its PyTorch backend takes a mask, a bias or
# causality, one at a time; the NumPy reference below covers the rest.
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("masking", ["mask", "bias", "causal"])
def test_matches_keras_dot_product_attention(implementation, masking):
    query, key, value = random_inputs(key_length=5)
    kwargs = dict(scale=0.3)
    if masking == "mask":
        kwargs["mask"] = random_mask((2, 1, 5, 5))  # keras: broadcastable to (B, N, T, S)
    elif masking == "bias":
        kwargs["bias"] = np.random.default_rng(2).normal(size=(2, 4, 5, 5)).astype("float32")
    else:
        kwargs["is_causal"] = True
    expected = ops.dot_product_attention(query, key, value, **kwargs)
    output = attend(
        query, key, value, implementation=implementation, block_size=2, **kwargs
    )
    np.testing.assert_allclose(to_numpy(output), to_numpy(expected), atol=1e-5)


# The plain and fused paths here; the blocked path is checked against the same
# reference in test_blocked_equals_plain_outputs_and_gradients.
@pytest.mark.parametrize("implementation", ["plain", "fused"])
@pytest.mark.parametrize(
    "key_value_heads, mask_shape, bias_shape, is_causal",
    [
        (4, None, None, False),
        (1, (2, 5, 11), None, False),  # multi-query; (B, T, S), the layers' mask
        (2, (2, 1, 1, 11), (1, 4, 1, 11), False),  # padding mask, per-head bias
        (2, (2, 4, 5, 11), (2, 5, 11), True),  # per-head mask, rank-3 bias
    ],
)
def test_matches_numpy_reference(implementation, key_value_heads, mask_shape, bias_shape, is_causal):
    query, key, value = random_inputs(key_value_heads=key_value_heads)
    mask = None if mask_shape is None else random_mask(mask_shape, empty_row=(1, 2))
    rng = np.random.default_rng(3)
    bias = None if bias_shape is None else rng.normal(size=bias_shape).astype("float32")
    output = attend(
        query,
        key,
        value,
        mask=mask,
        bias=bias,
        is_causal=is_causal,
        implementation=implementation,
    )
    expected = numpy_attention(query, key, value, mask=mask, bias=bias, is_causal=is_causal)
    np.testing.assert_allclose(to_numpy(output), expected, atol=1e-5)


@pytest.mark.parametrize(
    "key_value_heads, key_length, block_size, mask_shape, bias_shape, is_causal",
    [
        (2, 11, 4, None, (2, 5, 11), False),  # S not a multiple: last block shifted
        (1, 11, 3, (2, 5, 11), (2, 4, 5, 11), False),  # multi-query, full bias
        (2, 12, 4, (2, 1, 5, 12), (1, 4, 1, 12), True),  # causal, broadcast bias
        (4, 9, 4, (2, 4, 5, 9), (2, 1, 5, 1), True),  # bias constant over keys
        (2, 3, 512, None, (2, 4, 5, 3), False),  # block reduced to S
    ],
)
def test_blocked_equals_plain_outputs_and_gradients(
    key_value_heads, key_length, block_size, mask_shape, bias_shape, is_causal
):
    query, key, value = random_inputs(key_length=key_length, key_value_heads=key_value_heads)
    rng = np.random.default_rng(4)
    mask = None if mask_shape is None else random_mask(mask_shape, empty_row=(0, 3))
    bias = (
        np.zeros((1, 1, 1, 1), "float32")
        if bias_shape is None
        else rng.normal(size=bias_shape).astype("float32")
    )
    cotangent = rng.normal(size=query.shape[:3] + (value.shape[-1],)).astype("float32")

    def attention(implementation):
        def function(query, key, value, bias):
            return dot_product_attention(
                query,
                key,
                value,
                mask=mask,
                bias=bias,
                is_causal=is_causal,
                implementation=implementation,
                block_size=block_size,
            )

        return function

    arrays = [query, key, value, bias]
    (plain, plain_gradients), (blocked, blocked_gradients) = value_and_gradients(
        [attention("plain"), attention("blocked")], arrays, cotangent
    )
    np.testing.assert_allclose(blocked, plain, atol=1e-5)
    expected = numpy_attention(query, key, value, mask=mask, bias=bias, is_causal=is_causal)
    np.testing.assert_allclose(blocked, expected, atol=1e-5)
    names = ("query", "key", "value", "bias")
    for name, got, expected in zip(names, blocked_gradients, plain_gradients):
        np.testing.assert_allclose(got, expected, atol=2e-5, err_msg=f"gradient of {name}")


def test_blocked_equals_plain_when_compiled():
    """The loops and the fast/exact branch also trace (tf.function, jax.jit)."""
    query, key, value = random_inputs(key_length=13)
    mask = random_mask((2, 5, 13), empty_row=(1, 4))

    def both(query, key, value):
        kwargs = dict(mask=mask, is_causal=True, block_size=4)
        return (
            dot_product_attention(query, key, value, implementation="plain", **kwargs),
            dot_product_attention(query, key, value, implementation="blocked", **kwargs),
        )

    plain, blocked = compiled(both)(query, key, value)
    np.testing.assert_allclose(to_numpy(blocked), to_numpy(plain), atol=1e-5)


def test_blocked_fast_step_falls_back_to_exact_step():
    """A later block whose logits dwarf the first ones (by e^100) overflows
    the fast step's weights; the exact step must take over."""
    query, key, value = random_inputs(batch=1, query_length=3, key_length=12, key_value_heads=4)
    query = np.ones_like(query)
    key = np.zeros_like(key)
    key[:, 8:] = 100.0  # logits 0 in blocks 0-1, 100 in block 2
    output = attend(query, key, value, scale=1.0 / 8, implementation="blocked", block_size=4)
    expected = numpy_attention(query, key, value, scale=1.0 / 8)
    np.testing.assert_allclose(to_numpy(output), expected, atol=1e-5)


# === Hand-computed values and invariances ===


# block_size=1 walks one key per block; keras warns about a softmax over one key.
@pytest.mark.filterwarnings("ignore:You are using a softmax over axis")
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_hand_computed_example(implementation):
    # logits = q . k = [1, 0]; softmax = [e, 1] / (e + 1) = [0.7311, 0.2689];
    # output = 0.7311 * [1, 2] + 0.2689 * [3, 4] = [1.5379, 2.5379].
    query = np.array([1.0, 0.0], "float32").reshape(1, 1, 1, 2)
    key = np.array([[1.0, 0.0], [0.0, 1.0]], "float32").reshape(1, 2, 1, 2)
    value = np.array([[1.0, 2.0], [3.0, 4.0]], "float32").reshape(1, 2, 1, 2)
    output = attend(query, key, value, scale=1.0, implementation=implementation, block_size=1)
    np.testing.assert_allclose(to_numpy(output).reshape(2), [1.5378828, 2.5378828], atol=1e-6)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_causal_ignores_the_future(implementation):
    query, key, value = random_inputs(batch=1, query_length=6, key_length=6)
    changed_key, changed_value = key.copy(), value.copy()
    changed_key[:, 4:] += 5.0
    changed_value[:, 4:] -= 5.0
    # Both versions in one batch: one call, one compilation.
    outputs = to_numpy(
        attend(
            np.concatenate([query, query]),
            np.concatenate([key, changed_key]),
            np.concatenate([value, changed_value]),
            is_causal=True,
            implementation=implementation,
            block_size=2,
        )
    )
    np.testing.assert_allclose(outputs[1, :4], outputs[0, :4], atol=1e-6)
    assert not np.allclose(outputs[1, 4:], outputs[0, 4:])


def test_return_attention_scores():
    query, key, value = random_inputs()
    mask = random_mask((2, 5, 11), empty_row=(0, 1))
    output, scores = attend(query, key, value, mask=mask, return_attention_scores=True)
    scores = to_numpy(scores)
    assert scores.shape == (2, 4, 5, 11)
    row_sums = scores.sum(-1)
    np.testing.assert_allclose(row_sums[0, :, 1], 0.0)  # the fully masked row
    np.testing.assert_allclose(np.delete(row_sums[0], 1, axis=-1), 1.0, atol=1e-6)
    expected = numpy_attention(query, key, value, mask=mask)
    np.testing.assert_allclose(to_numpy(output), expected, atol=1e-5)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="a TensorFlow graph property")
def test_plain_path_uses_matmuls_under_a_dynamic_batch_size():
    """With the batch size unknown (a traced `fit` step), static T and S keep every einsum on
    keras's TensorFlow matmul path; an unknown S sends them to tf.einsum (slower on a CPU)."""
    import tensorflow as tf

    specs = [tf.TensorSpec(shape, "float32") for shape in [(None, 5, 4, 8), (None, 7, 2, 8), (None, 7, 2, 8)]]
    function = tf.function(lambda q, k, v: dot_product_attention(q, k, v, implementation="plain"),
                           input_signature=specs)
    graph = function.get_concrete_function().graph
    op_types = {op.type for op in graph.get_operations()}
    assert "Einsum" not in op_types and "BatchMatMulV2" in op_types
    assert graph.outputs[0].shape.as_list() == [None, 5, 4, 8]


def test_automatic_implementation(monkeypatch):
    calls = []
    blocked = attention_module.blocked_dot_product_attention

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return blocked(*args, **kwargs)

    monkeypatch.setattr(attention_module, "blocked_dot_product_attention", spy)
    monkeypatch.setattr(attention_module, "AUTO_BLOCKED_MIN_LOGITS", 5 * 11)
    query, key, value = random_inputs()
    attend(query, key, value, is_causal=True)
    assert len(calls) == 1 and calls[0]["is_causal"]  # causal mask made per block
    dot_product_attention(query, key, value, return_attention_scores=True)
    dot_product_attention(query, key[:, :10], value[:, :10])
    assert len(calls) == 1  # scores asked, or T * S below the threshold: plain


# === Masked rows and precision ===


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_fully_masked_rows_give_zeros(implementation, dtype):
    if dtype == "float16":
        skip_unsupported_float16(implementation)
    query, key, value = (ops.cast(x, dtype) for x in random_inputs())
    mask = random_mask((2, 5, 11), empty_row=(1, 2))
    output = attend(query, key, value, mask=mask, implementation=implementation, block_size=4)
    assert keras.backend.standardize_dtype(output.dtype) == dtype
    output = to_numpy(output)
    assert np.all(np.isfinite(output))
    np.testing.assert_array_equal(output[1, 2], 0.0)
    expected = numpy_attention(*(to_numpy(x) for x in (query, key, value)), mask=mask)
    np.testing.assert_allclose(output, expected, atol=0.1 if dtype == "bfloat16" else 2e-2)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_gradient_through_fully_masked_rows_is_finite(implementation):
    query, key, value = random_inputs()
    mask = np.ones((2, 5, 11), bool)
    mask[0, 1:3] = False  # two empty rows
    mask[1] = False  # a whole empty sequence
    bias = np.zeros((2, 4, 5, 11), "float32")
    cotangent = np.ones((2, 5, 4, 8), "float32")

    def function(query, key, value, bias):
        return dot_product_attention(
            query, key, value, mask=mask, bias=bias, implementation=implementation, block_size=4
        )

    ((output, gradients),) = value_and_gradients([function], [query, key, value, bias], cotangent)
    np.testing.assert_array_equal(output[1], 0.0)
    for gradient in gradients:
        assert np.all(np.isfinite(gradient))
    np.testing.assert_array_equal(gradients[0][0, 1:3], 0.0)  # nothing flows from empty rows
    np.testing.assert_array_equal(gradients[1][1], 0.0)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_float16_fill_value_never_overflows(implementation):
    # A float16 bias at the float16 fill value, plus large logits: nothing
    # may reach +-inf (65504) on the way.
    skip_unsupported_float16(implementation)
    query, key, value = random_inputs()
    bias = np.zeros((2, 1, 5, 11), "float16")
    bias[..., 5:] = mask_fill_value("float16")
    mask = random_mask((2, 5, 11))
    output = attend(
        ops.cast(query * 20, "float16"),
        ops.cast(key, "float16"),
        ops.cast(value, "float16"),
        mask=mask,
        bias=bias,
        implementation=implementation,
        block_size=4,
    )
    assert np.all(np.isfinite(to_numpy(output)))


# === Errors ===


@pytest.mark.parametrize(
    "shapes, message",
    [
        (((2, 5, 8), (2, 7, 2, 8), (2, 7, 2, 8)), "`query` must have rank 4"),
        (((2, 5, 4, 8), (2, 7, 16), (2, 7, 2, 8)), "`key` must have rank 4"),
        (((2, 5, 4, 8), (2, 7, 2, 8), (2, 7, 2, 8, 1)), "`value` must have rank 4"),
        (((2, 5, 4, 8), (2, 7, 2, 8), (2, 7, 1, 8)), "same number of heads"),
        (((2, 5, 4, 8), (2, 7, 3, 8), (2, 7, 3, 8)), "must divide the number of query heads"),
        (((2, 5, 4, 8), (2, 7, 2, 6), (2, 7, 2, 8)), "same head size"),
        (((2, 5, 4, 8), (2, 7, 2, 8), (2, 6, 2, 8)), "same length S"),
    ],
)
def test_shape_errors(shapes, message):
    query, key, value = (np.zeros(shape, "float32") for shape in shapes)
    with pytest.raises(ValueError, match=message):
        dot_product_attention(query, key, value)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(implementation="flash"), "Unknown implementation: 'flash'"),
        (dict(implementation="blocked", return_attention_scores=True), "never holds"),
        (dict(block_size=0), "`block_size` must be a positive integer"),
        (dict(block_size=2.5), "`block_size` must be a positive integer"),
        (dict(mask=np.ones((5, 7), bool)), r"`mask` must have shape \(B, T, S\)"),
        (dict(mask=np.ones((2, 4, 5, 7, 1), bool)), r"`mask` must have shape \(B, T, S\)"),
        (dict(mask=np.ones((2, 5, 6), bool)), "`mask` must be broadcastable"),
        (dict(mask=np.ones((2, 3, 5, 7), bool)), "`mask` must be broadcastable"),
        (dict(bias=np.ones((7,), "float32")), "`bias` must have shape"),
        (dict(bias=np.ones((2, 4, 4, 7), "float32")), "`bias` must be broadcastable"),
    ],
)
def test_argument_errors(kwargs, message):
    shapes = ((2, 5, 4, 8), (2, 7, 2, 8), (2, 7, 2, 8))
    query, key, value = (np.zeros(shape, "float32") for shape in shapes)
    with pytest.raises(ValueError, match=message):
        dot_product_attention(query, key, value, **kwargs)


def test_blocked_function_errors():
    query, key, value = random_inputs()
    with pytest.raises(ValueError, match="`block_size` must be a positive integer"):
        blocked_dot_product_attention(query, key, value, block_size=True)
    with pytest.raises(ValueError, match="`query` must have rank 4"):
        blocked_dot_product_attention(query[0], key, value)
    with pytest.raises(ValueError, match="`mask` must have rank 4"):
        blocked_dot_product_attention(query, key, value, mask=np.ones((2, 5, 11), bool))


# === Attention over a key/value cache (one decoding step) ===


@pytest.mark.parametrize("num_key_value_heads", [1, 2, 4])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_cached_attention_equals_plain_attention_on_the_cache_halves(num_key_value_heads, dtype):
    rng = np.random.default_rng(0)
    query = rng.normal(size=(3, 1, 4, 8)).astype(dtype)
    cache = rng.normal(size=(3, 2, 6, num_key_value_heads, 8)).astype(dtype)
    # Row 0 sees a prefix (a decoding step), row 1 scattered keys, row 2 none.
    mask = np.array([[[1, 1, 1, 0, 0, 0]], [[1, 0, 1, 0, 1, 1]], [[0, 0, 0, 0, 0, 0]]], bool)
    expected, expected_scores = dot_product_attention(
        query, cache[:, 0], cache[:, 1], mask=mask, scale=0.3, return_attention_scores=True
    )
    got, scores = cached_dot_product_attention(
        query, cache, mask=mask, scale=0.3, return_attention_scores=True
    )
    tolerance = 1e-6 if dtype == "float32" else 2e-3
    np.testing.assert_allclose(to_numpy(got), to_numpy(expected), atol=tolerance)
    np.testing.assert_allclose(to_numpy(scores), to_numpy(expected_scores), atol=tolerance)
    np.testing.assert_array_equal(to_numpy(got)[2], 0.0)  # nothing visible: zeros, not NaN
    # Without scores (zeros put in the output rather than the scores) and without a mask.
    got = cached_dot_product_attention(query, cache, mask=mask, scale=0.3)
    np.testing.assert_allclose(to_numpy(got), to_numpy(expected), atol=tolerance)
    np.testing.assert_allclose(
        to_numpy(cached_dot_product_attention(query, cache)),
        numpy_attention(query, cache[:, 0], cache[:, 1]),
        atol=tolerance,
    )


@pytest.mark.parametrize(
    "query_shape, cache_shape, message",
    [
        ((2, 3, 4, 8), (2, 2, 6, 2, 8), r"`query` must have shape \(B, 1, N, H\)"),
        ((2, 1, 4, 8), (2, 6, 2, 8), r"`cache` must have shape \(B, 2, S, K, H\)"),
        ((2, 1, 4, 8), (2, 3, 6, 2, 8), r"`cache` must have shape \(B, 2, S, K, H\)"),
        ((2, 1, 4, 8), (2, 2, 6, 3, 8), "key/value heads must divide"),
        ((2, 1, 4, 8), (2, 2, 6, 2, 5), "key/value heads must divide"),
    ],
)
def test_cached_attention_errors(query_shape, cache_shape, message):
    with pytest.raises(ValueError, match=message):
        cached_dot_product_attention(np.zeros(query_shape, "float32"), np.zeros(cache_shape, "float32"))


# === The default choice ===


@pytest.mark.parametrize(
    "backend, device, dtype, masked, scores, expected",
    [
        ("jax", "gpu:0", "bfloat16", False, False, "fused"),
        ("jax", "gpu:0", "float16", False, False, "fused"),
        ("jax", "gpu:0", "float32", False, False, "plain"),  # cuDNN's kernel is half precision only
        ("jax", "gpu:0", "bfloat16", True, False, "plain"),
        ("jax", "gpu:0", "bfloat16", False, True, "plain"),
        ("jax", "cpu:0", "bfloat16", False, False, "plain"),
        ("tensorflow", "gpu:0", "bfloat16", False, False, "plain"),
    ],
)
def test_default_picks_fused_for_half_precision_on_a_jax_gpu(
    monkeypatch, backend, device, dtype, masked, scores, expected
):
    monkeypatch.setattr(keras.backend, "backend", lambda: backend)
    monkeypatch.setattr(keras.distribution, "list_devices", lambda: [device])
    query, key, _ = random_inputs()
    mask = random_mask((2, 1, 5, 11)) if masked else None
    chosen = attention_module._auto_implementation(ops.cast(query, dtype), key, mask, None, scores)
    assert chosen == expected


def test_default_picks_blocked_for_long_sequences_off_a_gpu():
    query = np.zeros((1, 2048, 1, 4), "float32")
    assert attention_module._auto_implementation(query, query, None, None, False) == "blocked"
