"""From what a serving run recorded to an :class:`InferenceResult` (formulas in docs/serving.md).

Latency statistics use the completed requests after the warm-up; throughputs and
utilizations cover the run from its first arrival to its last completion. The same figures
over the steady window, warm-up and drain left out, are :mod:`~simulator.engine.serving.steady`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.engine.serving.latency import latencies
from simulator.engine.serving.metrics import ReplicaStats, Series
from simulator.engine.serving.requests import COMPLETED, DROPPED, PENDING, Requests
from simulator.engine.serving.system import InSystem
from simulator.profiles.inference import SLO
from simulator.results.inference import (
    ActivityFractions,
    BatchHistogram,
    InferenceMetrics,
    InferenceResult,
    LittleLaw,
    MeanMax,
    PrefixCacheMetrics,
    ReplicaSummary,
    RequestRecords,
    TimeSeries,
)
from simulator.results.utilization import Utilization


@dataclass(frozen=True)
class Fleet:
    """What the summary needs to know about the hardware."""

    accelerators: int
    peak_flops: float  # per device, at the weight precision
    hbm_bandwidth: float  # per device


@dataclass(frozen=True)
class _Span:
    """The run from its first arrival to its last completion, over which rates and
    shares are taken."""

    t0: float
    t_end: float
    accelerators: int

    @property
    def duration(self) -> float:
        """Seconds from the first arrival to the last completion."""
        return self.t_end - self.t0

    def rate(self, x: float) -> float:
        """Per second of the run."""
        duration = self.duration
        return x / duration if duration > 0 else 0.0

    def share(self, device_seconds: list[float]) -> float:
        """The fraction of the fleet's time that ``device_seconds`` add up to."""
        return device_share(device_seconds, self.accelerators * self.duration)


def device_share(device_seconds: list[float], device_time: float) -> float:
    """The fraction of ``device_time`` (devices x seconds) that ``device_seconds`` add up
    to, at most 1 (0 over no time): how busy the fleet, or one pool of it, was."""
    return min(1.0, sum(device_seconds) / device_time) if device_time > 0 else 0.0


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


def _replica_summary(s: ReplicaStats, duration: float) -> ReplicaSummary:
    return ReplicaSummary(
        index=s.index, role=s.role, hardware=s.hardware, devices=s.devices,
        requests=s.completed + s.handed_off, output_tokens=int(s.output_tokens),
        prompt_tokens=int(s.prompt_tokens), iterations=s.iterations,
        busy=s.busy_s / duration if duration else 0.0,
        batch_size=MeanMax(mean=s.batch_total / s.iterations if s.iterations else 0.0,
                           max=float(s.batch_max)),
        kv_cache_utilization=MeanMax(
            mean=s.kv_blocks_s / s.kv_blocks / duration if duration else 0.0,
            max=s.kv_blocks_max / s.kv_blocks),
        kv_cache_tokens=s.kv_blocks * s.kv_block_tokens, preemptions=s.preemptions)


def _arrivals(requests: Requests, edges: np.ndarray) -> np.ndarray:
    """Requests arriving in each bin (closed-loop requests never sent are not counted)."""
    times = requests.arrival_s[np.isfinite(requests.arrival_s)]
    return np.histogram(times, bins=edges)[0].astype(float)


def _time_series(requests: Requests, series: Series, replicas: int,
                 t_end: float) -> TimeSeries:
    bins = series.used(t_end)
    width = series.width
    edges = width * np.arange(bins + 1)
    v = {name: arr[:bins] for name, arr in series.values.items()}
    arrived = requests.status != DROPPED
    start = requests.arrival_s[arrived]
    admitted = np.where(np.isnan(requests.admitted_s), t_end, requests.admitted_s)[arrived]
    finish = np.where(np.isnan(requests.finish_s), t_end, requests.finish_s)[arrived]
    busy = v["busy_s"]
    batch = np.divide(v["batch_s"], busy, out=np.zeros(bins), where=busy > 0)
    return TimeSeries(
        bin_s=width, t_s=edges[:-1].tolist(),
        requests_per_s=(v["completed"] / width).tolist(),
        arrivals_per_s=(_arrivals(requests, edges) / width).tolist(),
        output_tokens_per_s=(v["output_tokens"] / width).tolist(),
        prompt_tokens_per_s=(v["prompt_tokens"] / width).tolist(),
        queue_length=interval_average(start, admitted, edges).tolist(),
        in_system=interval_average(start, finish, edges).tolist(),
        kv_cache_utilization=(v["kv_blocks_s"] / (replicas * width)).tolist(),
        batch_size=batch.tolist())


