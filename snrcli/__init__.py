"""snr: node-level SNR optimality and SNR gain of trained networks (Norridge 2021), for ONNX models.

``snrcli.analyze(model, data, ...)`` returns the ``snr-report/1`` report object (``snrcli.Report``);
importing the package does not touch click or rich.
"""

from __future__ import annotations

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
