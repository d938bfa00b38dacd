"""Preprocessing the data as it is fed: ``--scale``/``--mean``/``--std`` per channel and ``--layout``
(docs/metrics.md, How the model is run), planned once against the items' shape and the model input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError, UsageError


@dataclass
class Preprocess:
    """``x = (x * scale - mean) / std`` per channel, then an optional layout transpose: ``--scale``, ``--mean``, ``--std``, ``--layout``."""

    scale: list[float] | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    layout: str | None = None          # the data's layout: "nchw" or "nhwc"
    transpose: tuple[int, ...] | None = None  # item axes permutation decided against the model input
    channel_axis: int | None = None    # item axis (0-based, no batch) that per-channel lists follow

    @property
    def active(self) -> bool:
        return bool(self.scale or self.mean or self.std or self.transpose)

    def settings(self) -> dict:
        return {"scale": self.scale, "mean": self.mean, "std": self.std, "layout": self.layout}

    def _per_channel(self, values: list[float] | None, ndim: int) -> np.ndarray | float:
        if not values:
            return 0.0
        if len(values) == 1:
            return float(values[0])
        shape = [1] * ndim
        shape[1 + self.channel_axis] = len(values)
        return np.asarray(values, dtype=np.float64).reshape(shape)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Apply to a batch (items on axis 0)."""
        if not self.active:
            return x
        y = np.asarray(x, dtype=np.float64)
        if self.scale:
            y = y * self._per_channel(self.scale, y.ndim)
        if self.mean:
            y = y - self._per_channel(self.mean, y.ndim)
        if self.std:
            y = y / self._per_channel(self.std, y.ndim)
        if self.transpose:
            y = y.transpose((0,) + tuple(1 + a for a in self.transpose))
        return y


def plan_preprocess(item: tuple[int, ...], dims: list, *, scale=None, mean=None, std=None,
                    layout: str | None = None, model_layout: str | None = None) -> Preprocess:
    """Check the flags against the data's item shape and decide the transpose that fits the model input
    (``model_layout``: the layout the model input takes, where the graph tells; see model/layout.py)."""
    pre = Preprocess(scale=list(scale) if scale else None, mean=list(mean) if mean else None,
                     std=list(std) if std else None, layout=layout)
    if std and any(v == 0 for v in std):
        raise UsageError("--std must not contain 0")
    n = len(item)
    if layout:
        if n < 2:
            raise UsageError(f"--layout needs items with a channel axis and spatial axes; items have shape {item}")
        pre.channel_axis = n - 1 if layout == "nhwc" else 0
        perm = (n - 1,) + tuple(range(n - 1)) if layout == "nhwc" else tuple(range(1, n)) + (0,)
        moved = tuple(item[a] for a in perm)
        want = dims[1:] if dims and len(dims) == n + 1 else list(dims or [])
        as_is, turned = fits(item, want), fits(moved, want)
        other = "nchw" if layout == "nhwc" else "nhwc"
        if model_layout is not None:
            as_is, turned = as_is and model_layout == layout, turned and model_layout != layout
            if not (as_is or turned):
                raise DataError(f"--layout {layout}: the model input takes {model_layout} items {fmt_shape(dims)}, "
                                f"and items of shape {item} read as {layout} do not fit it"
                                + ("" if model_layout == layout else f" once transposed to {moved}"))
        if turned and not as_is:
            pre.transpose = perm
        elif not as_is:
            raise DataError(f"--layout {layout}: items of shape {item} fit the model input {fmt_shape(dims)} "
                            f"neither as they are nor transposed to {other} {moved}"
                            if dims else f"--layout {layout}: the model input declares no shape, so whether to "
                            "transpose the items cannot be decided; transpose the data yourself and drop --layout")
        elif turned and moved != item:
            raise DataError(f"--layout {layout}: items of shape {item} fit the model input {fmt_shape(dims)} both "
                            f"as they are and transposed to {other} {moved}, so its layout cannot be told; "
                            "transpose the data yourself and drop --layout")
    lists = [v for v in (scale, mean, std) if v and len(v) > 1]
    if lists:
        size = len(lists[0])
        if any(len(v) != size for v in lists):
            raise UsageError("--scale, --mean and --std lists must have the same length (one value per channel)")
        if pre.channel_axis is None:
            if n >= 1 and item[0] == size:
                pre.channel_axis = 0
            elif n >= 1 and item[-1] == size:
                pre.channel_axis = n - 1
            else:
                raise UsageError(f"{size} per-channel values but no item axis of that size in {item}; "
                                 "pass --layout to say where the channels are")
        elif item[pre.channel_axis] != size:
            raise UsageError(f"{size} per-channel values but the {layout} channel axis has {item[pre.channel_axis]}")
    return pre


def fmt_shape(dims) -> str:
    return "(" + ", ".join("N" if d is None or isinstance(d, str) else str(d) for d in dims) + \
        ("," if len(dims) == 1 else "") + ")"


def fits(item: tuple, dims: list) -> bool:
    return len(item) == len(dims) and all(not isinstance(d, int) or d <= 0 or d == s for d, s in zip(dims, item))
