"""The documentation builds with MkDocs, warnings as errors."""

import pathlib
import subprocess
import sys

import pytest

from conftest import ROOT


def test_docs_build_strict(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "site" / "index.html").exists()


GUIDES = sorted((ROOT / "docs" / "guide").glob("*.md"))


def _python_blocks(path):
    text = path.read_text()
    blocks = []
    for chunk in text.split("```python\n")[1:]:
        blocks.append(chunk.split("```", 1)[0])
    return blocks


@pytest.mark.parametrize(
    "path, index, code",
    [(path, index, code) for path in GUIDES for index, code in enumerate(_python_blocks(path))],
    ids=lambda value: value.name if isinstance(value, pathlib.Path) else str(value)[:0],
)
def test_guide_examples_run(path, index, code):
    exec(compile(code, f"{path.name}[block {index}]", "exec"), {})
