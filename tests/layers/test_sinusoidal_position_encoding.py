"""Tests of `SinusoidalPositionEncoding`."""

import keras
import keras_hub
import numpy as np
import pytest
from keras import ops

from keras_attention.layers import SinusoidalPositionEncoding
from tests.harness import run_layer_test


def numpy_encoding(positions, hidden_dim, max_wavelength=10000):
    """The encoding written out from the paper's formula, in float64."""
    encoding = np.zeros((len(positions), hidden_dim))
    for row, position in enumerate(positions):
        for i in range(hidden_dim):
            angle = position / max_wavelength ** (2 * (i // 2) / hidden_dim)
            encoding[row, i] = np.sin(angle) if i % 2 == 0 else np.cos(angle)
    return encoding


def test_layer():
    run_layer_test(
        SinusoidalPositionEncoding,
        {"max_wavelength": 100},
        np.random.normal(size=(2, 5, 6)).astype("float32"),
        expected_output_shape=(2, 5, 6),
        expected_num_trainable_weights=0,
    )


def test_hand_computed_values():
    encoding = SinusoidalPositionEncoding()(np.zeros((1, 3, 4), "float32"))
    # Position 1: sin(1), cos(1), sin(1/100), cos(1/100) (10000 ** (2/4) = 100).
    expected = [
        [0.0, 1.0, 0.0, 1.0],
        [np.sin(1.0), np.cos(1.0), np.sin(0.01), np.cos(0.01)],
        [np.sin(2.0), np.cos(2.0), np.sin(0.02), np.cos(0.02)],
    ]
    np.testing.assert_allclose(ops.convert_to_numpy(encoding)[0], expected, atol=1e-6)


@pytest.mark.parametrize("hidden_dim", [6, 7])
def test_matches_formula_and_keras_hub(hidden_dim):
    inputs = np.random.normal(size=(2, 9, hidden_dim)).astype("float32")
    ours = ops.convert_to_numpy(SinusoidalPositionEncoding(max_wavelength=50)(inputs))
    theirs = ops.convert_to_numpy(keras_hub.layers.SinePositionEncoding(max_wavelength=50)(inputs))
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    np.testing.assert_allclose(ours[1], numpy_encoding(range(9), hidden_dim, 50), atol=1e-5)


@pytest.mark.parametrize("as_tensor", [False, True])
def test_start_index_equals_slice_of_full_pass(as_tensor):
    layer = SinusoidalPositionEncoding()
    full = ops.convert_to_numpy(layer(np.zeros((2, 10, 8), "float32")))
    start_index = ops.convert_to_tensor(4, "int32") if as_tensor else 4
    step = ops.convert_to_numpy(layer(np.zeros((2, 3, 8), "float32"), start_index=start_index))
    np.testing.assert_allclose(step, full[:, 4:7], atol=1e-6)


def test_float16_angles_are_computed_in_float32():
    # Position 3001 is not a float16 number (spacing 2 above 2048): angles
    # computed in float16 would be off by up to a radian.
    layer = SinusoidalPositionEncoding(dtype="mixed_float16")
    encoding = layer(np.zeros((1, 4, 8), "float32"), start_index=3000)
    assert keras.backend.standardize_dtype(encoding.dtype) == "float16"
    expected = numpy_encoding(range(3000, 3004), 8)
    np.testing.assert_allclose(ops.convert_to_numpy(ops.cast(encoding, "float32"))[0], expected, atol=2e-3)


class MaskOf(keras.layers.Layer):
    """Returns the implicit Keras mask it receives, as 0/1 floats."""

    def call(self, inputs, mask=None):
        return ops.cast(mask, "float32")

    def compute_mask(self, inputs, mask=None):
        return None


def test_implicit_mask_passes_through():
    token_ids = keras.Input((None,), dtype="int32")
    embedded = keras.layers.Embedding(10, 4, mask_zero=True)(token_ids)
    model = keras.Model(token_ids, MaskOf()(SinusoidalPositionEncoding()(embedded)))
    mask = ops.convert_to_numpy(model(np.array([[3, 1, 0]])))
    np.testing.assert_array_equal(mask, [[1, 1, 0]])


@pytest.mark.parametrize("max_wavelength", [0, -5, 1, "10000", None])
def test_bad_max_wavelength(max_wavelength):
    with pytest.raises(ValueError, match="max_wavelength"):
        SinusoidalPositionEncoding(max_wavelength=max_wavelength)


def test_input_without_sequence_axis():
    with pytest.raises(ValueError, match=r"\(B, T, D\)"):
        SinusoidalPositionEncoding()(np.zeros((4,), "float32"))
