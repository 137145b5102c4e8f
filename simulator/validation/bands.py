"""The error bands of a validation run: its compared figures as
:class:`~simulator.confidence.table.BandCase` rows, and the JSON of
``simulator/confidence/error_bands.json`` that every result's confidence is read from.

Written by ``xpusim validate-against validation/ --bands FILE`` from a run of the whole
suite; ``tests/test_validation_guard.py`` rebuilds the table from its own run and fails when
the committed file differs, so the bands always describe the code as it is.
"""

from __future__ import annotations

import json
from datetime import date as Date
from typing import Any

from simulator.confidence.regime import metric_family
from simulator.confidence.table import BandCase, build_table
from simulator.validation.runner import CaseRow, ValidationReport


def band_case(row: CaseRow) -> BandCase | None:
    """``row`` as the bands see it; None when it has no prediction, no regime, or a metric of
    neither family (such as expected failure counts)."""
    family = metric_family(row.case.metric)
    if row.abs_error is None or row.regime is None or family is None:
        return None
    return BandCase(id=row.case.id, regime=row.regime, family=family,
                    abs_error=row.abs_error, held_out=not row.case.used_for_calibration,
                    near_saturation=row.case.capacity_case is not None)


def bands_table(report: ValidationReport) -> dict[str, Any]:
    """The bands and coverage of ``report`` (without the line saying when it ran)."""
    cases = [c for c in (band_case(r) for r in report.rows) if c is not None]
    return build_table(cases)


def bands_json(report: ValidationReport, command: str, date: str | Date) -> str:
    """The whole file: when and how it was generated, then :func:`bands_table`."""
    when = date.isoformat() if isinstance(date, Date) else str(date)
    return json.dumps({"generated": when, "command": command, **bands_table(report)},
                      indent=1) + "\n"
