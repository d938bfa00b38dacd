"""The shared conformance fixtures (../shared/conformance), run through the installed ``snr`` console script."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from shared_assets import SHARED, require_shared


def snr_executable() -> Path:
    exe = Path(sys.executable).parent / ("snr.exe" if os.name == "nt" else "snr")
    if not exe.exists():
        pytest.skip(f"{exe} not found: install the package (pip install -e .) to get the snr console script")
    return exe


def test_conformance_fixtures_all_pass():
    check = require_shared("conformance", "check")
    fixtures = sorted(p.name[:-len(".expected.json")] for p in (check.parent / "fixtures").glob("*.expected.json"))
    assert fixtures, f"no fixtures under {check.parent / 'fixtures'}"
    env = {**os.environ, "SNR_CMD": str(snr_executable()), "NO_COLOR": "1"}
    proc = subprocess.run([sys.executable, str(check), "-v"], env=env, capture_output=True, text=True, timeout=240)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    report = f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
    assert lines, report
    m = re.search(r"(\d+) passed, (\d+) failed$", lines[-1])
    assert m, report
    assert (int(m.group(1)), int(m.group(2))) == (len(fixtures), 0), report
    assert proc.returncode == 0, report
    assert {ln.split()[1] for ln in lines if ln.startswith("PASS ")} == set(fixtures), report


def test_shared_path_points_at_the_reference_material():
    require_shared("spec", "metrics.md")
    assert (SHARED / "conformance" / "fixtures").is_dir()
