"""Scenario -> serving run -> :class:`ServingOutcome` (the summary and per-request records)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.random  # (numpy 2 imports it lazily: load it with this module, not in a run)
import simpy

from simulator.engine.serving.arrivals import generate_workload
from simulator.engine.serving.autoscaler import Autoscaler, startup_s
from simulator.engine.serving.cache_router import CacheAware
from simulator.engine.serving.disaggregation import KVTransfer, place
from simulator.engine.serving.metrics import SERIES, ReplicaStats, Series
from simulator.engine.serving.pool_summary import pool_summaries
from simulator.engine.serving.pools import Pool, build_pools, droppable, replica_speed
from simulator.engine.serving.prefix_cache import PrefixCache, merged
from simulator.engine.serving.prefixes import PromptPrefixes
from simulator.engine.serving.replica import Replica
from simulator.engine.serving.requests import Requests
from simulator.engine.serving.router import RoutingPolicy, make_policy
from simulator.engine.serving.scheduler import Role, Scheduler
from simulator.engine.serving.shared_training import TrainingTenant, shared_tenant
from simulator.engine.serving.shared_training_summary import summarize_tenant
from simulator.engine.serving.speculative import Speculation
from simulator.engine.serving.steady import locate, steady_window
from simulator.engine.serving.summary import Fleet, summarize
from simulator.engine.serving.system import ServingSystem
from simulator.engine.stepping import collector_paused, run_counting
from simulator.perf.footprint import inference_footprint
from simulator.profiles.inference import (
    ArrivalProcess,
    InferenceWorkload,
    Router,
    mean_tokens,
)
from simulator.profiles.scenario import Scenario
from simulator.profiles.serving_stack import Admission
from simulator.results.inference import InferenceResult, RequestRecords
from simulator.results.steady import SteadyWindow


@dataclass(frozen=True)
class ServingOutcome:
    """What a serving run returns: its summary (``result``, the JSON of ``inference``,
    ``time_s`` and ``utilization``), one record per request, the SimPy events it took
    (what the engine's cost grows with), and the figures over its steady window."""

    result: InferenceResult
    requests: RequestRecords
    events: int
    steady: SteadyWindow


def _closed_loop(w: InferenceWorkload) -> tuple[int, float] | None:
    """(clients, think time) of closed-loop arrivals, else None."""
    a = w.arrivals
    if a.process is not ArrivalProcess.CLOSED:
        return None
    assert a.concurrency is not None
    return a.concurrency, a.think_time_s or 0.0


def _run(env: simpy.Environment, progress: Callable[[float, float], None] | None,
         done: Callable[[], float], total: float) -> int:
    """Run the simulation, telling ``progress`` every few thousand events how far it got.
    Returns the number of events."""
    with collector_paused():
        events = run_counting(env, None if progress is None else lambda: progress(done(), total))
    if progress is not None:
        progress(total, total)
    return events


def _transfer(scenario: Scenario, pools: list[Pool]) -> KVTransfer | None:
    """The KV transfers between a prefill and a decode pool (disaggregated), else None."""
    if len(pools) < 2:
        return None
    prefill, decode = pools
    places = place([prefill.parallelism] * prefill.replicas
                   + [decode.parallelism] * decode.replicas)
    w = scenario.workload
    assert isinstance(w, InferenceWorkload) and w.kv_cache_precision is not None
    return KVTransfer(hw=scenario.hardware, model=scenario.model,
                      kv_precision=w.kv_cache_precision, prefill=prefill.parallelism,
                      decode=decode.parallelism, prefill_places=places[:prefill.replicas],
                      decode_places=places[prefill.replicas:])


def _prefix_caches(w: InferenceWorkload, pools: list[Pool], requests: Requests,
                   prefixes: PromptPrefixes | None) -> list[PrefixCache] | None:
    """One prefix cache per replica of the pools that prefill, with
    ``batching.prefix_caching``; else None. Without shared prompts every request is a chain
    of its own (it can still find its own blocks after a preemption)."""
    if not w.batching.prefix_caching:
        return None
    if prefixes is None:
        n = len(requests)
        prefixes = PromptPrefixes(system=np.zeros(n, dtype=np.int64),
                                  chain=np.arange(n, dtype=np.int64))
    keys = prefixes.keys(w.batching.kv_block_tokens)
    return [PrefixCache(keys=keys, block=w.batching.kv_block_tokens)
            for _ in range(_routed(pools))]


def _routed(pools: list[Pool]) -> int:
    """Replicas a request arrives at: those of the pools that prefill."""
    return sum(p.replicas for p in pools if p.role is not Role.DECODE)


def _first_router(w: InferenceWorkload, pools: list[Pool], requests: Requests,
                  caches: list[PrefixCache] | None) -> RoutingPolicy:
    """The routing policy of the replicas requests arrive at (cache-aware ones look the
    request up; least_time weighs each replica by its pool's priced speed)."""
    replicas = _routed(pools)
    if w.router is Router.CACHE_AWARE and caches is not None and replicas > 1:
        return CacheAware(caches=caches, requests=requests, balance=w.router_balance_requests)
    speeds = None
    if w.router is Router.LEAST_TIME and replicas > 1:
        speeds = [speed for p in pools if p.role is not Role.DECODE
                  for speed in [replica_speed(p, w)] * p.replicas]
    return make_policy(w.router, replicas, speeds)


def _build(env: simpy.Environment, scenario: Scenario, requests: Requests, series: Series,
           jump: bool, prefixes: PromptPrefixes | None,
           speculation: Speculation | None = None) -> tuple[ServingSystem, list[Pool]]:
    """The serving system of ``scenario`` (its replicas, routers and transfers) and its
    pools."""
    w = scenario.workload
    assert isinstance(w, InferenceWorkload)
    pools = build_pools(scenario, speculation)
    transfer = _transfer(scenario, pools)
    caches = _prefix_caches(w, pools, requests, prefixes)
    system = ServingSystem(
        env=env, requests=requests, series=series,
        routers=(_first_router(w, pools, requests, caches),
                 make_policy(w.router, pools[1].replicas) if transfer is not None else None),
        droppable=droppable(requests, pools, scenario.model.max_seq_len),
        transfer=transfer, closed=_closed_loop(w),
        sessions=(prefixes.turns, prefixes.think_time_s)
        if prefixes is not None and prefixes.turns > 1 else None)
    index = 0
    for number, pool in enumerate(pools):
        decode = pool.role is Role.DECODE
        for _ in range(pool.replicas):
            stats = ReplicaStats(index=index, role=pool.role.value, hardware=pool.hardware,
                                 pool=number,
                                 devices=pool.parallelism.devices,
                                 kv_blocks=pool.capacity.blocks,
                                 kv_block_tokens=pool.capacity.block_tokens,
                                 max_batch=pool.batching.max_batch_size)
            scheduler = Scheduler(requests=requests, capacity=pool.capacity,
                                  batching=pool.batching, role=pool.role,
                                  static=w.engine.admission.value is Admission.STATIC,
                                  reserve=w.engine.reserves_full_sequence,
                                  prefill_call=w.engine.max_prompts,
                                  speculation=speculation,
                                  prefix=caches[index] if caches and not decode else None)
            system.add(Replica(env=env, scheduler=scheduler, cost=pool.cost, stats=stats,
                               series=series, on_outcome=system.on_outcome, jump=jump),
                       decode)
            index += 1
    return system, pools


def run_serving(scenario: Scenario, *, jump: bool = True,
                progress: Callable[[float, float], None] | None = None) -> ServingOutcome:
    """Simulate a serving scenario to the last completion.

    ``jump=False`` prices and waits out every decode iteration on its own instead of
    jumping through runs of them (same results, slower; for tests). ``progress(done,
    total)``, if given, hears every few thousand events how many requests have finished
    (completed or dropped) out of all that arrive.
    """
    w = scenario.workload
    if not isinstance(w, InferenceWorkload):
        raise TypeError("run_serving needs an inference scenario")
    workload = generate_workload(w, np.random.default_rng(scenario.seed))
    requests = Requests(workload)
    env = simpy.Environment()
    known = requests.arrival_s[np.isfinite(requests.arrival_s)]  # closed loop: later unknown
    last = float(known[-1]) if len(known) else 0.0
    series = Series(SERIES, width_s=max(last, 1.0) / 64)
    speculation = (None if w.speculative is None
                   else Speculation.of(w.speculative, scenario.model, scenario.seed))
    system, pools = _build(env, scenario, requests, series, jump, workload.prefixes, speculation)
    replicas = system.replicas + system.decode

    def ended() -> int:
        """Requests that have completed or been dropped so far."""
        return system.dropped + sum(r.stats.completed for r in replicas)

    total = len(requests)
    scaler = _autoscaler(env, scenario, system, lambda: ended() >= total)
    tenant = None
    if scaler is not None:
        tenant = shared_tenant(env, scenario, scaler)
        scaler.start()
    system.start()
    events = _run(env, progress, ended, float(total))
    for replica in replicas:
        replica.meter.flush()
        replica.stats.cost = replica.cost.totals(replica.usage)
        replica.stats.host_s = replica.usage.host_s
    fleet = _fleet(scenario.cluster.accelerators, pools)
    records = requests.records()
    result, steady = _summaries(scenario, requests, records, replicas, system,
                                series=series, fleet=fleet, speculation=speculation)
    if w.pools is not None:
        summaries = pool_summaries(pools, [r.stats for r in replicas], result.time_s,
                                   [replica_speed(p, w) for p in pools])
        result = result.model_copy(update={"inference": result.inference.model_copy(
            update={"pools": summaries})})
    if scaler is not None:
        t0 = float(np.min(requests.arrival_s)) if len(requests) else 0.0
        result, steady = _scaled(scaler, tenant, result, steady, records, t0=t0, w=w,
                                 series=series)
    return ServingOutcome(result, records, events, steady)


def _scaled(scaler: Autoscaler, tenant: TrainingTenant | None, result: InferenceResult,
            steady: SteadyWindow, records: RequestRecords, *, t0: float,
            w: InferenceWorkload, series: Series) -> tuple[InferenceResult, SteadyWindow]:
    """The run's result with the autoscaled pool's figures over [t0, its end] and, with a
    training job in its troughs, the job's; the fleet's activity is then the serving
    replicas' and the job's (in the steady figures too: an autoscaled run's are the whole
    run's)."""
    m = result.inference
    scaled = scaler.metrics(records, w.slo, t0, t0 + m.duration_s, series)
    trained = None if tenant is None else summarize_tenant(
        tenant, t0=t0, t_end=t0 + m.duration_s,
        serving_max_devices=len(scaler.state) * w.parallelism.devices)
    result = result.model_copy(update={"inference": m.model_copy(
        update={"autoscaling": scaled, "shared_training": trained})})
    if trained is None:
        return result, steady
    return (result.model_copy(update={
                "utilization": trained.fleet_utilization(result.utilization)}),
            steady.model_copy(update={
                "utilization": trained.fleet_utilization(steady.utilization)}))


def _fleet(accelerators: int, pools: list[Pool]) -> Fleet:
    """The fleet's per-device peaks: one hardware's, or a mixed fleet's averaged over its
    devices, so that peak x accelerators is the sum of the pools' peaks (the utilization is
    then the work done over the fleet's peak work)."""
    if len({p.hardware for p in pools}) == 1:
        return Fleet(accelerators, pools[0].peak_flops, pools[0].hbm_bandwidth)
    devices = [p.replicas * p.parallelism.devices for p in pools]
    total = sum(devices)
    return Fleet(accelerators,
                 sum(d * p.peak_flops for d, p in zip(devices, pools, strict=True)) / total,
                 sum(d * p.hbm_bandwidth for d, p in zip(devices, pools, strict=True)) / total)


def _varying(w: InferenceWorkload) -> str | None:
    """What varies in time in the run, if anything: then it has no steady window."""
    if w.arrivals.varies_in_time:
        return "the offered load varies in time (arrivals.profile, growth or rate_trace)"
    if w.autoscaling is not None:
        return "the pool's replicas vary in time (workload.autoscaling)"
    return None


def _autoscaler(env: simpy.Environment, scenario: Scenario, system: ServingSystem,
                finished: Callable[[], bool]) -> Autoscaler | None:
    """The pool's autoscaler (``workload.autoscaling``), else None; it stops deciding once
    ``finished()``. A started replica reads its whole weights (every device's share) before
    it serves."""
    w = scenario.workload
    assert isinstance(w, InferenceWorkload)
    if w.autoscaling is None:
        return None
    par = w.parallelism
    per_device = inference_footprint(scenario, tp=par.tp, pp=par.pp,
                                     attention_dp=par.attention_dp).parts["weights"]
    return Autoscaler(env=env, system=system, policy=w.autoscaling,
                      startup_s=startup_s(w.autoscaling, per_device * par.devices),
                      finished=finished, slo=w.slo)


def _summaries(scenario: Scenario, requests: Requests, records: RequestRecords,
               replicas: list[Replica], system: ServingSystem, *, series: Series, fleet: Fleet,
               speculation: Speculation | None) -> tuple[InferenceResult, SteadyWindow]:
    """The run's summary (with what its prefix caches saved and what speculation drew) and
    its figures over the steady window."""
    w = scenario.workload
    assert isinstance(w, InferenceWorkload)
    stats = [r.stats for r in replicas]
    caches = [r.sched.prefix for r in replicas if r.sched.prefix is not None]
    result = summarize(requests, records, stats, series=series, in_system=system.in_system,
                       fleet=fleet, slo=w.slo, warmup=w.warmup_requests,
                       prefix=merged(caches) if caches else None)
    steady = steady_window(requests, records, stats, series=series,
                           window=locate(requests, series, varying=_varying(w)),
                           work=(fleet.peak_flops, fleet.hbm_bandwidth, fleet.accelerators),
                           slo=w.slo, warmup=w.warmup_requests, whole=result.inference,
                           whole_use=result.utilization)
    if speculation is not None:
        context = round(mean_tokens(w.prompt_tokens) + mean_tokens(w.output_tokens) / 2)
        metrics = speculation.metrics(replicas[-1].cost, context=context,
                                      largest=w.batching.max_batch_size)
        result = result.model_copy(update={"inference": result.inference.model_copy(
            update={"speculative": metrics})})
    return result, steady
