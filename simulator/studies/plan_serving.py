"""Serving plans: the cheapest deployment meeting the SLO at a rate (:func:`plan_serving`).

A *shape* is (profile, precision, tp, ep, max batch size); the plan looks for the fewest
replicas of each shape that meet the SLO, and picks the cheapest. For each shape, in a
worker (:func:`search_shape`):

1. prune without simulating: the layout must validate and one replica must fit in memory
   (:func:`simulator.perf.footprint.inference_footprint`);
2. start from a roofline lower bound on the replicas (decode limited by streaming the
   weights from HBM at the batch limit, and all tokens limited by peak FLOP/s);
3. find the smallest replica count meeting every SLO target by exponential then binary
   search. This relies on monotonicity: at a fixed arrival rate, adding a replica of the
   same shape never makes the SLO worse (more capacity, same requests). The probe just
   below the answer is always simulated, so the answer's predecessor is known to fail.

Cost is the fleet's dollars per hour (``usd_per_hour``: cost / simulated time, so owned
fleets include their power); at a fixed rate it orders shapes as cost per token does. A
fleet is billed in whole purchase units (:mod:`simulator.economics.fleet`): 10 MI300X are
billed as two 8-GPU platforms, so shapes that fill their servers win ties on price, and the
winner's unused accelerators are reported.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.errors import DoesNotFit, InputError, InputErrors, XpusimError
from simulator.loading import scenario_from_dict
from simulator.perf.footprint import inference_footprint
from simulator.profiles.catalog import load_hardware
from simulator.profiles.inference import ArrivalProcess, InferenceWorkload, mean_tokens
from simulator.profiles.overrides import apply_overrides
from simulator.profiles.scenario import Scenario
from simulator.search import first_true
from simulator.studies.capacity import scenario_capacity
from simulator.studies.executors import Executor, InProcessExecutor
from simulator.studies.pareto import pareto_front
from simulator.studies.plan import (
    PlanResult,
    base_scenario,
    default_tps,
    eligible,
    note_winner_fleet,
    ranked,
    trusted,
)
from simulator.studies.rows import OK, Base, one_line, result_metrics, run_point

SHAPE_COLUMNS = ["hardware", "precision", "tp", "ep", "max_batch_size"]
CONFIG_COLUMNS = [*SHAPE_COLUMNS, "replicas", "accelerators"]
SERVING_PLAN_METRICS = ["billed_accelerators", "usd_per_hour", "cost_per_million_tokens_usd",
                        "ttft_p99_s", "tpot_p99_s", "e2e_p99_s", "slo_attainment"]
LATENCY = {"ttft": "ttft_p99_s", "tpot": "tpot_p99_s", "e2e": "e2e_p99_s"}


@dataclass(frozen=True, kw_only=True)
class Shape:
    """One deployment shape; ``hardware`` None keeps the scenario's profile."""

    hardware: str | None
    precision: str
    tp: int
    ep: int
    max_batch_size: int

    def labels(self, base_hardware: str) -> dict[str, Any]:
        """The shape's columns in a plan's tables (the profile id filled in)."""
        return {"hardware": self.hardware or base_hardware, "precision": self.precision,
                "tp": self.tp, "ep": self.ep, "max_batch_size": self.max_batch_size}


@dataclass(frozen=True, kw_only=True)
class ServingContext:
    """What every worker needs: the base scenario, the target rate and the search limits."""

    base: Base
    rate_per_s: float
    max_accelerators: int
    base_hardware: str


@dataclass(kw_only=True)
class ShapeOutcome:
    """The search of one shape: every simulated replica count, and the answer."""

    shape: Shape
    rows: list[dict[str, Any]] = field(default_factory=list)
    replicas: int | None = None  # the fewest meeting the SLO; None: none within the cap
    pruned: str = ""  # why the shape was never simulated
    status: str = ""


def shape_overrides(shape: Shape, ctx: ServingContext, replicas: int, pp: int) -> list[str]:
    """The ``--set`` overrides that turn the base scenario into ``replicas`` of ``shape``."""
    overrides = [] if shape.hardware is None else [f"hardware={shape.hardware}"]
    return [*overrides, f"workload.precision={shape.precision}",
            f"workload.parallelism.tp={shape.tp}", f"workload.parallelism.ep={shape.ep}",
            f"workload.batching.max_batch_size={shape.max_batch_size}",
            f"workload.arrivals.rate_per_s={ctx.rate_per_s!r}",
            f"workload.replicas={replicas}",
            f"cluster.accelerators={replicas * shape.tp * pp}"]


