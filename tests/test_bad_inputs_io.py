"""Files, folders, signals and pipes (issue #15, second round): nothing lost, nothing that hangs.

- A corpus of hostile data files (FIFOs, devices, crafted .npy/.npz headers, encrypted or
  unknown zip members, garbage) and odd paths (newlines, escape sequences), each run like
  ``tests/test_bad_inputs.py``: its exit code, one ``error:`` line, nothing written.
- ``inspect`` and ``analyze`` give the same exit code for the same broken model.
- ``--out``/``--force``: never deletes a file snr did not write; of concurrent runs writing the
  same folder exactly one wins; symbolic links and the umask are honoured.
- Fortran-ordered .npz members are read once, labels in chunks, ``--threads`` is capped.
- Ctrl-C, SIGTERM and a closed stdout on the real command (``python -m snrcli``, subprocesses
  with bounded timeouts): exit 130, 143 and 141, one line at most, no traceback, no worker left.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from onnx import TensorProto, numpy_helper

import corpus as C
from test_bad_inputs import analyze_broken_case, describe, invoke, mlp_data, mlp_file, report_of

EXIT_OK, EXIT_USAGE, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 2, 3, 4
EXIT_INTERRUPTED, EXIT_BROKEN_PIPE, EXIT_TERMINATED = 130, 141, 143
REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- crafted files

def npy_bytes(shape, descr: str = "<f4", fortran: bool = False, data: bytes | None = None) -> bytes:
    """A .npy stream whose header says ``shape`` whatever ``data`` holds (default: what the shape needs)."""
    header = "{'descr': %r, 'fortran_order': %s, 'shape': %r, }" % (descr, fortran, tuple(shape))
    raw = header.encode("latin1")
    raw += b" " * ((64 - (10 + len(raw) + 1) % 64) % 64) + b"\n"
    if data is None:
        data = bytes(int(np.prod(shape)) * np.dtype(descr).itemsize)
    return b"\x93NUMPY\x01\x00" + len(raw).to_bytes(2, "little") + raw + data


def zip_with(path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=method) as z:
        for name, raw in members.items():
            z.writestr(name, raw)
    return path


def patch_zip(path: Path, *, flag_bit: int | None = None, claimed_size: int | None = None) -> Path:
    """Set a general-purpose flag bit, or the uncompressed size, in every local and central header."""
    b = bytearray(path.read_bytes())
    for sig, flags_at, size_at in ((b"PK\x03\x04", 6, 22), (b"PK\x01\x02", 8, 24)):
        at = b.find(sig)
        while at >= 0:
            if flag_bit is not None:
                flags = int.from_bytes(b[at + flags_at:at + flags_at + 2], "little") | (1 << flag_bit)
                b[at + flags_at:at + flags_at + 2] = flags.to_bytes(2, "little")
            if claimed_size is not None:
                b[at + size_at:at + size_at + 4] = claimed_size.to_bytes(4, "little")
            at = b.find(sig, at + 4)
    path.write_bytes(bytes(b))
    return path


def feed_fifo_later(path: Path, after: float = 5.0) -> None:
    """A guard for FIFO cases: should snr open the FIFO for reading after all, garbage arrives after
    ``after`` seconds and the test fails instead of hanging (the writer blocks harmlessly otherwise)."""
    def write():
        time.sleep(after)
        with open(path, "wb") as f:
            f.write(b"not data")
    threading.Thread(target=write, daemon=True).start()


def invoke_within(seconds: float, *args):
    """``invoke`` on a side thread: a hang (reading a FIFO or /dev/zero) fails the test instead of the suite."""
    done: list = []
    worker = threading.Thread(target=lambda: done.append(invoke(*args)), daemon=True)
    worker.start()
    worker.join(seconds)
    if not done:
        pytest.fail(f"snr {' '.join(map(str, args))} still running after {seconds} s")
    return done[0]


# --------------------------------------------------------------------------- the corpus

@dataclass
class Case:
    build: Callable[[Path], list]
    code: int
    says: tuple[str, ...]
    never_says: tuple[str, ...] = ()


CASES_IO: list = []


def case(name: str, code: int, *says: str, never: tuple[str, ...] = ()):
    def register(build):
        CASES_IO.append(pytest.param(Case(build, code, says, never), id=name))
        return build
    return register


needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")


# special files: refused before they are opened ---------------------------------

@case("data-fifo", EXIT_BAD_INPUT, "is a FIFO", "not a regular file")
def _(f):
    fifo = f / "d.npz"
    os.mkfifo(fifo)
    feed_fifo_later(fifo)
    return [mlp_file(f), "--data", fifo]


@case("data-fifo-npy", EXIT_BAD_INPUT, "is a FIFO")
def _(f):
    fifo = f / "d.npy"
    os.mkfifo(fifo)
    feed_fifo_later(fifo)
    return [mlp_file(f), "--data", fifo]


@case("data-symlink-to-dev-zero", EXIT_BAD_INPUT, "character device", "not a regular file")
def _(f):
    os.symlink("/dev/zero", f / "d.npy")
    return [mlp_file(f), "--data", f / "d.npy"]


@case("data-symlink-to-dev-zero-npz", EXIT_BAD_INPUT, "character device")
def _(f):
    os.symlink("/dev/zero", f / "d.npz")
    return [mlp_file(f), "--data", f / "d.npz"]


@case("data-dev-null", EXIT_BAD_INPUT, "/dev/null", "character device")
def _(f):
    return [mlp_file(f), "--data", "/dev/null"]


@case("model-fifo", EXIT_BAD_INPUT, "not a regular file")
def _(f):
    fifo = f / "model.onnx"
    os.mkfifo(fifo)
    feed_fifo_later(fifo)
    return [fifo, "--data", mlp_data(f)]


@case("model-symlink-to-dev-zero", EXIT_BAD_INPUT, "not a regular file")
def _(f):
    os.symlink("/dev/zero", f / "model.onnx")
    return [f / "model.onnx", "--data", mlp_data(f)]


# crafted .npz: headers that promise more than the file holds ---------------------

@case("npz-absurd-shape-stored", EXIT_BAD_INPUT, "cannot read", "array 'x'", "(1000000000000, 6)", "truncated")
def _(f):
    return [mlp_file(f), "--data", zip_with(f / "d.npz", {"x.npy": npy_bytes((10**12, 6), data=bytes(240))})]


@case("npz-absurd-shape-compressed", EXIT_BAD_INPUT, "cannot read", "(1000000000000, 6)")
def _(f):
    return [mlp_file(f), "--data", zip_with(f / "d.npz", {"x.npy": npy_bytes((10**12, 6), data=bytes(240))},
                                            zipfile.ZIP_DEFLATED)]


@case("npz-absurd-item-shape", EXIT_BAD_INPUT, "cannot read", "(10, 1000000000000000)")
def _(f):
    return [mlp_file(f), "--data", zip_with(f / "d.npz", {"x.npy": npy_bytes((10, 10**15), data=bytes(240))})]


@case("npz-shape-overflowing-int64", EXIT_BAD_INPUT, "cannot read")
def _(f):
    return [mlp_file(f), "--data", zip_with(f / "d.npz", {"x.npy": npy_bytes((2**40, 2**40), data=bytes(64))})]


@case("npz-negative-dimension", EXIT_BAD_INPUT, "cannot read", "malformed .npy header")
def _(f):
    return [mlp_file(f), "--data", zip_with(f / "d.npz", {"x.npy": npy_bytes((-1, 6), data=bytes(240))})]


@case("npz-labels-absurd-shape", EXIT_BAD_INPUT, "cannot read", "array 'labels'")
def _(f):
    x = C.features(10)          # the data array is a real one; only the labels lie
    return [mlp_file(f), "--data", zip_with(f / "d.npz", {"x.npy": npy_bytes(x.shape, data=x.tobytes()),
                                                          "labels.npy": npy_bytes((10**13,), "<i8", data=bytes(80))},
                                            zipfile.ZIP_DEFLATED)]


@case("npz-claims-more-than-deflate-gives", EXIT_BAD_INPUT, "cannot read", "more than the format can give")
def _(f):
    path = zip_with(f / "d.npz", {"x.npy": npy_bytes((100_000, 6))}, zipfile.ZIP_DEFLATED)
    return [mlp_file(f), "--data", patch_zip(path, claimed_size=0xFFFF0000)]


@case("npz-stored-size-mismatch", EXIT_BAD_INPUT, "cannot read")
def _(f):
    path = zip_with(f / "d.npz", {"x.npy": npy_bytes((10, 6))})
    return [mlp_file(f), "--data", patch_zip(path, claimed_size=10**9)]


@case("npz-encrypted-member", EXIT_BAD_INPUT, "array 'x'", "encrypted")
def _(f):
    return [mlp_file(f), "--data", patch_zip(zip_with(f / "d.npz", {"x.npy": npy_bytes((10, 6))}), flag_bit=0)]


@case("npz-bzip2-member", EXIT_BAD_INPUT, "array 'x'", "zip method 12", "stored or deflated")
def _(f):
    return [mlp_file(f), "--data", zip_with(f / "d.npz", {"x.npy": npy_bytes((10, 6))}, zipfile.ZIP_BZIP2)]


@case("npz-lzma-member", EXIT_BAD_INPUT, "zip method 14")
def _(f):
    return [mlp_file(f), "--data", zip_with(f / "d.npz", {"x.npy": npy_bytes((10, 6))}, zipfile.ZIP_LZMA)]


@case("npz-unknown-compression-method", EXIT_BAD_INPUT, "zip method 99")
def _(f):
    path = zip_with(f / "d.npz", {"x.npy": npy_bytes((10, 6))})
    b = bytearray(path.read_bytes())
    for sig, at in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        i = b.find(sig)
        b[i + at:i + at + 2] = (99).to_bytes(2, "little")
    path.write_bytes(bytes(b))
    return [mlp_file(f), "--data", path]


@case("npz-member-is-garbage", EXIT_BAD_INPUT, "cannot read", "not a NumPy array", never=("pickle",))
def _(f):
    return [mlp_file(f), "--data", zip_with(f / "d.npz", {"x.npy": b"garbage, not an array" * 10})]


@case("npz-member-malformed-header", EXIT_BAD_INPUT, "cannot read", "malformed .npy header", never=("pickle",))
def _(f):
    raw = b"\x93NUMPY\x01\x00" + (16).to_bytes(2, "little") + b"{'descr': oops}\n"
    return [mlp_file(f), "--data", zip_with(f / "d.npz", {"x.npy": raw})]


@case("npz-member-truncated-data", EXIT_BAD_INPUT, "cannot read", "truncated")
def _(f):
    return [mlp_file(f), "--data", zip_with(f / "d.npz", {"x.npy": npy_bytes((10, 6))[:-100]},
                                            zipfile.ZIP_DEFLATED)]


# crafted or garbage .npy -----------------------------------------------------------

@case("npy-garbage", EXIT_BAD_INPUT, "cannot read", "not a NumPy array", never=("pickle",))
def _(f):
    return [mlp_file(f), "--data", C.write_bytes(f / "d.npy", np.random.default_rng(1).bytes(300))]


@case("npy-text-file", EXIT_BAD_INPUT, "not a NumPy array", never=("pickle",))
def _(f):
    return [mlp_file(f), "--data", C.write_bytes(f / "d.npy", b"1,2,3,4,5,6\n" * 10)]


@case("npy-absurd-shape", EXIT_BAD_INPUT, "cannot read", "(1000000000000, 6)")
def _(f):
    return [mlp_file(f), "--data", C.write_bytes(f / "d.npy", npy_bytes((10**12, 6), data=bytes(240)))]


@case("npy-malformed-header", EXIT_BAD_INPUT, "malformed .npy header", never=("pickle",))
def _(f):
    raw = b"\x93NUMPY\x01\x00" + (32).to_bytes(2, "little") + b"{'shape': (10, 6), 'x': 1}     \n"
    return [mlp_file(f), "--data", C.write_bytes(f / "d.npy", raw)]


@case("npy-header-only", EXIT_BAD_INPUT, "cannot read", "truncated")
def _(f):
    return [mlp_file(f), "--data", C.write_bytes(f / "d.npy", npy_bytes((10, 6), data=b""))]


# paths: error lines stay one line, escape sequences stay inert ---------------------

@case("path-with-newline", EXIT_BAD_INPUT, "data file not found", "bad\\nname.npz")
def _(f):
    return [mlp_file(f), "--data", f / "bad\nname.npz"]


@case("path-with-escape-sequence", EXIT_BAD_INPUT, "data file not found", "\\x1b[31mred.npz")
def _(f):
    return [mlp_file(f), "--data", f / "\x1b[31mred.npz"]


@case("model-path-with-newline-and-cr", EXIT_BAD_INPUT, "model file not found", "a\\nb\\rc.onnx")
def _(f):
    return [f / "a\nb\rc.onnx", "--data", mlp_data(f)]


@pytest.mark.parametrize("entry", CASES_IO)
def test_broken_file_fails_cleanly(entry: Case, tmp_path, monkeypatch):
    r, line = analyze_broken_case(entry, tmp_path, monkeypatch, lambda *args: invoke_within(60, *args))
    for word in entry.never_says:
        assert word not in line.lower(), line
    assert "\x1b" not in r.stderr and "\r" not in r.stderr


def test_corpus_covers_every_class():
    ids = {p.id for p in CASES_IO}
    for prefix in ("data-fifo", "data-symlink-to-dev-zero", "model-fifo", "npz-absurd", "npz-encrypted",
                   "npz-bzip2", "npz-claims", "npy-garbage", "path-with-newline"):
        assert any(i.startswith(prefix) for i in ids), prefix


def test_absurd_shapes_are_refused_without_allocating(tmp_path):
    """The header is checked against the file before anything is read: memory stays small."""
    import tracemalloc

    from snrcli.analysis.data import load_data
    from snrcli.errors import DataError
    from snrcli.model.graph import GraphInput

    path = zip_with(tmp_path / "d.npz", {"x.npy": npy_bytes((10**9, 6), data=bytes(240))}, zipfile.ZIP_DEFLATED)
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="cannot read"):
            load_data(path, [GraphInput("x", TensorProto.FLOAT, ["N", 6])])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 << 20, peak


# --------------------------------------------------------------------------- inspect and analyze agree

def _short_raw_data(m):
    t = m.graph.initializer[0]
    t.raw_data = t.raw_data[:-4]


def _undefined_type(m):
    m.graph.initializer[0].data_type = TensorProto.UNDEFINED


def _string_weight(m):
    m.graph.initializer[0].data_type = TensorProto.STRING


def _nan_weight(m):
    w = numpy_helper.to_array(m.graph.initializer[0]).copy()
    w.flat[3] = np.nan
    m.graph.initializer[0].CopyFrom(numpy_helper.from_array(w, "W1"))


def _no_initializers(m):
    del m.graph.initializer[:]


@pytest.mark.parametrize("breaks", [_short_raw_data, _undefined_type, _string_weight, _nan_weight, _no_initializers],
                         ids=lambda f: f.__name__.strip("_"))
def test_inspect_and_analyze_give_the_same_exit_code_and_error(tmp_path, breaks):
    m = C.mlp()
    breaks(m)
    model = C.save(tmp_path / "m.onnx", m)
    a = invoke("analyze", model, "--data", mlp_data(tmp_path))
    i = invoke("inspect", model)
    assert a.exit_code == EXIT_BAD_INPUT, describe(a)
    assert i.exit_code == a.exit_code, describe(i)
    err = lambda r: [l for l in r.stderr.splitlines() if l.startswith("error: ")]  # noqa: E731
    assert len(err(i)) == 1 and err(i) == err(a), (describe(a), describe(i))
    assert "Traceback" not in i.stderr


def test_inspect_warns_what_the_checker_finds_but_still_lists(tmp_path):
    m = C.mlp()
    t = m.graph.initializer[0]
    del t.dims[:]
    t.dims.extend([5, -6])           # onnxruntime refuses it when analyze loads it; inspect does not load it
    r = invoke("inspect", C.save(tmp_path / "m.onnx", m), "--json")
    assert r.exit_code == EXIT_OK, describe(r)
    assert "warning: onnx.checker" in r.stderr and "Negative dimension" in r.stderr
    assert [L["name"] for L in json.loads(r.stdout)["layers"]] == ["dense1", "dense2"]


# --------------------------------------------------------------------------- --out and --force

def _run(tmp_path, out, *extra, model=None, data=None):
    return invoke("analyze", model or mlp_file(tmp_path), "--data", data or mlp_data(tmp_path), "--out", out, *extra)


@pytest.mark.parametrize("where", ["model", "data", "both"])
def test_force_refuses_a_folder_holding_the_inputs_and_deletes_nothing(tmp_path, monkeypatch, where):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "work"
    out.mkdir()
    model = mlp_file(out if where in ("model", "both") else tmp_path)
    data = mlp_data(out if where in ("data", "both") else tmp_path)
    before = {p: p.read_bytes() for p in (model, data)}
    listing = C.listing(tmp_path)
    r = _run(tmp_path, out, "--force", model=model, data=data)
    assert r.exit_code == EXIT_USAGE, describe(r)
    line = r.stderr.strip()
    assert len(r.stderr.strip().splitlines()) == 1 and "holds the input" in line and "--force would delete it" in line
    assert {p: p.read_bytes() for p in before} == before and C.listing(tmp_path) == listing


def test_force_refuses_an_input_deeper_inside_the_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = mlp_file(tmp_path / "proj" / "models")
    r = _run(tmp_path, tmp_path / "proj", "--force", model=model)
    assert r.exit_code == EXIT_USAGE and "holds the input" in r.stderr, describe(r)
    assert model.exists()


@pytest.mark.parametrize("content", ["user-file", "subfolder", "symlink-named-report", "foreign-report-json",
                                     "csv-not-from-snr"])
def test_force_refuses_a_folder_with_files_snr_did_not_write(tmp_path, monkeypatch, content):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    assert _run(tmp_path, out).exit_code == 0
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    if content == "user-file":
        (out / "notes.txt").write_text("mine")
    elif content == "subfolder":
        (out / "plots").mkdir()
    elif content == "symlink-named-report":
        (out / "report.json").unlink()
        os.symlink(precious, out / "report.json")
    elif content == "foreign-report-json":
        (out / "report.json").write_text('{"mine": true}')
    else:
        (out / "layers.csv").write_text("my,own,table\n")
    listing = C.listing(tmp_path)
    r = _run(tmp_path, out, "--force")
    assert r.exit_code == EXIT_USAGE, describe(r)
    assert "files that snr did not write" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert C.listing(tmp_path) == listing and precious.read_text() == "keep me"


def test_force_over_an_empty_folder_and_over_an_earlier_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    assert _run(tmp_path, out, "--force").exit_code == 0
    assert _run(tmp_path, out, "--force").exit_code == 0
    assert sorted(os.listdir(out)) == ["layers.csv", "report.json", "units.csv"]
    assert sorted(os.listdir(tmp_path)) == ["data.npz", "model.onnx", "out"]


def test_force_onto_a_symlinked_out_replaces_its_target_and_leaves_no_stray_entries(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    real = tmp_path / "runs" / "a"
    assert _run(tmp_path, real).exit_code == 0
    (tmp_path / "latest").symlink_to(real)
    first = (real / "report.json").read_text()
    r = _run(tmp_path, tmp_path / "latest", "--force", data=mlp_data(tmp_path, n=12))
    assert r.exit_code == 0, describe(r)
    assert (tmp_path / "latest").is_symlink() and os.path.realpath(tmp_path / "latest") == str(real)
    assert (real / "report.json").read_text() != first
    assert sorted(os.listdir(tmp_path)) == ["data.npz", "latest", "model.onnx", "runs"]
    assert os.listdir(tmp_path / "runs") == ["a"]
    assert json.loads((tmp_path / "latest" / "report.json").read_text())["data"]["samples"] == 12


def test_out_that_is_a_broken_symlink_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for extra in ((), ("--force",)):
        r = _run(tmp_path, tmp_path / "dangling", *extra)
        assert r.exit_code == EXIT_USAGE, describe(r)
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("umask,folder,files", [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600), (0o002, 0o775, 0o664)])
def test_run_folder_follows_the_umask(tmp_path, monkeypatch, umask, folder, files):
    monkeypatch.chdir(tmp_path)
    old = os.umask(umask)
    try:
        assert _run(tmp_path, tmp_path / "out").exit_code == 0
        assert _run(tmp_path, tmp_path / "out", "--force").exit_code == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "out").st_mode) == folder
    for name in ("report.json", "layers.csv", "units.csv"):
        assert stat.S_IMODE(os.stat(tmp_path / "out" / name).st_mode) == files


def test_interrupted_replace_puts_the_earlier_run_back(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    assert _run(tmp_path, out).exit_code == 0
    first = (out / "report.json").read_text()
    real_rename = os.rename
    calls = []

    def rename(a, b):
        calls.append((a, b))
        if len(calls) == 2:           # the earlier run is aside, the new one not yet in place
            raise KeyboardInterrupt
        return real_rename(a, b)

    monkeypatch.setattr(os, "rename", rename)
    r = _run(tmp_path, out, "--force")
    monkeypatch.setattr(os, "rename", real_rename)
    assert r.exit_code == EXIT_INTERRUPTED, describe(r)
    assert len(calls) == 3 and calls[2][1] == calls[0][0]      # the third rename puts it back
    assert (out / "report.json").read_text() == first
    assert sorted(os.listdir(tmp_path)) == ["data.npz", "model.onnx", "out"]


def _report():
    from snrcli.analysis.api import analyze
    folder = Path(os.getcwd())
    return analyze(mlp_file(folder), mlp_data(folder))


@pytest.mark.parametrize("trial", range(10))
def test_concurrent_writers_without_force_exactly_one_wins(tmp_path, monkeypatch, trial):
    """Threads racing to write the same --out: one succeeds, the others get the 'exists' error, and the
    folder holds the winner's report whole."""
    from snrcli.errors import UsageError
    from snrcli.reports.report import write_run_folder

    monkeypatch.chdir(tmp_path)
    writers = 6
    reports = []
    for k in range(writers):
        rep = _report()
        rep.meta = {**rep.meta, "writer": k}
        reports.append(rep)
    out = tmp_path / "out"
    barrier = threading.Barrier(writers)
    results: list = [None] * writers

    def write(k):
        barrier.wait()
        try:
            write_run_folder(reports[k], out)
            results[k] = "ok"
        except UsageError as e:
            results[k] = str(e)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    winners = [k for k, r in enumerate(results) if r == "ok"]
    assert len(winners) == 1, results
    assert all("exists" in r for r in results if r != "ok"), results
    assert json.loads((out / "report.json").read_text())["meta"]["writer"] == winners[0]
    assert sorted(os.listdir(tmp_path)) == ["data.npz", "model.onnx", "out"]


