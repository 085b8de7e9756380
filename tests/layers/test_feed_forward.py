"""FeedForward: the harness, hand-computed values, masks and errors."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_attention.layers import FeedForward
from tests.harness import run_layer_test


def test_harness():
    run_layer_test(
        FeedForward,
        {"intermediate_dim": 6, "output_dim": 3, "activation": "gelu", "dropout": 0.1},
        np.random.default_rng(0).normal(size=(2, 4, 5)).astype("float32"),
        expected_output_shape=(2, 4, 3),
        expected_num_trainable_weights=4,
    )


def test_values_computed_by_hand():
    layer = FeedForward(intermediate_dim=2)
    x = np.array([[[1.0, -2.0]]], "float32")
    layer.build(x.shape)
    kernel_1 = np.array([[1.0, -1.0], [0.5, 2.0]], "float32")
    kernel_2 = np.array([[2.0, 0.0], [1.0, 1.0]], "float32")
    layer.set_weights([kernel_1, np.array([0.5, 0.0], "float32"), kernel_2, np.array([0.0, 1.0], "float32")])
    # hidden = relu([1 - 1 + 0.5, -1 - 4 + 0]) = [0.5, 0]; output = [1, 0] + [0, 1]
    np.testing.assert_allclose(ops.convert_to_numpy(layer(x)), [[[1.0, 1.0]]])


def test_keras_mask_passes_through():
    embedded = keras.layers.Embedding(5, 4, mask_zero=True)(np.array([[1, 2, 0]]))
    outputs = FeedForward(intermediate_dim=8)(embedded)
    mask = getattr(outputs, "_keras_mask", None)
    assert mask is not None
    np.testing.assert_array_equal(ops.convert_to_numpy(mask), [[True, True, False]])


def test_errors():
    for kwargs, match in (
        ({"intermediate_dim": 0}, "intermediate_dim=0"),
        ({"intermediate_dim": 4.0}, "intermediate_dim"),
        ({"intermediate_dim": 4, "output_dim": -1}, "output_dim=-1"),
        ({"intermediate_dim": 4, "dropout": 1.0}, "dropout=1.0"),
        ({"intermediate_dim": 4, "activation": "no_such_activation"}, "no_such_activation"),
    ):
        with pytest.raises(ValueError, match=match):
            FeedForward(**kwargs)
