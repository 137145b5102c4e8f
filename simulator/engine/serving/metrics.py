"""What the serving engine records: per-request arrays, per-replica counters, time series.

Requests live in numpy arrays indexed by request number (arrival order), so summaries are
vector operations whatever the number of requests. Replicas add up their own busy time,
work and KV occupancy as they run (the resource records its utilization, not an observer).
Time series use a fixed number of bins whose width doubles when the run outgrows them, so
they stay small for any run length.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulator.engine.serving.arrivals import Workload

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
        self.generated = np.zeros(n, dtype=np.int64)
        self.target = self.prompt.copy()  # tokens to prefill at the next admission; 0: KV ready
        self.done = np.zeros(n, dtype=np.int64)
        self.admit_seq = np.zeros(n, dtype=np.int64)

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
        self.values = {name: np.zeros(bins) for name in channels}

    def _fit(self, t: float) -> None:
        while t >= self.bins * self.width:
            for name, v in self.values.items():
                folded = v.reshape(-1, 2).sum(axis=1)
                self.values[name] = np.concatenate([folded, np.zeros(self.bins - len(folded))])
            self.width *= 2

    def add(self, t: float, **amounts: float) -> None:
        """Add ``amounts`` to the bin holding time ``t``."""
        self._fit(t)
        i = int(t / self.width)
        for name, amount in amounts.items():
            self.values[name][i] += amount

    def add_many(self, t: np.ndarray, **amounts: np.ndarray) -> None:
        """Add each element of ``amounts`` to the bin of the same element of ``t``."""
        self._fit(float(t[-1]))
        first, last = int(t[0] / self.width), int(t[-1] / self.width)
        if first == last:  # the usual case: a run shorter than a bin
            for name, amount in amounts.items():
                self.values[name][first] += float(amount.sum())
            return
        i = (t / self.width).astype(np.int64)
        for name, amount in amounts.items():
            self.values[name] += np.bincount(i, weights=amount, minlength=self.bins)

    def used(self, end_s: float) -> int:
        """Bins up to ``end_s``."""
        return min(self.bins, int(end_s / self.width) + 1)


SERIES = ("output_tokens", "completed", "busy_s", "kv_blocks_s", "batch_s")


@dataclass
class ReplicaStats:
    """Counters one replica keeps about itself (per device of the replica)."""

    index: int
    role: str
    devices: int
    kv_blocks: int
    kv_block_tokens: int
    max_batch: int
    iterations: int = 0
    engine_steps: int = 0  # iterations or runs of decode steps priced as one event
    busy_s: float = 0.0
    cost: np.ndarray = field(default_factory=lambda: np.zeros(6))
    kv_blocks_s: float = 0.0  # integral of blocks in use over time
    kv_blocks_max: int = 0
    batch_total: int = 0  # sum of sequences over iterations
    batch_max: int = 0
    batch_hist: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    preemptions: int = 0
    completed: int = 0
    handed_off: int = 0
    output_tokens: int = 0
    prompt_tokens: int = 0
    transfer_s: float = 0.0  # KV sent or received over the fabric

    def __post_init__(self) -> None:
        self.batch_hist = np.zeros(self.max_batch + 1, dtype=np.int64)

    def record(self, steps: int, batch: int, time_s: np.ndarray, blocks: np.ndarray,
               cost: np.ndarray) -> None:
        """``steps`` iterations of ``batch`` sequences, with per-step times and blocks."""
        self.iterations += steps
        self.engine_steps += 1
        if steps == 1:
            t, b = float(time_s[0]), int(blocks[0])
            self.busy_s += t
            self.kv_blocks_s += b * t
        else:
            self.busy_s += float(time_s.sum())
            self.kv_blocks_s += float(blocks @ time_s)
            b = int(blocks[-1])
        self.cost += cost
        self.kv_blocks_max = max(self.kv_blocks_max, b)
        self.batch_total += batch * steps
        self.batch_max = max(self.batch_max, batch)
        self.batch_hist[batch] += steps
