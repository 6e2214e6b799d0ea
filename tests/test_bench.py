"""The benchmarks run (tiny sizes; they report ratios, nothing here is timed)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.plugin_projects import REPO

pytestmark = pytest.mark.subprocess


def test_dispatch_benchmark_runs_and_prints_a_row_per_size():
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "dispatch.py"), "--number", "200", "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    lines = result.stdout.splitlines()
    split = next(i for i, line in enumerate(lines) if line.startswith("call_one"))
    calls = [line.split() for line in lines[2:split] if line.split()[0].isdigit()]
    ones = [line.split() for line in lines[split + 2 :]]
    # impls, then median (min) of bare pluggy, host.call, its ratio, get_host().call, its ratio
    assert [row[0] for row in calls] == ["1", "10", "50"]
    assert all(len(row) == 11 and float(row[5]) > 0 and float(row[9]) > 0 for row in calls)
    assert any(line.startswith("a read of the registry generation") for line in lines)
    assert [row[0] for row in ones] == ["1", "10", "50", "100"]
    assert all(float(row[5]) > 0 for row in ones)


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


def test_catalogue_benchmark_runs_and_compares_every_case_with_its_floor():
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "catalogue.py"), "--projects", "3", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    lines = result.stdout.splitlines()
    cases = [line[:28].strip() for line in lines[2:] if line[:28].strip()]
    assert cases == [
        "cold", "warm, index changed", "warm, unchanged",
        "cold (process)", "warm, unchanged (process)",
    ]  # fmt: skip
    assert "7 req" in lines[2]  # the project list, 3 pages, 3 wheels
    ratios = [line.split()[-1] for line in lines if "ratio of minimums" in line]
    assert len(ratios) == 5 and all(float(r.rstrip("x")) > 0 for r in ratios)


def test_fairness_benchmark_runs_and_prints_both_latencies_and_their_ratio():
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "fairness.py"), "--leads", "4", "--rate", "4"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    rows = {line[:28].strip(): line[28:].split() for line in result.stdout.splitlines()[2:]}
    assert set(rows) == {"alone", "next to a hanging plugin", "ratio"}
    assert all(float(value) > 0 for values in rows.values() for value in values)
