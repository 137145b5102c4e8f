"""``xpusim roadmap``: the cheapest month-by-month fleet for a demand timeline.

1. **One simulation per profile, not per month.** Each hardware profile on offer (or owned)
   gets one replica's highest sustainable rate within the scenario's SLO, at its best
   layout, by the search ``compare`` uses (:func:`simulator.studies.compare_best.
   best_replica`, over :mod:`simulator.studies.capacity`). A replica's capacity does not
   depend on the month: the fleet a month needs is demand over that rate, in whole replicas.
2. **Blocks.** An option's block is the purchase unit that holds whole replicas with the
   fewest idle accelerators, the smallest such (an 8-GPU server holds one TP8 replica, an
   NVL72 rack nine; a replica wider than the largest unit takes several units). A block's
   capacity is its replicas times the replica rate; its monthly cost is the existing
   economics (:func:`simulator.economics.cost.run_cost`: cloud rent, or capital recovery,
   facility and electricity with the PUE) over a month of the replica's activity at its
   sustainable rate (an upper bound on power: a fleet with headroom runs below it).
3. **The plan** is the exact dynamic program of :mod:`.roadmap_solver`: each month's peak
   times ``1 + headroom`` covered, at the least total cost over the horizon, with lead times
   (an option arrives no earlier than its lead time after month 0, when orders are placed),
   availability, caps, and the owned fleet until its lease ends. With a daily profile each
   hour of the day is covered at its own demand, and cloud blocks are rented for the hours
   they are needed.
4. **Sensitivity.** The plan is re-solved with each month's rise over month 0 scaled by
   ``sensitivity`` (0.5x and 1.5x growth by default); the capacities are reused, so this
   costs no simulation.
5. **The SLO, measured.** Each month's peak is then simulated on the plan's fleet, one
   replica per profile at the month's peak utilisation (:mod:`.roadmap_verify`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.economics.cost import HOURS_PER_MONTH, CostReport, billed_cost, summed
from simulator.errors import InputError, XpusimError
from simulator.profiles.catalog import load_hardware, looks_like_path
from simulator.profiles.hardware import HardwareProfile
from simulator.profiles.overrides import apply_overrides
from simulator.profiles.scenario import Scenario
from simulator.profiles.yaml_source import YamlDocument, read_yaml
from simulator.studies.capacity import check_searchable
from simulator.studies.compare_best import best_replica
from simulator.studies.compare_layout import Unfit, cost_data, error_line, validated
from simulator.studies.roadmap_solver import Option, Problem, TooLarge, solve
from simulator.studies.roadmap_spec import (
    OwnedFleet,
    Price,
    PriceMode,
    Roadmap,
    Site,
    cost_assumptions,
)

DAYS_PER_MONTH = 365.25 / 12
MONTH_S = HOURS_PER_MONTH * 3600


@dataclass(frozen=True, kw_only=True)
class Replica:
    """One replica of a profile at its best within the SLO."""

    profile: str
    layout: str
    devices: int
    rate_per_s: float
    busy: float
    memory: float
    note: str
    scenario: Scenario | None = None  # one replica at its best layout (None: cannot serve)


@dataclass(frozen=True, kw_only=True)
class Block:
    """An option's block: accelerators, purchase units and replicas, and what a month of it
    costs (its :class:`CostReport` over a month)."""

    accelerators: int
    units: int
    replicas: int
    month: CostReport
    unit_name: str  # the purchase unit, singular
    unit_plural: str


@dataclass(kw_only=True)
class Figures:
    """The simulated inputs of a plan: a replica per profile, a block per option, the owned
    fleet's monthly capacity and cost."""

    replicas: dict[str, Replica]  # by profile reference
    blocks: dict[str, Block]  # by option id
    option_replica: dict[str, Replica]  # by option id
    owned_replica: list[Replica]  # in the order of ``owned``
    owned_capacity: list[float]
    owned_cost: list[CostReport | None]
    notes: list[str] = field(default_factory=list)


