import os
import tempfile

import keras
import numpy as np
import pytest
from keras import ops

from keras_attention.layers import BahdanauAttention
from keras_attention.layers import LuongAttention
from keras_attention.layers import ScaledDotProductAttention
from tests.harness import run_layer_test

RNG = np.random.default_rng(2)
QUERY = RNG.normal(size=(2, 3, 4)).astype("float32")
VALUE = RNG.normal(size=(2, 5, 4)).astype("float32")
KEY_PADDING_MASK = np.array([[True] * 5, [True] * 3 + [False] * 2])

# One decoder state and 3 encoder outputs of size 2, for the hand computations.
STATE = np.array([[1.0, 0.0]], "float32")
ENCODER = np.array([[[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]]], "float32")


def numpy(x):
    return ops.convert_to_numpy(x)


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize(
    "init_kwargs, num_weights",
    [({"score": "general", "dropout": 0.1}, 1), ({"score": "concat", "units": 3}, 3)],
)
def test_layer(init_kwargs, num_weights):
    run_layer_test(
        LuongAttention,
        init_kwargs,
        {"query": QUERY, "value": VALUE, "key_padding_mask": KEY_PADDING_MASK},
        call_kwargs={"return_attention_scores": True},
        expected_output_shape=((2, 3, 4), (2, 3, 5)),
        expected_num_trainable_weights=num_weights,
    )


def test_layer_dot_with_single_state_query():
    run_layer_test(
        LuongAttention,
        {"score": "dot"},
        {"query": QUERY[:, 0], "value": VALUE},
        expected_output_shape=(2, 4),
        expected_num_trainable_weights=0,
        run_mixed_precision_check=False,
    )


def check_hand_computed(layer, logits):
    context, scores = layer(STATE, ENCODER, return_attention_scores=True)
    expected_scores = softmax(np.array(logits))
    np.testing.assert_allclose(numpy(scores), [expected_scores], atol=1e-6)
    np.testing.assert_allclose(numpy(context), [expected_scores @ ENCODER[0]], atol=1e-6)


def test_hand_computed_dot():
    # q . k_s for q = [1, 0]: 1, 0, 2.
    check_hand_computed(LuongAttention("dot"), [1.0, 0.0, 2.0])


def test_hand_computed_general():
    # q W = [2, 1] for W = [[2, 1], [0, 3]]; (q W) . k_s: 2, 1, 4.
    layer = LuongAttention("general")
    layer.build(STATE.shape, ENCODER.shape)
    layer.query_dense.kernel.assign([[2.0, 1.0], [0.0, 3.0]])
    check_hand_computed(layer, [2.0, 1.0, 4.0])


def test_hand_computed_concat():
    # v^T tanh(W [q; k]) with W = [[1, 0, 1, 0], [0, 1, 0, 2]] (W1 = I, W2 =
    # diag(1, 2)) and v = [1, -1]: tanh(q1 + k1) - tanh(q2 + 2 k2).
    layer = LuongAttention("concat", units=2)
    layer.build(STATE.shape, ENCODER.shape)
    layer.query_dense.kernel.assign(np.eye(2))
    layer.key_dense.kernel.assign([[1.0, 0.0], [0.0, 2.0]])
    layer.score_dense.kernel.assign([[1.0], [-1.0]])
    check_hand_computed(layer, [np.tanh(2.0), np.tanh(1.0) - np.tanh(2.0), np.tanh(3.0)])


def test_dot_equals_unscaled_dot_product_attention_and_concat_equals_bahdanau():
    dot = LuongAttention("dot")(QUERY, VALUE, key_padding_mask=KEY_PADDING_MASK)
    reference = ScaledDotProductAttention(scale=1.0)(QUERY, VALUE, key_padding_mask=KEY_PADDING_MASK)
    np.testing.assert_allclose(numpy(dot), numpy(reference), atol=1e-6)

    concat = LuongAttention("concat", units=3)
    bahdanau = BahdanauAttention(units=3)
    outputs = concat(QUERY, VALUE, key_padding_mask=KEY_PADDING_MASK)
    bahdanau(QUERY, VALUE)
    bahdanau.set_weights(concat.get_weights())
    np.testing.assert_allclose(
        numpy(bahdanau(QUERY, VALUE, key_padding_mask=KEY_PADDING_MASK)), numpy(outputs), atol=1e-6
    )


