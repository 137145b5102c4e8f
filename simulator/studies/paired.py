"""An effect measured over repeated seeds with common random numbers, and its noise.

A serving run draws its arrival times and request lengths from the scenario's seed alone
(``engine/serving/arrivals.py``), never from the hardware, so the baseline and a perturbed
part run with the same seed see the very same requests: common random numbers. The
difference between the two is then the effect of the part plus only the scheduling chaos
the change sets off (which requests happen to batch together), not the luck of a different
workload. Over seeds k = 1..n the paired effects e_k have a mean and a Student-t 95%
interval, mean ± t(0.975, n-1) · s / √n; an effect whose interval contains zero is *within
noise*: the seeds cannot tell it from no effect.

A training step draws nothing at random (only failures do), so its step-time effects are
exact with one seed: their interval is zero by construction, not estimated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from simulator.studies.stats import mean_ci


@dataclass(frozen=True)
class Interval:
    """The mean of ``n`` paired per-seed effects and the half-width of its 95% interval
    (None when it cannot be estimated: one seed of a random workload)."""

    mean: float
    half: float | None
    n: int

    @property
    def within_noise(self) -> bool | None:
        """True when the interval contains zero (the effect cannot be told from none);
        None when there is no interval."""
        return None if self.half is None else abs(self.mean) <= self.half

    @property
    def verdict(self) -> str:
        """'no effect' (exactly zero on every seed), 'within noise', 'real', or '' (no
        noise estimate)."""
        if self.half is None:
            return ""
        if self.mean == 0 and self.half == 0:
            return "no effect"
        return "within noise" if self.within_noise else "real"


def interval(values: Sequence[float], *, deterministic: bool = False) -> Interval | None:
    """The :class:`Interval` of per-seed ``values`` (None when there are none). One value
    has a zero half-width when the metric is ``deterministic`` (no seed enters it), else
    none."""
    if not values:
        return None
    mean, half = mean_ci(list(values))
    if half is None and deterministic:
        half = 0.0
    return Interval(mean=mean, half=half, n=len(values))


def relative(value: Any, base: Any) -> float | None:
    """(value - base) / base, or None where either is missing, a flag, or base is zero."""
    if value is None or base is None or isinstance(value, bool) or base == 0:
        return None
    return (value - base) / base


def elasticity(low: Any, high: Any, base: Any, delta: float) -> float | None:
    """(m(+δ) - m(-δ)) / (2δ m(base)) for one seed; one-sided when only one side ran."""
    lo, hi = relative(low, base), relative(high, base)
    if lo is not None and hi is not None:
        return (hi - lo) / (2 * delta)
    if hi is not None:
        return hi / delta
    if lo is not None:
        return -lo / delta
    return None


def sample_sd(values: Sequence[float]) -> float:
    """The sample standard deviation (n - 1 in the denominator; 0 for fewer than two)."""
    n = len(values)
    if n < 2:
        return 0.0
    mean = sum(values) / n
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def paired_and_unpaired_sd(base: Sequence[float], other: Sequence[float]) -> tuple[float, float]:
    """The spread of the differences ``other - base`` taken two ways over the same seeds:
    paired (seed k against seed k: common random numbers) and unpaired (seed k against
    seed k+1, as if the two runs had independent workloads). Needs two seeds or more; CRN
    pays off when the first is the smaller."""
    if len(base) != len(other) or len(base) < 2:
        raise ValueError("paired_and_unpaired_sd needs two equally long series of 2+ seeds")
    n = len(base)
    paired = [o - b for b, o in zip(base, other, strict=True)]
    unpaired = [other[k] - base[(k + 1) % n] for k in range(n)]
    return sample_sd(paired), sample_sd(unpaired)
