"""PNG plots of results, drawn with matplotlib's Agg renderer (no display, no pyplot).

Each function takes plain result data and returns the PNG as bytes; nothing here writes
files (``outputs`` does, atomically). Every plot has a title, units on its axes and a
legend. Figures are built with :class:`matplotlib.figure.Figure` directly rather than
through ``pyplot``, so no global figure state survives between calls and nothing ever
tries to open a window.

Serving: latency CDFs, throughput, queue and KV-cache occupancy over time, the batch-size
histogram. Training: the step's time breakdown, the pipeline timeline of one step, the
run's failures and checkpoints. Compare: grouped bars of ratios to the baseline, and cost
per token against latency (or time).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, LogLocator

from simulator.results.autoscaling import AutoscalingMetrics
from simulator.results.inference import BatchHistogram, RequestRecords, TimeSeries
from simulator.results.training import RunTimeline, StepTimeline

DPI = 100
WIDE = (9.0, 4.5)
# Colour-blind-safe palette (Okabe-Ito), reused in a fixed order so plots are stable.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
           "#000000")
_KIND_COLOURS = {
    "forward": "#0072B2", "backward": "#E69F00", "recompute": "#56B4E9",
    "tp_comm": "#D55E00", "ep_comm": "#CC79A7", "cp_comm": "#F0E442",
    "dp_comm": "#009E73", "pp_comm": "#999999", "wait_pp": "#DDDDDD", "wait_dp": "#BBBBBB",
    "optimizer": "#000000", "compute": "#0072B2",
}
_KIND_LABELS = {
    "forward": "forward", "backward": "backward", "recompute": "recomputation",
    "tp_comm": "exposed TP comm", "ep_comm": "exposed EP comm", "cp_comm": "exposed CP comm",
    "dp_comm": "DP comm (own stream)", "pp_comm": "PP send", "wait_pp": "waiting for PP",
    "wait_dp": "waiting for DP", "optimizer": "optimizer",
}


def _figure(size: tuple[float, float] = WIDE) -> Figure:
    figure = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _no_data(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#666666")
    ax.plot([], [], label="no data")
    ax.legend(loc="upper right")


# ---- serving -------------------------------------------------------------------------------
LATENCIES = (("ttft_s", "time to first token"), ("tpot_s", "time per output token"),
             ("e2e_s", "end-to-end latency"))


def latency_cdfs(series: Mapping[str, RequestRecords], title: str = "") -> bytes:
    """CDFs of TTFT, TPOT and E2E latency over completed requests, one line per entry of
    ``series`` (label -> a run's per-request records, ``Result.requests``)."""
    figure = _figure((12.0, 4.2))
    axes = figure.subplots(1, 3)
    for ax, (column, name) in zip(axes, LATENCIES, strict=True):
        drawn = False
        for i, (label, requests) in enumerate(series.items()):
            values = _completed(requests, column)
            if not len(values):
                continue
            values = np.sort(values)
            fraction = np.arange(1, len(values) + 1) / len(values)
            colour = PALETTE[i % len(PALETTE)]
            ax.step(values, fraction, where="post", color=colour, label=label)
            p99 = float(np.percentile(values, 99))
            ax.axvline(p99, color=colour, linestyle=":", linewidth=1,
                       label=f"{label} p99 {_seconds(p99)}" if len(series) > 1 else
                       f"p99 {_seconds(p99)}")
            drawn = True
        if drawn:
            positive = any((_completed(r, column) > 0).any() for r in series.values())
            if positive:
                ax.set_xscale("log")
                # label decades and 2x/5x in plain numbers: the default labels every minor
                # tick in scientific notation on narrow ranges, and they collide
                ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
                ax.xaxis.set_minor_locator(LogLocator(base=10, subs=(2.0, 5.0)))
                ax.xaxis.set_minor_formatter(FormatStrFormatter("%g"))
            ax.legend(loc="lower right", fontsize="small")
        else:
            _no_data(ax, "no completed requests")
        ax.set_title(name)
        ax.set_xlabel(f"{name} (s)")
        ax.set_ylabel("fraction of requests")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    figure.suptitle(title or "Latency distributions (completed requests)")
    return _png(figure)


def _completed(requests: RequestRecords, column: str) -> np.ndarray:
    """The values of ``column`` for the completed requests (NaN left out)."""
    values = np.asarray(getattr(requests, column), dtype=float)
    return values[np.isfinite(values) & (requests.status == "completed")]


def _seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1e3:.3g} ms"
    return f"{value:.3g} s"


