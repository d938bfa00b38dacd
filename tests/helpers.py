"""A small ONNX model builder for the tests, and an independent numpy reading of the spec.

Models are built with ``onnx.helper``: dense ``Gemm``/``MatMul`` stacks, conv
stacks, or any list of nodes. ``write`` saves a model and its ``.npz`` data into
a folder (``tmp_path``). ``ref_dense`` computes spec sections 2-4 and 6 for one
dense layer straight from the equations, to compare with the pipeline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FLOAT = TensorProto.FLOAT
OPSET = 17


# --------------------------------------------------------------------------- generic graph building

def vi(name: str, shape: Sequence | None, elem: int = FLOAT) -> onnx.ValueInfoProto:
    """A tensor value info; ``shape`` entries may be ints, strings (symbolic) or None (unknown)."""
    return helper.make_tensor_value_info(name, elem, None if shape is None else list(shape))


def init(name: str, array, dtype=np.float32) -> onnx.TensorProto:
    arr = np.asarray(array)
    if dtype is not None and arr.dtype.kind == "f":
        arr = arr.astype(dtype)
    return numpy_helper.from_array(arr, name)


def node(op: str, inputs: Sequence[str], outputs: Sequence[str], name: str | None = None,
         domain: str | None = None, **attrs) -> onnx.NodeProto:
    return helper.make_node(op, list(inputs), list(outputs), name=name, domain=domain, **attrs)


def make_model(nodes: Iterable[onnx.NodeProto], inputs: Sequence[onnx.ValueInfoProto],
               outputs: Sequence[onnx.ValueInfoProto], initializers: Iterable[onnx.TensorProto] = (),
               *, opset: int = OPSET, ir_version: int = 8, extra_opsets: dict[str, int] | None = None,
               check: bool = True) -> onnx.ModelProto:
    graph = helper.make_graph(list(nodes), "g", list(inputs), list(outputs), list(initializers))
    imports = [helper.make_opsetid("", opset)]
    for dom, ver in (extra_opsets or {}).items():
        imports.append(helper.make_opsetid(dom, ver))
    m = helper.make_model(graph, opset_imports=imports, producer_name="snrcli-tests")
    m.ir_version = ir_version
    if check:
        onnx.checker.check_model(m)
    return m


def write(folder: Path, model: onnx.ModelProto, data: dict[str, np.ndarray] | None = None,
          name: str = "m") -> tuple[str, str]:
    """Save ``folder/name.onnx`` and ``folder/name.npz``; returns both paths as strings."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    mp = folder / f"{name}.onnx"
    onnx.save_model(model, str(mp))
    dp = folder / f"{name}.npz"
    if data is not None:
        np.savez(dp, **data)
    return str(mp), str(dp)


def save_npz(path: Path, **arrays) -> str:
    np.savez(path, **arrays)
    return str(path)


# --------------------------------------------------------------------------- dense stacks

def mlp(weights: Sequence[np.ndarray], biases: Sequence[np.ndarray | None] | None = None, *,
        op: str = "Gemm", act: str | None = "Relu", head: str | None = None, batch="N",
        in_name: str = "x", out_name: str = "y", names: Sequence[str] | None = None,
        opset: int = OPSET, fixed_batch: int | None = None) -> onnx.ModelProto:
    """Dense stack. ``weights[l]`` is (units, inputs) (the spec's w_ij); ``act`` between layers only.

    ``op="Gemm"``: Gemm(transB=1) with the bias as C; ``op="MatMul"``: MatMul(x, W.T) then Add(bias).
    ``head``: None (logits out), "Softmax", "LogSoftmax", "Sigmoid", "Tanh".
    """
    nodes, inits = [], []
    t = in_name
    n_layers = len(weights)
    names = list(names) if names else [f"fc{k + 1}" for k in range(n_layers)]
    for k, w in enumerate(weights):
        w = np.asarray(w, dtype=np.float32)
        b = None if biases is None else biases[k]
        b = np.zeros(w.shape[0], np.float32) if b is None else np.asarray(b, np.float32)
        out = f"z{k + 1}"
        if op == "Gemm":
            inits += [init(f"W{k + 1}", w), init(f"B{k + 1}", b)]
            nodes.append(node("Gemm", [t, f"W{k + 1}", f"B{k + 1}"], [out], name=names[k], transB=1))
        else:
            inits += [init(f"W{k + 1}", w.T.copy()), init(f"B{k + 1}", b)]
            nodes.append(node("MatMul", [t, f"W{k + 1}"], [f"mm{k + 1}"], name=names[k]))
            nodes.append(node("Add", [f"mm{k + 1}", f"B{k + 1}"], [out], name=f"add{k + 1}"))
        t = out
        if k < n_layers - 1 and act:
            nodes.append(node(act, [t], [f"h{k + 1}"], name=f"act{k + 1}"))
            t = f"h{k + 1}"
    if head:
        attrs = {"axis": -1} if head in ("Softmax", "LogSoftmax") else {}
        nodes.append(node(head, [t], [out_name], name="head", **attrs))
    else:
        nodes.append(node("Identity", [t], [out_name], name="out"))
    b0 = fixed_batch if fixed_batch is not None else batch
    n_in = np.asarray(weights[0]).shape[1]
    n_out = np.asarray(weights[-1]).shape[0]
    return make_model(nodes, [vi(in_name, [b0, n_in])], [vi(out_name, [b0, n_out])], inits, opset=opset)


