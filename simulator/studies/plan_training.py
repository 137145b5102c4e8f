"""Training plans: the fastest or cheapest layout and cluster size (:func:`plan_training`).

At each cluster size the plan crosses every dimension of the layout
(:mod:`simulator.studies.training_space`: TP, PP, vpp, end-stage layers, CP, EP,
micro-batch, recompute, ZeRO), prunes by arithmetic, the scenario's checks, memory and
dominance, ranks what is left by an analytic step estimate and simulates only the most
promising ``max_simulations`` of them and the scenario's own layout
(:mod:`simulator.studies.training_screen`). Across cluster sizes the search uses
monotonicity too (see :mod:`simulator.studies.plan`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from simulator.errors import InputError
from simulator.profiles.scenario import Scenario
from simulator.profiles.training import TrainingWorkload
from simulator.search import first_true
from simulator.studies.executors import Executor, InProcessExecutor
from simulator.studies.pareto import pareto_front
from simulator.studies.plan import (
    PlanResult,
    base_scenario,
    eligible,
    note_winner_fleet,
    ranked,
    trusted,
)
from simulator.studies.rows import OK, Base
from simulator.studies.training_screen import (
    TrainingContext,
    estimate_layouts,
    layout_overrides,
    lighter_fits,
    pruned_row,
    pruning_summary,
    quick_reject,
    screen_layout,
    simulate_layout,
)
from simulator.studies.training_space import (
    LAYOUT_COLUMNS,
    LayoutCandidate,
    TrainingSpace,
    scenario_layout,
    training_space,
)
from simulator.units import format_time

__all__ = ["LAYOUT_COLUMNS", "LayoutCandidate", "TrainingContext", "layout_overrides",
           "plan_training"]
TRAINING_PLAN_METRICS = ["time_s", "billed_accelerators", "cost_usd", "step_time_s", "mfu",
                         "memory_fraction"]


def plan_training(base: Base, *, goal: str = "fastest", deadline_s: float | None = None,
                  sizes: Sequence[int] | None = None, tps: Sequence[int] | None = None,
                  pps: Sequence[int] | None = None, cps: Sequence[int] | None = None,
                  eps: Sequence[int] | None = None, vpps: Sequence[int] | None = None,
                  micro_batches: Sequence[int] | None = None,
                  recomputes: Sequence[str] | None = None, zeros: Sequence[int] | None = None,
                  fix: Sequence[str] = (), max_simulations: int = 16,
                  exhaustive: bool = False, top: int = 5,
                  max_expected_error: float | None = None,
                  executor: Executor | None = None) -> PlanResult:
    """The fastest or cheapest layout and cluster size (see the module docstring).

    ``fix`` pins dimensions (field paths, :data:`training_space.FIXABLE`) to the
    scenario's values; ``max_simulations`` bounds the simulations per cluster size (besides
    the scenario's own layout); ``exhaustive`` simulates everything that fits.
    """
    scenario = base_scenario(base)
    w = scenario.workload
    if not isinstance(w, TrainingWorkload):
        raise InputError("this is a serving scenario; plan it with --goal cheapest and --rate",
                         file=base.file)
    if goal not in ("fastest", "cheapest"):
        raise InputError(f"training plans have --goal fastest or cheapest, got {goal!r}")
    if max_simulations < 1:
        raise InputError(f"--max-simulations must be 1 or more, got {max_simulations}")
    space = training_space(scenario, fix=fix, tps=tps, pps=pps, cps=cps, eps=eps, vpps=vpps,
                           micro_batches=micro_batches, recomputes=recomputes, zeros=zeros)
    plain = w.pipeline_schedule.value
    ctx = TrainingContext(base=base, exhaustive=exhaustive, deadline_s=deadline_s,
                          recomputes=tuple(str(r) for r in space.recomputes),
                          plain_schedule="1f1b" if plain == "interleaved" else plain,
                          max_simulations=max_simulations)
    deadline = f", deadline {deadline_s / 86400:.3g} days" if deadline_s else ""
    plan = PlanResult(kind="training", goal=goal,
                      objective="time_s" if goal == "fastest" else "cost_usd", x="time_s",
                      y="cost_usd", config_columns=LAYOUT_COLUMNS,
                      metric_columns=TRAINING_PLAN_METRICS, limit=deadline_s,
                      title=f"{scenario.name}: {goal} layout{deadline}",
                      max_expected_error=max_expected_error)
    search = _SizeSearch(plan=plan, space=space, global_batch=w.global_batch_size, ctx=ctx,
                         reference=scenario_layout(scenario),
                         executor=executor or InProcessExecutor())
    all_sizes = sorted(set(sizes or [scenario.cluster.accelerators]))
    search.run(all_sizes)
    _choose_layout(plan, top)
    note_winner_fleet(plan)
    _add_notes(plan, search, all_sizes, scenario)
    return plan


def _add_notes(plan: PlanResult, search: _SizeSearch, sizes: list[int],
               scenario: Scenario) -> None:
    """What was searched and pruned, the bound on simulations, and how the winner compares
    with the scenario's own layout."""
    skipped = [n for n in sizes if n not in search.by_size]
    counts, summary = pruning_summary(plan.pruned, plan.simulations)
    plan.pruning = counts
    bound = "every layout that fits" if search.ctx.exhaustive else (
        f"at most {search.ctx.max_simulations} per cluster size, the best by the analytic "
        f"step estimate, and the scenario's own layout")
    plan.notes[:0] = [f"cluster sizes evaluated: {sorted(search.by_size)}"
                      + (f"; skipped by monotonicity: {skipped}" if skipped else ""),
                      f"{summary}; simulated: {bound}"]
    ref = search.reference_row
    if ref is not None and ref.get("status") == OK and plan.winner is not None:
        key = plan.objective
        ratio = ref[key] / plan.winner[key] if plan.winner[key] else 1.0
        plan.notes.append(f"the scenario's own layout ({_describe(ref)}) takes "
                          f"{format_time(ref['time_s'])} and costs ${ref['cost_usd']:,.0f}; "
                          f"the winner's {'time' if key == 'time_s' else 'cost'} is "
                          f"{ratio:.3g}x lower")
    elif ref is not None and ref.get("status") != OK:
        plan.notes.append(f"the scenario's own layout ({_describe(ref)}) was not simulated: "
                          f"{ref.get('reason')}")
    elif ref is None:
        plan.notes.append(f"the scenario's own layout on {scenario.cluster.accelerators} "
                          "accelerators is outside the searched space or sizes")


