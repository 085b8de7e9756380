import math
import os

import keras
import numpy as np
import pytest

from keras_attention.finetune import WarmupSchedule


def rates(schedule, steps):
    return np.array([float(schedule(step)) for step in steps])


def test_warmup_is_linear_from_zero_to_peak():
    schedule = WarmupSchedule(2e-3, warmup_steps=4, decay="constant")
    np.testing.assert_allclose(rates(schedule, range(7)), [0, 5e-4, 1e-3, 1.5e-3, 2e-3, 2e-3, 2e-3], rtol=1e-6)


def test_linear_and_cosine_reach_final_rate_at_total_steps():
    linear = WarmupSchedule(1.0, warmup_steps=10, decay="linear", total_steps=30, final_learning_rate=0.1)
    np.testing.assert_allclose(rates(linear, [10, 20, 30, 40]), [1.0, 0.55, 0.1, 0.1], rtol=1e-6)
    cosine = WarmupSchedule(1.0, warmup_steps=0, decay="cosine", total_steps=100)
    expected = [0.5 * (1 + math.cos(math.pi * s / 100)) for s in (0, 25, 50, 100)]
    np.testing.assert_allclose(rates(cosine, [0, 25, 50, 100]), expected, atol=1e-6)


def test_inverse_sqrt_matches_vaswani_formula():
    d_model, warmup = 512, 4000
    peak = d_model**-0.5 * warmup**-0.5
    schedule = WarmupSchedule(peak, warmup_steps=warmup, decay="inverse_sqrt")
    steps = [1, 100, 3999, 4000, 8000, 100000]
    vaswani = [d_model**-0.5 * min(s**-0.5, s * warmup**-1.5) for s in steps]
    np.testing.assert_allclose(rates(schedule, steps), vaswani, rtol=1e-5)


def test_optimizer_follows_schedule_during_fit():
    schedule = WarmupSchedule(0.1, warmup_steps=4, decay="linear", total_steps=8)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="mse")
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(float(self.model.optimizer.learning_rate))

    x, y = np.ones((6, 3), "float32"), np.zeros((6, 1), "float32")
    model.fit(x, y, batch_size=1, epochs=1, verbose=0, callbacks=[Record()])
    np.testing.assert_allclose(seen, [0.0, 0.025, 0.05, 0.075, 0.1, 0.075], atol=1e-6)


def test_schedule_survives_model_save_and_load(tmp_path):
    schedule = WarmupSchedule(1e-3, warmup_steps=5, decay="cosine", total_steps=50, final_learning_rate=1e-5)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="mse")
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    restored_schedule = restored.optimizer._learning_rate
    assert isinstance(restored_schedule, WarmupSchedule)
    assert restored_schedule.get_config() == schedule.get_config()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(decay="exponential"), "Unknown decay"),
        (dict(decay="cosine"), "total_steps"),
        (dict(decay="linear", total_steps=5), "total_steps"),
        (dict(warmup_steps=-1, decay="constant"), "warmup_steps"),
        (dict(warmup_steps=0, decay="inverse_sqrt"), "warmup_steps"),
        (dict(peak_learning_rate=0.0, decay="constant"), "peak_learning_rate"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    arguments = dict(peak_learning_rate=1e-3, warmup_steps=10)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        WarmupSchedule(**arguments)
