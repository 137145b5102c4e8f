"""The Pareto front of two costs to minimize (e.g. dollars and latency), and its plot.

A point is dominated when another is no worse in both and strictly better in one; the front
is what is left. The plot (matplotlib, Agg backend, a PNG) shows every candidate, the front
as a line, the winner as a star and an optional limit (deadline or SLO) as a dashed line.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simulator.report.files import write_atomic


def dominates(a: dict[str, Any], b: dict[str, Any], x: str, y: str) -> bool:
    """``a`` is no worse than ``b`` in ``x`` and ``y`` and strictly better in one."""
    return a[x] <= b[x] and a[y] <= b[y] and (a[x] < b[x] or a[y] < b[y])


def pareto_front(rows: Sequence[dict[str, Any]], x: str, y: str) -> list[dict[str, Any]]:
    """The non-dominated rows, sorted by ``x`` (then ``y``); duplicates kept once.

    Rows missing either value are ignored. Sorting by (x, y) makes one pass enough: a row is
    on the front exactly when its ``y`` is below every ``y`` seen before it.
    """
    usable = [r for r in rows if r.get(x) is not None and r.get(y) is not None]
    front: list[dict[str, Any]] = []
    best_y = float("inf")
    for row in sorted(usable, key=lambda r: (r[x], r[y])):
        if row[y] < best_y:
            front.append(row)
            best_y = row[y]
    return front


def plot_front(path: Path, rows: Sequence[dict[str, Any]], front: Sequence[dict[str, Any]],
               x: str, y: str, *, winner: dict[str, Any] | None = None,
               x_label: str = "", y_label: str = "", title: str = "",
               x_limit: float | None = None, limit_label: str = "limit",
               x_divisor: float = 1.0) -> str | None:
    """Write the scatter and front as a PNG; returns None, or why no plot was made.

    ``x_divisor`` rescales the x axis for reading (86400: seconds shown as days)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed; no plot (pip install matplotlib)"
    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=120)
    try:
        xs = [r[x] / x_divisor for r in rows if r.get(x) is not None and r.get(y) is not None]
        ys = [r[y] for r in rows if r.get(x) is not None and r.get(y) is not None]
        ax.scatter(xs, ys, s=14, color="0.65", label=f"candidates ({len(xs)})")
        ax.plot([r[x] / x_divisor for r in front], [r[y] for r in front], "o-", color="tab:blue",
                markersize=5, label=f"Pareto front ({len(front)})")
        if winner is not None:
            ax.scatter([winner[x] / x_divisor], [winner[y]], marker="*", s=220, color="tab:red",
                       zorder=5, label="winner")
        if x_limit is not None:
            ax.axvline(x_limit / x_divisor, linestyle="--", color="tab:orange", label=limit_label)
        ax.set_xlabel(x_label or x)
        ax.set_ylabel(y_label or y)
        positive = [v for v in xs if v > 0]
        if positive and max(positive) > 20 * min(positive):
            ax.set_xscale("log")
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format=path.suffix.lstrip(".").lower() or "png")
    finally:
        plt.close(fig)
    write_atomic(path, buffer.getvalue())
    return None