def _throughputs(requests: Requests, completed: np.ndarray, span: _Span) -> dict[str, Any]:
    """Requests and tokens completed, per second of the run."""
    n_done = int(np.sum(completed))
    out_tokens = float(np.sum(requests.output_tokens[completed]))
    all_tokens = out_tokens + float(np.sum(requests.prompt_tokens[completed]))
    return dict(requests=n_done, requests_per_s=span.rate(n_done),
                output_tokens_per_s=span.rate(out_tokens),
                total_tokens_per_s=span.rate(all_tokens))


def _little_law(requests: Requests, completed: np.ndarray, span: _Span,
                in_system: InSystem) -> LittleLaw:
    """L from the engine's in-system count against λ·W from the records."""
    sojourn = requests.finish_s[completed] - requests.arrival_s[completed]
    arrived = float(np.sum(requests.status != DROPPED))
    lam_w = span.rate(arrived) * (float(np.mean(sojourn)) if len(sojourn) else 0.0)
    mean_in = span.rate(in_system.area)
    return LittleLaw(mean_in_system=mean_in, arrival_rate_x_mean_time=lam_w,
                     relative_error=abs(mean_in - lam_w) / lam_w if lam_w else 0.0)


def _batching(stats: Sequence[ReplicaStats], span: _Span) -> dict[str, Any]:
    """Iterations, batch sizes, KV-cache occupancy and preemptions over the replicas."""
    iterations = sum(s.iterations for s in stats)
    busy = sum(s.busy_s for s in stats)
    duration = span.duration
    # (pools of different attention DP sizes have histograms of different lengths)
    hist = np.zeros(max(len(s.batch_hist) for s in stats), dtype=np.int64)
    for s in stats:
        hist[:len(s.batch_hist)] += s.batch_hist
    sizes = np.nonzero(hist)[0]
    return dict(
        kv_cache_utilization=MeanMax(
            mean=(sum(s.kv_blocks_s / s.kv_blocks for s in stats) / (len(stats) * duration)
                  if duration > 0 else 0.0),
            max=max(s.kv_blocks_max / s.kv_blocks for s in stats)),
        batch_size=MeanMax(mean=sum(s.batch_total for s in stats) / iterations
                           if iterations else 0.0,
                           max=float(max(s.batch_max for s in stats))),
        preemptions=sum(s.preemptions for s in stats), iterations=iterations,
        cpu_overhead_fraction=(sum(s.host_s for s in stats) / busy if busy else 0.0),
        engine_steps=sum(s.engine_steps for s in stats),
        batch_size_histogram=BatchHistogram(sizes=sizes.tolist(),
                                            iterations=hist[sizes].tolist()))


def _utilization(stats: Sequence[ReplicaStats], span: _Span, fleet: Fleet,
                 busy: float) -> Utilization:
    """Compute, HBM and network use of the fleet over the run."""
    return Utilization(
        compute=span.share([s.devices * s.cost.flops / fleet.peak_flops for s in stats]),
        memory_bandwidth=span.share([s.devices * s.cost.hbm_bytes / fleet.hbm_bandwidth
                                     for s in stats]),
        network=span.share([s.devices * (s.cost.network_s + s.transfer_s) for s in stats]),
        busy=busy)


def summarize(requests: Requests, records: RequestRecords, stats: Sequence[ReplicaStats], *,
              series: Series, in_system: InSystem, fleet: Fleet, slo: SLO | None,
              warmup: int, prefix: PrefixCacheMetrics | None = None) -> InferenceResult:
    """The result of a finished run, from its requests (and their ``records``), the
    replicas' counters, the time series and the in-system count."""
    completed = requests.status == COMPLETED
    t0 = float(np.min(requests.arrival_s)) if len(requests) else 0.0
    t_end = float(np.max(requests.finish_s[completed])) if completed.any() else t0
    span = _Span(t0, t_end, fleet.accelerators)
    activity = ActivityFractions(
        # (kernels running: the host time the serving stack adds leaves the devices idle)
        busy=span.share([s.devices * (s.busy_s - s.host_s) for s in stats]),
        compute_bound=span.share([s.devices * s.cost.compute_bound_s for s in stats]),
        memory_bound=span.share([s.devices * s.cost.memory_bound_s for s in stats]))
    inference = InferenceMetrics(
        **_throughputs(requests, completed, span), arrived=len(requests),
        dropped=int(np.sum(requests.status == DROPPED)),
        unfinished=int(np.sum(requests.status == PENDING)), duration_s=span.duration,
        **latencies(requests, records, np.arange(len(requests)) >= warmup, slo,
                    span.duration),
        **_batching(stats, span),
        activity=activity, prefix_cache=prefix,
        little_law=_little_law(requests, completed, span, in_system),
        per_replica=[_replica_summary(s, span.duration) for s in stats],
        time_series=_time_series(requests, series, len(stats), t_end))
    return InferenceResult(inference=inference, time_s=span.duration,
                           utilization=_utilization(stats, span, fleet, activity.busy))
