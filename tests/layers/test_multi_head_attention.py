"""MultiHeadAttention: the harness, then equivalence with keras, GQA, caches, masks, errors."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_attention.layers import MultiHeadAttention
from tests.harness import run_layer_test

B, T, S, DIM = 2, 4, 5, 8


def random(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def numpy(x):
    return ops.convert_to_numpy(x)


def masked(ids, dim=DIM, seed=0):
    """Embed token ids with `mask_zero=True`: a tensor carrying a Keras mask."""
    embedding = keras.layers.Embedding(10, dim, mask_zero=True)
    embedding.build((None, None))
    embedding.set_weights([random(10, dim, seed=seed)])
    return embedding(np.asarray(ids))


QUERY_IDS = np.array([[1, 2, 3, 0], [4, 5, 6, 7]])
VALUE_IDS = np.array([[1, 2, 0, 0, 0], [3, 4, 5, 6, 0]])


# === The shared harness ===


def test_harness_cross_attention():
    run_layer_test(
        MultiHeadAttention,
        {"num_heads": 2, "key_dim": 4},
        {"query": random(B, T, DIM), "value": random(B, S, 6, seed=1)},
        expected_output_shape=(B, T, DIM),
        expected_num_trainable_weights=8,
    )


def test_harness_grouped_heads_gate_dropout_and_scores():
    run_layer_test(
        MultiHeadAttention,
        {"num_heads": 4, "key_dim": 3, "num_key_value_heads": 2, "use_gate": True, "dropout": 0.1},
        {"query": random(B, T, DIM), "value": random(B, S, DIM, seed=1)},
        call_kwargs={"return_attention_scores": True, "use_causal_mask": True},
        expected_output_shape=((B, T, DIM), (B, 4, T, S)),
        expected_num_trainable_weights=10,
    )


def test_harness_fused_path_grouped_heads_causal():
    run_layer_test(
        MultiHeadAttention,
        {"num_heads": 4, "key_dim": 3, "num_key_value_heads": 2, "attention_implementation": "fused"},
        {"query": random(B, T, DIM), "value": random(B, T, DIM, seed=1)},
        call_kwargs={"use_causal_mask": True},
        expected_output_shape=(B, T, DIM),
        expected_num_trainable_weights=8,
    )


def test_harness_cache():
    run_layer_test(
        MultiHeadAttention,
        {"num_heads": 2, "key_dim": 4, "num_key_value_heads": 1},
        {
            "query": random(B, 1, DIM),
            "value": random(B, 1, DIM, seed=1),
            "cache": random(B, 2, S, 1, 4, seed=2),
        },
        call_kwargs={"cache_update_index": 2, "use_causal_mask": True},
        expected_output_shape=((B, 1, DIM), (B, 2, S, 1, 4)),
        expected_num_trainable_weights=8,
        # Caches serve inference; TensorFlow has no gradient for the cache update.
        run_training_check=False,
    )


# === Equivalence with keras.layers.MultiHeadAttention ===


def keras_pair(**kwargs):
    """A keras MultiHeadAttention and ours with the keras layer's weights."""
    reference = keras.layers.MultiHeadAttention(**kwargs)
    ours = MultiHeadAttention(**kwargs)
    query, value, key = random(B, T, DIM), random(B, S, 6, seed=1), random(B, S, 5, seed=2)
    # keras's fused path (no scores) fails under JAX when value_dim != key_dim.
    reference(query, value, key, return_attention_scores=True)
    ours(query, value, key)
    ours.set_weights(reference.get_weights())
    return reference, ours


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"use_gate": True},
        {"output_shape": (3, 2), "value_dim": 5, "use_bias": False},
        {"sliding_window": 2},
    ],
    ids=["default", "gate", "output_shape", "sliding_window"],
)
def test_same_weights_outputs_and_scores_as_keras(kwargs):
    reference, ours = keras_pair(num_heads=2, key_dim=3, **kwargs)
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in reference.weights]
    assert [w.path.split("/", 1)[1] for w in ours.weights] == [
        w.path.split("/", 1)[1] for w in reference.weights
    ]
    query, value, key = random(B, T, DIM), random(B, S, 6, seed=1), random(B, S, 5, seed=2)
    value_mask = VALUE_IDS > 0
    attention_mask = random(B, T, S, seed=3) > -0.5
    for call_kwargs in (
        {},
        {"use_causal_mask": True},
        {"value_mask": value_mask, "attention_mask": attention_mask},
        {"value_mask": value_mask, "use_causal_mask": True},
    ):
        expected = reference(query, value, key, return_attention_scores=True, **call_kwargs)
        got = ours(query, value, key, return_attention_scores=True, **call_kwargs)
        for a, b in zip(got, expected):
            np.testing.assert_allclose(numpy(a), numpy(b), atol=1e-5)
        # Without scores, ours gives the same outputs. (keras's fused path
        # differs from its own scores path on fully masked rows, where both
        # of ours give zero attention.)
        got = ours(query, value, key, **call_kwargs)
        np.testing.assert_allclose(numpy(got), numpy(expected[0]), atol=1e-5)


