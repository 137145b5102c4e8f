"""Fidelity: xpusim's predictions checked against published measurements.

``validation/cases/*.yaml`` holds one case per published figure (see
:mod:`simulator.validation.cases`); :func:`run_cases` simulates them all and
:mod:`simulator.validation.report` summarizes the errors and writes docs/validation.md::

    from simulator.validation import run_cases, to_markdown
    report = run_cases("validation/cases")
    print(to_markdown(report, command="...", date="2026-05-01"))
"""

from simulator.validation.cases import (
    SKIPPED,
    Case,
    LoadedCase,
    Skipped,
    load_case_file,
    load_cases,
)
from simulator.validation.guard import (
    TARGETS,
    GuardFigures,
    Limits,
    guard_figures,
    guard_violations,
    is_exempt,
)
from simulator.validation.report import (
    GroupSummary,
    SplitSummary,
    error_summary,
    render_tables,
    split_summary,
    to_markdown,
)
from simulator.validation.runner import CaseRow, ValidationReport, read_metric, run_cases

__all__ = [
    "SKIPPED",
    "TARGETS",
    "Case",
    "CaseRow",
    "GroupSummary",
    "GuardFigures",
    "Limits",
    "LoadedCase",
    "Skipped",
    "SplitSummary",
    "ValidationReport",
    "error_summary",
    "guard_figures",
    "guard_violations",
    "is_exempt",
    "load_case_file",
    "load_cases",
    "read_metric",
    "render_tables",
    "run_cases",
    "split_summary",
    "to_markdown",
]