def _arrivals_axis(ax: Axes, right: Axes, ts: TimeSeries) -> None:
    """Plot the requests arriving per second on ``right`` (a twin of ``ax`` in requests/s)
    and give ``ax`` one legend for the lines of both axes. Results written before arrivals
    were recorded lack them, and plot without."""
    if len(ts.arrivals_per_s) == len(ts.t_s):
        right.plot(ts.t_s, ts.arrivals_per_s, color=PALETTE[2], linestyle=":",
                   label="arriving requests/s")
    right.set_ylabel("requests/s")
    lines = ax.get_lines() + right.get_lines()
    ax.legend(lines, [str(line.get_label()) for line in lines], loc="upper right")


def throughput_over_time(ts: TimeSeries) -> bytes:
    """Output tokens/s, and completed and arriving requests/s, per time bin, on two
    axes."""
    figure = _figure()
    ax = figure.subplots()
    t = np.asarray(ts.t_s)
    ax.plot(t, ts.output_tokens_per_s, color=PALETTE[0], label="output tokens/s")
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("output tokens/s")
    right = ax.twinx()
    right.plot(t, ts.requests_per_s, color=PALETTE[1], linestyle="--",
               label="completed requests/s")
    _arrivals_axis(ax, right, ts)
    ax.set_title(f"Throughput over time ({ts.bin_s:.3g} s bins)")
    ax.grid(alpha=0.3)
    return _png(figure)


def replicas_over_time(a: AutoscalingMetrics, ts: TimeSeries) -> bytes:
    """An autoscaled pool's replicas (billed and serving, step functions) and, on a second
    axis, the requests arriving per second: how far the pool lags its load."""
    figure = _figure()
    ax = figure.subplots()
    end = ts.t_s[-1] + ts.bin_s if ts.t_s else a.t_s[-1]
    t = [*a.t_s, max(end, a.t_s[-1])]
    ax.step(t, [*a.billed, a.billed[-1]], where="post", color=PALETTE[3], label="billed")
    ax.step(t, [*a.serving, a.serving[-1]], where="post", color=PALETTE[0], label="serving")
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("replicas")
    _arrivals_axis(ax, ax.twinx(), ts)
    ax.set_title(f"Replicas over time (start-up delay {_seconds(a.startup_s)})")
    ax.grid(alpha=0.3)
    return _png(figure)


def queue_over_time(ts: TimeSeries) -> bytes:
    """Requests waiting and in the system per time bin: where the queue builds up."""
    figure = _figure()
    ax = figure.subplots()
    ax.plot(ts.t_s, ts.queue_length, color=PALETTE[3], label="waiting for admission")
    ax.plot(ts.t_s, ts.in_system, color=PALETTE[0], label="in the system (waiting + running)")
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("requests (time average per bin)")
    ax.set_title("Queue length over time")
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3)
    return _png(figure)


def kv_cache_over_time(ts: TimeSeries) -> bytes:
    """KV-cache occupancy per time bin: how close the run came to preempting."""
    figure = _figure()
    ax = figure.subplots()
    ax.plot(ts.t_s, 100 * np.asarray(ts.kv_cache_utilization), color=PALETTE[2],
            label="KV-cache blocks in use (mean over replicas)")
    ax.set_ylim(0, 105)
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("KV-cache occupancy (%)")
    ax.set_title("KV-cache occupancy over time")
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3)
    return _png(figure)


