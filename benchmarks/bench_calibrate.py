"""Calibration speed (issue 19): a calibrated profile from five measured runs in under a
minute on one core.

    python benchmarks/bench_calibrate.py

The five runs are the worked example of docs/calibration.md (NIM's published Llama 3.3 70B
table on 2 x H100 at concurrencies 1-100: 15 figures), calibrated as a user would:

    xpusim calibrate scenarios/calibration/nim-llama3.3-70b-2xh100-measurements.yaml --jobs 1

The wall time is end to end: reading the runs, screening every parameter, the fit, and
writing the profile. This is a benchmark, not a test: it is not collected by pytest.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, machine, one_core, result

MEASUREMENTS = ROOT / "scenarios" / "calibration" / "nim-llama3.3-70b-2xh100-measurements.yaml"
TARGET_S = 60.0


def main() -> int:
    """Time one calibration of the worked example on one core."""
    from simulator.calibration.calibrate import calibrate
    from simulator.calibration.forward import build
    from simulator.calibration.measurements import load_measurements
    from simulator.calibration.profile_out import write_outputs
    from simulator.studies.executors import InProcessExecutor

    cpu = one_core()
    print(f"machine: {machine()}; pinned to CPU {cpu}")
    start = time.perf_counter()
    spec, runs = load_measurements(MEASUREMENTS)
    forward = build(runs, spec.hardware, MEASUREMENTS.parent)
    fitted = calibrate(forward, noise=spec.noise, executor=InProcessExecutor())
    with tempfile.TemporaryDirectory() as tmp:
        write_outputs(fitted, forward, Path(tmp) / "out.yaml", new_id="bench-calibrated",
                      command="bench", measurements_file=MEASUREMENTS)
    wall = time.perf_counter() - start
    summary = fitted.summary("left_out")
    print(f"{len(runs)} runs, {len(fitted.figures)} figures, {fitted.iterations} iterations; "
          f"median |error| left out {summary['median'] * 100:.1f}%")
    ok = result("calibrate, 5 runs, one core, wall", f"{wall:.1f} s", f"<= {TARGET_S:.0f} s",
                wall <= TARGET_S)
    return 0 if ok or os.environ.get("BENCH_NO_FAIL") else 1


if __name__ == "__main__":
    sys.exit(main())
