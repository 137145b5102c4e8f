"""The roofline of one op over many sizes at once (numpy), for ops that grow linearly.

A decode step's attention core reads and computes in proportion to the batch's total
context; every other op of the step does not depend on it. An engine that jumps through many
decode steps needs that core's time at each of them. Given the op at two sizes, its FLOPs,
bytes and per-kernel GEMM size are affine in the size, and :func:`affine_op_times` evaluates
:func:`simulator.perf.roofline.compute_op_time` at every size of an array with the same
formula and operation order (a test holds them equal). :class:`AffineTimer` keeps the
hardware constants of one such op for repeated pricing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.perf.ops import ComputeOp, OpKind
from simulator.perf.roofline import run_precision
from simulator.profiles.hardware import HardwareProfile


@dataclass(frozen=True)
class AffineOp:
    """An op whose FLOPs, bytes and GEMM size are ``a + b·x`` in a size ``x``."""

    template: ComputeOp
    flops: tuple[float, float]
    bytes: tuple[float, float]
    each: tuple[float, float]

    @classmethod
    def through(cls, lo: ComputeOp, hi: ComputeOp, x_lo: float, x_hi: float) -> AffineOp:
        """The affine op through ``lo`` (at size ``x_lo``) and ``hi`` (at ``x_hi``)."""
        if (lo.name, lo.kind, lo.precision, lo.count) != (hi.name, hi.kind, hi.precision,
                                                          hi.count):
            raise ValueError(f"{lo.name} and {hi.name} are not the same op at two sizes")
        if x_hi == x_lo:
            raise ValueError("two different sizes are needed")

        def line(a: float, b: float) -> tuple[float, float]:
            slope = (b - a) / (x_hi - x_lo)
            return a - slope * x_lo, slope

        return cls(lo, line(lo.flops, hi.flops), line(lo.bytes, hi.bytes),
                   line(_each(lo), _each(hi)))

    def at(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """FLOPs, bytes and per-kernel GEMM size at each size of ``x``."""
        return (self.flops[0] + self.flops[1] * x, self.bytes[0] + self.bytes[1] * x,
                self.each[0] + self.each[1] * x)


def _each(op: ComputeOp) -> float:
    return op.gemm_flops_each if op.gemm_flops_each is not None else op.flops / op.count


@dataclass(frozen=True)
class AffineTimer:
    """An :class:`AffineOp` on one device, with its hardware constants looked up once.

    :meth:`parts` takes a size or an array of sizes; the arithmetic is the same either way
    (IEEE operations in the same order), so a size priced alone and within an array give
    the same bits.
    """

    flops: tuple[float, float]
    bytes: tuple[float, float]
    each: tuple[float, float]
    gemm: bool
    peak: float
    large: float
    half: float
    memory_rate: float
    overhead_s: float

    def parts(self, x):
        """FLOPs, bytes, compute time and memory time at size(s) ``x``."""
        flops = self.flops[0] + self.flops[1] * x
        nbytes = self.bytes[0] + self.bytes[1] * x
        if self.gemm and (self.flops[0] or self.flops[1]):
            each = self.each[0] + self.each[1] * x
            eff = self.large * each / (each + self.half)
            compute = flops / (self.peak * eff)
        else:
            compute = flops / self.peak
        return flops, nbytes, compute, nbytes / self.memory_rate

    def time(self, x: float) -> tuple[float, bool]:
        """Time at one size, and whether compute (not memory) bounds it."""
        _, _, compute, memory = self.parts(x)
        return max(compute, memory) + self.overhead_s, compute >= memory

    def times(self, x: np.ndarray) -> OpTimes:
        flops, nbytes, compute, memory = self.parts(x)
        return OpTimes(np.maximum(compute, memory) + self.overhead_s, compute, memory,
                       self.overhead_s, flops, nbytes)


def timer(hw: HardwareProfile, op: AffineOp) -> AffineTimer:
    """``op`` on ``hw``, priced as :func:`simulator.perf.roofline.compute_op_time` does."""
    t = op.template
    p = run_precision(hw, t.precision)
    gemm = hw.efficiency.gemm
    large = gemm.large[p].value if p in gemm.large else min(e.value for e in gemm.large.values())
    return AffineTimer(op.flops, op.bytes, op.each, t.kind in (OpKind.GEMM, OpKind.ATTENTION),
                       hw.peak(p), large, gemm.half_size_flops.value,
                       hw.hbm_bandwidth * hw.efficiency.hbm.value,
                       t.count * hw.efficiency.kernel_overhead.value)


@dataclass(frozen=True)
class OpTimes:
    """Per-size arrays: total time, and its compute and memory parts (before overhead)."""

    time_s: np.ndarray
    compute_s: np.ndarray
    memory_s: np.ndarray
    overhead_s: float
    flops: np.ndarray
    bytes: np.ndarray


def affine_op_times(hw: HardwareProfile, op: AffineOp, x: np.ndarray) -> OpTimes:
    """``compute_op_time`` of ``op`` at every size in ``x``: max(compute, memory) + overhead."""
    return timer(hw, op).times(np.asarray(x))
