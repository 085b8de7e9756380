"""The package's design rules, checked on the source tree (DESIGN.md, STYLE.md)."""

import ast
import inspect
import pathlib
import re

import keras
import pytest

import keras_attention
from conftest import ROOT

LIBRARY = ROOT / "keras_attention"
FORBIDDEN_IMPORTS = ("tensorflow", "jax", "torch", "applications")


def _imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


@pytest.mark.parametrize("path", sorted(LIBRARY.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_library_imports_keras_only(path):
    for module in _imports(path):
        top = module.split(".")[0]
        assert top not in FORBIDDEN_IMPORTS, f"{path.name} imports {module}"
        assert not module.startswith("keras.src"), f"{path.name} imports private {module}"


def _public_classes():
    for package in (keras_attention.layers, keras_attention.heads):
        for name in package.__all__:
            yield getattr(package, name)


@pytest.mark.parametrize("cls", list(_public_classes()), ids=lambda c: c.__name__)
def test_public_class_is_registered_documented_and_in_its_own_file(cls):
    assert keras.saving.get_registered_name(cls) == f"keras_attention>{cls.__name__}"
    doc = inspect.getdoc(cls) or ""
    for section in ("Args:", "Example:"):
        assert section in doc, f"{cls.__name__} docstring lacks {section}"
    filename = pathlib.Path(inspect.getfile(cls)).stem
    expected = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", cls.__name__).lower()
    assert filename == expected, f"{cls.__name__} lives in {filename}.py, expected {expected}.py"