def _describe(row: dict[str, Any]) -> str:
    """A layout in a few words, for the notes."""
    names = ("tp", "pp", "vpp", "dp", "micro_batch_size", "recompute", "zero")
    ends = f", end stages {row['first_stage_layers']}/{row['last_stage_layers']} layers" \
        if row["pp"] > 1 else ""
    return " ".join(f"{n}={row[n]}" for n in names) + ends


@dataclass(kw_only=True)
class _SizeSearch:
    """The walk over cluster sizes; each size is evaluated at most once (``by_size``)."""

    plan: PlanResult
    space: TrainingSpace
    global_batch: int
    ctx: TrainingContext
    reference: LayoutCandidate
    executor: Executor
    by_size: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    reference_row: dict[str, Any] | None = None
    estimates: dict[LayoutCandidate, float] = field(default_factory=dict)

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
        rows = [r for r in trusted(self.plan, self.by_size[n]) if r.get("status") == OK
                and (not need_deadline or r.get("meets_deadline"))]
        return ranked(rows, [key, "time_s" if key == "cost_usd" else "cost_usd"])[0] \
            if rows else None

    def _evaluate_size(self, n: int) -> list[dict[str, Any]]:
        """Every layout on ``n`` accelerators: screened, then the promising ones simulated."""
        todo = self._expand(n)
        screened = _in_order(self.executor.imap(screen_layout, self.ctx, todo))
        chosen = self._choose(todo, screened)
        rows = _in_order(self.executor.imap(simulate_layout, self.ctx, chosen))
        for layout, row in zip(chosen, rows, strict=True):
            row["estimate_step_s"] = self.estimates.get(layout)
        self.plan.evaluated.extend(rows)
        if self.reference in chosen:
            self.reference_row = rows[chosen.index(self.reference)]
        return rows

    def _expand(self, n: int) -> list[LayoutCandidate]:
        """The layouts on ``n`` accelerators with their pipeline options, those that pass
        the arithmetic (the others are pruned rows)."""
        todo: list[LayoutCandidate] = []
        options = {pp: self.space.pipelines(pp) for pp in self.space.pps}
        for shape in self.space.layouts(n):
            pruned_by, reason = quick_reject(shape, self.global_batch)
            if not pruned_by and not options[shape.pp]:
                pruned_by, reason = "layers", _no_split(self.space, shape.pp)
            if pruned_by:
                self.plan.pruned.append(pruned_row(shape, pruned_by, reason))
                continue
            for option in options[shape.pp]:
                layout = shape.with_pipeline(option)
                pruned_by, reason = quick_reject(layout, self.global_batch)
                if pruned_by:
                    self.plan.pruned.append(pruned_row(layout, pruned_by, reason))
                else:
                    todo.append(layout)
        if self.reference.accelerators == n and self.reference not in todo \
                and _in_space(self.space, self.reference):
            todo.append(self.reference)
        return todo

    def _estimate(self, layouts: list[LayoutCandidate]) -> dict[LayoutCandidate, float]:
        """The analytic step time of each layout, computed in groups that share a shape
        (and so the pricing of their chunks)."""
        groups: dict[LayoutCandidate, list[LayoutCandidate]] = {}
        for layout in layouts:
            shape = replace(layout, vpp=None, first_stage_layers=None, last_stage_layers=None)
            groups.setdefault(shape, []).append(layout)
        batches = [tuple(group) for group in groups.values()]
        times = _in_order(self.executor.imap(estimate_layouts, self.ctx, batches))
        estimates = {layout: t for batch, ts in zip(batches, times, strict=True)
                     for layout, t in zip(batch, ts, strict=True)}
        self.estimates.update(estimates)
        return estimates

    def _choose(self, todo: list[LayoutCandidate],
                screened: list[dict[str, Any]]) -> list[LayoutCandidate]:
        """Of the screened layouts, those to simulate: everything that fits with
        ``exhaustive``; otherwise the best ``max_simulations`` by the estimate of those a
        lighter recompute setting does not dominate, and the reference."""
        fitting = {layout: row for layout, row in zip(todo, screened, strict=True)
                   if row["status"] == OK}
        order = {layout: i for i, layout in enumerate(todo)}
        for layout, row in zip(todo, screened, strict=True):
            if row["status"] != OK:
                self.plan.pruned.append(row)
                if layout == self.reference:
                    self.reference_row = row
        if self.ctx.exhaustive:
            return list(fitting)
        open_ = []
        for layout in fitting:
            lighter = lighter_fits(layout, set(fitting), self.ctx.recomputes)
            if lighter and layout != self.reference:
                self.plan.pruned.append(pruned_row(
                    layout, "dominated", f"recompute={lighter} also fits and does less work"))
            else:
                open_.append(layout)
        estimates = self._estimate(open_)
        open_.sort(key=lambda lay: (estimates[lay], order[lay]))
        bound = self.ctx.max_simulations
        chosen = open_[:bound]
        for rank, layout in enumerate(open_[bound:], bound + 1):
            if layout == self.reference:  # always simulated, to compare the winner with
                chosen.append(layout)
                continue
            self.plan.pruned.append(pruned_row(layout, "bound", (
                f"analytic step estimate {estimates[layout]:.4g} s ranks "
                f"{rank} of {len(open_)}; the plan simulates the best {bound} "
                "(--max-simulations)")))
        return chosen


