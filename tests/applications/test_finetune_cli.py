"""`keras-attention finetune APP --from RUN --method full|frozen|gradual|layerwise|lora`.

A micro ViT is trained once on digits (module fixture); each method fine-tunes it for a
couple of epochs on 128 digits, and the tests check what the method promises: frozen and
gradual leave the weights they hold fixed untouched, LoRA saves plain weights that predict
as the adapted model did, and the trainable fraction is reported.
"""

import json

import keras
import numpy as np
import pytest

from applications import cli
from applications.common import FineTuning, UserError, training_runtime
from applications.common.finetuning import block_groups
from applications.image_classification import load_digits, train

# Plain patches: with the digits recipe's stem, batch normalization's moving statistics are
# weights that no method trains, and `full` would not train every weight.
FAST = dict(size="micro", patch_size=2, stem_filters=(), warmup_epochs=0, batch_size=64, quiet=True)


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("runs") / "digits"
    train("digits", output, epochs=2, max_examples=512, learning_rate=5e-3, translate=0.0, **FAST)
    return output


def _finetune(base_run, output, method, *flags, epochs=2):
    argv = ["finetune", "image-classification", "--from", str(base_run), "--data", "digits",
            "--epochs", str(epochs), "--max-examples", "128", "--warmup-epochs", "0", "--translate", "0",
            "--quiet", "--output", str(output), "--method", method, *flags]
    assert cli.main(argv) == 0
    return json.loads((output / "metrics.json").read_text())


def _in(layer, path):
    return f"/{layer}/" in f"/{path}"


def _weights(path):
    model = keras.saving.load_model(path / "model.keras", safe_mode=True)
    return model, {w.path: np.array(w) for w in model.weights}


def test_frozen_trains_the_head_only(base_run, tmp_path):
    metrics = _finetune(base_run, tmp_path / "frozen", "frozen")
    _, before = _weights(base_run)
    _, after = _weights(tmp_path / "frozen")
    assert before.keys() == after.keys()
    changed = {path for path in before if not np.array_equal(before[path], after[path])}
    assert changed and all(_in("head", path) for path in changed), sorted(changed)
    assert metrics["method"] == "frozen"
    assert 0 < metrics["trainable_fraction"] < 0.2
    assert metrics["trainable_parameters"] == sum(after[p].size for p in after if _in("head", p))


def test_full_trains_everything(base_run, tmp_path):
    metrics = _finetune(base_run, tmp_path / "full", "full", epochs=1)
    _, before = _weights(base_run)
    _, after = _weights(tmp_path / "full")
    assert all(not np.array_equal(before[p], after[p]) for p in before if p.endswith("kernel"))
    assert metrics["trainable_fraction"] == 1.0


def test_gradual_unfreezes_from_the_top_one_block_per_epoch(base_run, tmp_path):
    # Epoch 0: the head; epoch 1: also the top block. The embedding (bottom group) never trains here.
    _finetune(base_run, tmp_path / "gradual", "gradual", epochs=2)
    _, before = _weights(base_run)
    _, after = _weights(tmp_path / "gradual")
    changed = {p for p in before if not np.array_equal(before[p], after[p])}
    model = keras.saving.load_model(base_run / "model.keras")
    top = [layer.name for layer in model.layers if layer.name.startswith("encoder_layer_")][-1]
    assert any(_in(top, p) for p in changed) and any(_in("head", p) for p in changed)
    assert not any("patch_embedding" in p for p in changed), sorted(changed)


def test_layerwise_runs_and_rejects_a_bad_decay(base_run, tmp_path, capsys):
    metrics = _finetune(base_run, tmp_path / "layerwise", "layerwise", "--layer-decay", "0.5", epochs=1)
    assert metrics["method"] == "layerwise"
    argv = ["finetune", "image-classification", "--from", str(base_run), "--method", "layerwise",
            "--layer-decay", "0", "--output", str(tmp_path / "bad")]
    assert cli.main(argv) == 2
    assert "expected a number in (0, 1]" in capsys.readouterr().err


