"""Reference pricing that only tests use: each fast path of the engine against the plain one.

- :func:`op_by_op` sums :func:`simulator.perf.roofline.serving_op_time` (``op_time`` as a
  serving engine runs each op) one op at a time, the
  definition every faster pricer must reproduce bit for bit (:func:`total_time`: its time);
- :func:`iteration_cost` and :func:`decode_run` ask an
  :class:`~simulator.engine.serving.iteration_cost.IterationCost` what the engine asks, on a
  fresh :class:`~simulator.engine.serving.usage.Usage`, and return every field of the cost.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from simulator.engine.serving.iteration_cost import IterationCost
from simulator.engine.serving.usage import Usage
from simulator.perf.ops import CommOp, ComputeOp
from simulator.perf.pricer import Cost
from simulator.perf.roofline import serving_op_time
from simulator.profiles.hardware import HardwareProfile


def op_by_op(hw: HardwareProfile, ops: list[ComputeOp | CommOp]) -> Cost:
    """The cost of ``ops`` as ``serving_op_time`` gives it, summed op by op in op order."""
    time = flops = nbytes = network = cb = mb = 0.0
    for op in ops:
        t = serving_op_time(hw, op)
        time += t.time_s
        if t.bound == "network":
            network += t.time_s
            continue
        flops += op.flops
        nbytes += op.bytes
        if t.bound == "compute":
            cb += t.time_s
        else:
            mb += t.time_s
    return Cost(time_s=time, flops=flops, hbm_bytes=nbytes, network_s=network,
                compute_bound_s=cb, memory_bound_s=mb)


def total_time(hw: HardwareProfile, ops: list[ComputeOp | CommOp]) -> float:
    """Seconds of ``ops`` one after another (no overlap: the engines decide what overlaps)."""
    return sum(serving_op_time(hw, op).time_s for op in ops)


def iteration_cost(cost: IterationCost, prefill_tokens: int, prefill_cached: int,
                   prefill_pairs: int, prefill_sequences: int, decode_batch: int,
                   decode_context: int) -> Cost:
    """The cost of one iteration mixing prompt chunks and decode steps, as the engine
    prices and counts it (its time exactly, the other fields from the end-of-run tally)."""
    usage = Usage()
    time = cost.step_time(usage, prefill_tokens, prefill_cached, prefill_pairs,
                          prefill_sequences, decode_batch, decode_context)
    return replace(cost.totals(usage), time_s=time)


@dataclass(frozen=True)
class DecodeRun:
    """``steps`` decode steps of one batch: each step's time and the run's summed cost."""

    time_s: np.ndarray
    totals: Cost


def decode_run(cost: IterationCost, batch: int, context: int, steps: int) -> DecodeRun:
    """``steps`` decode steps as the engine prices and counts them."""
    usage = Usage()
    run = cost.run_price(batch, context, steps)
    cost.use_run(usage, batch, context, run, steps, sum(run.time_s))
    return DecodeRun(np.array(run.time_s), cost.totals(usage))
