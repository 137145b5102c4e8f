"""The fleet's split over time between the autoscaled serving pool and the training job
filling its troughs (a PNG, like the rest of :mod:`simulator.report.plots`)."""

from __future__ import annotations

from simulator.report.plots import PALETTE, _figure, _png
from simulator.results.shared_training import SharedTrainingMetrics


def fleet_split_over_time(st: SharedTrainingMetrics) -> bytes:
    """Accelerators held by serving and by the training job (stacked step functions; the
    job's restarts hatched), under the fleet's size."""
    figure = _figure()
    ax = figure.subplots()
    hours = [t / 3600 for t in (*st.t_s, st.window_s)]
    labelled: set[str] = set()

    def band(start: float, end: float, low: float, high: float, kind: str) -> None:
        """One stretch of one tenant, labelled the first time its kind appears."""
        colour, hatch = {"serving (starting, serving, draining)": (PALETTE[0], None),
                         "training, running": (PALETTE[2], None),
                         "training, restarting": (PALETTE[1], "//")}[kind]
        ax.fill_between([start, end], low, high, color=colour, alpha=0.7, hatch=hatch,
                        linewidth=0, label=None if kind in labelled else kind)
        labelled.add(kind)

    for k, (serving, training) in enumerate(zip(st.serving_accelerators,
                                                st.training_accelerators, strict=True)):
        start, end = hours[k], hours[k + 1]
        band(start, end, 0, serving, "serving (starting, serving, draining)")
        if training:
            band(start, end, serving, serving + training,
                 "training, running" if st.training_running[k] else "training, restarting")
    ax.axhline(st.fleet_accelerators, color=PALETTE[7], linewidth=1, label="fleet")
    ax.set_xlim(0, max(hours))
    ax.set_ylim(0, st.fleet_accelerators * 1.08)
    ax.set_xlabel("simulated time (h)")
    ax.set_ylabel("accelerators")
    ax.set_title(f"The fleet's split: {st.steps:,} training steps kept, {st.resizes} resizes")
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(alpha=0.3)
    return _png(figure)
