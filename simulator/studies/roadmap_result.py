"""The answer of ``xpusim roadmap`` as plain data: per month the fleet, its cost, its
utilisation and headroom; the orders to place; the totals; the sensitivity to growth.

The mapping :func:`run_roadmap` returns is the contract of ``--format json`` (field names
are added, never renamed); the CSV, the table and the HTML page are views of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from simulator.economics.cost import HOURS_PER_MONTH
from simulator.profiles.inference import InferenceWorkload
from simulator.studies.executors import Executor
from simulator.studies.roadmap import (
    DAYS_PER_MONTH,
    Figures,
    figures,
    first_month,
    scaled_growth,
    solve_roadmap,
)
from simulator.studies.roadmap_solver import Plan, Problem
from simulator.studies.roadmap_spec import Roadmap, load_roadmap
from simulator.studies.roadmap_verify import carriers, verify_plan

MEETS_SLACK = 1e-9  # relative: capacity this close to the peak carries it
VERIFY_SHARE = 0.4  # of the progress bar: the plan's simulated months (rough)


def run_roadmap(path: str | Path, progress: Callable[[float], None] | None = None, *,
                verify: bool = True, executor: Executor | None = None) -> dict[str, Any]:
    """Read the roadmap file, simulate each profile once, solve the plan and its
    sensitivity, and (``verify``) simulate each month's peak on the plan's fleet
    (:mod:`.roadmap_verify`, through ``executor``); the whole answer as JSON-ready data."""
    tick = progress or (lambda _fraction: None)
    share = VERIFY_SHARE if verify else 0.0
    spec, folder = load_roadmap(path)
    figs = figures(spec, folder, lambda f: tick(f * (1 - share)), str(path))
    peaks = spec.demand.peaks(spec.horizon_months)
    prob, plan = solve_roadmap(spec, figs, peaks)
    periods = _periods(spec, figs, prob, plan, peaks)
    simulations = _verify(spec, figs, prob, plan, periods, executor,
                          lambda f: tick(1 - share + f * share)) if verify else 0
    owned_cost = sum(p["owned_cost_usd"] for p in periods)
    paid_in_horizon = sum(sum(p["cost_by_option_usd"].values()) for p in periods)
    return {
        "name": spec.name, "scenario": spec.scenario, "horizon_months": spec.horizon_months,
        "headroom": spec.headroom, "verified": verify,
        "slo_percentile": _slo_percentile(figs),
        "day_shape": list(spec.demand.day_shape()) if spec.demand.daily_profile else None,
        "verify_simulations": simulations, "options": _options(spec, figs),
        "owned": [_owned(spec, figs, i) for i in range(len(spec.owned))],
        "periods": periods, "orders": _orders(spec, prob, plan),
        "total_cost_usd": plan.cost_usd + owned_cost,
        "new_hardware_cost_usd": plan.cost_usd, "owned_cost_usd": owned_cost,
        "lease_terms_after_horizon_usd": plan.cost_usd - paid_in_horizon,
        "total_energy_kwh": sum(p["energy_kwh"] for p in periods),
        "total_carbon_kg": sum(p["carbon_kg"] for p in periods),
        "months_short": [p["label"] for p in periods if p["shortfall_per_s"] > 0],
        "sensitivity": [_sensitivity(spec, figs, peaks, k, owned_cost)
                        for k in [1.0, *spec.sensitivity]],
        "notes": [*figs.notes, *_idle_owned(spec, figs), *_assumptions(spec),
                  *_verified_note(verify, simulations)],
    }


def _options(spec: Roadmap, figs: Figures) -> list[dict[str, Any]]:
    """What each option's block is and costs (an option that cannot serve: no block)."""
    rows = []
    for h in spec.hardware:
        block, replica = figs.blocks.get(h.id), figs.option_replica.get(h.id)
        row: dict[str, Any] = {"id": h.id, "profile": h.profile, "mode": h.price.mode.value,
                               "first_month": first_month(h.available_from_month,
                                                          h.lead_time_weeks),
                               "lead_time_weeks": h.lead_time_weeks, "max_units": h.max_units,
                               "serves": block is not None}
        if block is not None and replica is not None:
            row.update({"layout": replica.layout, "devices_per_replica": replica.devices,
                        "replica_rate_per_s": replica.rate_per_s,
                        "block_accelerators": block.accelerators, "block_units": block.units,
                        "unit_name": block.unit_name, "unit_plural": block.unit_plural,
                        "block_replicas": block.replicas,
                        "block_capacity_per_s": block.replicas * replica.rate_per_s,
                        "block_usd_per_month": block.month.cost_usd,
                        "block_breakdown_usd_per_month": block.month.breakdown_usd})
        rows.append(row)
    return rows


