"""Training speed (issue 9).

    python benchmarks/bench_training.py

- one step of Llama 3.1 405B on 16,384 H100 (TP8 PP16 CP1 VPP8, 16M-token batches:
  scenarios/llama3.1-405b-h100-training.yaml): the plan (every pass priced by the cost
  models) and its SimPy simulation, <= 0.1 s;
- the whole pre-training run (``run_training``: the step, then failures, checkpoints and
  restarts over 15.6T tokens), <= 1 s;
- the step at 1,024, 16,384 and 131,072 accelerators with the same layout shape (TP8 PP16
  VPP8, 16 microbatches per pipeline: the global batch grows with the data-parallel size),
  the slowest within 1.5x of the fastest: symmetric ranks are simulated once.

Best of five runs, in one process pinned to one CPU.
"""

from __future__ import annotations

import sys
import time

from common import ROOT, machine, one_core, result

SCENARIO = ROOT / "scenarios" / "llama3.1-405b-h100-training.yaml"
TARGET_STEP_S, TARGET_RUN_S, TARGET_SCALE = 0.1, 1.0, 1.5
REPEATS = 5


def best(fn, repeats: int = REPEATS):
    """(fastest wall time, last value) of ``repeats`` calls."""
    fastest, value = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        fastest = min(fastest, time.perf_counter() - start)
    return fastest, value


def at_scale(accelerators: int):
    """The 405B scenario on ``accelerators`` with 16 microbatches per pipeline."""
    from simulator.loading import load_scenario

    dp = accelerators // (8 * 16)
    return load_scenario(SCENARIO, overrides=[f"cluster.accelerators={accelerators}",
                                              f"workload.global_batch_size={16 * dp}"])


def step(scenario):
    from simulator.engine.training.planner import build_plan
    from simulator.engine.training.step import simulate_step

    return simulate_step(build_plan(scenario).step)


def main() -> int:
    cpu = one_core()
    from simulator.engine.training import run_training
    from simulator.loading import load_scenario

    print(f"machine: {machine()}; pinned to CPU {cpu}")
    scenario = load_scenario(SCENARIO)
    seconds, outcome = best(lambda: step(scenario))
    print(f"405B step on 16,384 H100: {seconds * 1e3:.1f} ms for {outcome.events:,} SimPy "
          f"events (simulated step {outcome.step_time_s:.2f} s)")
    result("training step, 405B on 16,384 H100 (plan + simulation)", f"{seconds:.3f} s",
           f"<= {TARGET_STEP_S} s", seconds <= TARGET_STEP_S)
    seconds, r = best(lambda: run_training(scenario))
    print(f"whole run: {r.wall_time_s / 86400:.1f} days simulated with "
          f"{r.failures.sampled_interruptions} interruptions and {r.failures.checkpoints:,} "
          f"checkpoints")
    result("training run, 405B 15.6T tokens with failures and checkpoints", f"{seconds:.3f} s",
           f"<= {TARGET_RUN_S} s", seconds <= TARGET_RUN_S)
    times = {}
    for n in (1024, 16384, 131072):
        s = at_scale(n)
        times[n], outcome = best(lambda s=s: step(s))
        print(f"{n:>7,} accelerators (DP {n // 128:,}): step {times[n] * 1e3:.1f} ms, "
              f"{outcome.events:,} events")
    spread = max(times.values()) / min(times.values())
    result("training step at 1,024 / 16,384 / 131,072 accelerators, slowest / fastest",
           f"{spread:.2f}x", f"<= {TARGET_SCALE}x", spread <= TARGET_SCALE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
