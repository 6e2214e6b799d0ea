"""The benchmarks run (tiny sizes; they report ratios, nothing here is timed)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.plugin_projects import REPO

pytestmark = pytest.mark.subprocess


def test_dispatch_benchmark_runs_and_prints_a_row_per_size():
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "dispatch.py"), "--number", "1000", "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    assert [row[0] for row in rows] == ["1", "10", "50"]
    assert all(float(row[-1]) > 0 for row in rows)