def test_lora_saves_plain_weights_that_predict_as_trained(base_run, tmp_path):
    metrics = _finetune(base_run, tmp_path / "lora", "lora", "--lora-rank", "2")
    assert metrics["lora_targets"] == ["query", "value"] and metrics["lora_rank"] == 2  # The default targets.
    model, after = _weights(tmp_path / "lora")
    assert not any("lora" in path for path in after)
    _, before = _weights(base_run)
    assert any(not np.array_equal(before[p], after[p]) for p in before if p.endswith("query/kernel"))
    # metrics.json was measured on the adapted model, before merging.
    images, labels = load_digits().get("test")
    probabilities = np.asarray(model.predict(images, verbose=0), dtype="float64")
    loss = -np.log(np.maximum(probabilities[np.arange(len(labels)), labels], 1e-12)).mean()
    assert loss == pytest.approx(metrics["test_loss"], abs=1e-5)
    assert 0 < metrics["trainable_fraction"] < 1


def test_lora_merge_predicts_the_same_after_a_safe_reload(base_run, tmp_path):
    model = keras.saving.load_model(base_run / "model.keras")
    tuning = FineTuning("lora", lora_rank=2)
    tuning.prepare(model, head=("head",))
    for layer in model._flatten_layers():
        if getattr(layer, "lora_enabled", False):  # Adapters as if trained.
            layer.lora_kernel_b.assign(np.full(layer.lora_kernel_b.shape, 0.05, "float32"))
    images, _ = load_digits().get("test")
    expected = model.predict(images[:32], verbose=0)
    tuning.export(model).save(tmp_path / "merged.keras")
    merged = keras.saving.load_model(tmp_path / "merged.keras", safe_mode=True)
    np.testing.assert_allclose(merged.predict(images[:32], verbose=0), expected, atol=1e-5)
    assert not np.allclose(expected, keras.saving.load_model(base_run / "model.keras").predict(
        images[:32], verbose=0), atol=1e-3)


def test_every_method_starts_from_a_trainable_model_and_saves_one():
    # A `frozen` run saves frozen layers: a `full` run from it must train every weight.
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(keras.layers.Dense(4, name="body")(inputs)))
    model.get_layer("body").trainable = False
    tuning = FineTuning("full")
    tuning.prepare(model, head=("head",))
    assert tuning.metrics["trainable_fraction"] == 1.0
    frozen = FineTuning("frozen")
    frozen.prepare(model, head=("head",))
    assert not model.get_layer("body").trainable
    assert frozen.export(model).get_layer("body").trainable


def _tiny_model(dtype=None):
    inputs = keras.Input((4,))
    body = keras.layers.Dense(4, name="body", dtype=dtype)(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, name="head", dtype=dtype)(body))


@pytest.mark.parametrize("method", ["full", "layerwise"])
def test_float16_layers_are_loss_scaled_whatever_the_precision(method):
    # A run trained under mixed_float16, fine-tuned under --precision float32: its layers keep
    # float16, and `compile` alone (the model's own policy is float32) did not scale the loss.
    for dtype, scaled in (("mixed_float16", True), ("float32", False)):
        model = _tiny_model(dtype)
        tuning = FineTuning(method)
        tuning.prepare(model, head=("head",))
        model.compile(optimizer=tuning.optimizer(keras.optimizers.Adam()), loss="mse")
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer) == scaled, dtype
        history = model.fit(np.ones((4, 4)), np.ones((4, 2)), epochs=1, verbose=0).history
        assert np.isfinite(history["loss"][0])
    # Under --precision mixed_float16, where `compile` wraps too: one LossScaleOptimizer, not two.
    with training_runtime("mixed_float16"):
        model = _tiny_model()
        tuning = FineTuning(method)
        tuning.prepare(model, head=("head",))
        model.compile(optimizer=tuning.optimizer(keras.optimizers.Adam()), loss="mse")
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert not isinstance(model.optimizer.inner_optimizer, keras.optimizers.LossScaleOptimizer)


