"""The cost per token over the day of an autoscaled run: two panels over the run's bins,
the replicas billed with the SLO attainment above, the dollars and dollars per million
tokens below. Where the pool idles at night the cost per token rises; where it lags a
rise, the attainment falls."""

from __future__ import annotations

import numpy as np

from simulator.report.plots import PALETTE, _figure, _png
from simulator.results.autoscaling import AutoscalingMetrics

HOUR_S = 3600.0


def cost_over_time(a: AutoscalingMetrics) -> bytes:
    """Replicas billed and SLO attainment per bin; cost and $/Mtok per bin."""
    bins = a.bins
    hours = bins[-1].end_s - bins[0].start_s >= 2 * HOUR_S
    unit, scale = ("h", HOUR_S) if hours else ("min", 60.0)
    left = np.array([b.start_s for b in bins]) / scale
    width = np.array([b.end_s - b.start_s for b in bins]) / scale
    figure = _figure((9.0, 6.0))
    top, bottom = figure.subplots(2, 1, sharex=True)
    top.bar(left, [b.replicas for b in bins], width=width, align="edge", color=PALETTE[5],
            edgecolor="white", label="replicas billed (mean)")
    top.set_ylabel("replicas")
    attained = [(x + w / 2, 100 * b.slo_attainment)
                for x, w, b in zip(left, width, bins, strict=True)
                if b.slo_attainment is not None]
    if attained:
        slo = top.twinx()
        slo.plot(*zip(*attained, strict=True), color=PALETTE[3], marker="o", markersize=3,
                 label="SLO attainment")
        slo.set_ylim(0, 105)
        slo.set_ylabel("SLO attainment (%)")
        slo.legend(loc="lower right")
    top.legend(loc="upper left")
    top.set_title(f"Cost per token over time ({_width(a.bin_s)} bins)")
    top.grid(alpha=0.3)
    per = [np.nan if b.usd_per_million_tokens is None else b.usd_per_million_tokens
           for b in bins]
    bottom.bar(left, per, width=width, align="edge", color=PALETTE[0], edgecolor="white",
               label="USD per million tokens")
    bottom.set_ylabel("USD per million tokens")
    cost = bottom.twinx()
    cost.step([*left, left[-1] + width[-1]], [*(b.cost_usd or 0.0 for b in bins),
                                               bins[-1].cost_usd or 0.0],
              where="post", color=PALETTE[1], label="USD in the bin")
    cost.set_ylabel("USD in the bin")
    cost.legend(loc="upper right")
    bottom.legend(loc="upper left")
    bottom.set_xlabel(f"simulated time ({unit})")
    bottom.grid(alpha=0.3)
    return _png(figure)


def _width(seconds: float | None) -> str:
    if not seconds:
        return "run-long"
    if seconds >= HOUR_S and seconds % HOUR_S == 0:
        return f"{seconds / HOUR_S:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"
