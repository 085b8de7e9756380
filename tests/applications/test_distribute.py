"""`--distribute`: data-parallel training reaches the loss of one device.

Two logical CPU devices of one process (MirroredStrategy), two worker processes on
loopback (MultiWorkerMirroredStrategy from TF_CONFIG), and two JAX host devices
(keras.distribution.DataParallel), each train the same micro ViT for two
epochs on 256 digits with a global batch of 64; their losses must match the one-device run's
within a tolerance (the replicas sum gradients in another order)."""

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from applications import cli

ROOT = Path(__file__).resolve().parents[2]
# Plain patches (`--stem-filters 0`): the digits recipe's stem has batch normalization, whose
# statistics MirroredStrategy computes over each replica's share of the batch, so a model with
# it differs from one device for a reason other than how gradients are summed.
TRAIN = ["train", "image-classification", "--data", "digits", "--max-examples", "256", "--size", "micro",
         "--patch-size", "2", "--stem-filters", "0", "--warmup-epochs", "0", "--dropout", "0", "--translate",
         "0", "--epochs", "2", "--batch-size", "64", "--quiet"]
TOLERANCE = 0.01  # Relative; the one-device loss falls by about 0.15 over the two epochs.

BOTH_MODES = """
import sys
from applications import cli
train, output = sys.argv[1:-1], sys.argv[-1]
for mode in ("none", "auto"):
    assert cli.main([*train, "--output", f"{output}/{mode}", "--distribute", mode]) == 0
"""

WORKER = """
import sys
from applications import cli
sys.exit(cli.main(sys.argv[1:]))
"""

# Two logical CPU devices, declared before TensorFlow's runtime starts.
LOGICAL_DEVICES = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
"""
TWO_DEVICES = LOGICAL_DEVICES + BOTH_MODES


def _losses(run):
    with open(Path(run) / "history.csv") as f:
        return [float(row["loss"]) for row in csv.DictReader(f)]


def _run(code, args, env=None, timeout=120):
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], cwd=ROOT, env=env or dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(process, timeout=120):
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output[-3000:]


def _assert_two_devices_match_one(runs):
    """The `auto` run in `runs` trained on two replicas and followed the `none` run."""
    one, two = _losses(runs / "none"), _losses(runs / "auto")
    assert len(one) == len(two) == 2
    assert two == pytest.approx(one, rel=TOLERANCE)
    assert one[1] < one[0] - 0.05  # It learned: the comparison is not between two constants.
    settings = json.loads((runs / "auto" / "settings.json").read_text())
    assert (settings["distribute"], settings["replicas"]) == ("mirrored", 2)
    # The test evaluation (359 images, padded to split evenly) too; its accuracy, near chance
    # after two epochs, flips with the last digits of the weights, its loss does not.
    metrics = [json.loads((runs / mode / "metrics.json").read_text()) for mode in ("none", "auto")]
    assert metrics[1]["test_loss"] == pytest.approx(metrics[0]["test_loss"], rel=TOLERANCE)


def test_two_logical_devices_reach_the_one_device_loss(tmp_path):
    _finish(_run(TWO_DEVICES, [*TRAIN, tmp_path]))
    _assert_two_devices_match_one(tmp_path)


def test_jax_data_parallel_on_two_devices_reaches_the_one_device_loss(tmp_path):
    # Digits has 143 validation and 359 test images: neither splits evenly over two
    # devices, which Keras's JAX trainer needs of every batch (see `_evenly_split`).
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2".strip()
    env = dict(os.environ, KERAS_BACKEND="jax", XLA_FLAGS=flags)
    _finish(_run(BOTH_MODES, [*TRAIN, tmp_path], env))
    _assert_two_devices_match_one(tmp_path)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_on_loopback_reach_the_one_device_loss(tmp_path):
    assert cli.main([*TRAIN, "--output", str(tmp_path / "one")]) == 0
    workers = [f"localhost:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
        output = tmp_path / f"worker{index}"
        processes.append(_run(WORKER, [*TRAIN, "--output", output, "--distribute", "multi-worker"], env))
    try:
        for process in processes:
            _finish(process)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    one = _losses(tmp_path / "one")
    for index in range(2):
        assert _losses(tmp_path / f"worker{index}") == pytest.approx(one, rel=TOLERANCE)
    settings = json.loads((tmp_path / "worker0" / "settings.json").read_text())
    assert (settings["distribute"], settings["replicas"]) == ("multi-worker", 2)


def test_distribution_mistakes_are_one_line(monkeypatch, tmp_path, capsys):
    assert cli.main([*TRAIN, "--output", str(tmp_path / "run"), "--distribute", "mirrored"]) == 1
    assert "--distribute mirrored needs more than one device" in capsys.readouterr().err
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert cli.main([*TRAIN, "--output", str(tmp_path / "run"), "--distribute", "multi-worker"]) == 1
    assert "--distribute multi-worker needs TF_CONFIG" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_batch_smaller_than_the_replicas_is_one_line(tmp_path):
    # Every batch is cut to a multiple of the replicas: a batch of 1 on 2 left none, and
    # `model.fit` ended in a bare StopIteration.
    run = tmp_path / "run"
    process = _run(LOGICAL_DEVICES + WORKER,
                   [*TRAIN, "--batch-size", "1", "--output", run, "--distribute", "mirrored"])
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 1, output[-3000:]
    assert ("keras-attention: error: --batch-size 1 is smaller than the 2 replicas of --distribute mirrored: "
            "use a batch size of at least 2 (a multiple of 2).") in output
    assert "Traceback" not in output
    assert not run.exists()
