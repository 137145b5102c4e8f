"""Scenario -> Result: choose the engine by workload kind, then price the run.

The engines (``simulator.engine.training``, ``simulator.engine.serving``) say how long it
took and how busy the devices were; economics turns that into energy and money.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from simulator.confidence import confidence_of
from simulator.economics.bin_cost import idle_energy_share, spread_cost
from simulator.economics.cost import billed_cost, cost_per_million_tokens, price_warnings
from simulator.economics.fleet import Billing, fleet_of, fleet_warnings
from simulator.economics.pool_cost import PoolsCost, pools_cost, pools_warnings
from simulator.economics.power import power_model
from simulator.errors import DoesNotFit
from simulator.perf.footprint import scenario_footprint
from simulator.perf.model_flops import model_flops_per_token
from simulator.perf.mtp_training import trained_mtp_layers
from simulator.profiles.cost import CostMode
from simulator.profiles.inference import ArrivalProcess, InferenceWorkload
from simulator.profiles.scenario import Scenario
from simulator.profiles.training import TrainingWorkload
from simulator.results import MemoryReport, PeakReport, Result
from simulator.results.inference import InferenceMetrics, InferenceResult
from simulator.results.pools import PoolSummary
from simulator.results.result import CostSummary
from simulator.results.steady import SteadyState, SteadyWindow
from simulator.results.utilization import Utilization


def memory_report(scenario: Scenario) -> MemoryReport:
    """The memory verdict of the scenario's most loaded device, by consumer (a mixed
    fleet's: the device of the pool that fills the largest share of its memory, or the
    first that does not fit, named in the notes)."""
    parts = scenario.pools()
    if len(parts) > 1:
        reports = [(memory_report(p), p) for p in parts]
        report, part = min(reports, key=lambda r: (r[0].fits,
                                                   -r[0].total_bytes / r[0].capacity_bytes))
        return report.model_copy(update={"notes": [
            f"the tightest pool: {part.hardware.id}", *report.notes]})
    fp = scenario_footprint(scenario)
    return MemoryReport(parts_bytes=dict(fp.parts), total_bytes=fp.total,
                        capacity_bytes=fp.capacity, fits=fp.fits, biggest=fp.biggest,
                        verdict=fp.verdict(), notes=list(fp.notes))


def peak_report(scenario: Scenario) -> PeakReport:
    """The fleet's peak figures at the workload's precision (no efficiency applied); a
    mixed fleet's per-device figures are its pools' averaged over its devices."""
    w = scenario.workload
    n, parts = scenario.cluster.accelerators, scenario.pools()
    if len(parts) == 1:
        per_device, hbm = scenario.hardware.peak(w.precision), scenario.hardware.hbm_bandwidth
        cluster = per_device * n
    else:
        cluster = sum(p.hardware.peak(w.precision) * p.cluster.accelerators for p in parts)
        per_device = cluster / n
        hbm = sum(p.hardware.hbm_bandwidth * p.cluster.accelerators for p in parts) / n
    flops_per_token = _peak_flops_per_token(scenario)
    return PeakReport(flops_per_accelerator=per_device, flops_cluster=cluster,
                      hbm_bandwidth_per_accelerator=hbm, model_flops_per_token=flops_per_token,
                      ideal_tokens_per_s=cluster / flops_per_token)


def _peak_flops_per_token(scenario: Scenario) -> float:
    """Model FLOPs of one token: training's are the MFU numerator's (the attention scores
    and any trained multi-token-prediction modules counted, the input embedding's lookup
    not), so ``ideal_tokens_per_s x mfu`` is the run's tokens/s; serving's 2·N_active per
    generated token."""
    model, w = scenario.model, scenario.workload
    if not isinstance(w, TrainingWorkload):
        return 2.0 * model.params_active
    return model_flops_per_token(model, w.seq_len, trained_mtp_layers(model, w))


Progress = Callable[[float, float], None]


def simulate(scenario: Scenario, *, require_fit: bool = True,
             progress: Progress | None = None, billing: Billing = Billing.FLEET) -> Result:
    """Run ``scenario``. Raises :class:`DoesNotFit` when the model does not fit memory.

    ``progress(done, total)``, if given, is called now and then while the engine runs
    (training: seconds of training done of the run's total; serving: requests finished of
    those that arrive); it must be cheap (e.g. :mod:`simulator.report.progress`).
    ``billing`` says which accelerators are paid for (:mod:`simulator.economics.fleet`):
    the declared fleet (``run``) or the whole units the layout uses (the studies).
    """
    memory = memory_report(scenario)
    if require_fit and not memory.fits:
        raise DoesNotFit(f"{scenario.model.id} on {scenario.hardware.id}: {memory.verdict}")
    if isinstance(scenario.workload, TrainingWorkload):
        return _training(scenario, memory, progress, billing)
    return _inference(scenario, memory, progress, billing)


def estimate_step_times(scenarios: Sequence[Scenario]) -> list[float]:
    """Training scenarios' step times from their priced plans by formula, without
    simulating (:mod:`simulator.engine.training.estimate`): what ``plan`` ranks layouts by
    before it simulates the most promising. Neighbours that differ only in their pipeline
    split share the pricing of their chunks."""
    from simulator.engine.training.estimate import estimate_step_times as estimate

    return estimate(scenarios)


def _training(scenario: Scenario, memory: MemoryReport, progress: Progress | None,
              billing: Billing) -> Result:
    from simulator.engine.training import run_training

    run = run_training(scenario, progress=progress)
    w = scenario.workload
    assert isinstance(w, TrainingWorkload)
    # Restarts leave the fleet idle; the rest of the wall time runs steps as the engine saw.
    working = 1.0 - min(1.0, run.failures.restart_hours * 3600 / run.wall_time_s) \
        if run.wall_time_s else 0.0
    util = run.utilization.scaled(working)
    tokens = float(run.steps * w.tokens_per_step)
    return _priced(scenario, memory, run.wall_time_s, util, tokens, tokens, 0.0,
                   billing=billing, training=run)


def _inference(scenario: Scenario, memory: MemoryReport, progress: Progress | None,
               billing: Billing) -> Result:
    from simulator.engine.serving import run_serving

    outcome = run_serving(scenario, progress=progress)
    metrics = outcome.result.inference
    util = outcome.result.utilization
    output = metrics.output_tokens_per_s * metrics.duration_s
    total = metrics.total_tokens_per_s * metrics.duration_s
    prompt = total - output
    running = _running_share(scenario, metrics)
    steady = steady_state(scenario, outcome.steady, billing, outcome.result, running)
    result = _priced(scenario, memory, outcome.result.time_s, util, prompt + output, output,
                     prompt, billing=billing, running=running, inference=metrics,
                     requests=outcome.requests, steady=steady)
    if metrics.shared_training is not None:
        result = _shared_cost(scenario, result, prompt, output)
    result = _priced_bins(scenario, result)
    if steady.found:
        return result
    w = scenario.workload
    assert isinstance(w, InferenceWorkload)
    if (w.arrivals.process is ArrivalProcess.OFFLINE or w.arrivals.varies_in_time
            or w.autoscaling is not None):
        # a batch, or a load or pool that varies in time: the whole run is the figure
        return result.model_copy(update={"notes": [*result.notes, steady.basis]})
    return result.model_copy(update={"warnings": [
        *result.warnings, f"{steady.basis} (simulate more requests for steady figures)"]})


def _priced_bins(scenario: Scenario, result: Result) -> Result:
    """An autoscaled run's time bins with the run's cost spread over them
    (:mod:`~simulator.economics.bin_cost`) and their cost per million tokens. With a
    training job in the troughs only serving's share of the fleet's cost is spread: the
    job's share buys training, not tokens served."""
    m = result.inference
    if m is None or m.autoscaling is None or not m.autoscaling.bins:
        return result
    bins = m.autoscaling.bins
    breakdown = result.cost.breakdown_usd
    shared = m.shared_training
    if shared is not None and shared.serving_cost_usd is not None and result.cost_usd > 0:
        share = shared.serving_cost_usd / result.cost_usd
        breakdown = {k: v * share for k, v in breakdown.items()}
    idle = idle_energy_share(power_model(scenario.hardware, scenario.cost.pue),
                             devices=result.cost.billed_accelerators, time_s=result.time_s,
                             energy_kwh=result.energy_kwh)
    costs = spread_cost(breakdown,
                        durations=np.array([b.end_s - b.start_s for b in bins]),
                        replica_seconds=np.array([b.replica_seconds for b in bins]),
                        busy_s=np.array([b.device_busy_s for b in bins]), idle_share=idle)
    weight = scenario.cost.input_token_weight
    priced = []
    for b, usd in zip(bins, costs.tolist(), strict=True):
        per = cost_per_million_tokens(usd, b.prompt_tokens, b.output_tokens, weight)
        priced.append(b.model_copy(update={"cost_usd": usd, "usd_per_million_tokens":
                                           per if math.isfinite(per) else None}))
    scaled = m.autoscaling.model_copy(update={"bins": priced})
    return result.model_copy(update={"inference": m.model_copy(update={"autoscaling": scaled})})


