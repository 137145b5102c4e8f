"""The serving figures over the steady window (:mod:`~simulator.engine.serving.window`).

Counts come from the time series, whose bins the window's edges fall on: tokens by the bin
of the iteration that produced them (prompt tokens when first prefilled), device-seconds of
iterations likewise. Requests come from their records: completed in the window by their
finish time, latencies from those that arrived in it.

What the iterations did (FLOPs, HBM bytes, network and bound seconds) is priced once at the
end of the run (:mod:`~simulator.engine.serving.usage`), not per bin, so the window's share
of it is apportioned: FLOPs by the window's share of the tokens processed (a transformer's
FLOPs are ``2·N`` per token, plus attention), bytes, network and bound seconds by its share
of the device-seconds of iterations (decode streams the weights whatever the batch, so its
bytes follow time). docs/serving.md states this.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simulator.engine.serving.latency import latencies
from simulator.engine.serving.metrics import ReplicaStats, Series
from simulator.engine.serving.requests import COMPLETED, DROPPED, PENDING, Requests
from simulator.engine.serving.window import Window, balanced, find_window, varying_load
from simulator.profiles.inference import SLO
from simulator.results.inference import ActivityFractions, InferenceMetrics, RequestRecords
from simulator.results.steady import SteadyWindow, WindowRequests
from simulator.results.utilization import Utilization


def locate(requests: Requests, series: Series, *, varying: str | None = None) -> Window:
    """The steady window of a finished run; none when ``varying`` says what varies in
    time (the offered load, the pool)."""
    if varying is not None:
        return varying_load(varying)
    finished = requests.finish_s[requests.status == COMPLETED]
    bins = series.used(float(finished.max()) if len(finished) else 0.0)
    values = series.values
    occupancy = values["batch_s"][:bins] / series.width
    completions = values["completed"][:bins]
    arrived = requests.arrival_s[np.isfinite(requests.arrival_s)]
    first, last = (float(arrived.min()), float(arrived.max())) if len(arrived) else (0.0, 0.0)
    return find_window(occupancy, completions, series.width, first, last)


def _placed(requests: Requests, window: Window) -> WindowRequests:
    """Every request against the window (see :class:`WindowRequests`)."""
    lo, hi = window.start_s, window.end_s
    arrival, finish, status = requests.arrival_s, requests.finish_s, requests.status
    done = status == COMPLETED
    inside = (arrival >= lo) & (arrival < hi)
    return WindowRequests(
        arrived_before=int(np.sum(arrival < lo)), arrived_in_window=int(np.sum(inside)),
        arrived_after=int(np.sum(arrival >= hi)),
        completed_before=int(np.sum(done & (finish < lo))),
        completed_in_window=int(np.sum(done & (finish >= lo) & (finish < hi))),
        completed_after=int(np.sum(done & (finish >= hi))),
        dropped=int(np.sum(status == DROPPED)), unfinished=int(np.sum(status == PENDING)),
        measured=int(np.sum(inside & done)))


def _carried(requests: Requests, window: Window) -> float:
    """Prompt and output tokens of the requests completed in ``window``."""
    finish = requests.finish_s
    done = (requests.status == COMPLETED) & (finish >= window.start_s) & \
        (finish < window.end_s)
    return float(np.sum(requests.prompt_tokens[done]) + np.sum(requests.output_tokens[done]))


class _Work:
    """The fleet's work over the run, in device-seconds, and the window's share of it."""

    def __init__(self, stats: Sequence[ReplicaStats], peak_flops: float,
                 hbm_bandwidth: float):
        self.busy = sum(s.devices * s.busy_s for s in stats)
        self.kernels = sum(s.devices * (s.busy_s - s.host_s) for s in stats)
        self.flops = sum(s.devices * s.cost.flops for s in stats) / peak_flops
        self.hbm = sum(s.devices * s.cost.hbm_bytes for s in stats) / hbm_bandwidth
        self.network = sum(s.devices * (s.cost.network_s + s.transfer_s) for s in stats)
        self.compute_bound = sum(s.devices * s.cost.compute_bound_s for s in stats)
        self.memory_bound = sum(s.devices * s.cost.memory_bound_s for s in stats)


def _use(work: _Work, busy_share: float, token_share: float, device_time: float
         ) -> tuple[Utilization, ActivityFractions]:
    """The window's utilization and activity from its shares of the run's work."""
    def share(x: float) -> float:
        """Device-seconds ``x`` as a fraction of the window's device time."""
        return min(1.0, x / device_time) if device_time > 0 else 0.0

    activity = ActivityFractions(busy=share(work.kernels * busy_share),
                                 compute_bound=share(work.compute_bound * busy_share),
                                 memory_bound=share(work.memory_bound * busy_share))
    return Utilization(compute=share(work.flops * token_share),
                       memory_bandwidth=share(work.hbm * busy_share),
                       network=share(work.network * busy_share),
                       busy=activity.busy), activity