def batch_size_histogram(histogram: BatchHistogram) -> bytes:
    """Iterations by batch size: how full the batches ran."""
    figure = _figure()
    ax = figure.subplots()
    if histogram.sizes:
        ax.bar(histogram.sizes, histogram.iterations, width=1.0, color=PALETTE[0],
               label="iterations run at that batch size")
        ax.legend(loc="upper right")
    else:
        _no_data(ax, "no iterations")
    ax.set_xlabel("batch size (sequences per iteration)")
    ax.set_ylabel("iterations")
    ax.set_title("Batch sizes of the iterations")
    ax.grid(alpha=0.3, axis="y")
    return _png(figure)


# ---- training ------------------------------------------------------------------------------
def step_breakdown(parts_s: Mapping[str, float], step_time_s: float) -> bytes:
    """One stacked bar: where the step's time goes (``breakdown_s``), with shares."""
    figure = _figure((9.0, 3.6))
    ax = figure.subplots()
    left = 0.0
    scale, unit = (1e3, "ms") if step_time_s < 1 else (1.0, "s")
    for i, (name, value) in enumerate((k, v) for k, v in parts_s.items() if v > 0):
        share = value / step_time_s if step_time_s else 0.0
        ax.barh([0], [value * scale], left=left, color=PALETTE[i % len(PALETTE)],
                label=f"{name.replace('_', ' ')}: {value * scale:.3g} {unit} ({share:.1%})")
        left += value * scale
    ax.set_yticks([])
    ax.set_xlabel(f"time in one step ({unit})")
    ax.set_title(f"Where one step's {step_time_s * scale:.3g} {unit} go")
    figure.legend(loc="outside lower center", ncol=3, fontsize="small")
    ax.grid(alpha=0.3, axis="x")
    return _png(figure)


def pipeline_timeline(timeline: StepTimeline) -> bytes:
    """One simulated step: each stage's compute stream (with exposed communication and
    waits), and beneath it the data-parallel stream."""
    stages = max(1, timeline.stages)
    figure = _figure((12.0, max(3.0, 0.45 * stages + 1.8)))
    ax = figure.subplots()
    scale, unit = (1e3, "ms") if timeline.step_time_s < 1 else (1.0, "s")
    spans: dict[tuple[str, str], dict[int, list[tuple[float, float]]]] = {}
    for stage, stream, _name, kind, start, duration in timeline.slices():
        if stream == "compute" or stream == "dp comm":
            spans.setdefault((stream, kind), {}).setdefault(stage, []).append(
                (start * scale, duration * scale))
    order = sorted(spans, key=lambda key: (key[0] != "compute", _draw_order(key[1])))
    for stream, kind in order:
        colour = _KIND_COLOURS.get(kind, "#666666")
        label = _KIND_LABELS.get(kind, kind.replace("_", " "))
        for j, (stage, bars) in enumerate(sorted(spans[(stream, kind)].items())):
            y, height = (stage - 0.3, 0.55) if stream == "compute" else (stage + 0.28, 0.14)
            ax.broken_barh(bars, (y, height), facecolors=colour,
                           label=label if j == 0 else None)
    ax.set_ylim(stages - 0.5, -0.5)
    ax.set_yticks(range(stages))
    ax.set_yticklabels([f"stage {s}" for s in range(stages)])
    ax.set_xlim(0, timeline.step_time_s * scale)
    ax.set_xlabel(f"time within the step ({unit})")
    ax.set_ylabel("pipeline stage")
    ax.set_title("Pipeline timeline of one step (thin bars: data-parallel stream)")
    if spans:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    else:
        _no_data(ax, "no timeline recorded")
    return _png(figure)


def _draw_order(kind: str) -> int:
    """Parents first, so nested slices (exposed communication) are drawn on top."""
    return {"wait_pp": 0, "wait_dp": 0, "forward": 1, "backward": 1, "recompute": 2}.get(kind, 3)