def _shared_cost(scenario: Scenario, result: Result, prompt: float, output: float) -> Result:
    """The fleet's cost (paid once) split between serving and the training job in its
    troughs by accelerator-seconds, and each tenant's cost per million tokens."""
    m = result.inference
    assert m is not None and m.shared_training is not None
    split = m.shared_training.priced(result.cost_usd)
    assert split.serving_cost_usd is not None and split.training_cost_usd is not None
    split = split.model_copy(update={
        "serving_cost_per_million_tokens_usd": cost_per_million_tokens(
            split.serving_cost_usd, prompt, output, scenario.cost.input_token_weight),
        "training_cost_per_million_tokens_usd": cost_per_million_tokens(
            split.training_cost_usd, 0.0, split.tokens) if split.tokens else None})
    return result.model_copy(update={"inference": m.model_copy(
        update={"shared_training": split})})


def steady_state(scenario: Scenario, window: SteadyWindow, billing: Billing,
                 whole: InferenceResult, running: float) -> SteadyState:
    """The steady window priced like a run of its own: the billed fleet's energy is the
    integral of its power over the window (power is linear in the window's busy and HBM
    fractions, so their averages give the integral exactly), its cost the cost block over the
    window. A mixed fleet's pools (in the ``whole`` run's result) are priced each on its
    hardware, at its run fractions scaled by the window's fleet fractions over the run's
    (the window is measured for the fleet, not per pool). ``running``: the share of the
    fleet an autoscaled, rented pool ran (its window is the whole run)."""
    t, use = window.duration_s, window.utilization
    if whole.inference.pools:
        run = whole.utilization
        cost = pools_cost(scenario, whole.inference.pools, t, billing, scale=(
            use.busy / run.busy if run.busy else 0.0,
            use.memory_bandwidth / run.memory_bandwidth if run.memory_bandwidth else 0.0)).total
    else:
        cost = billed_cost(scenario.hardware, scenario.cost,
                           billed=fleet_of(scenario, billing).billed * running,
                           used=scenario.cluster.accelerators, time_s=t, busy=use.busy,
                           memory_bandwidth=use.memory_bandwidth)
    tokens = window.prompt_tokens + window.output_tokens
    return SteadyState(
        **dict(window), energy_kwh=cost.energy_kwh, average_power_w=cost.average_power_w,
        cost_usd=cost.cost_usd, usd_per_hour=cost.cost_usd / (t / 3600) if t > 0 else 0.0,
        carbon_kg=cost.carbon_kg,
        cost_per_million_tokens_usd=cost_per_million_tokens(
            cost.cost_usd, window.prompt_tokens, window.output_tokens,
            scenario.cost.input_token_weight),
        tokens_per_kwh=tokens / cost.energy_kwh if cost.energy_kwh else 0.0)


