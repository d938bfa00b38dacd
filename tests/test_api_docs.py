"""docs/api.md stays true: its Python examples run on the sample models (those marked illustrative are only compiled)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
API = REPO / "docs" / "api.md"


def _python_blocks() -> list[tuple[bool, str]]:
    """(illustrative?, code) of every ```python block, in order."""
    lines, out, i = API.read_text().splitlines(), [], 0
    while i < len(lines):
        m = re.match(r"^(\s*)```python\s*$", lines[i])
        if not m:
            i += 1
            continue
        indent, j = len(m.group(1)), i + 1
        while not lines[j].strip().startswith("```"):
            j += 1
        prev = next((ln.strip() for ln in reversed(lines[:i]) if ln.strip()), "")
        out.append((prev == "<!-- illustrative -->", "\n".join(ln[indent:] for ln in lines[i + 1:j])))
        i = j + 1
    return out


def test_api_doc_has_runnable_examples():
    assert sum(not ill for ill, _ in _python_blocks()) >= 2


def test_api_doc_examples_run(monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(REPO)
    namespace: dict = {}
    for illustrative, code in _python_blocks():
        compiled = compile(code, str(API), "exec")
        if not illustrative:
            exec(compiled, namespace)   # noqa: S102 (our own documentation)
    assert namespace["again"].to_dict() == namespace["report"].to_dict()
    assert [L["name"] for L in namespace["mlp"].layers] == ["fc1", "fc2", "fc3"]
