import keras
import numpy as np
import pytest
from keras import ops

from keras_attention.layers import ScaledDotProductAttention
from tests.harness import run_layer_test

RNG = np.random.default_rng(0)
QUERY = RNG.normal(size=(2, 3, 4)).astype("float32")
VALUE = RNG.normal(size=(2, 5, 4)).astype("float32")
KEY_PADDING_MASK = np.array([[True] * 5, [True] * 3 + [False] * 2])
QUERY_PADDING_MASK = np.array([[True] * 3, [True, True, False]])


def numpy(x):
    return ops.convert_to_numpy(x)


def test_layer_with_masks_and_scores():
    run_layer_test(
        ScaledDotProductAttention,
        {"use_scale": True, "dropout": 0.1, "seed": 3},
        {"query": QUERY, "value": VALUE, "key_padding_mask": KEY_PADDING_MASK},
        call_kwargs={"return_attention_scores": True},
        expected_output_shape=((2, 3, 4), (2, 3, 5)),
        expected_num_trainable_weights=1,
    )


def test_layer_with_single_state_query():
    run_layer_test(
        ScaledDotProductAttention,
        {"scale": 0.5, "use_scale": True},
        {"query": QUERY[:, 0], "value": VALUE},
        expected_output_shape=(2, 4),
        expected_num_trainable_weights=1,
        run_mixed_precision_check=False,
        run_save_check=False,
    )


def test_equals_keras_attention():
    for use_scale in (False, True):
        for use_causal_mask in (False, True):
            check_equals_keras_attention(use_scale, use_causal_mask)


def check_equals_keras_attention(use_scale, use_causal_mask):
    key = RNG.normal(size=(2, 5, 4)).astype("float32")
    value = RNG.normal(size=(2, 5, 6)).astype("float32")
    reference = keras.layers.Attention(use_scale=use_scale)
    layer = ScaledDotProductAttention(scale=1.0, use_scale=use_scale)
    reference.build([QUERY.shape, value.shape, key.shape])
    layer.build(QUERY.shape, value.shape, key.shape)
    if use_scale:
        reference.scale.assign(0.7)
        layer.learned_scale.assign(0.7)
    expected, expected_scores = reference(
        [QUERY, value, key],
        mask=[QUERY_PADDING_MASK, KEY_PADDING_MASK],
        return_attention_scores=True,
        use_causal_mask=use_causal_mask,
    )
    outputs, scores = layer(
        QUERY,
        value,
        key,
        query_padding_mask=QUERY_PADDING_MASK,
        key_padding_mask=KEY_PADDING_MASK,
        use_causal_mask=use_causal_mask,
        return_attention_scores=True,
    )
    np.testing.assert_allclose(numpy(outputs), numpy(expected), atol=1e-5)
    # keras keeps a softmax on padded queries; ours gives them zero scores.
    real = QUERY_PADDING_MASK
    np.testing.assert_allclose(numpy(scores)[real], numpy(expected_scores)[real], atol=1e-5)
    np.testing.assert_array_equal(numpy(scores)[~real], 0.0)


def test_default_scale_is_inverse_square_root_of_size():
    expected = keras.layers.Attention()([QUERY / 2.0, VALUE])  # 1 / sqrt(4)
    np.testing.assert_allclose(
        numpy(ScaledDotProductAttention()(QUERY, VALUE)), numpy(expected), atol=1e-5
    )


def test_implicit_keras_mask_equals_explicit_mask():
    token_ids = np.array([[3, 1, 2, 0, 0], [4, 4, 1, 2, 1]])
    embedding = keras.layers.Embedding(6, 4, mask_zero=True)
    layer = ScaledDotProductAttention()
    inputs = keras.Input((5,), dtype="int32")
    hidden = embedding(inputs)
    model = keras.Model(inputs, layer(hidden, hidden))
    embedded = embedding(token_ids)
    explicit = layer(
        embedded,
        embedded,
        query_padding_mask=token_ids != 0,
        key_padding_mask=token_ids != 0,
    )
    np.testing.assert_allclose(numpy(model(token_ids)), numpy(explicit), atol=1e-6)
    np.testing.assert_allclose(numpy(layer(embedded, embedded)), numpy(explicit), atol=1e-6)
    # Without the mask, padded keys would contribute.
    unmasked = ops.convert_to_tensor(numpy(embedded))
    assert not np.allclose(numpy(layer(unmasked, unmasked)), numpy(explicit))


def test_query_mask_passes_on_to_outputs():
    token_ids = np.array([[3, 1, 0]])
    embedding = keras.layers.Embedding(6, 4, mask_zero=True)
    layer = ScaledDotProductAttention()
    inputs = keras.Input((3,), dtype="int32")
    hidden = embedding(inputs)
    # GlobalAveragePooling1D averages the positions that the mask keeps.
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling1D()(layer(hidden, hidden)))
    embedded = embedding(token_ids)
    outputs = numpy(layer(embedded, embedded))
    np.testing.assert_allclose(numpy(model(token_ids)), outputs[:, :2].mean(1), atol=1e-6)


