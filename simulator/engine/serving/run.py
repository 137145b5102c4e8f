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
from simulator.engine.serving.dp_cost import DataParallelCost
from simulator.engine.serving.dp_ranks import replica_batching
from simulator.engine.serving.iteration_cost import IterationCost
from simulator.engine.serving.kv_cache import KVCapacity, ceil_div, kv_capacity
from simulator.engine.serving.metrics import SERIES, ReplicaStats, Series
from simulator.engine.serving.prefix_cache import PrefixCache, merged
from simulator.engine.serving.prefixes import PromptPrefixes
from simulator.engine.serving.replica import Replica
from simulator.engine.serving.requests import Requests
from simulator.engine.serving.router import RoutingPolicy, make_policy
from simulator.engine.serving.scheduler import Role, Scheduler
from simulator.engine.serving.speculative import Speculation, SpeculativeCost
from simulator.engine.serving.stack_cost import StackCost
from simulator.engine.serving.steady import locate, steady_window
from simulator.engine.serving.summary import Fleet, summarize
from simulator.engine.serving.system import ServingSystem
from simulator.engine.stepping import collector_paused, run_counting
from simulator.errors import DoesNotFit
from simulator.perf.footprint import inference_footprint
from simulator.perf.layouts import inference_layout
from simulator.perf.moe_balance import moe_imbalance
from simulator.perf.roofline import run_precision
from simulator.perf.serving_iteration import iteration_model
from simulator.profiles.inference import (
    ArrivalProcess,
    Batching,
    InferenceParallelism,
    InferenceWorkload,
    Router,
    mean_tokens,
)
from simulator.profiles.moe_routing import LoadBalancer
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


@dataclass(frozen=True, kw_only=True)
class _Pool:
    """Replicas of one layout and role, sharing their cost cache and cache capacity."""

    role: Role
    replicas: int
    parallelism: InferenceParallelism
    capacity: KVCapacity
    cost: IterationCost
    batching: Batching  # the scheduler's limits (summed over attention DP ranks)


def _pools(scenario: Scenario, speculation: Speculation | None = None) -> list[_Pool]:
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
        imbalance = moe_imbalance(w.moe, scenario.model, par.ep, LoadBalancer.NONE)
        model = iteration_model(scenario.model, inference_layout(par, w.moe), w.precision, kv,
                                imbalance, activation_quant=w.engine.activation_quant,
                                slots=expert_slots(scenario, par))
        stack = StackCost.of(w.engine, kernels=model.kernels(),
                             max_batch=w.batching.max_batch_size)
        if par.attention_dp > 1:  # (speculation is refused with attention DP)
            cost: IterationCost = DataParallelCost(scenario.hardware, model, stack)
        else:
            cost = IterationCost(scenario.hardware, model, stack, speculation=None if (
                speculation is None) else SpeculativeCost(scenario.hardware, model,
                                                          speculation.spec))
            cost.rate = None if speculation is None else speculation.rate
        pools.append(_Pool(role=role, replicas=count, parallelism=par, capacity=capacity,
                           cost=cost,
                           batching=replica_batching(w.batching, par.attention_dp)))
    return pools


def expert_slots(scenario: Scenario, par: InferenceParallelism) -> int:
    """Expert slots of an attention-DP replica (experts + redundant); 0 otherwise."""
    w, moe = scenario.workload, scenario.model.moe
    assert isinstance(w, InferenceWorkload)
    if moe is None or par.attention_dp == 1:
        return 0
    return moe.experts + w.moe.redundant_experts


def _closed_loop(w: InferenceWorkload) -> tuple[int, float] | None:
    """(clients, think time) of closed-loop arrivals, else None."""
    a = w.arrivals
    if a.process is not ArrivalProcess.CLOSED:
        return None
    assert a.concurrency is not None
    return a.concurrency, a.think_time_s or 0.0


def _droppable(requests: Requests, pools: list[_Pool], max_seq_len: int) -> np.ndarray:
    """Requests no replica could ever serve: longer than the model's context, or needing
    more KV blocks than a replica (an attention DP rank: a request lives on one) has (prompt
    on the first pool; the longest context, prompt + output - 1 tokens, on the pool that
    decodes)."""
    first, last = pools[0].capacity, pools[-1].capacity
    first_blocks = first.blocks // pools[0].parallelism.attention_dp
    last_blocks = last.blocks // pools[-1].parallelism.attention_dp
    prompt, output = requests.prompt_tokens, requests.output_tokens
    too_long = prompt + output > max_seq_len
    return (too_long | (ceil_div(prompt, first.block_tokens) > first_blocks)
            | (ceil_div(prompt + output - 1, last.block_tokens) > last_blocks))


def _run(env: simpy.Environment, progress: Callable[[float, float], None] | None,
         done: Callable[[], float], total: float) -> int:
    """Run the simulation, telling ``progress`` every few thousand events how far it got.
    Returns the number of events."""
    with collector_paused():
        events = run_counting(env, None if progress is None else lambda: progress(done(), total))
    if progress is not None:
        progress(total, total)
    return events


def _transfer(scenario: Scenario, pools: list[_Pool]) -> KVTransfer | None:
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


