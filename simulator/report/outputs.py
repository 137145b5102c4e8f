"""Files a run or a comparison writes with ``--out DIR``.

A run: ``result.json``, CSVs (``requests.csv`` and ``time_series.csv`` for serving,
``replicas.csv`` and ``cost_over_time.csv`` (its bins) when it autoscales,
``fleet_split.csv`` with a shared training job,
``step_breakdown.csv`` for training, ``confidence.csv`` for both), PNG plots and one
self-contained ``report.html``.
A comparison: ``comparison.json``, ``comparison.csv``, its plots and ``report.html``, and
for each profile that ran a folder with its ``result.json`` and CSVs.

Every file's content is built in memory first and only then written, each to a temporary
name renamed into place: a run that fails (in the simulation, or while plotting) leaves no
file half-written, and no new file at all when it fails before writing.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from simulator.report.confidence_text import CSV_HEADER, confidence_csv_rows
from simulator.report.files import write_atomic
from simulator.report.json_text import strict_json
from simulator.report.requests_csv import requests_csv
from simulator.results import Result
from simulator.results.autoscaling import ScaleBin
from simulator.results.inference import InferenceMetrics

# the columns of cost_over_time.csv: an autoscaled run's bins, field for field
BIN_COLUMNS = tuple(ScaleBin.model_fields)

Files = dict[str, str | bytes]  # relative path -> content


def csv_text(header: list[str], rows: list[list]) -> str:
    """``header`` and ``rows`` as CSV text (the format of every CSV xpusim writes)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write_files(directory: Path, files: Mapping[str, str | bytes]) -> list[Path]:
    """Write each file atomically under ``directory``; return the paths in order."""
    written = []
    for name, content in files.items():
        path = directory / name
        write_atomic(path, content)
        written.append(path)
    return written


# ---- one run ---------------------------------------------------------------------------------
def data_files(result: Result) -> Files:
    """result.json and the run's CSVs."""
    files: Files = {"result.json": strict_json(result.model_dump(mode="json")) + "\n"}
    if result.training is not None:
        t = result.training
        rows = [[name, value, value / t.step_time_s] for name, value in
                t.breakdown_s.model_dump().items()]
        files["step_breakdown.csv"] = csv_text(["part", "seconds", "share"], rows)
    if result.confidence is not None:
        files["confidence.csv"] = csv_text(CSV_HEADER, confidence_csv_rows(result.confidence))
    if result.requests is not None:
        files["requests.csv"] = requests_csv(result.requests)
    if result.inference is not None:
        series = result.inference.time_series.model_dump()
        columns = [k for k, v in series.items() if isinstance(v, list)]
        rows = [list(values) for values in zip(*(series[c] for c in columns), strict=True)]
        files["time_series.csv"] = csv_text(columns, rows)
        scaled = result.inference.autoscaling
        if scaled is not None:
            files["replicas.csv"] = csv_text(["t_s", "billed", "serving"], [
                list(row) for row in zip(scaled.t_s, scaled.billed, scaled.serving,
                                         strict=True)])
            if scaled.bins:
                files["cost_over_time.csv"] = csv_text(list(BIN_COLUMNS), [
                    [getattr(b, c) for c in BIN_COLUMNS] for b in scaled.bins])
        shared = result.inference.shared_training
        if shared is not None:
            files["fleet_split.csv"] = csv_text(
                ["t_s", "serving_accelerators", "training_accelerators", "training_running"],
                [list(row) for row in zip(shared.t_s, shared.serving_accelerators,
                                          shared.training_accelerators,
                                          shared.training_running, strict=True)])
    return files


