"""Slopes of activation sites (paper appendix B.3): s = g'(z) by forward-mode differentiation. Pure numpy.

A site's steps (``model.sites.Step``) are evaluated on the data's ``z`` values (in float64, or float32
where that is as good: see ``squared_slopes``; s^2 is always summed in float64), each
tensor as a pair (value, tangent) with tangent dx/dz (appendix B.3's ``g_j'(z_j)``: noise ``n`` added to
``z`` reaches ``x`` as ``g'(z) n``). One function per op, from a table. Unary functions return
(value, derivative); binary ones (value, d/da, d/db), the derivative of a constant operand not
computed (None). At kinks the slope is that of the side where the op is off or constant.
"""

from __future__ import annotations

import math

import numpy as np

REUSED = ("Erf",)          # ops whose values are read from onnxruntime's outputs when exposed (``known``)
CHUNK = 1 << 15            # values per evaluation block: a block's temporaries stay in cache
PARALLEL_MIN = 1 << 18     # values of z from which runs of blocks are shared out between threads
SQRT2 = math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def _special():
    """scipy.special, imported when a site needs it (a ReLU-only run never loads scipy)."""
    from scipy import special

    return special


def _sigmoid(v):
    return _special().expit(v)


def _softplus(v):
    return np.logaddexp(0.0, v)


# ---------------------------------------------------------------------------------------- unary ops

def d_relu(v, a):
    return np.maximum(v, 0.0), (v > 0).astype(np.float64)                 # Relu'(0) = 0


def d_leaky_relu(v, a):
    on = v > 0
    return np.where(on, v, a["alpha"] * v), np.where(on, 1.0, a["alpha"])   # LeakyRelu'(0) = alpha


def d_prelu(v, a):
    on = v > 0
    slope = a["slope"]
    return np.where(on, v, slope * v), np.where(on, 1.0, slope)              # PRelu'(0) = slope


def d_elu(v, a):
    on = v > 0
    e = np.exp(np.minimum(v, 0.0))
    return np.where(on, v, a["alpha"] * (e - 1.0)), np.where(on, 1.0, a["alpha"] * e)   # Elu'(0) = alpha


def d_selu(v, a):
    on = v > 0
    e = np.exp(np.minimum(v, 0.0))
    g, al = a["gamma"], a["alpha"]
    return g * np.where(on, v, al * (e - 1.0)), np.where(on, g, g * al * e)   # Selu'(0) = gamma alpha


def d_celu(v, a):
    on = v > 0
    e = np.exp(np.minimum(v, 0.0) / a["alpha"])
    return np.where(on, v, a["alpha"] * (e - 1.0)), np.where(on, 1.0, e)


def d_sigmoid(v, a):
    s = _sigmoid(v)
    return s, s * (1.0 - s)


def d_hard_sigmoid(v, a):
    h = a["alpha"] * v + a["beta"]
    inside = (h > 0) & (h < 1)                                                # 0 at both kinks
    return np.clip(h, 0.0, 1.0), np.where(inside, a["alpha"], 0.0)


def d_hard_swish(v, a):
    h = v / 6.0 + 0.5
    slope = np.where(h <= 0, 0.0, np.where(h >= 1, 1.0, v / 3.0 + 0.5))     # HardSwish'(-3) = 0, '(3) = 1
    return v * np.clip(h, 0.0, 1.0), slope


def d_tanh(v, a):
    t = np.tanh(v)
    return t, 1.0 - t * t


def d_softplus(v, a):
    return _softplus(v), _sigmoid(v)


def d_softsign(v, a):
    d = 1.0 + np.abs(v)
    return v / d, 1.0 / (d * d)


def d_gelu(v, a):
    if a["approximate"] == "tanh":
        u = SQRT_2_OVER_PI * (v + 0.044715 * v ** 3)
        t = np.tanh(u)
        du = SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * v * v)
        return 0.5 * v * (1.0 + t), 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * du
    cdf = 0.5 * (1.0 + _special().erf(v / SQRT2))
    return v * cdf, cdf + v * INV_SQRT_2PI * np.exp(-0.5 * v * v)


def d_mish(v, a):
    t = np.tanh(_softplus(v))
    return v * t, t + v * (1.0 - t * t) * _sigmoid(v)


