"""Sweep speed (issue 9): 1,000 training layouts in <= 60 s with --jobs 2, and the Ray
executor within 1.5x of the local process pool on the same machine.

    python benchmarks/bench_sweep.py            # both figures (Ray skipped if not installed)
    python benchmarks/bench_sweep.py --no-ray   # the local pool only

The 1,000 points are Llama 3.1 70B pre-training layouts on H100 (the scenario
scenarios/llama3.1-70b-h100-training.yaml): 5 cluster sizes x 4 TP x 5 PP x 2 micro-batch
sizes x 5 (recompute, ZeRO) pairs, the same as

    xpusim sweep scenarios/llama3.1-70b-h100-training.yaml \\
      --grid cluster.accelerators=64,128,256,512,1024 --grid workload.parallelism.tp=1,2,4,8 \\
      --grid workload.parallelism.pp=1,2,4,8,16 --grid workload.micro_batch_size=1,2 \\
      --zip workload.recompute=none,selective,full,selective,full \\
      --zip workload.parallelism.zero=1,1,1,3,3 --jobs 2 --out layouts.csv

Points that do not fit or do not divide are rows too (they cost a validation, not a
simulation); the output says how many of each. Times are wall clock, end to end: worker
start-up (and Ray's start for the Ray figure, also shown without it), every point, and the
fsync of each row into the table. This is a benchmark, not a test: it is not collected by
pytest.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulator.studies.executors import InProcessExecutor, PoolExecutor  # noqa: E402
from simulator.studies.grid import build_points, parse_axis  # noqa: E402
from simulator.studies.rows import Base  # noqa: E402
from simulator.studies.sweep import run_sweep  # noqa: E402

SCENARIO = ROOT / "scenarios" / "llama3.1-70b-h100-training.yaml"
GRID = ["cluster.accelerators=64,128,256,512,1024", "workload.parallelism.tp=1,2,4,8",
        "workload.parallelism.pp=1,2,4,8,16", "workload.micro_batch_size=1,2"]
ZIP = ["workload.recompute=none,selective,full,selective,full",
       "workload.parallelism.zero=1,1,1,3,3"]
TARGET_S = 60.0
TARGET_RAY_RATIO = 1.5


def _points(limit: int | None):
    points = build_points([parse_axis(g) for g in GRID], [parse_axis(z, "--zip") for z in ZIP])
    return points[:limit] if limit else points


def _timed_sweep(base: Base, points, executor, out: Path) -> tuple[float, list[dict]]:
    start = time.perf_counter()
    outcome = run_sweep(base, points, out=out, executor=executor)
    return time.perf_counter() - start, outcome.rows


def _spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def parallel_speedup(jobs: int, n: int = 5_000_000) -> float:
    """How much faster this machine runs ``jobs`` CPU-bound processes than one doing the same
    work in turn (a 2-core VM with busy neighbours may give well under 2x)."""
    from concurrent.futures import ProcessPoolExecutor

    start = time.perf_counter()
    for _ in range(jobs):
        _spin(n)
    serial = time.perf_counter() - start
    with ProcessPoolExecutor(jobs) as pool:
        list(pool.map(_spin, [n] * jobs))  # start the workers first
        start = time.perf_counter()
        list(pool.map(_spin, [n] * jobs))
        parallel = time.perf_counter() - start
    return serial / parallel


def _verdict(ok: bool) -> str:
    return "pass" if ok else "SHORT"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--points", type=int, default=None, help="only the first N points")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray figure")
    parser.add_argument("--serial", action="store_true",
                        help="also time the points in this process, one after another")
    args = parser.parse_args(argv)

    base = Base.from_file(SCENARIO)
    points = _points(args.points)
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; {len(points)} points, --jobs {args.jobs}")
    print(f"this machine runs {args.jobs} CPU-bound processes at "
          f"{parallel_speedup(args.jobs):.2f}x the speed of one (ideal: {args.jobs}x)")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        with PoolExecutor(args.jobs) as pool:
            pool_s, rows = _timed_sweep(base, points, pool, Path(tmp) / "pool.csv")
        pool_total = time.perf_counter() - start
        if args.serial:
            serial_s, _ = _timed_sweep(base, points, InProcessExecutor(), Path(tmp) / "s.csv")
            print(f"in-process, one point after another: {serial_s:.1f} s "
                  f"(pool speed-up {serial_s / pool_s:.2f}x)")
        status = Counter(row["status"] for row in rows)
        per_point = pool_s / len(points)
        print(f"statuses: {dict(sorted(status.items()))}")
        target = TARGET_S * len(points) / 1000
        print(f"local pool: {len(points)} layouts in {pool_s:.1f} s ({per_point * 1e3:.1f} ms "
              f"per point, {pool_total:.1f} s with pool shutdown); target <= {target:.0f} s: "
              f"{_verdict(pool_s <= target)}")
        if args.no_ray:
            return 0
        try:
            import ray  # noqa: F401
        except ImportError:
            print("ray: not installed (pip install 'xpusim[ray]'); Ray figure skipped")
            return 0
        from simulator.studies.executors import RayExecutor

        start = time.perf_counter()
        with RayExecutor(args.jobs) as ray_executor:
            started = time.perf_counter() - start
            ray_s, ray_rows = _timed_sweep(base, points, ray_executor, Path(tmp) / "ray.csv")
        ray_total = ray_s + started
        same = sorted(ray_rows, key=lambda r: r["point"]) == sorted(rows, key=lambda r: r["point"])
        print(f"ray: {ray_total:.1f} s including {started:.1f} s to start Ray, {ray_s:.1f} s "
              f"for the points; rows identical to the pool's: {same}")
        ratio = ray_total / pool_s
        print(f"ray / local pool: {ratio:.2f}x end to end ({ray_s / pool_s:.2f}x without Ray's "
              f"start); target <= {TARGET_RAY_RATIO}x: {_verdict(ratio <= TARGET_RAY_RATIO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
