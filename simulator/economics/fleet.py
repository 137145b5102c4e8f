"""How many accelerators a run is billed for: whole purchase units (servers, racks, slices).

A scenario's layout *uses* some accelerators (serving: replicas x devices per replica;
training: the whole tp x pp x dp x cp grid). They come in units (``hardware.purchase_unit``,
:mod:`simulator.profiles.purchase_unit`), so a fleet is billed in whole units:

- **Jobs.** A job is what must sit inside units of its own: a serving replica (several share
  a unit when they fit), or a whole training run. Jobs of ``d`` accelerators, ``k`` of them:

      d > largest size L:  each takes ceil(d / L) units of size L   (spans servers or slices)
      d <= L:              the cheapest single size s >= d holding them, floor(s / d) per
                           unit: ceil(k / floor(s / d)) units of size s

  With one size (an 8-GPU server) this is ceil(used / 8) servers for power-of-two replicas;
  with TPU slices a 300-chip training run takes two 256-chip slices, ten TP=2 replicas on
  v5e take five 4-chip slices. A disaggregated deployment bills its two pools separately.
- **Billing rules** (:class:`Billing`). ``used`` (plans, comparisons, sweeps): the whole
  units the layout needs, whatever ``cluster.accelerators`` says; those answer "what
  deployment to buy or rent", so they bill what a buyer would pay for it. ``fleet``
  (``xpusim run``): the fleet the scenario declares, idle accelerators included; rounded up
  to whole units only where the cloud price rents whole units only (``rented_whole``, cost
  mode ``cloud``). A price per device-hour of a part rented by the device is honest for
  any count, and an owned fleet's capital is a per-device share of servers and racks
  (``price.purchase_per_device``), so ``run`` bills those as declared and warns. ``exact``
  (a comparison's one-replica capacity probes): the accelerators as declared, the replica's
  share of a larger fleet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from simulator.profiles.inference import InferenceWorkload
from simulator.profiles.layout_checks import used_accelerators
from simulator.profiles.purchase_unit import PurchaseUnit
from simulator.profiles.scenario import Scenario


class Billing(StrEnum):
    """Which accelerators a run pays for (module docstring)."""

    FLEET = "fleet"  # cluster.accelerators, whole units where the part is sold only so
    USED = "used"  # the whole units the layout uses
    EXACT = "exact"  # cluster.accelerators as they are: one replica's share of a fleet


@dataclass(frozen=True, kw_only=True)
class Fleet:
    """The accelerators a run uses and is billed for, and the whole units they make."""

    used: int
    cluster: int
    billed: int
    units: int
    unit: PurchaseUnit
    billing: Billing

    @property
    def unused(self) -> int:
        """Billed accelerators no replica or rank runs on."""
        return self.billed - self.used


def units_for_jobs(unit: PurchaseUnit, jobs: list[tuple[int, int]]) -> tuple[int, int]:
    """(accelerators billed, units) for ``jobs``: (devices per job, number of jobs) pairs."""
    billed = units = 0
    largest = unit.largest
    for devices, count in jobs:
        if count <= 0:
            continue
        if devices > largest:
            per_job = math.ceil(devices / largest)
            billed, units = billed + count * per_job * largest, units + count * per_job
            continue
        options = [(math.ceil(count / (size // devices)) * size, size)
                   for size in unit.sizes.value if size >= devices]
        cost, size = min(options)
        billed, units = billed + cost, units + cost // size
    return billed, units


def layout_jobs(scenario: Scenario) -> list[tuple[int, int]]:
    """The scenario's jobs: its replicas (per pool) for serving, one run for training."""
    w = scenario.workload
    n = scenario.cluster.accelerators
    if not isinstance(w, InferenceWorkload):
        return [(n, 1)]
    if w.disaggregation is not None:
        d = w.disaggregation
        return [((d.prefill_parallelism or w.parallelism).devices, d.prefill_replicas),
                ((d.decode_parallelism or w.parallelism).devices, d.decode_replicas)]
    if w.pools is not None:  # (a mixed fleet is billed pool by pool: economics.pool_cost)
        return [(p.parallelism.devices, p.replicas) for p in w.pools]
    replicas = w.replicas if w.replicas is not None else n // w.parallelism.devices
    return [(w.parallelism.devices, replicas)]


