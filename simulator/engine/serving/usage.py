"""What a replica's iterations ran, counted cheaply as they run and priced once at the end.

The engine only needs each iteration's time. What the iterations did in total (FLOPs, bytes,
network and bound seconds: a :class:`~simulator.perf.pricer.Cost`) is counted per replica in
a :class:`Usage` by cache key (the body's token count, the head's sequences, the decode
batch and its total context) and priced in a few matrix products at the end
(:func:`usage_totals`). The sums run in a different order than iteration by iteration, so
the totals may differ from such a sum in the last bits.
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from simulator.perf.pricer import COST_FIELDS, Cost, CostSum

if TYPE_CHECKING:
    from simulator.engine.serving.decode_steps import DecodeStep


class Usage:
    """What one replica's iterations ran, by cache key, to be priced once at the end."""

    __slots__ = ("compute_bound_s", "const", "const_x", "host_s", "mixed", "prefill",
                 "timer_s")

    def __init__(self) -> None:
        # mixed iterations, four integers each: new tokens (the body's key), sequences (the
        # head's), decode batch and its total context (the decode ops'); appended rather than
        # counted in dicts keyed by thousands of sizes, whose entries a long run finds cold
        self.mixed = array("q")
        self.const: dict[int, int] = defaultdict(int)  # decode-only steps: batch -> steps
        self.const_x: dict[int, int] = defaultdict(int)  # ... and the sum of their contexts
        self.prefill = CostSum()  # prompt attention, summed as it runs
        # seconds of decode-only steps and of mixed steps' context-dependent ops (the
        # constant parts of decode-only steps are taken off at the end), and the
        # compute-bound part of the context-dependent ops
        self.timer_s = 0.0
        self.compute_bound_s = 0.0
        # seconds the serving stack added to iterations (host work, launches): busy, but not
        # in kernels
        self.host_s = 0.0


class DecodeTables(NamedTuple):
    """The decode steps' costs as arrays indexed by batch size, for the end-of-run sums."""

    entries: int  # the decode steps they were built from (rebuilt when more are priced)
    const: np.ndarray  # the whole step's context-independent cost, columns as in Cost
    own: np.ndarray  # the decode ops' context-independent cost alone
    const_s: np.ndarray  # seconds of the whole step's context-independent part
    # the context-dependent ops' FLOPs and bytes, summed lines a + b·context, in columns
    # (flops a, flops b, bytes a, bytes b)
    lines: np.ndarray

    @classmethod
    def of(cls, steps: dict[int, DecodeStep]) -> DecodeTables:
        """The tables of ``steps`` (by batch size)."""
        size = max(steps) + 1
        const, own = np.zeros((size, len(COST_FIELDS))), np.zeros((size, len(COST_FIELDS)))
        const_s, lines = np.zeros(size), np.zeros((size, 4))
        for b, step in steps.items():
            const[b], own[b], const_s[b] = step.const.row(), step.own.row(), step.const.time_s
            for t in step.timers:
                lines[b] += (t.flops.a, t.flops.b, t.bytes.a, t.bytes.b)
        return cls(entries=len(steps), const=const, own=own, const_s=const_s, lines=lines)


def _tally(keys: np.ndarray, sizes: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct ``keys`` (small non-negative ints) in the order they first occur (as a
    dict counting them would hold them), how often each occurs, and the sum of ``sizes``
    over its occurrences. The keys index the counts and sums directly (no sort)."""
    distinct = np.fromiter(dict.fromkeys(keys.tolist()), dtype=np.int64)
    counts = np.bincount(keys)[distinct]
    sums = np.zeros(int(keys.max()) + 1, dtype=np.int64)
    if sizes is not None:
        np.add.at(sums, keys, sizes)
    return distinct, counts, sums[distinct]


class _DecodeCounts(NamedTuple):
    """Decode steps by batch size: the sizes, the steps of each and the sum of their total
    contexts; ``whole``: decode-only steps (else the decode part of mixed iterations)."""

    batches: np.ndarray
    steps: np.ndarray
    contexts: np.ndarray
    whole: bool


def _decode_counts(usage: Usage, mixed: np.ndarray) -> list[_DecodeCounts]:
    """The decode steps ``usage`` counted: in mixed iterations, then decode-only."""
    out = []
    decoding = mixed[mixed[:, 2] > 0]
    if len(decoding):
        batches, steps, contexts = _tally(decoding[:, 2], decoding[:, 3])
        out.append(_DecodeCounts(batches=batches, steps=steps, contexts=contexts, whole=False))
    if usage.const:
        table, sums = usage.const, usage.const_x
        out.append(_DecodeCounts(
            batches=np.fromiter(table, dtype=np.int64, count=len(table)),
            steps=np.fromiter(table.values(), dtype=np.int64, count=len(table)),
            contexts=np.array([sums[b] for b in table], dtype=np.int64), whole=True))
    return out


def usage_totals(usage: Usage, body: np.ndarray | None, head: np.ndarray | None,
                 decode: DecodeTables | None) -> Cost:
    """What ``usage`` counted costs in all, given the body's and head's costs as arrays
    indexed by size (columns in :class:`Cost`'s order) and the decode steps' tables."""
    v = np.array(usage.prefill.cost().row())
    mixed = np.frombuffer(usage.mixed, dtype=np.int64).reshape(-1, 4)
    for column, table in ((0, body), (1, head)):
        if len(mixed):
            assert table is not None
            keys, counts, _ = _tally(mixed[:, column])
            v += counts.astype(float) @ table[keys]
    time = usage.timer_s
    flops = nbytes = 0.0
    for c in _decode_counts(usage, mixed):
        assert decode is not None
        n, x = c.steps.astype(float), c.contexts.astype(float)
        v += n @ (decode.const if c.whole else decode.own)[c.batches]
        if c.whole:
            time -= float(n @ decode.const_s[c.batches])
        # (columns of one gathered array, strided: the dot products' summation order is
        # BLAS's for that layout, kept so that the totals keep their bits)
        flops_a, flops_b, bytes_a, bytes_b = decode.lines[c.batches].T
        flops += float(n @ flops_a + x @ flops_b)
        nbytes += float(n @ bytes_a + x @ bytes_b)
    summed = Cost.of_row(v.tolist())
    return Cost(time_s=summed.time_s + time, flops=summed.flops + flops,
                hbm_bytes=summed.hbm_bytes + nbytes, network_s=summed.network_s,
                compute_bound_s=summed.compute_bound_s + usage.compute_bound_s,
                memory_bound_s=summed.memory_bound_s + (time - usage.compute_bound_s))
