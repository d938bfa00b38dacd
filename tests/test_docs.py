"""The user's docs stay true: every relative link resolves, and every ``snr`` command they show runs.

Conventions for README.md, docs/*.md and examples/*/README.md:

- A fenced block whose info string is ``bash``, ``console``, ``sh`` or ``shell`` shows commands;
  each of its lines that starts with ``snr `` or ``$ snr `` runs here, in order, in one scratch
  folder that holds copies of the repository's ``sample_models/`` and ``examples/``, and must exit 0 (or the status a
  trailing ``# exit N`` comment names). ``A | B`` pipes stdout into the next command, ``> FILE``
  writes it to a file; a trailing ``\\`` continues the line.
- A block preceded by the line ``<!-- illustrative -->`` shows commands that need the user's own
  files (``model.onnx``) or a cluster: they are not run, only parsed.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "examples").glob("*/README.md"))]
SHELL_INFOS = {"bash", "console", "sh", "shell"}
ILLUSTRATIVE = "<!-- illustrative -->"
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _rel(p: Path) -> str:
    return str(p.relative_to(REPO))


def _blocks(text: str):
    """(info string, illustrative?, lines) of every fenced block."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^\s*```(\S*)", lines[i])
        if not m:
            i += 1
            continue
        info, start = m.group(1).lower(), i
        j = i + 1
        while j < len(lines) and not lines[j].lstrip().startswith("```"):
            j += 1
        prev = next((ln.strip() for ln in reversed(lines[:start]) if ln.strip()), "")
        yield info, prev == ILLUSTRATIVE, lines[start + 1:j]
        i = j + 1


def _commands(lines: list[str]) -> list[str]:
    out, pending = [], ""
    for ln in lines:
        s = ln.strip()
        if pending:
            s = pending + " " + s
            pending = ""
        elif s.startswith("$ "):
            s = s[2:]
        elif not s.startswith("snr "):
            continue
        if s.endswith("\\"):
            pending = s[:-1].strip()
            continue
        if s.startswith("snr "):
            out.append(s)
    return out


def _links(text: str) -> list[str]:
    text = re.sub(r"```.*?```", "", text, flags=re.S)   # code blocks hold no links
    text = re.sub(r"`[^`\n]*`", "", text)
    return [m.group(1) for m in LINK.finditer(text)]


def _anchors(md: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    found = set()
    for h in re.findall(r"^#+\s+(.*)$", re.sub(r"```.*?```", "", md, flags=re.S), flags=re.M):
        a = re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
        found.add(a)
    return found


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_every_relative_link_resolves(doc: Path):
    bad = []
    for target in _links(doc.read_text()):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):   # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if not dest.exists():
            bad.append(f"{target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest.read_text()):
            bad.append(f"{target} (no heading with that anchor)")
    assert not bad, f"{_rel(doc)}: broken links: {bad}"


def _doc_blocks():
    for doc in DOCS:
        for n, (info, illustrative, lines) in enumerate(_blocks(doc.read_text())):
            cmds = _commands(lines) if info in SHELL_INFOS else []
            if cmds:
                yield pytest.param(doc, cmds, illustrative, id=f"{_rel(doc)}#{n}: {cmds[0][:60]}")


def _run_line(line: str, cwd: Path, monkeypatch) -> int:
    from click.testing import CliRunner

    from snrcli.cli import main

    monkeypatch.chdir(cwd)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "100")
    want = 0
    m = re.search(r"#\s*exit\s+(\d+)\s*$", line)
    if m:
        want = int(m.group(1))
    words = shlex.split(line, comments=True)
    stages, cur = [], []
    for w in words:
        if w == "|":
            stages.append(cur)
            cur = []
        else:
            cur.append(w)
    stages.append(cur)
    stdin, code = None, 0
    for k, stage in enumerate(stages):
        redirect = None
        if ">" in stage:
            at = stage.index(">")
            stage, redirect = stage[:at], stage[at + 1]
        assert stage and stage[0] == "snr", f"only snr commands can be run here: {stage}"
        r = CliRunner().invoke(main, stage[1:], input=stdin, catch_exceptions=False)
        code = r.exit_code
        if k < len(stages) - 1:
            assert code == 0, f"{' '.join(stage)} exited {code}: {r.stderr if hasattr(r, 'stderr') else r.output}"
        stdin = r.stdout
        if redirect:
            Path(redirect).write_text(r.stdout)
    assert code == want, f"`{line}` exited {code}, the doc says {want}"
    return code


@pytest.mark.parametrize("doc, cmds, illustrative", list(_doc_blocks()))
def test_every_shown_command_runs_or_is_marked_illustrative(doc, cmds, illustrative, tmp_path, monkeypatch):
    """The commands of one block run in order in one scratch folder (later ones may read what earlier
    ones wrote)."""
    if illustrative:
        for cmd in cmds:
            shlex.split(cmd, comments=True)   # still well-formed
        return
    for name in ("sample_models", "examples"):   # copies: a command may write into them
        shutil.copytree(REPO / name, tmp_path / name)
    for cmd in cmds:
        _run_line(cmd, tmp_path, monkeypatch)
