"""An autoscaled run cut into time bins: replicas billed, tokens, busy time and the SLO in
each, the physical half of the cost per token over the day (``simulate`` prices them).

Every figure is binned so that the bins add up to the run's: replica-seconds are the
integral of the billed step function over each bin; tokens are those of the requests that
completed in the bin (the run's throughput counts completed requests' tokens); busy
device-seconds come from the run's time series, spread evenly within each of its bins. The
SLO is judged by arrival: of the requests that arrived in a bin, those that completed and
missed a target (the load they met, not when they left).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from simulator.engine.serving.metrics import Series
from simulator.results.autoscaling import ScaleBin
from simulator.results.inference import RequestRecords

# bin widths a planner reads at a glance: 1, 5, 15, 30 minutes; 1, 2, 3, 6, 12 hours; a day
ROUND_BINS_S = (60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 10800.0, 21600.0, 43200.0,
                86400.0)
MOST_BINS = 36  # an hour in 5-minute bins, a day in hours, a week in 6-hour bins


def bin_width(span_s: float) -> float:
    """The roundest width giving at most :data:`MOST_BINS` bins over ``span_s`` (whole days
    past a week)."""
    for width in ROUND_BINS_S:
        if span_s <= MOST_BINS * width:
            return width
    return ROUND_BINS_S[-1] * math.ceil(span_s / (MOST_BINS * ROUND_BINS_S[-1]))


def bin_edges(t0: float, t_end: float, width: float) -> np.ndarray:
    """Edges at the multiples of ``width`` (the hours of the day, with hourly bins) between
    ``t0`` and ``t_end``, which are the first and last; a last bin shorter than a tenth of
    ``width`` (the drain after the last arrival) joins the one before."""
    first = math.floor(t0 / width) + 1
    inner = width * np.arange(first, math.ceil(round(t_end / width, 9)))
    edges = np.concatenate(([t0], inner[(inner > t0) & (inner < t_end)], [t_end]))
    if len(edges) > 2 and edges[-1] - edges[-2] < 0.1 * width:
        edges = np.delete(edges, -2)
    return edges


def step_integral(t_s: Sequence[float], values: Sequence[int], edges: np.ndarray) -> np.ndarray:
    """The integral over each bin of the step function worth ``values[i]`` from ``t_s[i]``."""
    times = np.asarray(t_s, dtype=float)
    heights = np.asarray(values, dtype=float)
    widths = np.diff(np.append(times, math.inf))
    cumulative = np.concatenate(([0.0], np.cumsum(heights[:-1] * widths[:-1])))

    def area(t: np.ndarray) -> np.ndarray:
        """The integral from the first time to each of ``t``."""
        i = np.searchsorted(times, t, "right") - 1
        return cumulative[i] + heights[i] * (t - times[i])

    return np.diff(area(edges))


def series_integral(series: Series, channel: str, edges: np.ndarray) -> np.ndarray:
    """A series channel's sums spread evenly within its bins, integrated over ``edges``.
    Nothing runs before the first arrival or after the last completion (``edges[0]`` and
    ``edges[-1]``), so the series bins holding them are spread over their part inside."""
    t0, t_end = float(edges[0]), float(edges[-1])
    width = series.width
    first, used = int(t0 / width), series.used(t_end)
    values = list(series.values[channel][first:used])
    grid = [t0] + [width * k for k in range(first + 1, used)] + [t_end]
    if len(values) > 1 and grid[-2] >= t_end:  # the run ends where its last bin starts
        values[-2] += values.pop()
        del grid[-2]
    cumulative = np.concatenate(([0.0], np.cumsum(values)))
    if t_end <= t0:
        return np.zeros(len(edges) - 1)
    return np.diff(np.interp(edges, grid, cumulative))


def scale_bins(*, steps: tuple[Sequence[float], Sequence[int]], records: RequestRecords,
               missed: np.ndarray | None, during: np.ndarray, series: Series,
               edges: np.ndarray) -> list[ScaleBin]:
    """The run's bins between ``edges``: ``steps`` is (times, replicas billed from each),
    ``missed`` which requests missed the SLO (None without one), ``during`` which arrived
    during a scale-up."""
    seconds = step_integral(*steps, edges)
    busy = series_integral(series, "device_busy_s", edges)
    done = np.asarray(records.status) == "completed"
    finish = np.asarray(records.finish_s)[done]
    prompt = np.histogram(finish, edges, weights=np.asarray(records.prompt_tokens)[done])[0]
    output = np.histogram(finish, edges, weights=np.asarray(records.output_tokens)[done])[0]
    arrival = np.asarray(records.arrival_s)
    known = np.isfinite(arrival)

    def count(mask: np.ndarray) -> np.ndarray:
        """The requests of ``mask`` per bin of arrival."""
        return np.histogram(arrival[mask & known], edges)[0]

    arrived, completed, scaling = count(np.ones(len(arrival), bool)), count(done), count(during)
    late = None if missed is None else count(missed & done)
    late_scaling = None if missed is None else count(missed & done & during)
    bins = []
    for k in range(len(edges) - 1):
        span = edges[k + 1] - edges[k]
        judged = late is not None and completed[k] > 0
        bins.append(ScaleBin(
            start_s=float(edges[k]), end_s=float(edges[k + 1]),
            replicas=float(seconds[k] / span) if span > 0 else 0.0,
            replica_seconds=float(seconds[k]), device_busy_s=float(busy[k]),
            prompt_tokens=int(prompt[k]), output_tokens=int(output[k]),
            arrived=int(arrived[k]), completed=int(completed[k]),
            slo_attainment=(1 - late[k] / completed[k]) if judged and late is not None
            else None,
            slo_missed=None if late is None else int(late[k]),
            arrived_during_scale_up=int(scaling[k]),
            slo_missed_during_scale_up=None if late_scaling is None else int(late_scaling[k])))
    return bins