def _in_order(results: Iterator[tuple[int, Any]]) -> list[Any]:
    """An executor's results in the order of its items (they arrive as they finish)."""
    return [result for _, result in sorted(results, key=lambda pair: pair[0])]


def _no_split(space: TrainingSpace, pp: int) -> str:
    """Why ``pp`` stages have no pipeline option."""
    vpp = f" with vpp in {list(space.vpps)}" if space.vpps else ""
    ends = (f" and end stages of {space.split[0] or 'the same'}/{space.split[1] or 'the same'}"
            " layers" if space.split else " even with lighter end stages")
    return f"the model's {space.layers} layers do not split over pp={pp}{vpp}{ends}"


def _in_space(space: TrainingSpace, layout: LayoutCandidate) -> bool:
    """Whether each of ``layout``'s shape values is one the space searches."""
    return (layout.tp in space.tps and layout.pp in space.pps and layout.cp in space.cps
            and layout.ep in space.eps and layout.micro_batch_size in space.micro_batches
            and layout.recompute in space.recomputes and layout.zero in space.zeros
            and (space.vpps is None or layout.vpp in space.vpps))


def _choose_layout(plan: PlanResult, top: int) -> None:
    """The winner by the objective (the other cost breaks ties), the runners-up and the
    Pareto front of everything that ran."""
    fastest = plan.goal == "fastest"
    candidates = [r for r in trusted(plan, plan.evaluated) if r.get("status") == OK
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
    plan.pareto = pareto_front([r for r in plan.evaluated if eligible(plan, r)],
                               plan.x, plan.y)


def _first_meeting(sizes: list[int],
                   best_at: Callable[[int], dict[str, Any] | None]) -> int | None:
    """Index of the smallest size whose best row exists (binary search: assumes a larger
    cluster is never slower, so 'meets the deadline' is monotone in the size)."""
    # sentinels: nothing below index 0 meets, and "none meets" past the last size
    hi = first_true(lambda i: best_at(sizes[i]) is not None, -1, len(sizes))
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
