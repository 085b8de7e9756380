"""The library's own tests under JAX and PyTorch.

The main run uses the default backend (TensorFlow). Keras picks its backend
once per process, so each other backend gets a fresh pytest process over the
library's layer, head and op tests and docstrings; the fine-tuning kit and
the applications train with `fit()` and `tf.data` on TensorFlow.
"""

import os
import subprocess
import sys

import pytest

from conftest import ROOT

LIBRARY_TESTS = [
    "tests/ops",
    "tests/layers",
    "tests/heads",
    "tests/test_precision.py",
    "keras_attention/ops",
    "keras_attention/layers",
    "keras_attention/heads",
    "keras_attention/precision.py",
]


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_library_passes_under_backend(backend):
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        pytest.skip("runs from the TensorFlow session only, to avoid recursion")
    env = dict(os.environ, KERAS_BACKEND=backend)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:randomly", *LIBRARY_TESTS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    tail = "\n".join(result.stdout.splitlines()[-40:])
    assert result.returncode == 0, f"library tests failed under {backend}:\n{tail}\n{result.stderr[-2000:]}"
    assert " passed" in tail, f"no test ran under {backend}:\n{tail}"