def run_figures(result: Result) -> list[tuple[str, str, bytes, str]]:
    """(file name, heading, PNG, caption) of each plot of one run."""
    from simulator.report import plots  # matplotlib is imported only when plots are made

    figures = []
    if result.inference is not None:
        m = result.inference
        if result.requests is not None:
            figures.append(("latency_cdf.png", "Latency distributions",
                            plots.latency_cdfs({result.hardware: result.requests}),
                            "Cumulative distributions of TTFT, TPOT and end-to-end latency over "
                            "the completed requests; dotted lines mark the 99th percentile."))
        ts = m.time_series
        figures += [
            ("throughput.png", "Throughput over time", plots.throughput_over_time(ts),
             "Output tokens and completed requests per second, per time bin."),
            ("queue.png", "Queue length over time", plots.queue_over_time(ts),
             "Requests waiting for admission and requests in the system, time-averaged "
             "per bin."),
            ("kv_cache.png", "KV-cache occupancy over time", plots.kv_cache_over_time(ts),
             "Blocks of the paged KV cache in use, as a share of capacity, averaged over "
             "replicas."),
            ("batch_size.png", "Batch sizes", plots.batch_size_histogram(
                m.batch_size_histogram), "How many iterations ran at each batch size."),
        ]
        figures += _fleet_figures(m)
    if result.training is not None:
        t = result.training
        figures.append(("step_breakdown.png", "Step time breakdown",
                        plots.step_breakdown(t.breakdown_s.model_dump(), t.step_time_s),
                        "Where one step's time goes on the pipeline stage that finishes last."))
        if t.timeline is not None:
            figures.append(("pipeline_timeline.png", "Pipeline timeline",
                            plots.pipeline_timeline(t.timeline),
                            "One simulated step: each stage's forward and backward passes, "
                            "exposed communication and waits; thin bars show the "
                            "data-parallel stream."))
        if t.run_timeline is not None:
            figures.append(("failures.png", "Failures and checkpoints",
                            plots.failure_timeline(t.run_timeline, t.step_time_s),
                            "The sampled run: failures, restarts and checkpoint writes over "
                            "wall time."))
    return figures


def _fleet_figures(m: InferenceMetrics) -> list[tuple[str, str, bytes, str]]:
    """The plots of a fleet that changes over the run: an autoscaled pool's replicas and
    cost over time, and the split with a training job in its troughs."""
    from simulator.report import plots

    figures = []
    if m.autoscaling is not None:
        figures.append(("replicas.png", "Replicas over time",
                        plots.replicas_over_time(m.autoscaling, m.time_series),
                        "The autoscaled pool: replicas billed (starting, serving or "
                        "draining) and serving, against the requests arriving per "
                        "second."))
        if m.autoscaling.bins:
            from simulator.report.cost_plot import cost_over_time

            figures.append(("cost_over_time.png", "Cost per token over time",
                            cost_over_time(m.autoscaling),
                            "Per bin: replicas billed and the SLO attainment of the "
                            "requests arriving in it; the run's cost spent in it and its "
                            "cost per million tokens completed."))
    if m.shared_training is not None:
        from simulator.report.shared_training_plot import fleet_split_over_time

        figures.append(("fleet_split.png", "The fleet's split over time",
                        fleet_split_over_time(m.shared_training),
                        "Accelerators held by the serving pool and by the training job "
                        "filling its troughs (hatched: restarting after a resize)."))
    return figures


def run_files(result: Result, *, plots: bool = True) -> Files:
    """Every file of one run's ``--out`` folder, in memory."""
    files = data_files(result)
    if plots:
        from simulator.report.html import run_page

        figures = run_figures(result)
        for name, _heading, png, _caption in figures:
            files[name] = png
        files["report.html"] = run_page(result, [(h, png, c) for _n, h, png, c in figures])
    return files


def write_run_outputs(directory: Path, result: Result, *, plots: bool = True) -> list[Path]:
    """Write result.json, the run's CSVs and (``plots``) its PNGs and report.html into
    ``directory``; return the paths written."""
    return write_files(directory, run_files(result, plots=plots))


