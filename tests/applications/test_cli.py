"""The `keras-attention` command: help, flags, errors, the application protocol."""

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from applications import cli
from applications.common import UserError
from applications.common.arguments import VERBS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake_app(monkeypatch):
    """An application module registered as `fake`, recording its calls."""
    module = types.ModuleType("fake_app_command")
    module.DESCRIPTION = "a fake application"
    module.VERBS = ("train", "evaluate", "predict")
    module.calls = []

    def add_arguments(parser, verb):
        if verb == "predict":
            parser.add_argument("inputs", nargs="+")
        parser.add_argument("--fail", action="store_true")

    def run(verb, args):
        module.calls.append((verb, args))
        if args.fail:
            raise UserError("the data file is empty:\nadd examples")
        return {"accuracy": 0.5, "examples": 4, "details": [1, 2]}

    module.add_arguments, module.run = add_arguments, run
    monkeypatch.setitem(sys.modules, "fake_app_command", module)
    monkeypatch.setitem(cli.APPLICATIONS, "fake", ("fake_app_command", "a fake application"))
    return module


def _one_line_error(capsys, code, expected_code):
    captured = capsys.readouterr()
    assert code == expected_code
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    return lines[0]


def test_top_level_help(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(verb in out for verb in VERBS)
    assert cli.main([]) == 2


@pytest.mark.parametrize("verb", list(VERBS))
def test_every_verb_has_help_listing_the_applications(verb, capsys):
    assert cli.main([verb, "--help"]) == 0
    out = capsys.readouterr().out
    assert "image-classification" in out and "text-classification" in out


@pytest.mark.parametrize("verb", list(VERBS))
def test_every_verb_of_image_classification_has_help(verb, capsys):
    assert cli.main([verb, "image-classification", "--help"]) == 0
    out = capsys.readouterr().out
    assert f"keras-attention {verb} image-classification" in out
    if verb != "train":
        assert "--model" in out


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["trian", "image-classification"], "invalid choice: 'trian'"),
        (["train", "no-such-app"], "invalid choice: 'no-such-app'"),
        (["train", "image-classification", "--bogus"], "unrecognized arguments: --bogus"),
        (["train", "image-classification", "--epochs", "0"], "expected a positive whole number"),
        (["train", "image-classification", "--pooling", "max"], "invalid choice: 'max'"),
        (["evaluate", "image-classification"], "required: --model"),
        (["predict", "image-classification", "--model", "run"], "required: IMAGE"),
    ],
)
def test_bad_flags_print_one_line_and_exit_2(argv, expected, capsys):
    line = _one_line_error(capsys, cli.main(argv), 2)
    assert expected in line and "--help" in line


def test_the_protocol_results_table_and_json(fake_app, tmp_path, capsys):
    assert cli.main(["train", "fake", "--epochs", "3", "--seed", "5"]) == 0
    verb, args = fake_app.calls[-1]
    assert (verb, args.application, args.epochs, args.seed, args.resume) == ("train", "fake", 3, 5, False)
    assert args.output.startswith(os.path.join("runs", "fake-"))  # A default run folder.
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["metric", "value"] and out[2].split() == ["accuracy", "0.5000"]
    assert cli.main(["evaluate", "fake", "--model", "run", "--json", str(tmp_path / "m.json")]) == 0
    results = json.loads((tmp_path / "m.json").read_text())
    assert results == {"accuracy": 0.5, "examples": 4, "details": [1, 2]}
    assert cli.main(["predict", "fake", "--model", "run", "a", "b"]) == 0
    assert fake_app.calls[-1][1].inputs == ["a", "b"]


def test_an_unwritable_json_file_is_refused_before_the_work(fake_app, tmp_path, capsys):
    line = _one_line_error(capsys, cli.main(["evaluate", "fake", "--model", "run", "--json", str(tmp_path)]), 1)
    assert "is a folder" in line
    missing = tmp_path / "nowhere" / "m.json"
    line = _one_line_error(capsys, cli.main(["evaluate", "fake", "--model", "run", "--json", str(missing)]), 1)
    assert f"the folder {missing.parent} does not exist" in line
    assert fake_app.calls == [] and sorted(tmp_path.iterdir()) == []


def test_a_run_of_another_application_is_refused_with_the_command_that_fits(fake_app, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_text("not read")
    (run / "settings.json").write_text('{"application": "image-classification"}')
    line = _one_line_error(capsys, cli.main(["evaluate", "fake", "--model", str(run)]), 1)
    assert line == (
        f"keras-attention: error: --model {run} is a run of image-classification, not of fake. "
        f"Use: keras-attention evaluate image-classification --model {run} ..."
    )
    (run / "settings.json").write_text('{"application": "fake"}')
    assert cli.main(["evaluate", "fake", "--model", str(run)]) == 0
    assert fake_app.calls[-1][0] == "evaluate"


def test_export_into_the_run_being_exported_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_text("not read")
    argv = ["export", "image-classification", "--model", str(run), "--output", str(run), "--overwrite"]
    line = _one_line_error(capsys, cli.main(argv), 1)
    assert line == f"keras-attention: error: --output {run} is the run being exported. Choose another --output."
    assert sorted(p.name for p in run.iterdir()) == ["model.keras"]


def test_a_user_error_is_one_line_and_exit_1(fake_app, capsys):
    line = _one_line_error(capsys, cli.main(["train", "fake", "--fail"]), 1)
    assert line == "keras-attention: error: the data file is empty: add examples"


def test_an_unsupported_verb_or_missing_application_is_one_line(fake_app, monkeypatch, capsys):
    line = _one_line_error(capsys, cli.main(["export", "fake", "--model", "run"]), 1)
    assert "fake does not support 'export'" in line
    monkeypatch.setitem(cli.APPLICATIONS, "ghost", ("applications.no_such_application.command", "ghost"))
    line = _one_line_error(capsys, cli.main(["train", "ghost"]), 1)
    assert "'ghost' is not available" in line


def _run_command(*argv):
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "applications.cli", *argv],
        capture_output=True, text=True, cwd=ROOT, env=environment, timeout=300,
    )


def test_the_real_command_bad_flag_and_user_error_are_one_line(tmp_path):
    result = _run_command("train", "image-classification", "--bogus")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    # A user error after keras is imported: TensorFlow's start-up lines are silenced too.
    result = _run_command("evaluate", "image-classification", "--model", str(tmp_path / "missing"))
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"keras-attention: error: --model {tmp_path / 'missing'}: no such file or folder. "
        "Give a run folder written by train."
    ]
    # The same for a tool (pretrain).
    result = _run_command("pretrain", "text", "--corpus", str(tmp_path / "missing.txt"), "--output", str(tmp_path / "p"))
    assert result.returncode == 1, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
