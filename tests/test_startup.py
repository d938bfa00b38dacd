"""Start-up: the CLI module and the commands that need no model import none of the heavy libraries.

Each case runs in a fresh Python process (this one has long imported everything)
and reports which of the watched modules ended up in ``sys.modules``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_MLP = ROOT / "sample_models" / "digits_mlp.onnx"
SAMPLE_CNN = ROOT / "sample_models" / "digits_cnn.onnx"
SAMPLE_DATA = ROOT / "sample_models" / "digits_test.npz"
HEAVY = ["onnx", "onnxruntime", "numpy", "scipy", "ml_dtypes"]

IMPORT_PROBE = """
import json, sys
for name in json.loads(sys.argv[1]):
    __import__(name)
print(json.dumps(sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules)))
"""

COMMAND_PROBE = """
import json, os, sys
from snrcli.cli import main
try:
    main(args=json.loads(sys.argv[1]), prog_name="snr")
    code = 0
except SystemExit as e:
    code = e.code or 0
with open(os.environ["SNR_PROBE_OUT"], "w") as f:
    json.dump({"code": code, "loaded": sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules)}, f)
"""


def loaded_after_import(modules: list[str], watched: list[str]) -> list[str]:
    p = subprocess.run([sys.executable, "-c", IMPORT_PROBE, json.dumps(modules), json.dumps(watched)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def run_probe(args: list[str], watched: list[str], tmp_path: Path, env: dict[str, str] | None = None):
    """(exit code, watched modules loaded, stdout, stderr) of ``snr ARGS`` in a fresh process."""
    out = tmp_path / "probe.json"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("_SNR_COMPLETE")}
    full_env.update(NO_COLOR="1", COLUMNS="120", SNR_PROBE_OUT=str(out), **(env or {}))
    p = subprocess.run([sys.executable, "-c", COMMAND_PROBE, json.dumps(args), json.dumps(watched)],
                       cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=300)
    assert out.exists(), p.stderr
    result = json.loads(out.read_text())
    return result["code"], result["loaded"], p.stdout, p.stderr


@pytest.mark.parametrize("modules", [["snrcli"], ["snrcli.cli"], ["snrcli", "snrcli.cli.main"]])
def test_importing_the_package_or_the_cli_loads_no_heavy_library(modules):
    assert loaded_after_import(modules, HEAVY + ["rich.console"]) == []


def test_the_probe_sees_what_the_analysis_loads():
    """The same probe on the analysis pipeline finds the libraries (so an empty list above means something)."""
    assert {"numpy", "onnx", "onnxruntime"} <= set(loaded_after_import(["snrcli.analysis.api"], HEAVY))


LIGHT_COMMANDS = [
    (["--help"], {}, "Usage: snr"),
    (["--version"], {}, "snr, version"),
    (["analyze", "--help"], {}, "--batch-size"),
    (["compare", "--help"], {}, "--rank-by"),
    (["check", "--help"], {}, "--require"),
    (["correlate", "--help"], {}, "--covariates"),
    (["inspect", "--help"], {}, "--no-centring"),
    ([], {"_SNR_COMPLETE": "bash_source"}, "_SNR_COMPLETE=bash_complete"),
    ([], {"_SNR_COMPLETE": "zsh_source"}, "_SNR_COMPLETE=zsh_complete"),
    ([], {"_SNR_COMPLETE": "fish_source"}, "_SNR_COMPLETE=fish_complete"),
    ([], {"_SNR_COMPLETE": "bash_complete", "COMP_WORDS": "snr an", "COMP_CWORD": "1"}, "plain,analyze"),
]


@pytest.mark.parametrize("args,env,expected", LIGHT_COMMANDS,
                         ids=[" ".join(a) or e["_SNR_COMPLETE"] for a, e, _ in LIGHT_COMMANDS])
def test_help_version_and_completion_load_no_heavy_library(tmp_path, args, env, expected):
    code, loaded, stdout, _ = run_probe(args, HEAVY + ["rich.console"], tmp_path, env)
    assert code == 0
    assert expected in stdout
    assert loaded == []


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> list[str]:
    """Report files of the sample MLP, the sample CNN and the MLP with its first layer's weights halved."""
    import onnx
    from onnx import numpy_helper

    import snrcli

    folder = tmp_path_factory.mktemp("reports")
    halved = onnx.load(str(SAMPLE_MLP))
    first = next(n for n in halved.graph.node if n.op_type in ("Gemm", "MatMul"))
    weight = next(t for t in halved.graph.initializer if t.name == first.input[1])
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * 0.5, weight.name))
    onnx.save(halved, str(folder / "halved.onnx"))
    paths = []
    for model in (SAMPLE_MLP, SAMPLE_CNN, folder / "halved.onnx"):
        path = folder / f"{Path(model).stem}.json"
        path.write_text(snrcli.analyze(model, SAMPLE_DATA).to_json())
        paths.append(str(path))
    return paths


def test_compare_and_check_on_reports_load_no_numpy_onnx_or_scipy(tmp_path, reports):
    code, loaded, stdout, _ = run_probe(["compare", reports[0], reports[1]], HEAVY, tmp_path)
    assert code == 0 and "G_total" in stdout
    assert loaded == []
    code, loaded, stdout, _ = run_probe(["check", reports[0], "--require", "accuracy > 0.5"], HEAVY, tmp_path)
    assert code == 0 and stdout.startswith("PASS accuracy")
    assert loaded == []
    code, loaded, stdout, _ = run_probe(["check", reports[0], "--require", "accuracy > 1"], HEAVY, tmp_path)
    assert code == 1 and loaded == []


def test_correlate_on_reports_loads_no_numpy_scipy_or_onnx(tmp_path, reports):
    """correlate's rank statistics are plain Python, and reading reports needs no onnx or onnxruntime."""
    code, loaded, stdout, _ = run_probe(["correlate", *reports, "--json"], HEAVY, tmp_path)
    assert code == 0
    result = json.loads(stdout)
    assert len(result["runs"]) == 3
    assert any(row["spearman_rho"] is not None for row in result["rows"])
    assert loaded == []


def test_analyze_of_a_small_model_loads_no_scipy(tmp_path):
    """The weight baselines of small layers use numpy's eigen-solver: scipy would add 0.1-0.4 s of start-up."""
    code, loaded, stdout, _ = run_probe(["analyze", str(SAMPLE_MLP), "--data", str(SAMPLE_DATA), "--json"],
                                        ["scipy"], tmp_path)
    assert code == 0
    report = json.loads(stdout)
    assert report["baselines"]["log_spectral_norm_product"] is not None
    assert loaded == []
