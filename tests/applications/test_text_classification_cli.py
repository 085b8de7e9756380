"""The text-classification application end to end, through `applications.cli.main`.

One tiny model is trained once (module fixture) on a stratified sample of the real SMS Spam
Collection and must learn; the other tests evaluate, predict, export and finetune it, and feed
every kind of bad input to the command line.
"""

import json

import keras
import numpy as np
import pytest

from applications import cli
from applications.text_classification import model as model_lib

TINY = [
    "--hidden-dim", "16", "--intermediate-dim", "32", "--num-heads", "2",
    "--vocabulary-size", "1500", "--sequence-length", "48", "--ensemble-size", "1",
]


def run_cli(capsys, *argv):
    status = cli.main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def one_line_error(status, err, pattern):
    assert status == 1
    lines = [line for line in err.splitlines() if line.startswith("keras-attention: error:")]
    assert len(lines) == 1, err
    assert pattern in lines[0], lines[0]
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """Train once: 1,000 SMS messages, a one-block 16-wide encoder, at most 6 epochs."""
    run = tmp_path_factory.mktemp("runs") / "sms"
    status = cli.main([
        "train", "text-classification", "--data", "sms-spam", "--output", str(run),
        "--max-examples", "1000", "--epochs", "6", "--learning-rate", "0.003", "--quiet", *TINY,
    ])
    assert status == 0
    return run


def test_train_writes_a_run_that_learned(run_dir):
    for name in ("model.keras", "metrics.json", "history.csv", "settings.json",
                 "learning_curves.png", "confusion_matrix.png", "attention.png", "vocabulary.txt"):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["evaluated_on"] == "test" and metrics["examples"] == 1114
    # Always answering "ham" scores 0.866 accuracy and 0.46 macro-F1.
    assert metrics["accuracy"] >= 0.95, metrics
    assert metrics["macro_f1"] >= 0.85, metrics
    settings = json.loads((run_dir / "settings.json").read_text())
    assert settings["class_names"] == ["ham", "spam"]
    assert settings["application"] == "text-classification"


def test_saved_model_takes_raw_strings_after_reload(run_dir):
    model = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    assert isinstance(model, model_lib.TextClassifier)
    probabilities = model.predict(["Ok lar... see you at home", "x" * 100_000], verbose=0)
    assert probabilities.shape == (2, 2) and np.all(np.isfinite(probabilities))


def test_evaluate_json_and_confusion_matrix(run_dir, tmp_path, capsys):
    report = tmp_path / "metrics.json"
    status, out, _ = run_cli(capsys, "evaluate", "text-classification", "--model", run_dir,
                             "--json", report)
    assert status == 0
    assert "accuracy" in out and "confusion matrix" in out
    metrics = json.loads(report.read_text())
    trained = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["data"] == "sms-spam"
    assert metrics["accuracy"] == pytest.approx(trained["accuracy"])
    assert set(metrics) >= {"accuracy", "macro_f1", "confusion_matrix"}
    assert (run_dir / "confusion_matrix_sms-spam_test.png").is_file()


def test_predict_prints_label_and_probability(run_dir, tmp_path, capsys):
    picture = tmp_path / "attention.png"
    long_text = "free prize " * 10_000  # 110,000 characters: truncated.
    status, out, _ = run_cli(capsys, "predict", "text-classification", "--model", run_dir,
                             "see you at lunch", long_text, "--attention", picture,
                             "--json", tmp_path / "p.json")
    assert status == 0
    first = out.splitlines()[0].split("\t")
    assert first[0] in ("ham", "spam") and 0.5 <= float(first[1]) <= 1.0
    assert first[2] == "see you at lunch"
    predictions = json.loads((tmp_path / "p.json").read_text())["predictions"]
    assert len(predictions) == 2 and predictions[1]["label"] in ("ham", "spam")
    assert picture.read_bytes()[:4] == b"\x89PNG"


def test_export_then_predict_with_the_export(run_dir, tmp_path, capsys):
    export = tmp_path / "export"
    status, _, _ = run_cli(capsys, "export", "text-classification", "--model", run_dir,
                           "--output", export)
    assert status == 0 and (export / "saved_model.pb").is_file()
    texts = ["see you at lunch", "URGENT! You have won a 1 week FREE membership, call now"]
    status, out_export, _ = run_cli(capsys, "predict", "text-classification", "--model", export, *texts)
    assert status == 0
    status, out_keras, _ = run_cli(capsys, "predict", "text-classification", "--model", run_dir, *texts)
    labels = lambda out: [line.split("\t")[0] for line in out.splitlines()[:2]]  # noqa: E731
    assert labels(out_export) == labels(out_keras)


