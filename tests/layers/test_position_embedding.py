"""Tests of `PositionEmbedding`."""

import keras
import keras_hub
import numpy as np
import pytest
from keras import ops

from keras_attention.layers import PositionEmbedding
from tests.harness import run_layer_test


def test_layer():
    run_layer_test(
        PositionEmbedding,
        {"sequence_length": 8},
        np.random.normal(size=(2, 5, 4)).astype("float32"),
        expected_output_shape=(2, 5, 4),
        expected_num_trainable_weights=1,
    )


def test_config_keeps_the_initializer():
    layer = PositionEmbedding(sequence_length=4, initializer=keras.initializers.Constant(0.5))
    restored = PositionEmbedding.from_config(layer.get_config())
    outputs = restored(np.zeros((1, 3, 2), "float32"))
    np.testing.assert_allclose(ops.convert_to_numpy(outputs), 0.5)


def test_returns_the_first_rows_of_the_table():
    layer = PositionEmbedding(sequence_length=6)
    outputs = ops.convert_to_numpy(layer(np.zeros((3, 4, 5), "float32")))
    table = ops.convert_to_numpy(layer.position_embeddings)
    for example in outputs:
        np.testing.assert_allclose(example, table[:4])


@pytest.mark.parametrize("start_index", [0, 3])
def test_equals_keras_hub(start_index):
    inputs = np.zeros((2, 4, 6), "float32")
    ours = PositionEmbedding(sequence_length=10)
    theirs = keras_hub.layers.PositionEmbedding(sequence_length=10)
    ours.build(inputs.shape)
    theirs.build(inputs.shape)
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(
        ops.convert_to_numpy(ours(inputs, start_index=start_index)),
        ops.convert_to_numpy(theirs(inputs, start_index=start_index)),
    )


@pytest.mark.parametrize("as_tensor", [False, True])
def test_start_index_equals_slice_of_full_pass(as_tensor):
    layer = PositionEmbedding(sequence_length=8)
    full = ops.convert_to_numpy(layer(np.zeros((2, 8, 4), "float32")))
    start_index = ops.convert_to_tensor(5, "int32") if as_tensor else 5
    for position in range(5, 8):
        start = ops.convert_to_tensor(position, "int32") if as_tensor else position
        step = ops.convert_to_numpy(layer(np.zeros((2, 1, 4), "float32"), start_index=start))
        np.testing.assert_allclose(step, full[:, position : position + 1])
    chunk = ops.convert_to_numpy(layer(np.zeros((2, 3, 4), "float32"), start_index=start_index))
    np.testing.assert_allclose(chunk, full[:, 5:8])


def test_table_is_float32_and_output_in_compute_dtype():
    layer = PositionEmbedding(sequence_length=4, dtype="mixed_bfloat16")
    outputs = layer(np.zeros((1, 4, 2), "float32"))
    assert keras.backend.standardize_dtype(layer.position_embeddings.dtype) == "float32"
    assert keras.backend.standardize_dtype(outputs.dtype) == "bfloat16"


@pytest.mark.parametrize("sequence_length", [None, 0, -1, 2.5, "8", True])
def test_bad_sequence_length(sequence_length):
    with pytest.raises(ValueError, match="sequence_length"):
        PositionEmbedding(sequence_length=sequence_length)


def test_input_longer_than_the_table():
    with pytest.raises(ValueError, match="4 positions.*length 5.*Truncate"):
        PositionEmbedding(sequence_length=4)(np.zeros((1, 5, 2), "float32"))


def test_symbolic_input_longer_than_the_table():
    with pytest.raises(ValueError, match="4 positions"):
        PositionEmbedding(sequence_length=4)(keras.Input((6, 2)))


def test_start_index_past_the_table():
    layer = PositionEmbedding(sequence_length=4)
    layer(np.zeros((1, 4, 2), "float32"))
    with pytest.raises(ValueError, match="length 2 starting at position 3"):
        layer(np.zeros((1, 2, 2), "float32"), start_index=3)
    with pytest.raises(ValueError, match="start_index"):
        layer(np.zeros((1, 2, 2), "float32"), start_index=-1)


@pytest.mark.parametrize("shape", [(4,), (2, 3, None)])
def test_input_without_known_features(shape):
    with pytest.raises(ValueError, match=r"\(B, T, D\)"):
        PositionEmbedding(sequence_length=4).build(shape)
