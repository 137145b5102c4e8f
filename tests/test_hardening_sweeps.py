"""Sweeps under hostile conditions: two writers, torn tables, killed parents, Ctrl-C."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulator.studies.table_lock import TableLock
from tests.conftest import ROOT, assert_clean_error, run_cli

S = "scenarios/llama3.1-8b-h100-serving.yaml"
SMALL = ("--set", "workload.arrivals.requests=20", "--quiet", "--jobs", "1")


def _sweep(out: Path, *extra: str):
    return run_cli("sweep", S, "--grid", "seed=1,2,3", "--out", str(out), *SMALL, *extra)


def test_a_table_in_use_is_refused_naming_its_writer(tmp_path):
    out = tmp_path / "rows.jsonl"
    lock = TableLock(out)
    try:
        result = _sweep(out, "--resume")
    finally:
        lock.release()
    assert_clean_error(result, f"another sweep (pid {os.getpid()}) is writing this table")
    assert not out.exists()
    assert _sweep(out).code == 0  # free again once released


def test_a_torn_jsonl_line_is_run_again(tmp_path):
    out = tmp_path / "rows.jsonl"
    assert _sweep(out).code == 0
    lines = out.read_text().splitlines()
    out.write_text(lines[0] + "\n" + lines[1][:25] + "\n" + lines[2] + "\n" + '{"poi')
    result = _sweep(out, "--resume", "--format", "json")
    assert result.code == 0, result.err
    report = result.json()
    assert (report["computed"], report["resumed"], report["dropped_lines"]) == (1, 2, 1)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["point"] for r in rows) == sorted({r["point"] for r in rows})
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows)


def test_a_csv_row_cut_short_is_not_counted_as_done(tmp_path):
    out = tmp_path / "rows.csv"
    assert _sweep(out).code == 0
    header, first, second, third = out.read_text().splitlines()
    out.write_text("\n".join([header, first, second[:30], third]) + "\n")
    result = _sweep(out, "--resume", "--format", "json")
    assert result.code == 0, result.err
    report = result.json()
    assert (report["computed"], report["resumed"], report["dropped_lines"]) == (1, 2, 1)
    lines = out.read_text().splitlines()
    assert len(lines) == 4 and second[:30] not in lines
    assert len({len(cells) for cells in csv.reader(lines)}) == 1  # (warnings hold commas)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _start_slow_sweep(out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "simulator.cli.main", "sweep", S, "--grid",
         # long enough (about a minute) that the signal never meets a sweep already ending:
         # a Python process past its finalization dies of SIGINT instead of handling it
         "seed=" + ",".join(str(i) for i in range(1, 17)),
         "--set", "workload.arrivals.requests=30000", "--jobs", "2",
         "--quiet", "--out", str(out)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)


def _wait_for_workers(proc: subprocess.Popen, count: int) -> list[int]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        workers = _children(proc.pid)
        if len(workers) >= count:
            time.sleep(1.0)  # let the initializer run
            return workers
        time.sleep(0.2)
    pytest.fail("the sweep started no workers")


@pytest.mark.skipif(sys.platform != "linux", reason="/proc and PR_SET_PDEATHSIG")
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_workers_die_with_their_parent(tmp_path, how):
    proc = _start_slow_sweep(tmp_path / "rows.jsonl")
    workers = _wait_for_workers(proc, 2)
    proc.send_signal(how)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 20
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(w) for w in workers)


@pytest.mark.skipif(sys.platform != "linux", reason="/proc")
def test_ctrl_c_ends_quietly_and_leaves_a_resumable_table(tmp_path):
    out = tmp_path / "rows.jsonl"
    proc = _start_slow_sweep(out)
    workers = _wait_for_workers(proc, 2)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal does: the whole process group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().endswith("interrupted")
    assert not any(_alive(w) for w in workers)
    for line in out.read_text().splitlines():
        assert json.loads(line)["status"] == "ok"
