"""The roofline of one op over many sizes at once (numpy), for ops that grow linearly.

A decode step's attention core reads and computes in proportion to the batch's total
context; every other op of the step does not depend on it. An engine that jumps through many
decode steps needs that core's time at each of them. Given the op at two sizes, its FLOPs,
bytes and per-kernel GEMM size are affine in the size, and :func:`affine_op_times` evaluates
:func:`simulator.perf.roofline.compute_op_time` at every size of an array with the same
formula and operation order (a test holds them equal). :class:`AffineTimer` keeps the
hardware constants of one such op for repeated pricing.

:class:`Pricer` prices whole op lists the same way, with each precision's hardware constants
looked up once and each collective priced once per shape, one size or many sizes at a time
(:mod:`simulator.perf.affine_ops` builds on it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.perf.ops import MATMUL_KINDS, CommOp, ComputeOp, OpKind
from simulator.perf.roofline import large_efficiency, run_precision
from simulator.profiles.hardware import HardwareProfile
from simulator.profiles.precision import Precision


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
    return AffineTimer(op.flops, op.bytes, op.each, t.kind in MATMUL_KINDS, hw.peak(p),
                       large_efficiency(hw, t.precision, t.kind),
                       hw.efficiency.gemm.half_size_flops.value,
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


# ---- exact scalar pricing with the constants looked up once -------------------------------
Op = ComputeOp | CommOp
COST_FIELDS = ("time_s", "flops", "hbm_bytes", "network_s", "compute_bound_s", "memory_bound_s")


class Pricer:
    """Prices ops on one device as :func:`simulator.perf.roofline.op_time` does, bit for bit,
    with the hardware constants of each precision looked up once and each collective
    (kind, bytes, group) priced once: an engine that prices thousands of op lists spends
    its time on arithmetic, not on profile lookups."""

    def __init__(self, hw: HardwareProfile):
        self.hw = hw
        gemm = hw.efficiency.gemm
        self.half = gemm.half_size_flops.value
        self.memory_rate = hw.hbm_bandwidth * hw.efficiency.hbm.value
        self.kernel_s = hw.efficiency.kernel_overhead.value
        self._rates: dict[tuple[Precision, OpKind], tuple[float, float]] = {}
        self._collectives: dict[tuple, float] = {}

    def rates(self, precision: Precision, kind: OpKind = OpKind.GEMM) -> tuple[float, float]:
        """(peak FLOP/s, large-size efficiency) an op of ``kind`` at ``precision`` runs at."""
        r = self._rates.get((precision, kind))
        if r is None:
            p = run_precision(self.hw, precision)
            r = self._rates[(precision, kind)] = (self.hw.peak(p),
                                                  large_efficiency(self.hw, precision, kind))
        return r

    def compute(self, op: ComputeOp) -> tuple[float, bool]:
        """Seconds of a compute op, and whether compute (not memory) bounds it."""
        return self.compute_time(op.precision, op.kind, op.flops, op.bytes, op.count,
                                 op.gemm_flops_each)

    def compute_time(self, precision: Precision, kind: OpKind, flops: float, nbytes: float,
                     count: int, each: float | None) -> tuple[float, bool]:
        """:meth:`compute` from an op's fields (``compute_op_time``'s arithmetic)."""
        peak, large = self.rates(precision, kind)
        if kind in MATMUL_KINDS:
            if each is None:
                each = flops / count
            eff = large * each / (each + self.half) if each > 0 else 0.0
            compute = flops / (peak * eff) if flops else 0.0
        else:
            compute = flops / peak
        memory = nbytes / self.memory_rate
        return max(compute, memory) + count * self.kernel_s, compute >= memory

    def collective(self, op: CommOp) -> float:
        """Seconds of ``op.count`` repeats of a collective (``comm_op_time``)."""
        return self.collective_time(op.collective, op.bytes, op.group, op.count)

    def collective_time(self, collective, nbytes: float, group, count: int) -> float:
        key = (collective, nbytes, group)
        one = self._collectives.get(key)
        if one is None:
            from simulator.perf.collectives import collective_time

            one = self._collectives[key] = collective_time(self.hw, collective, nbytes,
                                                           group).time_s
        return one * count if count else 0.0

    def compute_times(self, precision: Precision, kind: OpKind, flops: np.ndarray,
                      nbytes: np.ndarray, count: int, each: np.ndarray | None
                      ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`compute_time` at many sizes at once (the same arithmetic, elementwise)."""
        peak, large = self.rates(precision, kind)
        with np.errstate(divide="ignore", invalid="ignore"):
            if kind in MATMUL_KINDS:
                if each is None:
                    each = flops / count
                eff = np.where(each > 0, large * each / (each + self.half), 0.0)
                compute = np.where(flops != 0, flops / (peak * eff), 0.0)
            else:
                compute = flops / peak
        memory = nbytes / self.memory_rate
        return np.maximum(compute, memory) + count * self.kernel_s, compute >= memory

    def collective_times(self, collective, nbytes: np.ndarray, group, count: int
                         ) -> np.ndarray:
        """:meth:`collective_time` at many sizes at once. Groups inside one scale-up domain
        or one per domain are priced elementwise by the collective model's own formulas
        (the fastest algorithm at each size); others one size at a time."""
        from simulator.perf import collectives as model

        n = group.size
        k = group.members_per_domain(self.hw.scale_up.domain_size.value)
        if n == 1 or not count:
            return np.zeros(len(nbytes))
        if k >= n or k == 1:
            fabric = model._scale_up(self.hw, n, group.stride) if k >= n \
                else model._scale_out(self.hw, n)
            parts = model._parts_on(fabric, collective, nbytes)
            one = parts[0].time
            for part in parts[1:]:
                one = np.minimum(one, part.time)
            return np.where(nbytes == 0, 0.0, one) * count
        return np.array([self.collective_time(collective, float(b), group, count)
                         for b in nbytes])

    def vector(self, ops: list[Op]) -> tuple[float, ...]:
        """The cost of ops run one after another: a tuple of :data:`COST_FIELDS`, added in
        op order (so equal to summing ``op_time`` one op at a time)."""
        time = flops = nbytes = network = cb = mb = 0.0
        for op in ops:
            if isinstance(op, CommOp):
                t = self.collective(op)
                time += t
                network += t
                continue
            t, compute_bound = self.compute(op)
            time += t
            flops += op.flops
            nbytes += op.bytes
            if compute_bound:
                cb += t
            else:
                mb += t
        return (time, flops, nbytes, network, cb, mb)
