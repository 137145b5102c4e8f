"""What the serving engine records besides the requests: per-replica counters, time series.

Replicas add up their own busy time, work and KV occupancy as they run (the resource
records its utilization, not an observer). Time series use a fixed number of bins whose
width doubles when the run outgrows them, so they stay small for any run length. The
per-request columns are :class:`~simulator.engine.serving.requests.Requests`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from simulator.perf.pricer import ZERO, Cost


class Series:
    """Sums per time bin; ``bins`` bins whose width doubles as the run grows."""

    def __init__(self, channels: tuple[str, ...], bins: int = 128, width_s: float = 1e-3):
        self.bins = bins
        self.width = width_s
        self.channels = channels
        self._values = [[0.0] * bins for _ in channels]
        self._ends: dict[int, float] = {}  # bin_end by bin, at the current width

    @property
    def values(self) -> dict[str, np.ndarray]:
        """Each channel's sums per bin."""
        return {name: np.array(v) for name, v in zip(self.channels, self._values, strict=True)}

    def fit(self, t: float) -> None:
        """Double the bins' width until time ``t`` falls in one."""
        while t >= self.bins * self.width:
            half = self.bins // 2
            for v in self._values:
                v[:] = [v[2 * i] + v[2 * i + 1] for i in range(half)] + [0.0] * (self.bins - half)
            self.width *= 2
            self._ends.clear()

    def add(self, t: float, amounts: tuple[float, ...]) -> None:
        """Add ``amounts`` (one per channel) to the bin holding time ``t``."""
        if t >= self.bins * self.width:
            self.fit(t)
        i = int(t / self.width)
        for v, amount in zip(self._values, amounts, strict=True):
            v[i] += amount

    def bin_end(self, t: float) -> float:
        """The least time past the bin holding ``t`` (as ``int(t / width)`` bins it)."""
        k = int(t / self.width)
        end = self._ends.get(k)
        if end is None:
            end = self._ends[k] = self._bin_end(k)
        return end

    def _bin_end(self, k: int) -> float:
        width = self.width
        end = (k + 1) * width
        while int(math.nextafter(end, -math.inf) / width) > k:
            end = math.nextafter(end, -math.inf)
        while int(end / width) <= k:
            end = math.nextafter(end, math.inf)
        return end

    def used(self, end_s: float) -> int:
        """Bins up to ``end_s``."""
        return min(self.bins, int(end_s / self.width) + 1)


# per bin: output tokens produced, requests completed, replica-seconds running iterations,
# KV-cache use (replica-seconds of a full cache), sequence-seconds, prompt tokens produced
# (prefilled for the first time) and device-seconds running iterations (busy_s weighted by
# each replica's devices). The steady window (steady.py) is read from these.
SERIES = ("output_tokens", "completed", "busy_s", "kv_blocks_s", "batch_s", "prompt_tokens",
          "device_busy_s")


class Meter:
    """One replica's share of the :data:`SERIES`, summed per bin: what its iterations add
    goes to the bin they end in, and reaches the shared series once per bin rather than
    once per iteration. Call :meth:`flush` at the end of the run."""

    __slots__ = ("busy", "capacity", "completed", "devices", "end", "kv", "output", "prompt",
                 "sequences", "series", "start")

    def __init__(self, series: Series, kv_blocks: int, devices: int = 1):
        self.series = series
        self.capacity = kv_blocks
        self.devices = devices
        self.start = 0.0
        self.end = -1.0  # the first iteration opens a bin
        self.output = self.completed = self.prompt = 0
        self.busy = self.kv = self.sequences = 0.0

    def count(self, t: float, output: int, busy: float, kv: float, sequences: float,
              prompt: int = 0) -> None:
        """An iteration (or a run) ended at ``t``: ``output`` tokens, ``busy`` seconds, ``kv``
        block-seconds, ``sequences`` sequence-seconds and ``prompt`` tokens produced."""
        if t >= self.end:
            self.open(t)
        self.output += output
        self.busy += busy
        self.kv += kv
        self.sequences += sequences
        self.prompt += prompt

    def open(self, t: float) -> None:
        """Flush, and start the bin holding ``t``."""
        self.flush()
        series = self.series
        series.fit(t)
        self.start = t
        self.end = series.bin_end(t)

    def flush(self) -> None:
        """Add what was counted since the last flush to the series."""
        if self.busy or self.output or self.completed:
            self.series.add(self.start, (self.output, self.completed, self.busy,
                                         self.kv / self.capacity, self.sequences, self.prompt,
                                         self.busy * self.devices))
        self.output = self.completed = self.prompt = 0
        self.busy = self.kv = self.sequences = 0.0


@dataclass(slots=True, kw_only=True)
class ReplicaStats:
    """Counters one replica keeps about itself (per device of the replica)."""

    index: int
    role: str
    devices: int
    kv_blocks: int
    kv_block_tokens: int
    max_batch: int
    hardware: str = ""  # the profile id of the replica's pool
    pool: int = 0  # the index of its pool (a mixed fleet's workload.pools)
    engine_steps: int = 0  # iterations with prompt chunks, or runs, priced as one event
    busy_s: float = 0.0
    cost: Cost = ZERO  # set at the end of the run
    host_s: float = 0.0  # of busy_s, what the serving stack added (set at the end)
    kv_blocks_s: float = 0.0  # integral of blocks in use over time
    batch_s: float = 0.0  # integral of sequences in the running batch over busy time
    kv_blocks_max: int = 0
    batch_hist: list[int] = field(default_factory=list)  # iterations by batch size
    preemptions: int = 0
    completed: int = 0
    handed_off: int = 0
    output_tokens: int = 0
    prompt_tokens: int = 0
    transfer_s: float = 0.0  # KV sent or received over the fabric

    def __post_init__(self) -> None:
        self.batch_hist = [0] * (self.max_batch + 1)

    # (counted once at the end from the histogram, not per iteration)
    @property
    def iterations(self) -> int:
        """Iterations run."""
        return sum(self.batch_hist)

    @property
    def batch_total(self) -> int:
        """Sequences summed over iterations."""
        return sum(b * n for b, n in enumerate(self.batch_hist))

    @property
    def batch_max(self) -> int:
        """The largest batch an iteration ran."""
        return max((b for b, n in enumerate(self.batch_hist) if n), default=0)

    def record(self, iterations: int, batch: int, busy_s: float, kv_blocks_s: float,
               last_blocks: int) -> None:
        """``iterations`` iterations of ``batch`` sequences, priced as one engine step, that
        took ``busy_s`` seconds in all, with ``kv_blocks_s`` block-seconds of cache and
        ``last_blocks`` at the last."""
        self.engine_steps += 1
        self.busy_s += busy_s
        self.kv_blocks_s += kv_blocks_s
        self.batch_s += batch * busy_s
        if last_blocks > self.kv_blocks_max:
            self.kv_blocks_max = last_blocks
        self.batch_hist[batch] += iterations
