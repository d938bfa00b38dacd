"""``--noise-model``: the activation model gives the relu model's figures on ReLU networks (equivalence),
records its setting, warns where the relu model misreads an activation, and survives sharding."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import snrcli
from helpers import make_model, vi, write
from shared_assets import SHARED, prepared_inputs
from snrcli.errors import UsageError
from test_sites import Build

REPO = Path(__file__).resolve().parents[1]
FLOATS = ["S_mean", "G_mean", "S_mean_unweighted", "G_mean_unweighted", "activity_mean", "S_mean_centred",
          "G_mean_centred"]
COUNTS = ["units", "inputs", "inputs_kept", "samples", "undefined_units", "classifier", "input_activation",
          "unit_activation", "name", "node"]
NONLINEAR = {"LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Softplus",
             "Softsign", "Gelu", "Mish", "ThresholdedRelu", "Erf", "Exp", "Log", "Sqrt", "Abs", "Reciprocal", "Pow",
             "Clip", "Max", "Min"}


def rel_close(a, b, rtol=1e-9) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= rtol * max(abs(a), abs(b)) or abs(a - b) <= 1e-15


def assert_same_figures(relu, act, label: str) -> None:
    """Every layer and network figure within 1e-9 relative, counts and site lists exactly, units too."""
    a, b = relu.to_dict(), act.to_dict()
    assert a["settings"]["noise_model"] == "relu" and b["settings"]["noise_model"] == "activation"
    problems = []
    for La, Lb, ua, ub in zip(a["layers"], b["layers"], relu.layers, act.layers):
        problems += [f"layer {La['index']} {k}: {La[k]} vs {Lb[k]}" for k in COUNTS if La[k] != Lb[k]]
        problems += [f"layer {La['index']} {k}: {La[k]} vs {Lb[k]}" for k in FLOATS if not rel_close(La[k], Lb[k])]
        for name in ("unit_S", "unit_G", "unit_r"):
            x, y = getattr(ua, name), getattr(ub, name)
            if not np.allclose(x, y, rtol=1e-9, atol=1e-15, equal_nan=True):
                problems.append(f"layer {La['index']} {name} differ")
    problems += [f"network {k}" for k in a["network"] if not rel_close(a["network"][k], b["network"][k])]
    assert not problems, f"{label}: " + "; ".join(problems)


def relu_only(report) -> bool:
    """Section 11's condition: every activation site found is a lone Relu read directly (or through
    element-preserving ops)."""
    return all(L[k] in (None, ["Relu"]) for L in report.to_dict()["layers"]
               for k in ("input_activation", "unit_activation"))


def both(model, data, **kw):
    return snrcli.analyze(model, data, **kw), snrcli.analyze(model, data, noise_model="activation", **kw)


@pytest.mark.parametrize("name", ["digits_mlp", "digits_cnn"])
def test_sample_models_give_the_same_figures_under_both_models(name):
    model, data = REPO / "sample_models" / f"{name}.onnx", REPO / "sample_models" / "digits_test.npz"
    relu, act = both(model, data)
    assert relu_only(act)
    assert any(L["input_activation"] == ["Relu"] for L in act.to_dict()["layers"])
    assert not relu.warnings and not act.warnings
    assert_same_figures(relu, act, name)


def _fixtures(prefix_ok) -> list:
    folder = SHARED / "conformance" / "fixtures"
    names = sorted(p.name[:-len(".expected.json")] for p in folder.glob("*.expected.json")) if folder.is_dir() else []
    found = [n for n in names if prefix_ok(n)]
    return found or [pytest.param("absent", marks=pytest.mark.skip(reason=f"{folder} not found"))]


@pytest.mark.parametrize("name", _fixtures(lambda n: not n.startswith("m")))
def test_version_one_fixtures_give_the_same_figures_under_both_models(name):
    folder = SHARED / "conformance" / "fixtures"
    expected = json.loads((folder / f"{name}.expected.json").read_text())["settings"]
    kw = {"min_level": expected["min_level"], "min_activity": expected["min_activity"],
          "centre_classifier": expected.get("centre_classifier", True)}
    relu, act = both(folder / f"{name}.onnx", folder / f"{name}.npz", **kw)
    assert relu_only(act)
    assert_same_figures(relu, act, name)


def test_relu_only_fixture_m7_matches_and_the_others_do_not():
    """m7 (a ReLU net under the activation model) gives the relu figures; m1 (GELU) does not."""
    folder = SHARED / "conformance" / "fixtures"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    relu, act = both(folder / "m7_relu_only_cnn.onnx", folder / "m7_relu_only_cnn.npz")
    assert_same_figures(relu, act, "m7")
    relu, act = both(folder / "m1_gelu_op_mlp.onnx", folder / "m1_gelu_op_mlp.npz")
    assert abs(relu.to_dict()["network"]["G_total"] - act.to_dict()["network"]["G_total"]) > 0.01
    assert len(relu.warnings) == 1 and "--noise-model activation" in relu.warnings[0]
    assert "layers 1 (fc1), 2 (fc2), 3 (fc3)" in relu.warnings[0] and "Gelu" in relu.warnings[0]
    assert not act.warnings


def _shared_models() -> list:
    p = SHARED / "models" / "manifest.json"
    if not p.exists():
        return [pytest.param(None, id="absent", marks=pytest.mark.skip(reason=f"{p} not found"))]
    return [pytest.param(e, id=e["short_name"]) for e in json.loads(p.read_text())["models"]
            if not all(":" in op for op in e["op_counts"]) and not NONLINEAR & set(e["op_counts"])]


@pytest.mark.parametrize("entry", _shared_models())
def test_relu_only_real_models_give_the_same_figures_under_both_models(entry, tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, **prepared_inputs(entry, 16))
    relu, act = both(str(SHARED / entry["file"]), str(path), output=entry["preprocessing_params"].get("output"))
    if not relu_only(act):
        pytest.skip("a layer reads a Relu through a linear op that is not element-preserving")
    assert_same_figures(relu, act, entry["short_name"])


# --------------------------------------------------------------------------- settings, CLI, sharding

def gelu_mlp(tmp_path):
    rng = np.random.default_rng(0)
    g = Build()
    h = g.op("Gelu", g.op("Gemm", "x", g.c(rng.standard_normal((6, 4))), g.c(rng.standard_normal(6)), transB=1,
                          name="fc1"))
    y = g.op("Gemm", g.op("Tanh", g.op("Gemm", h, g.c(rng.standard_normal((5, 6))), transB=1, name="fc2")),
             g.c(rng.standard_normal((3, 5))), transB=1, name="fc3")
    model = make_model(g.nodes, [vi("x", ["N", 4])], [vi(y, ["N", 3])], g.inits, opset=20, ir_version=9)
    x = rng.standard_normal((90, 4)).astype(np.float32)
    return write(tmp_path, model, {"x": x, "labels": rng.integers(0, 3, 90)})


def test_cli_records_the_noise_model_and_warns_once_under_relu(run_cli, tmp_path):
    m, d = gelu_mlp(tmp_path)
    r = run_cli("analyze", m, "--data", d, "--json")
    rep = json.loads(r.stdout)
    assert rep["settings"]["noise_model"] == "relu"
    assert [(L["input_activation"], L["unit_activation"]) for L in rep["layers"]] == \
        [(None, ["Gelu"]), (["Gelu"], ["Tanh"]), (["Tanh"], None)]
    lines = [ln for ln in r.stderr.splitlines() if "--noise-model activation" in ln]
    assert len(lines) == 1 and "layers 1 (fc1), 2 (fc2), 3 (fc3)" in lines[0] and "Gelu, Tanh" in lines[0]
    r = run_cli("analyze", m, "--data", d, "--json", "--noise-model", "activation")
    act = json.loads(r.stdout)
    assert act["settings"]["noise_model"] == "activation" and "--noise-model" not in r.stderr
    assert act["layers"][1]["activity_mean"] < 1.0 and rep["layers"][1]["activity_mean"] == 1.0
    bad = run_cli("analyze", m, "--data", d, "--noise-model", "gelu", code=2)
    assert "gelu" in bad.stderr and "Traceback" not in bad.stderr
    found = json.loads(run_cli("inspect", m, "--json").stdout)["layers"]
    assert [(L["input_activation"], L["unit_activation"]) for L in found] == \
        [(None, ["Gelu"]), (["Gelu"], ["Tanh"]), (["Tanh"], None)]
    assert "Gelu" in run_cli("inspect", m).stdout


def test_python_api_refuses_an_unknown_noise_model(tmp_path):
    m, d = gelu_mlp(tmp_path)
    with pytest.raises(UsageError, match="noise model 'tanh'"):
        snrcli.analyze(m, d, noise_model="tanh")


def test_jobs_two_gives_the_figures_of_one_pass_under_the_activation_model(tmp_path):
    m, d = gelu_mlp(tmp_path)
    one = snrcli.analyze(m, d, noise_model="activation", batch_size=7).to_dict()
    two = snrcli.analyze(m, d, noise_model="activation", batch_size=7, jobs=2).to_dict()
    for La, Lb in zip(one["layers"], two["layers"]):
        assert all(rel_close(La[k], Lb[k], 1e-12) for k in FLOATS), (La, Lb)
        assert La["inputs_kept"] == Lb["inputs_kept"]
    assert math.isclose(one["network"]["G_total"], two["network"]["G_total"], rel_tol=1e-12)


def test_batch_size_does_not_change_the_activation_figures(tmp_path):
    m, d = gelu_mlp(tmp_path)
    runs = [snrcli.analyze(m, d, noise_model="activation", batch_size=b).to_dict() for b in (1, 8, 90)]
    for other in runs[1:]:
        for La, Lb in zip(runs[0]["layers"], other["layers"]):
            assert all(rel_close(La[k], Lb[k], 1e-12) for k in FLOATS)


def test_compare_refuses_runs_of_different_noise_models(run_cli, tmp_path):
    m, d = gelu_mlp(tmp_path)
    run_cli("analyze", m, "--data", d, "--out", "relu")
    run_cli("analyze", m, "--data", d, "--out", "act", "--noise-model", "activation")
    r = run_cli("compare", "relu", "act", code=2)
    assert "settings.noise_model" in r.stderr and "activation" in r.stderr
    old = json.loads((tmp_path / "relu" / "report.json").read_text())
    del old["settings"]["noise_model"]                      # a report written before the setting existed
    (tmp_path / "old.json").write_text(json.dumps(old))
    run_cli("compare", "relu", "old.json")
    run_cli("compare", "act", "old.json", code=2)


def test_slopes_shared_out_between_threads_give_the_same_figures(tmp_path, monkeypatch):
    import snrcli.analysis.slopes as slopes
    m, d = gelu_mlp(tmp_path)
    one = snrcli.analyze(m, d, noise_model="activation", threads=1).to_dict()
    monkeypatch.setattr(slopes, "PARALLEL_MIN", 0)
    monkeypatch.setattr(slopes, "CHUNK", 8)           # many blocks: every thread takes a run of them
    three = snrcli.analyze(m, d, noise_model="activation", threads=3).to_dict()
    for La, Lb in zip(one["layers"], three["layers"]):
        assert all(La[k] == Lb[k] for k in FLOATS), (La, Lb)


# --------------------------------------------------------------------------- how the slopes are evaluated

def _erf_gelu_site():
    """GELU as exporters write it: Mul(Mul(z, 0.5), Add(Erf(Div(z, sqrt 2)), 1))."""
    from snrcli.model.sites import Site, Step
    c = lambda v: np.asarray(v, dtype=np.float64)  # noqa: E731
    steps = [Step("Mul", "half", ("z", c(0.5)), linear=True), Step("Div", "u", ("z", c(np.float32(math.sqrt(2)))),
                                                                  linear=True),
             Step("Erf", "e", ("u",)), Step("Add", "cdf", ("e", c(1.0)), linear=True), Step("Mul", "x", ("half", "cdf"))]
    return Site(z="z", x="x", steps=steps, bounded=True)


def _gelu_slope(z):
    from scipy.special import erf
    return 0.5 * (1 + erf(z / math.sqrt(2))) + z * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def test_erf_values_are_read_from_the_given_tensor_and_the_slopes_match_float64():
    """Phi(z) + z phi(z) from onnxruntime's Erf output where it is given (wrong values show through),
    within 1e-6 of s_max^2 of the float64 slope; the runner is asked for that tensor."""
    from snrcli.analysis.sitestats import needed_tensors
    from snrcli.analysis.slopes import reused, squared_slopes
    site = _erf_gelu_site()
    z = np.random.default_rng(1).standard_normal((3, 50, 40)).astype(np.float32) * 3
    want = _gelu_slope(z.astype(np.float64)) ** 2
    from scipy.special import erf
    e = erf(z.astype(np.float64) / math.sqrt(2)).astype(np.float32)
    for known in ({}, {"e": e}):
        sq, top = squared_slopes(site, z, known=known)
        assert sq.dtype == np.float64 and np.max(np.abs(sq - want)) < 1e-6 * want.max()
        assert top == sq.max()
    sq, _ = squared_slopes(site, z, known={"e": np.zeros_like(e)})     # erf read as 0: Phi = 1/2 everywhere
    assert np.allclose(sq, (0.5 + z * np.exp(-0.5 * z.astype(np.float64) ** 2) / math.sqrt(2 * math.pi)) ** 2,
                       rtol=1e-5, atol=1e-6)
    sq, _ = squared_slopes(site, z, known={"e": np.zeros((2, 2), np.float32)})   # not z's shape: not used
    assert np.max(np.abs(sq - want)) < 1e-6 * want.max()
    assert reused(site) == ["e"]

    class L:
        input_site, unit_site = None, site
    assert needed_tensors([L()], "activation") == ["z", "e"]


def test_a_float32_block_that_overflows_is_evaluated_again_in_float64():
    """tanh GELU's z^2 overflows float32 at |z| > 1.9e19 (0 times inf): the slope there is still 1 (0 below)."""
    from snrcli.analysis.slopes import squared_slopes
    from snrcli.model.sites import Site, Step
    site = Site(z="z", x="x", steps=[Step("Gelu", "x", ("z",), {"approximate": "tanh"})], bounded=True)
    z = np.array([[-1e20, -1.0, 0.0, 1.0, 1e20]], dtype=np.float32)
    with np.errstate(all="ignore"):
        sq, top = squared_slopes(site, z)
    assert np.all(np.isfinite(sq)) and sq[0, 0] == 0.0 and sq[0, -1] == 1.0 and top == sq.max()
    v = np.array([-1.0, 0.0, 1.0])
    u = math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)
    s = 0.5 * (1 + np.tanh(u)) + 0.5 * v * (1 - np.tanh(u) ** 2) * math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * v * v)
    assert np.allclose(sq[0, 1:4], s ** 2, rtol=1e-6)
