"""Whether a serving fleet keeps up with a rate: the SLO over a run, and the backlog's trend.

A latency percentile over a finite run does not alone say that a rate is sustainable. An
overloaded fleet's backlog (requests arrived and not finished) grows by the excess of
arrivals over completions, ``lambda - mu`` requests per second, and its p99 TTFT passes the
limit only once the queue ahead of a request takes longer than the limit to clear: a run
short enough ends before that, and meets the SLO at a rate above the fleet's capacity
(MLPerf's Server scenario runs at least 600 s for this reason). A continuous-batching fleet
below capacity absorbs a higher rate by growing its batch instead, and near capacity it
settles slowly: its backlog rises for a while and then levels off.

So a rate is judged on the run's SLO targets *and* the backlog's trend late in the run: the
least-squares slope of the time-averaged requests in the system (``time_series.in_system``)
over the second half of the steady window (the half furthest from the fill-up; without a
steady window, of the arrivals' span). A fleet whose backlog grows faster than
:data:`KEEP_UP` of the arrival rate completes less than ``1 - KEEP_UP`` of what arrives: the
rate is past its capacity by more than half the search's default resolution (2%), so
calling it unsustainable cannot move an answer by more than the search's own tolerance.
Below capacity the slope is noise: within +-0.7% of the rate on the shipped MLPerf cases
(``validation/cases/I4*``) once their runs are long enough to settle.

A growing backlog is not yet a verdict: the run may simply be too short to settle. The
search (:mod:`simulator.studies.capacity`) then simulates the rate again over a longer
window, and only a backlog still growing over the longest one fails.

Nor is a run without a steady window (:mod:`simulator.engine.serving.window`: its batch
never reached flow balance before the last arrival) a verdict, even with its SLO met and a
level backlog: a batch still filling has not yet reached the size, nor the TPOT, that the
rate settles at, and its requests in the system can look level over the arrivals' second
half while the batch grows and the queue shrinks. Such a run is simulated again over a
longer window too; only over the longest is its backlog over the arrivals taken as the
verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

KEEP_UP = 0.01  # the backlog may grow by at most this fraction of the arrival rate
MIN_POINTS = 4  # time-series bins a slope is fitted to, at least


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """A run at one rate, judged: ``meets`` (every SLO target met), ``settled`` (the
    backlog does not grow, or cannot be judged), ``steady`` (the run found a steady window:
    its batch stopped filling), the backlog's growth in requests per second (None: too few
    bins to fit), and the reason in words."""

    meets: bool
    settled: bool
    growth_per_s: float | None
    reason: str
    steady: bool = True

    @property
    def sustainable(self) -> bool:
        """Met, settled and steady: the rate passes."""
        return self.meets and self.settled and self.steady

    @property
    def conclusive(self) -> bool:
        """Whether a longer run could not change the verdict: the SLO is missed, or it is
        met by a steady run whose backlog does not grow (the rate passes)."""
        return not self.meets or self.sustainable


def backlog_growth(t_s: np.ndarray, in_system: np.ndarray, start_s: float,
                   end_s: float) -> float | None:
    """The least-squares slope (requests per second) of ``in_system`` against the bin
    times ``t_s`` over the second half of ``[start_s, end_s)``; None with fewer than
    :data:`MIN_POINTS` bins there."""
    t, n = np.asarray(t_s, dtype=float), np.asarray(in_system, dtype=float)
    middle = (start_s + end_s) / 2
    late = (t >= middle) & (t < end_s)
    if int(np.sum(late)) < MIN_POINTS:
        return None
    x, y = t[late], n[late]
    dx = x - x.mean()
    return float(np.dot(dx, y - y.mean()) / np.dot(dx, dx))


def _span(result: Any) -> tuple[float, float]:
    """The span the trend is read over: the steady window, or else the bins that had
    arrivals (first to last)."""
    steady = result.steady
    if steady is not None and steady.found:
        return float(steady.start_s), float(steady.end_s)
    series = result.inference.time_series
    arriving = np.flatnonzero(np.asarray(series.arrivals_per_s) > 0)
    if len(arriving) == 0:
        return 0.0, 0.0
    return float(series.t_s[arriving[0]]), float(series.t_s[arriving[-1]])


def _missed(targets: dict[str, Any]) -> str:
    """The SLO targets missed, in words. A percentile can read under its target and still
    miss: requests that never completed (dropped, or still queued when the run ends) count
    as outside it, so the share within is what decides."""
    def one(name: str, t: Any) -> str:
        """One missed target, in words."""
        label = f"p{t.percentile:g} {name.removesuffix('_s').upper()}"
        value = "none" if t.value_s is None else f"{t.value_s:.4g} s"
        within = getattr(t, "attainment", None)
        if t.value_s is not None and t.value_s <= t.target_s and within is not None:
            return (f"{label} {value}, but {within:.1%} within {t.target_s:.4g} s "
                    f"(unfinished requests count outside)")
        return f"{label} {value} > {t.target_s:.4g} s"
    return "; ".join(one(name, t) for name, t in targets.items() if not t.met)


def judge(result: Any, rate_per_s: float) -> Verdict:
    """``result`` (a serving run at ``rate_per_s``) judged on its SLO and its backlog."""
    targets = result.inference.slo
    if not targets or not all(t.met for t in targets.values()):
        return Verdict(meets=False, settled=True, growth_per_s=None,
                       reason=f"misses the SLO: {_missed(targets) or 'no targets'}")
    series = result.inference.time_series
    start, end = _span(result)
    steady = result.steady is not None and bool(result.steady.found)
    growth = backlog_growth(np.asarray(series.t_s), np.asarray(series.in_system), start, end)
    span = f"over {result.time_s:.4g} s"
    if growth is None:
        return Verdict(meets=True, settled=False, growth_per_s=None, steady=steady,
                       reason=f"meets the SLO {span}, too short to judge the backlog")
    if growth > KEEP_UP * rate_per_s:
        return Verdict(meets=True, settled=False, growth_per_s=growth, steady=steady,
                       reason=f"meets the SLO {span}, but the backlog grows at {growth:.4g} "
                              f"req/s ({growth / rate_per_s:.1%} of the rate)")
    if not steady:
        return Verdict(meets=True, settled=True, growth_per_s=growth, steady=False,
                       reason=f"meets the SLO {span} with a level backlog, but without a "
                              f"steady window (the batch may still be filling)")
    return Verdict(meets=True, settled=True, growth_per_s=growth,
                   reason=f"meets the SLO {span} and keeps up")
