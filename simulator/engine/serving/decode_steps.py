"""A decode step's cost, and runs of decode steps priced one step at a time, exactly.

A decode step of ``batch`` sequences costs ``const(batch) + core(batch, context)``: the ops
that do not depend on the context (body, head, the decode ops' fixed part) and the ops that
are affine in the batch's total context (the attention core), each priced as
:meth:`~simulator.perf.vector_roofline.AffineTimer.parts` does. A run of steps grows the
context by ``batch`` a step; a short run is priced in plain Python, a long one with numpy,
the same IEEE operations in the same order either way (a test holds them equal).

When the core is memory-bound by a wide margin from some context on (the usual case: a
decode step reads the whole KV cache for a few FLOPs per byte), the compute side need not
be evaluated: max(compute, memory) is the memory time, bit for bit.
"""

from __future__ import annotations

import numpy as np

Vector = tuple[float, ...]
TIME = 0  # the time field of a cost vector (:data:`~simulator.perf.vector_roofline.COST_FIELDS`)


class RunPrice:
    """A run of decode steps: each step's time, and the compute-bound seconds of its
    context-dependent ops (None when none of them is compute-bound, the usual case)."""

    __slots__ = ("compute_bound_s", "time_s")

    def __init__(self, time_s: list[float], compute_bound_s: list[float] | None):
        self.time_s = time_s
        self.compute_bound_s = compute_bound_s


class DecodeStep:
    """A decode step of one batch size: costs independent of the context (the whole step's,
    and the decode ops' own), and the constants of the context-dependent ops."""

    __slots__ = ("const", "const_s", "memory", "memory_from", "own", "rows", "timers")

    def __init__(self, const: Vector, own: Vector, timers: list, batch: int):
        self.const, self.own, self.timers = const, own, timers
        self.const_s = const[TIME]
        self.rows = [timer_row(t) for t in timers]
        # the total context from which the one context-dependent op is memory-bound (small
        # contexts can be compute-bound: tiny attention kernels run far below peak)
        self.memory_from: float = float("inf")
        if len(self.rows) == 1:
            x = batch
            while x < 1 << 50 and not memory_bound(self.rows[0], x):
                x *= 2
            if x < 1 << 50:
                self.memory_from = x
        # (bytes line, memory rate, overhead) of that op: all a memory-bound step needs
        self.memory = ((self.rows[0][2], self.rows[0][3], self.rows[0][10], self.rows[0][11])
                       if len(self.rows) == 1 else None)


def timer_row(t) -> tuple:
    """The constants of an :class:`AffineTimer` as a flat tuple for the Python loop."""
    gemm = bool(t.gemm and (t.flops[0] or t.flops[1]))
    return (t.flops[0], t.flops[1], t.bytes[0], t.bytes[1], t.each[0], t.each[1], gemm,
            t.peak, t.large, t.half, t.memory_rate, t.overhead_s)


def memory_bound(row: tuple, lo: int) -> bool:
    """Whether an affine op is memory-bound by a wide margin at every size from ``lo`` up:
    its compute time at most half its memory time, from bounds on the exact values (FLOPs,
    bytes and GEMM size grow with the size; a GEMM's efficiency only improves). Rounding is
    far below that margin, so the roofline's max() is the memory time, bit for bit."""
    f0, f1, b0, b1, e0, e1, gemm, peak, large, half, rate, _ = row
    if min(f0, f1, b0, b1, e1) < 0:
        return False
    if gemm:
        each = e0 + e1 * lo
        if each <= 0:
            return False
        per_flop = (1.0 + half / each) / (peak * large)  # seconds per FLOP, at most
    else:
        per_flop = 1.0 / peak
    # compute(x) <= per_flop·(f0 + f1·x) < (b0 + b1·x)/(2·rate) = memory(x)/2 at lo and beyond
    return (per_flop * (f0 + f1 * lo) < 0.5 * (b0 + b1 * lo) / rate
            and per_flop * f1 <= 0.5 * b1 / rate)


def python_run(parts: DecodeStep, const: float, context: int, batch: int,
               steps: int) -> tuple[list[float], list[float] | None]:
    """Step times of ``steps`` steps from total context ``context``, each ``const`` plus the
    context-dependent ops (the arithmetic of
    :meth:`~simulator.perf.vector_roofline.AffineTimer.parts`, one step at a time), and the
    compute-bound seconds of each step's context-dependent ops (None if there are none)."""
    times: list[float] = []
    bound: list[float] | None = None
    rows = parts.rows
    if context >= parts.memory_from:  # the usual case (one context-dependent op)
        b0, b1, rate, overhead = parts.memory
        # max(compute, memory) is memory at every step; x = context + batch·i
        return [const + ((b0 + b1 * x) / rate + overhead)
                for x in range(context, context + batch * steps, batch)], None
    for i in range(steps):
        x = context + batch * i
        time, cb = const, 0.0
        for f0, f1, b0, b1, e0, e1, gemm, peak, large, half, rate, overhead in rows:
            flops = f0 + f1 * x
            if gemm:
                each = e0 + e1 * x
                compute = flops / (peak * (large * each / (each + half)))
            else:
                compute = flops / peak
            memory = (b0 + b1 * x) / rate
            op_s = max(compute, memory) + overhead
            time = time + op_s
            if compute >= memory:
                cb += op_s
        times.append(time)
        if cb:
            if bound is None:
                bound = [0.0] * i
            bound.append(cb)
        elif bound is not None:
            bound.append(0.0)
    return times, bound


def numpy_run(parts: DecodeStep, context: int, batch: int, steps: int) -> RunPrice:
    """:func:`python_run` with numpy, for long runs (the same operations, elementwise)."""
    x = context + batch * np.arange(steps, dtype=np.int64)
    if context >= parts.memory_from:
        b0, b1, rate, overhead = parts.memory
        return RunPrice((parts.const_s + ((b0 + b1 * x) / rate + overhead)).tolist(), None)
    times = np.full(steps, parts.const_s)
    bound = np.zeros(steps)
    for t in parts.timers:
        op = t.times(x)
        times = times + op.time_s
        bound += np.where(op.compute_s >= op.memory_s, op.time_s, 0.0)
    return RunPrice(times.tolist(), bound.tolist() if bound.any() else None)