def failure_timeline(run: RunTimeline, step_time_s: float | None = None) -> bytes:
    """The run's wall time: training, restarts after failures, checkpoint writes."""
    figure = _figure((12.0, 3.6))
    ax = figure.subplots()
    days = run.wall_time_s > 10 * 86400
    scale, unit = (1 / 86400, "days") if days else (1 / 3600, "hours")
    end = run.wall_time_s * scale
    restarts = [(a * scale, (b - a) * scale) for a, b in run.restarts_s]
    ax.broken_barh([(0.0, end)], (2.7, 0.6), facecolors="#BFE3D6",
                   label="training (when not restarting)")
    if restarts:
        ax.broken_barh(restarts, (2.7, 0.6), facecolors=PALETTE[3],
                       label=f"restart ({len(restarts):,})")
    if run.checkpoints_s:
        ticks = np.asarray(run.checkpoints_s) * scale
        ax.vlines(ticks, 1.7, 2.3, color=PALETTE[0], linewidth=0.6,
                  label=f"checkpoint write ({len(ticks):,}"
                        f"{'+' if run.truncated else ''}, "
                        f"{'blocking' if run.blocking else 'async'}, "
                        f"{run.checkpoint_write_s:.3g} s each)")
    failures = np.asarray(run.failures_s) * scale
    ax.plot(failures, np.full(len(failures), 1.0), linestyle="none", marker="x",
            color=PALETTE[3], label=f"failure ({len(failures):,}{'+' if run.truncated else ''})")
    ax.set_yticks([1.0, 2.0, 3.0])
    ax.set_yticklabels(["failures", "checkpoints", "training"])
    ax.set_ylim(0.4, 3.6)
    ax.set_xlim(0, max(end, 1e-9))
    ax.set_xlabel(f"wall time ({unit})")
    ax.set_title("Failures and checkpoints over the run" + (
        f" (step {step_time_s:.3g} s)" if step_time_s else ""))
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    ax.grid(alpha=0.3, axis="x")
    return _png(figure)


# ---- compare -------------------------------------------------------------------------------
def ratio_bars(labels: Sequence[str], metrics: Sequence[str],
               ratios: Sequence[Sequence[float | None]], title: str = "") -> bytes:
    """Grouped bars: for each metric, one bar per profile with its ratio to the baseline
    (``ratios[profile][metric]``; missing values leave a gap)."""
    figure = _figure((12.0, 5.0))
    ax = figure.subplots()
    x = np.arange(len(metrics))
    width = 0.8 / max(1, len(labels))
    values = [v for row in ratios for v in row if v is not None and v > 0]
    for i, (label, row) in enumerate(zip(labels, ratios, strict=True)):
        heights = [v if v is not None and v > 0 else np.nan for v in row]
        ax.bar(x + (i - (len(labels) - 1) / 2) * width, heights, width,
               color=PALETTE[i % len(PALETTE)], label=label)
    ax.axhline(1.0, color="#333333", linewidth=1, linestyle="--", label="baseline = 1.00x")
    if values and max(values) / min(values) > 20:
        ax.set_yscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels(metrics, rotation=30, ha="right")
    ax.set_ylabel("ratio to the baseline (x)")
    ax.set_title(title or "Headline figures relative to the baseline")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    ax.grid(alpha=0.3, axis="y")
    return _png(figure)


def cost_scatter(labels: Sequence[str], x: Sequence[float | None],
                 cost: Sequence[float | None], x_label: str, title: str = "") -> bytes:
    """Cost per million tokens against a latency or time, one marker per profile."""
    figure = _figure((8.0, 5.0))
    ax = figure.subplots()
    markers = "osD^vP*X"
    drawn = 0
    for i, (label, xv, yv) in enumerate(zip(labels, x, cost, strict=True)):
        if xv is None or yv is None:
            continue
        ax.scatter([xv], [yv], s=80, color=PALETTE[i % len(PALETTE)],
                   marker=markers[i % len(markers)], label=label)
        ax.annotate(label, (xv, yv), textcoords="offset points", xytext=(6, 6),
                    fontsize="small")
        drawn += 1
    if not drawn:
        _no_data(ax, "no profile ran")
    else:
        ax.legend(loc="best", fontsize="small")
    ax.set_xlabel(x_label)
    ax.set_ylabel("cost per million tokens (USD)")
    ax.set_title(title or "Cost per token against latency (lower left is better)")
    ax.grid(alpha=0.3)
    return _png(figure)
