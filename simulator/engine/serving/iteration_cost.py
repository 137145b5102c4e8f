"""What one serving iteration costs, priced by :mod:`simulator.perf` from its actual mix.

An iteration's ops fall into groups that each depend on a few integers
(:class:`~simulator.perf.serving_iteration.IterationModel`): the body on the new tokens, the
LM head on the sequences, the prompt chunks' attention on (tokens, cached tokens, pairs,
sequences), the decode attention on (sequences, total context). Each group is priced once per
key and cached. The decode attention core is affine in the total context, so a decode step
costs ``const(batch) + core(batch, context)`` where ``core`` is evaluated for a whole array of
contexts at once (:mod:`simulator.perf.vector_roofline`): a run of decode steps is priced in
one numpy call, with the same numbers as pricing each step alone.

Costs are vectors ``[time, flops, hbm bytes, network s, compute-bound s, memory-bound s]``
per device of the replica (see :data:`FIELDS`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np

from simulator.perf.ops import CommOp, ComputeOp
from simulator.perf.roofline import op_time
from simulator.perf.serving_iteration import IterationModel
from simulator.perf.vector_roofline import AffineOp, AffineTimer, timer
from simulator.profiles.hardware import HardwareProfile

FIELDS = ("time_s", "flops", "hbm_bytes", "network_s", "compute_bound_s", "memory_bound_s")
TIME, FLOPS, BYTES, NETWORK, COMPUTE_BOUND, MEMORY_BOUND = range(len(FIELDS))
_PREFILL_CACHE = 1 << 16  # entries kept before the prompt-attention cache is cleared


@dataclass(frozen=True)
class DecodeRun:
    """``steps`` decode steps of one batch: each step's time and the run's summed costs."""

    time_s: np.ndarray
    totals: np.ndarray  # summed cost vector over the steps


def price(hw: HardwareProfile, ops: list[ComputeOp | CommOp]) -> np.ndarray:
    """The cost vector of ops run one after another on one device."""
    v = np.zeros(len(FIELDS))
    for op in ops:
        t = op_time(hw, op)
        v[TIME] += t.time_s
        if isinstance(op, CommOp):
            v[NETWORK] += t.time_s
            continue
        v[FLOPS] += op.flops
        v[BYTES] += op.bytes
        v[COMPUTE_BOUND if t.bound == "compute" else MEMORY_BOUND] += t.time_s
    return v


class IterationCost:
    """Cached prices of iterations on one replica's hardware and layout."""

    def __init__(self, hw: HardwareProfile, model: IterationModel):
        self.hw = hw
        self.model = model
        self._body: dict[int, np.ndarray] = {}
        self._head: dict[int, np.ndarray] = {}
        self._prefill: dict[tuple[int, int, int, int], np.ndarray] = {}
        self._decode: dict[int, tuple[np.ndarray, np.ndarray, list[AffineTimer]]] = {}

    @staticmethod
    def _cached(cache: dict, key: Hashable, make: Callable[[], np.ndarray]) -> np.ndarray:
        value = cache.get(key)
        if value is None:
            value = cache[key] = make()
        return value

    def body(self, tokens: int) -> np.ndarray:
        return self._cached(self._body, tokens,
                            lambda: price(self.hw, self.model.body(tokens)))

    def head(self, sequences: int) -> np.ndarray:
        return self._cached(self._head, sequences,
                            lambda: price(self.hw, self.model.head(sequences)))

    def prefill(self, tokens: int, cached: int, pairs: int, sequences: int) -> np.ndarray:
        if len(self._prefill) >= _PREFILL_CACHE:
            self._prefill.clear()
        return self._cached(self._prefill, (tokens, cached, pairs, sequences),
                            lambda: price(self.hw, self.model.prefill_extra(
                                tokens, cached, float(pairs), sequences)))

    def _decode_parts(self, batch: int) -> tuple[np.ndarray, np.ndarray, list[AffineTimer]]:
        """A decode step of ``batch`` sequences: the cost of everything that does not depend
        on the context (body, head and decode ops; and the decode ops alone), and timers for
        the ops that do (affine in the total context)."""
        parts = self._decode.get(batch)
        if parts is None:
            lo = self.model.decode_extra(batch, batch)
            hi = self.model.decode_extra(batch, 2 * batch)
            fixed: list[ComputeOp | CommOp] = []
            timers: list[AffineTimer] = []
            for a, b in zip(lo, hi, strict=True):
                if a == b:
                    fixed.append(a)
                elif isinstance(a, ComputeOp) and isinstance(b, ComputeOp):
                    timers.append(timer(self.hw, AffineOp.through(a, b, batch, 2 * batch)))
                else:
                    raise ValueError(f"decode op {a.name} depends on the context but is not "
                                     f"a compute op")
            own = price(self.hw, fixed)
            parts = self._decode[batch] = (self.body(batch) + self.head(batch) + own, own,
                                           timers)
        return parts

    def decode_run(self, batch: int, context: int, steps: int) -> DecodeRun:
        """``steps`` decode steps of ``batch`` sequences whose total context is ``context``
        at the first step and grows by ``batch`` per step.

        Step ``i`` costs ``const + core(context + i·batch)``, added in that order whether the
        run has one step or many, so the times agree to the last bit.
        """
        const, _, timers = self._decode_parts(batch)
        totals = const * steps
        if steps == 1:
            time = float(const[TIME])
            for t in timers:
                flops, nbytes, _, _ = t.parts(context)
                op_s, compute = t.time(context)
                time = time + op_s
                totals[TIME] += op_s
                totals[FLOPS] += flops
                totals[BYTES] += nbytes
                totals[COMPUTE_BOUND if compute else MEMORY_BOUND] += op_s
            return DecodeRun(np.array([time]), totals)
        x = context + batch * np.arange(steps, dtype=np.int64)
        times = np.full(steps, const[TIME])
        for t in timers:
            op = t.times(x)
            times = times + op.time_s
            total = float(op.time_s.sum())
            bound = float(op.time_s[op.compute_s >= op.memory_s].sum())
            totals[TIME] += total
            totals[FLOPS] += float(op.flops.sum())
            totals[BYTES] += float(op.bytes.sum())
            totals[COMPUTE_BOUND] += bound
            totals[MEMORY_BOUND] += total - bound
        return DecodeRun(times, totals)

    def step(self, prefill_tokens: int, prefill_cached: int, prefill_pairs: int,
             prefill_sequences: int, decode_batch: int, decode_context: int) -> np.ndarray:
        """One iteration mixing prompt chunks (in aggregate) and decode steps."""
        if prefill_tokens == 0:
            run = self.decode_run(decode_batch, decode_context, 1)
            v = run.totals.copy()
            v[TIME] = run.time_s[0]
            return v
        v = (self.body(prefill_tokens + decode_batch)
             + self.head(prefill_sequences + decode_batch)
             + self.prefill(prefill_tokens, prefill_cached, prefill_pairs, prefill_sequences))
        if decode_batch:
            _, own, timers = self._decode_parts(decode_batch)
            v = v + own
            for t in timers:
                flops, nbytes, _, _ = t.parts(decode_context)
                op_s, compute = t.time(decode_context)
                v[TIME] += op_s
                v[FLOPS] += flops
                v[BYTES] += nbytes
                v[COMPUTE_BOUND if compute else MEMORY_BOUND] += op_s
        return v
