import keras
import numpy as np
import pytest
from keras import ops

from keras_attention.finetune import GradualUnfreezing


def make_model():
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="tanh", name="lower"),
            keras.layers.Dense(8, activation="tanh", name="upper"),
            keras.layers.Dense(1, name="head"),
        ],
        name="model",
    )


class RecordWeights(keras.callbacks.Callback):
    """Kernels of each layer at the end of each epoch."""

    def __init__(self):
        super().__init__()
        self.kernels = []

    def on_epoch_end(self, epoch, logs=None):
        self.kernels.append(
            {layer.name: ops.convert_to_numpy(layer.kernel).copy() for layer in self.model.layers}
        )


@pytest.mark.parametrize("jit_compile", [False, True])
def test_groups_start_training_at_their_epoch(jit_compile):
    model = make_model()
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", jit_compile=jit_compile)
    initial = {layer.name: ops.convert_to_numpy(layer.kernel).copy() for layer in model.layers}
    record = RecordWeights()
    unfreezing = GradualUnfreezing(["*upper", "*lower"], unfreeze_epochs=[1, 2])
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 4)), rng.normal(size=(32, 1))
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[unfreezing, record])

    epochs = [initial] + record.kernels
    moved = lambda name, epoch: not np.allclose(epochs[epoch][name], epochs[epoch + 1][name])
    assert [moved("head", e) for e in range(3)] == [True, True, True]
    assert [moved("upper", e) for e in range(3)] == [False, True, True]
    assert [moved("lower", e) for e in range(3)] == [False, False, True]
    assert unfreezing.unfrozen_at == {1: ["*upper"], 2: ["*lower"]}


def test_optimizer_state_carries_on_when_a_group_joins():
    model = make_model()
    optimizer = keras.optimizers.Adam(0.01)
    model.compile(optimizer=optimizer, loss="mse")
    variables_seen = []

    class Snapshot(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            variables_seen.append([id(v) for v in optimizer.variables])

    x, y = np.ones((16, 4)), np.zeros((16, 1))
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[GradualUnfreezing(["*lower"]), Snapshot()])
    # One optimizer state for the whole run: built once, never replaced.
    assert variables_seen[0] == variables_seen[1]
    assert int(optimizer.iterations) == 4
    head_momentum = optimizer._momentums[optimizer._get_variable_index(model.get_layer("head").kernel)]
    assert np.any(ops.convert_to_numpy(head_momentum) != 0)


def test_resumed_run_unfreezes_every_group_already_due():
    model = make_model()
    model.compile(optimizer="adam", loss="mse")
    callback = GradualUnfreezing(["*upper", "*lower"])
    x, y = np.ones((8, 4)), np.zeros((8, 1))
    model.fit(x, y, epochs=4, initial_epoch=3, verbose=0, callbacks=[callback])
    assert callback.unfrozen_at == {3: ["*upper", "*lower"]}
    assert len(model.trainable_weights) == 6


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(groups=[]), "at least one group"),
        (dict(groups=["a", "b"], unfreeze_epochs=[1]), "one epoch per group"),
        (dict(groups=["a", "b"], unfreeze_epochs=[2, 1]), "non-decreasing"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GradualUnfreezing(**kwargs)


def test_unknown_layer_pattern_fails_before_training():
    model = make_model()
    model.compile(optimizer="adam", loss="mse")
    with pytest.raises(ValueError, match="No layer matches"):
        model.fit(np.ones((4, 4)), np.zeros((4, 1)), verbose=0, callbacks=[GradualUnfreezing(["*encoder*"])])


def test_optimizer_built_over_fewer_variables_raises_and_a_full_one_carries_on():
    x, y = np.ones((8, 4)), np.zeros((8, 1))
    model = make_model()
    model.get_layer("lower").trainable = False
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, verbose=0)  # Builds the optimizer without `lower`.
    with pytest.raises(ValueError, match=r"built before .*model/lower/kernel.*Compile the model again"):
        model.fit(x, y, verbose=0, callbacks=[GradualUnfreezing(["*lower"])])
    # An optimizer built over every group (a first fit of the whole model) serves.
    model = make_model()
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, verbose=0)
    callback = GradualUnfreezing(["*lower"])
    model.fit(x, y, epochs=2, verbose=0, callbacks=[callback])
    assert callback.unfrozen_at == {1: ["*lower"]}


def test_ema_optimizer_raises_before_training():
    model = make_model()
    model.compile(optimizer=keras.optimizers.Adam(use_ema=True), loss="mse")
    with pytest.raises(ValueError, match="use_ema"):
        model.fit(np.ones((4, 4)), np.zeros((4, 1)), verbose=0, callbacks=[GradualUnfreezing(["*lower"])])


def test_config_round_trip():
    callback = GradualUnfreezing(["*upper", ["*lower", "*head"]], unfreeze_epochs=[1, 3])
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(callback))
    assert isinstance(restored, GradualUnfreezing)
    assert restored.get_config() == callback.get_config()