def _snr(*args, **kw) -> subprocess.Popen:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.Popen([sys.executable, "-m", "snrcli", *map(str, args)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def test_concurrent_processes_without_force_exactly_one_wins(tmp_path):
    """(One trial: ten more, with threads, above.)"""
    model, data = mlp_file(tmp_path), mlp_data(tmp_path, n=200)
    out = tmp_path / "out"
    procs = [_snr("analyze", model, "--data", data, "--out", out, "-q", cwd=tmp_path) for _ in range(3)]
    results = [(p.wait(timeout=120), p.communicate(timeout=10)[1]) for p in procs]
    codes = sorted(code for code, _ in results)
    # the later ones are refused before they start, or by the final rename
    assert codes == [0, EXIT_USAGE, EXIT_USAGE], results
    assert all("exists" in err for code, err in results if code), results
    assert sorted(os.listdir(out)) == ["layers.csv", "report.json", "units.csv"]
    assert sorted(os.listdir(tmp_path)) == ["data.npz", "model.onnx", "out"]


# --------------------------------------------------------------------------- reading arrays

@pytest.mark.parametrize("how", ["stored", "compressed"])
def test_fortran_ordered_npz_gives_the_c_order_figures_and_is_read_once(tmp_path, monkeypatch, how):
    save = np.savez if how == "stored" else np.savez_compressed
    x = C.features(300, 6, seed=4)
    labels = np.arange(300) % 3
    save(tmp_path / "c.npz", x=x, labels=labels)
    save(tmp_path / "f.npz", x=np.asfortranarray(x), labels=labels)
    reads = []
    real = np.lib.format.read_array

    def counting(*a, **k):
        reads.append(1)
        return real(*a, **k)

    monkeypatch.setattr(np.lib.format, "read_array", counting)
    model = mlp_file(tmp_path)
    c = report_of(invoke("analyze", model, "--data", tmp_path / "c.npz", "--json", "--batch-size", "7"))
    reads.clear()
    r = invoke("analyze", model, "--data", tmp_path / "f.npz", "--json", "--batch-size", "7")
    f = report_of(r)
    assert len(reads) <= 1, len(reads)          # was once per batch (43 batches): quadratic in the items
    assert f["layers"] == c["layers"] and f["network"] == c["network"] and f["accuracy"] == c["accuracy"]
    noted = "Fortran (column) order" in r.stderr
    assert noted == (how == "compressed"), r.stderr


def test_labels_are_read_in_chunks(tmp_path, monkeypatch):
    """One-hot labels in a compressed .npz: memory stays near one chunk, not the whole array."""
    import tracemalloc

    import snrcli.analysis.data as data
    import snrcli.analysis.labels as labels
    from snrcli.model.graph import GraphInput

    n, classes = 20_000, 100
    onehot = np.zeros((n, classes), np.float64)            # 16 MB
    onehot[np.arange(n), np.arange(n) % classes] = 1
    np.savez_compressed(tmp_path / "d.npz", x=C.features(n), labels=onehot)
    monkeypatch.setattr(labels, "LABEL_CHUNK_BYTES", 1 << 20)
    tracemalloc.start()
    try:
        ds = data.load_data(tmp_path / "d.npz", [GraphInput("x", TensorProto.FLOAT, ["N", 6])])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(ds.labels, np.arange(n) % classes) and ds.label_format == "one-hot"
    assert peak < 5 << 20, peak          # was 16 MB and more: the whole array decompressed


def test_labels_with_limit_read_only_the_rows_needed(tmp_path):
    from snrcli.analysis.data import load_data
    from snrcli.model.graph import GraphInput

    np.savez_compressed(tmp_path / "d.npz", x=C.features(50), labels=np.arange(50) % 4)
    ds = load_data(tmp_path / "d.npz", [GraphInput("x", TensorProto.FLOAT, ["N", 6])], limit=9)
    assert ds.labels.tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 0]


# --------------------------------------------------------------------------- threads

def test_threads_are_capped_with_a_warning(tmp_path, monkeypatch):
    import snrcli.stats.threads as threads

    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    seen = []
    real = threads.StatThreads.__init__

    def spy(self, n):
        seen.append(n)
        real(self, n)

    monkeypatch.setattr(threads.StatThreads, "__init__", spy)
    r = invoke("analyze", mlp_file(tmp_path), "--data", mlp_data(tmp_path), "--threads", "2000", "--json")
    d = report_of(r)
    msg = "--threads 2000 is more than 2 per available core (2 cores): using 4"
    assert f"warning: {msg}" in r.stderr and msg in d["warnings"]
    assert seen == [4]
    r = invoke("analyze", mlp_file(tmp_path), "--data", mlp_data(tmp_path), "--threads", "4", "--json")
    assert "--threads" not in r.stderr and not report_of(r)["warnings"]


# --------------------------------------------------------------------------- one line per message

def test_one_line_escapes_control_characters():
    from snrcli.cli.base import one_line

    assert one_line("a\nb\rc\td") == "a\\nb\\rc\\td"
    assert one_line("\x1b[31mred\x07\x9b") == "\\x1b[31mred\\x07\\x9b"
    assert one_line("bad \udc8d byte") == "bad \\udc8d byte"
    assert one_line("plain ünïcode") == "plain ünïcode"


def test_warnings_stay_one_line_when_a_name_holds_a_newline(tmp_path):
    x = (C.features(10) * 10).astype(np.int64)                  # the conversion warning names the array key
    r = invoke("analyze", mlp_file(tmp_path), "--data", C.npz(tmp_path / "d.npz", **{"x\nnext": x}), "--json")
    assert r.exit_code == 0, describe(r)
    lines = r.stderr.strip().splitlines()
    assert lines and all(l.startswith("warning: ") for l in lines), r.stderr
    assert any("x\\nnext" in l for l in lines)


# --------------------------------------------------------------------------- signals and pipes (real processes)

posix_only = pytest.mark.skipif(sys.platform != "linux", reason="signals and /proc as on Linux")


def _maps(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return ""


def _wait_until(p: subprocess.Popen, ready: Callable[[], bool], timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not ready():
        assert p.poll() is None, f"snr ended first: {p.returncode} {p.communicate()[1]}"
        assert time.monotonic() < end, "timed out waiting for snr"
        time.sleep(0.002)


def _children(pid: int) -> list[int]:
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    kids.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return kids


def _alive(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                out.append(pid)
        except OSError:
            pass
    return out


@pytest.fixture(scope="module")
def long_run(tmp_path_factory):
    """The sample MLP and 100,000 digits items, in batches of 4: several seconds of analysis."""
    folder = tmp_path_factory.mktemp("long")
    x = np.load(REPO / "sample_models/digits_test.npz")["input"]
    np.save(folder / "x.npy", np.resize(x, (100_000,) + x.shape[1:]))
    return REPO / "sample_models/digits_mlp.onnx", folder / "x.npy", "--batch-size", "4"


# when each signal arrives: imports (numpy, then onnx's extension, whose start-up an exception used to
# crash), the model loading into onnxruntime, the run
STAGES = {"numpy-import": "_multiarray_umath", "onnx-import": "onnx_cpp2py_export",
          "onnxruntime-load": "onnxruntime_pybind11_state"}


SIGINT, SIGTERM = (signal.SIGINT, EXIT_INTERRUPTED, "interrupted"), (signal.SIGTERM, EXIT_TERMINATED, "terminated")


@posix_only
@pytest.mark.parametrize("stage,how",
                         [pytest.param(stage, SIGINT, id=f"SIGINT-{stage}") for stage in [*STAGES, "running"]]
                         + [pytest.param(stage, SIGTERM, id=f"SIGTERM-{stage}") for stage in ("onnx-import",
                                                                                              "running")])
def test_signal_at_any_stage_is_one_line_and_its_exit_code(tmp_path, long_run, stage, how):
    sig, code, word = how
    model, data, *batch = long_run
    out = tmp_path / "out"
    p = _snr("analyze", model, "--data", data, *batch, "--out", out, cwd=tmp_path)
    try:
        if stage == "running":
            _wait_until(p, lambda: "onnxruntime_pybind11_state" in _maps(p.pid))
            time.sleep(0.5)
        else:
            _wait_until(p, lambda: STAGES[stage] in _maps(p.pid))
        p.send_signal(sig)
        _, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == code, err
    assert err.strip().splitlines() == [f"{word}: stopped before finishing; nothing was written"], err
    assert os.listdir(tmp_path) == []


@posix_only
@pytest.mark.parametrize("when", ["workers-starting", "workers-running"])
def test_ctrl_c_to_the_process_group_with_jobs(tmp_path, long_run, when):
    """A terminal's Ctrl-C reaches the workers too: no traceback from them, none left, exit 130."""
    model, data, *batch = long_run
    p = _snr("analyze", model, "--data", data, *batch, "--jobs", "2", "--out", tmp_path / "out", cwd=tmp_path,
             start_new_session=True)
    try:
        _wait_until(p, lambda: len(_children(p.pid)) >= (2 if when == "workers-starting" else 3))
        if when == "workers-running":
            _wait_until(p, lambda: all("onnxruntime_pybind11_state" in _maps(k) for k in _children(p.pid)[-2:]))
        kids = _children(p.pid)
        os.killpg(p.pid, signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == EXIT_INTERRUPTED, err
    assert err.strip().splitlines() == ["interrupted: stopped before finishing; nothing was written"], err
    time.sleep(0.5)
    assert _alive(kids) == [] and os.listdir(tmp_path) == []


@posix_only
def test_sigterm_to_the_parent_stops_the_workers_and_frees_the_pipes(tmp_path, long_run):
    model, data, *batch = long_run
    p = _snr("analyze", model, "--data", data, *batch, "--jobs", "2", "--out", tmp_path / "out", cwd=tmp_path)
    try:
        _wait_until(p, lambda: len(_children(p.pid)) >= 3)
        time.sleep(0.5)
        kids = _children(p.pid)
        p.send_signal(signal.SIGTERM)
        t = time.monotonic()
        _, err = p.communicate(timeout=30)      # returns once no process holds the pipes
        took = time.monotonic() - t
    finally:
        p.kill()
    assert p.returncode == EXIT_TERMINATED, err
    assert err.strip().splitlines() == ["terminated: stopped before finishing; nothing was written"], err
    assert took < 10, took
    time.sleep(0.5)
    assert _alive(kids) == [] and os.listdir(tmp_path) == []


@posix_only
def test_killed_parent_takes_its_workers_with_it(tmp_path, long_run):
    model, data, *batch = long_run
    p = _snr("analyze", model, "--data", data, *batch, "--jobs", "2", cwd=tmp_path)
    try:
        _wait_until(p, lambda: len(_children(p.pid)) >= 3)
        kids = _children(p.pid)
        p.kill()
        p.communicate(timeout=30)               # the workers hold none of the caller's pipes
    finally:
        p.kill()
    end = time.monotonic() + 10
    while _alive(kids) and time.monotonic() < end:
        time.sleep(0.05)
    assert _alive(kids) == []


@posix_only
@pytest.mark.parametrize("args", [["analyze", "{model}", "--data", "{data}"],
                                  ["analyze", "{model}", "--data", "{data}", "--json"],
                                  ["--help"]], ids=["table", "json", "help"])
def test_closed_stdout_exits_141_without_a_word(tmp_path, args):
    model, data = REPO / "sample_models/digits_mlp.onnx", REPO / "sample_models/digits_test.npz"
    argv = [a.format(model=model, data=data) for a in args]
    r, w = os.pipe()
    os.close(r)                                  # like `snr ... | head` once head has gone
    try:
        p = subprocess.run([sys.executable, "-m", "snrcli", *argv], stdout=w, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "NO_COLOR": "1"}, timeout=120, cwd=tmp_path)
    finally:
        os.close(w)
    assert p.returncode == EXIT_BROKEN_PIPE, p.stderr
    assert p.stderr == "", p.stderr
