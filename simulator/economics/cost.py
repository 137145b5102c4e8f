"""Dollars for a run: rented (cloud) or owned (capital, facility and electricity).

cloud:  accelerators · hours · rate · (1 - reserved_discount). Electricity is in the rate.
owned:  capital     accelerators · purchase · CRF(r, years) · (hours / hours_per_year)
                    with the capital recovery factor CRF = r(1+r)^n / ((1+r)^n - 1)
                    (= 1/n when r = 0): straight-line depreciation plus the cost of capital
        facility    provisioned IT kW (TDP + system share, per device) · USD/kW/month · months
        electricity facility energy (IT · PUE) · USD/kWh
Energy is always reported (facility energy, PUE included), and carbon = energy · intensity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from simulator.economics.power import Activity, power_model
from simulator.errors import InputError
from simulator.profiles.cost import CostAssumptions, CostMode
from simulator.profiles.hardware import HardwareProfile

HOURS_PER_YEAR = 365.25 * 24
HOURS_PER_MONTH = HOURS_PER_YEAR / 12
J_PER_KWH = 3.6e6


@dataclass(frozen=True, kw_only=True)
class CostReport:
    """What a run costs: dollars (with their breakdown), facility energy, average power and
    carbon."""

    cost_usd: float
    energy_kwh: float
    average_power_w: float  # facility power of the whole fleet, averaged over the run
    carbon_kg: float
    breakdown_usd: dict[str, float]
    mode: str

    def as_dict(self) -> dict:
        """The report as plain data."""
        return asdict(self)


def summed(costs: Sequence[CostReport], *, mode: str | None = None) -> CostReport:
    """Several reports of one span added (pools of a mixed fleet, fleets of one month);
    ``mode`` defaults to the first report's."""
    breakdown: dict[str, float] = {}
    for cost in costs:
        for key, value in cost.breakdown_usd.items():
            breakdown[key] = breakdown.get(key, 0.0) + value
    return CostReport(cost_usd=sum(c.cost_usd for c in costs),
                      energy_kwh=sum(c.energy_kwh for c in costs),
                      average_power_w=sum(c.average_power_w for c in costs),
                      carbon_kg=sum(c.carbon_kg for c in costs),
                      breakdown_usd=breakdown,
                      mode=mode if mode is not None else costs[0].mode)


def capital_recovery_factor(rate: float, years: float) -> float:
    """The share of a purchase to recover each year over ``years`` at interest ``rate``
    (straight-line 1/years at 0%)."""
    if rate == 0:
        return 1.0 / years
    growth = (1 + rate) ** years
    return rate * growth / (growth - 1)


def run_cost(hardware: HardwareProfile, assumptions: CostAssumptions, accelerators: float,
             activity: Activity) -> CostReport:
    """Cost, energy, power and carbon of ``accelerators`` devices busy as ``activity`` says
    (a fraction of them: an autoscaled pool's average over the run)."""
    model = power_model(hardware, assumptions.pue)
    hours = activity.duration_s / 3600.0
    energy_kwh = model.energy_j([activity], accelerators) / J_PER_KWH
    average_w = accelerators * model.facility_w(activity) if activity.duration_s else 0.0
    if assumptions.mode is CostMode.CLOUD:
        rate = assumptions.cloud_usd_per_hour or hardware.price.cloud_per_device_hour.value
        rent = accelerators * hours * rate * (1 - assumptions.reserved_discount)
        breakdown = {"rent": rent}
    else:
        purchase = assumptions.purchase_usd_per_accelerator
        if purchase is None:
            if hardware.price.purchase_per_device is None:
                raise InputError(f"{hardware.id} has no purchase price (it is rent-only); set "
                                 f"cost.purchase_usd_per_accelerator or use cost.mode: cloud",
                                 path="cost.mode")
            purchase = hardware.price.purchase_per_device.value
        crf = capital_recovery_factor(assumptions.cost_of_capital, assumptions.depreciation_years)
        capital = accelerators * purchase * crf * hours / HOURS_PER_YEAR
        provisioned_kw = accelerators * (model.tdp_w + model.system_w) / 1e3
        facility = provisioned_kw * assumptions.facility_usd_per_kw_month * hours / \
            HOURS_PER_MONTH
        electricity = energy_kwh * assumptions.electricity_usd_per_kwh
        breakdown = {"capital": capital, "facility": facility, "electricity": electricity}
    return CostReport(cost_usd=sum(breakdown.values()), energy_kwh=energy_kwh,
                      average_power_w=average_w,
                      carbon_kg=energy_kwh * assumptions.carbon_kg_per_kwh,
                      breakdown_usd=breakdown, mode=assumptions.mode.value)


def billed_cost(hardware: HardwareProfile, assumptions: CostAssumptions, *, billed: float,
                used: float, time_s: float, busy: float, memory_bandwidth: float) -> CostReport:
    """:func:`run_cost` of ``billed`` devices when the engine measured ``busy`` and
    ``memory_bandwidth`` as averages over the ``used`` ones: the same work spread over the
    billed devices (idle spares lower the average), each fraction capped at 1."""
    spread = used / billed
    return run_cost(hardware, assumptions, billed,
                    Activity(time_s, min(1.0, busy * spread), min(1.0, memory_bandwidth * spread)))


def price_warnings(hardware: HardwareProfile, assumptions: CostAssumptions) -> list[str]:
    """A warning when the run is priced with the profile's illustrative prices (the
    template's example figures), not with a quote or the scenario's own ``cost`` figures."""
    if not hardware.price.illustrative:
        return []
    if assumptions.mode is CostMode.CLOUD:
        if assumptions.cloud_usd_per_hour:
            return []
        price, field = hardware.price.cloud_per_device_hour.value, "cloud_per_device_hour"
        figure, override = f"${price:,.2f}/h", "cost.cloud_usd_per_hour"
    else:
        purchase = hardware.price.purchase_per_device
        if assumptions.purchase_usd_per_accelerator is not None or purchase is None:
            return []
        figure, field = f"${purchase.value:,.0f}", "purchase_per_device"
        override = "cost.purchase_usd_per_accelerator"
    return [f"cost uses {hardware.id}'s illustrative price {figure} per device "
            f"(price.{field} is a placeholder, price.illustrative: true): the cost figures "
            f"mean nothing until you enter a real price there or set {override}"]


def cost_per_million_tokens(cost_usd: float, input_tokens: float, output_tokens: float,
                            input_weight: float = 1.0) -> float:
    """USD per million tokens; input tokens count ``input_weight`` of an output token
    (1 = blended: every token alike)."""
    weighted = output_tokens + input_weight * input_tokens
    return cost_usd / weighted * 1e6 if weighted else float("inf")