def _owned(spec: Roadmap, figs: Figures, index: int) -> dict[str, Any]:
    """An owned fleet as given, with the replicas it runs."""
    o, replica = spec.owned[index], figs.owned_replica[index]
    replicas = o.accelerators // replica.devices if replica.devices else 0
    return {"profile": o.profile, "accelerators": o.accelerators,
            "until_month": o.until_month, "mode": o.price.mode.value, "replicas": replicas,
            "capacity_per_s": replicas * replica.rate_per_s}


def _periods(spec: Roadmap, figs: Figures, prob: Problem, plan: Plan,
             peaks: list[float]) -> list[dict[str, Any]]:
    """One row per month (its fleet, cost and utilisation at the peak hour and over the
    day)."""
    rows = []
    labels = spec.labels()
    for t, blocks in enumerate(plan.blocks):
        capacity = figs.owned_capacity[t]
        units, accelerators, cost_by, cloud_hours = {}, {}, {}, {}
        energy = carbon = 0.0
        for n, mean, option in zip(blocks, plan.mean_blocks[t], prob.options, strict=True):
            block = figs.blocks[option.key]
            capacity += n * option.capacity_per_s
            units[option.key], accelerators[option.key] = n * block.units, n * block.accelerators
            cost_by[option.key] = mean * block.month.cost_usd
            energy += mean * block.month.energy_kwh
            carbon += mean * block.month.carbon_kg
            if not option.committed:
                cloud_hours[option.key] = mean * HOURS_PER_MONTH
        owned = figs.owned_cost[t]
        owned_usd = owned.cost_usd if owned else 0.0
        owned_acc = sum(o.accelerators for o in spec.owned
                        if o.until_month is None or t < o.until_month)
        peak = peaks[t]
        rows.append({
            "month": t, "label": labels[t], "peak_per_s": peak,
            "required_per_s": prob.required_per_s[t], "capacity_per_s": capacity,
            "utilization": peak / capacity if capacity else math.inf,
            **_day_figures(figs, prob, plan, t, peak),
            "headroom": capacity / peak - 1, "units": units, "accelerators": accelerators,
            "cloud_block_hours": cloud_hours,
            "owned_accelerators": owned_acc,
            "total_accelerators": owned_acc + sum(accelerators.values()),
            "cost_by_option_usd": cost_by, "owned_cost_usd": owned_usd,
            "cost_usd": owned_usd + sum(cost_by.values()),
            "energy_kwh": energy + (owned.energy_kwh if owned else 0.0),
            "carbon_kg": carbon + (owned.carbon_kg if owned else 0.0),
            "shortfall_per_s": plan.shortfall_per_s[t],
            "short_hours_share": plan.short_hours[t],
            "slo_share_at_peak": min(1.0, capacity / peak * (1 + MEETS_SLACK)),
            "slo_attainment": {}, "slo_attainment_fleet": None,
        })
    return rows


def _slo_percentile(figs: Figures) -> float | None:
    """The percentile the scenario's SLO targets apply to (None: no replica simulated)."""
    for replica in figs.replicas.values():
        w = replica.scenario.workload if replica.scenario is not None else None
        if isinstance(w, InferenceWorkload) and w.slo is not None:
            return w.slo.percentile
    return None


def _verify(spec: Roadmap, figs: Figures, prob: Problem, plan: Plan,
            periods: list[dict[str, Any]], executor: Executor | None,
            progress: Callable[[float], None]) -> int:
    """Add each month's simulated SLO attainment to its row; return the simulations run."""
    months, uses = [], []
    for t, period in enumerate(periods):
        groups, use = carriers(spec, figs, prob, plan, t, period["peak_per_s"])
        months.append(groups)
        uses.append(use)
    found, simulations = verify_plan(months, uses, executor, progress)
    for period, attainment in zip(periods, found, strict=True):
        period["slo_attainment"] = attainment.by_carrier
        # no fleet at all at a peak: no request is served, none meets the SLO
        period["slo_attainment_fleet"] = 0.0 if period["capacity_per_s"] == 0 \
            else attainment.fleet
    return simulations


