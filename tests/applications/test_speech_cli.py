"""The speech applications end to end through `keras-attention`: train on real
FSDD recordings (a subset, tiny models) and on an espeak-ng corpus, reload,
evaluate, predict with attention pictures, finetune, export, and bad inputs."""

import json
import os
import shutil

import keras
import numpy as np
import pytest

from applications import cli
from applications.speech import audio
from applications.speech import keyword_spotting as kws
from applications.speech import speech_to_text as stt
from applications.speech import synthesize_command

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")

# Tiny models and a gentler recipe, so that a few epochs on a few hundred clips learn.
TINY = dict(HIDDEN_DIM=32, NUM_LAYERS=1, NUM_HEADS=2, INTERMEDIATE_DIM=64, DROPOUT=0.0, BATCH_SIZE=32)
KWS_TINY = dict(TINY, LEARNING_RATE=3e-3, LABEL_SMOOTHING=0.0, NOISE_PROBABILITY=0.0, TIME_MASKS=0,
                FREQUENCY_MASKS=0, MAX_SHIFT_SECONDS=0.02, SPEED_RANGE=(1.0, 1.0))
STT_TINY = dict(TINY, MAX_CLIP_SECONDS=6.0, FSDD_TEST_SEQUENCES=6, BATCH_SIZE=8)
KWS_EPOCHS = 8
KWS_MIN_ACCURACY = 0.8  # 3 classes: chance is 0.33; the tiny model reaches about 0.9.


