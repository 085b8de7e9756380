"""Test settings shared by the whole suite."""

import os
import pathlib

import keras
import pytest

ROOT = pathlib.Path(__file__).resolve().parent
SHARED_DATA = ROOT.parent / "shared" / "data"

# Tests read the real data sets through the data directory, like a user's
# download cache; they never reach the network.
os.environ.setdefault("KERAS_ATTENTION_DATA", str(SHARED_DATA))


@pytest.fixture(autouse=True)
def _reset_keras_state():
    """Each test starts from float32, a fixed seed and a fresh name scope."""
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(1337)
    yield
    keras.config.set_dtype_policy("float32")
    # free_memory=False skips a gc.collect() that costs ~0.6 s per test.
    keras.backend.clear_session(free_memory=False)


@pytest.fixture
def data_dir():
    path = pathlib.Path(os.environ["KERAS_ATTENTION_DATA"])
    if not path.is_dir():
        pytest.fail(f"The data directory {path} is missing: set KERAS_ATTENTION_DATA.")
    return path
