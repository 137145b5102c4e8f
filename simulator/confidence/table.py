"""Per-regime error statistics from compared validation cases: the content of
``simulator/confidence/error_bands.json`` (``xpusim validate-against --bands``).

A band is the median, the 90th percentile and the worst absolute relative error of one
family of figures (throughput or latency) over the *held-out* cases of one regime at one
level of detail. Cases that informed a profile number (``used_for_calibration``) say
nothing about prediction and stay out of every band; so does a server-mode latency measured
at its published rate, right at the knee of the latency-load curve, where a few percent of
capacity error moves the latency several-fold (its sustainable-rate counterpart is in the
throughput band instead). Every compared case, calibration ones included, counts toward
*coverage*: which vendors, precisions, MoE-ness and scales were measured at all, the
boundary beyond which a result is flagged as extrapolation.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from simulator.confidence.regime import Regime

# Most specific first; a lookup falls back along this list. MoE-ness is dropped last within
# a vendor and within a kind: routing, expert imbalance and all-to-all are the largest
# source of error in the suite, so a dense run is better judged by other dense runs of any
# precision than by every run of its vendor.
LEVELS = ("vendor+kind+precision+moe", "vendor+kind+precision", "vendor+kind+moe",
          "vendor+kind", "kind+moe", "kind")
# A band needs this many held-out cases to stand for its regime; fewer, and the lookup falls
# back to the next level. Two cases give a median that is their mean and a p90 that is
# nearly their maximum, nothing one can call a spread.
MIN_CASES = 3
DIGITS = 4  # errors are stored to 0.01 percentage point: the file changes only with the run


@dataclass(frozen=True, kw_only=True)
class BandCase:
    """One compared figure as the band statistics see it."""

    id: str
    regime: Regime
    family: str
    abs_error: float
    held_out: bool
    near_saturation: bool = False  # a server latency at its published rate (see module doc)

    @property
    def in_bands(self) -> bool:
        """Whether the figure counts toward the error bands."""
        return self.held_out and not self.near_saturation


def level_key(regime: Regime, level: str) -> dict[str, Any]:
    """The attributes of ``regime`` that ``level`` keys on, in a fixed order."""
    attributes = {"vendor": regime.vendor, "kind": regime.kind,
                  "precision": regime.precision, "moe": regime.moe}
    return {name: attributes[name] for name in level.split("+")}


def p90(values: Sequence[float]) -> float:
    """The 90th percentile by linear interpolation between order statistics (numpy's
    default): position 0.9·(n-1) in the sorted values."""
    ordered = sorted(values)
    position = 0.9 * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _band(level: str, family: str, members: list[BandCase]) -> dict[str, Any]:
    errors = [c.abs_error for c in members]
    regime = members[0].regime
    return {"level": level, "family": family, "key": level_key(regime, level),
            "regime": regime.describe(level), "cases": len(members),
            "case_ids": sorted(c.id for c in members),
            "median_abs_error": round(statistics.median(errors), DIGITS),
            "p90_abs_error": round(p90(errors), DIGITS),
            "worst_abs_error": round(max(errors), DIGITS)}


def _bands(cases: Iterable[BandCase]) -> list[dict[str, Any]]:
    groups: dict[tuple[int, str, str], list[BandCase]] = {}
    for case in cases:
        if not case.in_bands:
            continue
        for index, level in enumerate(LEVELS):
            key = repr(tuple(level_key(case.regime, level).values()))
            groups.setdefault((index, case.family, key), []).append(case)
    return [_band(LEVELS[index], family, members)
            for (index, family, _key), members in sorted(groups.items())]


def _coverage(cases: Iterable[BandCase]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], list[BandCase]] = {}
    for case in cases:
        groups.setdefault((case.regime.kind, case.regime.vendor), []).append(case)
    return [{"kind": kind, "vendor": vendor, "cases": len(members),
             "precisions": sorted({c.regime.precision for c in members}),
             "moe": sorted({c.regime.moe for c in members}),
             "max_scale": max(c.regime.scale for c in members)}
            for (kind, vendor), members in sorted(groups.items())]


def build_table(cases: Sequence[BandCase]) -> dict[str, Any]:
    """The bands (every level, every family, every regime with a held-out case) and the
    coverage of ``cases``, as the JSON the lookup reads. Deterministic: sorted, rounded."""
    return {"levels": list(LEVELS), "min_cases": MIN_CASES,
            "held_out_cases": sum(c.in_bands for c in cases),
            "bands": _bands(cases), "coverage": _coverage(cases)}
