"""`--precision` on the training verbs: each application trains a tiny model for one epoch
under mixed_bfloat16 and mixed_float16 with finite losses, records the policy in
settings.json, and its saved model reloads (safe mode) and predicts on float32 inputs."""

import csv
import json
import math

import keras
import numpy as np
import pytest

from applications import cli
from applications.common import runtime_settings, training_runtime, UserError
from applications.image_classification import load_digits
from tests.applications.test_speech_cli import data_dir_module, fsdd_subset, speech_cli  # noqa: F401

POLICIES = ("mixed_bfloat16", "mixed_float16")

TRAIN = {
    "image-classification": ["--data", "digits", "--max-examples", "256", "--size", "micro", "--patch-size", "2",
                             "--warmup-epochs", "0"],
    "text-classification": ["--data", "sms-spam", "--max-examples", "200", "--hidden-dim", "16",
                            "--intermediate-dim", "32", "--num-heads", "2", "--vocabulary-size", "500",
                            "--sequence-length", "32", "--ensemble-size", "1"],
    "translation": ["--max-examples", "64", "--batch-size", "32", "--vocabulary-size", "200",
                    "--evaluate-examples", "2", "--hidden-dim", "32", "--num-layers", "1", "--num-heads", "2",
                    "--intermediate-dim", "64", "--dropout", "0"],
}


def _losses(run):
    with open(run / "history.csv") as f:
        rows = list(csv.DictReader(f))
    return [float(row["loss"]) for row in rows]


def _check_run(run, policy):
    losses = _losses(run)
    assert losses and all(math.isfinite(loss) for loss in losses), losses
    assert json.loads((run / "settings.json").read_text())["precision"] == policy
    assert keras.config.dtype_policy().name == "float32"  # Restored after the run.
    return keras.saving.load_model(run / "model.keras", safe_mode=True)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("application", sorted(TRAIN))
def test_a_tiny_train_has_finite_losses_and_reloads(application, policy, tmp_path):
    run = tmp_path / "run"
    argv = ["train", application, "--output", str(run), "--epochs", "1", "--quiet", "--precision", policy]
    assert cli.main(argv + TRAIN[application]) == 0
    model = _check_run(run, policy)
    if application == "image-classification":
        images, _ = load_digits().get("test")
        outputs = model.predict(images[:8].astype("float32"), verbose=0)
    elif application == "text-classification":
        outputs = model.predict(["free prize, call now", "see you at lunch"], verbose=0)
    else:
        outputs = np.array([len(text) for text in model.translate(["A dog runs."])])
    assert np.all(np.isfinite(np.asarray(outputs, dtype="float32")))


@pytest.mark.parametrize("policy", POLICIES)
def test_keyword_spotting_under_mixed_precision(speech_cli, fsdd_subset, policy, tmp_path):  # noqa: F811
    run = tmp_path / "kws"
    assert speech_cli(["train", "keyword-spotting", "--data", str(fsdd_subset), "--output", str(run),
                       "--epochs", "1", "--quiet", "--precision", policy]) == 0
    model = _check_run(run, policy)
    waveforms = np.random.default_rng(0).normal(0, 0.1, (2, model.input_shape[1])).astype("float32")
    assert np.all(np.isfinite(np.asarray(model.predict(waveforms, verbose=0), dtype="float32")))


def test_finetune_takes_precision_and_from(tmp_path):
    base = tmp_path / "base"
    assert cli.main(["train", "image-classification", "--output", str(base), "--epochs", "1", "--quiet",
                     *TRAIN["image-classification"]]) == 0
    tuned = tmp_path / "tuned"
    assert cli.main(["finetune", "image-classification", "--from", str(base), "--output", str(tuned),
                     "--epochs", "1", "--quiet", "--data", "digits", "--max-examples", "64",
                     "--precision", "mixed_bfloat16"]) == 0
    _check_run(tuned, "mixed_bfloat16")


def test_the_python_form_and_a_bad_value(capsys):
    with training_runtime("mixed_bfloat16") as policy:
        assert policy == "mixed_bfloat16" and keras.layers.Dense(2).compute_dtype == "bfloat16"
        assert runtime_settings() == {"precision": "mixed_bfloat16", "distribute": "none", "replicas": 1}
    assert keras.config.dtype_policy().name == "float32"
    with pytest.raises(UserError, match="Unknown precision: 'half'"):
        with training_runtime("half"):
            pass
    assert cli.main(["train", "image-classification", "--precision", "half"]) == 2
    assert "invalid choice: 'half'" in capsys.readouterr().err
