"""Shared fixtures.

- Every report that ``snrcli.analysis.api.build_report`` makes during any test (through
  ``snrcli.analyze`` or the CLI in-process) is validated against
  ``snrcli.reports.report.schema()`` and scanned for NaN/Infinity; an invalid report
  fails the test that produced it. ``validated_reports`` counts them.
- Every compare, correlate and check result turned into a dict is validated against its shipped
  schema (``snr-compare/1``, ``snr-correlate/1``, ``snr-check/1``).
- ``run_cli``: click's CliRunner with NO_COLOR=1 and COLUMNS=120, run inside
  ``tmp_path``, asserting the exit code and showing stdout and stderr on failure.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

VALIDATED: list[dict] = []


def _nonfinite_paths(value, where="$"):
    if isinstance(value, float) and not math.isfinite(value):
        yield where
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _nonfinite_paths(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _nonfinite_paths(v, f"{where}[{i}]")


def check_report_dict(d: dict) -> None:
    """Raise AssertionError when ``d`` breaks the snr-report/1 schema or holds a non-finite number."""
    import jsonschema

    from snrcli.reports.report import schema

    bad = list(_nonfinite_paths(d))
    assert not bad, f"non-finite numbers in the report at {bad[:5]}"
    json.dumps(d, allow_nan=False)
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(d), key=lambda e: list(e.path))
    assert not errors, "report breaks snr-report/1: " + "; ".join(
        f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5])


@pytest.fixture(autouse=True)
def _validate_every_report(monkeypatch):
    import snrcli.analysis.api as api

    original = api.build_report

    def build_and_check(*args, **kwargs):
        report = original(*args, **kwargs)
        d = report.to_dict()
        check_report_dict(d)
        json.loads(report.to_json())
        VALIDATED.append(d)
        return report

    monkeypatch.setattr(api, "build_report", build_and_check)
    yield


def check_output_dict(d: dict, name: str) -> None:
    """Raise AssertionError when ``d`` breaks the shipped schema ``name`` (snr-compare/1, ...)."""
    import jsonschema

    from snrcli.reports.report import schema

    json.dumps(d, allow_nan=False)
    errors = sorted(jsonschema.Draft202012Validator(schema(name)).iter_errors(d), key=lambda e: list(e.path))
    assert not errors, f"output breaks {name}: " + "; ".join(
        f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5])


@pytest.fixture(autouse=True)
def _validate_every_output(monkeypatch):
    """Every compare, correlate and check result turned into JSON in any test is validated like the reports."""
    from snrcli.reports.check import CheckResult
    from snrcli.reports.compare import Comparison
    from snrcli.reports.correlate import Correlation

    for cls, name in ((Comparison, "snr-compare/1"), (Correlation, "snr-correlate/1"), (CheckResult, "snr-check/1")):
        def checked(self, _original=cls.to_dict, _name=name):
            from snrcli.reports.report import clean

            d = _original(self)
            check_output_dict(clean(d), _name)   # as written: non-finite numbers become null
            return d
        monkeypatch.setattr(cls, "to_dict", checked)
    yield


@pytest.fixture
def validated_reports() -> list[dict]:
    return VALIDATED


class CliResult:
    def __init__(self, result):
        self.raw = result
        self.exit_code = result.exit_code
        self.stdout = result.stdout
        self.stderr = result.stderr
        self.exception = result.exception

    def __repr__(self):
        return f"<exit {self.exit_code}>\n--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"


@pytest.fixture
def run_cli(tmp_path, monkeypatch):
    """``run_cli(*args, code=0)``: run ``snr ARGS`` in tmp_path and check the exit code."""
    from click.testing import CliRunner

    from snrcli.cli import main

    monkeypatch.chdir(tmp_path)

    def run(*args: str, code: int | None = 0, input: str | bytes | None = None) -> CliResult:
        runner = CliRunner(env={"NO_COLOR": "1", "COLUMNS": "120"})
        result = CliResult(runner.invoke(main, [str(a) for a in args], input=input, catch_exceptions=True,
                                         prog_name="snr"))
        if code is not None:
            exc = ""
            unexpected = result.exception is not None and not isinstance(result.exception, SystemExit)
            if unexpected:
                import traceback
                exc = "".join(traceback.format_exception(result.exception))
            assert result.exit_code == code, (
                f"snr {' '.join(map(str, args))}: exit {result.exit_code}, wanted {code}\n"
                f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}\n{exc}")
            assert not (unexpected and code in (0, 1)), exc
        return result

    return run


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(12345)
