"""snr: node-level SNR optimality and SNR gain of trained networks (Norridge 2021), for ONNX models.

``snrcli.analyze(model, data, ...)`` returns the ``snr-report/1`` report object (``snrcli.Report``);
importing the package does not touch click or rich.
"""

from __future__ import annotations

import os

# onnxruntime and the statistics' BLAS take turns on the same cores. OpenBLAS's idle threads spin for
# about 2^28 cycles after each call, long enough to take cores from the next onnxruntime run (measured:
# both sides ran at half speed). Sleep at once instead; read when numpy/scipy load their OpenBLAS, so it
# applies when snrcli is imported first (the CLI), and a value the user set wins.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

__version__ = "0.1.0"
__all__ = ["__version__", "analyze", "Report"]


def __getattr__(name: str):
    if name == "analyze":
        from .analysis.api import analyze

        return analyze
    if name == "Report":
        from .reports.report import Report

        return Report
    raise AttributeError(name)