def d_thresholded_relu(v, a):
    on = v > a["alpha"]                                                        # ThresholdedRelu'(alpha) = 0
    return np.where(on, v, 0.0), on.astype(np.float64)


def d_erf(v, a, out=None):
    """``out``: the values onnxruntime computed (scipy's float64 erf costs ~12 ns a value, the exp ~1)."""
    return (_special().erf(v) if out is None else out), TWO_OVER_SQRT_PI * np.exp(-v * v)


def d_exp(v, a):
    e = np.exp(v)
    return e, e


def d_log(v, a):
    return np.log(v), 1.0 / v


def d_sqrt(v, a):
    r = np.sqrt(v)
    return r, 0.5 / r


def d_abs(v, a):
    return np.abs(v), np.sign(v)                                               # Abs'(0) = 0


def d_neg(v, a):
    return -v, -1.0


def d_reciprocal(v, a):
    r = 1.0 / v
    return r, -r * r


def d_clip(v, a):
    lo, hi = a["lo"], a["hi"]
    inside = np.ones(np.shape(v), dtype=bool)                                 # 1 strictly inside the bounds
    if lo is not None:
        inside &= v > lo
    if hi is not None:
        inside &= v < hi
    return np.clip(v, lo, hi) if (lo is not None or hi is not None) else v, inside.astype(np.float64)


def d_identity(v, a):
    return v, 1.0


def d_cast(v, a):
    dt = a["dtype"]
    return (v if dt is None else v.astype(dt).astype(np.float64)), 1.0


UNARY = {"Relu": d_relu, "LeakyRelu": d_leaky_relu, "PRelu": d_prelu, "Elu": d_elu, "Selu": d_selu,
         "Celu": d_celu, "Sigmoid": d_sigmoid, "HardSigmoid": d_hard_sigmoid, "HardSwish": d_hard_swish,
         "Tanh": d_tanh, "Softplus": d_softplus, "Softsign": d_softsign, "Gelu": d_gelu, "Mish": d_mish,
         "ThresholdedRelu": d_thresholded_relu, "Erf": d_erf, "Exp": d_exp, "Log": d_log, "Sqrt": d_sqrt,
         "Abs": d_abs, "Neg": d_neg, "Reciprocal": d_reciprocal, "Clip": d_clip, "Identity": d_identity,
         "Dropout": d_identity, "Cast": d_cast}


# --------------------------------------------------------------------------------------- binary ops
# a, b: operand values; ca, cb: whether each is a constant (its derivative is then not computed)

def d_add(a, b, ca, cb):
    return a + b, 1.0, 1.0


def d_sub(a, b, ca, cb):
    return a - b, 1.0, -1.0


def d_mul(a, b, ca, cb):
    return a * b, b, a


def d_div(a, b, ca, cb):
    q = a / b
    return q, 1.0 / b, (None if cb else -q / b)


def d_pow(a, b, ca, cb):
    p = a ** b
    return p, (None if ca else b * a ** (b - 1.0)), (None if cb else p * np.log(a))


def d_max(a, b, ca, cb):
    # a tie takes the slope of the constant operand (0) when one is constant, else of the first operand
    first = (a > b) if cb else (a >= b)
    return np.maximum(a, b), first.astype(np.float64), (~first).astype(np.float64)


def d_min(a, b, ca, cb):
    first = (a < b) if cb else (a <= b)
    return np.minimum(a, b), first.astype(np.float64), (~first).astype(np.float64)


BINARY = {"Add": d_add, "Sub": d_sub, "Mul": d_mul, "Div": d_div, "Pow": d_pow, "Max": d_max, "Min": d_min}


# ---------------------------------------------------------------------------------------- the chain

ONE = 1.0   # the tangent of z itself (dz/dz): multiplying by it is skipped