def test_activity_regularizer_losses_as_keras():
    # keras regularizes the four projections' outputs only: the layer's own
    # output, scores and cache add no loss.
    reference, ours = keras_pair(num_heads=2, key_dim=3, activity_regularizer="l2")
    query, value, key = random(B, T, DIM), random(B, S, 6, seed=1), random(B, S, 5, seed=2)
    for call_kwargs in ({}, {"return_attention_scores": True}):
        reference(query, value, key, **call_kwargs)
        ours(query, value, key, **call_kwargs)
        assert len(ours.losses) == len(reference.losses) == 4
        np.testing.assert_allclose(
            numpy(sum(ours.losses)), numpy(sum(reference.losses)), rtol=1e-5
        )
    restored = MultiHeadAttention.from_config(ours.get_config())
    assert restored.get_config()["activity_regularizer"] == ours.get_config()["activity_regularizer"]


def test_implicit_masks_as_keras():
    reference = keras.layers.MultiHeadAttention(num_heads=2, key_dim=3)
    ours = MultiHeadAttention(num_heads=2, key_dim=3)
    reference(random(B, T, DIM), random(B, S, 6))
    ours(random(B, T, DIM), random(B, S, 6))
    ours.set_weights(reference.get_weights())
    query, value = masked(QUERY_IDS), masked(VALUE_IDS, dim=6, seed=1)
    expected = reference(query, value, return_attention_scores=True)
    query, value = masked(QUERY_IDS), masked(VALUE_IDS, dim=6, seed=1)
    got = ours(query, value, return_attention_scores=True)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(numpy(a), numpy(b), atol=1e-5)


# === Masks ===


def test_implicit_mask_equals_explicit_mask():
    layer = MultiHeadAttention(num_heads=2, key_dim=3)
    implicit = layer(masked(QUERY_IDS), masked(VALUE_IDS, seed=1), return_attention_scores=True)
    explicit = layer(
        numpy(masked(QUERY_IDS)),  # plain arrays: no Keras mask
        numpy(masked(VALUE_IDS, seed=1)),
        query_mask=QUERY_IDS > 0,
        value_mask=VALUE_IDS > 0,
        return_attention_scores=True,
    )
    for a, b in zip(implicit, explicit):
        np.testing.assert_allclose(numpy(a), numpy(b), atol=1e-6)


def test_explicit_mask_wins_over_implicit_mask():
    layer = MultiHeadAttention(num_heads=2, key_dim=3)
    value_mask = np.array([[1, 1, 1, 1, 0], [1, 0, 0, 0, 0]], bool)
    got = layer(masked(QUERY_IDS), masked(VALUE_IDS, seed=1), value_mask=value_mask)
    expected = layer(
        numpy(masked(QUERY_IDS)),
        numpy(masked(VALUE_IDS, seed=1)),
        query_mask=QUERY_IDS > 0,
        value_mask=value_mask,
    )
    np.testing.assert_allclose(numpy(got), numpy(expected), atol=1e-6)