def test_concat_units_default_to_key_size():
    layer = LuongAttention("concat")
    layer(QUERY[:, :, :3], VALUE)
    assert tuple(layer.query_dense.kernel.shape) == (3, 4)
    assert tuple(layer.score_dense.kernel.shape) == (4, 1)


@pytest.mark.parametrize("score", ["dot", "general", "concat"])
def test_single_state_query_equals_row_of_sequence_query_and_masked_positions_change_nothing(score):
    layer = LuongAttention(score)
    context, scores = layer(QUERY, VALUE, key_padding_mask=KEY_PADDING_MASK, return_attention_scores=True)
    np.testing.assert_array_equal(numpy(scores)[1, :, 3:], 0.0)
    changed = VALUE.copy()
    changed[1, 3:] = 40.0
    for t in range(3):
        state_context, state_scores = layer(
            QUERY[:, t], changed, key_padding_mask=KEY_PADDING_MASK, return_attention_scores=True
        )
        np.testing.assert_allclose(numpy(state_context), numpy(context)[:, t], atol=1e-5)
        np.testing.assert_allclose(numpy(state_scores), numpy(scores)[:, t], atol=1e-5)


def test_rnn_encoder_decoder_with_implicit_masks_saves_and_reloads():
    """Teacher forcing: decoder sequence attends to the masked encoder outputs."""
    source = np.array([[4, 2, 3, 1], [2, 5, 0, 0]])
    target = np.array([[1, 3, 2], [1, 4, 0]])
    source_ids = keras.Input((None,), dtype="int32", name="source")
    target_ids = keras.Input((None,), dtype="int32", name="target")
    encoder_outputs, state = keras.layers.GRU(4, return_sequences=True, return_state=True)(
        keras.layers.Embedding(6, 3, mask_zero=True)(source_ids)
    )
    decoder_outputs = keras.layers.GRU(4, return_sequences=True)(
        keras.layers.Embedding(6, 3, mask_zero=True)(target_ids), initial_state=state
    )
    context, scores = LuongAttention("general", name="attention")(
        decoder_outputs, encoder_outputs, return_attention_scores=True
    )
    model = keras.Model([source_ids, target_ids], [context, scores])
    context_value, scores_value = (numpy(x) for x in model([source, target]))
    np.testing.assert_array_equal(scores_value[1, :, 2:], 0.0)  # padded source
    np.testing.assert_array_equal(scores_value[1, 2], 0.0)  # padded target
    np.testing.assert_allclose(scores_value[0].sum(-1), 1.0, atol=1e-6)
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "model.keras")
        model.save(path)
        restored = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(numpy(restored([source, target])[0]), context_value, atol=1e-6)


def test_bad_arguments_and_shapes():
    expected = r"Unknown score: 'bilinear'. Expected one of \('dot', 'general', 'concat'\)"
    with pytest.raises(ValueError, match=expected):
        LuongAttention("bilinear")
    with pytest.raises(ValueError, match="`units` is used by score='concat' only"):
        LuongAttention("dot", units=4)
    with pytest.raises(ValueError, match="`units` must be a positive integer or None"):
        LuongAttention("concat", units=0)
    with pytest.raises(ValueError, match=r"score='dot'\) needs `query` and `key` of the same size"):
        LuongAttention("dot")(QUERY[:, :, :3], VALUE)
    with pytest.raises(ValueError, match="`dropout` must be a float"):
        LuongAttention(dropout="high")
    with pytest.raises(ValueError, match="single-state query"):
        LuongAttention()(QUERY[:, 0], VALUE, query_padding_mask=np.ones((2, 1), bool))