def cnn(convs: Sequence[dict], in_shape: Sequence[int], *, dense: Sequence[np.ndarray] = (),
        act: str = "Relu", batch="N", head: str | None = None) -> onnx.ModelProto:
    """Conv stack. Each conv dict: W (M, C/group, k...), optional B, and Conv attributes
    (strides, pads, dilations, auto_pad, group). Then Flatten and Gemm(transB=1) layers ``dense``."""
    nodes, inits = [], []
    t = "x"
    for k, c in enumerate(convs):
        c = dict(c)
        w = np.asarray(c.pop("W"), np.float32)
        b = c.pop("B", None)
        ins = [t, f"CW{k + 1}"]
        inits.append(init(f"CW{k + 1}", w))
        if b is not None:
            inits.append(init(f"CB{k + 1}", np.asarray(b, np.float32)))
            ins.append(f"CB{k + 1}")
        nodes.append(node("Conv", ins, [f"c{k + 1}"], name=f"conv{k + 1}", **c))
        t = f"c{k + 1}"
        if act and (k < len(convs) - 1 or dense):
            nodes.append(node(act, [t], [f"ca{k + 1}"], name=f"cact{k + 1}"))
            t = f"ca{k + 1}"
    if dense:
        nodes.append(node("Flatten", [t], ["flat"], name="flatten", axis=1))
        t = "flat"
        for k, w in enumerate(dense):
            w = np.asarray(w, np.float32)
            inits += [init(f"DW{k + 1}", w), init(f"DB{k + 1}", np.zeros(w.shape[0], np.float32))]
            nodes.append(node("Gemm", [t, f"DW{k + 1}", f"DB{k + 1}"], [f"d{k + 1}"], name=f"fc{k + 1}", transB=1))
            t = f"d{k + 1}"
            if k < len(dense) - 1 and act:
                nodes.append(node(act, [t], [f"da{k + 1}"], name=f"dact{k + 1}"))
                t = f"da{k + 1}"
    if head:
        nodes.append(node(head, [t], ["y"], name="head", axis=-1))
    else:
        nodes.append(node("Identity", [t], ["y"], name="out"))
    return make_model(nodes, [vi("x", [batch, *in_shape])], [vi("y", None)], inits, check=False)


# --------------------------------------------------------------------------- forward pass and reference figures

def relu(v):
    return np.maximum(v, 0)


def ref_kept(m: np.ndarray, a: np.ndarray, min_level: float = 0.01, min_activity: float = 0.01) -> np.ndarray:
    return (a >= min_activity) & (a > 0) & (m > min_level * m.max())


