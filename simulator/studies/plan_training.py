"""Training plans: layouts (TP/PP/CP/EP, micro-batch, recompute, ZeRO) at each cluster size.

Each layout is one task for a worker, which

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

from dataclasses import asdict, dataclass
from typing import Any

from simulator.errors import InputErrors, XpusimError
from simulator.loading import scenario_from_dict
from simulator.perf.footprint import training_footprint
from simulator.profiles.overrides import apply_overrides
from simulator.studies.rows import OK, Base, one_line, result_metrics, run_point

RECOMPUTE_ORDER = ("none", "selective", "full")  # least work first
LAYOUT_COLUMNS = ["accelerators", "tp", "pp", "dp", "cp", "ep", "micro_batch_size",
                  "recompute", "zero"]


@dataclass(frozen=True)
class Layout:
    """One training layout on ``accelerators`` devices (dp is what is left)."""

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
        return self.accelerators // (self.tp * self.pp * self.cp)

    def labels(self) -> dict[str, Any]:
        return {**asdict(self), "dp": self.dp}


@dataclass(frozen=True)
class TrainingContext:
    base: Base
    exhaustive: bool = False
    keep_stage_layers_for_pp: int | None = None  # the scenario's pp, where its split applies
    deadline_s: float | None = None
    recomputes: tuple[str, ...] = RECOMPUTE_ORDER  # the settings searched (dominance is
    # only claimed by a lighter setting that is itself in the search)


def layout_overrides(layout: Layout, ctx: TrainingContext) -> list[str]:
    par = "workload.parallelism"
    overrides = [f"cluster.accelerators={layout.accelerators}", f"{par}.tp={layout.tp}",
                 f"{par}.pp={layout.pp}", f"{par}.cp={layout.cp}", f"{par}.ep={layout.ep}",
                 f"{par}.dp=null", f"{par}.zero={layout.zero}",
                 f"workload.micro_batch_size={layout.micro_batch_size}",
                 f"workload.recompute={layout.recompute}"]
    if layout.pp != ctx.keep_stage_layers_for_pp:
        overrides += [f"{par}.first_stage_layers=null", f"{par}.last_stage_layers=null"]
    return overrides


def quick_reject(layout: Layout, global_batch: int) -> str:
    """Arithmetic a layout must pass before it is worth validating ('' when it passes)."""
    shape = layout.tp * layout.pp * layout.cp
    if layout.accelerators % shape:
        return f"tp*pp*cp = {shape} does not divide {layout.accelerators} accelerators"
    if global_batch % (layout.dp * layout.micro_batch_size):
        return (f"global_batch_size {global_batch} is not a multiple of dp*micro_batch_size = "
                f"{layout.dp}*{layout.micro_batch_size}")
    return ""


def _fits(ctx: TrainingContext, layout: Layout) -> tuple[str, str]:
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


def evaluate_layout(ctx: TrainingContext, layout: Layout) -> dict[str, Any]:
    """The task a worker runs for one layout: a row, simulated only if it may win."""
    row: dict[str, Any] = {**layout.labels(), "simulated": False}
    status, reason = _fits(ctx, layout)
    if status == OK and not ctx.exhaustive and layout.recompute in RECOMPUTE_ORDER:
        lighter_ones = RECOMPUTE_ORDER[:RECOMPUTE_ORDER.index(layout.recompute)]
        for lighter in (r for r in lighter_ones if r in ctx.recomputes):
            other = Layout(**{**asdict(layout), "recompute": lighter})
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
