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


def test_events_benchmark_runs_and_prints_both_tables():
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "events.py"),
            "--saves",
            "20",
            "--deliveries",
            "30",
            "--no-postgres",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    lines = result.stdout.splitlines()
    ratios = [line.split()[-1] for line in lines if "subscribed plugin(s)" in line]
    assert len(ratios) == 3 and all(float(r) > 0 for r in ratios)
    rates = [line.split() for line in lines if line.startswith("sqlite")]
    assert [row[1] for row in rates] == ["1", "2"]
    assert all(float(row[2]) > 0 for row in rates)


def test_install_benchmark_runs_and_prints_both_cases():
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "install.py"), "--plugins", "3", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    rows = [line.split() for line in result.stdout.splitlines()[2:]]
    assert [" ".join(row[:-3]) for row in rows] == ["one plugin", "3 plugins from a lock"]
    assert all(row[-1].endswith("x") and float(row[-1][:-1]) > 0 for row in rows)


def test_serve_benchmark_runs_and_compares_both_servers():
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "serve.py"),
            "--requests",
            "3",
            "--rounds",
            "1",
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    lines = result.stdout.splitlines()
    rows = [line.split() for line in lines if line.split()[0] in ("runserver", "serve")]
    rows = [row for row in rows if row[1] != "vs"]
    assert [row[:2] for row in rows] == [
        [server, page]
        for server in ("runserver", "serve")
        for page in ("widget", "dashboard", "static")
    ]
    assert all(row[-1] == "0" for row in rows)  # no failed request
    ratios = [line.split()[-1] for line in lines if line.startswith("serve vs runserver")]
    assert len(ratios) == 3 and all(float(r.rstrip("x")) > 0 for r in ratios)
