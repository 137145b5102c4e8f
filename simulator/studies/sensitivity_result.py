"""The result of a sensitivity study: the knobs, each one's effect with its interval over
seeds, and the ranked study with its JSON and CSV forms (``xpusim sensitivity``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from simulator.studies.paired import Interval


@dataclass(frozen=True, kw_only=True)
class Parameter:
    """A hardware knob: its name, what it is, its unit and the profile fields it scales."""

    name: str
    label: str
    unit: str
    fields: tuple[str, ...] = ()  # dotted paths under hardware, each ending in .value



Intervals = dict[str, Interval | None]  # metric -> interval over seeds (None: never ran)


def _means(intervals: Intervals) -> dict[str, float | None]:
    return {m: None if i is None else i.mean for m, i in intervals.items()}


def _json(intervals: Intervals) -> dict[str, float | None]:
    return {m: None if i is None else i.half for m, i in intervals.items()}


@dataclass(kw_only=True)
class Effect:
    """One parameter's effect, per metric, as an interval over the seeds: the elasticity
    and the relative changes at -delta and +delta (each paired with the same seed's
    baseline). ``low``/``high`` are the first seed's rows (their ``status`` says whether a
    side ran); ``low_rows``/``high_rows`` hold every seed's."""

    parameter: Parameter
    baseline_value: float
    low_rows: list[dict[str, Any]]
    high_rows: list[dict[str, Any]]
    elasticity_interval: Intervals = field(default_factory=dict)
    change_low_interval: Intervals = field(default_factory=dict)
    change_high_interval: Intervals = field(default_factory=dict)

    @property
    def low(self) -> dict[str, Any]:
        """The row at -delta of the first seed (the scenario's own)."""
        return self.low_rows[0]

    @property
    def high(self) -> dict[str, Any]:
        """The row at +delta of the first seed (the scenario's own)."""
        return self.high_rows[0]

    @property
    def elasticity(self) -> dict[str, float | None]:
        """Per metric, the mean elasticity over the seeds."""
        return _means(self.elasticity_interval)

    @property
    def change_low(self) -> dict[str, float | None]:
        """Per metric, the mean relative change at -delta."""
        return _means(self.change_low_interval)

    @property
    def change_high(self) -> dict[str, float | None]:
        """Per metric, the mean relative change at +delta."""
        return _means(self.change_high_interval)

    def verdict(self, metric: str) -> str:
        """'real', 'within noise', 'no effect' or '' (no noise estimate) for ``metric``."""
        found = self.elasticity_interval.get(metric)
        return "" if found is None else found.verdict

    def within_noise(self, metric: str) -> bool:
        """True when the elasticity's interval for ``metric`` contains zero."""
        found = self.elasticity_interval.get(metric)
        return found is not None and found.within_noise is True

    def as_dict(self) -> dict[str, Any]:
        """The effect as JSON-ready data: means, 95% half-widths and verdicts per metric."""
        p = self.parameter
        return {"parameter": p.name, "label": p.label, "unit": p.unit,
                "baseline_value": self.baseline_value,
                "elasticity": self.elasticity,
                "elasticity_ci95": _json(self.elasticity_interval),
                "change_low": self.change_low,
                "change_low_ci95": _json(self.change_low_interval),
                "change_high": self.change_high,
                "change_high_ci95": _json(self.change_high_interval),
                "verdict": {m: self.verdict(m) for m in self.elasticity_interval},
                "seeds_used": {m: None if i is None else i.n
                               for m, i in self.elasticity_interval.items()},
                "status_low": self.low["status"], "status_high": self.high["status"],
                "reason_low": self.low["reason"], "reason_high": self.high["reason"]}


@dataclass(kw_only=True)
class SensitivityResult:
    """Effects ranked by ``|elasticity[metric]|``, those within noise after every other
    (ties broken by the next metrics). ``baseline_rows`` holds each seed's unperturbed row,
    ``baseline`` the first seed's; ``baseline_interval`` the metrics' mean and interval over
    all seeds. ``deterministic``:
    no seed enters the ranking metric (a training step), so one seed is exact."""

    kind: str
    delta: float
    metric: str
    metrics: list[str]
    seeds: list[int]
    deterministic: bool
    baseline_rows: list[dict[str, Any]]
    baseline_interval: Intervals
    effects: list[Effect]

    @property
    def baseline(self) -> dict[str, Any]:
        """The unperturbed row of the first seed (the scenario's own)."""
        return self.baseline_rows[0]

    def as_dict(self) -> dict[str, Any]:
        """The study as JSON-ready data (``xpusim sensitivity --format json``)."""
        return {
            "kind": self.kind, "delta": self.delta, "metric": self.metric,
            "metrics": self.metrics, "seeds": self.seeds,
            "common_random_numbers": True, "deterministic": self.deterministic,
            "baseline": self.baseline,
            "baseline_mean": _means(self.baseline_interval),
            "baseline_ci95": _json(self.baseline_interval),
            "effects": [e.as_dict() for e in self.effects],
        }

    def csv_rows(self) -> tuple[list[str], list[list[Any]]]:
        """One row per (parameter, metric), ranked: the header and the rows of ``--out``."""
        header = ["rank", "parameter", "unit", "baseline_value", "metric", "elasticity",
                  "elasticity_ci95", "change_low", "change_low_ci95", "change_high",
                  "change_high_ci95", "verdict", "seeds", "status_low", "status_high"]
        rows = []
        for rank, e in enumerate(self.effects, 1):
            for m in self.metrics:
                el, lo, hi = (e.elasticity_interval.get(m), e.change_low_interval.get(m),
                              e.change_high_interval.get(m))
                rows.append([rank, e.parameter.name, e.parameter.unit, e.baseline_value, m,
                             *_pair(el), *_pair(lo), *_pair(hi), e.verdict(m),
                             0 if el is None else el.n, e.low["status"], e.high["status"]])
        return header, rows


def _pair(found: Interval | None) -> tuple[float | None, float | None]:
    return (None, None) if found is None else (found.mean, found.half)
