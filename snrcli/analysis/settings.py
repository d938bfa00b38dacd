"""The settings of an analysis and their documented defaults (recorded in every report).

Imported by the command-line options at start-up: keep it free of numpy and onnx."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError

DEFAULT_BATCH_SIZE = 256
DEFAULT_MIN_LEVEL = 0.01
DEFAULT_MIN_ACTIVITY = 0.01
PRECISIONS = ("mixed", "float64")   # products of float32 activations: float32 blocks summed in float64, or float64
DEFAULT_PRECISION = "mixed"
NOISE_MODELS = ("relu", "activation")   # how a_j and r_i are read: ReLU on/off, or activation slopes (B.3)
DEFAULT_NOISE_MODEL = "relu"
MAX_DEFAULT_THREADS = 4   # statistics threads by default: the available cores up to this (each keeps its own sums)


@dataclass(frozen=True)
class Settings:
    """Everything that decides an analysis besides the model and the data files (recorded in the report)."""

    batch_size: int = DEFAULT_BATCH_SIZE
    limit: int | None = None
    min_level: float = DEFAULT_MIN_LEVEL
    min_activity: float = DEFAULT_MIN_ACTIVITY
    centre_classifier: bool = True
    input_key: str | None = None
    label_key: str | None = None
    output: str | None = None
    drop_nonfinite: bool = False
    scale: tuple[float, ...] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    layout: str | None = None
    providers: tuple[str, ...] | None = None
    threads: int | None = None
    custom_op_library: str | None = None
    precision: str = DEFAULT_PRECISION
    noise_model: str = DEFAULT_NOISE_MODEL

    def validate(self) -> None:
        """Refuse settings that would run and report nonsense: non-finite or out-of-range numbers."""
        for name, top in (("min_level", None), ("min_activity", 1.0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0 \
                    or (top is not None and v > top):
                bound = f"in [0, {top:g}]" if top is not None else ">= 0"
                raise UsageError(f"{name} must be a finite number {bound}, got {v!r}")
        for name in ("scale", "mean", "std"):
            for v in getattr(self, name) or ():
                if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                    raise UsageError(f"{name} values must be finite numbers, got {v!r}")
        for name, v in (("batch_size", self.batch_size), ("limit", self.limit)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1):
                raise UsageError(f"{name} must be a whole number >= 1, got {v!r}")

    def data_kwargs(self) -> dict[str, Any]:
        return dict(input_key=self.input_key, label_key=self.label_key, limit=self.limit,
                    drop_nonfinite=self.drop_nonfinite, scale=self.scale, mean=self.mean, std=self.std,
                    layout=self.layout)