def _day_figures(figs: Figures, prob: Problem, plan: Plan, month: int,
                 peak: float) -> dict[str, float]:
    """The month's utilisation over its day: at its least utilised hour (that hour's demand
    over the fleet in service then; usually the night), and the day's requests over the
    day's capacity in service (both hour-weighted)."""
    fractions, weights = prob.hours()
    demand, capacity = [], []
    for fraction, row in zip(fractions, plan.hour_blocks[month], strict=True):
        demand.append(peak * float(fraction))
        capacity.append(figs.owned_capacity[month]
                        + sum(n * o.capacity_per_s for n, o in zip(row, prob.options,
                                                                   strict=True)))
    held = float(sum(w * c for w, c in zip(weights, capacity, strict=True)))
    used = float(sum(w * d for w, d in zip(weights, demand, strict=True)))
    return {"trough_utilization": min(d / c if c else math.inf
                                      for d, c in zip(demand, capacity, strict=True)),
            "day_utilization": used / held if held else math.inf}


def _orders(spec: Roadmap, prob: Problem, plan: Plan) -> list[dict[str, Any]]:
    """Blocks to order: each rise of an option's count, placed its lead time before."""
    by_id = {h.id: h for h in spec.hardware}
    labels = spec.labels()
    orders = []
    for k, option in enumerate(prob.options):
        h = by_id[option.key]
        lead = math.ceil(h.lead_time_weeks * 7 / DAYS_PER_MONTH - 1e-9)
        before = 0
        for t, blocks in enumerate(plan.blocks):
            rise = blocks[k] - before
            before = blocks[k]
            if rise > 0 and option.committed:
                order = max(0, t - lead)
                orders.append({"option": option.key, "blocks": rise, "arrival_month": t,
                               "arrival": labels[t], "order_month": order,
                               "order_by": labels[order], "mode": h.price.mode.value})
    return orders


def _sensitivity(spec: Roadmap, figs: Figures, peaks: list[float], multiplier: float,
                 owned_cost: float) -> dict[str, Any]:
    """The plan re-solved with growth times ``multiplier`` (no new simulation)."""
    scaled = scaled_growth(peaks, multiplier)
    prob, plan = solve_roadmap(spec, figs, scaled)
    last = plan.blocks[-1]
    return {"growth_multiplier": multiplier, "final_peak_per_s": scaled[-1],
            "total_cost_usd": plan.cost_usd + owned_cost, "new_hardware_cost_usd": plan.cost_usd,
            "final_units": {o.key: n * figs.blocks[o.key].units
                            for n, o in zip(last, prob.options, strict=True)},
            "months_short": sum(1 for s in plan.shortfall_per_s if s > 0)}


def _idle_owned(spec: Roadmap, figs: Figures) -> list[str]:
    """A note for each owned fleet that is no whole number of replicas."""
    lines = []
    for i, (o, replica) in enumerate(zip(spec.owned, figs.owned_replica, strict=True)):
        if replica.devices and o.accelerators % replica.devices:
            lines.append(f"owned[{i}]: {o.accelerators:,} {replica.profile} run "
                         f"{o.accelerators // replica.devices:,} {replica.layout} replicas; "
                         f"{o.accelerators % replica.devices} accelerators idle (paid for)")
    return lines


def _verified_note(verify: bool, simulations: int) -> list[str]:
    """How the SLO attainment was measured, or that it was not."""
    if not verify:
        return ["SLO attainment not simulated (--no-verify): slo_share_at_peak is capacity's"]
    return [f"SLO met: each month's peak hour simulated on one replica per profile in "
            f"service, at its sustainable rate x the month's peak utilisation "
            f"({simulations} simulations); the share of requests meeting every target, "
            f"weighted by the requests each option carries"]


def _assumptions(spec: Roadmap) -> list[str]:
    """The model's assumptions, stated with every answer."""
    return [
        f"capacity covers each month's peak x {1 + spec.headroom:g} (headroom "
        f"{spec.headroom:.0%}); a replica carries its simulated sustainable rate within the "
        f"scenario's SLO",
        ("cloud blocks are rented by the hour, for the hours the owned and committed fleet "
         "fall short of the daily profile (the peak hour's count is shown)"
         if spec.demand.daily_profile is not None else
         "cloud blocks are chosen afresh each month")
        + "; lease and buy blocks stay, and are paid for, from arrival to the end of the "
          "horizon (a purchase's book value after it is not counted)",
        "orders are placed from month 0; an option arrives no earlier than its lead time and "
        "its availability",
        "power is priced at each replica's activity at its sustainable rate (an upper bound "
        "for a fleet with headroom); cloud and lease rates include power",
    ]
