"""What the benchmarks share: one-core runs, the machine's description, and result lines.

Every benchmark prints its figures as ``RESULT | figure | value | target | pass/SHORT``
lines (``run_all.py`` collects them into one table) around whatever else it explains.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# one thread for numpy's BLAS, set before numpy is imported anywhere
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def one_core() -> int:
    """Pin this process to one CPU (the last it may use); returns which."""
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[-1]})
    return cpus[-1]


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (``getrusage``: kB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def machine() -> str:
    """nproc, the CPU model (``/proc/cpuinfo``), RAM and Python, in one line."""
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
        ram = f"{kb / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        ram = "RAM unknown"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{os.cpu_count()} CPUs ({model}), {ram}, Python {platform.python_version()}, "
            f"load average {load:.2f}")


def result(figure: str, value: str, target: str, ok: bool) -> bool:
    """Print one result line; returns ``ok``."""
    print(f"RESULT | {figure} | {value} | {target} | {'pass' if ok else 'SHORT'}", flush=True)
    return ok


def bare_loop(events: int = 1_000_000) -> float:
    """Seconds per event of a SimPy process that only yields timeouts: what one event costs
    SimPy itself, and a measure of how fast the machine is running at the moment (a busy
    host slows it as it slows the engines)."""
    import simpy

    env = simpy.Environment()

    def loop():
        for _ in range(events):
            yield env.timeout(1.0)

    env.process(loop())
    start = time.perf_counter()
    env.run()
    return (time.perf_counter() - start) / events
