"""The CI example (examples/ci/snr-gate.yml) passes on the shipped sample model against its committed baseline."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from snrcli.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_workflow_commands_pass_against_committed_baseline(tmp_path, monkeypatch):
    workflow = (REPO / "examples/ci/snr-gate.yml").read_text()
    assert "snr check run" in workflow and "--baseline examples/ci/baseline_report.json" in workflow
    monkeypatch.chdir(REPO)
    runner = CliRunner(env={"NO_COLOR": "1"})
    out = tmp_path / "run"
    r = runner.invoke(main, ["analyze", "sample_models/digits_mlp.onnx", "--data", "sample_models/digits_test.npz",
                             "--out", str(out), "--force", "-q"])
    assert r.exit_code == 0, r.stderr
    r = runner.invoke(main, ["check", str(out), "--baseline", "examples/ci/baseline_report.json",
                             "--max-drop", "network.G_total=5%", "--require", "network.G_total > 0"])
    assert r.exit_code == 0, r.stdout + r.stderr
    assert len(re.findall(r"^PASS ", r.stdout, flags=re.M)) == 2
    # the baseline is the sample model's real report, not an invented one
    base = json.loads((REPO / "examples/ci/baseline_report.json").read_text())
    fresh = json.loads((out / "report.json").read_text())
    assert base["model"]["sha256"] == fresh["model"]["sha256"]
    assert abs(base["network"]["G_total"] - fresh["network"]["G_total"]) <= 1e-6 * abs(base["network"]["G_total"])
