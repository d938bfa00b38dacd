"""correlate and compare without friction: --id-column, extra covariate rows, folders of reports as a RUN,
the same report twice, the partial method named, --plot with a control and --colour-by, layers renamed
across runs; and the shipped JSON Schemas of every JSON that snr writes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from conftest import check_output_dict
from test_correlate import family, make_report, write_cov, write_reports
from snrcli.reports.report import SCHEMAS, schema

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def snr(run_cli):
    return lambda *args, code=0: run_cli(*args, code=code)


# --------------------------------------------------------------------------- covariates


def test_id_column_names_the_runs(snr, tmp_path):
    paths = family(tmp_path)
    cov = write_cov(tmp_path, "name,epochs\nrun0,1\nrun1,2\nrun2,3\nrun3,4\n")
    d = json.loads(snr("correlate", *paths, "--covariates", cov, "--id-column", "name", "--target", "epochs",
                       "--json").stdout)
    assert [r["target"] for r in d["runs"]] == [1.0, 2.0, 3.0, 4.0]
    err = snr("correlate", *paths, "--covariates", cov, "--target", "epochs", code=2).stderr
    assert "no 'run' column" in err and "--id-column" in err
    err = snr("correlate", *paths, "--covariates", cov, "--id-column", "name", "--target", "name", code=2).stderr
    assert "--target name: no such column" in err


def test_rows_for_runs_not_given_are_ignored_with_one_note(snr, tmp_path):
    paths = family(tmp_path)
    rows = "".join(f"run{k},{k}\n" for k in range(40))          # a sweep's CSV, four of its runs given
    res = snr("correlate", *paths, "--covariates", write_cov(tmp_path, "run,epochs\n" + rows), "--target", "epochs")
    notes = [ln for ln in res.stderr.splitlines() if "--covariates" in ln]
    assert len(notes) == 1 and "36 rows for runs not given ignored ('run4', 'run5'" in notes[0]


# --------------------------------------------------------------------------- runs


def test_a_folder_of_reports_is_its_reports_sorted(snr, tmp_path):
    folder = tmp_path / "sweep"
    folder.mkdir()
    paths = family(folder)
    (folder / "notes.txt").write_text("not a report")
    listed = json.loads(snr("correlate", *paths, "--json").stdout)
    by_folder = json.loads(snr("correlate", folder, "--json").stdout)
    assert [r["source"] for r in by_folder["runs"]] == sorted(paths)
    assert by_folder["rows"] == listed["rows"]
    # run folders inside a folder count too, and compare takes folders as well
    run = folder / "zrun"
    run.mkdir()
    (run / "report.json").write_text(json.dumps(make_report(0.95)))
    d = json.loads(snr("compare", folder, "--json").stdout)
    assert d["mode"] == "ranking" and [r["source"] for r in d["runs"]] == sorted(paths) + [str(run)]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "without report.json and without *.json reports" in snr("correlate", empty, code=2).stderr


def test_the_same_report_twice_is_an_error(snr, tmp_path):
    paths = family(tmp_path)
    res = snr("correlate", *paths, paths[1], code=2)
    assert res.stderr.splitlines() == [f"error: {paths[1]} and {paths[1]} are the same report: give each run once "
                                       "(a run counted twice would weigh twice in every correlation)"]
    copy = tmp_path / "copy.json"
    shutil.copy(paths[0], copy)
    assert "are the same report" in snr("correlate", *paths, copy, code=2).stderr
    res = snr("correlate", "a.onnx", "b.onnx", "./a.onnx", "--data", "d.npz", code=2)   # before any analysis
    assert "a.onnx and ./a.onnx are the same model" in res.stderr


# --------------------------------------------------------------------------- partial correlation, plot


def test_output_names_the_partial_method_and_the_control(snr, tmp_path):
    paths = family(tmp_path)
    cov = write_cov(tmp_path, "run,epochs,reg\nrun0,1,l2\nrun1,3,none\nrun2,2,l2\nrun3,4,none\n")
    d = json.loads(snr("correlate", *paths, "--covariates", cov, "--control", "epochs", "--json").stdout)
    assert d["control"] == "epochs" and d["partial_method"].startswith("partial Spearman")
    assert "n - 3 degrees of freedom" in d["partial_method"]
    out = snr("correlate", *paths, "--covariates", cov, "--control", "epochs").stdout
    flat = " ".join(out.split())
    assert "partial Spearman controlling for epochs" in flat
    assert "ranks of the figure and of accuracy each regressed on the ranks of epochs" in flat
    plain = json.loads(snr("correlate", *paths, "--json").stdout)
    assert plain["partial_method"] is None and plain["control"] is None


@pytest.mark.parametrize("colour", [None, "reg", "epochs"])
def test_plot_shows_the_partial_correlation_and_colours_points(snr, tmp_path, monkeypatch, colour):
    pytest.importorskip("matplotlib")
    from snrcli.reports import plot

    plt = plot.require_matplotlib()
    figures = []
    real_close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig: (figures.append(fig), real_close(fig)))
    paths = family(tmp_path)
    cov = write_cov(tmp_path, "run,epochs,reg\nrun0,1,l2\nrun1,3,none\nrun2,2,l2\nrun3,4,none\n")
    args = ["--colour-by", colour] if colour else []
    snr("correlate", *paths, "--covariates", cov, "--control", "epochs", "--plot", tmp_path / "p.png", *args)
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    (fig,) = figures
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles and all("partial | epochs = " in t for t in titles)
    g1 = next(t for t in titles if t.startswith("L1 fc1  G"))
    d = json.loads(snr("correlate", *paths, "--covariates", cov, "--control", "epochs", "--json").stdout)
    partial = next(r for r in d["rows"] if r["figure"] == "layers[1].G_mean")["partial_rho"]
    assert (f"{partial:.3f}" if partial is not None else "n/a") in g1
    if colour == "reg":                      # categories: a legend with both values
        (legend,) = fig.legends
        assert sorted(t.get_text() for t in legend.get_texts()) == ["l2", "none"]
    else:                                    # numbers (the control by default): a colour bar
        assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)


def test_colour_by_needs_plot_and_a_column(snr, tmp_path):
    paths = family(tmp_path)
    cov = write_cov(tmp_path, "run,epochs\nrun0,1\nrun1,3\nrun2,2\nrun3,4\n")
    assert "pass --plot" in snr("correlate", *paths, "--covariates", cov, "--colour-by", "epochs", code=2).stderr
    assert "pass --covariates" in snr("correlate", *paths, "--colour-by", "epochs", "--plot", "p.png",
                                      code=2).stderr
    err = snr("correlate", *paths, "--covariates", cov, "--colour-by", "seed", "--plot", "p.png", code=2).stderr
    assert "--colour-by seed: no such column" in err


# --------------------------------------------------------------------------- renamed layers


def test_renamed_layers_align_by_index_with_one_note(snr, tmp_path):
    reps = [make_report(0.6 + k / 10, g=(1.0 + k, 2.0 - k / 10, 3.0), names=names)
            for k, names in enumerate([("fc1", "fc2", "fc3"), ("Gemm_0", "Gemm_2", "Gemm_4"),
                                       ("fc1", "fc2", "fc3"), ("Gemm_0", "Gemm_2", "Gemm_4")])]
    res = snr("correlate", *write_reports(tmp_path, reps), "--json")
    notes = [w for w in json.loads(res.stdout)["warnings"] if "names differ" in w]
    assert notes == ["layer names differ across the runs at layers 1 (fc1 | Gemm_0), 2 (fc2 | Gemm_2), "
                     "3 (fc3 | Gemm_4): rows match layers by index and list the names they used"]
    assert res.stderr.count("names differ") == 1
    rows = {r["figure"]: r for r in json.loads(res.stdout)["rows"]}
    assert rows["layers[1].G_mean"]["names"] == ["fc1", "Gemm_0"]
    assert rows["layers[1].G_mean"]["label"] == "L1 fc1|Gemm_0  G" and rows["network.G_total"]["names"] is None
    a, b = write_reports(tmp_path, reps[:2], names=["a", "b"])
    cmp = snr("compare", a, b, "--json")
    assert cmp.stderr.count("warning:") == 1 and "3 layers differ" in cmp.stderr


# --------------------------------------------------------------------------- schemas


@pytest.mark.parametrize("name", SCHEMAS)
def test_every_shipped_schema_is_valid(name):
    s = schema(name)
    jsonschema.Draft202012Validator.check_schema(s)
    assert s["$id"] == name and s["properties"]["schema"]["const"] == name


def test_unknown_schema_name_is_refused():
    with pytest.raises(ValueError, match="snr-compare/1"):
        schema("snr-other/1")


@pytest.mark.parametrize("model", ["digits_mlp.onnx", "digits_cnn.onnx"])
def test_inspect_json_validates(snr, model):
    d = json.loads(snr("inspect", REPO / "sample_models" / model, "--json").stdout)
    check_output_dict(d, "snr-inspect/1")
    assert d["schema"] == "snr-inspect/1"
    assert d["inputs"][0]["layout"] == ("nchw" if "cnn" in model else None)


def test_outputs_validate_and_broken_ones_do_not(snr, tmp_path):
    paths = family(tmp_path)
    cov = write_cov(tmp_path, "run,epochs\nrun0,1\nrun1,3\nrun2,2\nrun3,4\n")
    outputs = {
        "snr-correlate/1": snr("correlate", *paths, "--covariates", cov, "--control", "epochs", "--json").stdout,
        "snr-compare/1": snr("compare", paths[0], paths[1], "--json").stdout,
        "snr-check/1": snr("check", paths[1], "--baseline", paths[0], "--max-drop", "network.G_total=5%",
                           "--require", "accuracy > 0.5", "--json").stdout,
    }
    for name, text in outputs.items():
        d = json.loads(text)
        check_output_dict(d, name)
        broken = json.loads(text)
        broken["schema"] = "snr-report/1"
        with pytest.raises(AssertionError, match=name):
            check_output_dict(broken, name)
    d = json.loads(outputs["snr-check/1"])
    del d["conditions"][1]["drop"]                       # a max-drop condition without its drop
    with pytest.raises(AssertionError, match="drop"):
        check_output_dict(d, "snr-check/1")
    d = json.loads(outputs["snr-compare/1"])
    d["layers"][0]["figures"]["S_mean"]["delta"] = "0.1"
    with pytest.raises(AssertionError, match="snr-compare/1"):
        check_output_dict(d, "snr-compare/1")
