"""The Python examples in the README and the guides run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ["README.md", "docs/core.md", "docs/migrating-from-pyjwt.md"]


def _blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.S)


@pytest.mark.parametrize("name", DOCS)
def test_python_examples_run_when_pasted(name, capsys):
    blocks = _blocks(ROOT / name)
    assert blocks, f"{name} has no python examples"
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for block in blocks:  # one namespace per document: later blocks use earlier names
        exec(compile(block, f"{name}", "exec"), namespace)
    capsys.readouterr()


def test_docs_index_links_exist():
    index = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([\w.-]+\.md)\)", index):
        assert (ROOT / "docs" / target).exists(), f"docs/index.md links to missing {target}"