def _pp(base: Base) -> int:
    """The base scenario's pipeline stages per replica (kept by every shape)."""
    par = base.data.get("workload", {}).get("parallelism") or {}
    return int(par.get("pp", 1)) if isinstance(par, dict) else 1


def replica_lower_bound(scenario: Scenario, rate_per_s: float) -> int:
    """Replicas no fewer than which can sustain ``rate_per_s`` (roofline, no efficiency).

    Decode: each iteration streams a device's weights from HBM at least once and yields at
    most ``max_batch_size`` tokens per replica. Compute: every prompt and output token costs
    2·N_active FLOPs at the replica's peak.
    """
    w = scenario.workload
    assert isinstance(w, InferenceWorkload)
    hw, model = scenario.hardware, scenario.model
    footprint = inference_footprint(scenario)
    prompt, output = mean_tokens(w.prompt_tokens), mean_tokens(w.output_tokens)
    iteration_s = footprint.parts["weights"] / hw.hbm_bandwidth
    decode_tokens_per_s = w.batching.max_batch_size / iteration_s if iteration_s else math.inf
    flops_tokens_per_s = (w.parallelism.devices * hw.peak(w.precision)
                          / (2 * model.params_active))
    need = max(rate_per_s * output / decode_tokens_per_s,
               rate_per_s * (prompt + output) / flops_tokens_per_s)
    return max(1, math.ceil(need))


def min_replicas(meets: Callable[[int], bool], start: int, cap: int) -> int | None:
    """The smallest r in [1, cap] with ``meets(r)``, assuming False...False True...True.

    Starts at ``start``: when it meets, r-1 is probed first (usually the bound is tight),
    then binary search below; otherwise the count doubles until it meets, then bisects.
    """
    if cap < 1:
        return None
    r = min(max(1, start), cap)
    lo, hi = 0, r  # lo: largest count known to fail (0: none); hi: known to meet
    if meets(r):
        if r == 1 or not meets(r - 1):
            return r
        hi = r - 1
    else:
        lo = r
        while True:
            nxt = min(cap, lo * 2)
            if nxt == lo:
                return None
            if meets(nxt):
                hi = nxt
                break
            lo = nxt
    return first_true(meets, lo, hi)


def search_shape(ctx: ServingContext, shape: Shape) -> ShapeOutcome:
    """The task a worker runs for one shape (see the module docstring)."""
    outcome = ShapeOutcome(shape=shape)
    pp = _pp(ctx.base)
    cap = ctx.max_accelerators // (shape.tp * pp)
    overrides = shape_overrides(shape, ctx, 1, pp)
    try:
        scenario = scenario_from_dict(apply_overrides(ctx.base.data, overrides),
                                      base_dir=ctx.base.base_dir, overrides=overrides)
        if not inference_footprint(scenario).fits:
            raise DoesNotFit(inference_footprint(scenario).verdict())
    except DoesNotFit as exc:
        outcome.pruned, outcome.status = one_line(str(exc)), "does_not_fit"
        return outcome
    except InputErrors as exc:
        outcome.pruned = one_line("; ".join(e.render() for e in exc.errors))
        outcome.status = "infeasible"
        return outcome
    except XpusimError as exc:
        outcome.pruned, outcome.status = one_line(str(exc)), "infeasible"
        return outcome
    if cap < 1:
        outcome.pruned = f"one replica needs {shape.tp * pp} accelerators, over the cap"
        outcome.status = "infeasible"
        return outcome

    seen: dict[int, bool] = {}

    def meets(replicas: int) -> bool:
        """Whether ``replicas`` replicas meet the goal (each count simulated once)."""
        if replicas not in seen:
            row = _simulate(ctx, shape, replicas, pp)
            outcome.rows.append(row)
            seen[replicas] = row["meets_slo"]
        return seen[replicas]

    start = replica_lower_bound(scenario, ctx.rate_per_s)
    outcome.replicas = min_replicas(meets, start, cap)
    outcome.status = OK if outcome.replicas is not None else "slo_not_met"
    return outcome


def _simulate(ctx: ServingContext, shape: Shape, replicas: int, pp: int) -> dict[str, Any]:
    """The row of ``replicas`` of ``shape``, simulated, with ``meets_slo``."""
    status, reason, result = run_point(ctx.base, shape_overrides(shape, ctx, replicas, pp))
    row: dict[str, Any] = {**shape.labels(ctx.base_hardware), "replicas": replicas,
                           "accelerators": replicas * shape.tp * pp, "status": status,
                           "reason": reason}
    if result is not None:
        metrics = result_metrics(result, "inference")
        metrics.pop("hardware")
        row.update(metrics)
    row["meets_slo"] = bool(status == OK and row.get("slo_met"))
    return row


