"""From what a serving run recorded to an :class:`InferenceResult` (formulas in docs/serving.md).

Latency statistics use the completed requests after the warm-up; throughputs and
utilizations cover the run from its first arrival to its last completion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.ma  # (np.percentile needs it; numpy 2 imports it lazily, in the first run)

from simulator.engine.serving.metrics import (
    COMPLETED,
    DROPPED,
    PENDING,
    ReplicaStats,
    RequestLog,
    Series,
)
from simulator.engine.serving.system import InSystem
from simulator.profiles.inference import SLO
from simulator.results.inference import (
    Activity,
    BatchHistogram,
    InferenceMetrics,
    InferenceResult,
    LittleLaw,
    MeanMax,
    Percentiles,
    ReplicaSummary,
    SLOTarget,
    TimeSeries,
)
from simulator.results.utilization import Utilization


@dataclass(frozen=True)
class Fleet:
    """What the summary needs to know about the hardware."""

    accelerators: int
    peak_flops: float  # per device, at the weight precision
    hbm_bandwidth: float  # per device


def percentiles(values: np.ndarray) -> Percentiles:
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return Percentiles(mean=None, p50=None, p90=None, p99=None)
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return Percentiles(mean=float(np.mean(values)), p50=float(p50), p90=float(p90),
                       p99=float(p99))


def interval_average(starts: np.ndarray, ends: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Time-average number of intervals [start, end) open in each bin between ``edges``."""
    s, e = np.sort(starts), np.sort(ends)
    cs = np.concatenate([[0.0], np.cumsum(s)])
    ce = np.concatenate([[0.0], np.cumsum(e)])
    i = np.searchsorted(s, edges, side="left")
    j = np.searchsorted(e, edges, side="left")
    # open time up to x: sum over started (x - s) minus sum over ended (x - e)
    area = (i * edges - cs[i]) - (j * edges - ce[j])
    return np.diff(area) / np.diff(edges)


def _slo(slo: SLO | None, metrics: dict[str, np.ndarray], n_dropped: int,
         many: np.ndarray) -> tuple[float | None, dict[str, SLOTarget], np.ndarray | None]:
    if slo is None:
        return None, {}, None
    ok_all = np.ones(len(many), dtype=bool)
    targets: dict[str, SLOTarget] = {}
    for name in ("ttft_s", "tpot_s", "e2e_s"):
        target = getattr(slo, name)
        if target is None:
            continue
        values = metrics[name]
        relevant = many if name == "tpot_s" else np.ones(len(values), dtype=bool)
        ok = ~relevant | (values <= target)
        ok_all &= ok
        shown = values[relevant]
        value = float(np.percentile(shown, slo.percentile)) if len(shown) else None
        total = len(values) + n_dropped
        attained = float(np.sum(ok)) / total if total else 0.0
        targets[name] = SLOTarget(target_s=target, percentile=slo.percentile, value_s=value,
                                  met=total > 0 and attained >= slo.percentile / 100,
                                  attainment=attained)
    total = len(ok_all) + n_dropped
    if not targets or total == 0:
        return None, targets, None
    return float(np.sum(ok_all)) / total, targets, ok_all


def _replica_summary(s: ReplicaStats, duration: float) -> ReplicaSummary:
    return ReplicaSummary(
        index=s.index, role=s.role, devices=s.devices,
        requests=s.completed + s.handed_off, output_tokens=int(s.output_tokens),
        prompt_tokens=int(s.prompt_tokens), iterations=s.iterations,
        busy=s.busy_s / duration if duration else 0.0,
        batch_size=MeanMax(mean=s.batch_total / s.iterations if s.iterations else 0.0,
                           max=float(s.batch_max)),
        kv_cache_utilization=MeanMax(
            mean=s.kv_blocks_s / s.kv_blocks / duration if duration else 0.0,
            max=s.kv_blocks_max / s.kv_blocks),
        kv_cache_tokens=s.kv_blocks * s.kv_block_tokens, preemptions=s.preemptions)


def _time_series(log: RequestLog, series: Series, replicas: int, t_end: float) -> TimeSeries:
    bins = series.used(t_end)
    width = series.width
    edges = width * np.arange(bins + 1)
    v = {name: arr[:bins] for name, arr in series.values.items()}
    arrived = log.status != DROPPED
    start = log.arrival[arrived]
    admitted = np.where(np.isnan(log.admitted), t_end, log.admitted)[arrived]
    finish = np.where(np.isnan(log.finish), t_end, log.finish)[arrived]
    busy = v["busy_s"]
    batch = np.divide(v["batch_s"], busy, out=np.zeros(bins), where=busy > 0)
    return TimeSeries(
        bin_s=width, t_s=edges[:-1].tolist(),
        requests_per_s=(v["completed"] / width).tolist(),
        output_tokens_per_s=(v["output_tokens"] / width).tolist(),
        queue_length=interval_average(start, admitted, edges).tolist(),
        in_system=interval_average(start, finish, edges).tolist(),
        kv_cache_utilization=(v["kv_blocks_s"] / (replicas * width)).tolist(),
        batch_size=batch.tolist())


