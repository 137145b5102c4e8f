"""Sweeps: grid points, rows equal to single runs, executors agreeing, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulator.economics.fleet import Billing
from simulator.errors import InputError, InputErrors
from simulator.loading import load_scenario
from simulator.simulate import simulate
from simulator.studies.executors import InProcessExecutor, PoolExecutor, make_executor
from simulator.studies.grid import build_points, parse_axis, split_values
from simulator.studies.rows import Base, result_metrics
from simulator.studies.stats import mean_ci, t975
from simulator.studies.sweep import run_sweep
from simulator.studies.table import drop_partial_line, read_rows

ROOT = Path(__file__).resolve().parent.parent
SERVING = ROOT / "scenarios" / "llama3.1-8b-h100-serving.yaml"
TRAINING = ROOT / "scenarios" / "llama3.1-8b-h100-training.yaml"
SMALL_SERVING = ["workload.arrivals.requests=60"]


def _base(path: Path, overrides: list[str] = ()) -> Base:
    from simulator.profiles.overrides import apply_overrides

    base = Base.from_file(path)
    return Base(apply_overrides(base.data, overrides), base.base_dir, base.file)




def _cli(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "COLUMNS": "100", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "simulator.cli.main", *args], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kwargs)


# ---- the grid -----------------------------------------------------------------------------
def test_values_split_outside_brackets():
    assert split_values("1, 2,[3, 4],{a: 1, b: 2}, '5,6'") == \
        ["1", "2", "[3, 4]", "{a: 1, b: 2}", "'5,6'"]


def test_grid_is_a_product_and_zip_one_axis():
    points = build_points([parse_axis("a=1,2,3"), parse_axis("b=x,y")],
                          [parse_axis("c=1,2", "--zip"), parse_axis("d=3,4", "--zip")])
    assert len(points) == 3 * 2 * 2
    assert points[0].overrides == ("a=1", "b=x", "c=1", "d=3")
    assert points[-1].overrides == ("a=3", "b=y", "c=2", "d=4")
    assert points[0].label_dict == {"a": 1, "b": "x", "c": 1, "d": 3}
    assert len({p.key for p in points}) == len(points)


def test_seeds_replicate_each_point_and_keys_are_stable():
    points = build_points([parse_axis("a=1,2")], seeds=3, base_seed=7)
    assert [p.label_dict["seed"] for p in points] == [7, 8, 9, 7, 8, 9]
    again = build_points([parse_axis("a=1,2")], seeds=3, base_seed=7)
    assert [p.key for p in points] == [p.key for p in again]


@pytest.mark.parametrize(("grid", "zipped", "message"), [
    (["a=1,2", "a=3"], [], "repeated: a"),
    ([], ["a=1,2", "b=1"], "same length"),
    (["a="], [], "one or more"),
    (["a=1,1"], [], "listed twice"),
    ([], ["a=1,1", "b=2,2"], "listed twice"),
])
def test_bad_axes_are_input_errors(grid, zipped, message):
    with pytest.raises(InputError, match=message):
        build_points([parse_axis(g) for g in grid], [parse_axis(z, "--zip") for z in zipped])


def test_an_unknown_field_fails_before_running():
    with pytest.raises(InputErrors, match="unknown field 'tpp'"):
        run_sweep(_base(TRAINING), build_points([parse_axis("workload.parallelism.tpp=1,2")]))


# ---- rows ---------------------------------------------------------------------------------
def test_rows_match_single_runs():
    points = build_points([parse_axis("workload.arrivals.rate_per_s=4,16"),
                           parse_axis("workload.parallelism.tp=1,2")])
    base = _base(SERVING, [*SMALL_SERVING, "cluster.accelerators=2"])
    outcome = run_sweep(base, points)
    assert [row["point"] for row in outcome.rows] == [p.key for p in points]
    for point, row in zip(points, outcome.rows, strict=True):
        scenario = load_scenario(SERVING, [*SMALL_SERVING, "cluster.accelerators=2",
                                           *point.overrides])
        # a sweep bills the whole units its layout uses (simulator.economics.fleet)
        expected = result_metrics(simulate(scenario, billing=Billing.USED), "inference")
        assert row["status"] == "ok"
        assert {k: row[k] for k in expected} == expected


def test_infeasible_points_are_rows_with_reasons():
    points = build_points([parse_axis("workload.parallelism.tp=1,3"),
                           parse_axis("workload.recompute=none,full")])
    rows = {(r["workload.parallelism.tp"], r["workload.recompute"]): r
            for r in run_sweep(_base(TRAINING), points).rows}
    assert rows[(1, "full")]["status"] == "ok"
    assert rows[(1, "none")]["status"] == "does_not_fit"
    assert "does not fit" in rows[(1, "none")]["reason"]
    assert rows[(3, "full")]["status"] == "infeasible"
    assert "tp=3" in rows[(3, "full")]["reason"]
    assert rows[(3, "full")]["step_time_s"] is None


def test_seeds_give_mean_and_interval():
    points = build_points([parse_axis("workload.arrivals.rate_per_s=8")], seeds=3, base_seed=1)
    outcome = run_sweep(_base(SERVING, SMALL_SERVING), points)
    (summary,) = outcome.summary
    values = [row["ttft_p99_s"] for row in outcome.rows]
    mean, half = mean_ci(values)
    assert summary["n"] == 3
    assert summary["ttft_p99_s_mean"] == pytest.approx(sum(values) / 3)
    sd = (sum((v - mean) ** 2 for v in values) / 2) ** 0.5
    assert summary["ttft_p99_s_ci95"] == pytest.approx(4.303 * sd / 3 ** 0.5)
    assert half == summary["ttft_p99_s_ci95"]
    assert t975(1000) == pytest.approx(1.962, abs=1e-3)


# ---- executors ----------------------------------------------------------------------------
def _layout_points():
    return build_points([parse_axis("workload.parallelism.tp=1,2,4"),
                         parse_axis("workload.recompute=selective,full")])


def _sorted_rows(rows):
    return sorted(rows, key=lambda r: r["point"])


def test_process_pool_gives_the_same_rows_as_in_process():
    base = _base(TRAINING)
    reference = run_sweep(base, _layout_points(), executor=InProcessExecutor()).rows
    with PoolExecutor(2) as pool:
        pooled = run_sweep(base, _layout_points(), executor=pool).rows
    assert pooled == reference
    assert make_executor("local", 1).name == "in-process"


def test_ray_gives_the_same_rows_as_in_process():
    pytest.importorskip("ray", reason="Ray is not installed here (pip install 'xpusim[ray]'); "
                                      "the Ray executor is checked where it installs")
    from simulator.studies.executors import RayExecutor

    base = _base(TRAINING)
    reference = run_sweep(base, _layout_points()).rows
    with RayExecutor(jobs=2) as ray_executor:
        remote = run_sweep(base, _layout_points(), executor=ray_executor).rows
    assert _sorted_rows(remote) == _sorted_rows(reference)


# ---- the table ----------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_table_round_trip_and_refusal_to_overwrite(tmp_path, suffix):
    out = tmp_path / f"rows{suffix}"
    points = _layout_points()[:2]
    first = run_sweep(_base(TRAINING), points, out=out)
    assert [r["point"] for r in read_rows(out)] == [r["point"] for r in first.rows]
    back = next(iter(read_rows(out)))
    assert back["step_time_s"] == first.rows[0]["step_time_s"]
    with pytest.raises(InputError, match="--resume"):
        run_sweep(_base(TRAINING), points, out=out)
    again = run_sweep(_base(TRAINING), points, out=out, resume=True)
    assert (again.computed, again.resumed) == (0, 2)


def test_a_partial_last_line_is_dropped(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"point": "a"}\n{"point": "b"}\n{"poi')
    assert drop_partial_line(path) == len('{"poi')
    assert path.read_text() == '{"point": "a"}\n{"point": "b"}\n'
    assert drop_partial_line(path) == 0
    path.write_text("no newline at all")
    drop_partial_line(path)
    assert path.read_text() == ""


def test_resume_refuses_a_table_of_another_sweep(tmp_path):
    out = tmp_path / "rows.csv"
    run_sweep(_base(TRAINING), _layout_points()[:1], out=out)
    other = build_points([parse_axis("workload.micro_batch_size=1,2")])
    with pytest.raises(InputError, match="columns differ"):
        run_sweep(_base(TRAINING), other, out=out, resume=True)


# ---- resume after a kill ------------------------------------------------------------------
RESUME_ARGS = ["--grid", "workload.arrivals.rate_per_s=2,4,6,8,10,12,14,16",
               "--grid", "workload.batching.max_batch_size=16,32,64,128",
               "--set", "workload.arrivals.requests=150", "--jobs", "2", "--quiet"]


def _data_lines(path: Path) -> int:
    return max(0, path.read_text().count("\n") - 1) if path.exists() else 0


def test_resume_after_a_kill_finishes_every_point_exactly_once(tmp_path):
    out = tmp_path / "sweep.csv"
    total = 32
    proc = _cli("sweep", str(SERVING), *RESUME_ARGS, "--out", str(out), start_new_session=True)
    deadline = time.monotonic() + 60
    while _data_lines(out) < 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its pool workers, no clean-up
    proc.wait()
    killed_at = _data_lines(out)
    assert 0 < killed_at < total, "the sweep should have been killed part-way"
    with open(out, "a") as handle:  # as if the kill had landed in the middle of a write
        handle.write("deadbeefdeadbeef,2,16,ok,,h100")
    resumed = _cli("sweep", str(SERVING), *RESUME_ARGS, "--out", str(out), "--resume",
                   "--format", "json")
    stdout, stderr = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, stderr
    report = json.loads(stdout)
    assert report["resumed"] == killed_at
    assert report["computed"] == total - killed_at
    rows = list(read_rows(out))
    keys = [row["point"] for row in rows]
    assert len(keys) == total and len(set(keys)) == total
    assert "deadbeefdeadbeef" not in keys
    fresh = run_sweep(_base(SERVING, ["workload.arrivals.requests=150"]),
                      build_points([parse_axis(RESUME_ARGS[1]), parse_axis(RESUME_ARGS[3])]))
    by_key = {row["point"]: row for row in rows}
    for row in fresh.rows:
        assert by_key[row["point"]]["ttft_p99_s"] == row["ttft_p99_s"]
        assert by_key[row["point"]]["status"] == row["status"]


def test_cli_sweep_prints_points_and_counts(tmp_path):
    proc = _cli("sweep", str(TRAINING), "--grid", "workload.parallelism.tp=1,3", "--jobs", "1",
                "--out", str(tmp_path / "s.jsonl"))
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "2 points (1 infeasible, 1 ok)" in stdout
    bad = _cli("sweep", str(TRAINING), "--grid", "workload.nope=1,2")
    _, stderr = bad.communicate(timeout=120)
    assert bad.returncode == 2
    assert "unknown field 'nope'" in stderr
