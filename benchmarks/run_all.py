"""Every speed benchmark, one after another, then one table of figures and targets.

    python benchmarks/run_all.py            # everything (about four minutes on 2 cores)
    python benchmarks/run_all.py --quick    # serving up to 10^5 requests, no Ray

Each benchmark runs in its own process (so each has its own peak RSS and nothing warms up
for another) and prints ``RESULT | figure | value | target | pass/SHORT`` lines, collected
here. ``bench_sweep.py`` (sweep speed) is included when present; its verdict lines are
collected as they are. The exit status is 0 whatever the verdicts: this reports, it does not
gate (the CI guard is tests/test_engine_event_counts.py, which counts events, not seconds).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import machine  # noqa: E402


def commands(quick: bool) -> list[list[str]]:
    """The benchmark scripts to run, with their arguments (``quick``: the smaller sizes)."""
    serving = ["bench_serving.py"] + (["--sizes", "10000,100000"] if quick else [])
    out = [serving, ["bench_single_replica.py"], ["bench_training.py"], ["bench_calibrate.py"]]
    if (HERE / "bench_sweep.py").exists():
        out.append(["bench_sweep.py"] + (["--no-ray"] if quick else []))
    out.append(["bench_plan.py"])
    out.append(["bench_roadmap.py"])
    return out


def _verdict_line(line: str) -> list[str] | None:
    """A result row from a line: ours, or a sweep line ending in 'target ...: pass|SHORT'."""
    if line.startswith("RESULT |"):
        return [part.strip() for part in line.split("|")[1:]]
    if "target" in line and line.rstrip().endswith(("pass", "SHORT")):
        head, _, tail = line.partition("target")
        target, _, verdict = tail.rpartition(":")
        return [head.split(":")[0].strip(), head.partition(":")[2].strip().rstrip(";"),
                ("target" + target).strip(), verdict.strip()]
    return None


def main(argv: list[str] | None = None) -> int:
    """Run every benchmark in its own process and print their figures as one table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}")
    rows: list[list[str]] = []
    for cmd in commands(args.quick):
        print(f"\n$ python benchmarks/{' '.join(cmd)}", flush=True)
        proc = subprocess.run([sys.executable, str(HERE / cmd[0]), *cmd[1:]], cwd=HERE.parent,
                              capture_output=True, text=True)
        sys.stdout.write(proc.stdout)
        if proc.returncode:
            sys.stdout.write(proc.stderr)
            rows.append([cmd[0], f"failed (exit {proc.returncode})", "", "SHORT"])
        rows += [row for row in map(_verdict_line, proc.stdout.splitlines()) if row]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print("\n" + " | ".join(h.ljust(w) for h, w in zip(("figure", "value", "target", "verdict"),
                                                         widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
