"""``xpusim plan``: goal-seeking over deployments (serving) or layouts and cluster sizes
(training), with the winner, the runners-up and the Pareto front.

Serving (:func:`plan_serving`): the cheapest deployment (profile, precision, TP/EP, batch
limit, replicas) that meets every SLO target of the scenario at a target arrival rate.
Shapes that cannot fit are pruned before simulating; the replica count of each shape is
found by binary search (:mod:`simulator.studies.plan_serving`).

Training (:func:`plan_training`): the fastest or the cheapest layout (TP/PP/CP/EP,
micro-batch, recompute, ZeRO; DP is what is left) and cluster size, fitting memory and,
with a deadline, finishing in time. Layouts that cannot fit, or are dominated by a lighter
recompute setting that fits, are pruned before simulating
(:mod:`simulator.studies.plan_training`). Across sizes the search assumes that the best time
falls as the cluster grows and the cost grows with it: *cheapest* binary-searches for the
smallest size that meets the deadline, then walks up while the cost still falls; *fastest*
starts at the largest size and walks down while the time still falls.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.errors import InputError
from simulator.loading import scenario_from_dict
from simulator.profiles.catalog import load_hardware
from simulator.profiles.inference import ArrivalProcess, InferenceWorkload
from simulator.profiles.training import TrainingWorkload
from simulator.studies.executors import Executor, InProcessExecutor
from simulator.studies.pareto import pareto_front, plot_front
from simulator.studies.plan_serving import (
    CONFIG_COLUMNS,
    ServingContext,
    Shape,
    search_shape,
)
from simulator.studies.plan_training import (
    LAYOUT_COLUMNS,
    Layout,
    TrainingContext,
    evaluate_layout,
    quick_reject,
)
from simulator.studies.rows import OK, Base

LATENCY = {"ttft": "ttft_p99_s", "tpot": "tpot_p99_s", "e2e": "e2e_p99_s"}
SERVING_METRICS = ["usd_per_hour", "cost_per_million_tokens_usd", "ttft_p99_s", "tpot_p99_s",
                   "e2e_p99_s", "slo_attainment"]
TRAINING_METRICS = ["time_s", "cost_usd", "step_time_s", "mfu", "memory_fraction"]


@dataclass
class PlanResult:
    """A plan: the winner, the runners-up, the Pareto front, and everything evaluated.

    ``objective`` is the column minimized; the front trades ``x`` (time or latency) against
    ``y`` (cost). ``evaluated`` holds every simulated point, ``pruned`` the candidates
    rejected without simulating, each with its ``status`` and ``reason``.
    """

    kind: str
    goal: str
    objective: str
    x: str
    y: str
    config_columns: list[str]
    metric_columns: list[str]
    winner: dict[str, Any] | None = None
    runners_up: list[dict[str, Any]] = field(default_factory=list)
    pareto: list[dict[str, Any]] = field(default_factory=list)
    evaluated: list[dict[str, Any]] = field(default_factory=list)
    pruned: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    limit: float | None = None  # the deadline or the latency target, for the plot
    title: str = ""

    @property
    def simulations(self) -> int:
        return len(self.evaluated)

    def as_dict(self) -> dict[str, Any]:
        keys = ("kind", "goal", "objective", "x", "y", "winner", "runners_up", "pareto",
                "notes", "limit")
        out = {k: getattr(self, k) for k in keys}
        out.update(simulations=self.simulations, pruned=len(self.pruned),
                   evaluated=self.evaluated, pruned_candidates=self.pruned)
        return out

    def plot(self, path: str | Path) -> str | None:
        """Write the Pareto plot; returns None, or why there is no plot."""
        eligible = [r for r in self.evaluated if _eligible(self, r)]
        if not eligible:
            return "nothing met the goal; no plot"
        days = self.x == "time_s" and max(r[self.x] for r in eligible) > 2 * 86400
        x_label = "time to train, days (with failures)" if days \
            else _AXIS_LABELS.get(self.x, self.x)
        return plot_front(Path(path), eligible, self.pareto, self.x, self.y,
                          winner=self.winner, title=self.title, x_limit=self.limit,
                          limit_label="deadline" if self.kind == "training" else "SLO target",
                          x_label=x_label, y_label=_AXIS_LABELS.get(self.y, self.y),
                          x_divisor=86400.0 if days else 1.0)


_AXIS_LABELS = {"time_s": "time to train, s (with failures)", "cost_usd": "cost, USD",
                "usd_per_hour": "fleet cost, USD per hour", "ttft_p99_s": "p99 TTFT, s",
                "tpot_p99_s": "p99 TPOT, s", "e2e_p99_s": "p99 end-to-end latency, s"}


def _eligible(plan: PlanResult, row: dict[str, Any]) -> bool:
    if row.get("status") != OK:
        return False
    if plan.kind == "inference":
        return bool(row.get("meets_slo"))
    return True


def _ranked(rows: list[dict[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: tuple(r[k] for k in keys))


def _base_scenario(base: Base):
    return scenario_from_dict(base.data, base_dir=base.base_dir)


# ---- serving ------------------------------------------------------------------------------
def _default_tps(hardware, model) -> list[int]:
    domain = hardware.scale_up.domain_size.value
    return [tp for tp in (1, 2, 4, 8) if tp <= domain and model.attention_heads % tp == 0]


def plan_serving(base: Base, *, rate_per_s: float | None = None,
                 profiles: Sequence[str] | None = None, precisions: Sequence[str] | None = None,
                 tps: Sequence[int] | None = None, eps: Sequence[int] | None = None,
                 max_batch_sizes: Sequence[int] | None = None, max_accelerators: int = 1024,
                 latency: str = "ttft", top: int = 5,
                 executor: Executor | None = None) -> PlanResult:
    """The cheapest deployment meeting the scenario's SLO at ``rate_per_s`` (default: the
    scenario's arrival rate). Unset lists keep the scenario's value; ``tps`` defaults to the
    powers of two up to 8 that fit the scale-up domain and divide the heads, ``eps`` to tp
    for MoE models (experts spread over the replica) and 1 for dense ones."""
    scenario = _base_scenario(base)
    w = scenario.workload
    if not isinstance(w, InferenceWorkload):
        raise InputError("this is a training scenario; plan it with --goal fastest or cheapest",
                         file=base.file)
    if w.slo is None:
        raise InputError("plan needs the targets to meet: set workload.slo (ttft_s, tpot_s "
                         "and/or e2e_s)", file=base.file, path="workload.slo")
    if w.disaggregation is not None:
        raise InputError("plan searches replicas of one shape; disaggregated scenarios are not "
                         "supported (sweep them instead)", file=base.file,
                         path="workload.disaggregation")
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
    if latency not in LATENCY:
        raise InputError(f"--latency must be one of {', '.join(LATENCY)}, got {latency!r}")
    ctx = ServingContext(base, float(rate), max_accelerators, scenario.hardware.id)
    shapes = []
    for profile in profiles or [None]:
        hardware = load_hardware(profile, Path(base.base_dir or ".")) if profile \
            else scenario.hardware
        for precision, tp, batch in itertools.product(
                precisions or [w.precision.value], tps or _default_tps(hardware, scenario.model),
                max_batch_sizes or [w.batching.max_batch_size]):
            for ep in eps or [tp if scenario.model.is_moe else 1]:
                shapes.append(Shape(profile, str(precision), int(tp), int(ep), int(batch)))
    plan = PlanResult("inference", "cheapest", "usd_per_hour", LATENCY[latency], "usd_per_hour",
                      CONFIG_COLUMNS, SERVING_METRICS,
                      title=f"{scenario.name}: cheapest meeting the SLO at {rate:g} req/s")
    target = getattr(w.slo, f"{latency}_s", None)
    plan.limit = float(target) if target is not None else None
    answers = []
    executor = executor or InProcessExecutor()
    for _, outcome in executor.imap(search_shape, ctx, shapes):
        plan.evaluated += outcome.rows
        if outcome.pruned:
            plan.pruned.append({**outcome.shape.labels(ctx.base_hardware),
                                "status": outcome.status, "reason": outcome.pruned})
        elif outcome.replicas is not None:
            answers += [r for r in outcome.rows if r["replicas"] == outcome.replicas]
        else:
            plan.notes.append(f"{outcome.shape.labels(ctx.base_hardware)}: no replica count "
                              f"up to {max_accelerators} accelerators meets the SLO")
    order = ["usd_per_hour", plan.x, "accelerators", "hardware", "precision", "tp", "ep",
             "max_batch_size"]
    plan.evaluated = _ranked(plan.evaluated, ["hardware", "precision", "tp", "ep",
                                              "max_batch_size", "replicas"])
    answers = _ranked(answers, order)
    if answers:
        plan.winner, plan.runners_up = answers[0], answers[1:1 + top]
    else:
        plan.notes.append("no deployment meets the SLO within the search space")
    plan.pareto = pareto_front([r for r in plan.evaluated if _eligible(plan, r)], plan.x, plan.y)
    plan.notes.insert(0, f"{len(shapes)} shapes: {len(plan.pruned)} pruned without simulating, "
                         f"{plan.simulations} simulations to find each shape's fewest replicas")
    return plan


# ---- training -----------------------------------------------------------------------------
def _training_defaults(scenario) -> dict[str, list]:
    w = scenario.workload
    par = w.parallelism
    model, hardware = scenario.model, scenario.hardware
    return {
        "tps": _default_tps(hardware, model),
        "pps": [pp for pp in (1, 2, 4, 8, 16) if pp <= model.layers],
        "cps": [par.cp], "eps": [par.ep],
        "micro_batches": sorted({1, 2, w.micro_batch_size}),
        "recomputes": ["none", "selective", "full"],
        "zeros": sorted({1, 3, par.zero}),
    }


def plan_training(base: Base, *, goal: str = "fastest", deadline_s: float | None = None,
                  sizes: Sequence[int] | None = None, tps: Sequence[int] | None = None,
                  pps: Sequence[int] | None = None, cps: Sequence[int] | None = None,
                  eps: Sequence[int] | None = None, micro_batches: Sequence[int] | None = None,
                  recomputes: Sequence[str] | None = None, zeros: Sequence[int] | None = None,
                  exhaustive: bool = False, top: int = 5,
                  executor: Executor | None = None) -> PlanResult:
    """The fastest or cheapest layout and cluster size (see the module docstring)."""
    scenario = _base_scenario(base)
    w = scenario.workload
    if not isinstance(w, TrainingWorkload):
        raise InputError("this is a serving scenario; plan it with --goal cheapest and --rate",
                         file=base.file)
    if goal not in ("fastest", "cheapest"):
        raise InputError(f"training plans have --goal fastest or cheapest, got {goal!r}")
    d = _training_defaults(scenario)
    space = {"tps": tps or d["tps"], "pps": pps or d["pps"], "cps": cps or d["cps"],
             "eps": eps or d["eps"], "micro_batches": micro_batches or d["micro_batches"],
             "recomputes": recomputes or d["recomputes"], "zeros": zeros or d["zeros"]}
    sizes = sorted(set(sizes or [scenario.cluster.accelerators]))
    ctx = TrainingContext(base, exhaustive, w.parallelism.pp, deadline_s,
                          tuple(str(r) for r in space["recomputes"]))
    objective = "time_s" if goal == "fastest" else "cost_usd"
    plan = PlanResult("training", goal, objective, "time_s", "cost_usd", LAYOUT_COLUMNS,
                      TRAINING_METRICS, limit=deadline_s,
                      title=f"{scenario.name}: {goal} layout"
                            + (f", deadline {deadline_s / 86400:.3g} days" if deadline_s else ""))
    executor = executor or InProcessExecutor()
    by_size: dict[int, list[dict[str, Any]]] = {}

    def evaluate(n: int) -> list[dict[str, Any]]:
        if n not in by_size:
            by_size[n] = _evaluate_size(n, space, w.global_batch_size, ctx, executor, plan)
        return by_size[n]

    def best(n: int, key: str, need_deadline: bool) -> dict[str, Any] | None:
        rows = [r for r in evaluate(n) if r.get("status") == OK
                and (not need_deadline or r.get("meets_deadline"))]
        return _ranked(rows, [key, "time_s" if key == "cost_usd" else "cost_usd"])[0] \
            if rows else None

    if goal == "fastest":
        _walk(sizes, len(sizes) - 1, -1, lambda n: best(n, "time_s", False), "time_s")
    else:
        start = _first_meeting(sizes, lambda n: best(n, "time_s", deadline_s is not None))
        if start is not None:
            _walk(sizes, start, +1, lambda n: best(n, "cost_usd", True), "cost_usd")
    skipped = [n for n in sizes if n not in by_size]
    eligible = [r for r in plan.evaluated if r.get("status") == OK
                and (goal == "fastest" or r.get("meets_deadline"))]
    ranked = _ranked(eligible, [objective, "cost_usd" if goal == "fastest" else "time_s",
                                *LAYOUT_COLUMNS])
    if deadline_s is not None and goal == "fastest":
        in_time = [r for r in ranked if r.get("meets_deadline")]
        if ranked and not in_time:
            plan.notes.append("no evaluated layout meets the deadline; the fastest is shown")
    if ranked:
        plan.winner, plan.runners_up = ranked[0], ranked[1:1 + top]
    else:
        plan.notes.append("no layout fits" + (" and meets the deadline" if deadline_s else ""))
    plan.evaluated = _ranked(plan.evaluated, LAYOUT_COLUMNS)
    plan.pareto = pareto_front([r for r in plan.evaluated if r.get("status") == OK],
                               plan.x, plan.y)
    plan.notes.insert(0, f"cluster sizes evaluated: {sorted(by_size)}"
                         + (f"; skipped by monotonicity: {skipped}" if skipped else "")
                         + f"; {len(plan.pruned)} layouts pruned without simulating, "
                           f"{plan.simulations} simulated")
    return plan


def _evaluate_size(n: int, space: dict[str, list], global_batch: int, ctx: TrainingContext,
                   executor: Executor, plan: PlanResult) -> list[dict[str, Any]]:
    """Every layout of ``space`` on ``n`` accelerators: rows, simulated where worthwhile."""
    todo = []
    for tp, pp, cp, ep, mb, rc, zero in itertools.product(
            space["tps"], space["pps"], space["cps"], space["eps"], space["micro_batches"],
            space["recomputes"], space["zeros"]):
        layout = Layout(n, int(tp), int(pp), int(cp), int(ep), int(mb), str(rc), int(zero))
        reason = quick_reject(layout, global_batch)
        if reason:
            plan.pruned.append({**layout.labels(), "status": "infeasible", "reason": reason})
        else:
            todo.append(layout)
    rows = [row for _, row in executor.imap(evaluate_layout, ctx, todo)]
    for row in rows:
        (plan.evaluated if row["simulated"] else plan.pruned).append(row)
    return [r for r in rows if r["simulated"]]


def _first_meeting(sizes: list[int], best_at) -> int | None:
    """Index of the smallest size whose best row exists (binary search: assumes a larger
    cluster is never slower, so 'meets the deadline' is monotone in the size)."""
    lo, hi = -1, len(sizes)  # sizes[lo] fails (or none), sizes[hi] meets (or none)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if best_at(sizes[mid]) is not None:
            hi = mid
        else:
            lo = mid
    return hi if hi < len(sizes) else None


def _walk(sizes: list[int], start: int, step: int, best_at, key: str) -> None:
    """Evaluate sizes from ``start`` in direction ``step`` while the best ``key`` improves."""
    current = best_at(sizes[start])
    i = start + step
    while 0 <= i < len(sizes):
        nxt = best_at(sizes[i])
        if current is not None and (nxt is None or nxt[key] >= current[key]):
            return
        current, i = nxt or current, i + step
