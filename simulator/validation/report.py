"""Summaries and renderings of a validation run: rich tables and the docs/validation.md body.

The summary gives, per vendor, per kind (training / inference) and overall, the median and
the worst absolute relative error over the cases that produced a prediction; cases that
failed are counted apart (a failure is not an error of 0).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date as Date

from rich.table import Table

from simulator.validation.cases import SKIPPED, Skipped
from simulator.validation.guard import TARGETS, guard_figures
from simulator.validation.runner import CaseRow, ValidationReport


@dataclass(frozen=True, kw_only=True)
class GroupSummary:
    """Error statistics of one group of rows (a vendor, a kind, or all)."""

    group: str  # "all", "vendor: NVIDIA", "kind: training"
    cases: int
    compared: int
    failed: int
    median_abs_error: float | None
    worst_abs_error: float | None
    worst_case: str | None


def _group_summary(group: str, rows: Sequence[CaseRow]) -> GroupSummary:
    errors = [(r.abs_error, r.case.id) for r in rows if r.abs_error is not None]
    worst = max(errors, default=None)
    return GroupSummary(
        group=group, cases=len(rows), compared=len(errors), failed=len(rows) - len(errors),
        median_abs_error=statistics.median(e for e, _ in errors) if errors else None,
        worst_abs_error=worst[0] if worst else None,
        worst_case=worst[1] if worst else None)


GROUPINGS: tuple[tuple[str, Callable[[CaseRow], str]], ...] = (
    ("vendor", lambda r: r.case.vendor),
    ("kind", lambda r: r.case.kind),
    ("precision", lambda r: r.precision),
)


def _summaries(rows: Sequence[CaseRow], labels: Sequence[str] | None = None
               ) -> list[GroupSummary]:
    """"all", then each vendor, kind and precision of ``rows`` (or of ``labels``, the
    groups to report even where ``rows`` has none of them)."""
    groups = [(f"{label}: {value}", [r for r in rows if key(r) == value])
              for label, key in GROUPINGS for value in dict.fromkeys(key(r) for r in rows)]
    out = [_group_summary("all", rows), *(_group_summary(g, members) for g, members in groups)]
    if labels is None:
        return out
    have = {s.group: s for s in out}
    return [have.get(g) or _group_summary(g, []) for g in labels]


def error_summary(report: ValidationReport) -> list[GroupSummary]:
    """Overall first, then each vendor, each kind and each weight precision (in order of
    first appearance)."""
    return _summaries(report.rows)


@dataclass(frozen=True, kw_only=True)
class SplitSummary:
    """One group's errors over the held-out figures and, apart, over the figures that
    informed a profile number (``used_for_calibration``)."""

    group: str
    held_out: GroupSummary
    calibration: GroupSummary


def split_summary(report: ValidationReport) -> list[SplitSummary]:
    """Every group of :func:`error_summary`, split into held-out and calibration figures."""
    labels = [s.group for s in error_summary(report)]
    held = _summaries([r for r in report.rows if not r.case.used_for_calibration], labels)
    used = _summaries([r for r in report.rows if r.case.used_for_calibration], labels)
    return [SplitSummary(group=g, held_out=h, calibration=c)
            for g, h, c in zip(labels, held, used, strict=True)]


# ---- formatting -------------------------------------------------------------------------

def format_figure(value: float | None) -> str:
    """Measured and predicted figures: thousands separators above 100, 4 digits below."""
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def format_error(error: float | None, signed: bool = True) -> str:
    """An error as a percentage with one decimal (signed, or its absolute value); '-' without
    one."""
    if error is None:
        return "-"
    return f"{error * 100:+.1f}%" if signed else f"{error * 100:.1f}%"


# ---- rich -------------------------------------------------------------------------------

def cases_table(report: ValidationReport) -> Table:
    """Every case: what was measured, what xpusim predicts, and the signed error (or 'failed')."""
    table = Table(title=f"Predicted vs measured ({len(report.rows)} cases)")
    for name in ("id", "title", "vendor", "kind", "metric"):
        table.add_column(name, overflow="fold")
    for name in ("measured", "predicted", "error"):
        table.add_column(name, justify="right")
    for row in report.rows:
        table.add_row(row.case.id, row.case.title, row.case.vendor, row.case.kind,
                      row.case.metric, format_figure(row.case.measured),
                      format_figure(row.predicted),
                      format_error(row.signed_error) if row.failure is None else "failed")
    return table


def summary_table(report: ValidationReport) -> Table:
    """The median and worst absolute error overall, per vendor, per kind and per precision."""
    table = Table(title="Absolute error by vendor, kind and precision")
    table.add_column("group")
    for name in ("cases", "compared", "failed", "median |error|", "worst |error|"):
        table.add_column(name, justify="right")
    table.add_column("worst case")
    for s in error_summary(report):
        table.add_row(s.group, str(s.cases), str(s.compared), str(s.failed),
                      format_error(s.median_abs_error, signed=False),
                      format_error(s.worst_abs_error, signed=False), s.worst_case or "-")
    return table


def failures_table(report: ValidationReport) -> Table | None:
    """The cases that produced no prediction, with their messages (None when all did)."""
    if not report.failed:
        return None
    table = Table(title="Cases that did not produce a prediction")
    table.add_column("id")
    table.add_column("message", overflow="fold")
    for row in report.failed:
        table.add_row(row.case.id, row.failure or "")
    return table


def split_table(report: ValidationReport) -> Table:
    """Median and worst error of the held-out figures, and apart of the calibration ones."""
    table = Table(title="Held-out vs calibration figures (used_for_calibration)")
    table.add_column("group")
    for name in ("held-out n", "median", "worst", "calibration n", "median", "worst"):
        table.add_column(name, justify="right")
    for s in split_summary(report):
        cells = [str(s.held_out.compared), format_error(s.held_out.median_abs_error, False),
                 format_error(s.held_out.worst_abs_error, False), str(s.calibration.compared),
                 format_error(s.calibration.median_abs_error, False),
                 format_error(s.calibration.worst_abs_error, False)]
        table.add_row(s.group, *cells)
    return table


def render_tables(report: ValidationReport) -> list[Table]:
    """The tables a console shows for a run: cases, summary, the held-out split, and
    failures if any."""
    tables = [cases_table(report), summary_table(report), split_table(report)]
    failures = failures_table(report)
    return [*tables, failures] if failures is not None else tables


# ---- markdown ---------------------------------------------------------------------------

def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    align = ["---:" if i in right else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _summary_md(report: ValidationReport) -> list[str]:
    return _md_table(
        ["group", "cases", "compared", "failed", "median abs error", "worst abs error",
         "worst case"],
        [[s.group, str(s.cases), str(s.compared), str(s.failed),
          format_error(s.median_abs_error, signed=False),
          format_error(s.worst_abs_error, signed=False), s.worst_case or "-"]
         for s in error_summary(report)], right={1, 2, 3, 4, 5})


def _split_md(report: ValidationReport) -> list[str]:
    def cells(s: GroupSummary) -> list[str]:
        """Compared count, median and worst of one half of the split."""
        return [str(s.compared), format_error(s.median_abs_error, signed=False),
                format_error(s.worst_abs_error, signed=False)]

    return _md_table(
        ["group", "held-out compared", "held-out median", "held-out worst",
         "calibration compared", "calibration median", "calibration worst"],
        [[s.group, *cells(s.held_out), *cells(s.calibration)] for s in split_summary(report)],
        right={1, 2, 3, 4, 5, 6})


def _guard_md(report: ValidationReport) -> list[str]:
    """The run against the issue-15 targets (simulator.validation.guard)."""
    f = guard_figures(report)

    def row(name: str, target: float, value: float | None, extra: str = "") -> list[str]:
        """One figure against its target, and whether it is met."""
        met = "yes" if value is not None and value <= target else "no"
        return [name, format_error(target, signed=False),
                format_error(value, signed=False) + extra, met]

    rows = [row("median, all figures", TARGETS.median, f.median)]
    rows += [row(f"median, vendor {v}", TARGETS.for_vendor(v), m)
             for v, m in f.vendor_medians.items()]
    rows.append(row("worst figure (server latencies with a capacity case exempt)",
                    TARGETS.case, f.worst, f" ({f.worst_case})" if f.worst_case else ""))
    rows.append(["cases without a prediction", "0", str(len(f.failed)),
                 "yes" if not f.failed else "no"])
    exempt = ", ".join(f.exempt) or "none"
    return [*_md_table(["figure", "target", "now", "met"], rows, right={1, 2}), "",
            f"Exempt from the per-figure target: {exempt}."]


def to_markdown(report: ValidationReport, command: str, date: str | Date,
                skipped: tuple[Skipped, ...] = SKIPPED) -> str:
    """The generated body of docs/validation.md: summary, held-out split, targets, every
    case, searched figures, failures, skips."""
    when = date.isoformat() if isinstance(date, Date) else str(date)
    out = [f"Generated on {when} by:", "", "```bash", command, "```", "",
           "Signed error = (predicted - measured) / measured; the summary uses its absolute "
           "value over the cases that produced a prediction.", "", "### Summary", "",
           *_summary_md(report), "", "### Held-out and calibration figures", "",
           "Calibration figures informed a profile number (`used_for_calibration: true`); "
           "only the held-out ones test prediction.", "", *_split_md(report), "",
           "### Targets (issue 15)", "", *_guard_md(report), "", "### Cases", ""]
    out += _md_table(
        ["id", "title", "vendor", "kind", "metric", "use", "measured", "predicted",
         "signed error"],
        [[r.case.id, r.case.title, r.case.vendor, r.case.kind, f"`{r.case.metric}`",
          "calibration" if r.case.used_for_calibration else "held-out",
          format_figure(r.case.measured), format_figure(r.predicted),
          format_error(r.signed_error) if r.failure is None else "failed"]
         for r in report.rows], right={6, 7, 8})
    searched = [r for r in report.rows if r.detail]
    if searched:
        out += ["", "### Searched figures", ""]
        out += [f"- **{r.case.id}**: {_cell(r.detail or '')}" for r in searched]
    if report.failed:
        out += ["", "### Cases that did not produce a prediction", ""]
        out += [f"- **{r.case.id}**: {_cell(r.failure or '')}"
                for r in report.failed]
    if skipped:
        out += ["", "### Published measurements not compared", ""]
        out += [f"- **{s.id}**: {s.reason}" for s in skipped]
    return "\n".join(out) + "\n"
