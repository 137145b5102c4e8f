"""A mixed fleet's per-pool figures: what each pool served and how busy its devices were,
measured as the fleet-wide figures are (``summary.py``) over the pool's own devices and
peaks, so that economics can price each pool on its own hardware."""

from __future__ import annotations

from collections.abc import Sequence

from simulator.engine.serving.metrics import ReplicaStats
from simulator.engine.serving.pools import Pool
from simulator.engine.serving.summary import device_share
from simulator.results.pools import PoolSummary


def pool_summaries(pools: Sequence[Pool], stats: Sequence[ReplicaStats], duration_s: float,
                   speeds: Sequence[float]) -> list[PoolSummary]:
    """One summary per pool from its replicas' counters over the run's ``duration_s``
    (first arrival to last completion); ``speeds`` are the pools' priced replica speeds."""
    finished = sum(s.completed + s.handed_off for s in stats)
    out = []
    for i, pool in enumerate(pools):
        mine = [s for s in stats if s.pool == i]
        devices = pool.replicas * pool.parallelism.devices
        time = devices * duration_s
        requests = sum(s.completed + s.handed_off for s in mine)
        out.append(PoolSummary(
            index=i, hardware=pool.hardware, replicas=pool.replicas, accelerators=devices,
            speed_requests_per_s=speeds[i], requests=requests,
            request_share=requests / finished if finished else 0.0,
            output_tokens=sum(int(s.output_tokens) for s in mine),
            prompt_tokens=sum(int(s.prompt_tokens) for s in mine),
            busy=device_share([s.devices * (s.busy_s - s.host_s) for s in mine], time),
            compute=device_share([s.devices * s.cost.flops / pool.peak_flops for s in mine],
                                 time),
            memory_bandwidth=device_share([s.devices * s.cost.hbm_bytes / pool.hbm_bandwidth
                                           for s in mine], time)))
    return out
