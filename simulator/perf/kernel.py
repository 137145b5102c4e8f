"""The roofline kernel: the one place where an op's time on a device is computed.

An op (``count`` kernels doing ``flops`` FLOPs and moving ``nbytes`` HBM bytes in all) takes
the longer of its compute time and its memory time, plus a fixed launch cost per kernel
(Williams et al. 2009, with achievable rather than peak ceilings). Matrix kernels (GEMMs,
attention cores) compute at a fraction of peak that grows with one kernel's size ``each``:
``large·each/(each + half_size_flops)``; other kernels are credited with full peak for their
few FLOPs, so their bytes decide.

:func:`kernel_time` prices one op, :func:`kernel_times` many at once (numpy arrays of FLOPs,
bytes and kernel sizes). The two perform the same IEEE operations in the same order, so an
op priced alone and within an array gets the same bits (a test holds them equal).
Everything that prices compute ops calls one of them: :func:`simulator.perf.roofline.
compute_op_time`, :class:`simulator.perf.pricer.Pricer` and the affine timers of
:mod:`simulator.perf.affine_op`. The hardware lookups that give an :class:`OpRates` live in
:func:`simulator.perf.roofline.op_rates`; this module is arithmetic only.

Inputs are non-negative and ``count >= 1``. A matrix op with FLOPs but no positive kernel
size cannot run: its compute time is infinite (both functions agree).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True, kw_only=True)
class OpRates:
    """The rates one kind of op at one precision runs at on one device: what its time
    depends on besides its own FLOPs, bytes and kernel count."""

    peak_flops: float  # FLOP/s at the precision it runs at
    large_efficiency: float  # the fraction of peak a large matrix kernel reaches
    half_size_flops: float  # the kernel size at which it reaches half of that
    memory_rate: float  # achievable HBM bytes/s: bandwidth x HBM efficiency
    kernel_s: float  # launch overhead of one kernel
    matmul: bool  # whether compute runs at the size-dependent matrix efficiency


@dataclass(frozen=True, slots=True, kw_only=True)
class KernelTime:
    """Seconds of one op: the total and its parts (the total is max(compute, memory) plus
    the overhead)."""

    time_s: float
    compute_s: float
    memory_s: float
    overhead_s: float

    @property
    def compute_bound(self) -> bool:
        """Whether compute (not memory) bounds the op; a tie counts as compute."""
        return self.compute_s >= self.memory_s


@dataclass(frozen=True, slots=True, kw_only=True)
class KernelTimes:
    """:class:`KernelTime` of one op at many sizes: arrays, and the shared overhead."""

    time_s: np.ndarray
    compute_s: np.ndarray
    memory_s: np.ndarray
    overhead_s: float

    @property
    def compute_bound(self) -> np.ndarray:
        """Where compute (not memory) bounds the op."""
        return self.compute_s >= self.memory_s


def matmul_efficiency(rates: OpRates, each: float) -> float:
    """The fraction of peak one matrix kernel of ``each`` FLOPs reaches:
    ``large·each/(each + half_size_flops)``, half the large-size efficiency at
    ``each = half_size_flops``; 0 for a kernel of no size."""
    if each > 0:
        return rates.large_efficiency * each / (each + rates.half_size_flops)
    return 0.0


def matmul_efficiencies(rates: OpRates, each: np.ndarray) -> np.ndarray:
    """:func:`matmul_efficiency` elementwise."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(each > 0,
                        rates.large_efficiency * each / (each + rates.half_size_flops), 0.0)


def kernel_time(rates: OpRates, flops: float, nbytes: float, count: int,
                each: float | None = None) -> KernelTime:
    """max(compute, memory) + count·kernel_s of ``count`` kernels of ``flops`` FLOPs and
    ``nbytes`` bytes in all; ``each``: one matrix kernel's FLOPs (default flops/count)."""
    if not rates.matmul:
        compute = flops / rates.peak_flops
    elif not flops:
        compute = 0.0
    else:
        eff = matmul_efficiency(rates, flops / count if each is None else each)
        compute = flops / (rates.peak_flops * eff) if eff else math.inf
    memory = nbytes / rates.memory_rate
    overhead = count * rates.kernel_s
    return KernelTime(time_s=max(compute, memory) + overhead, compute_s=compute, memory_s=memory,
                      overhead_s=overhead)


def kernel_times(rates: OpRates, flops: np.ndarray, nbytes: np.ndarray, count: int,
                 each: np.ndarray | None = None) -> KernelTimes:
    """:func:`kernel_time` at many sizes: the same operations, elementwise."""
    if not rates.matmul:
        compute = flops / rates.peak_flops
    else:
        eff = matmul_efficiencies(rates, flops / count if each is None else each)
        with np.errstate(divide="ignore", invalid="ignore"):
            compute = np.where(flops != 0, flops / (rates.peak_flops * eff), 0.0)
    memory = nbytes / rates.memory_rate
    overhead = count * rates.kernel_s
    return KernelTimes(time_s=np.maximum(compute, memory) + overhead, compute_s=compute,
                       memory_s=memory, overhead_s=overhead)
