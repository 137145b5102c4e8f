"""Screening training layouts before simulating them, and why each one was pruned.

A layout goes through, cheapest test first, until one prunes it (its ``pruned_by``):

1. arithmetic on the shape (:func:`quick_reject`): tp·pp·cp divides the cluster, the global
   batch splits over dp × micro-batch, the layers split over the pipeline, and the
   interleaved schedule gets microbatches in multiples of pp;
2. the scenario's own checks and the memory footprint (:func:`screen_layout`, in a worker);
3. dominance: a lighter recompute setting of the same layout also fits, so this one only
   adds work;
4. the bound: what is left is priced and its step time estimated by formula
   (:func:`estimate_layouts`), and only the
   ``max_simulations`` best by that estimate (and the scenario's own layout, the reference)
   are simulated (:func:`simulate_layout`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from simulator.errors import InputErrors, XpusimError
from simulator.loading import scenario_from_dict
from simulator.perf.footprint import training_footprint
from simulator.profiles.overrides import apply_overrides
from simulator.profiles.scenario import Scenario
from simulator.studies.rows import OK, Base, one_line, result_metrics, run_point
from simulator.studies.training_space import RECOMPUTE_ORDER, LayoutCandidate

# why a layout was not simulated, in the order the tests run, as the terminal counts them
PRUNE_REASONS = {
    "shape": "tp*pp*cp does not divide the cluster",
    "batch": "global batch does not split over dp x micro-batch",
    "layers": "layers do not split over the pipeline (pp, vpp, end stages)",
    "interleave": "interleaved schedule without microbatches in multiples of pp",
    "invalid": "rejected by the scenario's checks",
    "memory": "do not fit memory",
    "dominated": "a lighter recompute setting also fits",
    "bound": "below the simulation bound by the analytic estimate",
}
_STATUS = {"memory": "does_not_fit", "dominated": "dominated", "bound": "not_simulated"}


@dataclass(frozen=True, kw_only=True)
class TrainingContext:
    """What every worker needs: the base scenario and the rules of the search."""

    base: Base
    exhaustive: bool = False
    deadline_s: float | None = None
    recomputes: tuple[str, ...] = RECOMPUTE_ORDER  # the settings searched (dominance is
    # only claimed by a lighter setting that is itself in the search)
    plain_schedule: str = "1f1b"  # the schedule of a layout with vpp 1
    max_simulations: int = 16  # per cluster size, besides the reference


def pruned_row(layout: LayoutCandidate, pruned_by: str, reason: str) -> dict[str, Any]:
    """The row of a layout that was not simulated, and why."""
    status = _STATUS.get(pruned_by, "infeasible")
    return {**layout.labels(), "simulated": False, "status": status, "pruned_by": pruned_by,
            "reason": reason}


def layout_overrides(layout: LayoutCandidate, ctx: TrainingContext) -> list[str]:
    """The ``--set`` overrides that turn the base scenario into ``layout`` (its pipeline
    options expanded): vpp > 1 runs the interleaved schedule."""
    par = "workload.parallelism"
    vpp = layout.vpp or 1
    schedule = "interleaved" if vpp > 1 else ctx.plain_schedule
    ends = ("null", "null") if layout.pp == 1 else tuple(
        "null" if n is None else n for n in (layout.first_stage_layers,
                                             layout.last_stage_layers))
    return [f"cluster.accelerators={layout.accelerators}", f"{par}.tp={layout.tp}",
            f"{par}.pp={layout.pp}", f"{par}.cp={layout.cp}", f"{par}.ep={layout.ep}",
            f"{par}.dp=null", f"{par}.zero={layout.zero}", f"{par}.vpp={vpp}",
            f"{par}.first_stage_layers={ends[0]}", f"{par}.last_stage_layers={ends[1]}",
            f"workload.pipeline_schedule={schedule}",
            f"workload.micro_batch_size={layout.micro_batch_size}",
            f"workload.recompute={layout.recompute}"]


def quick_reject(layout: LayoutCandidate, global_batch: int) -> tuple[str, str]:
    """(pruned_by, reason) from arithmetic on the shape; ('', '') when it passes."""
    shape = layout.tp * layout.pp * layout.cp
    if layout.accelerators % shape:
        return "shape", (f"tp*pp*cp = {shape} does not divide {layout.accelerators} "
                         f"accelerators")
    if global_batch % (layout.dp * layout.micro_batch_size):
        return "batch", (f"global_batch_size {global_batch} is not a multiple of "
                         f"dp*micro_batch_size = {layout.dp}*{layout.micro_batch_size}")
    microbatches = global_batch // (layout.dp * layout.micro_batch_size)
    if (layout.vpp or 1) > 1 and microbatches % layout.pp:
        return "interleave", (f"vpp={layout.vpp} runs the interleaved schedule, which needs "
                              f"the {microbatches} microbatches in multiples of "
                              f"pp={layout.pp}")
    return "", ""


def _scenario(ctx: TrainingContext, layout: LayoutCandidate) -> Scenario:
    """The base scenario turned into ``layout`` (validated: raises the input errors)."""
    overrides = layout_overrides(layout, ctx)
    return scenario_from_dict(apply_overrides(ctx.base.data, overrides),
                              base_dir=ctx.base.base_dir, overrides=overrides)


def screen_layout(ctx: TrainingContext, layout: LayoutCandidate) -> dict[str, Any]:
    """The task a worker runs for one layout before any simulation: a row with status ``ok``
    when it validates and fits, else pruned with the reason."""
    try:
        scenario = _scenario(ctx, layout)
    except InputErrors as exc:
        return pruned_row(layout, "invalid", one_line("; ".join(e.render() for e in exc.errors)))
    except XpusimError as exc:
        return pruned_row(layout, "invalid", one_line(str(exc)))
    footprint = training_footprint(scenario)
    if not footprint.fits:
        return pruned_row(layout, "memory", one_line(footprint.verdict()))
    return {**layout.labels(), "simulated": False, "status": OK, "pruned_by": "", "reason": ""}


def estimate_layouts(ctx: TrainingContext, layouts: tuple[LayoutCandidate, ...]) -> list[float]:
    """The task a worker runs for layouts that fit and differ only in their pipeline split:
    their analytic step times, seconds (:func:`simulator.simulate.estimate_step_times`,
    which prices their chunks once)."""
    from simulator.simulate import estimate_step_times

    return estimate_step_times([_scenario(ctx, layout) for layout in layouts])


def simulate_layout(ctx: TrainingContext, layout: LayoutCandidate) -> dict[str, Any]:
    """The task a worker runs for a layout that made it through screening: its row."""
    status, reason, result = run_point(ctx.base, layout_overrides(layout, ctx))
    row: dict[str, Any] = {**layout.labels(), "simulated": True, "status": status,
                           "pruned_by": "", "reason": reason}
    if result is not None:
        metrics = result_metrics(result, "training")
        metrics.pop("accelerators")
        row.update(metrics)
        row["meets_deadline"] = ctx.deadline_s is None or row["time_s"] <= ctx.deadline_s
    return row


def lighter_fits(layout: LayoutCandidate, fitting: set[LayoutCandidate],
                 recomputes: tuple[str, ...]) -> str:
    """A lighter recompute setting (among those searched) with which ``layout`` also fits,
    or ''."""
    if layout.recompute not in RECOMPUTE_ORDER:
        return ""
    for lighter in RECOMPUTE_ORDER[:RECOMPUTE_ORDER.index(layout.recompute)]:
        if lighter in recomputes and layout.with_recompute(lighter) in fitting:
            return lighter
    return ""


def pruning_summary(pruned: list[dict[str, Any]], simulated: int) -> tuple[dict[str, int], str]:
    """Counts of the pruned layouts by reason, and the sentence the terminal shows."""
    counts = Counter(row.get("pruned_by") or "invalid" for row in pruned)
    ordered = {key: counts[key] for key in PRUNE_REASONS if counts[key]}
    total = simulated + len(pruned)
    parts = ", ".join(f"{n:,} {PRUNE_REASONS[key]}" for key, n in ordered.items())
    text = f"{total:,} layouts: {simulated:,} simulated, {len(pruned):,} pruned"
    return ordered, text + (f" ({parts})" if parts else "")