def steady_window(requests: Requests, records: RequestRecords,
                  stats: Sequence[ReplicaStats], *, series: Series, window: Window,
                  work: tuple[float, float, int], slo: SLO | None, warmup: int,
                  whole: InferenceMetrics, whole_use: Utilization) -> SteadyWindow:
    """The figures over ``window``; ``work`` is the fleet's (peak FLOP/s, HBM bytes/s,
    accelerators). Without a window, the whole run's figures (``whole``, ``whole_use``),
    flagged."""
    if not window.found:
        return _whole(requests, window, whole, whole_use, warmup)

    v = {name: arr[window.first:window.stop] for name, arr in series.values.items()}
    totals = {name: float(np.sum(arr)) for name, arr in series.values.items()}
    duration = window.duration_s
    output, prompt = float(np.sum(v["output_tokens"])), float(np.sum(v["prompt_tokens"]))
    window = balanced(window, output + prompt, _carried(requests, window))
    if not window.found:
        return _whole(requests, window, whole, whole_use, warmup)
    processed = totals["output_tokens"] + totals["prompt_tokens"]
    fleet = _Work(stats, work[0], work[1])
    use, activity = _use(fleet, float(np.sum(v["device_busy_s"])) / fleet.busy
                         if fleet.busy else 0.0,
                         (output + prompt) / processed if processed else 0.0,
                         work[2] * duration)
    placed = _placed(requests, window)
    arrival = requests.arrival_s
    inside = (arrival >= window.start_s) & (arrival < window.end_s)
    inside &= np.arange(len(requests)) >= warmup
    lat = latencies(requests, records, inside, slo, duration)
    return SteadyWindow(
        found=True, basis=window.basis, start_s=window.start_s, end_s=window.end_s,
        duration_s=duration, requests=placed, output_tokens=output, prompt_tokens=prompt,
        requests_per_s=placed.completed_in_window / duration,
        output_tokens_per_s=output / duration, total_tokens_per_s=(output + prompt) / duration,
        utilization=use, activity=activity, **lat)


def _whole(requests: Requests, window: Window, m: InferenceMetrics, use: Utilization,
           warmup: int) -> SteadyWindow:
    """No steady window: the whole run's figures, over its span, flagged."""
    completed = requests.status == COMPLETED
    t0 = float(np.min(requests.arrival_s)) if len(requests) else 0.0
    prompt = float(np.sum(requests.prompt_tokens[completed]))
    output = float(np.sum(requests.output_tokens[completed]))
    n = len(requests)
    return SteadyWindow(
        found=False, basis=window.basis, start_s=t0, end_s=t0 + m.duration_s,
        duration_s=m.duration_s,
        requests=WindowRequests(arrived_before=0, arrived_in_window=n, arrived_after=0,
                                completed_before=0, completed_in_window=m.requests,
                                completed_after=0, dropped=m.dropped, unfinished=m.unfinished,
                                measured=int(np.sum(completed[warmup:]))),
        output_tokens=output, prompt_tokens=prompt, requests_per_s=m.requests_per_s,
        output_tokens_per_s=m.output_tokens_per_s, total_tokens_per_s=m.total_tokens_per_s,
        ttft_s=m.ttft_s, tpot_s=m.tpot_s, e2e_s=m.e2e_s, queue_s=m.queue_s,
        slo_attainment=m.slo_attainment, slo=m.slo,
        goodput_requests_per_s=m.goodput_requests_per_s, utilization=use, activity=m.activity)
