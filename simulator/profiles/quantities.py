"""Pydantic field types for quantities with units, and numbers that carry their source.

``Bytes``, ``Bandwidth``, ``FlopRate`` ... accept ``"80 GB"`` or a plain number in the base
unit and hold an SI float. They reject zero and negative values: every quantity a profile or
scenario gives is a positive physical amount (use ``NonNegative*`` where zero makes sense).
"""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from simulator.units import Dimension, parse_quantity


def _parser(dimension: Dimension):
    def parse(value: object) -> float:
        """A quantity in this field's dimension, in SI units."""
        return parse_quantity(value, dimension)

    parse.__name__ = f"parse_{dimension.value}"
    return BeforeValidator(parse)


def _positive(dimension: Dimension):
    return Annotated[float, _parser(dimension), Gt(0)]


def _non_negative(dimension: Dimension):
    return Annotated[float, _parser(dimension), Ge(0)]


Bytes = _positive(Dimension.BYTES)
Bandwidth = _positive(Dimension.BANDWIDTH)
FlopRate = _positive(Dimension.FLOP_RATE)
Power = _positive(Dimension.POWER)
Seconds = _positive(Dimension.TIME)
Usd = _positive(Dimension.USD)
UsdPerHour = _positive(Dimension.USD_PER_HOUR)
UsdPerKwh = _positive(Dimension.USD_PER_KWH)
UsdPerKwMonth = _positive(Dimension.USD_PER_KW_MONTH)
CarbonIntensity = _non_negative(Dimension.CARBON_INTENSITY)

NonNegativeSeconds = _non_negative(Dimension.TIME)
NonNegativePower = _non_negative(Dimension.POWER)

# A fraction of something (efficiency, utilization): 0 < x <= 1, "80%" accepted.
Fraction = Annotated[float, _parser(Dimension.FRACTION), Gt(0), Le(1)]
# A share of a device's resources taken by something else: 0 <= x < 1 (one would leave
# nothing to the work it is taken from).
Share = Annotated[float, _parser(Dimension.FRACTION), Ge(0), Lt(1)]
# A ratio that may exceed one (e.g. in-switch reduction doubling effective all-reduce bandwidth).
PositiveRatio = Annotated[float, _parser(Dimension.FRACTION), Gt(0)]

T = TypeVar("T")


class Sourced(BaseModel, Generic[T]):
    """A number with its provenance: where it came from and whether it is an estimate.

    In YAML: ``{value: "3.35 TB/s", source: "NVIDIA H100 datasheet", estimate: false}``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    value: T
    source: str = Field(min_length=3, description="where the number came from (URL, paper, "
                                                   "measurement command)")
    estimate: bool = Field(False, description="true where the number is derived or assumed")
    note: str | None = None
