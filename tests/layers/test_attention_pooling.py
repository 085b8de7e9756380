import keras
import numpy as np
import pytest
from keras import ops

from keras_attention.layers import AttentionPooling
from tests.harness import run_layer_test

RNG = np.random.default_rng(3)
INPUTS = RNG.normal(size=(2, 5, 4)).astype("float32")
PADDING_MASK = np.array([[True] * 5, [True] * 3 + [False] * 2])


def numpy(x):
    return ops.convert_to_numpy(x)


def test_layer():
    run_layer_test(
        AttentionPooling,
        {"num_heads": 2, "query_initializer": "glorot_uniform"},
        {"inputs": INPUTS, "padding_mask": PADDING_MASK},
        call_kwargs={"return_attention_scores": True},
        expected_output_shape=((2, 4), (2, 2, 5)),
        expected_num_trainable_weights=1,
    )


def test_zero_query_is_masked_mean_pooling():
    pooled = AttentionPooling()(INPUTS, padding_mask=PADDING_MASK)
    expected = [INPUTS[0].mean(0), INPUTS[1, :3].mean(0)]
    np.testing.assert_allclose(numpy(pooled), expected, atol=1e-6)


def test_hand_computed_heads():
    # Head 0 scores feature 0, head 1 feature 3, each by query . x_t / sqrt(2).
    layer = AttentionPooling(num_heads=2)
    layer.build(INPUTS.shape)
    layer.query.assign([[np.sqrt(2.0), 0.0], [0.0, -np.sqrt(2.0)]])
    pooled, weights = layer(INPUTS, return_attention_scores=True)
    for b in range(2):
        for head, logits in enumerate([INPUTS[b, :, 0], -INPUTS[b, :, 3]]):
            expected = np.exp(logits) / np.exp(logits).sum()
            np.testing.assert_allclose(numpy(weights)[b, head], expected, atol=1e-6)
            features = INPUTS[b, :, 2 * head : 2 * head + 2]
            np.testing.assert_allclose(
                numpy(pooled)[b, 2 * head : 2 * head + 2], expected @ features, atol=1e-6
            )


def test_padding_changes_nothing_and_implicit_mask_equals_explicit():
    layer = AttentionPooling(num_heads=2, query_initializer="random_normal")
    pooled, weights = layer(INPUTS, padding_mask=PADDING_MASK, return_attention_scores=True)
    np.testing.assert_array_equal(numpy(weights)[1, :, 3:], 0.0)
    unpadded = layer(INPUTS[1:, :3])
    np.testing.assert_allclose(numpy(pooled)[1:], numpy(unpadded), atol=1e-6)
    changed = INPUTS.copy()
    changed[1, 3:] = 99.0
    np.testing.assert_allclose(
        numpy(layer(changed, padding_mask=PADDING_MASK)), numpy(pooled), atol=1e-6
    )
    masked = keras.layers.Masking(mask_value=99.0)(changed)
    np.testing.assert_allclose(numpy(layer(masked)), numpy(pooled), atol=1e-6)


def test_fully_masked_sequence_pools_to_zeros():
    nothing = np.zeros((2, 5), bool)
    pooled, weights = AttentionPooling()(INPUTS, padding_mask=nothing, return_attention_scores=True)
    np.testing.assert_array_equal(numpy(pooled), 0.0)
    np.testing.assert_array_equal(numpy(weights), 0.0)


def test_bad_arguments_and_shapes():
    for num_heads in (0, 1.5, "2"):
        with pytest.raises(ValueError, match="`num_heads` must be a positive integer"):
            AttentionPooling(num_heads=num_heads)
    with pytest.raises(ValueError, match="`num_heads` must divide the feature size D"):
        AttentionPooling(num_heads=3)(INPUTS)
    with pytest.raises(ValueError, match=r"expects inputs of shape \(B, T, D\)"):
        AttentionPooling()(INPUTS[:, 0])
    with pytest.raises(ValueError, match="padding_mask"):
        AttentionPooling()(INPUTS, padding_mask=np.ones((2, 4), bool))