# ---- the search over shapes (in the calling process) -------------------------------------
def plan_serving(base: Base, *, rate_per_s: float | None = None,
                 profiles: Sequence[str] | None = None, precisions: Sequence[str] | None = None,
                 tps: Sequence[int] | None = None, eps: Sequence[int] | None = None,
                 max_batch_sizes: Sequence[int] | None = None, max_accelerators: int = 1024,
                 latency: str = "ttft", top: int = 5, capacity: bool = False,
                 max_expected_error: float | None = None,
                 executor: Executor | None = None) -> PlanResult:
    """The cheapest deployment meeting the scenario's SLO at ``rate_per_s`` (default: the
    scenario's arrival rate). Unset lists keep the scenario's value; ``tps`` defaults to the
    powers of two up to 8 that fit the scale-up domain and divide the heads, ``eps`` to tp
    for MoE models (experts spread over the replica) and 1 for dense ones. With
    ``capacity``, the winner also gets ``sustainable_rate_per_s``: the highest rate it meets
    the SLO at (:mod:`simulator.studies.capacity`), its headroom over the target rate.
    With ``max_expected_error``, deployments whose confidence does not meet it cannot win
    (:func:`simulator.studies.plan.trusted`)."""
    scenario = base_scenario(base)
    w = scenario.workload
    if not isinstance(w, InferenceWorkload):
        raise InputError("this is a training scenario; plan it with --goal fastest or cheapest",
                         file=base.file)
    rate = _target_rate(base, w, rate_per_s)
    if latency not in LATENCY:
        raise InputError(f"--latency must be one of {', '.join(LATENCY)}, got {latency!r}")
    ctx = ServingContext(base=base, rate_per_s=float(rate), max_accelerators=max_accelerators,
                         base_hardware=scenario.hardware.id)
    shapes = _shapes(base, scenario, w, profiles=profiles, precisions=precisions, tps=tps,
                     eps=eps, max_batch_sizes=max_batch_sizes)
    target = getattr(w.slo, f"{latency}_s", None)
    plan = PlanResult(kind="inference", goal="cheapest", objective="usd_per_hour",
                      x=LATENCY[latency], y="usd_per_hour", config_columns=CONFIG_COLUMNS,
                      metric_columns=SERVING_PLAN_METRICS,
                      limit=float(target) if target is not None else None,
                      title=f"{scenario.name}: cheapest meeting the SLO at {rate:g} req/s",
                      max_expected_error=max_expected_error)
    answers = _search_shapes(plan, ctx, shapes, executor or InProcessExecutor())
    _choose_deployment(plan, answers, top)
    if capacity and plan.winner is not None:
        _winner_capacity(plan, ctx)
    plan.notes.insert(0, f"{len(shapes)} shapes: {len(plan.pruned)} pruned without simulating, "
                         f"{plan.simulations} simulations to find each shape's fewest replicas")
    return plan


def _target_rate(base: Base, w: InferenceWorkload, rate_per_s: float | None) -> float:
    """The arrival rate the plan must meet; raises where the scenario cannot be planned."""
    if w.slo is None:
        raise InputError("plan needs the targets to meet: set workload.slo (ttft_s, tpot_s "
                         "and/or e2e_s)", file=base.file, path="workload.slo")
    if w.disaggregation is not None:
        raise InputError("plan searches replicas of one shape; disaggregated scenarios are not "
                         "supported (sweep them instead)", file=base.file,
                         path="workload.disaggregation")
    if w.parallelism.attention_dp > 1:
        raise InputError("plan searches TP/EP shapes of replicas; attention-DP (wide-EP) "
                         "layouts are not in its search space (sweep them instead)",
                         file=base.file, path="workload.parallelism.attention_dp")
    if w.arrivals.process in (ArrivalProcess.CLOSED, ArrivalProcess.OFFLINE):
        raise InputError(f"plan finds the deployment for a target rate of arrivals; "
                         f"arrivals.process: {w.arrivals.process.value} has no rate to meet "
                         f"(allowed: poisson, gamma, constant, trace; sweep a "
                         f"{w.arrivals.process.value} scenario instead)", file=base.file,
                         path="workload.arrivals.process")
    rate = rate_per_s or w.arrivals.rate_per_s
    if not rate:
        raise InputError("plan needs a target rate: --rate or workload.arrivals.rate_per_s",
                         file=base.file, path="workload.arrivals.rate_per_s")
    return rate


