"""Roofline time of one operation with measured efficiencies (Williams et al. 2009).

An op takes the longer of its compute time (FLOPs at an achievable fraction of peak) and its
memory time (HBM bytes at an achievable fraction of peak bandwidth), plus a fixed cost per
kernel launch. The achievable GEMM fraction grows with the GEMM's size and saturates at the
profile's large-GEMM efficiency, so small decode GEMMs are not credited with peak speed.

This module reads the hardware profile (the precision an op runs at, its peak and
efficiencies: :func:`op_rates`); the arithmetic is :mod:`simulator.perf.kernel`'s.
Collectives are costed by :mod:`simulator.perf.collectives`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from simulator.perf.collective_size import serving_library
from simulator.perf.kernel import OpRates, kernel_time
from simulator.perf.matrix_fill import attention_fill
from simulator.perf.ops import GEMM_KINDS, MATMUL_KINDS, CommOp, ComputeOp, OpKind
from simulator.profiles.hardware import HardwareProfile
from simulator.profiles.precision import Precision

Bound = Literal["compute", "memory", "network"]

# A precision the device lacks runs at the next wider one it has (FP8 weights on an A100
# are upcast to BF16, as weight-only kernels do; FP16 on a TPU runs as BF16).
_WIDER = {
    Precision.FP4: (Precision.FP6, Precision.FP8, Precision.BF16, Precision.FP16),
    Precision.INT4: (Precision.INT8, Precision.FP8, Precision.BF16, Precision.FP16),
    Precision.FP6: (Precision.FP8, Precision.BF16, Precision.FP16),
    Precision.FP8: (Precision.BF16, Precision.FP16),
    Precision.INT8: (Precision.FP8, Precision.BF16, Precision.FP16),
    Precision.FP16: (Precision.BF16,),
    Precision.BF16: (Precision.FP16,),
    Precision.TF32: (Precision.FP32, Precision.BF16),
    Precision.FP32: (Precision.TF32, Precision.BF16),
}


@dataclass(frozen=True, kw_only=True)
class OpTime:
    """Seconds one op takes on one device, and what limits it."""

    time_s: float
    bound: Bound
    compute_s: float = 0.0
    memory_s: float = 0.0
    overhead_s: float = 0.0
    network_s: float = 0.0


def run_precision(hw: HardwareProfile, precision: Precision | str) -> Precision:
    """The precision whose peak an op at ``precision`` runs at on ``hw``."""
    p = Precision(precision)
    for candidate in (p, *_WIDER.get(p, ())):
        if hw.supports(candidate):
            return candidate
    raise KeyError(f"{hw.id} has no peak FLOP/s for {p.value} or a wider precision "
                   f"(it lists {sorted(x.value for x in hw.compute.peak_flops)})")


def large_efficiency(hw: HardwareProfile, precision: Precision | str,
                     kind: OpKind = OpKind.GEMM,
                     head_dims: tuple[float, float] | None = None) -> float:
    """The fraction of peak a large kernel of ``kind`` reaches at ``precision``.

    Attention cores use the profile's attention fractions where it has them (they reach
    less than GEMMs); everything else, and attention on profiles without them, the GEMM's.
    On a profile with a ``compute.matrix_unit_width``, an attention core whose
    ``head_dims`` are narrower than the array reaches that times the share of the array
    they fill (:func:`simulator.perf.matrix_fill.attention_fill`): the one place the
    width is applied, for training and serving alike.
    A quantized (fp8, fp4) input-gradient GEMM reaches the profile's ``quantized_dgrad``
    share of it: its K/N-swapped shape picks slower kernels than the forward's.
    """
    if kind in (OpKind.ATTENTION, OpKind.ATTENTION_BACKWARD):
        base = _attention_base(hw, precision, kind)
        width = hw.compute.matrix_unit_width
        if width is None or head_dims is None:
            return base
        return base * attention_fill(width.value, *head_dims)
    return _gemm_large(hw, precision, kind)


def _attention_base(hw: HardwareProfile, precision: Precision | str, kind: OpKind) -> float:
    """An attention core's fraction before the matrix-unit width: the profile's
    attention fractions (fp8 ones for an fp8 kernel, where measured), else the GEMM's."""
    attention = hw.efficiency.attention
    if attention is None:
        return _gemm_large(hw, precision, kind)
    forward = kind is OpKind.ATTENTION
    if Precision(precision) is Precision.FP8:  # an fp8 attention kernel, if measured
        fp8 = attention.fp8_forward if forward else attention.fp8_backward
        if fp8 is not None:
            return fp8.value
    return (attention.forward if forward else attention.backward).value


