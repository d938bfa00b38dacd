"""Every third-party model of ../shared/models/manifest.json on its data set, with the manifest's preprocessing.

A few hundred items per model keep this file fast; conv models get fewer (their patch
statistics cost most). Skipped when ../shared is absent.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import snrcli
from shared_assets import SHARED, prepared_inputs
from snrcli.errors import NoLayerError, SnrError

DENSE_ITEMS, CONV_ITEMS = 200, 100
ACCURACY_TOL = 0.05


def _entries() -> list[dict]:
    p = SHARED / "models" / "manifest.json"
    return json.loads(p.read_text())["models"] if p.exists() else []


ENTRIES = _entries()
ABSENT = pytest.mark.skip(reason=f"{SHARED} not found: the reference models live in ../shared beside the repository")
MODELS = [pytest.param(e, id=e["short_name"]) for e in ENTRIES] or [pytest.param(None, marks=ABSENT, id="absent")]


def all_unsupported(entry: dict) -> bool:
    """Every op lives outside the default domain (the sklearn export): no layer to analyse."""
    return all(":" in op for op in entry["op_counts"])


def items_for(entry: dict) -> int:
    return CONV_ITEMS if "Conv" in entry["op_counts"] else DENSE_ITEMS


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("shared_data")


def data_file(entry: dict, folder) -> str:
    path = folder / f"{entry['short_name']}.npz"
    if not path.exists():
        np.savez(path, **prepared_inputs(entry, items_for(entry)))
    return str(path)


def run(entry: dict, folder):
    return snrcli.analyze(str(SHARED / entry["file"]), data_file(entry, folder),
                          output=entry["preprocessing_params"].get("output"))


def finite(v) -> bool:
    return v is not None and math.isfinite(v)


@pytest.mark.parametrize("entry", MODELS)
def test_shared_model(entry, data_dir):
    if all_unsupported(entry):
        with pytest.raises(NoLayerError) as e:
            run(entry, data_dir)
        msg = str(e.value)
        assert "\n" not in msg
        for op in entry["op_counts"]:
            domain, name = op.split(":")
            if name in ("LinearClassifier", "LinearRegressor", "SVMClassifier", "TreeEnsembleClassifier"):
                assert name in msg, msg
        return
    if entry["tier"] == "core":
        rep = run(entry, data_dir)
    else:
        try:
            rep = run(entry, data_dir)
        except SnrError as e:          # an extra-tier model may be refused, with one clear line
            msg = str(e)
            assert msg and "\n" not in msg and "Traceback" not in msg
            return
    d = rep.to_dict()
    n = items_for(entry)
    assert d["data"]["samples"] == n
    assert d["layers"], "no layer found"
    for L in d["layers"]:
        assert L["samples"] >= n, L
        if entry["tier"] == "core":
            assert finite(L["S_mean"]) and finite(L["G_mean"]), L
        if L["S_mean"] is not None:
            assert -1 <= L["S_mean"] <= 1
        if L["classifier"]:
            assert finite(L["S_mean_centred"]) and finite(L["G_mean_centred"]), L
    if entry["tier"] == "core":
        assert all(finite(d["network"][k]) for k in ("G_hidden", "G_final", "G_total")), d["network"]
        assert d["network"]["G_total"] == pytest.approx(d["network"]["G_hidden"] + d["network"]["G_final"])
    if d["accuracy"] is not None:
        assert abs(d["accuracy"] - entry["accuracy"]) <= ACCURACY_TOL, (d["accuracy"], entry["accuracy"])
    else:
        # labels are always given here: no accuracy only when the scored output has no class axis
        assert entry["tier"] != "core", "a core model's output should give an accuracy"
        assert any("accuracy" in w for w in d["warnings"]), d["warnings"]


def test_unsupported_model_exits_3_through_the_cli(run_cli, data_dir):
    entries = [e for e in ENTRIES if all_unsupported(e)]
    if not entries:
        pytest.skip("no all-unsupported model in the manifest (or ../shared absent)")
    for entry in entries:
        res = run_cli("analyze", str(SHARED / entry["file"]), "--data", data_file(entry, data_dir), code=3)
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), res
        assert "no supported layer" in lines[0] and "LinearClassifier" in lines[0]
