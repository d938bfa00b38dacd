"""Locating ../shared (reference fixtures, third-party models, data) and preparing model inputs.

Tests that need these files skip with a reason when ../shared is absent (a user's clone).
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SNR_SHARED", REPO.parent / "shared"))


def require_shared(*parts: str) -> Path:
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} not found: the reference material lives in ../shared beside the repository")
    return p


@lru_cache(maxsize=None)
def manifest() -> dict:
    return json.loads((require_shared("models", "manifest.json")).read_text())


@lru_cache(maxsize=8)
def _dataset(rel: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(SHARED / rel, allow_pickle=False) as z:
        return z["images"], z["labels"]


def prepared_inputs(entry: dict, n: int | None = None) -> dict[str, np.ndarray]:
    """The manifest's preprocessing recipe applied to its data set: arrays keyed by input name, plus labels."""
    images, labels = _dataset(entry["dataset_file"])
    if n is not None:
        images, labels = images[:n], labels[:n]
    p = entry["preprocessing_params"]
    x = (images.astype(np.float32) * np.float32(p["scale"]) - np.float32(p["mean"])) / np.float32(p["std"])
    if p.get("transpose_hwc_to_chw"):
        x = x.transpose(0, 3, 1, 2)
    item = tuple(p["item_shape"])
    if p.get("repeat_grey_to_channels"):
        x = np.repeat(x.reshape((len(x), 1) + item[1:]), p["repeat_grey_to_channels"], axis=1)
    x = np.ascontiguousarray(x.reshape((len(x),) + item), dtype=np.float32)
    # "no batch axis" models: each item is fed as the whole input (batch dim of 1 included)
    first = entry["inputs"][-1] if "extra_inputs" in p else entry["inputs"][0]
    if len(first["shape"]) == len(item) and first["shape"][0] == 1 and "no batch axis" in entry["preprocessing"]:
        x = x.reshape((len(x), 1) + item[1:]) if item[0] != 1 else x
    out = {first["name"]: x, "labels": labels.astype(np.int64)}
    for name, what in p.get("extra_inputs", {}).items():
        if "one-hot" in what:
            out[name] = np.eye(10, dtype=np.float32)[labels]
    return out