def _gemm_large(hw: HardwareProfile, precision: Precision | str, kind: OpKind) -> float:
    """The GEMM's large-size fraction at ``precision`` (quantized dgrad's share applied)."""
    p = run_precision(hw, precision)
    gemm = hw.efficiency.gemm
    large = gemm.large[p].value if p in gemm.large else min(
        e.value for e in gemm.large.values())
    if kind is OpKind.GEMM_DGRAD and gemm.quantized_dgrad and p.bytes_per_element < 2:
        return large * gemm.quantized_dgrad.value
    return large


def op_rates(hw: HardwareProfile, precision: Precision | str,
             kind: OpKind = OpKind.GEMM,
             head_dims: tuple[float, float] | None = None) -> OpRates:
    """The rates an op of ``kind`` at ``precision`` runs at on ``hw`` (the kernel's inputs
    from the hardware profile). Quantization kernels move their bytes at the profile's
    ``quantize`` fraction of HBM bandwidth and GEMMs at its ``gemm.stream`` fraction, where
    it has them; everything else at the copy's ``hbm`` fraction. ``head_dims``: an attention
    core's, for the matrix-unit width (:func:`large_efficiency`)."""
    eff = hw.efficiency
    run = run_precision(hw, precision)
    memory = eff.hbm
    if kind is OpKind.QUANTIZE and eff.quantize:
        memory = eff.quantize
    elif kind in GEMM_KINDS and eff.gemm.stream:
        memory = eff.gemm.stream
    return OpRates(peak_flops=hw.peak(run),
                   large_efficiency=large_efficiency(hw, precision, kind, head_dims),
                   half_size_flops=eff.gemm.half_size(run),
                   memory_rate=hw.hbm_bandwidth * memory.value,
                   kernel_s=hw.efficiency.kernel_overhead.value, matmul=kind in MATMUL_KINDS)


def compute_op_time(hw: HardwareProfile, op: ComputeOp) -> OpTime:
    """max(compute, memory) + count·kernel_overhead (:func:`simulator.perf.kernel.kernel_time`).

    GEMMs and attention cores run at a size-dependent efficiency (of one kernel:
    ``gemm_flops_each``, else flops/count; attention at the profile's attention fractions);
    elementwise and embedding ops are credited with full peak for their few FLOPs, so their
    bytes decide.
    """
    t = kernel_time(op_rates(hw, op.precision, op.kind, op.head_dims), op.flops, op.bytes,
                    op.count, op.gemm_flops_each)
    return OpTime(time_s=t.time_s, bound="compute" if t.compute_bound else "memory",
                  compute_s=t.compute_s, memory_s=t.memory_s, overhead_s=t.overhead_s)


def op_time(hw: HardwareProfile, op: ComputeOp | CommOp, *, library: bool = False) -> OpTime:
    """Time of a compute op (roofline) or a collective (network model; ``library``: run by
    NCCL/RCCL, as in training, so it follows the profile's collective size curve)."""
    if isinstance(op, ComputeOp):
        return compute_op_time(hw, op)
    from simulator.perf.collectives import comm_op_time  # written beside this module

    cost = comm_op_time(hw, op, library=library)
    return OpTime(time_s=cost.time_s, bound="network", network_s=cost.time_s)


def serving_op_time(hw: HardwareProfile, op: ComputeOp | CommOp) -> OpTime:
    """:func:`op_time` as a serving engine runs the op: its all-gathers and reduce-scatters
    in NCCL (the library's size curve), its all-reduce on kernels of its own
    (:func:`simulator.perf.collective_size.serving_library`)."""
    library = isinstance(op, CommOp) and serving_library(op.collective)
    return op_time(hw, op, library=library)
