"""Running the validation cases: simulate each, read its metric, compare with the measurement.

The signed error of a case is ``(predicted - measured) / measured``: positive means xpusim
predicts more than was measured (a longer step time, a higher throughput). A case whose
simulation fails, or whose result lacks the metric, becomes a row with the message and no
prediction; it never stops the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import simulator.simulate as _simulate_module
from simulator.confidence.regime import Regime, regime_of
from simulator.errors import InputError
from simulator.profiles.scenario import Scenario
from simulator.studies.capacity import scenario_capacity
from simulator.validation.cases import Case, LoadedCase, load_cases

Simulate = Callable[[Scenario], Any]


@dataclass(frozen=True, kw_only=True)
class CaseRow:
    """One compared figure: the case, what xpusim predicted, or why it could not."""

    case: Case
    file: str
    predicted: float | None
    failure: str | None
    seconds: float  # wall-clock time the simulation took
    precision: str = "-"  # the scenario's weight precision (a group of the summary)
    detail: str | None = None  # how a searched figure was found (bracket, simulations)
    regime: Regime | None = None  # vendor, kind, precision, MoE, scale (the error bands')

    @property
    def signed_error(self) -> float | None:
        """(predicted - measured) / measured; None when the case produced no prediction."""
        if self.predicted is None:
            return None
        return (self.predicted - self.case.measured) / self.case.measured

    @property
    def abs_error(self) -> float | None:
        """The error's size, whatever its sign; None when the case produced no prediction."""
        error = self.signed_error
        return None if error is None else abs(error)


@dataclass(frozen=True)
class ValidationReport:
    """Every row of one run of the suite, in case order."""

    rows: tuple[CaseRow, ...]
    directory: str

    @property
    def compared(self) -> tuple[CaseRow, ...]:
        """The rows with a prediction (what the error statistics use)."""
        return tuple(r for r in self.rows if r.predicted is not None)

    @property
    def failed(self) -> tuple[CaseRow, ...]:
        """The rows without a prediction (counted apart: a failure is not an error of 0)."""
        return tuple(r for r in self.rows if r.predicted is None)

    def as_dict(self) -> dict[str, Any]:
        """The run as JSON-ready data: every row and the summary (``validate-against --format
        json``)."""
        from simulator.validation.report import error_summary

        return {
            "directory": self.directory,
            "rows": [{"id": r.case.id, "title": r.case.title, "vendor": r.case.vendor,
                      "kind": r.case.kind, "metric": r.case.metric,
                      "measured": r.case.measured, "predicted": r.predicted,
                      "precision": r.precision,
                      "used_for_calibration": r.case.used_for_calibration,
                      "signed_error": r.signed_error, "failure": r.failure,
                      "detail": r.detail, "seconds": r.seconds} for r in self.rows],
            "summary": [s.__dict__ for s in error_summary(self)],
        }


class MetricMissing(LookupError):
    """The result has no number at the case's metric path."""


class CapacityNotFound(LookupError):
    """A sustainable-rate search found no rate that meets the SLO."""


def read_metric(result: Any, path: str) -> float:
    """The number at dotted ``path`` in the result's JSON form (a pydantic model or a mapping)."""
    data = result.model_dump(mode="json") if hasattr(result, "model_dump") else result
    node: Any = data
    walked: list[str] = []
    for key in path.split("."):
        if not isinstance(node, Mapping) or key not in node:
            where = ".".join(walked) or "the result"
            keys = sorted(node) if isinstance(node, Mapping) else []
            have = f"; it has: {', '.join(keys)}" if keys else ""
            raise MetricMissing(f"metric {path}: {where} has no {key!r}{have}")
        node = node[key]
        walked.append(key)
    if isinstance(node, bool) or not isinstance(node, int | float):
        raise MetricMissing(f"metric {path} is {node!r}, not a number")
    return float(node)


def _predict(item: LoadedCase, simulate: Simulate) -> tuple[float, str | None]:
    """The case's predicted figure, and how it was found when it was searched for."""
    if not item.case.is_capacity:
        return read_metric(simulate(item.scenario), item.case.metric), None
    capacity = scenario_capacity(item.scenario, simulate)
    if capacity.rate_per_s is None:
        raise CapacityNotFound(f"the SLO is missed even at the lowest rate tried: "
                               f"{capacity.describe()}")
    return capacity.rate_per_s, capacity.describe()


def run_case(item: LoadedCase, simulate: Simulate) -> CaseRow:
    """Simulate one case (or, for a sustainable-rate case, search over its arrival rate);
    any failure becomes the row's message."""
    start = time.perf_counter()
    detail = None
    try:
        predicted: float | None
        predicted, detail = _predict(item, simulate)
        failure = None
    except Exception as exc:  # one broken case (even an engine bug) must not hide the others
        predicted, failure = None, f"{type(exc).__name__}: {exc}"
    workload = item.scenario.workload
    return CaseRow(case=item.case, file=item.file, predicted=predicted, failure=failure,
                   seconds=time.perf_counter() - start, precision=workload.precision.value,
                   detail=detail, regime=regime_of(item.scenario))


def run_cases(directory: str | Path, simulate: Simulate | None = None, *,
              only: Collection[str] | None = None,
              progress: Callable[[float, float], None] | None = None) -> ValidationReport:
    """Load every case in ``directory`` and compare each with its simulation.

    ``simulate`` defaults to :func:`simulator.simulate.simulate` (looked up at call time, so
    the engines wired in later are the ones used); tests pass a fake. ``only`` keeps the cases
    whose id is listed or starts with a listed id followed by ``-`` (``I12`` keeps every I12
    row). Malformed case files raise :class:`simulator.errors.InputErrors` before anything
    runs. ``progress(done, total)``, if given, is called after each case (the command's bar:
    the suite takes minutes, its searched rates most of them).
    """
    run = simulate if simulate is not None else _simulate_module.simulate
    cases = load_cases(directory)
    if only is not None:
        unmatched = [w for w in only if not any(_selected(c.case.id, [w]) for c in cases)]
        if unmatched:
            known = sorted({c.case.id.split("-")[0] for c in cases})
            raise InputError(f"--only {unmatched[0]!r} selects no case in {directory}; case ids "
                             f"start with {', '.join(known[:30])}"
                             + (" ..." if len(known) > 30 else ""))
        cases = [c for c in cases if _selected(c.case.id, only)]
    rows = []
    for done, case in enumerate(cases, start=1):
        rows.append(run_case(case, run))
        if progress is not None:
            progress(done, len(cases))
    return ValidationReport(rows=tuple(rows), directory=str(directory))


def _selected(case_id: str, only: Collection[str]) -> bool:
    return any(case_id == wanted or case_id.startswith(f"{wanted}-") for wanted in only)
