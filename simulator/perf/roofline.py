"""Roofline time of one operation with measured efficiencies (Williams et al. 2009).

An op takes the longer of its compute time (FLOPs at an achievable fraction of peak) and its
memory time (HBM bytes at an achievable fraction of peak bandwidth), plus a fixed cost per
kernel launch. The achievable GEMM fraction grows with the GEMM's size and saturates at the
profile's large-GEMM efficiency, so small decode GEMMs are not credited with peak speed.
Collectives are costed by :mod:`simulator.perf.collectives`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from simulator.perf.ops import MATMUL_KINDS, CommOp, ComputeOp, OpKind
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


@dataclass(frozen=True)
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
                     kind: OpKind = OpKind.GEMM) -> float:
    """The fraction of peak a large kernel of ``kind`` reaches at ``precision``.

    Attention cores use the profile's attention fractions where it has them (they reach
    less than GEMMs); everything else, and attention on profiles without them, the GEMM's.
    """
    attention = hw.efficiency.attention
    if attention is not None and kind is OpKind.ATTENTION:
        return attention.forward.value
    if attention is not None and kind is OpKind.ATTENTION_BACKWARD:
        return attention.backward.value
    p = run_precision(hw, precision)
    large = hw.efficiency.gemm.large
    return large[p].value if p in large else min(e.value for e in large.values())


def gemm_efficiency(hw: HardwareProfile, precision: Precision | str,
                    gemm_flops: float, kind: OpKind = OpKind.GEMM) -> float:
    """large·F/(F + half_size_flops): half the large-size efficiency at F = half."""
    if gemm_flops <= 0:
        return 0.0
    large = large_efficiency(hw, precision, kind)
    return large * gemm_flops / (gemm_flops + hw.efficiency.gemm.half_size_flops.value)


def compute_op_time(hw: HardwareProfile, op: ComputeOp) -> OpTime:
    """max(compute, memory) + count·kernel_overhead.

    GEMMs and attention cores run at a size-dependent efficiency (of one kernel:
    ``gemm_flops_each``, else flops/count; attention at the profile's attention fractions);
    elementwise and embedding ops are credited with full peak for their few FLOPs, so their
    bytes decide.
    """
    peak = hw.peak(run_precision(hw, op.precision))
    if op.kind in MATMUL_KINDS:
        each = op.gemm_flops_each if op.gemm_flops_each is not None else op.flops / op.count
        eff = gemm_efficiency(hw, op.precision, each, op.kind)
        compute_s = op.flops / (peak * eff) if op.flops else 0.0
    else:
        compute_s = op.flops / peak
    memory_s = op.bytes / (hw.hbm_bandwidth * hw.efficiency.hbm.value)
    overhead_s = op.count * hw.efficiency.kernel_overhead.value
    bound: Bound = "compute" if compute_s >= memory_s else "memory"
    return OpTime(max(compute_s, memory_s) + overhead_s, bound, compute_s, memory_s,
                  overhead_s)


def op_time(hw: HardwareProfile, op: ComputeOp | CommOp) -> OpTime:
    """Time of a compute op (roofline) or a collective (network model)."""
    if isinstance(op, ComputeOp):
        return compute_op_time(hw, op)
    from simulator.perf.collectives import comm_op_time  # written beside this module

    cost = comm_op_time(hw, op)
    return OpTime(cost.time_s, "network", network_s=cost.time_s)


def total_time(hw: HardwareProfile, ops: Iterable[ComputeOp | CommOp]) -> float:
    """Sum of the ops' times, one after another (the engines decide what overlaps)."""
    return sum(op_time(hw, op).time_s for op in ops)