def test_explicit_mask_wins_over_implicit_mask():
    token_ids = np.array([[3, 1, 2, 0, 0]])
    hidden = keras.layers.Embedding(6, 4, mask_zero=True)(token_ids)
    everything = np.ones((1, 5), bool)
    layer = ScaledDotProductAttention()
    _, scores = layer(hidden, hidden, key_padding_mask=everything, return_attention_scores=True)
    assert np.all(numpy(scores)[0, :3, 3:] > 0)


def test_masked_keys_get_zero_weight_and_changing_them_changes_nothing():
    layer = ScaledDotProductAttention()
    outputs, scores = layer(QUERY, VALUE, key_padding_mask=KEY_PADDING_MASK, return_attention_scores=True)
    np.testing.assert_array_equal(numpy(scores)[1, :, 3:], 0.0)
    changed = VALUE.copy()
    changed[1, 3:] = 100.0
    np.testing.assert_allclose(
        numpy(layer(QUERY, changed, key_padding_mask=KEY_PADDING_MASK)), numpy(outputs), atol=1e-6
    )


def test_causal_outputs_ignore_the_future():
    layer = ScaledDotProductAttention()
    outputs = numpy(layer(QUERY, QUERY, use_causal_mask=True))
    changed = QUERY.copy()
    changed[:, 2] = 50.0
    new = numpy(layer(changed, changed, use_causal_mask=True))
    np.testing.assert_allclose(new[:, :2], outputs[:, :2], atol=1e-6)


def test_single_state_query_equals_row_of_sequence_query():
    layer = ScaledDotProductAttention()
    outputs, scores = layer(QUERY, VALUE, key_padding_mask=KEY_PADDING_MASK, return_attention_scores=True)
    for t in range(3):
        state_outputs, state_scores = layer(
            QUERY[:, t], VALUE, key_padding_mask=KEY_PADDING_MASK, return_attention_scores=True
        )
        assert tuple(state_outputs.shape) == (2, 4) and tuple(state_scores.shape) == (2, 5)
        np.testing.assert_allclose(numpy(state_outputs), numpy(outputs)[:, t], atol=1e-6)
        np.testing.assert_allclose(numpy(state_scores), numpy(scores)[:, t], atol=1e-6)


def test_fully_masked_rows_give_zeros_not_nan():
    nothing = np.zeros((2, 5), bool)
    for dtype in ("float32", "float16", "bfloat16"):
        layer = ScaledDotProductAttention(dtype=dtype)
        outputs, scores = layer(QUERY, VALUE, key_padding_mask=nothing, return_attention_scores=True)
        np.testing.assert_array_equal(numpy(ops.cast(outputs, "float32")), 0.0)
        np.testing.assert_array_equal(numpy(ops.cast(scores, "float32")), 0.0)


def test_dropout_only_in_training():
    layer = ScaledDotProductAttention(dropout=0.5, seed=1)
    inference = numpy(layer(QUERY, VALUE))
    np.testing.assert_allclose(numpy(layer(QUERY, VALUE, training=False)), inference)
    assert not np.allclose(numpy(layer(QUERY, VALUE, training=True)), inference)


def test_bad_arguments():
    for kwargs, message in (
        ({"scale": 0.0}, "`scale` must be a positive float"),
        ({"scale": "big"}, "`scale` must be a positive float"),
        ({"dropout": 1.0}, "`dropout` must be a float in"),
        ({"dropout": -0.1}, "`dropout` must be a float in"),
    ):
        with pytest.raises(ValueError, match=message):
            ScaledDotProductAttention(**kwargs)


def test_bad_shapes():
    layer = ScaledDotProductAttention()
    with pytest.raises(ValueError, match="same size D"):
        layer(QUERY, np.zeros((2, 5, 6), "float32"), np.zeros((2, 5, 3), "float32"))
    with pytest.raises(ValueError, match="`value` must have shape"):
        ScaledDotProductAttention()(QUERY, np.zeros((2, 4), "float32"))
    with pytest.raises(ValueError, match="`query` must be a sequence"):
        ScaledDotProductAttention()(np.zeros((2, 1, 3, 4), "float32"), VALUE)
    with pytest.raises(ValueError, match="the same length S"):
        ScaledDotProductAttention()(QUERY, VALUE, np.zeros((2, 4, 4), "float32"))


def test_bad_masks():
    layer = ScaledDotProductAttention()
    with pytest.raises(ValueError, match="key_padding_mask"):
        layer(QUERY, VALUE, key_padding_mask=np.ones((2, 4), bool))
    with pytest.raises(ValueError, match="query_padding_mask"):
        layer(QUERY, VALUE, query_padding_mask=np.ones((2, 3, 1), bool))
    with pytest.raises(ValueError, match="attention_mask"):
        layer(QUERY, VALUE, attention_mask=np.ones((2, 5), bool))
    with pytest.raises(ValueError, match="single-state query"):
        layer(QUERY[:, 0], VALUE, use_causal_mask=True)
