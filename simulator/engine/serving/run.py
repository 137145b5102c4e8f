"""Scenario -> serving run -> :class:`ServingOutcome` (the result and per-request records)."""

from __future__ import annotations

import csv
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.random  # (numpy 2 imports it lazily: load it with this module, not in a run)
import simpy

from simulator.engine.serving.arrivals import generate_workload
from simulator.engine.serving.disaggregation import KVTransfer, place
from simulator.engine.serving.iteration_cost import IterationCost
from simulator.engine.serving.kv_cache import KVCapacity, kv_capacity
from simulator.engine.serving.metrics import SERIES, ReplicaStats, RequestLog, Series
from simulator.engine.serving.replica import Replica
from simulator.engine.serving.router import make_router
from simulator.engine.serving.scheduler import Role, Scheduler
from simulator.engine.serving.summary import Fleet, summarize
from simulator.engine.serving.system import ServingSystem
from simulator.engine.stepping import collector_paused, run_counting
from simulator.errors import DoesNotFit
from simulator.perf.layouts import inference_layout
from simulator.perf.roofline import run_precision
from simulator.perf.serving_iteration import iteration_model
from simulator.profiles.inference import ArrivalProcess, InferenceParallelism, InferenceWorkload
from simulator.profiles.scenario import Scenario
from simulator.results.inference import InferenceResult


@dataclass(frozen=True)
class ServingOutcome:
    """A serving run: the summary, and one record per request (columns of equal length,
    in arrival order; see :meth:`RequestLog.records`)."""

    result: InferenceResult
    requests: dict[str, np.ndarray]
    events: int = 0  # SimPy events processed (what the engine's cost grows with)


@dataclass(frozen=True)
class _Pool:
    """Replicas of one layout and role, sharing their cost cache and cache capacity."""

    role: Role
    replicas: int
    parallelism: InferenceParallelism
    capacity: KVCapacity
    cost: IterationCost


def _pools(scenario: Scenario) -> list[_Pool]:
    w = scenario.workload
    assert isinstance(w, InferenceWorkload)
    if w.disaggregation is not None:
        d = w.disaggregation
        specs = [(Role.PREFILL, d.prefill_replicas, d.prefill_parallelism or w.parallelism),
                 (Role.DECODE, d.decode_replicas, d.decode_parallelism or w.parallelism)]
    else:
        assert w.replicas is not None
        specs = [(Role.MIXED, w.replicas, w.parallelism)]
    kv = w.kv_cache_precision
    assert kv is not None
    pools = []
    for role, count, par in specs:
        capacity = kv_capacity(scenario, par)
        if capacity.blocks < 1:
            raise DoesNotFit(f"{scenario.model.id} on {scenario.hardware.id} with tp={par.tp} "
                             f"pp={par.pp}: no room for a single KV-cache block after the "
                             f"weights, the workspace and the runtime reserve")
        model = iteration_model(scenario.model, inference_layout(par), w.precision, kv)
        pools.append(_Pool(role, count, par, capacity, IterationCost(scenario.hardware, model)))
    return pools


def _closed_loop(w: InferenceWorkload) -> tuple[int, float] | None:
    """(clients, think time) of closed-loop arrivals, else None."""
    a = w.arrivals
    if a.process is not ArrivalProcess.CLOSED:
        return None
    assert a.concurrency is not None
    return a.concurrency, a.think_time_s or 0.0


