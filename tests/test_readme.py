"""The docs stay true: every option is in docs/commands.md, and the README's first run is what the sample gives."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

import snrcli
from snrcli.cli import main

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
COMMANDS = (REPO / "docs" / "commands.md").read_text()


def _options(cmd: click.Command) -> list[str]:
    names = []
    for p in cmd.params:
        if isinstance(p, click.Option):
            names.append(max(p.opts, key=len))
    return names


@pytest.mark.parametrize("name", sorted(main.commands))
def test_every_option_of_every_command_is_in_the_command_reference(name):
    cmd = main.commands[name]
    missing = [o for o in _options(cmd) if o not in ("--help",) and o not in COMMANDS]
    assert not missing, f"snr {name}: options missing from docs/commands.md: {missing}"
    assert f"## snr {name}" in COMMANDS, f"docs/commands.md has no section for snr {name}"


def test_every_group_option_and_shell_completion_are_in_the_command_reference():
    missing = [o for o in _options(main) if o not in ("--help",) and o not in COMMANDS]
    assert not missing, f"snr: options missing from docs/commands.md: {missing}"
    for shell in ("bash", "zsh", "fish"):
        assert f"_SNR_COMPLETE={shell}_source snr" in COMMANDS, f"no {shell} completion line in docs/commands.md"


def test_readme_first_run_matches_the_sample_model():
    start = README.index("## First run")
    block = README[start:README.index("\n## ", start + 1)]
    assert "snr analyze sample_models/digits_mlp.onnx --data sample_models/digits_test.npz" in block
    d = snrcli.analyze(REPO / "sample_models/digits_mlp.onnx", REPO / "sample_models/digits_test.npz").to_dict()
    net = d["network"]
    row = f"│ {net['G_hidden']:8.4f} │ {net['G_final']:7.4f} │ {net['G_total']:7.4f} │ {d['accuracy']:.4f} ({d['labelled']}) │"
    assert row in block, f"README's pasted network row is stale; now: {row}"
    for L in d["layers"]:
        cells = [f"{L['S_mean']:.4f}", f"{L['G_mean']:.4f}", f"{L['inputs_kept']}/{L['inputs']}"]
        line = next((ln for ln in block.splitlines() if re.search(rf"│ {L['index']} │ {re.escape(L['name'])}\b", ln)), "")
        assert all(c in line for c in cells), f"README row of layer {L['name']} is stale: {line!r} vs {cells}"