@pytest.fixture(scope="module")
def speech_cli():
    """`cli.main` with the speech applications and tiny recipes."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(cli.APPLICATIONS, "keyword-spotting",
                      ("applications.speech.keyword_spotting_command", "keyword spotting"))
        patch.setitem(cli.APPLICATIONS, "speech-to-text",
                      ("applications.speech.speech_to_text_command", "speech to text"))
        for name, value in KWS_TINY.items():
            patch.setattr(kws, name, value)
        for name, value in STT_TINY.items():
            patch.setattr(stt, name, value)
        yield cli.main


@pytest.fixture(scope="module")
def data_dir_module():
    return os.environ["KERAS_ATTENTION_DATA"]


@pytest.fixture(scope="module")
def fsdd_subset(tmp_path_factory, data_dir_module):
    """Digits 0-2 of two FSDD speakers, as published (300 recordings)."""
    source = os.path.join(data_dir_module, "speech", "fsdd", "recordings")
    folder = tmp_path_factory.mktemp("fsdd") / "recordings"
    folder.mkdir()
    for name in os.listdir(source):
        digit, speaker, _ = name.split("_")
        if digit in "012" and speaker in ("jackson", "nicolas"):
            os.symlink(os.path.join(source, name), folder / name)
    return folder.parent


@pytest.fixture(scope="module")
def kws_run(speech_cli, fsdd_subset, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "kws"
    status = speech_cli(["train", "keyword-spotting", "--data", str(fsdd_subset), "--output", str(run),
                         "--epochs", str(KWS_EPOCHS), "--quiet"])
    assert status == 0
    return run


def test_keyword_spotting_learns_on_real_recordings(kws_run):
    for name in ("model.keras", "metrics.json", "settings.json", "history.csv", "learning_curves.png",
                 "attention.png"):
        assert (kws_run / name).is_file(), name
    metrics = json.loads((kws_run / "metrics.json").read_text())
    assert metrics["test_examples"] == 30  # Official split: recordings 0-4.
    assert metrics["test_accuracy"] >= KWS_MIN_ACCURACY, metrics
    settings = json.loads((kws_run / "settings.json").read_text())
    assert settings["class_names"] == ["0", "1", "2"]
    assert settings["application"] == "keyword-spotting"


def test_keyword_spotting_reload_evaluate_and_predict(speech_cli, kws_run, fsdd_subset, tmp_path, capsys):
    model = keras.saving.load_model(kws_run / "model.keras", safe_mode=True)
    files = sorted((fsdd_subset / "recordings").glob("*_jackson_[0-1].wav"))
    waveforms = kws.read_clips(files, json.loads((kws_run / "settings.json").read_text()))
    expected = model.predict(waveforms, verbose=0).argmax(axis=-1)

    report = tmp_path / "evaluate.json"
    assert speech_cli(["evaluate", "keyword-spotting", "--model", str(kws_run), "--json", str(report),
                       "--quiet"]) == 0
    evaluated = json.loads(report.read_text())
    metrics = json.loads((kws_run / "metrics.json").read_text())
    assert evaluated["accuracy"] == pytest.approx(metrics["test_accuracy"])

    predictions = tmp_path / "predict.json"
    pictures = tmp_path / "pictures"
    assert speech_cli(["predict", "keyword-spotting", "--model", str(kws_run), *map(str, files),
                       "--attention", str(pictures), "--json", str(predictions)]) == 0
    result = json.loads(predictions.read_text())
    labels = json.loads((kws_run / "settings.json").read_text())["class_names"]
    assert [p["label"] for p in result["predictions"]] == [labels[i] for i in expected]
    assert all(os.path.getsize(p["attention"]) > 1000 for p in result["predictions"])
    assert str(files[0]) in capsys.readouterr().out


def test_keyword_spotting_evaluates_the_runs_held_out_speaker_however_the_data_is_named(
        speech_cli, fsdd_subset, tmp_path, monkeypatch):
    run = tmp_path / "holdout"
    assert speech_cli(["train", "keyword-spotting", "--data", str(fsdd_subset), "--holdout-speaker", "nicolas",
                       "--seed", "3", "--output", str(run), "--epochs", "1", "--quiet"]) == 0
    monkeypatch.chdir(fsdd_subset.parent)
    report = tmp_path / "evaluate.json"
    assert speech_cli(["evaluate", "keyword-spotting", "--model", str(run), "--data", fsdd_subset.name,
                       "--json", str(report), "--quiet"]) == 0
    evaluated = json.loads(report.read_text())
    assert evaluated["examples"] == 150  # All of nicolas's digits 0-2, none of jackson's.
    assert evaluated["accuracy"] == pytest.approx(json.loads((run / "metrics.json").read_text())["test_accuracy"])


def test_keyword_spotting_bad_inputs_are_one_line_errors(speech_cli, kws_run, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF....WAVEfmt garbage")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    long = tmp_path / "ten_minutes.wav"
    audio.write_wav(long, np.zeros(8000 * 600, "float32"), 8000)
    for path in (corrupt, empty, long):
        assert speech_cli(["predict", "keyword-spotting", "--model", str(kws_run), str(path)]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(e.startswith("keras-attention: error: ") for e in errors)
    assert "not a readable PCM WAV" in errors[0] and "empty" in errors[1] and "600.0 s" in errors[2]


def test_keyword_spotting_refuses_a_split_it_lacks_and_a_top_below_one(speech_cli, tmp_path, capsys):
    missing = str(tmp_path / "missing")  # Refused before the model is looked for.
    assert speech_cli(["evaluate", "keyword-spotting", "--model", missing, "--split", "validation"]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("keras-attention: error: --split validation: keyword-spotting data has no "
                            "validation split") and error.endswith("Use --split test, train or all.")
    assert speech_cli(["evaluate", "speech-to-text", "--model", missing, "--split", "validation"]) == 1
    assert "speech-to-text data has no validation split" in capsys.readouterr().err
    for top in ("0", "-2"):
        assert speech_cli(["predict", "keyword-spotting", "--model", missing, "clip.wav", "--top", top]) == 2
        assert f"argument --top: expected a positive whole number, received '{top}'" in capsys.readouterr().err


def test_keyword_spotting_stereo_44k_file_is_classified(speech_cli, kws_run, fsdd_subset, tmp_path, capsys):
    waveform, _ = audio.read_wav(fsdd_subset / "recordings" / "1_jackson_0.wav", 44100)
    stereo = tmp_path / "stereo.wav"
    audio.write_wav(stereo, np.stack([waveform, 0.5 * waveform], axis=1), 44100)
    assert speech_cli(["predict", "keyword-spotting", "--model", str(kws_run), str(stereo)]) == 0
    assert capsys.readouterr().out.startswith(f"{stereo}\t")


def test_keyword_spotting_finetune_and_export(speech_cli, kws_run, fsdd_subset, tmp_path, capsys):
    tuned = tmp_path / "tuned"
    assert speech_cli(["finetune", "keyword-spotting", "--model", str(kws_run), "--data", str(fsdd_subset),
                       "--output", str(tuned), "--epochs", "1", "--quiet"]) == 0
    assert json.loads((tuned / "metrics.json").read_text())["test_accuracy"] >= KWS_MIN_ACCURACY - 0.1
    export = tmp_path / "export"
    assert speech_cli(["export", "keyword-spotting", "--model", str(tuned), "--output", str(export)]) == 0
    report = tmp_path / "p.json"
    clip = fsdd_subset / "recordings" / "2_nicolas_0.wav"
    assert speech_cli(["predict", "keyword-spotting", "--model", str(export), str(clip), "--json", str(report)]) == 0
    exported = json.loads(report.read_text())["predictions"][0]
    assert speech_cli(["predict", "keyword-spotting", "--model", str(tuned), str(clip), "--json", str(report)]) == 0
    assert json.loads(report.read_text())["predictions"][0]["label"] == exported["label"]
    # An export has no layers to fine-tune or export again; a folder without clips holds nothing to predict.
    capsys.readouterr()
    assert speech_cli(["export", "keyword-spotting", "--model", str(export), "--output", str(tmp_path / "again")]) == 1
    assert speech_cli(["finetune", "keyword-spotting", "--model", str(export), "--data", str(fsdd_subset),
                       "--output", str(tmp_path / "tuned_again"), "--epochs", "1", "--quiet"]) == 1
    (tmp_path / "no_clips").mkdir()
    assert speech_cli(["predict", "keyword-spotting", "--model", str(tuned), str(tmp_path / "no_clips")]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(e.startswith("keras-attention: error: ") for e in errors)
    assert all(f"--model {export} is an export; give the run folder" in e for e in errors[:2])
    assert errors[2].endswith("no_clips: a folder with no .wav files.")
    assert not (tmp_path / "again").exists() and not (tmp_path / "tuned_again").exists()


def synthesize_class_folders(folder, lines, copies):
    """`keras-attention synthesize --class-folders`: `copies` espeak-ng clips of each line, a folder per line."""
    text = folder / "lines.txt"
    text.write_text("".join(f"{line}\n" for line in lines))
    corpus = folder / "synthetic"
    assert synthesize_command.main(["--text", str(text), "--class-folders", "--copies", str(copies),
                                    "--output", str(corpus)]) == 0
    return corpus


@needs_espeak
def test_keyword_spotting_finetunes_a_synthetic_speech_model_on_new_labels(speech_cli, fsdd_subset, tmp_path,
                                                                           capsys):
    """Pretrain on espeak-ng words ("zero"...), fine-tune on FSDD ("0"...): a new head, the encoder kept."""
    synthetic = synthesize_class_folders(tmp_path, ["zero", "one", "two"], copies=12)
    pretrained = tmp_path / "pretrained"
    assert speech_cli(["train", "keyword-spotting", "--data", str(synthetic), "--output", str(pretrained),
                       "--epochs", "2", "--quiet"]) == 0
    tuned = tmp_path / "tuned"
    assert speech_cli(["finetune", "keyword-spotting", "--from", str(pretrained), "--data", str(fsdd_subset),
                       "--output", str(tuned), "--epochs", str(KWS_EPOCHS), "--quiet"]) == 0
    assert "fine-tuning with a new head" in capsys.readouterr().out
    assert json.loads((pretrained / "settings.json").read_text())["class_names"] == ["one", "two", "zero"]
    assert json.loads((tuned / "settings.json").read_text())["class_names"] == ["0", "1", "2"]
    assert json.loads((tuned / "metrics.json").read_text())["test_accuracy"] >= KWS_MIN_ACCURACY
    before = keras.saving.load_model(pretrained / "model.keras")
    after = keras.saving.load_model(tuned / "model.keras")
    assert before.get_layer("encoder_0").count_params() == after.get_layer("encoder_0").count_params()
    # The encoder started from the pretrained weights: fine-tuning moves them, but far less than
    # their distance from a freshly initialized model's.
    fresh, _ = kws.build_models(3, kws.settings())
    start = before.get_layer("encoder_0").get_weights()[0]
    moved = np.abs(after.get_layer("encoder_0").get_weights()[0] - start).mean()
    assert moved < 0.5 * np.abs(fresh.get_layer("encoder_0").get_weights()[0] - start).mean()


@needs_espeak
def test_keyword_spotting_trains_on_extra_synthetic_clips(speech_cli, fsdd_subset, tmp_path, capsys):
    """`--extra-data`: espeak-ng digits in class folders named as FSDD's labels join the training split only."""
    synthetic = synthesize_class_folders(tmp_path, ["0", "1", "2"], copies=4)
    run = tmp_path / "run"
    assert speech_cli(["train", "keyword-spotting", "--data", str(fsdd_subset), "--extra-data", str(synthetic),
                       "--output", str(run), "--epochs", "1", "--quiet"]) == 0
    # 2 speakers x 3 digits x recordings 5-49, and 3 x 4 synthetic clips; the test split is unchanged.
    assert "282 training (12 from --extra-data) and 30 test clips" in capsys.readouterr().out
    settings = json.loads((run / "settings.json").read_text())
    assert settings["extra_clips"] == 12 and settings["class_names"] == ["0", "1", "2"]
    assert json.loads((run / "metrics.json").read_text())["test_examples"] == 30

    (synthetic / "2").rename(synthetic / "two")
    failed = tmp_path / "failed"
    assert speech_cli(["train", "keyword-spotting", "--data", str(fsdd_subset), "--extra-data", str(synthetic),
                       "--output", str(failed), "--epochs", "1", "--quiet"]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert error == [f"keras-attention: error: --extra-data {synthetic}: labels two are not among the data's "
                     "(0, 1, 2); name its class folders after the data's labels."]
    assert not failed.exists()
    missing = tmp_path / "missing"
    assert speech_cli(["train", "keyword-spotting", "--data", str(fsdd_subset), "--extra-data", str(missing),
                       "--output", str(failed), "--epochs", "1", "--quiet"]) == 1
    assert f"--extra-data {missing}: no such folder" in capsys.readouterr().err
    assert not failed.exists()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    folder = tmp_path_factory.mktemp("corpus")
    for part, voices, count in (("train", "train", 24), ("test", "held-out", 4)):
        assert synthesize_command.main(["--digit-sequences", str(count), "--min-digits", "1", "--max-digits", "3",
                                        "--voices", voices, "--output", str(folder / part)]) == 0
    return folder


@needs_espeak
def test_speech_to_text_train_evaluate_predict(speech_cli, corpus, tmp_path, capsys):
    run = tmp_path / "stt"
    assert speech_cli(["train", "speech-to-text", "--data", str(corpus), "--fsdd-sequences", "8",
                       "--holdout-speaker", "george", "--output", str(run), "--epochs", "2", "--quiet"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("corpus_cer_greedy", "corpus_wer_beam", "fsdd_cer_greedy", "fsdd_cer_beam"):
        assert np.isfinite(metrics[key]) and metrics[key] >= 0.0, key  # Two epochs: no accuracy yet.
    history = [line.split(",") for line in (run / "history.csv").read_text().splitlines()]
    losses = [float(row[history[0].index("loss")]) for row in history[1:]]
    assert losses[1] < losses[0]  # Two epochs: the CTC loss goes down.
    assert (run / "attention.png").stat().st_size > 1000
    model = keras.saving.load_model(run / "model.keras", safe_mode=True)
    assert model.output_shape[-1] == len(stt.VOCABULARY) + 1
    capsys.readouterr()
    assert speech_cli(["evaluate", "keyword-spotting", "--model", str(run)]) == 1  # The wrong application.
    assert f"--model {run} is a run of speech-to-text, not of keyword-spotting." in capsys.readouterr().err

    report = tmp_path / "e.json"
    assert speech_cli(["evaluate", "speech-to-text", "--model", str(run), "--data", "fsdd",
                       "--holdout-speaker", "george", "--decoder", "greedy", "--json", str(report), "--quiet"]) == 0
    assert json.loads(report.read_text())["examples"] == 6
    # A transcribed folder is a corpus, even when its clips are named as FSDD's.
    named = tmp_path / "named"
    named.mkdir()
    lines = []
    for index, (source, text) in enumerate(
            line.split("\t")[:2] for line in (corpus / "test" / "transcripts.tsv").read_text().splitlines()[:2]):
        shutil.copy(corpus / "test" / source, named / f"0_jackson_{index}.wav")
        lines.append(f"0_jackson_{index}.wav\t{text}")
    (named / "transcripts.tsv").write_text("\n".join(lines) + "\n")
    assert speech_cli(["evaluate", "speech-to-text", "--model", str(run), "--data", str(named), "--split", "all",
                       "--decoder", "greedy", "--json", str(report), "--quiet"]) == 0
    assert json.loads(report.read_text())["examples"] == 2

    clip = next((corpus / "test" / "clips").glob("*.wav"))
    long = tmp_path / "ten_minutes.wav"
    waveform, _ = audio.read_wav(clip, 8000)
    audio.write_wav(long, np.tile(np.concatenate([waveform, np.zeros(4000)]), 600 * 8000 // (len(waveform) + 4000) + 1), 8000)
    capsys.readouterr()
    assert speech_cli(["predict", "speech-to-text", "--model", str(run), str(clip), str(long),
                       "--decoder", "beam", "--json", str(report)]) == 0
    predictions = json.loads(report.read_text())["predictions"]
    assert [p["file"] for p in predictions] == [str(clip), str(long)]
    assert all(isinstance(p["text"], str) for p in predictions)