def _shapes(base: Base, scenario: Scenario, w: InferenceWorkload, *,
            profiles: Sequence[str] | None, precisions: Sequence[str] | None,
            tps: Sequence[int] | None, eps: Sequence[int] | None,
            max_batch_sizes: Sequence[int] | None) -> list[Shape]:
    """Every deployment shape of the search space, in a fixed order."""
    shapes = []
    choices: list[str | None] = list(profiles) if profiles else [None]
    for profile in choices:
        hardware = load_hardware(profile, Path(base.base_dir or ".")) if profile \
            else scenario.hardware
        for precision, tp, batch in itertools.product(
                precisions or [w.precision.value], tps or default_tps(hardware, scenario.model),
                max_batch_sizes or [w.batching.max_batch_size]):
            for ep in eps or [tp if scenario.model.is_moe else 1]:
                shapes.append(Shape(hardware=profile, precision=str(precision), tp=int(tp),
                                    ep=int(ep), max_batch_size=int(batch)))
    return shapes


def _search_shapes(plan: PlanResult, ctx: ServingContext, shapes: list[Shape],
                   executor: Executor) -> list[dict[str, Any]]:
    """Each shape's fewest replicas, searched on ``executor``; the simulated and the pruned
    rows go to ``plan``, and the rows at each shape's answer are returned."""
    answers = []
    for _, outcome in executor.imap(search_shape, ctx, shapes):
        plan.evaluated += outcome.rows
        if outcome.pruned:
            plan.pruned.append({**outcome.shape.labels(ctx.base_hardware),
                                "status": outcome.status, "reason": outcome.pruned})
        elif outcome.replicas is not None:
            answers += [r for r in outcome.rows if r["replicas"] == outcome.replicas]
        else:
            plan.notes.append(f"{outcome.shape.labels(ctx.base_hardware)}: no replica count "
                              f"up to {ctx.max_accelerators} accelerators meets the SLO")
    return answers


def _choose_deployment(plan: PlanResult, answers: list[dict[str, Any]], top: int) -> None:
    """The winner (cheapest, then lowest latency), the runners-up and the Pareto front."""
    order = ["usd_per_hour", plan.x, "accelerators", "hardware", "precision", "tp", "ep",
             "max_batch_size"]
    plan.evaluated = ranked(plan.evaluated, ["hardware", "precision", "tp", "ep",
                                              "max_batch_size", "replicas"])
    answers = ranked(trusted(plan, answers), order)
    if answers:
        plan.winner, plan.runners_up = answers[0], answers[1:1 + top]
        winner = plan.winner
        note_winner_fleet(plan, winner["accelerators"] // winner["replicas"])
    else:
        plan.notes.append("no deployment meets the SLO within the search space")
    plan.pareto = pareto_front([r for r in plan.evaluated if eligible(plan, r)], plan.x, plan.y)


def _winner_capacity(plan: PlanResult, ctx: ServingContext) -> None:
    """Search the winner's highest sustainable rate; record it on the winner and in a note
    (or, where the search does not apply, why not)."""
    from simulator.simulate import simulate

    winner = plan.winner
    assert winner is not None
    shape = Shape(hardware=None if winner["hardware"] == ctx.base_hardware else
                  winner["hardware"], precision=winner["precision"], tp=winner["tp"],
                  ep=winner["ep"], max_batch_size=winner["max_batch_size"])
    overrides = shape_overrides(shape, ctx, winner["replicas"], _pp(ctx.base))
    scenario = scenario_from_dict(apply_overrides(ctx.base.data, overrides),
                                  base_dir=ctx.base.base_dir, overrides=overrides)
    try:
        found = scenario_capacity(scenario, simulate, start=ctx.rate_per_s)
    except InputError as exc:
        plan.notes.append(f"sustainable rate not searched: {exc.message}")
        return
    winner["sustainable_rate_per_s"] = found.rate_per_s
    if found.rate_per_s is None:
        plan.notes.append(f"sustainable rate: none found ({found.describe()})")
        return
    plan.notes.append(f"the winner meets the SLO up to {found.rate_per_s:.4g} req/s "
                      f"({found.describe()}), {found.rate_per_s / ctx.rate_per_s:.2f}x the "
                      f"{ctx.rate_per_s:g} req/s asked")