def _droppable(log: RequestLog, pools: list[_Pool], max_seq_len: int) -> np.ndarray:
    """Requests no replica could ever serve: longer than the model's context, or needing
    more KV blocks than a replica has (prompt on the first pool; the longest context,
    prompt + output - 1 tokens, on the pool that decodes)."""
    first, last = pools[0].capacity, pools[-1].capacity
    longest = log.prompt + log.output - 1
    too_long = log.prompt + log.output > max_seq_len
    return (too_long | (-(-log.prompt // first.block_tokens) > first.blocks)
            | (-(-longest // last.block_tokens) > last.blocks))


def _run(env: simpy.Environment, progress: Callable[[float, float], None] | None,
         done: Callable[[], float], total: float) -> int:
    """Run the simulation, telling ``progress`` every few thousand events how far it got.
    Returns the number of events."""
    with collector_paused():
        steps = run_counting(env, None if progress is None else lambda: progress(done(), total))
    if progress is not None:
        progress(total, total)
    return steps


def run_serving(scenario: Scenario, *, single_step: bool = False,
                progress: Callable[[float, float], None] | None = None) -> ServingOutcome:
    """Simulate a serving scenario to the last completion.

    ``single_step`` prices and waits out every decode iteration on its own instead of
    jumping through runs of them (same results, slower; for tests). ``progress(done,
    total)``, if given, hears every few thousand events how many requests have finished
    (completed or dropped) out of all that arrive.
    """
    w = scenario.workload
    if not isinstance(w, InferenceWorkload):
        raise TypeError("run_serving needs an inference scenario")
    hw = scenario.hardware
    rng = np.random.default_rng(scenario.seed)
    log = RequestLog(generate_workload(w, rng))
    pools = _pools(scenario)
    env = simpy.Environment()
    known = log.arrival[np.isfinite(log.arrival)]  # closed loop: later times are not known yet
    last = float(known[-1]) if len(known) else 0.0
    series = Series(SERIES, width_s=max(last, 1.0) / 64)
    transfer = None
    if len(pools) == 2:
        places = place([pools[0].parallelism] * pools[0].replicas
                       + [pools[1].parallelism] * pools[1].replicas)
        assert w.kv_cache_precision is not None
        transfer = KVTransfer(hw, scenario.model, w.kv_cache_precision, pools[0].parallelism,
                              pools[1].parallelism, places[:pools[0].replicas],
                              places[pools[0].replicas:])
    system = ServingSystem(env, log, series,
                           (make_router(w.router),
                            make_router(w.router) if transfer is not None else None),
                           _droppable(log, pools, scenario.model.max_seq_len), transfer,
                           _closed_loop(w))
    index = 0
    for pool, decode in zip(pools, (False, True), strict=False):
        for _ in range(pool.replicas):
            stats = ReplicaStats(index, pool.role.value, pool.parallelism.devices,
                                 pool.capacity.blocks, pool.capacity.block_tokens,
                                 w.batching.max_batch_size)
            scheduler = Scheduler(log, pool.capacity, w.batching, pool.role)
            system.add(Replica(env, scheduler, pool.cost, stats, series, system.on_outcome,
                               single_step), decode)
            index += 1
    system.start()
    everyone = system.replicas + system.decode
    events = _run(env, progress,
                  lambda: system.dropped + sum(r.stats.completed for r in everyone),
                  float(len(log)))
    replicas = system.replicas + system.decode
    for replica in replicas:
        replica.meter.flush()
        replica.stats.cost = replica.cost.totals(replica.usage)
    fleet = Fleet(scenario.cluster.accelerators, hw.peak(run_precision(hw, w.precision)),
                  hw.hbm_bandwidth)
    result = summarize(log, [r.stats for r in replicas], series, system.in_system, fleet,
                       w.slo, w.warmup_requests)
    return ServingOutcome(result, log.records(), events)


def _cell(value: object) -> str:
    if isinstance(value, float | np.floating):
        return "" if math.isnan(value) else repr(float(value))
    return str(value)


def write_requests_csv(outcome: ServingOutcome, path: str | Path) -> Path:
    """Write the per-request records as CSV, atomically (a temporary file, then a rename).

    Columns are those of ``outcome.requests``; times in seconds, empty where not reached
    (a dropped request has no first token).
    """
    path = Path(path)
    columns = list(outcome.requests)
    arrays = [outcome.requests[c] for c in columns]
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for row in zip(*(a.tolist() for a in arrays), strict=True):
                writer.writerow([_cell(v) for v in row])
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
