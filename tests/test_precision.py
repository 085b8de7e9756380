import keras
import numpy as np
import pytest

from keras_attention import precision
from keras_attention.layers import TransformerEncoder


@pytest.mark.parametrize(
    "capability, cpu_bfloat16, expected",
    [
        (9.0, False, "mixed_bfloat16"),  # H100
        (8.0, False, "mixed_bfloat16"),  # A100
        (7.5, True, "mixed_float16"),  # T4: the GPU decides, not the host CPU
        (6.1, False, "float32"),  # no tensor cores
        (None, True, "mixed_bfloat16"),  # CPU with AVX-512 BF16 / AMX
        (None, False, "float32"),
    ],
)
def test_auto_follows_the_hardware(monkeypatch, capability, cpu_bfloat16, expected):
    monkeypatch.setattr(precision, "gpu_compute_capability", lambda: capability)
    monkeypatch.setattr(precision, "cpu_has_bfloat16", lambda: cpu_bfloat16)
    assert precision.resolve_precision("auto") == expected


def test_auto_resolves_on_this_machine():
    # Asks the backend for its devices: under PyTorch keras has no device list.
    expected = "mixed_bfloat16" if precision.cpu_has_bfloat16() else "float32"
    if precision.gpu_compute_capability() is None:
        assert precision.resolve_precision("auto") == expected
    else:
        assert precision.resolve_precision("auto") in precision.PRECISIONS[1:]


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    with_amx = tmp_path / "amx"
    with_amx.write_text("flags\t: fpu avx512f amx_bf16 amx_tile\n")
    without = tmp_path / "plain"
    without.write_text("flags\t: fpu avx2 avx512f\n")
    assert precision.cpu_has_bfloat16(str(with_amx))
    assert not precision.cpu_has_bfloat16(str(without))
    assert not precision.cpu_has_bfloat16(str(tmp_path / "missing"))


def test_unknown_precision_names_the_choices():
    with pytest.raises(ValueError, match="Unknown precision: 'half'. Expected one of"):
        precision.resolve_precision("half")


@pytest.mark.parametrize("policy", ["float32", "mixed_float16", "mixed_bfloat16"])
def test_a_model_trains_with_finite_loss_under_each_policy(policy):
    assert precision.set_precision(policy) == policy
    inputs = keras.Input((6, 8))
    x = TransformerEncoder(intermediate_dim=16, num_heads=2)(inputs)
    outputs = keras.layers.Dense(3, dtype="float32")(keras.layers.GlobalAveragePooling1D()(x))
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    if policy == "mixed_float16":
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    rng = np.random.default_rng(0)
    history = model.fit(rng.normal(size=(16, 6, 8)), rng.integers(0, 3, 16), epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert history.history["loss"][-1] < history.history["loss"][0]
