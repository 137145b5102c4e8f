"""Replications of a point with different seeds: mean and 95% confidence interval per metric.

The interval is Student's t: mean ± t(0.975, n-1) · s / √n, with s the sample standard
deviation; it needs two replications or more (with one the half-width is null).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

# t quantile 0.975 for 1..30 degrees of freedom; beyond, the Cornish-Fisher expansion below.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
_Z975 = 1.959964


def t975(dof: int) -> float:
    """The 97.5% quantile of Student's t with ``dof`` degrees of freedom."""
    if dof < 1:
        raise ValueError("a t quantile needs at least one degree of freedom")
    if dof <= len(_T975):
        return _T975[dof - 1]
    z = _Z975
    return (z + (z ** 3 + z) / (4 * dof) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * dof ** 2))


def mean_ci(values: Sequence[float]) -> tuple[float, float | None]:
    """(mean, half-width of the 95% interval, or None for fewer than two values)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    half = t975(n - 1) * math.sqrt(var) / math.sqrt(n)
    # Identical values summed in another order differ in the last bits: call that zero.
    return mean, 0.0 if half <= 1e-12 * abs(mean) else half


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return float(value) if isinstance(value, bool) else None
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def replication_summary(rows: Iterable[dict[str, Any]], group_by: Sequence[str],
              metrics: Sequence[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per group of ``group_by`` values: ``n`` (ok replications), ``failed``, and
    ``METRIC_mean`` / ``METRIC_ci95`` for each metric. Returns (rows, columns)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(c) for c in group_by), []).append(row)
    columns = [*group_by, "n", "failed"]
    for metric in metrics:
        columns += [f"{metric}_mean", f"{metric}_ci95"]
    out = []
    for key, members in groups.items():
        ok = [r for r in members if r.get("status") == "ok"]
        summary: dict[str, Any] = dict(zip(group_by, key, strict=True))
        summary.update(n=len(ok), failed=len(members) - len(ok))
        for metric in metrics:
            values = [v for v in (_number(r.get(metric)) for r in ok) if v is not None]
            mean, half = mean_ci(values) if values else (None, None)
            summary[f"{metric}_mean"], summary[f"{metric}_ci95"] = mean, half
        out.append(summary)
    return out, columns
