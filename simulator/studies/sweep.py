"""``xpusim sweep``: run every point of a grid, stream one row per point to a table file.

The table (CSV or JSON Lines, by the extension of ``out``) gets each row as soon as its point
finishes, durably (see :mod:`simulator.studies.table`). ``resume`` reads the rows already
there, skips their points (matched by the ``point`` key) and appends the rest, so a killed
sweep finishes with every point exactly once. With replications (``--seeds``) a summary
table (mean and 95% interval per metric, one row per point of the grid) is written beside
it as ``NAME.summary.EXT``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.errors import InputError, InputErrors
from simulator.loading import scenario_from_dict
from simulator.profiles.overrides import apply_overrides
from simulator.studies.executors import Executor, InProcessExecutor
from simulator.studies.grid import Point, axis_columns
from simulator.studies.rows import Base, evaluate, metric_columns
from simulator.studies.stats import replication_summary
from simulator.studies.table import open_table, write_table

OnRow = Callable[[dict[str, Any], int, int], None]

_NOT_SUMMARIZED = {"hardware", "precision", "seed", "accelerators", "used_accelerators",
                   "billed_accelerators", "purchase_units", "warnings"}


@dataclass(kw_only=True)
class SweepOutcome:
    """What a sweep produced: every point's row (in point order) and where it went."""

    rows: list[dict[str, Any]]
    columns: list[str]
    computed: int = 0
    resumed: int = 0
    out: Path | None = None
    foreign: int = 0
    dropped: int = 0  # lines of the resumed table that were not whole rows (run again)
    summary: list[dict[str, Any]] = field(default_factory=list)
    summary_columns: list[str] = field(default_factory=list)
    summary_path: Path | None = None

    def count(self, status: str) -> int:
        """How many rows have ``status`` (e.g. ``error``, for the exit code)."""
        return sum(1 for row in self.rows if row.get("status") == status)


def sweep_columns(base: Base, points: Sequence[Point]) -> list[str]:
    """``point``, the axes, ``status``, ``reason``, then the metrics of the workload kind."""
    axes = axis_columns(points)
    return ["point", *axes, "status", "reason",
            *(c for c in metric_columns(base.kind) if c not in axes)]


def check_paths(base: Base, points: Sequence[Point]) -> None:
    """Fail before running anything when an axis names a field the scenario does not have.

    Any other problem of a point (a bad layout, a value out of range) is that point's row.
    """
    if not points:
        return
    overrides = points[0].overrides
    try:
        data = apply_overrides(base.data, overrides)
        scenario_from_dict(data, base_dir=base.base_dir, overrides=overrides)
    except InputErrors as exc:
        unknown = [e for e in exc.errors if e.message.startswith("unknown field")]
        if unknown:
            raise InputErrors(unknown) from None
    except InputError:
        raise
    except Exception:  # any other failure belongs to the point's row
        return


def summary_path(out: Path) -> Path:
    """Where the summary of a replicated sweep goes: ``NAME.summary.EXT`` beside ``out``."""
    return out.with_name(f"{out.stem}.summary{out.suffix}")


def run_sweep(base: Base, points: Sequence[Point], *, out: str | Path | None = None,
              resume: bool = False, executor: Executor | None = None,
              on_row: OnRow | None = None) -> SweepOutcome:
    """Run ``points`` on ``executor`` (default: in this process) and collect their rows.

    ``out`` streams rows to a CSV/JSONL file; ``resume`` continues a file a killed sweep left.
    ``on_row(row, done, total)`` is called after each new row (for progress bars), with
    ``done`` counting resumed points too.
    """
    if resume and out is None:
        raise InputError("--resume needs --out (the table to continue)")
    check_paths(base, points)
    columns = sweep_columns(base, points)
    by_key = {point.key: point for point in points}
    done: dict[str, dict[str, Any]] = {}
    outcome = SweepOutcome(rows=[], columns=columns)
    writer = None
    if out is not None:
        outcome.out = Path(out)
        writer, existing, outcome.dropped = open_table(outcome.out, columns, resume)
        for row in existing:
            key = str(row.get("point"))
            if key in by_key:
                done.setdefault(key, row)
            else:
                outcome.foreign += 1
        outcome.resumed = len(done)
    todo = [point for point in points if point.key not in done]
    executor = executor or InProcessExecutor()
    try:
        for _, row in executor.imap(evaluate, base, todo):
            if writer is not None:
                writer.write(row)
            done[row["point"]] = row
            outcome.computed += 1
            if on_row is not None:
                on_row(row, len(done), len(points))
    finally:
        if writer is not None:
            writer.close()
    outcome.rows = [done[point.key] for point in points]
    if any(name == "seed" for point in points for name, _ in point.labels):
        _summarize(outcome, points, base)
    return outcome


def _summarize(outcome: SweepOutcome, points: Sequence[Point], base: Base) -> None:
    group_by = [c for c in axis_columns(points) if c != "seed"]
    metrics = [c for c in metric_columns(base.kind) if c not in _NOT_SUMMARIZED]
    outcome.summary, outcome.summary_columns = replication_summary(outcome.rows, group_by, metrics)
    if outcome.out is not None:
        outcome.summary_path = summary_path(outcome.out)
        write_table(outcome.summary_path, outcome.summary, outcome.summary_columns)