def summarize(log: RequestLog, stats: Sequence[ReplicaStats], series: Series,
              in_system: InSystem, fleet: Fleet, slo: SLO | None,
              warmup: int) -> InferenceResult:
    """The result of a finished run."""
    completed = log.status == COMPLETED
    dropped = log.status == DROPPED
    arrived_kept = ~dropped
    n_done = int(np.sum(completed))
    t0 = float(np.min(log.arrival)) if len(log) else 0.0
    t_end = float(np.max(log.finish[completed])) if n_done else t0
    duration = t_end - t0
    rate = (lambda x: x / duration) if duration > 0 else (lambda x: 0.0)
    records = log.records()
    measured = completed & (np.arange(len(log)) >= warmup)
    metrics = {name: records[name][measured] for name in ("ttft_s", "tpot_s", "e2e_s",
                                                          "queue_s")}
    many = log.output[measured] > 1
    n_dropped_measured = int(np.sum(dropped & (np.arange(len(log)) >= warmup)))
    attainment, targets, ok = _slo(slo, metrics, n_dropped_measured, many)
    goodput = rate(float(np.sum(ok))) if ok is not None else None
    out_tokens = float(np.sum(log.output[completed]))
    all_tokens = out_tokens + float(np.sum(log.prompt[completed]))
    sojourn = log.finish[completed] - log.arrival[completed]
    lam_w = rate(float(np.sum(arrived_kept))) * (float(np.mean(sojourn)) if n_done else 0.0)
    mean_in = rate(in_system.area)
    iterations = sum(s.iterations for s in stats)
    device_time = fleet.accelerators * duration

    def share(values: list[float]) -> float:
        return min(1.0, sum(values) / device_time) if device_time > 0 else 0.0

    hist = np.sum([s.batch_hist for s in stats], axis=0)
    sizes = np.nonzero(hist)[0]
    inference = InferenceMetrics(
        requests=n_done, arrived=len(log), dropped=int(np.sum(dropped)),
        unfinished=int(np.sum(log.status == PENDING)), duration_s=duration,
        requests_per_s=rate(n_done), output_tokens_per_s=rate(out_tokens),
        total_tokens_per_s=rate(all_tokens),
        ttft_s=percentiles(metrics["ttft_s"]), tpot_s=percentiles(metrics["tpot_s"]),
        e2e_s=percentiles(metrics["e2e_s"]), queue_s=percentiles(metrics["queue_s"]),
        slo_attainment=attainment, slo=targets, goodput_requests_per_s=goodput,
        kv_cache_utilization=MeanMax(
            mean=(sum(s.kv_blocks_s / s.kv_blocks for s in stats) / (len(stats) * duration)
                  if duration > 0 else 0.0),
            max=max(s.kv_blocks_max / s.kv_blocks for s in stats)),
        batch_size=MeanMax(mean=sum(s.batch_total for s in stats) / iterations
                           if iterations else 0.0,
                           max=float(max(s.batch_max for s in stats))),
        preemptions=sum(s.preemptions for s in stats), iterations=iterations,
        engine_steps=sum(s.engine_steps for s in stats),
        activity=Activity(busy=share([s.devices * s.busy_s for s in stats]),
                          compute_bound=share([s.devices * s.cost.compute_bound_s
                                               for s in stats]),
                          memory_bound=share([s.devices * s.cost.memory_bound_s
                                              for s in stats])),
        little_law=LittleLaw(mean_in_system=mean_in, arrival_rate_x_mean_time=lam_w,
                             relative_error=abs(mean_in - lam_w) / lam_w if lam_w else 0.0),
        per_replica=[_replica_summary(s, duration) for s in stats],
        time_series=_time_series(log, series, len(stats), t_end),
        batch_size_histogram=BatchHistogram(sizes=sizes.tolist(),
                                            iterations=hist[sizes].tolist()))
    utilization = Utilization(
        compute=share([s.devices * s.cost.flops / fleet.peak_flops for s in stats]),
        memory_bandwidth=share([s.devices * s.cost.hbm_bytes / fleet.hbm_bandwidth
                                for s in stats]),
        network=share([s.devices * (s.cost.network_s + s.transfer_s) for s in stats]),
        busy=inference.activity.busy)
    return InferenceResult(inference=inference, time_s=duration, utilization=utilization)
