"""Training plan speed (issue 17 item 6): the fastest layout for Llama 3.1 405B on 16,384 H100
(scenarios/llama3.1-405b-h100-training.yaml) in <= 10 s on one core, the same as

    xpusim plan scenarios/llama3.1-405b-h100-training.yaml --jobs 1

The plan crosses TP, PP, vpp, end-stage splits, micro-batch, recompute and ZeRO (about 1,200
layouts), prunes by arithmetic, the scenario's checks, memory and dominance, and simulates at
most 16 by its analytic estimate plus the scenario's own layout. ``--exhaustive`` also times
the plan that simulates every layout that fits and checks that it finds the same winner
(about 40 s). This is a benchmark, not a test: it is not collected by pytest.
"""

from __future__ import annotations

import argparse
import time

from common import ROOT, machine, one_core, result

from simulator.studies.executors import InProcessExecutor
from simulator.studies.plan_training import plan_training
from simulator.studies.rows import Base

SCENARIO = ROOT / "scenarios" / "llama3.1-405b-h100-training.yaml"
TARGET_S = 10.0
KEYS = ("tp", "pp", "vpp", "first_stage_layers", "last_stage_layers", "micro_batch_size",
        "recompute", "zero")


def timed_plan(exhaustive: bool) -> tuple[float, object]:
    """Wall seconds of the 405B plan in this process, and the plan."""
    base = Base.from_file(SCENARIO)
    start = time.perf_counter()
    plan = plan_training(base, exhaustive=exhaustive, executor=InProcessExecutor())
    return time.perf_counter() - start, plan


def main(argv: list[str] | None = None) -> int:
    """Time the bounded plan (and, with ``--exhaustive``, the exhaustive one)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exhaustive", action="store_true",
                        help="also time the exhaustive plan and compare the winners")
    args = parser.parse_args(argv)
    cpu = one_core()
    print(f"machine: {machine()}; pinned to CPU {cpu}")
    seconds, plan = timed_plan(False)
    for note in plan.notes:
        print(f"  note: {note}")
    winner = {k: plan.winner[k] for k in KEYS} if plan.winner else None
    print(f"  winner: {winner}")
    result("training plan, 405B on 16,384 H100, one core", f"{seconds:.2f} s "
           f"({plan.simulations} simulated)", f"<= {TARGET_S:g} s", seconds <= TARGET_S)
    if args.exhaustive:
        full_s, full = timed_plan(True)
        same = full.winner is not None and winner == {k: full.winner[k] for k in KEYS}
        print(f"  exhaustive: {full_s:.1f} s, {full.simulations} simulated, "
              f"same winner: {same}")
        result("training plan, bounded winner = exhaustive winner", str(same), "True", same)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