def ref_dense(x: np.ndarray, w: np.ndarray, *, r: np.ndarray | None = None, min_level: float = 0.01,
              min_activity: float = 0.01, centre: bool = False) -> dict:
    """Spec sections 2-6 for one dense layer, written from the equations with explicit loops.

    ``x`` (samples, P) float64, ``w`` (units, P). Returns per-unit S, G (NaN when undefined),
    the means and the kept mask. ``r`` per-unit activity (default 1).
    """
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    if centre:
        w = w - w.mean(axis=0, keepdims=True)
    n, p = x.shape
    units = w.shape[0]
    y = x @ w.T
    m = np.abs(x).max(axis=0)
    a = (x != 0).mean(axis=0)
    kept = ref_kept(m, a, min_level, min_activity)
    S = np.full(units, np.nan)
    G = np.full(units, np.nan)
    for i in range(units):
        c, wt = [], []
        for j in range(p):
            if not kept[j]:
                continue
            cov = np.mean((x[:, j] - x[:, j].mean()) * (y[:, i] - y[:, i].mean()))
            c.append(cov / (m[j] * a[j]))
            wt.append(w[i, j] * m[j])
        c, wt = np.array(c), np.array(wt)
        if len(c) == 0 or np.linalg.norm(wt) == 0 or np.abs(c).max() == 0:
            continue
        dot = float(wt @ c)
        S[i] = dot / (np.linalg.norm(wt) * np.linalg.norm(c))
        G[i] = dot / (np.linalg.norm(wt) * np.abs(c).max())
    r = np.ones(units) if r is None else np.asarray(r, np.float64)
    ok = np.isfinite(S)
    out = {"S": S, "G": G, "kept": kept, "m": m, "a": a, "r": r,
           "S_mean_unweighted": float(S[ok].mean()) if ok.any() else None,
           "G_mean_unweighted": float(G[ok].mean()) if ok.any() else None}
    tot = r[ok].sum()
    out["S_mean"] = float((r[ok] * S[ok]).sum() / tot) if ok.any() and tot > 0 else None
    out["G_mean"] = float((r[ok] * G[ok]).sum() / tot) if ok.any() and tot > 0 else None
    return out


def forward_mlp(x: np.ndarray, weights: Sequence[np.ndarray], biases=None) -> list[np.ndarray]:
    """float32 forward of an ``mlp(..., act='Relu')``: the input of every layer, then the logits."""
    acts = [np.asarray(x, np.float32)]
    t = acts[0]
    for k, w in enumerate(weights):
        b = 0 if biases is None or biases[k] is None else np.asarray(biases[k], np.float32)
        z = t @ np.asarray(w, np.float32).T + b
        if k < len(weights) - 1:
            t = relu(z)
            acts.append(t)
        else:
            acts.append(z)
    return acts


def conv_reference_patches(x: np.ndarray, kernel, strides, dilations, pads_begin, out_shape) -> np.ndarray:
    """Receptive fields with explicit loops: rows (b, o1, o2, ...), columns (c, k1, k2, ...); padding reads 0."""
    import itertools

    b, c = x.shape[:2]
    spatial = x.shape[2:]
    rows = []
    for bi in range(b):
        for o in itertools.product(*[range(s) for s in out_shape]):
            row = []
            for ci in range(c):
                for k in itertools.product(*[range(kk) for kk in kernel]):
                    pos = [o[d] * strides[d] + k[d] * dilations[d] - pads_begin[d] for d in range(len(kernel))]
                    inside = all(0 <= pos[d] < spatial[d] for d in range(len(kernel)))
                    row.append(x[(bi, ci, *pos)] if inside else 0.0)
            rows.append(row)
    return np.array(rows, dtype=x.dtype).reshape(b * int(np.prod(out_shape)), c * int(np.prod(kernel)))


def patches(x: np.ndarray, geom) -> np.ndarray:
    """The patch matrix of a conv (``ConvGeometry``): rows (b, o...), columns (c, k...), padding 0."""
    from snrcli.model.convgeom import output_shape, resolve_pads

    pads = resolve_pads(geom, x.shape[2:])
    return conv_reference_patches(x, geom.kernel, geom.strides, geom.dilations, [p[0] for p in pads],
                                  output_shape(geom, x.shape[2:]))


def layer(report, index: int) -> dict:
    """The report dict of layer ``index`` (1-based)."""
    d = report.to_dict() if hasattr(report, "to_dict") else report
    (found,) = [L for L in d["layers"] if L["index"] == index]
    return found


