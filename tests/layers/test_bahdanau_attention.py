import keras
import numpy as np
import pytest
from keras import ops

from keras_attention.layers import BahdanauAttention
from tests.harness import run_layer_test

RNG = np.random.default_rng(1)
QUERY = RNG.normal(size=(2, 3, 4)).astype("float32")
VALUE = RNG.normal(size=(2, 5, 6)).astype("float32")
KEY_PADDING_MASK = np.array([[True] * 5, [True] * 3 + [False] * 2])


def numpy(x):
    return ops.convert_to_numpy(x)


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_layer_with_sequence_query_and_scores():
    run_layer_test(
        BahdanauAttention,
        {"units": 3, "dropout": 0.1, "seed": 2},
        {"query": QUERY, "value": VALUE, "key_padding_mask": KEY_PADDING_MASK},
        call_kwargs={"return_attention_scores": True},
        expected_output_shape=((2, 3, 6), (2, 3, 5)),
        expected_num_trainable_weights=3,
    )


def test_layer_with_single_state_query():
    run_layer_test(
        BahdanauAttention,
        {"units": 3},
        {"query": QUERY[:, 0], "value": VALUE},
        call_kwargs={"return_attention_scores": True},
        expected_output_shape=((2, 6), (2, 5)),
        expected_num_trainable_weights=3,
        run_mixed_precision_check=False,
    )


def test_hand_computed_values():
    # One decoder state against 3 encoder outputs of size 2, W1 = W2 = I.
    query = np.array([[1.0, 0.0]], "float32")
    value = np.array([[[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]]], "float32")
    layer = BahdanauAttention(units=2)
    layer.build(query.shape, value.shape)
    layer.query_dense.kernel.assign(np.eye(2))
    layer.key_dense.kernel.assign(np.eye(2))
    layer.score_dense.kernel.assign([[1.0], [0.5]])
    context, scores = layer(query, value, return_attention_scores=True)
    # score_s = 1 * tanh(q1 + k_s1) + 0.5 * tanh(q2 + k_s2)
    logits = np.array(
        [np.tanh(2) + 0.5 * np.tanh(0), np.tanh(1) + 0.5 * np.tanh(1), np.tanh(3) + 0.5 * np.tanh(0)]
    )
    expected_scores = softmax(logits)
    np.testing.assert_allclose(numpy(scores), [expected_scores], atol=1e-6)
    np.testing.assert_allclose(numpy(context), [expected_scores @ value[0]], atol=1e-6)


def test_equals_keras_additive_attention():
    # With W1 = W2 = I and v = keras's `scale`, the scores are keras's.
    query = RNG.normal(size=(2, 3, 4)).astype("float32")
    key = RNG.normal(size=(2, 5, 4)).astype("float32")
    reference = keras.layers.AdditiveAttention()
    expected, expected_scores = reference(
        [query, VALUE, key], mask=[None, KEY_PADDING_MASK], return_attention_scores=True
    )
    layer = BahdanauAttention(units=4)
    layer.build(query.shape, VALUE.shape, key.shape)
    layer.query_dense.kernel.assign(np.eye(4))
    layer.key_dense.kernel.assign(np.eye(4))
    layer.score_dense.kernel.assign(numpy(reference.scale)[:, None])
    outputs, scores = layer(
        query, VALUE, key, key_padding_mask=KEY_PADDING_MASK, return_attention_scores=True
    )
    np.testing.assert_allclose(numpy(outputs), numpy(expected), atol=1e-5)
    np.testing.assert_allclose(numpy(scores), numpy(expected_scores), atol=1e-5)


def test_single_state_query_equals_row_of_sequence_query():
    layer = BahdanauAttention(units=3)
    context, scores = layer(QUERY, VALUE, key_padding_mask=KEY_PADDING_MASK, return_attention_scores=True)
    for t in range(3):
        state_context, state_scores = layer(
            QUERY[:, t], VALUE, key_padding_mask=KEY_PADDING_MASK, return_attention_scores=True
        )
        np.testing.assert_allclose(numpy(state_context), numpy(context)[:, t], atol=1e-6)
        np.testing.assert_allclose(numpy(state_scores), numpy(scores)[:, t], atol=1e-6)


def test_masked_encoder_positions_get_zero_weight_and_change_nothing():
    layer = BahdanauAttention(units=3)
    context, scores = layer(
        QUERY[:, 0], VALUE, key_padding_mask=KEY_PADDING_MASK, return_attention_scores=True
    )
    np.testing.assert_array_equal(numpy(scores)[1, 3:], 0.0)
    np.testing.assert_allclose(numpy(scores).sum(-1), 1.0, atol=1e-6)
    changed = VALUE.copy()
    changed[1, 3:] = -30.0
    np.testing.assert_allclose(
        numpy(layer(QUERY[:, 0], changed, key_padding_mask=KEY_PADDING_MASK)), numpy(context), atol=1e-6
    )


def test_implicit_mask_of_rnn_encoder_equals_explicit_mask():
    # Embedding(mask_zero) -> GRU passes the mask of the source tokens on.
    source = np.array([[4, 2, 3, 1, 5], [2, 5, 1, 0, 0]])
    embedding = keras.layers.Embedding(6, 4, mask_zero=True)
    encoder = keras.layers.GRU(6, return_sequences=True)
    layer = BahdanauAttention(units=3)
    source_ids = keras.Input((5,), dtype="int32")
    decoder_state = keras.Input((4,))
    encoder_outputs = encoder(embedding(source_ids))
    model = keras.Model([source_ids, decoder_state], layer(decoder_state, encoder_outputs))
    state = QUERY[:, 0]
    explicit = layer(state, encoder(embedding(source)), key_padding_mask=source != 0)
    np.testing.assert_allclose(numpy(model([source, state])), numpy(explicit), atol=1e-5)


def test_fully_masked_rows_give_zeros_not_nan():
    context, scores = BahdanauAttention(units=3)(
        QUERY, VALUE, key_padding_mask=np.zeros((2, 5), bool), return_attention_scores=True
    )
    np.testing.assert_array_equal(numpy(context), 0.0)
    np.testing.assert_array_equal(numpy(scores), 0.0)


def test_bad_arguments_and_shapes():
    for units in (0, 2.5, None, True):
        with pytest.raises(ValueError, match="`units` must be a positive integer"):
            BahdanauAttention(units=units)
    with pytest.raises(ValueError, match="`dropout` must be a float"):
        BahdanauAttention(units=2, dropout=2.0)
    with pytest.raises(ValueError, match="`value` must have shape"):
        BahdanauAttention(units=2)(QUERY, VALUE[:, 0])
    with pytest.raises(ValueError, match="key_padding_mask"):
        BahdanauAttention(units=2)(QUERY[:, 0], VALUE, key_padding_mask=np.ones((2, 6), bool))
