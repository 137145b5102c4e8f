"""``xpusim plan``: goal-seeking over deployments (serving) or layouts and cluster sizes
(training), with the winner, the runners-up and the Pareto front.

Serving (:func:`simulator.studies.plan_serving.plan_serving`): the cheapest deployment
(profile, precision, TP/EP, batch limit, replicas) that meets every SLO target of the
scenario at a target arrival rate. Shapes that cannot fit are pruned before simulating; the
replica count of each shape is found by binary search.

Training (:func:`simulator.studies.plan_training.plan_training`): the fastest or the
cheapest layout (TP/PP/CP/EP, micro-batch, recompute, ZeRO; DP is what is left) and cluster
size, fitting memory and, with a deadline, finishing in time. Layouts that cannot fit, or
are dominated by a lighter recompute setting that fits, are pruned before simulating. Across
sizes the search assumes that the best time falls as the cluster grows and the cost grows
with it: *cheapest* binary-searches for the smallest size that meets the deadline, then
walks up while the cost still falls; *fastest* starts at the largest size and walks down
while the time still falls.

This module holds what both searches share: the answer (:class:`PlanResult`) and how rows
are ranked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.loading import scenario_from_dict
from simulator.profiles.hardware import HardwareProfile
from simulator.profiles.model import ModelProfile
from simulator.profiles.scenario import Scenario
from simulator.studies.pareto import plot_front
from simulator.studies.rows import OK, Base


@dataclass(kw_only=True)
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
    pruning: dict[str, int] = field(default_factory=dict)  # pruned candidates by reason
    notes: list[str] = field(default_factory=list)
    limit: float | None = None  # the deadline or the latency target, for the plot
    title: str = ""
    max_expected_error: float | None = None  # candidates less trustworthy are dropped

    @property
    def simulations(self) -> int:
        """How many scenarios were simulated (pruned candidates cost none)."""
        return len(self.evaluated)

    def as_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready data (``xpusim plan --format json``)."""
        keys = ("kind", "goal", "objective", "x", "y", "winner", "runners_up", "pareto",
                "notes", "limit")
        out = {k: getattr(self, k) for k in keys}
        out.update(simulations=self.simulations, pruned=len(self.pruned),
                   pruned_by_reason=self.pruning,
                   evaluated=self.evaluated, pruned_candidates=self.pruned,
                   max_expected_error=self.max_expected_error,
                   dropped_for_error=self.dropped_for_error())
        return out

    def dropped_for_error(self) -> dict[str, int]:
        """How many simulated candidates ``max_expected_error`` dropped, by reason."""
        counts: dict[str, int] = {}
        for row in self.evaluated:
            if row.get(DROPPED):
                reason = row[DROPPED].split(":")[0]
                counts[reason] = counts.get(reason, 0) + 1
        return counts

    def plot(self, path: str | Path) -> str | None:
        """Write the Pareto plot; returns None, or why there is no plot."""
        candidates = [r for r in self.evaluated if eligible(self, r)]
        if not candidates:
            return "nothing met the goal; no plot"
        days = self.x == "time_s" and max(r[self.x] for r in candidates) > 2 * 86400
        x_label = "time to train, days (with failures)" if days \
            else _AXIS_LABELS.get(self.x, self.x)
        return plot_front(Path(path), candidates, self.pareto, self.x, self.y,
                          winner=self.winner, title=self.title, x_limit=self.limit,
                          limit_label="deadline" if self.kind == "training" else "SLO target",
                          x_label=x_label, y_label=_AXIS_LABELS.get(self.y, self.y),
                          x_divisor=86400.0 if days else 1.0)


_AXIS_LABELS = {"time_s": "time to train, s (with failures)", "cost_usd": "cost, USD",
                "usd_per_hour": "fleet cost, USD per hour", "ttft_p99_s": "p99 TTFT, s",
                "tpot_p99_s": "p99 TPOT, s", "e2e_p99_s": "p99 end-to-end latency, s"}


def note_winner_fleet(plan: PlanResult, devices_per_replica: int | None = None) -> None:
    """Say how the winner's fleet is billed: whole purchase units (servers, racks, slices),
    with any accelerators paid for but unused and, for serving, how many more replicas
    they would hold at no extra cost."""
    winner = plan.winner
    if winner is None or winner.get("billed_accelerators") is None:
        return
    if winner.get("warnings"):
        plan.notes.append(f"the winner: {winner['warnings']}")
    unused = winner["billed_accelerators"] - winner["accelerators"]
    if devices_per_replica and unused >= devices_per_replica:
        plan.notes.append(f"the winner's {unused} unused accelerators would hold "
                          f"{unused // devices_per_replica} more replicas at no extra cost")


def eligible(plan: PlanResult, row: dict[str, Any]) -> bool:
    """Whether ``row`` may be the answer: it ran, its confidence meets the plan's
    ``max_expected_error`` (if any) and, for serving, it met the SLO."""
    if row.get("status") != OK:
        return False
    if plan.max_expected_error is not None and error_reason(plan.max_expected_error, row):
        return False
    if plan.kind == "inference":
        return bool(row.get("meets_slo"))
    return True


DROPPED = "dropped_for_error"  # the row column saying why --max-expected-error dropped it


def error_reason(limit: float, row: dict[str, Any]) -> str:
    """Why a row's confidence does not meet ``limit`` ('' when it does): extrapolation, no
    band at all, or a throughput band whose median |error| is above it."""
    if row.get("extrapolation"):
        return f"extrapolation: {row['extrapolation']}"
    error = row.get("expected_error")
    if error is None:
        return "no error band: no held-out published case of this kind"
    if error > limit:
        return (f"expected error above the maximum: {error:.1%} > {limit:.1%} "
                f"({row.get('error_band_cases')} cases; matched {row.get('error_band_level')})")
    return ""


def trusted(plan: PlanResult, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` whose confidence meets ``plan.max_expected_error`` (all without one); the
    others that ran are marked with the reason in their :data:`DROPPED` column (rows that
    did not run are kept: their status already rules them out)."""
    if plan.max_expected_error is None:
        return rows
    kept = []
    for row in rows:
        reason = error_reason(plan.max_expected_error, row) if row.get("status") == OK else ""
        if reason:
            row[DROPPED] = reason
        else:
            kept.append(row)
    return kept


def ranked(rows: list[dict[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """``rows`` sorted by ``keys`` (the first is the objective, the rest break ties). Floats
    compare to 12 significant digits: fleets of the same whole units cost the same per hour
    up to rounding noise (cost / simulated hours), and the tie-breakers must then decide."""
    return sorted(rows, key=lambda r: tuple(_comparable(r[k]) for k in keys))


def _comparable(value: Any) -> Any:
    """``value`` with a float's last digits of rounding noise dropped."""
    return float(f"{value:.12g}") if isinstance(value, float) else value


def base_scenario(base: Base) -> Scenario:
    """The unmodified scenario a plan starts from, validated (its errors are the user's)."""
    return scenario_from_dict(base.data, base_dir=base.base_dir)


def default_tps(hardware: HardwareProfile, model: ModelProfile) -> list[int]:
    """Powers of two up to 8 that fit the scale-up domain and divide the attention heads."""
    domain = hardware.scale_up.domain_size.value
    return [tp for tp in (1, 2, 4, 8) if tp <= domain and model.attention_heads % tp == 0]
