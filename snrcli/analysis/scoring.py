"""Reading the scored output: each item's top-1 class and confidence, and labels checked against it.

- Two or more scores per item: the class is the argmax; the confidence is the largest softmax
  probability (``baselines.max_confidence_sum``).
- One score per item (a binary head): class 1 when the score is above 0.5 for a Sigmoid output,
  above 0 for a logit (a layer's raw output, through bias adds and shape-only ops); otherwise
  class 0. The confidence is max(p, 1 - p), with p the Sigmoid output or sigmoid(logit): the
  largest probability of the equivalent two-class softmax. A one-score output that is neither
  is not scored (accuracy and confidence null, with a warning).
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from .baselines import max_confidence_sum

THRESHOLD = {"probability": 0.5, "logit": 0.0}


def classes(width: int) -> int:
    """The number of classes an output with ``width`` scores per item tells apart (one score: two)."""
    return 2 if width == 1 else width


def score(scores: np.ndarray, kind: str | None, name: str) -> tuple[np.ndarray, float] | str:
    """(top-1 class per row, sum of the rows' confidences) of rows of class scores, or the reason
    they cannot be scored. ``kind``: ``GraphInfo.score_kind`` of the output ``name``."""
    if scores.shape[-1] != 1:
        return scores.argmax(axis=-1), max_confidence_sum(scores)
    if kind not in THRESHOLD:
        return (f"output {name!r} gives one score per item and is neither a Sigmoid output nor a layer's raw "
                "output (a logit), so no binary rule applies")
    s = scores[:, 0].astype(np.float64)
    if kind == "probability":
        p = s
    else:
        from scipy.special import expit   # only here: importing scipy adds 0.1-0.3 s to a process's start-up

        p = expit(s)
    return (s > THRESHOLD[kind]).astype(np.int64), float(np.maximum(p, 1.0 - p).sum())


def check_labels(labels: np.ndarray, out: np.ndarray, name: str, key: str | None,
                 one_hot: int | None = None, offset: int = 0) -> None:
    """Refuse labels that the scored output ``out`` (one batch of it) cannot get right: class ids at or
    beyond its number of classes, one-hot rows wider than it. ``offset``: the first label's item."""
    if out.ndim == 0 or out.dtype.kind != "f":
        return          # not a class vector per item: accuracy is null with a warning instead
    width = int(out.shape[-1])
    k = classes(width)
    what = "one score per item: a binary head, classes 0 and 1" if width == 1 else f"classes 0-{k - 1}"
    label = f"labels {key!r}" if key else "labels"
    if one_hot is not None and one_hot > k:
        raise DataError(f"{label} are one-hot rows of {one_hot} classes but output {name!r} scores {k} "
                        f"({what}); label only the classes it scores, or pick the scored output with --output")
    if len(labels) and int(labels.max()) >= k:
        at = int(np.argmax(labels >= k))
        raise DataError(f"{label} hold class {int(labels[at])} (item {offset + at}) but output {name!r} scores "
                        f"{k} classes ({what}); label only the classes it scores, or pick the scored output "
                        "with --output")