# ---- a comparison ----------------------------------------------------------------------------
def comparison_csv(data: Mapping[str, Any]) -> str:
    """One row per profile: identity, status, each metric and its ratio to the baseline."""
    keys = [m["key"] for m in data["metrics"]]
    header = ["hardware", "name", "status", "reason", "accelerators", "layout",
              *keys, *(f"{k}_ratio" for k in keys)]
    rows = []
    for row in data["rows"]:
        rows.append([row["hardware"], row["name"], row["status"], row["reason"] or "",
                     row["accelerators"] if row["accelerators"] is not None else "",
                     row["layout"],
                     *(_cell(row["metrics"].get(k)) for k in keys),
                     *(_cell(row["ratios"].get(k)) for k in keys)])
    return csv_text(header, rows)


def _cell(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def compare_figures(data: Mapping[str, Any], results: Sequence[tuple[str, Result | None]],
                    ) -> list[tuple[str, str, bytes, str]]:
    """(file name, heading, PNG, caption) of each plot of a comparison."""
    from simulator.report import plots

    rows = data["rows"]
    labels = [r["hardware"] for r in rows]
    headline = [m for m in data["metrics"] if m.get("headline", True)]
    ratios = [[r["ratios"].get(m["key"]) for m in headline] for r in rows]
    figures = [("compare_ratios.png", "Ratios to the baseline",
                plots.ratio_bars(labels, [m["label"] for m in headline], ratios,
                                 f"Relative to {data['baseline']} (= 1.00x)"),
                "Each headline figure divided by the baseline's; for latency, time, cost "
                "and energy lower is better, for throughput and MFU higher.")]
    cost = [r["metrics"].get("cost_per_million_tokens_usd") for r in rows]
    if data["kind"] == "training":
        x = [r["metrics"].get("wall_time_s") for r in rows]
        hours = [v / 3600 if v is not None else None for v in x]
        figures.append(("cost_vs_time.png", "Cost against time", plots.cost_scatter(
            labels, hours, cost, "time to train, with failures (hours)",
            "Cost per million tokens against time to train (lower left is better)"),
            "Each profile's cost per million trained tokens against its wall time to train."))
    else:
        x = [r["metrics"].get("tpot_p50_s") for r in rows]
        figures.append(("cost_vs_latency.png", "Cost against latency", plots.cost_scatter(
            labels, x, cost, "TPOT p50 (s)",
            "Cost per million tokens against time per output token (lower left is better)"),
            "Each profile's cost per million tokens against its median time per output "
            "token."))
        series = {label: result.requests for label, result in results
                  if result is not None and result.requests is not None}
        if series:
            figures.append(("latency_cdf.png", "Latency distributions", plots.latency_cdfs(
                series, "Latency distributions by profile (completed requests)"),
                "TTFT, TPOT and end-to-end latency of every profile; dotted lines mark "
                "each one's 99th percentile."))
    return figures


def compare_files(data: Mapping[str, Any], results: Sequence[tuple[str, Result | None]],
                  *, plots: bool = True) -> Files:
    """Every file of a comparison's ``--out`` folder, in memory. ``data`` is
    ``Comparison.as_dict()``; ``results`` pairs each row's hardware id with its result."""
    files: Files = {"comparison.json": strict_json(data) + "\n",
                    "comparison.csv": comparison_csv(data)}
    used: set[str] = set()
    for label, result in results:
        if result is None:
            continue
        folder = _folder_name(label, used)
        for name, content in data_files(result).items():
            files[f"{folder}/{name}"] = content
    if plots:
        from simulator.report.html import compare_page

        figures = compare_figures(data, results)
        for name, _heading, png, _caption in figures:
            files[name] = png
        files["report.html"] = compare_page(data, [(h, png, c) for _n, h, png, c in figures])
    return files


def _folder_name(label: str, used: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._") or "profile"
    name, k = base, 2
    while name in used:
        name, k = f"{base}-{k}", k + 1
    used.add(name)
    return name


def write_compare_outputs(directory: Path, data: Mapping[str, Any],
                          results: Sequence[tuple[str, Result | None]],
                          *, plots: bool = True) -> list[Path]:
    """Write a comparison's files into ``directory``; return the paths written."""
    return write_files(directory, compare_files(data, results, plots=plots))
