"""One op whose FLOPs, bytes and kernel size grow linearly with a size, priced at any size.

A decode step's attention core reads and computes in proportion to the batch's total
context; every other op of the step does not depend on it. An engine that jumps through many
decode steps needs that core's time at each of them. Given the op at two sizes, its FLOPs,
bytes and per-kernel size are lines in the size (:class:`AffineOp`); an :class:`AffineTimer`
puts it on one device and prices it at one size or an array of sizes with the roofline
kernel (:mod:`simulator.perf.kernel`).

From some size on such an op is often memory-bound by a wide margin (a decode step reads
the whole KV cache for a few FLOPs per byte). :meth:`AffineTimer.memory_bound` proves where,
and its :class:`MemoryBound` then gives the kernel's time there without the compute side:
``max(compute, memory)`` is the memory time, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import overload

import numpy as np

from simulator.perf.kernel import KernelTime, KernelTimes, OpRates, kernel_time, kernel_times
from simulator.perf.ops import ComputeOp
from simulator.perf.roofline import op_rates
from simulator.profiles.hardware import HardwareProfile

_FARTHEST = 1 << 50  # sizes beyond which no memory-bound start is searched for


@dataclass(frozen=True, slots=True)
class Line:
    """``a + b·x``: a number of an op as a function of a size ``x``."""

    a: float
    b: float

    @classmethod
    def through(cls, y_lo: float, y_hi: float, x_lo: float, x_hi: float) -> Line:
        """The line through ``(x_lo, y_lo)`` and ``(x_hi, y_hi)``."""
        slope = (y_hi - y_lo) / (x_hi - x_lo)
        return cls(y_lo - slope * x_lo, slope)

    @overload
    def at(self, x: float) -> float:
        """The value at one size."""

    @overload
    def at(self, x: np.ndarray) -> np.ndarray:
        """The values at many sizes."""

    def at(self, x):
        """The value at size(s) ``x`` (a number or an array: the same operations)."""
        return self.a + self.b * x


def _each(op: ComputeOp) -> float:
    return op.gemm_flops_each if op.gemm_flops_each is not None else op.flops / op.count


@dataclass(frozen=True, kw_only=True)
class AffineOp:
    """An op whose FLOPs, bytes and kernel size are lines in a size ``x``; ``template`` is
    the op at one size (its name, kind, precision and kernel count hold at every size)."""

    template: ComputeOp
    flops: Line
    bytes: Line
    each: Line

    @classmethod
    def through(cls, lo: ComputeOp, hi: ComputeOp, x_lo: float, x_hi: float) -> AffineOp:
        """The affine op through ``lo`` (at size ``x_lo``) and ``hi`` (at ``x_hi``)."""
        if (lo.name, lo.kind, lo.precision, lo.count, lo.head_dims) != (
                hi.name, hi.kind, hi.precision, hi.count, hi.head_dims):
            raise ValueError(f"{lo.name} and {hi.name} are not the same op at two sizes")
        if x_hi == x_lo:
            raise ValueError("two different sizes are needed")
        return cls(template=lo, flops=Line.through(lo.flops, hi.flops, x_lo, x_hi),
                   bytes=Line.through(lo.bytes, hi.bytes, x_lo, x_hi),
                   each=Line.through(_each(lo), _each(hi), x_lo, x_hi))


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryBound:
    """An affine op from the size ``start`` on, where memory bounds it by a wide margin: its
    time is its memory time plus its launch overhead, as :func:`~simulator.perf.kernel.
    kernel_time` gives it there (``max(compute, memory)`` returns the memory time), without
    computing the compute side. The decode runs of the serving engine price their steps
    with it."""

    start: float
    bytes_a: float  # the bytes line, a + b·x
    bytes_b: float
    memory_rate: float
    overhead_s: float

    @overload
    def time(self, x: float) -> float:
        """Seconds at one size."""

    @overload
    def time(self, x: np.ndarray) -> np.ndarray:
        """Seconds at many sizes."""

    def time(self, x):
        """Seconds at size(s) ``x >= start`` (a number or an array: the same operations)."""
        return (self.bytes_a + self.bytes_b * x) / self.memory_rate + self.overhead_s


@dataclass(frozen=True, slots=True, kw_only=True)
class AffineTimer:
    """An :class:`AffineOp` on one device, with its rates looked up once.

    :meth:`time` and :meth:`times` evaluate the lines and call the kernel's scalar and array
    forms, so a size priced alone and within an array gets the same bits.
    """

    flops: Line
    bytes: Line
    each: Line
    count: int
    rates: OpRates

    def time(self, x: float) -> KernelTime:
        """The op's time at size ``x``."""
        return kernel_time(self.rates, self.flops.at(x), self.bytes.at(x), self.count,
                           self.each.at(x))

    def times(self, x: np.ndarray) -> KernelTimes:
        """The op's time at each size of ``x``."""
        return kernel_times(self.rates, self.flops.at(x), self.bytes.at(x), self.count,
                            self.each.at(x))

    def memory_bound_from(self, lo: float) -> bool:
        """Whether the op is memory-bound by a wide margin at every size from ``lo`` up: its
        compute time at most half its memory time, from bounds on the exact values (FLOPs,
        bytes and kernel size grow with the size; a matrix kernel's efficiency only
        improves). Rounding is far below that margin, so the kernel's max() is the memory
        time, bit for bit."""
        f, b, r = self.flops, self.bytes, self.rates
        if min(f.a, f.b, b.a, b.b, self.each.b) < 0:
            return False
        if r.matmul and (f.a or f.b):
            each = self.each.at(lo)
            if each <= 0:
                return False
            per_flop = (1.0 + r.half_size_flops / each) / (r.peak_flops * r.large_efficiency)
        else:
            per_flop = 1.0 / r.peak_flops  # (seconds per FLOP, at most)
        # compute(x) <= per_flop·flops(x) < bytes(x)/(2·rate) = memory(x)/2 at lo and beyond
        return (per_flop * f.at(lo) < 0.5 * b.at(lo) / r.memory_rate
                and per_flop * f.b <= 0.5 * b.b / r.memory_rate)

    def memory_bound(self, lo: float) -> MemoryBound | None:
        """The op from the first of ``lo``, 2·lo, 4·lo, ... at which it is memory-bound by a
        wide margin for good (None if none is: small sizes can be compute-bound, as tiny
        attention kernels run far below peak)."""
        x = lo
        while x < _FARTHEST and not self.memory_bound_from(x):
            x *= 2
        if x >= _FARTHEST:
            return None
        return MemoryBound(start=x, bytes_a=self.bytes.a, bytes_b=self.bytes.b,
                           memory_rate=self.rates.memory_rate,
                           overhead_s=self.count * self.rates.kernel_s)


def timer(hw: HardwareProfile, op: AffineOp) -> AffineTimer:
    """``op`` on ``hw``, priced as :func:`simulator.perf.roofline.compute_op_time` does."""
    t = op.template
    return AffineTimer(flops=op.flops, bytes=op.bytes, each=op.each, count=t.count,
                       rates=op_rates(hw, t.precision, t.kind, t.head_dims))
