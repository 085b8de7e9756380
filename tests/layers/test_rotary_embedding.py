"""Tests of `RotaryEmbedding`."""

import keras
import keras_hub
import numpy as np
import pytest
from keras import ops

from keras_attention.layers import RotaryEmbedding
from tests.harness import run_layer_test


def test_layer():
    run_layer_test(
        RotaryEmbedding,
        {"max_wavelength": 100, "scaling_factor": 2.0},
        np.random.normal(size=(2, 5, 3, 4)).astype("float32"),
        expected_output_shape=(2, 5, 3, 4),
        expected_num_trainable_weights=0,
    )


@pytest.mark.parametrize(
    "shape, kwargs",
    [
        ((2, 7, 3, 8), {}),
        ((2, 7, 6), {"max_wavelength": 500, "scaling_factor": 2.5}),
        ((2, 3, 7, 8), {"sequence_axis": 2, "feature_axis": 3}),  # (B, N, T, H)
        ((2, 8, 7), {"sequence_axis": 2, "feature_axis": 1}),  # (B, D, T)
    ],
)
def test_equals_keras_hub(shape, kwargs):
    inputs = np.random.normal(size=shape).astype("float32")
    for start_index in (0, 5):
        ours = RotaryEmbedding(**kwargs)(inputs, start_index=start_index)
        theirs = keras_hub.layers.RotaryEmbedding(**kwargs)(inputs, start_index=start_index)
        np.testing.assert_allclose(ops.convert_to_numpy(ours), ops.convert_to_numpy(theirs), atol=1e-5)


def test_hand_computed_rotation():
    # H = 4: pairs (0, 2) and (1, 3) with theta = 1 and 1 / sqrt(10000) = 0.01.
    inputs = np.zeros((1, 3, 4), "float32")
    inputs[:, :, 0] = 1.0  # the unit vector of pair (0, 2)
    outputs = ops.convert_to_numpy(RotaryEmbedding()(inputs))[0]
    for position in range(3):
        np.testing.assert_allclose(
            outputs[position], [np.cos(position), 0.0, np.sin(position), 0.0], atol=1e-6
        )


def test_score_depends_only_on_the_offset():
    rng = np.random.default_rng(0)
    query, key = rng.normal(size=(2, 8)).astype("float32")
    sequence_length = 6
    layer = RotaryEmbedding(max_wavelength=100)
    # The same query and key at every position.
    queries = ops.convert_to_numpy(layer(np.tile(query, (1, sequence_length, 1))))[0]  # [T, H]
    keys = ops.convert_to_numpy(layer(np.tile(key, (1, sequence_length, 1))))[0]  # [S, H]
    scores = queries @ keys.T  # [T, S]
    for offset in range(-sequence_length + 1, sequence_length):
        diagonal = np.diagonal(scores, offset)
        np.testing.assert_allclose(diagonal, diagonal[0], atol=1e-4)
    # ... and does depend on it, unlike a plain dot product.
    assert np.ptp(np.diagonal(scores[::-1])) > 1e-2


@pytest.mark.parametrize("as_tensor", [False, True])
def test_start_index_equals_slice_of_full_pass(as_tensor):
    inputs = np.random.normal(size=(2, 9, 2, 4)).astype("float32")
    layer = RotaryEmbedding()
    full = ops.convert_to_numpy(layer(inputs))
    start_index = ops.convert_to_tensor(6, "int32") if as_tensor else 6
    step = ops.convert_to_numpy(layer(inputs[:, 6:8], start_index=start_index))
    np.testing.assert_allclose(step, full[:, 6:8], atol=1e-6)


def test_position_zero_is_unchanged_and_norms_are_kept():
    inputs = np.random.normal(size=(2, 5, 3, 6)).astype("float32")
    outputs = ops.convert_to_numpy(RotaryEmbedding()(inputs))
    np.testing.assert_allclose(outputs[:, 0], inputs[:, 0], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(outputs, axis=-1), np.linalg.norm(inputs, axis=-1), rtol=1e-5)


def test_compute_dtype():
    outputs = RotaryEmbedding(dtype="mixed_float16")(np.ones((1, 4, 8), "float32"))
    assert keras.backend.standardize_dtype(outputs.dtype) == "float16"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_wavelength": 0}, "max_wavelength"),
        ({"max_wavelength": None}, "max_wavelength"),
        ({"scaling_factor": 0.0}, "scaling_factor"),
        ({"scaling_factor": -1}, "scaling_factor"),
        ({"sequence_axis": 1.5}, "sequence_axis"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RotaryEmbedding(**kwargs)


@pytest.mark.parametrize(
    "shape, kwargs, match",
    [
        ((2, 4, 5), {}, "even"),
        ((2, 4, 3, 7), {}, "even"),
        ((2, 4), {}, "rank 2"),
        ((2, 4, 6), {"sequence_axis": 3}, "in range"),
        ((2, 4, 6), {"sequence_axis": 0}, "batch"),
        ((2, 4, 6), {"sequence_axis": 2}, "must be different"),
        ((2, 4, 6), {"sequence_axis": -1, "feature_axis": 2}, "must be different"),
    ],
)
def test_bad_inputs(shape, kwargs, match):
    with pytest.raises(ValueError, match=match):
        RotaryEmbedding(**kwargs)(np.zeros(shape, "float32"))
