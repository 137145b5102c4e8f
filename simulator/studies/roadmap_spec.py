"""The input of ``xpusim roadmap``: a serving scenario, a demand timeline, the hardware on
offer, the fleet already owned, and the horizon.

::

    name: llama3.1-70b roadmap
    scenario: llama3.1-70b-h100-serving.yaml   # relative to this file; its SLO is the target
    horizon_months: 12
    start: 2027-01                              # optional: labels months 2027-01, 2027-02...
    headroom: 0.2                               # capacity >= peak x 1.2
    demand:
      start_per_s: 300
      growth: {shape: exponential, factor: 3, over_months: 12}
      daily_profile: {hourly: [0.2, 0.2, ..., 1.0, ...]}   # optional: the day's shape
    hardware:
      - id: gb300-buy
        profile: gb300-nvl72
        price: {mode: buy, depreciation_years: 4}
        available_from_month: 3
        lead_time_weeks: 12
    owned:
      - profile: h100-sxm
        accelerators: 512
        until_month: 6                          # the lease ends: gone from month 6
        price: {mode: lease, usd_per_accelerator_hour: 2.1}

Months are counted from 0 (the month the plan is made). Every price field defaults to the
profile's price and the ``cost`` defaults of scenarios; ``site`` holds the facility's
figures (PUE, electricity, facility rent, carbon) shared by every option.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, Field, model_validator

from simulator.errors import InputError
from simulator.profiles.cost import CostAssumptions, CostMode
from simulator.profiles.numbers import SPEC_CONFIG, NotBool, PositiveFloat, PositiveInt
from simulator.profiles.quantities import CarbonIntensity, Usd, UsdPerHour, UsdPerKwh, UsdPerKwMonth
from simulator.profiles.rate_shape import HOURS_PER_DAY, RateProfile
from simulator.profiles.validation import validate
from simulator.profiles.yaml_source import read_yaml

MAX_MONTHS = 120
Month = Annotated[int, NotBool, Ge(0), Le(MAX_MONTHS)]
Rate = Annotated[float, NotBool, Gt(0), Le(1e9)]
_START = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class PriceMode(StrEnum):
    """How an option is paid for (the solver's flexible or committed blocks)."""

    CLOUD = "cloud"  # rented by the hour, chosen afresh each month
    LEASE = "lease"  # rented by the hour, committed from arrival to the end of the horizon
    BUY = "buy"  # bought: depreciated month by month, kept to the end of the horizon


class Price(BaseModel):
    """What one accelerator of an option costs; unset figures come from the profile."""

    model_config = SPEC_CONFIG

    mode: PriceMode = Field(PriceMode.CLOUD, description="cloud, lease or buy")
    usd_per_accelerator_hour: UsdPerHour | None = Field(
        None, description="cloud/lease: rent per accelerator-hour (default: the profile's "
                          "cloud price); a lease's rate includes power")
    reserved_discount: Annotated[float, NotBool, Ge(0), Lt(1)] = Field(
        0.0, description="cloud/lease: fraction off the rate")
    lease_term_months: Annotated[int, NotBool, Ge(1), Le(MAX_MONTHS)] = Field(
        12, description="lease: the shortest a lease runs (paid past the horizon if need be)")
    purchase_usd_per_accelerator: Usd | None = Field(
        None, description="buy: price per accelerator incl. its share of host, network and "
                          "rack (default: the profile's)")
    depreciation_years: Annotated[float, NotBool, Ge(0.1), Le(100)] = Field(
        5.0, description="buy: useful life")
    cost_of_capital: Annotated[float, NotBool, Ge(0), Le(10)] = Field(
        0.08, description="buy: annual rate on the capital tied up")

    @property
    def committed(self) -> bool:
        """Whether blocks stay (and are paid) to the end of the horizon once they arrive."""
        return self.mode is not PriceMode.CLOUD


class Site(BaseModel):
    """The facility's figures, shared by every option (defaults: the scenarios' ``cost``)."""

    model_config = SPEC_CONFIG

    pue: Annotated[float, NotBool, Ge(1), Le(10)] = Field(1.2, description="PUE")
    electricity_usd_per_kwh: UsdPerKwh = Field(0.08, description="bought hardware's power")
    facility_usd_per_kw_month: UsdPerKwMonth = Field(
        150.0, description="bought hardware: space and power provisioning per kW of IT load")
    carbon_kg_per_kwh: CarbonIntensity = Field(0.4, description="grid carbon intensity")


class Growth(BaseModel):
    """Demand growing from ``start_per_s``: ``factor`` times the start after
    ``over_months`` months (exponential: compounding; linear: a straight line)."""

    model_config = SPEC_CONFIG

    shape: Literal["exponential", "linear"] = "exponential"
    factor: Annotated[float, NotBool, Gt(0), Le(1e6)] = Field(
        description="demand after over_months months, as a multiple of the start")
    over_months: PositiveFloat = Field(12.0, description="months to reach factor x start")


class Demand(BaseModel):
    """Each month's peak request rate: listed, or a start rate and a growth curve."""

    model_config = SPEC_CONFIG

    peak_per_s: list[Rate] | None = Field(
        None, description="peak requests/s, one per month of the horizon")
    start_per_s: Rate | None = Field(None, description="month 0's peak requests/s")
    growth: Growth | None = Field(None, description="how the peak grows from start_per_s")
    daily_profile: RateProfile | None = Field(
        None, description="the day's shape, as workload.arrivals.profile: hourly (24) or "
                          "weekly (7 x 24) fractions of the month's peak, each in [0, 1], "
                          "the largest exactly 1 (the peak hour); rented blocks follow it "
                          "hour by hour (absent: every hour is the peak)")

    @model_validator(mode="after")
    def _one_way(self) -> Demand:
        listed, curve = self.peak_per_s is not None, self.start_per_s is not None
        if listed == curve:
            raise ValueError("give either peak_per_s (one per month) or start_per_s "
                             "(with an optional growth)")
        if self.growth is not None and not curve:
            raise ValueError("growth applies to start_per_s")
        if self.daily_profile is not None:
            _check_fractions(self.daily_profile.hours)
        return self

    def day_shape(self) -> tuple[float, ...]:
        """Each hour's demand as a fraction of the peak, over the profile's period (24 or
        168 hours; ``(1.0,)`` without a profile: the peak all day)."""
        return (1.0,) if self.daily_profile is None else self.daily_profile.hours

    def peaks(self, months: int) -> list[float]:
        """The peak of each month ``0 .. months-1``."""
        if self.peak_per_s is not None:
            return list(self.peak_per_s)
        assert self.start_per_s is not None
        g = self.growth
        if g is None:
            return [self.start_per_s] * months
        if g.shape == "linear":
            return [self.start_per_s * (1 + (g.factor - 1) * t / g.over_months)
                    for t in range(months)]
        return [self.start_per_s * g.factor ** (t / g.over_months) for t in range(months)]


def _check_fractions(hours: tuple[float, ...]) -> None:
    """A daily profile's hours are fractions of the month's peak: none above 1, and the
    peak hour exactly 1 (a largest value below 1 would mean the stated peak never occurs;
    the planner divides by it rather than the tool guessing which figure is right)."""
    top = max(hours)
    if top > 1:
        at = hours.index(top)
        where = f"hour {at}" if len(hours) == HOURS_PER_DAY else f"day {at // 24} hour {at % 24}"
        raise ValueError(f"daily_profile gives fractions of the month's peak, each in [0, 1]; "
                         f"{where} is {top:g} (divide every hour by {top:g})")
    if top < 1:
        raise ValueError(f"daily_profile's largest hour must be 1 (the peak hour, at the "
                         f"month's peak rate); it is {top:g} (divide every hour by {top:g})")


class HardwareOption(BaseModel):
    """Hardware one may add: a profile, its price, when it can arrive, how many."""

    model_config = SPEC_CONFIG

    id: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$",
                    description="a name for the option in the tables")
    profile: str = Field(min_length=1, description="hardware profile id or path")
    price: Price = Field(default_factory=Price, description="how it is paid for")
    available_from_month: Month = Field(0, description="the first month it can be in service")
    lead_time_weeks: Annotated[float, NotBool, Ge(0), Le(520)] = Field(
        0.0, description="from order to service; orders are placed from month 0")
    max_units: PositiveInt | None = Field(
        None, description="at most this many purchase units in service (absent: no limit)")