def fleet_of(scenario: Scenario, billing: Billing = Billing.FLEET) -> Fleet:
    """The accelerators ``scenario`` is billed for under ``billing`` (module docstring)."""
    unit = scenario.hardware.unit
    n = scenario.cluster.accelerators
    w = scenario.workload
    used = used_accelerators(w, n) if isinstance(w, InferenceWorkload) else n
    if billing is Billing.EXACT:
        return Fleet(used=used, cluster=n, billed=n, units=0, unit=unit, billing=billing)
    whole, units = units_for_jobs(unit, layout_jobs(scenario))
    if billing is Billing.FLEET:
        rented = scenario.cost.mode.value == "cloud"
        if not (rented and unit.rented_whole.value):
            return Fleet(used=used, cluster=n, billed=n, units=0, unit=unit, billing=billing)
        smallest = unit.sizes.value[0]
        declared = math.ceil(n / smallest) * smallest
        if declared > whole:  # idle accelerators declared beyond the layout's units
            whole, units = declared, units + (declared - whole) // smallest
    return Fleet(used=used, cluster=n, billed=whole, units=units, unit=unit, billing=billing)


def _units_text(unit: PurchaseUnit, count: int) -> str:
    """``count`` accelerators in units: '227.6 NVL72 racks', or 'no whole number of v5e
    slices' where a unit has several sizes."""
    sizes = unit.sizes.value
    if len(sizes) == 1:
        value = count / sizes[0]
        shown = f"{value:,.1f}" if value >= 10 else f"{value:.3g}"
        return f"{shown} {unit.plural_name(value)}"
    return (f"no whole number of {unit.plural_name()} (sizes "
            f"{', '.join(f'{s:,}' for s in sizes)})")


def fleet_warnings(scenario: Scenario, fleet: Fleet) -> list[str]:
    """What a user should know about the billing (one line at most): a count that is no
    whole number of units, accelerators billed but unused, a cluster billed other than
    declared. Lines never hold '; ' (study tables join a row's warnings with it)."""
    hw, unit = scenario.hardware.id, fleet.unit
    if unit.sizes.value == [1] or fleet.billing is Billing.EXACT:
        return []
    if fleet.billing is Billing.USED:
        if fleet.billed == fleet.used == fleet.cluster:
            return []
        text = f"the layout uses {fleet.used:,} {hw}"
        if fleet.billed != fleet.used:
            text += f" ({_units_text(unit, fleet.used)})"
        text += (f", billed as {fleet.units:,} {unit.plural_name(fleet.units)} "
                 f"({fleet.billed:,} accelerators")
        text += f", {fleet.unused:,} of them unused)" if fleet.unused else ")"
        if fleet.cluster != fleet.used:
            text += f" rather than cluster.accelerators ({fleet.cluster:,})"
        return [text]
    n = fleet.cluster
    if fleet.units:  # whole units: rented whole, or owned
        if fleet.billed == n:
            return []
        return [f"{n:,} {hw} is {_units_text(unit, n)}, billed as {fleet.units:,} "
                f"{unit.plural_name(fleet.units)} ({fleet.billed:,} accelerators)"]
    whole, units = units_for_jobs(unit, [(n, 1)])
    if whole == n:
        return []
    return [f"{n:,} {hw} is {_units_text(unit, n)}, billed per accelerator as {n:,} (the "
            f"price rents single accelerators), whole units would be {units:,} "
            f"{unit.plural_name(units)} ({whole:,} accelerators)"]
