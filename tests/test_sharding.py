"""Sharded runs (--jobs, --scheduler) merge to the single-process figures (issue: scale across machines)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import snrcli
from snrcli.analysis.stream import shard_ranges

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "sample_models/digits_cnn.onnx"
DATA = REPO / "sample_models/digits_test.npz"
FIGURES = ("S_mean", "G_mean", "S_mean_unweighted", "G_mean_unweighted", "activity_mean", "S_mean_centred",
           "G_mean_centred")


def assert_same_report(a: dict, b: dict, rtol: float = 1e-6) -> None:
    """Equal up to rounding: large layers multiply float32 activations in float32 blocks (summed in float64),
    and shards start their blocks at other rows, so figures agree to float32 rounding, not float64's."""
    assert [L["samples"] for L in a["layers"]] == [L["samples"] for L in b["layers"]]
    assert [L["inputs_kept"] for L in a["layers"]] == [L["inputs_kept"] for L in b["layers"]]
    for La, Lb in zip(a["layers"], b["layers"]):
        for k in FIGURES:
            if La[k] is None:
                assert Lb[k] is None, k
            else:
                assert Lb[k] == pytest.approx(La[k], rel=rtol, abs=1e-12), (La["name"], k)
    for k, v in a["network"].items():
        assert b["network"][k] == pytest.approx(v, rel=rtol)
    assert b["accuracy"] == a["accuracy"] and b["labelled"] == a["labelled"]
    assert b["baselines"]["mean_max_softmax"] == pytest.approx(a["baselines"]["mean_max_softmax"], rel=1e-12)


@pytest.mark.parametrize("items,shards,align", [(540, 2, 1), (540, 7, 1), (10, 3, 4), (5, 8, 1), (100, 3, 10)])
def test_shard_ranges_cover_the_items_once(items, shards, align):
    ranges = shard_ranges(items, shards, align)
    covered = [i for a, b in ranges for i in range(a, b)]
    assert covered == list(range(items))
    assert len(ranges) <= shards
    assert all(a % align == 0 for a, _ in ranges)


def test_jobs_equal_a_single_pass_on_the_sample_cnn():
    one = snrcli.analyze(MODEL, DATA, batch_size=64).to_dict()
    three = snrcli.analyze(MODEL, DATA, batch_size=64, jobs=3).to_dict()
    assert_same_report(one, three)
    assert three["meta"]["jobs"] == 3


def test_dask_local_cluster_equals_a_single_pass(tmp_path):
    pytest.importorskip("dask.distributed", reason="the dask extra is not installed (pip install 'snrcli[dask]')")
    # a memory-mapped .npy data set, as workers of a real cluster would read it
    with np.load(DATA) as z:
        np.save(tmp_path / "x.npy", z["input"])
    one = snrcli.analyze(MODEL, tmp_path / "x.npy", batch_size=64).to_dict()
    dask = snrcli.analyze(MODEL, tmp_path / "x.npy", batch_size=64, scheduler="local:2").to_dict()
    assert_same_report(one, dask)
    assert dask["meta"]["scheduler"] == "local:2"
    json.dumps(dask, allow_nan=False)


def test_bad_scheduler_address_is_a_usage_error(run_cli):
    pytest.importorskip("dask.distributed", reason="the dask extra is not installed")
    r = run_cli("analyze", MODEL, "--data", DATA, "--scheduler", "local:zero", code=2)
    assert r.stderr.strip().splitlines() == ["error: --scheduler 'local:zero': expected local:N with N a number "
                                             "of workers"]