class OwnedFleet(BaseModel):
    """Hardware already in service: kept, and paid for, until ``until_month``."""

    model_config = SPEC_CONFIG

    profile: str = Field(min_length=1, description="hardware profile id or path")
    accelerators: PositiveInt = Field(description="accelerators in service")
    until_month: Month | None = Field(
        None, description="the lease ends: not in service from this month (absent: the "
                          "whole horizon)")
    price: Price = Field(default_factory=lambda: Price(mode=PriceMode.LEASE),
                         description="what it costs while in service (for the totals)")


class Roadmap(BaseModel):
    """The whole question (module docstring)."""

    model_config = SPEC_CONFIG

    name: str = Field("roadmap", min_length=1, max_length=120)
    scenario: str = Field(min_length=1, description="serving scenario (relative path) whose "
                          "workload, SLO and request mix each month's peak follows")
    set: list[str] = Field(default_factory=list, description="PATH=VALUE overrides of it")
    horizon_months: Annotated[int, NotBool, Ge(1), Le(MAX_MONTHS)]
    start: str | None = Field(None, description="label of month 0, YYYY-MM")
    headroom: Annotated[float, NotBool, Ge(0), Le(10)] = Field(
        0.2, description="capacity must reach peak x (1 + headroom)")
    demand: Demand
    hardware: list[HardwareOption] = Field(min_length=1, max_length=8)
    owned: list[OwnedFleet] = Field(default_factory=list, max_length=8)
    site: Site = Field(default_factory=Site)
    sensitivity: list[Annotated[float, NotBool, Ge(0), Le(10)]] = Field(
        default_factory=lambda: [0.5, 1.5],
        description="growth multipliers re-solved (each month's rise over month 0 times k)")

    @model_validator(mode="after")
    def _consistent(self) -> Roadmap:
        if self.start is not None and not _START.match(self.start):
            raise ValueError(f"start must be YYYY-MM, e.g. 2027-01, got {self.start!r}")
        listed = self.demand.peak_per_s
        if listed is not None and len(listed) != self.horizon_months:
            raise ValueError(f"demand.peak_per_s lists {len(listed)} months; the horizon is "
                             f"{self.horizon_months}")
        ids = [h.id for h in self.hardware]
        if len(set(ids)) != len(ids):
            raise ValueError(f"hardware ids must differ, got {ids}")
        return self

    def labels(self) -> list[str]:
        """Each month's label: YYYY-MM from ``start``, else M0, M1, ..."""
        if self.start is None:
            return [f"M{t}" for t in range(self.horizon_months)]
        year, month = (int(p) for p in self.start.split("-"))
        return [f"{year + (month - 1 + t) // 12}-{(month - 1 + t) % 12 + 1:02d}"
                for t in range(self.horizon_months)]