def _scenario_base(spec: Roadmap, folder: Path, file: str | None,
                   ) -> tuple[dict[str, Any], YamlDocument, Path, int]:
    """The base scenario's mapping (overrides applied), document, folder and accelerators."""
    path = Path(spec.scenario)
    path = path if path.is_absolute() else folder / path
    doc = read_yaml(path)
    if not isinstance(doc.data, dict):
        raise InputError("a scenario must be a mapping of fields", file=doc.file)
    data = dict(doc.data)
    for i, override in enumerate(spec.set):
        try:
            data = apply_overrides(data, [override])
        except InputError as exc:
            raise InputError(exc.message.replace("--set ", ""), file=file,
                             path=f"set[{i}]") from None
    written = validated(data, doc, path.resolve().parent)
    try:
        check_searchable(written)
    except InputError as exc:
        raise InputError(f"{exc.message} (roadmaps plan over its sustainable rate)",
                         file=doc.file) from None
    n0 = written.cluster.accelerators
    data = {**data, "cluster": {**(data.get("cluster") or {}), "accelerators": n0}}
    return data, doc, path.resolve().parent, n0


def _profile(ref: str, folder: Path, where: str, file: str | None,
             ) -> tuple[str, HardwareProfile]:
    """A profile id or path (relative to the roadmap file) and the profile."""
    ref = str((folder / ref).resolve()) if looks_like_path(ref) else ref
    try:
        return ref, load_hardware(ref)
    except InputError as exc:
        raise InputError(exc.message, file=file, path=where) from None


def _replica(base: tuple[dict[str, Any], YamlDocument, Path, int], ref: str,
             hw: HardwareProfile, tick: Callable[[float], None]) -> Replica:
    """``hw``'s replica at its best within the SLO; no devices where none meets it."""
    data, doc, base_dir, n0 = base
    cost, _ = cost_data(data, hw.id, None)
    try:
        best, _, _ = best_replica({**data, "hardware": ref, "cost": cost}, doc, base_dir,
                                  hw, n0, tick)
    except (Unfit, XpusimError) as exc:
        reason = exc.reason if isinstance(exc, Unfit) else error_line(exc)
        return Replica(profile=hw.id, layout="-", devices=0, rate_per_s=0.0, busy=0.0,
                       memory=0.0, note=f"{hw.id} cannot serve the scenario: {reason}")
    assert best.rate is not None and best.result is not None
    use = best.result.utilization
    return Replica(profile=hw.id, layout=best.layout, devices=best.devices,
                   rate_per_s=best.rate, busy=use.busy, memory=use.memory_bandwidth,
                   scenario=best.scenario,
                   note=f"{hw.id}: one {best.layout} replica meets the SLO up to "
                        f"{best.rate:.4g} req/s ({best.describe})")


def _month_cost(hw: HardwareProfile, price: Price, site: Site, accelerators: int,
                replica: Replica, used: int) -> CostReport:
    """A month of ``accelerators`` devices, ``used`` of them as busy as the replica at its
    sustainable rate."""
    return billed_cost(hw, cost_assumptions(price, site), billed=accelerators, used=used,
                       time_s=MONTH_S, busy=replica.busy, memory_bandwidth=replica.memory)