def test_padding_changes_no_other_position():
    layer = MultiHeadAttention(num_heads=2, key_dim=3)
    query, value = random(B, T, DIM), random(B, S, DIM, seed=1)
    value_mask = VALUE_IDS > 0
    before = numpy(layer(query, value, value_mask=value_mask))
    value[~value_mask] = 100.0  # change only the padded keys
    after = numpy(layer(query, value, value_mask=value_mask))
    np.testing.assert_allclose(after, before, atol=1e-6)


def test_fully_masked_query_gets_zero_attention_in_float16():
    layer = MultiHeadAttention(num_heads=2, key_dim=3, use_bias=False, dtype="mixed_float16")
    value_mask = np.array([[0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], bool)
    outputs, scores = layer(
        random(B, T, DIM), random(B, S, DIM, seed=1), value_mask=value_mask, return_attention_scores=True
    )
    assert np.all(np.isfinite(numpy(outputs)))
    np.testing.assert_array_equal(numpy(scores)[0], 0.0)
    np.testing.assert_array_equal(numpy(outputs)[0], 0.0)  # no bias: zero attention, zero output


def test_causal_outputs_ignore_the_future():
    layer = MultiHeadAttention(num_heads=2, key_dim=3)
    x = random(B, T, DIM)
    before = numpy(layer(x, x, use_causal_mask=True))
    x[:, 2:] = random(B, T - 2, DIM, seed=5)
    after = numpy(layer(x, x, use_causal_mask=True))
    np.testing.assert_allclose(after[:, :2], before[:, :2], atol=1e-6)
    assert not np.allclose(after[:, 2:], before[:, 2:])


# === Grouped-query and multi-query attention ===


@pytest.mark.parametrize("num_key_value_heads", [1, 2])
def test_grouped_heads_equal_full_heads_with_repeated_key_value_heads(num_key_value_heads):
    num_heads, key_dim = 4, 3
    groups = num_heads // num_key_value_heads
    grouped = MultiHeadAttention(num_heads, key_dim, num_key_value_heads=num_key_value_heads)
    full = MultiHeadAttention(num_heads, key_dim)
    query, value = random(B, T, DIM), random(B, S, DIM, seed=1)
    grouped(query, value)
    full(query, value)
    assert tuple(grouped.key_dense.kernel.shape) == (DIM, num_key_value_heads, key_dim)
    # Key/value head k serves query heads k * G ... k * G + G - 1.
    weights = []
    for weight in grouped.get_weights():
        if weight.shape[-2:] == (num_key_value_heads, key_dim):  # key/value kernels and biases
            weight = np.repeat(weight, groups, axis=-2)
        weights.append(weight)
    full.set_weights(weights)
    mask = VALUE_IDS > 0
    got = grouped(query, value, value_mask=mask, use_causal_mask=True, return_attention_scores=True)
    expected = full(query, value, value_mask=mask, use_causal_mask=True, return_attention_scores=True)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(numpy(a), numpy(b), atol=1e-5)


# === Incremental decoding ===


@pytest.mark.parametrize("num_key_value_heads", [None, 1])
def test_cached_decoding_equals_full_causal_pass(num_key_value_heads):
    layer = MultiHeadAttention(num_heads=2, key_dim=4, num_key_value_heads=num_key_value_heads)
    x = random(B, S, DIM)
    expected, expected_scores = layer(x, x, use_causal_mask=True, return_attention_scores=True)
    cache = np.zeros((B, 2, S, num_key_value_heads or 2, 4), "float32")
    # A prompt of two tokens, then one token at a time.
    outputs, cache = layer(x[:, :2], x[:, :2], cache=cache, cache_update_index=0, use_causal_mask=True)
    steps = [outputs]
    for index in range(2, S):
        token = x[:, index : index + 1]
        outputs, scores, cache = layer(
            token,
            token,
            cache=cache,
            cache_update_index=index,
            use_causal_mask=True,
            return_attention_scores=True,
        )
        steps.append(outputs)
        np.testing.assert_allclose(numpy(scores)[:, :, 0], numpy(expected_scores)[:, :, index], atol=1e-5)
    np.testing.assert_allclose(numpy(ops.concatenate(steps, axis=1)), numpy(expected), atol=1e-5)
    # The cache holds the projections of the whole sequence.
    np.testing.assert_allclose(numpy(cache)[:, 0], numpy(layer.key_dense(x)), atol=1e-5)
    # Without an update index the cache is used as is and returned unchanged.
    outputs, same_cache = layer(x[:, -1:], x[:, -1:], cache=cache)
    np.testing.assert_allclose(numpy(same_cache), numpy(cache))


def test_cached_decoding_with_a_mask_of_the_new_tokens():
    layer = MultiHeadAttention(num_heads=2, key_dim=4)
    x = random(B, S, DIM)
    padding = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    expected = numpy(layer(x, x, query_mask=padding, value_mask=padding, use_causal_mask=True))
    cache = np.zeros((B, 2, S, 2, 4), "float32")
    steps = []
    for index in range(S):
        token, token_mask = x[:, index : index + 1], padding[:, index : index + 1]
        outputs, cache = layer(
            token,
            token,
            query_mask=token_mask,
            value_mask=token_mask,  # (B, 1): spliced in at the update index
            cache=cache,
            cache_update_index=index,
            use_causal_mask=True,
        )
        steps.append(numpy(outputs))
    got = np.concatenate(steps, axis=1)
    np.testing.assert_allclose(got[padding], expected[padding], atol=1e-5)


# === Implementations ===


def test_blocked_and_fused_paths_equal_plain_path():
    x, value = random(B, T, DIM), random(B, S, DIM, seed=1)
    plain = MultiHeadAttention(num_heads=2, key_dim=4, attention_implementation="plain")
    blocked = MultiHeadAttention(num_heads=2, key_dim=4, attention_implementation="blocked")
    flash = MultiHeadAttention(num_heads=2, key_dim=4, flash_attention=True)
    fused = MultiHeadAttention(num_heads=2, key_dim=4, attention_implementation="fused")
    plain(x, value)
    for layer in (blocked, flash, fused):
        layer(x, value)
        layer.set_weights(plain.get_weights())
    for call_kwargs in ({}, {"use_causal_mask": True, "value_mask": VALUE_IDS > 0}):
        expected = numpy(plain(x, value, **call_kwargs))
        for layer in (blocked, flash, fused):
            np.testing.assert_allclose(numpy(layer(x, value, **call_kwargs)), expected, atol=1e-5)


def test_dropout_acts_in_training_only():
    layer = MultiHeadAttention(num_heads=2, key_dim=4, dropout=0.5, seed=1)
    x = random(B, T, DIM)
    inference = numpy(layer(x, x))
    np.testing.assert_allclose(numpy(layer(x, x, training=False)), inference)
    assert not np.allclose(numpy(layer(x, x, training=True)), inference)


def test_symbolic_call_with_scores_and_cache_shapes():
    layer = MultiHeadAttention(num_heads=2, key_dim=4)
    query, value = keras.Input((1, DIM)), keras.Input((3, 6))
    cache = keras.Input((2, S, 2, 4))
    outputs, scores, new_cache = layer(
        query, value, cache=cache, cache_update_index=0, return_attention_scores=True
    )
    assert tuple(outputs.shape) == (None, 1, DIM)
    assert tuple(scores.shape) == (None, 2, 1, S)
    assert tuple(new_cache.shape) == (None, 2, S, 2, 4)


# === Errors ===


CONSTRUCTOR_ERRORS = [
    ({"num_heads": 0, "key_dim": 4}, "num_heads"),
    ({"num_heads": 2.0, "key_dim": 4}, "num_heads"),
    ({"num_heads": 2, "key_dim": 0}, "key_dim=0"),
    ({"num_heads": 2, "key_dim": -3}, "key_dim=-3"),
    ({"num_heads": 2, "key_dim": 4, "value_dim": 0}, "value_dim"),
    ({"num_heads": 4, "key_dim": 4, "num_key_value_heads": 3}, "num_key_value_heads=3"),
    ({"num_heads": 4, "key_dim": 4, "num_key_value_heads": 0}, "num_key_value_heads"),
    ({"num_heads": 2, "key_dim": 4, "dropout": 1.5}, "dropout"),
    ({"num_heads": 2, "key_dim": 4, "output_shape": "wide"}, "output_shape"),
    ({"num_heads": 2, "key_dim": 4, "attention_axes": (2, 3)}, "attention_axes"),
    ({"num_heads": 2, "key_dim": 4, "sliding_window": 0}, "sliding_window"),
    ({"num_heads": 2, "key_dim": 4, "flash_attention": "yes"}, "flash_attention"),
    ({"num_heads": 2, "key_dim": 4, "attention_implementation": "fast"}, "Unknown attention_implementation"),
    (
        {"num_heads": 2, "key_dim": 4, "flash_attention": True, "attention_implementation": "plain"},
        "contradicts",
    ),
    ({"num_heads": 2, "key_dim": 4, "flash_attention": True, "dropout": 0.1}, "dropout=0.1"),
    ({"num_heads": 2, "key_dim": 4, "attention_implementation": "fused", "dropout": 0.1}, "dropout=0.1"),
]


def test_constructor_errors():
    for kwargs, match in CONSTRUCTOR_ERRORS:
        with pytest.raises(ValueError, match=match):
            MultiHeadAttention(**kwargs)


def test_build_errors():
    layer = MultiHeadAttention(num_heads=2, key_dim=4)
    with pytest.raises(ValueError, match=r"`query` must have rank 3"):
        layer(random(B, 2, T, DIM), random(B, S, DIM))
    with pytest.raises(ValueError, match="same length S"):
        MultiHeadAttention(num_heads=2, key_dim=4)(random(B, T, DIM), random(B, S, DIM), random(B, 3, DIM))


CALL_ERRORS = [
    ({"query_mask": np.ones((B, T, 1), bool)}, r"`query_mask` must have rank 2"),
    ({"query_mask": np.ones((B, T + 1), bool)}, r"query_mask.shape=\(2, 5\)"),
    ({"value_mask": np.ones((B, S - 1), bool)}, r"`value_mask` must have shape \(B, S\)"),
    ({"key_mask": np.ones((3, S), bool)}, r"key_mask.shape=\(3, 5\)"),
    ({"attention_mask": np.ones((B, S), bool)}, r"`attention_mask` must have rank 3"),
    ({"attention_mask": np.ones((B, T, S + 1), bool)}, r"attention_mask.shape=\(2, 4, 6\)"),
    ({"cache_update_index": 0}, "needs a `cache`"),
]
CACHE_ERRORS = [
    (np.zeros((B, 2, S, 2), "float32"), r"`cache` must have rank 5"),
    (np.zeros((B, 2, S, 3, 4), "float32"), r"cache.shape=\(2, 2, 5, 3, 4\)"),
    (np.zeros((B, 3, S, 2, 4), "float32"), r"\(B, 2, S, num_key_value_heads, key_dim\)"),
]


def test_call_errors():
    layer = MultiHeadAttention(num_heads=2, key_dim=4)
    query, value, token = random(B, T, DIM), random(B, S, DIM, seed=1), random(B, 1, DIM)
    for call_kwargs, match in CALL_ERRORS:
        with pytest.raises(ValueError, match=match):
            layer(query, value, **call_kwargs)
    for cache, match in CACHE_ERRORS:
        with pytest.raises(ValueError, match=match):
            layer(token, token, cache=cache, cache_update_index=0)
    with pytest.raises(ValueError, match=r"`cache_update_index` must be in \[0, 4\].*cache_update_index=5"):
        layer(token, token, cache=np.zeros((B, 2, S, 2, 4), "float32"), cache_update_index=S)


def test_cache_needs_equal_key_and_value_head_sizes():
    layer = MultiHeadAttention(num_heads=2, key_dim=4, value_dim=3)
    with pytest.raises(ValueError, match="value_dim == key_dim"):
        token = random(B, 1, DIM)
        layer(token, token, cache=np.zeros((B, 2, S, 2, 4), "float32"), cache_update_index=0)


@pytest.mark.parametrize("implementation", ["blocked", "fused"])
def test_scores_need_the_plain_path(implementation):
    layer = MultiHeadAttention(num_heads=2, key_dim=4, attention_implementation=implementation)
    with pytest.raises(ValueError, match=f"return_attention_scores.*{implementation} path"):
        layer(random(B, T, DIM), random(B, S, DIM), return_attention_scores=True)
