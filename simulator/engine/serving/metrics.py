"""What the serving engine records: per-request arrays, per-replica counters, time series.

Requests live in numpy arrays indexed by request number (arrival order), so summaries are
vector operations whatever the number of requests; the schedulers' working state (tokens
generated, to prefill, done) is kept in Python lists, which a scalar read or write costs
less than a numpy element. Replicas add up their own busy time,
work and KV occupancy as they run (the resource records its utilization, not an observer).
Time series use a fixed number of bins whose width doubles when the run outgrows them, so
they stay small for any run length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from simulator.engine.serving.arrivals import Workload
from simulator.perf.pricer import ZERO, Cost

PENDING, COMPLETED, DROPPED = 0, 1, 2
STATUS_NAMES = {PENDING: "unfinished", COMPLETED: "completed", DROPPED: "dropped"}


class RequestLog:
    """Per-request records (times in seconds from the start; NaN where not reached) and the
    schedulers' working state (tokens generated, prompt tokens to prefill and done)."""

    def __init__(self, workload: Workload):
        n = len(workload)
        self.arrival = workload.arrival_s
        self.prompt = workload.prompt_tokens
        self.output = workload.output_tokens
        self.replica = np.full(n, -1, dtype=np.int32)
        self.decode_replica = np.full(n, -1, dtype=np.int32)
        self.admitted = np.full(n, np.nan)
        self.first_token = np.full(n, np.nan)
        self.finish = np.full(n, np.nan)
        self.transfer_s = np.full(n, np.nan)
        self.preemptions = np.zeros(n, dtype=np.int32)
        self.status = np.zeros(n, dtype=np.int8)
        # working state of the schedulers, as Python ints
        self.prompt_len: list[int] = self.prompt.tolist()
        self.output_len: list[int] = self.output.tolist()
        self.generated = [0] * n
        self.target = list(self.prompt_len)  # tokens to prefill at the next admission; 0: KV ready
        self.done = [0] * n
        self.admit_seq = [0] * n

    def __len__(self) -> int:
        return len(self.arrival)

    def records(self) -> dict[str, np.ndarray]:
        """Per-request columns for users (the CSV of ``--out``)."""
        n = len(self)
        tpot = np.full(n, np.nan)
        many = self.output > 1
        tpot[many] = (self.finish[many] - self.first_token[many]) / (self.output[many] - 1)
        return {
            "request": np.arange(n),
            "status": np.array([STATUS_NAMES[k] for k in sorted(STATUS_NAMES)])[self.status],
            "arrival_s": self.arrival,
            "prompt_tokens": self.prompt,
            "output_tokens": self.output,
            "replica": self.replica,
            "decode_replica": self.decode_replica,
            "queue_s": self.admitted - self.arrival,
            "ttft_s": self.first_token - self.arrival,
            "tpot_s": tpot,
            "e2e_s": self.finish - self.arrival,
            "transfer_s": self.transfer_s,
            "first_token_s": self.first_token,
            "finish_s": self.finish,
            "preemptions": self.preemptions,
        }


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


SERIES = ("output_tokens", "completed", "busy_s", "kv_blocks_s", "batch_s")


class Meter:
    """One replica's share of the :data:`SERIES`, summed per bin: what its iterations add
    goes to the bin they end in, and reaches the shared series once per bin rather than
    once per iteration. Call :meth:`flush` at the end of the run."""

    __slots__ = ("busy", "capacity", "completed", "end", "kv", "output", "sequences",
                 "series", "start")

    def __init__(self, series: Series, kv_blocks: int):
        self.series = series
        self.capacity = kv_blocks
        self.start = 0.0
        self.end = -1.0  # the first iteration opens a bin
        self.output = self.completed = 0
        self.busy = self.kv = self.sequences = 0.0

    def count(self, t: float, output: int, busy: float, kv: float, sequences: float) -> None:
        """An iteration (or a run) ended at ``t``: ``output`` tokens, ``busy`` seconds, ``kv``
        block-seconds and ``sequences`` sequence-seconds."""
        if t >= self.end:
            self.open(t)
        self.output += output
        self.busy += busy
        self.kv += kv
        self.sequences += sequences

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
                                         self.kv / self.capacity, self.sequences))
        self.output = self.completed = 0
        self.busy = self.kv = self.sequences = 0.0


@dataclass(slots=True)
class ReplicaStats:
    """Counters one replica keeps about itself (per device of the replica)."""

    index: int
    role: str
    devices: int
    kv_blocks: int
    kv_block_tokens: int
    max_batch: int
    engine_steps: int = 0  # iterations or runs of decode steps priced as one event
    busy_s: float = 0.0
    cost: Cost = ZERO  # set at the end of the run
    kv_blocks_s: float = 0.0  # integral of blocks in use over time
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
        return sum(self.batch_hist)

    @property
    def batch_total(self) -> int:
        """Sequences summed over iterations."""
        return sum(b * n for b, n in enumerate(self.batch_hist))

    @property
    def batch_max(self) -> int:
        return max((b for b, n in enumerate(self.batch_hist) if n), default=0)

    def record(self, steps: int, batch: int, busy_s: float, kv_blocks_s: float,
               last_blocks: int) -> None:
        """``steps`` iterations of ``batch`` sequences that took ``busy_s`` seconds in all,
        with ``kv_blocks_s`` block-seconds of cache and ``last_blocks`` at the last."""
        self.engine_steps += 1
        self.busy_s += busy_s
        self.kv_blocks_s += kv_blocks_s
        if last_blocks > self.kv_blocks_max:
            self.kv_blocks_max = last_blocks
        self.batch_hist[batch] += steps