def test_block_groups_top_down():
    inputs = keras.Input((4,))
    x = inputs
    for name in ("embedding", "encoder_0", "encoder_1", "decoder_layer_0", "head"):
        x = keras.layers.Dense(4, name=name)(x)
    model = keras.Model(inputs, x, name="model")
    assert block_groups(model, ["head"]) == [["*decoder_layer_0"], ["*encoder_1"], ["*encoder_0"],
                                             ["embedding"]]


def test_a_tied_head_owns_the_token_table_not_the_position_table():
    from applications.translation.model import TransformerSeq2Seq

    def translator():
        return TransformerSeq2Seq(10, 12, 8, hidden_dim=8, num_heads=2, num_layers=1, intermediate_dim=8)

    # The head ties to `decoder_embedding`, a token and position embedding: the position table
    # belongs with the embeddings below the blocks, trained by `gradual` last and by `frozen` never.
    assert block_groups(translator(), ["output_head"])[-1] == [
        "decoder_embedding/position_embedding", "decoder_norm", "encoder_embedding/position_embedding",
        "encoder_embedding/token_embedding", "encoder_norm"]
    for method in ("frozen", "lora"):
        model = translator()
        FineTuning(method).prepare(model, head=("output_head",))
        trainable = {weight.path for weight in model.trainable_weights}
        assert {"output_head/bias", "decoder_embedding/token_embedding/embeddings"} <= trainable, method
        assert not any("position_embedding" in path for path in trainable), method


def test_method_errors(monkeypatch):
    with pytest.raises(UserError, match="Unknown --method 'half'"):
        FineTuning("half")
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(UserError, match="--method gradual needs the TensorFlow or PyTorch backend"):
        FineTuning("gradual")
    monkeypatch.undo()
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(keras.layers.Dense(4, name="body")(inputs)))
    with pytest.raises(UserError, match="--method lora: No Dense, EinsumDense or Embedding layer matches"):
        FineTuning("lora").prepare(model, head=("head",))


def test_from_is_the_model_flag_of_finetune_only(capsys):
    assert cli.main(["evaluate", "image-classification", "--model", "run", "--from", "run"]) == 2
    assert "unrecognized arguments: --from" in capsys.readouterr().err


def test_text_classification_finetunes_with_lora(tmp_path):
    base, tuned = tmp_path / "sms", tmp_path / "sms-lora"
    assert cli.main(["train", "text-classification", "--data", "sms-spam", "--output", str(base),
                     "--max-examples", "200", "--epochs", "1", "--quiet", "--hidden-dim", "16",
                     "--intermediate-dim", "32", "--num-heads", "2", "--vocabulary-size", "500",
                     "--sequence-length", "32", "--ensemble-size", "1"]) == 0
    assert cli.main(["finetune", "text-classification", "--from", str(base), "--data", "sms-spam",
                     "--output", str(tuned), "--max-examples", "200", "--epochs", "1", "--quiet",
                     "--method", "lora", "--lora-rank", "4", "--lora-targets", "query", "value",
                     "token_embedding"]) == 0
    metrics = json.loads((tuned / "metrics.json").read_text())
    assert metrics["method"] == "lora" and 0 < metrics["trainable_fraction"] < 0.5
    assert metrics["lora_targets"] == ["query", "value", "token_embedding"] and metrics["lora_rank"] == 4
    model, after = _weights(tuned)
    assert not any("lora" in path for path in after)
    _, before = _weights(base)
    changed = {p for p in before if not np.array_equal(before[p], after[p])}
    assert any(p.endswith("query/kernel") for p in changed)
    # The adapted token table moved (merged into plain weights); the unadapted ones did not.
    assert any(p.endswith("token_embedding/embeddings") for p in changed)
    assert not any(p.endswith(("key/kernel", "position_embedding/embeddings")) for p in changed)
    assert model.predict(["win a free prize now"], verbose=0).shape == (1, 2)
