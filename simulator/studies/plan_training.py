"""Training plans: the fastest or cheapest layout and cluster size (:func:`plan_training`).

A layout (TP/PP/CP/EP, micro-batch, recompute, ZeRO) at each cluster size is one task for a
worker (:func:`evaluate_layout`), which

1. prunes without simulating: the layout must validate (tp*pp*cp divides the cluster, the
   batch splits, tp divides the heads, ...) and fit in memory
   (:func:`simulator.perf.footprint.training_footprint`);
2. prunes by dominance: recomputation only adds work, so when a lighter recompute setting
   of the same layout also fits, this one cannot be faster or cheaper (unless
   ``exhaustive``);
3. simulates what is left.

Across cluster sizes the search uses monotonicity too (see :mod:`simulator.studies.plan`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from simulator.errors import InputError, InputErrors, XpusimError
from simulator.loading import scenario_from_dict
from simulator.perf.footprint import training_footprint
from simulator.profiles.overrides import apply_overrides
from simulator.profiles.scenario import Scenario
from simulator.profiles.training import TrainingWorkload
from simulator.studies.executors import Executor, InProcessExecutor
from simulator.studies.pareto import pareto_front
from simulator.studies.plan import PlanResult, base_scenario, default_tps, note_winner_fleet, ranked
from simulator.studies.rows import OK, Base, one_line, result_metrics, run_point

RECOMPUTE_ORDER = ("none", "selective", "full")  # least work first
LAYOUT_COLUMNS = ["accelerators", "tp", "pp", "dp", "cp", "ep", "micro_batch_size",
                  "recompute", "zero"]
TRAINING_PLAN_METRICS = ["time_s", "billed_accelerators", "cost_usd", "step_time_s", "mfu",
                         "memory_fraction"]


@dataclass(frozen=True, kw_only=True)
class LayoutCandidate:
    """One training layout a plan considers on ``accelerators`` devices (dp is what is
    left). Not :class:`simulator.perf.layouts.Layout`, the resolved layout ops are priced
    with."""

    accelerators: int
    tp: int
    pp: int
    cp: int
    ep: int
    micro_batch_size: int
    recompute: str
    zero: int

    @property
    def dp(self) -> int:
        """Data-parallel replicas: the accelerators the model-parallel group leaves."""
        return self.accelerators // (self.tp * self.pp * self.cp)

    def labels(self) -> dict[str, Any]:
        """The layout's columns in a plan's tables (``dp`` included)."""
        return {**asdict(self), "dp": self.dp}


@dataclass(frozen=True, kw_only=True)
class TrainingContext:
    """What every worker needs: the base scenario and the rules of the search."""

    base: Base
    exhaustive: bool = False
    keep_stage_layers_for_pp: int | None = None  # the scenario's pp, where its split applies
    deadline_s: float | None = None
    recomputes: tuple[str, ...] = RECOMPUTE_ORDER  # the settings searched (dominance is
    # only claimed by a lighter setting that is itself in the search)


def layout_overrides(layout: LayoutCandidate, ctx: TrainingContext) -> list[str]:
    """The ``--set`` overrides that turn the base scenario into ``layout``; uneven end
    stages are dropped unless the pipeline depth is the scenario's own."""
    par = "workload.parallelism"
    overrides = [f"cluster.accelerators={layout.accelerators}", f"{par}.tp={layout.tp}",
                 f"{par}.pp={layout.pp}", f"{par}.cp={layout.cp}", f"{par}.ep={layout.ep}",
                 f"{par}.dp=null", f"{par}.zero={layout.zero}",
                 f"workload.micro_batch_size={layout.micro_batch_size}",
                 f"workload.recompute={layout.recompute}"]
    if layout.pp != ctx.keep_stage_layers_for_pp:
        overrides += [f"{par}.first_stage_layers=null", f"{par}.last_stage_layers=null"]
    return overrides


def quick_reject(layout: LayoutCandidate, global_batch: int) -> str:
    """Arithmetic a layout must pass before it is worth validating ('' when it passes)."""
    shape = layout.tp * layout.pp * layout.cp
    if layout.accelerators % shape:
        return f"tp*pp*cp = {shape} does not divide {layout.accelerators} accelerators"
    if global_batch % (layout.dp * layout.micro_batch_size):
        return (f"global_batch_size {global_batch} is not a multiple of dp*micro_batch_size = "
                f"{layout.dp}*{layout.micro_batch_size}")
    return ""


def _fits(ctx: TrainingContext, layout: LayoutCandidate) -> tuple[str, str]:
    """(status, reason): ``ok`` when the layout validates and fits."""
    overrides = layout_overrides(layout, ctx)
    try:
        scenario = scenario_from_dict(apply_overrides(ctx.base.data, overrides),
                                      base_dir=ctx.base.base_dir, overrides=overrides)
    except InputErrors as exc:
        return "infeasible", one_line("; ".join(e.render() for e in exc.errors))
    except XpusimError as exc:
        return "infeasible", one_line(str(exc))
    footprint = training_footprint(scenario)
    if not footprint.fits:
        return "does_not_fit", one_line(footprint.verdict())
    return OK, ""


