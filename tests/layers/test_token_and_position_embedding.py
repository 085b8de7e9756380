"""Tests of `TokenAndPositionEmbedding`."""

import keras
import keras_hub
import numpy as np
import pytest
from keras import ops

from keras_attention.layers import TokenAndPositionEmbedding
from tests.harness import run_layer_test

TOKEN_IDS = np.array([[4, 9, 3, 0, 0], [1, 2, 3, 4, 5]], dtype="int32")


class MaskOf(keras.layers.Layer):
    """Returns the implicit Keras mask it receives, as 0/1 floats."""

    def call(self, inputs, mask=None):
        return ops.cast(mask, "float32")

    def compute_mask(self, inputs, mask=None):
        return None


# Untied, the output table is used by `reverse=True` only, not by `call`.
@pytest.mark.filterwarnings("ignore:Gradients do not exist")
@pytest.mark.parametrize("tie_weights, num_weights", [(True, 2), (False, 3)])
def test_layer(tie_weights, num_weights):
    run_layer_test(
        TokenAndPositionEmbedding,
        {
            "vocabulary_size": 10,
            "sequence_length": 8,
            "embedding_dim": 6,
            "tie_weights": tie_weights,
            "mask_zero": True,
        },
        TOKEN_IDS,
        expected_output_shape=(2, 5, 6),
        expected_num_trainable_weights=num_weights,
    )


@pytest.mark.parametrize("tie_weights", [True, False])
def test_equals_keras_hub_after_copying_weights(tie_weights):
    kwargs = {"vocabulary_size": 10, "sequence_length": 8, "embedding_dim": 6, "tie_weights": tie_weights}
    ours = TokenAndPositionEmbedding(**kwargs)
    theirs = keras_hub.layers.TokenAndPositionEmbedding(**kwargs)
    ours.build(TOKEN_IDS.shape)
    theirs.build(TOKEN_IDS.shape)
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    ours.set_weights(theirs.get_weights())
    for start_index in (0, 3):
        np.testing.assert_allclose(
            ops.convert_to_numpy(ours(TOKEN_IDS[:, :5 - start_index], start_index=start_index)),
            ops.convert_to_numpy(theirs(TOKEN_IDS[:, :5 - start_index], start_index=start_index)),
        )
    hidden = np.random.normal(size=(2, 5, 6)).astype("float32")
    np.testing.assert_allclose(
        ops.convert_to_numpy(ours.token_embedding(hidden, reverse=True)),
        ops.convert_to_numpy(theirs.token_embedding(hidden, reverse=True)),
        atol=1e-6,
    )


def test_is_token_plus_position_table():
    layer = TokenAndPositionEmbedding(vocabulary_size=10, sequence_length=8, embedding_dim=4)
    outputs = ops.convert_to_numpy(layer(TOKEN_IDS))
    tokens = ops.convert_to_numpy(layer.token_embedding.embeddings)
    positions = ops.convert_to_numpy(layer.position_embedding.position_embeddings)
    np.testing.assert_allclose(outputs, tokens[TOKEN_IDS] + positions[:5], atol=1e-6)


def test_tied_reverse_projection():
    layer = TokenAndPositionEmbedding(vocabulary_size=10, sequence_length=8, embedding_dim=4)
    layer(TOKEN_IDS)
    hidden = np.random.normal(size=(2, 3, 4)).astype("float32")
    logits = ops.convert_to_numpy(layer.token_embedding(hidden, reverse=True))
    table = ops.convert_to_numpy(layer.token_embedding.embeddings)
    np.testing.assert_allclose(logits, hidden @ table.T, atol=1e-5)


@pytest.mark.parametrize("as_tensor", [False, True])
def test_start_index_equals_slice_of_full_pass(as_tensor):
    layer = TokenAndPositionEmbedding(vocabulary_size=10, sequence_length=8, embedding_dim=4)
    full = ops.convert_to_numpy(layer(TOKEN_IDS))
    for position in range(5):
        start = ops.convert_to_tensor(position, "int32") if as_tensor else position
        step = layer(TOKEN_IDS[:, position : position + 1], start_index=start)
        np.testing.assert_allclose(ops.convert_to_numpy(step), full[:, position : position + 1], atol=1e-6)


def test_mask_zero_gives_the_implicit_mask_downstream():
    token_ids = keras.Input((None,), dtype="int32")
    embeddings = TokenAndPositionEmbedding(10, 8, 4, mask_zero=True)(token_ids)
    model = keras.Model(token_ids, MaskOf()(embeddings))
    np.testing.assert_array_equal(ops.convert_to_numpy(model(TOKEN_IDS)), TOKEN_IDS != 0)


def test_no_mask_without_mask_zero():
    layer = TokenAndPositionEmbedding(10, 8, 4)
    assert layer.compute_mask(TOKEN_IDS) is None
    masked = TokenAndPositionEmbedding(10, 8, 4, mask_zero=True)
    np.testing.assert_array_equal(ops.convert_to_numpy(masked.compute_mask(TOKEN_IDS)), TOKEN_IDS != 0)


def test_weights_are_float32_outputs_in_compute_dtype():
    layer = TokenAndPositionEmbedding(10, 8, 4, dtype="mixed_float16")
    outputs = layer(TOKEN_IDS)
    assert keras.backend.standardize_dtype(outputs.dtype) == "float16"
    assert all(keras.backend.standardize_dtype(w.dtype) == "float32" for w in layer.weights)
    assert layer.token_embedding.dtype_policy.name == "mixed_float16"
    assert layer.position_embedding.dtype_policy.name == "mixed_float16"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"vocabulary_size": None}, "vocabulary_size"),
        ({"vocabulary_size": 0}, "vocabulary_size"),
        ({"sequence_length": None}, "sequence_length"),
        ({"sequence_length": 2.0}, "sequence_length"),
        ({"embedding_dim": -4}, "embedding_dim"),
    ],
)
def test_bad_arguments(kwargs, match):
    arguments = {"vocabulary_size": 10, "sequence_length": 8, "embedding_dim": 4, **kwargs}
    with pytest.raises(ValueError, match=match):
        TokenAndPositionEmbedding(**arguments)


def test_sequence_longer_than_sequence_length():
    with pytest.raises(ValueError, match="4 positions.*length 5"):
        TokenAndPositionEmbedding(10, 4, 4)(TOKEN_IDS)


def test_wrong_input_rank():
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        TokenAndPositionEmbedding(10, 8, 4)(np.zeros((2, 5, 3), "int32"))
