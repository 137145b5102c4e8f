"""`workload.arrivals.profile` and `.growth`: how a Poisson arrival rate varies in time.

A planner's load is a shape times a trend: traffic follows the clock (a daily curve, often
a different one at weekends) and grows month over month. The arrival rate at timeline time
``t`` is therefore ``rate_per_s x profile(t) x growth(t)`` (or, with a rate trace, the
trace's rate times ``growth(t)``; :mod:`simulator.profiles.rate_curve` builds the function).

- ``profile``: 24 hourly multipliers (``hourly``), or 7 x 24 (``weekly``, from the day the
  timeline starts on). Each multiplier holds for its whole hour: a piecewise-constant curve,
  as monitoring systems average traffic per interval, whose integral is exact.
- ``growth``: ``linear`` or ``exponential`` to ``factor`` times the timeline's starting rate
  after ``over_s``; or a ``table`` of ``(at_s, factor)`` points, joined by straight lines
  and flat beyond the first and last.

Multipliers are literal, not normalised: with a profile whose peak hour is 1.0,
``rate_per_s`` is the peak rate.
"""

from __future__ import annotations

from enum import StrEnum
from itertools import pairwise
from typing import Annotated

from annotated_types import Ge, Gt, Le
from pydantic import BaseModel, Field, model_validator

from simulator.profiles.numbers import SPEC_CONFIG, NotBool
from simulator.profiles.quantities import NonNegativeSeconds, Seconds

MAX_MULTIPLIER = 1e6  # a rate multiplier; products with rate_per_s stay far from overflow
MAX_GROWTH_POINTS = 10_000  # points of a growth table
HOURS_PER_DAY = 24
DAYS_PER_WEEK = 7

Multiplier = Annotated[float, NotBool, Ge(0), Le(MAX_MULTIPLIER)]
GrowthFactor = Annotated[float, NotBool, Gt(0), Le(MAX_MULTIPLIER)]


class RateProfile(BaseModel):
    """The rate's shape over the clock: 24 hourly multipliers, or 7 days of them."""

    model_config = SPEC_CONFIG

    hourly: tuple[Multiplier, ...] | None = Field(
        None, description="24 multipliers of rate_per_s, hour 0 (midnight) first; each holds "
                          "for its hour, every day")
    weekly: tuple[tuple[Multiplier, ...], ...] | None = Field(
        None, description="7 lists of 24 hourly multipliers, from the day the timeline "
                          "starts on")

    @model_validator(mode="after")
    def _one_shape(self) -> RateProfile:
        if (self.hourly is None) == (self.weekly is None):
            raise ValueError("profile needs exactly one of hourly (24 multipliers) or weekly "
                             "(7 lists of 24)")
        if self.hourly is not None and len(self.hourly) != HOURS_PER_DAY:
            raise ValueError(f"hourly lists {len(self.hourly)} multipliers; it needs 24, one "
                             f"per hour from midnight")
        if self.weekly is not None:
            if len(self.weekly) != DAYS_PER_WEEK:
                raise ValueError(f"weekly lists {len(self.weekly)} days; it needs 7 lists of "
                                 f"24 hourly multipliers")
            for day, hours in enumerate(self.weekly):
                if len(hours) != HOURS_PER_DAY:
                    raise ValueError(f"weekly day {day} lists {len(hours)} multipliers; each "
                                     f"day needs 24")
        if max(self.hours) == 0:
            raise ValueError("every multiplier of the profile is 0: no request would arrive")
        return self

    @property
    def hours(self) -> tuple[float, ...]:
        """The multipliers in order, one per hour of the profile's period (24 or 168)."""
        if self.hourly is not None:
            return self.hourly
        assert self.weekly is not None
        return tuple(m for day in self.weekly for m in day)


class GrowthKind(StrEnum):
    """How the rate trends over the timeline."""

    LINEAR = "linear"
    EXPONENTIAL = "exponential"
    TABLE = "table"


class GrowthPoint(BaseModel):
    """One point of a growth table: the rate's multiplier at a time of the timeline."""

    model_config = SPEC_CONFIG

    at_s: NonNegativeSeconds = Field(description="timeline time (e.g. \"90 d\")")
    factor: Multiplier = Field(description="multiplier of the rate at that time")


class Growth(BaseModel):
    """The rate's trend: a multiplier of timeline time, 1 at t = 0 for linear/exponential."""

    model_config = SPEC_CONFIG

    kind: GrowthKind
    factor: GrowthFactor | None = Field(
        None, description="linear/exponential: the multiplier reached after over_s (3 = "
                          "triples; below 1 declines, a line stopping at 0)")
    over_s: Seconds | None = Field(
        None, description="linear/exponential: the time to reach factor (e.g. \"1 y\")")
    points: tuple[GrowthPoint, ...] | None = Field(
        None, min_length=1, max_length=MAX_GROWTH_POINTS,
        description="table: (at_s, factor) points in increasing time; straight lines "
                    "between them, flat before the first and after the last")

    @model_validator(mode="after")
    def _parameters(self) -> Growth:
        if self.kind is GrowthKind.TABLE:
            if self.points is None:
                raise ValueError("growth kind table needs points")
            if self.factor is not None or self.over_s is not None:
                raise ValueError("growth kind table takes points, not factor or over_s")
            times = [p.at_s for p in self.points]
            if any(b <= a for a, b in pairwise(times)):
                raise ValueError("growth points must be in strictly increasing at_s")
            if max(p.factor for p in self.points) == 0:
                raise ValueError("every growth factor is 0: no request would arrive")
        else:
            if self.factor is None or self.over_s is None:
                raise ValueError(f"growth kind {self.kind.value} needs factor and over_s")
            if self.points is not None:
                raise ValueError(f"growth kind {self.kind.value} takes factor and over_s, "
                                 f"not points")
        return self