def evaluate_layout(ctx: TrainingContext, layout: LayoutCandidate) -> dict[str, Any]:
    """The task a worker runs for one layout: a row, simulated only if it may win."""
    row: dict[str, Any] = {**layout.labels(), "simulated": False}
    status, reason = _fits(ctx, layout)
    if status == OK and not ctx.exhaustive and layout.recompute in RECOMPUTE_ORDER:
        lighter_ones = RECOMPUTE_ORDER[:RECOMPUTE_ORDER.index(layout.recompute)]
        for lighter in (r for r in lighter_ones if r in ctx.recomputes):
            other = LayoutCandidate(**{**asdict(layout), "recompute": lighter})
            if _fits(ctx, other)[0] == OK:
                status = "dominated"
                reason = f"recompute={lighter} also fits and does less work"
                break
    if status != OK:
        return {**row, "status": status, "reason": reason}
    status, reason, result = run_point(ctx.base, layout_overrides(layout, ctx))
    row.update(status=status, reason=reason, simulated=True)
    if result is not None:
        metrics = result_metrics(result, "training")
        metrics.pop("accelerators")
        row.update(metrics)
        row["meets_deadline"] = (ctx.deadline_s is None or row["time_s"] <= ctx.deadline_s)
    return row


# ---- the search over sizes and layouts (in the calling process) --------------------------
@dataclass(frozen=True, kw_only=True)
class TrainingSpace:
    """The layout choices a training plan crosses at every cluster size."""

    tps: Sequence[int]
    pps: Sequence[int]
    cps: Sequence[int]
    eps: Sequence[int]
    micro_batches: Sequence[int]
    recomputes: Sequence[str]
    zeros: Sequence[int]

    def layouts(self, accelerators: int) -> Iterator[LayoutCandidate]:
        """Every combination of the choices on ``accelerators`` devices, in a fixed order."""
        for tp, pp, cp, ep, mb, rc, zero in itertools.product(
                self.tps, self.pps, self.cps, self.eps, self.micro_batches, self.recomputes,
                self.zeros):
            yield LayoutCandidate(accelerators=accelerators, tp=int(tp), pp=int(pp), cp=int(cp),
                                  ep=int(ep), micro_batch_size=int(mb), recompute=str(rc),
                                  zero=int(zero))


def _training_space(scenario: Scenario, w: TrainingWorkload, *, tps: Sequence[int] | None,
                    pps: Sequence[int] | None, cps: Sequence[int] | None,
                    eps: Sequence[int] | None, micro_batches: Sequence[int] | None,
                    recomputes: Sequence[str] | None,
                    zeros: Sequence[int] | None) -> TrainingSpace:
    """The given choices, and defaults for the ones not given (or given empty)."""
    par, model = w.parallelism, scenario.model
    return TrainingSpace(
        tps=tps or default_tps(scenario.hardware, model),
        pps=pps or [pp for pp in (1, 2, 4, 8, 16) if pp <= model.layers],
        cps=cps or [par.cp], eps=eps or [par.ep],
        micro_batches=micro_batches or sorted({1, 2, w.micro_batch_size}),
        recomputes=recomputes or ["none", "selective", "full"],
        zeros=zeros or sorted({1, 3, par.zero}))


def plan_training(base: Base, *, goal: str = "fastest", deadline_s: float | None = None,
                  sizes: Sequence[int] | None = None, tps: Sequence[int] | None = None,
                  pps: Sequence[int] | None = None, cps: Sequence[int] | None = None,
                  eps: Sequence[int] | None = None, micro_batches: Sequence[int] | None = None,
                  recomputes: Sequence[str] | None = None, zeros: Sequence[int] | None = None,
                  exhaustive: bool = False, top: int = 5,
                  executor: Executor | None = None) -> PlanResult:
    """The fastest or cheapest layout and cluster size (see the module docstring)."""
    scenario = base_scenario(base)
    w = scenario.workload
    if not isinstance(w, TrainingWorkload):
        raise InputError("this is a serving scenario; plan it with --goal cheapest and --rate",
                         file=base.file)
    if goal not in ("fastest", "cheapest"):
        raise InputError(f"training plans have --goal fastest or cheapest, got {goal!r}")
    space = _training_space(scenario, w, tps=tps, pps=pps, cps=cps, eps=eps,
                            micro_batches=micro_batches, recomputes=recomputes, zeros=zeros)
    ctx = TrainingContext(base=base, exhaustive=exhaustive,
                          keep_stage_layers_for_pp=w.parallelism.pp, deadline_s=deadline_s,
                          recomputes=tuple(str(r) for r in space.recomputes))
    deadline = f", deadline {deadline_s / 86400:.3g} days" if deadline_s else ""
    plan = PlanResult(kind="training", goal=goal,
                      objective="time_s" if goal == "fastest" else "cost_usd", x="time_s",
                      y="cost_usd", config_columns=LAYOUT_COLUMNS,
                      metric_columns=TRAINING_PLAN_METRICS, limit=deadline_s,
                      title=f"{scenario.name}: {goal} layout{deadline}")
    search = _SizeSearch(plan=plan, space=space, global_batch=w.global_batch_size, ctx=ctx,
                         executor=executor or InProcessExecutor())
    all_sizes = sorted(set(sizes or [scenario.cluster.accelerators]))
    search.run(all_sizes)
    _choose_layout(plan, top)
    note_winner_fleet(plan)
    skipped = [n for n in all_sizes if n not in search.by_size]
    plan.notes.insert(0, f"cluster sizes evaluated: {sorted(search.by_size)}"
                         + (f"; skipped by monotonicity: {skipped}" if skipped else "")
                         + f"; {len(plan.pruned)} layouts pruned without simulating, "
                           f"{plan.simulations} simulated")
    return plan