def _run(steps, z_name: str, z: np.ndarray, x_name: str, known: dict):
    """The tangent dx/dz of one block (chain rule through the steps; appendix B.3's g'(z)). ``known``:
    values of steps' outputs already computed (by onnxruntime), by name, as blocks like ``z`` (its dtype)."""
    env = {z_name: (z, ONE)}
    for st in steps:
        if st.op in UNARY:
            v, dv = env[st.operands[0]]
            out = known.get(st.output)
            value, d = UNARY[st.op](v, st.attrs) if out is None else UNARY[st.op](v, st.attrs, out=out)
            env[st.output] = (value, d if dv is ONE else d * dv)
            continue
        (a, da), (b, db) = (env[o] if isinstance(o, str) else (o.astype(z.dtype), None) for o in st.operands)
        value, pa, pb = BINARY[st.op](a, b, da is None, db is None)
        tangent = 0.0
        if da is not None:
            tangent = pa if da is ONE else pa * da
        if db is not None:
            tangent = tangent + (pb if db is ONE else pb * db)
        env[st.output] = (value, tangent)
    return env[x_name][1]


def reused(site) -> list[str]:
    """The site's tensors whose values ``squared_slopes`` reads rather than recomputes (outputs of REUSED ops)."""
    return [st.output for st in site.steps if st.op in REUSED]


def squared_slopes(site, z: np.ndarray, pool=None, known: dict | None = None) -> tuple[np.ndarray, float]:
    """s^2 = g'(z)^2 for every value of ``z`` (float64, z's shape) and its largest value (NaN or inf when
    some s^2 is not finite), evaluated in blocks that stay in cache: in float32 when z is float32 and
    the site ``bounded`` (its rounding, ~1e-7 of s_max^2, is far inside the figures' tolerance; a block
    whose s^2 is not finite in float32 is evaluated again in float64), else in float64. ``pool`` (with
    ``threads`` and ``map(fn, n)``, as ``stats.threads.StatThreads``): runs of blocks side by side
    (numpy and scipy release the GIL in their loops) once z holds PARALLEL_MIN values. ``known``: values
    of the site's tensors (``reused``) as onnxruntime computed them; used when float32 or float64 and of
    z's shape (their float32 rounding is far inside the figures' tolerance)."""
    z = np.asarray(z)
    known = {k: v for k, v in (known or {}).items()
             if z.ndim and v.shape == z.shape and v.dtype in (np.float32, np.float64)}
    out = np.empty(z.shape, dtype=np.float64)
    if z.size == 0:
        return out, 0.0
    lead = max(1, z.ndim - _constant_ndim(site))     # leading axes no constant spans: one axis of rows
    flat = z.reshape((-1,) + z.shape[lead:])
    known = {k: v.reshape(flat.shape) for k, v in known.items()}
    dest = out.reshape(flat.shape)
    n = len(flat)
    whole = z.ndim == 0 or _full_constants(site, z.ndim)
    rows = n if whole else max(1, CHUNK // max(1, z.size // n))
    blocks = list(range(0, n, rows))
    parts = min(pool.threads, len(blocks)) if pool is not None and z.size >= PARALLEL_MIN else 1

    single = site.bounded and z.dtype == np.float32

    def block(lo: int, dtype) -> float:
        given = {k: v[lo:lo + rows].astype(dtype, copy=False) for k, v in known.items()}
        s = np.broadcast_to(_run(site.steps, site.z, flat[lo:lo + rows].astype(dtype, copy=False), site.x, given),
                            dest[lo:lo + rows].shape)
        return np.square(s, out=dest[lo:lo + rows], dtype=np.float64).max()

    def run(t: int) -> float:
        top = 0.0
        for lo in blocks[len(blocks) * t // parts:len(blocks) * (t + 1) // parts]:
            m = block(lo, np.float32 if single else np.float64)
            if single and not np.isfinite(m):
                m = block(lo, np.float64)
            if not np.isnan(top) and not m <= top:      # (a NaN sticks)
                top = m
        return float(top)

    tops = pool.map(run, parts) if parts > 1 else [run(0)]
    nan = [t for t in tops if np.isnan(t)]
    return out, (nan[0] if nan else max(tops))


def _constant_ndim(site) -> int:
    """The most axes of any constant of the site (they broadcast against z's last axes)."""
    consts = [c for st in site.steps for c in list(st.operands) + list(st.attrs.values()) if isinstance(c, np.ndarray)]
    return max((c.ndim for c in consts), default=0)


def _full_constants(site, ndim: int) -> bool:
    """Whether a constant spans the leading axis (then the rows cannot be evaluated block by block)."""
    for st in site.steps:
        for c in list(st.operands) + list(st.attrs.values()):
            if isinstance(c, np.ndarray) and c.ndim == ndim and c.shape[0] > 1:
                return True
    return False
