"""The `cost` block of a scenario: how the fleet is paid for. Defaults come from the profile."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from annotated_types import Ge, Le, Lt
from pydantic import BaseModel, Field

from simulator.profiles.numbers import SPEC_CONFIG, NotBool
from simulator.profiles.quantities import (
    CarbonIntensity,
    Fraction,
    Usd,
    UsdPerHour,
    UsdPerKwh,
    UsdPerKwMonth,
)


class CostMode(StrEnum):
    """How the fleet is paid for: rented by the hour, or owned."""

    CLOUD = "cloud"  # rent: USD per accelerator-hour
    OWNED = "owned"  # buy: depreciation, cost of capital, facility and electricity


class CostAssumptions(BaseModel):
    """How the fleet is paid for and what its energy costs; unset prices come from the hardware
    profile."""

    model_config = SPEC_CONFIG

    mode: CostMode = CostMode.CLOUD
    cloud_usd_per_hour: UsdPerHour | None = Field(
        None, description="rent per accelerator-hour; default: the profile's cloud price")
    reserved_discount: Annotated[float, NotBool, Ge(0), Lt(1)] = Field(
        0.0, description="fraction off the on-demand price for reserved capacity (0 = on-demand)")
    purchase_usd_per_accelerator: Usd | None = Field(
        None, description="owned: price incl. share of host, network and rack; default: profile")
    depreciation_years: Annotated[float, NotBool, Ge(0.1), Le(100)] = Field(
        5.0, description="owned: useful life")
    cost_of_capital: Annotated[float, NotBool, Ge(0), Le(10)] = Field(
        0.08, description="owned: annual rate on the capital tied up")
    facility_usd_per_kw_month: UsdPerKwMonth = Field(
        150.0, description="owned: data-centre space and power provisioning per kW of IT load")
    electricity_usd_per_kwh: UsdPerKwh = Field(0.08, description="EIA US industrial ~0.08")
    pue: Annotated[float, NotBool, Ge(1), Le(10)] = Field(
        1.2, description="power usage effectiveness")
    carbon_kg_per_kwh: CarbonIntensity = Field(0.4, description="grid carbon intensity")
    input_token_weight: Fraction = Field(
        1.0, description="inference: weight of an input token relative to an output token "
                         "when pricing per million tokens (1 = blended)")