def test_finetune_keeps_classes_and_refuses_new_labels(run_dir, tmp_path, capsys):
    data = tmp_path / "more.tsv"  # 16 messages, one of them 100,000 characters long.
    rows = ["ham\tsee you at lunch", "spam\tWIN a FREE prize, call 0800 now", "ham\tok lar",
            "spam\tURGENT claim your cash award now", f"ham\t{'long day ' * 11_111}"[:100_004],
            "spam\tTxt STOP to end, win cash", "ham\tsorry, I'll call later", "ham\thome soon"]
    data.write_text("\n".join(rows * 2) + "\n")
    status, out, _ = run_cli(capsys, "finetune", "text-classification", "--model", run_dir,
                             "--data", data, "--epochs", "1", "--output", tmp_path / "ft", "--quiet")
    assert status == 0 and (tmp_path / "ft" / "model.keras").is_file()
    settings = json.loads((tmp_path / "ft" / "settings.json").read_text())
    assert settings["finetuned"] and settings["class_names"] == ["ham", "spam"]
    assert settings["hidden_dim"] == 16  # The run's settings, not the recipe's defaults.
    # A trained classifier continues at the gentle rate; --learning-rate replaces it.
    assert settings["peak_learning_rate"] == settings["finetune_learning_rate"]
    status, _, _ = run_cli(capsys, "finetune", "text-classification", "--model", run_dir, "--data", data,
                           "--epochs", "1", "--learning-rate", "0.0007", "--output", tmp_path / "ft-rate", "--quiet")
    assert status == 0
    assert json.loads((tmp_path / "ft-rate" / "settings.json").read_text())["peak_learning_rate"] == 0.0007
    other = tmp_path / "other.tsv"
    other.write_text("hello there\tgreeting\nbuy now\tspam\n")
    status, _, err = run_cli(capsys, "finetune", "text-classification", "--model", run_dir,
                             "--data", other, "--output", tmp_path / "ft2")
    one_line_error(status, err, "never trained on: 'greeting'")
    assert not (tmp_path / "ft2").exists()


# === Bad inputs: one line, exit status 1, nothing written ===


def test_evaluate_with_a_label_the_model_never_saw(run_dir, tmp_path, capsys):
    data = tmp_path / "new.tsv"
    data.write_text("ham\tsee you\nspam\twin a prize\nphishing\tyour bank account is locked\n")
    status, _, err = run_cli(capsys, "evaluate", "text-classification", "--model", run_dir,
                             "--data", data, "--split", "all")
    one_line_error(status, err, "labels the model was never trained on: 'phishing'")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is empty"),
        (b"fine text\tham\n\xff\xfe broken\tspam\n", "line 2: byte 0xff is not valid"),
        (b"fine text\tham\nno label here\n", "line 2: no label"),
        (b"one\tham\ntwo\tham\nthree\tham\n", "one class only ('ham')"),
    ],
    ids=["empty", "undecodable", "no-label", "single-class"],
)
def test_train_on_bad_data(tmp_path, capsys, content, message):
    data = tmp_path / "data.tsv"
    data.write_bytes(content)
    output = tmp_path / "run"
    status, _, err = run_cli(capsys, "train", "text-classification", "--data", data,
                             "--output", output, *TINY)
    one_line_error(status, err, message)
    assert not output.exists()
    assert not (tmp_path / ".run.partial").exists()


def _class_folders(root, classes):
    for name in classes:
        for i in range(6):
            path = root / name / f"{i}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"a {name} text number {i}")


def test_train_checks_the_test_classes_before_training(tmp_path, capsys):
    # A test class the training data lacks: refused before anything is trained or written.
    _class_folders(tmp_path / "data" / "train", ["neg", "pos"])
    _class_folders(tmp_path / "data" / "test", ["neg", "pos", "other"])
    output = tmp_path / "run"
    status, _, err = run_cli(capsys, "train", "text-classification", "--data", tmp_path / "data",
                             "--output", output, *TINY)
    one_line_error(status, err, "has classes the model will not learn: 'other' (it learns 'neg', 'pos')")
    assert not output.exists() and not (tmp_path / ".run.partial").exists()
    # A training class the test split lacks (aclImdb's train/unsup): trained, with a note.
    _class_folders(tmp_path / "imdb" / "train", ["neg", "pos", "unsup"])
    _class_folders(tmp_path / "imdb" / "test", ["neg", "pos"])
    status, out, _ = run_cli(capsys, "train", "text-classification", "--data", tmp_path / "imdb",
                             "--output", output, "--epochs", "1", *TINY)
    assert status == 0 and (output / "model.keras").exists()
    assert f"Note: classes with no example in {tmp_path / 'imdb' / 'test'}: 'unsup'." in out


def test_predict_without_text_and_missing_model(run_dir, tmp_path, capsys):
    status, _, err = run_cli(capsys, "predict", "text-classification", "--model", run_dir)
    one_line_error(status, err, "No text to classify")
    status, _, err = run_cli(capsys, "predict", "text-classification", "--model",
                             tmp_path / "nothing", "hello")
    one_line_error(status, err, "no such file or folder")


def test_bad_flag_value(capsys):
    status, _, err = run_cli(capsys, "train", "text-classification", "--pooling", "median")
    assert status == 2 and "invalid choice: 'median'" in err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--vocabulary-size", "1"], "--vocabulary-size 1 is too small: the vocabulary starts with the 2 "
         "reserved tokens [PAD] [UNK]"),
        (["--vocabulary-size", "9"], "Give --vocabulary-size 10 or more"),
        (["--hidden-dim", "2", "--num-heads", "4"], "--num-heads 4 is more than --hidden-dim 2"),
    ],
    ids=["vocabulary-1", "vocabulary-9", "heads-wider-than-width"],
)
def test_train_refuses_model_flags_the_model_cannot_use(tmp_path, capsys, flags, message):
    output = tmp_path / "run"
    status, _, err = run_cli(capsys, "train", "text-classification", "--data", "sms-spam",
                             "--output", output, *flags)
    one_line_error(status, err, message)
    assert list(tmp_path.iterdir()) == []  # Refused before the run folder, .run.partial included.