def _block(hw: HardwareProfile, replica: Replica, price: Price, site: Site) -> Block:
    """The purchase unit that holds replicas with the fewest idle accelerators (the
    smallest of those; a replica wider than the largest unit takes several), and a month of
    it. With one size (a server, a rack) that is the unit; among TPU slices, the smallest
    slice that a replica fills."""
    sizes, d = hw.unit.sizes.value, replica.devices
    if d > sizes[-1]:
        units, replicas = math.ceil(d / sizes[-1]), 1
        accelerators = units * sizes[-1]
    else:
        units = 1
        accelerators = max((s for s in sizes if s >= d), key=lambda s: (s // d / s, -s))
        replicas = accelerators // d
    return Block(accelerators=accelerators, units=units, replicas=replicas,
                 unit_name=hw.unit.plural_name(1), unit_plural=hw.unit.plural_name(),
                 month=_month_cost(hw, price, site, accelerators, replica, replicas * d))


def first_month(available_from: int, lead_time_weeks: float) -> int:
    """The first month an option can be in service: its availability, and no earlier than
    its lead time after month 0 (orders are placed from month 0)."""
    lead = math.ceil(lead_time_weeks * 7 / DAYS_PER_MONTH - 1e-9)
    return max(available_from, lead)


def _share(tick: Callable[[float], None], k: int, of: int) -> Callable[[float], None]:
    """Progress within the ``k``-th of ``of`` searches as a fraction of them all."""
    return lambda fraction: tick((k + min(fraction, 1.0)) / of)


def figures(spec: Roadmap, folder: Path, tick: Callable[[float], None],
            file: str | None = None) -> Figures:
    """Simulate each profile once and price each option's block and the owned fleet
    (``file``: the roadmap file, named in errors)."""
    refs = [_profile(h.profile, folder, f"hardware[{i}].profile", file)
            for i, h in enumerate(spec.hardware)]
    refs += [_profile(o.profile, folder, f"owned[{i}].profile", file)
             for i, o in enumerate(spec.owned)]
    base = _scenario_base(spec, folder, file)
    replicas: dict[str, Replica] = {}
    distinct = dict(refs)
    for k, (ref, hw) in enumerate(distinct.items()):
        replicas[ref] = _replica(base, ref, hw, _share(tick, k, len(distinct)))
    out = Figures(replicas=replicas, blocks={}, option_replica={},
                  owned_replica=[replicas[ref] for ref, _ in refs[len(spec.hardware):]],
                  owned_capacity=[0.0] * spec.horizon_months,
                  owned_cost=[None] * spec.horizon_months)
    out.notes += [r.note for r in replicas.values()]
    for i, (option, (ref, hw)) in enumerate(zip(spec.hardware, refs, strict=False)):
        replica = replicas[ref]
        if replica.devices:
            with _blamed(file, f"hardware[{i}].price"):
                out.blocks[option.id] = _block(hw, replica, option.price, spec.site)
            out.option_replica[option.id] = replica
    for i, (owned, (ref, hw)) in enumerate(zip(spec.owned, refs[len(spec.hardware):],
                                               strict=True)):
        with _blamed(file, f"owned[{i}].price"):
            _add_owned(out, spec, owned, hw, replicas[ref])
    return out


@contextmanager
def _blamed(file: str | None, where: str) -> Iterator[None]:
    """Report a pricing error (a rent-only part bought) against the roadmap's field."""
    try:
        yield
    except InputError as exc:
        raise InputError(exc.message, file=file, path=where) from None


def _add_owned(out: Figures, spec: Roadmap, owned: OwnedFleet, hw: HardwareProfile,
               replica: Replica) -> None:
    """Add an owned fleet's capacity and cost to every month it is in service (a profile
    that cannot serve the scenario adds its cost but no capacity)."""
    end = spec.horizon_months if owned.until_month is None else min(owned.until_month,
                                                                    spec.horizon_months)
    count = owned.accelerators // replica.devices if replica.devices else 0
    cost = _month_cost(hw, owned.price, spec.site, owned.accelerators, replica,
                       count * replica.devices)
    for t in range(end):
        out.owned_capacity[t] += count * replica.rate_per_s
        prior = out.owned_cost[t]
        out.owned_cost[t] = cost if prior is None else summed([prior, cost], mode="mixed")


def problem(spec: Roadmap, figs: Figures, peaks: list[float]) -> Problem:
    """The solver's problem for ``peaks`` (one per month)."""
    options = []
    for h in spec.hardware:
        block = figs.blocks.get(h.id)
        if block is None:
            continue
        replica_rate = figs.option_replica[h.id].rate_per_s
        max_blocks = None if h.max_units is None else h.max_units // block.units
        options.append(Option(key=h.id, capacity_per_s=block.replicas * replica_rate,
                              usd_per_month=block.month.cost_usd, committed=h.price.committed,
                              first_month=first_month(h.available_from_month,
                                                      h.lead_time_weeks),
                              max_blocks=max_blocks,
                              min_term_months=h.price.lease_term_months
                              if h.price.mode is PriceMode.LEASE else 0))
    return Problem(required_per_s=tuple(p * (1 + spec.headroom) for p in peaks),
                   existing_per_s=tuple(figs.owned_capacity), options=tuple(options),
                   day_shape=spec.demand.day_shape())


def scaled_growth(peaks: list[float], multiplier: float) -> list[float]:
    """Each month's rise over month 0 times ``multiplier`` (never below zero)."""
    return [max(0.0, peaks[0] + multiplier * (p - peaks[0])) for p in peaks]


def solve_roadmap(spec: Roadmap, figs: Figures, peaks: list[float]) -> tuple[Problem, Any]:
    """The problem and its optimal plan; a problem too large is the user's to shrink."""
    prob = problem(spec, figs, peaks)
    if not prob.options and not any(figs.owned_capacity):
        raise InputError("no hardware option can serve the scenario within its SLO: "
                         + "; ".join(figs.notes), path="hardware")
    try:
        return prob, solve(prob)
    except TooLarge as exc:
        raise InputError(str(exc), path="hardware") from None
