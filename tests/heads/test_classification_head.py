import os
import tempfile

import keras
import numpy as np
import pytest
from keras import ops

from keras_attention.heads import ClassificationHead
from tests.harness import run_layer_test

RNG = np.random.default_rng(4)
INPUTS = RNG.normal(size=(2, 5, 4)).astype("float32")
PADDING_MASK = np.array([[True] * 5, [True] * 3 + [False] * 2])


def numpy(x):
    return ops.convert_to_numpy(x)


def dtype_name(x):
    return keras.backend.standardize_dtype(x.dtype)


@pytest.mark.parametrize(
    "init_kwargs, num_weights",
    [
        ({"pooling": "attention", "intermediate_dim": 6, "dropout": 0.1}, 5),
        ({"pooling": "max", "activation": "softmax"}, 2),
    ],
)
def test_layer(init_kwargs, num_weights):
    # head_dtype=None: the harness checks that the head follows each policy.
    run_layer_test(
        ClassificationHead,
        {"num_classes": 3, "head_dtype": None, **init_kwargs},
        {"inputs": INPUTS, "padding_mask": PADDING_MASK},
        expected_output_shape=(2, 3),
        expected_num_trainable_weights=num_weights,
    )


def identity_head(pooling):
    """A head whose logits are the pooled vector itself."""
    head = ClassificationHead(num_classes=4, pooling=pooling)
    head.build(INPUTS.shape)
    head.output_dense.kernel.assign(np.eye(4))
    return head


def test_hand_computed_poolings():
    expected = {
        "cls": INPUTS[:, 0],
        "mean": [INPUTS[0].mean(0), INPUTS[1, :3].mean(0)],
        "max": [INPUTS[0].max(0), INPUTS[1, :3].max(0)],
        "attention": [INPUTS[0].mean(0), INPUTS[1, :3].mean(0)],  # zero query
    }
    for pooling, pooled in expected.items():
        logits = identity_head(pooling)(INPUTS, padding_mask=PADDING_MASK)
        np.testing.assert_allclose(numpy(logits), pooled, atol=1e-6, err_msg=pooling)


@pytest.mark.parametrize("pooling", ["mean", "max", "attention"])
def test_padding_changes_nothing_and_implicit_mask_equals_explicit(pooling):
    head = ClassificationHead(num_classes=3, pooling=pooling, intermediate_dim=5)
    logits = numpy(head(INPUTS, padding_mask=PADDING_MASK))
    np.testing.assert_allclose(logits[1:], numpy(head(INPUTS[1:, :3])), atol=1e-5)
    changed = INPUTS.copy()
    changed[1, 3:] = 77.0
    np.testing.assert_allclose(numpy(head(changed, padding_mask=PADDING_MASK)), logits, atol=1e-5)
    masked = keras.layers.Masking(mask_value=77.0)(changed)
    np.testing.assert_allclose(numpy(head(masked)), logits, atol=1e-5)


def test_fully_masked_sequence_gives_finite_logits():
    nothing = np.zeros((2, 5), bool)
    for pooling in ("mean", "max", "attention"):
        head = identity_head(pooling)
        np.testing.assert_array_equal(numpy(head(INPUTS, padding_mask=nothing)), 0.0)


def test_softmax_activation_gives_probabilities():
    probabilities = numpy(ClassificationHead(3, pooling="mean", activation="softmax")(INPUTS))
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-6)


def test_float32_logits_under_mixed_precision_by_default_and_after_reload():
    keras.config.set_dtype_policy("mixed_float16")
    inputs = keras.Input((5, 4))
    hidden = keras.layers.Dense(4)(inputs)
    head = ClassificationHead(3, pooling="attention", intermediate_dim=6)
    model = keras.Model(inputs, head(hidden))
    assert dtype_name(hidden) == "float16"
    assert dtype_name(model.outputs[0]) == "float32"
    logits = model(INPUTS)
    assert dtype_name(logits) == "float32"
    assert all(dtype_name(w) == "float32" for w in head.weights)
    assert head.get_config()["head_dtype"] == "float32"
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "model.keras")
        model.save(path)
        restored = keras.saving.load_model(path, safe_mode=True)
    assert dtype_name(restored(INPUTS)) == "float32"
    np.testing.assert_allclose(numpy(restored(INPUTS)), numpy(logits), atol=1e-6)
    follows = ClassificationHead(3, head_dtype=None)
    assert dtype_name(follows(INPUTS)) == "float16"
    policy = keras.DTypePolicy("bfloat16")
    assert ClassificationHead(3, head_dtype=policy).get_config()["head_dtype"] == "bfloat16"


def test_masked_mean_under_float16_does_not_overflow():
    # 1,000 positions of 100 sum past float16's largest value (65,504); the
    # masked mean must agree with the unmasked one, which keras takes in float32.
    keras.config.set_dtype_policy("mixed_float16")
    head = ClassificationHead(2, pooling="mean", head_dtype=None)
    inputs = np.full((1, 1000, 4), 100.0, "float32")
    unmasked = numpy(head(inputs))
    masked = numpy(head(inputs, padding_mask=np.ones((1, 1000), bool)))
    assert np.all(np.isfinite(masked))
    np.testing.assert_allclose(masked, unmasked, rtol=1e-3)


def test_bad_arguments_and_shapes():
    expected = r"Unknown pooling: 'avg'. Expected one of \('cls', 'mean', 'max', 'attention'\)"
    with pytest.raises(ValueError, match=expected):
        ClassificationHead(3, pooling="avg")
    for num_classes in (0, 2.0, None):
        with pytest.raises(ValueError, match="`num_classes` must be a positive integer"):
            ClassificationHead(num_classes)
    with pytest.raises(ValueError, match="`intermediate_dim` must be a positive integer or None"):
        ClassificationHead(3, intermediate_dim=-1)
    with pytest.raises(ValueError, match="`dropout` must be a float"):
        ClassificationHead(3, dropout=1.5)
    with pytest.raises(ValueError, match="`head_dtype` must be None, a dtype"):
        ClassificationHead(3, head_dtype="float33")
    with pytest.raises(ValueError, match=r"expects hidden states of shape \(B, T, D\)"):
        ClassificationHead(3)(INPUTS[:, 0])
    with pytest.raises(ValueError, match="padding_mask"):
        ClassificationHead(3, pooling="mean")(INPUTS, padding_mask=PADDING_MASK[:, :4])