@dataclass(kw_only=True)
class _SizeSearch:
    """The walk over cluster sizes; each size is evaluated at most once (``by_size``)."""

    plan: PlanResult
    space: TrainingSpace
    global_batch: int
    ctx: TrainingContext
    executor: Executor
    by_size: dict[int, list[dict[str, Any]]] = field(default_factory=dict)

    def run(self, sizes: list[int]) -> None:
        """*fastest*: from the largest size down while the time falls; *cheapest*: from the
        smallest size meeting the deadline up while the cost falls."""
        if self.plan.goal == "fastest":
            _walk(sizes, len(sizes) - 1, -1, lambda n: self.best(n, "time_s", False), "time_s")
            return
        need_deadline = self.ctx.deadline_s is not None
        start = _first_meeting(sizes, lambda n: self.best(n, "time_s", need_deadline))
        if start is not None:
            _walk(sizes, start, +1, lambda n: self.best(n, "cost_usd", True), "cost_usd")

    def best(self, n: int, key: str, need_deadline: bool) -> dict[str, Any] | None:
        """The best simulated row on ``n`` accelerators by ``key`` (None: nothing ran)."""
        if n not in self.by_size:
            self.by_size[n] = self._evaluate_size(n)
        rows = [r for r in self.by_size[n] if r.get("status") == OK
                and (not need_deadline or r.get("meets_deadline"))]
        return ranked(rows, [key, "time_s" if key == "cost_usd" else "cost_usd"])[0] \
            if rows else None

    def _evaluate_size(self, n: int) -> list[dict[str, Any]]:
        """Every layout on ``n`` accelerators: rows, simulated where worthwhile."""
        todo = []
        for layout in self.space.layouts(n):
            reason = quick_reject(layout, self.global_batch)
            if reason:
                self.plan.pruned.append({**layout.labels(), "status": "infeasible",
                                         "reason": reason})
            else:
                todo.append(layout)
        rows = [row for _, row in self.executor.imap(evaluate_layout, self.ctx, todo)]
        for row in rows:
            (self.plan.evaluated if row["simulated"] else self.plan.pruned).append(row)
        return [r for r in rows if r["simulated"]]


def _choose_layout(plan: PlanResult, top: int) -> None:
    """The winner by the objective (the other cost breaks ties), the runners-up and the
    Pareto front of everything that ran."""
    fastest = plan.goal == "fastest"
    candidates = [r for r in plan.evaluated if r.get("status") == OK
                  and (fastest or r.get("meets_deadline"))]
    order = ranked(candidates, [plan.objective, "cost_usd" if fastest else "time_s",
                                *LAYOUT_COLUMNS])
    if plan.limit is not None and fastest:
        in_time = [r for r in order if r.get("meets_deadline")]
        if order and not in_time:
            plan.notes.append("no evaluated layout meets the deadline; the fastest is shown")
    if order:
        plan.winner, plan.runners_up = order[0], order[1:1 + top]
    else:
        plan.notes.append("no layout fits" + (" and meets the deadline" if plan.limit else ""))
    plan.evaluated = ranked(plan.evaluated, LAYOUT_COLUMNS)
    plan.pareto = pareto_front([r for r in plan.evaluated if r.get("status") == OK],
                               plan.x, plan.y)


def _first_meeting(sizes: list[int],
                   best_at: Callable[[int], dict[str, Any] | None]) -> int | None:
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


def _walk(sizes: list[int], start: int, direction: int,
          best_at: Callable[[int], dict[str, Any] | None], key: str) -> None:
    """Evaluate sizes from ``start`` in ``direction`` (+1 or -1) while the best ``key`` improves."""
    current = best_at(sizes[start])
    i = start + direction
    while 0 <= i < len(sizes):
        nxt = best_at(sizes[i])
        if current is not None and (nxt is None or nxt[key] >= current[key]):
            return
        current, i = nxt or current, i + direction