def close(a, b, rtol=1e-6, atol=1e-9) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return bool(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True))


def ref_unit_figures(cols: np.ndarray, y: np.ndarray, w: np.ndarray, m: np.ndarray, a: np.ndarray,
                     kept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 9, 10, 13 with loops: ``cols`` (samples, P) the unit's inputs, ``y`` (samples, units) the weighted
    sums, ``w`` (units, P), and per-input ``m``, ``a``, ``kept`` (P,). NaN for undefined units."""
    units = w.shape[0]
    S, G = np.full(units, np.nan), np.full(units, np.nan)
    cols, y = np.asarray(cols, np.float64), np.asarray(y, np.float64)
    xc = cols - cols.mean(axis=0)
    yc = y - y.mean(axis=0)
    for i in range(units):
        idx = np.flatnonzero(kept)
        if len(idx) == 0:
            continue
        c = np.array([np.mean(xc[:, j] * yc[:, i]) / (m[j] * a[j]) for j in idx])
        wt = np.array([w[i, j] * m[j] for j in idx])
        if np.linalg.norm(wt) == 0 or np.abs(c).max() == 0:
            continue
        S[i] = wt @ c / (np.linalg.norm(wt) * np.linalg.norm(c))
        G[i] = wt @ c / (np.linalg.norm(wt) * np.abs(c).max())
    return S, G


def ref_conv(x: np.ndarray, w: np.ndarray, *, strides, dilations, pads_begin, out_shape, group: int = 1,
             min_level: float = 0.01, min_activity: float = 0.01, centre: bool = False):
    """Spec sections 1-4 for a conv layer, from nested-loop patches; m_j, a_j per input channel measured on
    ``x`` (padding not counted) and shared by the channel's patch elements. Returns (S, G, kept channels)."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    M, cg = w.shape[:2]
    kernel = w.shape[2:]
    ksize = int(np.prod(kernel))
    C = x.shape[1]
    axes = (0,) + tuple(range(2, x.ndim))
    m = np.abs(x).max(axis=axes)
    a = (x != 0).mean(axis=axes)
    kept_ch = ref_kept(m, a, min_level, min_activity)
    P = conv_reference_patches(x, kernel, strides, dilations, pads_begin, out_shape)
    S, G = np.full(M, np.nan), np.full(M, np.nan)
    mg = M // group
    for k in range(group):
        chans = range(k * cg, (k + 1) * cg)
        cols = P[:, k * cg * ksize:(k + 1) * cg * ksize]
        wk = w[k * mg:(k + 1) * mg].reshape(mg, -1)
        if centre:
            wk = wk - wk.mean(axis=0, keepdims=True)
        y = cols @ wk.T
        rep = lambda v: np.repeat(np.asarray([v[c] for c in chans]), ksize)  # noqa: E731
        s, g = ref_unit_figures(cols, y, wk, rep(m), rep(a), rep(kept_ch))
        S[k * mg:(k + 1) * mg], G[k * mg:(k + 1) * mg] = s, g
    return S, G, kept_ch


def conv_ref_pads(kernel, strides, dilations, pads, auto_pad, spatial):
    """ONNX Conv padding written out per case: ([begin per axis], [end per axis])."""
    nd = len(spatial)
    if auto_pad == "VALID":
        return [0] * nd, [0] * nd
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for size, k, s, d in zip(spatial, kernel, strides, dilations):
            out = -(-size // s)
            total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
            if auto_pad == "SAME_UPPER":      # the odd extra pixel goes at the end
                begin.append(total // 2)
                end.append(total - total // 2)
            else:                             # SAME_LOWER: at the beginning
                end.append(total // 2)
                begin.append(total - total // 2)
        return begin, end
    pads = list(pads) if pads else [0] * (2 * nd)
    return pads[:nd], pads[nd:]


def conv_ref_out(kernel, strides, dilations, pads, auto_pad, spatial):
    b, e = conv_ref_pads(kernel, strides, dilations, pads, auto_pad, spatial)
    return tuple((size + b[i] + e[i] - (kernel[i] - 1) * dilations[i] - 1) // strides[i] + 1
                 for i, size in enumerate(spatial))
