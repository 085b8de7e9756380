import os

import keras
import numpy as np
import pytest
from keras import ops

from keras_attention.finetune import ScaledSchedule
from keras_attention.finetune import WarmupSchedule
from keras_attention.finetune import layerwise_optimizer


def make_model():
    keras.utils.set_random_seed(3)
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="tanh", name="embedding"),
            keras.layers.Dense(8, activation="tanh", name="encoder_0"),
            keras.layers.Dense(8, activation="tanh", name="encoder_1"),
            keras.layers.Dense(1, name="head"),
        ],
        name="model",
    )


def one_step_deltas(optimizer):
    model = make_model()
    before = {layer.name: ops.convert_to_numpy(layer.kernel).copy() for layer in model.layers}
    model.compile(optimizer=optimizer, loss="mse")
    x, y = np.random.default_rng(0).normal(size=(8, 4)), np.ones((8, 1))
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    return {layer.name: ops.convert_to_numpy(layer.kernel) - before[layer.name] for layer in model.layers}


def test_each_group_moves_at_its_decayed_rate():
    plain = one_step_deltas(keras.optimizers.SGD(0.1))
    decayed = one_step_deltas(
        layerwise_optimizer(keras.optimizers.SGD(0.1), ["*encoder_1", "*encoder_0", "*embedding"], decay=0.5)
    )
    # SGD's step is rate x gradient, and the first step's gradients are the same.
    for name, factor in (("head", 1.0), ("encoder_1", 0.5), ("encoder_0", 0.25), ("embedding", 0.125)):
        np.testing.assert_allclose(decayed[name], factor * plain[name], rtol=1e-4, atol=1e-7)


def test_schedules_are_scaled_and_the_model_saves(tmp_path):
    schedule = WarmupSchedule(1e-2, warmup_steps=2, decay="constant")
    optimizer = layerwise_optimizer(keras.optimizers.Adam(schedule), ["*encoder_1"], decay=0.1)
    scaled = optimizer.optimizers[0]._learning_rate
    assert isinstance(scaled, ScaledSchedule)
    assert float(scaled(4)) == pytest.approx(1e-3)
    model = make_model()
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(np.ones((4, 4)), np.ones((4, 1)), verbose=0)
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(
        ops.convert_to_numpy(restored(np.ones((2, 4)))), ops.convert_to_numpy(model(np.ones((2, 4)))), atol=1e-6
    )


def test_groups_keep_the_weight_decay_exclusions():
    # AdamW that excludes every variable from weight decay: each group's copy
    # must step exactly as AdamW without weight decay.
    groups = ["*encoder_1", "*encoder_0", "*embedding"]
    excluding = keras.optimizers.AdamW(0.1, weight_decay=0.5)
    excluding.exclude_from_weight_decay(var_names=["kernel", "bias"])
    deltas = one_step_deltas(layerwise_optimizer(excluding, groups, decay=0.5))
    expected = one_step_deltas(layerwise_optimizer(keras.optimizers.AdamW(0.1, weight_decay=0.0), groups, decay=0.5))
    for name in expected:
        np.testing.assert_allclose(deltas[name], expected[name], atol=1e-7)


def test_loss_scale_optimizer_raises():
    wrapped = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam())
    with pytest.raises(ValueError, match="pass its `inner_optimizer`"):
        layerwise_optimizer(wrapped, ["*encoder_1"], decay=0.5)


@pytest.mark.parametrize("kwargs, message", [(dict(decay=0.0), "decay"), (dict(decay=1.5), "decay"), (dict(groups=[]), "at least one group")])
def test_bad_arguments_raise(kwargs, message):
    arguments = dict(groups=["*encoder_1"], decay=0.5)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        layerwise_optimizer(keras.optimizers.SGD(0.1), **arguments)