def priced_pools(pools: list[PoolSummary], cost: PoolsCost) -> list[PoolSummary]:
    """The pool summaries with their billed accelerators, cost and energy filled in."""
    return [p.model_copy(update={"billed_accelerators": f.billed, "cost_usd": c.cost_usd,
                                 "energy_kwh": c.energy_kwh})
            for p, f, c in zip(pools, cost.fleets, cost.costs, strict=True)]


def _running_share(scenario: Scenario, metrics: InferenceMetrics) -> float:
    """The share of the fleet's time an autoscaled pool's replicas ran: rented ones are
    billed for it alone (an owned fleet is paid for whether its replicas run or not)."""
    scaled, w = metrics.autoscaling, scenario.workload
    if scaled is None or scenario.cost.mode is not CostMode.CLOUD or not metrics.duration_s:
        return 1.0
    if metrics.shared_training is not None:
        return 1.0  # the troughs run training: the whole fleet is rented, paid for once
    assert isinstance(w, InferenceWorkload) and w.replicas is not None
    return min(1.0, scaled.replica_seconds / (w.replicas * metrics.duration_s))


def _priced(scenario: Scenario, memory: MemoryReport, time_s: float, util: Utilization,
            tokens: float, output_tokens: float, input_tokens: float, *, billing: Billing,
            running: float = 1.0, **engine) -> Result:
    metrics = engine.get("inference")
    if isinstance(metrics, InferenceMetrics) and metrics.pools:
        pooled = pools_cost(scenario, metrics.pools, time_s, billing)
        engine["inference"] = metrics.model_copy(
            update={"pools": priced_pools(metrics.pools, pooled)})
        cost, billed = pooled.total, pooled.billed
        n = float(billed)
        used, units = sum(f.used for f in pooled.fleets), sum(f.units for f in pooled.fleets)
        unit = " + ".join(dict.fromkeys(f.unit.name for f in pooled.fleets))
        warnings = pools_warnings(scenario, pooled)
    else:
        fleet = fleet_of(scenario, billing)
        billed = fleet.billed
        n = billed * running  # autoscaled and rented: the replica-time that ran
        # the engines average activity over cluster.accelerators; billed_cost spreads it
        cost = billed_cost(scenario.hardware, scenario.cost, billed=n,
                           used=scenario.cluster.accelerators, time_s=time_s, busy=util.busy,
                           memory_bandwidth=util.memory_bandwidth)
        used, units, unit = fleet.used, fleet.units, fleet.unit.name
        warnings = fleet_warnings(scenario, fleet) + price_warnings(scenario.hardware,
                                                                     scenario.cost)
    if scenario.kind == "training":
        per_million = cost_per_million_tokens(cost.cost_usd, 0.0, tokens)
    else:
        per_million = cost_per_million_tokens(cost.cost_usd, input_tokens, output_tokens,
                                              scenario.cost.input_token_weight)
    hours = time_s / 3600
    summary = CostSummary(mode=cost.mode, breakdown_usd=cost.breakdown_usd,
                          usd_per_accelerator_hour=cost.cost_usd / (n * hours) if hours else 0.0,
                          billing=billing.value, billed_accelerators=billed,
                          used_accelerators=used, purchase_units=units, purchase_unit=unit)
    return Result(**scenario.summary(), time_s=time_s, utilization=util,
                  cost_usd=cost.cost_usd, energy_kwh=cost.energy_kwh,
                  average_power_w=cost.average_power_w, carbon_kg=cost.carbon_kg,
                  cost_per_million_tokens_usd=per_million,
                  tokens_per_kwh=tokens / cost.energy_kwh if cost.energy_kwh else 0.0,
                  cost=summary, memory=memory, peak=peak_report(scenario),
                  confidence=confidence_of(scenario),
                  warnings=[*scenario.warnings, *warnings],
                  **engine)