def cost_assumptions(price: Price, site: Site) -> CostAssumptions:
    """The economics' cost block for ``price`` at ``site`` (lease and cloud rent; buy owns)."""
    if price.mode is PriceMode.BUY:
        return CostAssumptions(
            mode=CostMode.OWNED, purchase_usd_per_accelerator=price.purchase_usd_per_accelerator,
            depreciation_years=price.depreciation_years, cost_of_capital=price.cost_of_capital,
            facility_usd_per_kw_month=site.facility_usd_per_kw_month,
            electricity_usd_per_kwh=site.electricity_usd_per_kwh, pue=site.pue,
            carbon_kg_per_kwh=site.carbon_kg_per_kwh)
    return CostAssumptions(mode=CostMode.CLOUD, cloud_usd_per_hour=price.usd_per_accelerator_hour,
                           reserved_discount=price.reserved_discount, pue=site.pue,
                           carbon_kg_per_kwh=site.carbon_kg_per_kwh)


def load_roadmap(path: str | Path) -> tuple[Roadmap, Path]:
    """The roadmap file, validated (errors name the file, line and field), and its folder."""
    doc = read_yaml(path)
    if not isinstance(doc.data, dict):
        raise InputError("a roadmap must be a mapping of fields (scenario, horizon_months, "
                         "demand, hardware, ...)", file=doc.file)
    return validate(Roadmap, doc.data, doc), Path(path).resolve().parent