def _prefix_caches(w: InferenceWorkload, pools: list[_Pool], requests: Requests,
                   prefixes: PromptPrefixes | None) -> list[PrefixCache] | None:
    """One prefix cache per replica of the first pool (the one that prefills), with
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
            for _ in range(pools[0].replicas)]


def _first_router(w: InferenceWorkload, replicas: int, requests: Requests,
                  caches: list[PrefixCache] | None) -> RoutingPolicy:
    """The first pool's routing policy (cache-aware ones look the request up)."""
    if w.router is Router.CACHE_AWARE and caches is not None and replicas > 1:
        return CacheAware(caches=caches, requests=requests, balance=w.router_balance_requests)
    return make_policy(w.router, replicas)


def _build(env: simpy.Environment, scenario: Scenario, requests: Requests, series: Series,
           jump: bool, prefixes: PromptPrefixes | None,
           speculation: Speculation | None = None) -> ServingSystem:
    """The serving system of ``scenario``: its pools of replicas, routers and transfers."""
    w = scenario.workload
    assert isinstance(w, InferenceWorkload)
    pools = _pools(scenario, speculation)
    transfer = _transfer(scenario, pools)
    caches = _prefix_caches(w, pools, requests, prefixes)
    system = ServingSystem(
        env=env, requests=requests, series=series,
        routers=(_first_router(w, pools[0].replicas, requests, caches),
                 make_policy(w.router, pools[1].replicas) if transfer is not None else None),
        droppable=_droppable(requests, pools, scenario.model.max_seq_len),
        transfer=transfer, closed=_closed_loop(w),
        sessions=(prefixes.turns, prefixes.think_time_s)
        if prefixes is not None and prefixes.turns > 1 else None)
    index = 0
    for pool, decode in zip(pools, (False, True), strict=False):
        for _ in range(pool.replicas):
            stats = ReplicaStats(index=index, role=pool.role.value,
                                 devices=pool.parallelism.devices,
                                 kv_blocks=pool.capacity.blocks,
                                 kv_block_tokens=pool.capacity.block_tokens,
                                 max_batch=pool.batching.max_batch_size)
            scheduler = Scheduler(requests=requests, capacity=pool.capacity,
                                  batching=pool.batching, role=pool.role,
                                  static=w.engine.admission.value is Admission.STATIC,
                                  speculation=speculation,
                                  prefix=caches[index] if caches and not decode else None)
            system.add(Replica(env=env, scheduler=scheduler, cost=pool.cost, stats=stats,
                               series=series, on_outcome=system.on_outcome, jump=jump),
                       decode)
            index += 1
    return system


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
    hw = scenario.hardware
    workload = generate_workload(w, np.random.default_rng(scenario.seed))
    requests = Requests(workload)
    env = simpy.Environment()
    known = requests.arrival_s[np.isfinite(requests.arrival_s)]  # closed loop: later unknown
    last = float(known[-1]) if len(known) else 0.0
    series = Series(SERIES, width_s=max(last, 1.0) / 64)
    speculation = (None if w.speculative is None
                   else Speculation.of(w.speculative, scenario.model, scenario.seed))
    system = _build(env, scenario, requests, series, jump, workload.prefixes, speculation)
    scaler = _autoscaler(env, scenario, system, len(requests))
    if scaler is not None:
        scaler.start()
    system.start()
    replicas = system.replicas + system.decode
    events = _run(env, progress,
                  lambda: system.dropped + sum(r.stats.completed for r in replicas),
                  float(len(requests)))
    for replica in replicas:
        replica.meter.flush()
        replica.stats.cost = replica.cost.totals(replica.usage)
        replica.stats.host_s = replica.usage.host_s
    fleet = Fleet(scenario.cluster.accelerators, hw.peak(run_precision(hw, w.precision)),
                  hw.hbm_bandwidth)
    records = requests.records()
    result, steady = _summaries(scenario, requests, records, replicas, system,
                                series=series, fleet=fleet, speculation=speculation)
    if scaler is not None:
        m = result.inference
        t0 = float(np.min(requests.arrival_s)) if len(requests) else 0.0
        scaled = scaler.metrics(records, w.slo, t0, t0 + m.duration_s)
        result = result.model_copy(update={"inference": m.model_copy(
            update={"autoscaling": scaled})})
    return ServingOutcome(result, records, events, steady)


def _varying(w: InferenceWorkload) -> str | None:
    """What varies in time in the run, if anything: then it has no steady window."""
    if w.arrivals.varies_in_time:
        return "the offered load varies in time (arrivals.profile, growth or rate_trace)"
    if w.autoscaling is not None:
        return "the pool's replicas vary in time (workload.autoscaling)"
    return None


def _autoscaler(env: simpy.Environment, scenario: Scenario, system: ServingSystem,
                total: int) -> Autoscaler | None:
    """The pool's autoscaler (``workload.autoscaling``), else None. A started replica
    reads its whole weights (every device's share) before it serves."""
    w = scenario.workload
    assert isinstance(w, InferenceWorkload)
    if w.autoscaling is None:
        return None
    par = w.parallelism
    per_device = inference_footprint(scenario, tp=par.tp, pp=par.pp,
                                     attention_dp=par.attention_dp).parts["weights"]
    replicas = system.replicas

    def finished() -> bool:
        """Whether every request has completed or been dropped."""
        return system.dropped + sum(r.stats.completed for r in replicas) >= total

    return Autoscaler(env=env, system=system, policy=w.autoscaling,
                      startup_s=startup_s(w.autoscaling, per_device * par.devices),
                      finished=finished)


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
