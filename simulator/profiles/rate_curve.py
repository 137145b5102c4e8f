"""The arrival rate as a function of timeline time, cut into pieces with an exact integral.

``rate(t) = base x shape(t) x growth(t)``, where ``shape`` is a profile's hourly multiplier
or a rate trace's rate (both piecewise constant) and ``growth`` is linear, exponential or a
table of straight lines. Cut at every hour, every trace row, every growth point (and where a
declining line reaches 0), each piece has a constant ``level = base x shape`` and a growth
that is one straight line or one exponential. On a piece the integral is then closed-form
(a trapezoid, or ``g(a)·expm1(k·w)/k``) and ``level x max(g(a), g(b))`` bounds the rate:
what the non-homogeneous Poisson draw (:mod:`simulator.engine.serving.nhpp`) thins against
and what validation counts the run's requests with. Hourly cuts keep the bound tight even
under steep exponential growth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulator.profiles.rate_shape import Growth, GrowthKind, RateProfile
from simulator.profiles.rate_trace import RateTrace

HOUR_S = 3600.0


@dataclass(frozen=True)
class Pieces:
    """Consecutive pieces of a window: start, width, constant level, growth at both ends."""

    start: np.ndarray
    width: np.ndarray
    level: np.ndarray
    growth_start: np.ndarray
    growth_end: np.ndarray

    @property
    def bound(self) -> np.ndarray:
        """An upper bound of the rate on each piece (growth is monotone on a piece)."""
        return self.level * np.maximum(self.growth_start, self.growth_end)

    def __len__(self) -> int:
        return len(self.start)


@dataclass(frozen=True)
class RateCurve:
    """The rate of a time-varying Poisson process; see the module docstring."""

    base: float
    profile: RateProfile | None = None
    trace: RateTrace | None = None
    growth: Growth | None = None

    @property
    def _slope_or_rate(self) -> float:
        """Linear: the growth per second; exponential: the log-rate per second."""
        g = self.growth
        assert g is not None and g.factor is not None and g.over_s is not None
        if g.kind is GrowthKind.EXPONENTIAL:
            return math.log(g.factor) / g.over_s
        return (g.factor - 1.0) / g.over_s

    def growth_at(self, t: np.ndarray) -> np.ndarray:
        """The growth multiplier at timeline times ``t`` (1 without growth)."""
        g = self.growth
        if g is None:
            return np.ones_like(t)
        if g.kind is GrowthKind.TABLE:
            assert g.points is not None
            return np.interp(t, [p.at_s for p in g.points], [p.factor for p in g.points])
        if g.kind is GrowthKind.EXPONENTIAL:
            with np.errstate(over="ignore"):
                return np.exp(self._slope_or_rate * t)
        return np.maximum(0.0, 1.0 + self._slope_or_rate * t)

    def _shape_at(self, t: np.ndarray) -> np.ndarray:
        """The profile's multiplier or the trace's rate at ``t`` (1 with neither)."""
        if self.profile is not None:
            hours = np.asarray(self.profile.hours)
            return hours[np.floor(t / HOUR_S).astype(np.int64) % len(hours)]
        if self.trace is not None:
            row = np.searchsorted(self.trace.time_s, t, side="right") - 1
            return self.trace.rate_per_s[np.maximum(row, 0)]
        return np.ones_like(t)

    def _cuts(self, t0: float, t1: float) -> np.ndarray:
        """Where the pieces of [t0, t1] start and end, sorted, both ends included."""
        first_hour = math.floor(t0 / HOUR_S) + 1
        last_hour = math.ceil(t1 / HOUR_S)
        cuts = [np.array([t0, t1]), np.arange(first_hour, last_hour) * HOUR_S]
        if self.trace is not None:
            cuts.append(self.trace.time_s)
        g = self.growth
        if g is not None and g.kind is GrowthKind.TABLE:
            assert g.points is not None
            cuts.append(np.array([p.at_s for p in g.points]))
        elif g is not None and g.kind is GrowthKind.LINEAR and self._slope_or_rate < 0:
            cuts.append(np.array([-1.0 / self._slope_or_rate]))  # where the line reaches 0
        every = np.unique(np.concatenate(cuts))
        return every[(every >= t0) & (every <= t1)]

    def pieces(self, t0: float, t1: float) -> Pieces:
        """The pieces of the window [t0, t1] of the timeline (``t0 < t1``)."""
        cuts = self._cuts(t0, t1)
        start, end = cuts[:-1], cuts[1:]
        middle = (start + end) / 2
        return Pieces(start=start, width=end - start,
                      level=self.base * self._shape_at(middle),
                      growth_start=self.growth_at(start), growth_end=self.growth_at(end))

    def rate(self, t: np.ndarray) -> np.ndarray:
        """Requests per second at timeline times ``t`` (for plots and tests)."""
        t = np.asarray(t, dtype=float)
        return self.base * self._shape_at(t) * self.growth_at(t)

    def piece_integrals(self, pieces: Pieces) -> np.ndarray:
        """The expected arrivals on each piece: the rate's exact integral over it."""
        g = self.growth
        if g is not None and g.kind is GrowthKind.EXPONENTIAL:
            k = self._slope_or_rate
            if k != 0:
                with np.errstate(over="ignore", invalid="ignore"):
                    return pieces.level * pieces.growth_start * np.expm1(k * pieces.width) / k
        mean_growth = (pieces.growth_start + pieces.growth_end) / 2
        return pieces.level * mean_growth * pieces.width

    def integral(self, t0: float, t1: float) -> float:
        """The expected number of arrivals in [t0, t1]."""
        return float(np.sum(self.piece_integrals(self.pieces(t0, t1))))

    def peak(self, t0: float, t1: float) -> float:
        """The highest rate in [t0, t1]."""
        return float(np.max(self.pieces(t0, t1).bound))
