"""The roofline kernel: its scalar and numpy forms agree bit for bit, and it is the roofline.

Everything that prices compute ops calls :func:`kernel_time` or :func:`kernel_times`, so the
two must give the same bits for the same op, whatever its numbers: zero FLOPs, a matrix
kernel of no size, non-matrix kinds, kernel sizes given or derived from the count.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from simulator import load_hardware
from simulator.perf.affine_op import AffineOp, timer
from simulator.perf.kernel import (
    KernelTime,
    OpRates,
    kernel_time,
    kernel_times,
    matmul_efficiency,
)
from simulator.perf.ops import ComputeOp, OpKind
from simulator.perf.roofline import compute_op_time, op_rates


def _rates(rng: np.random.Generator, matmul: bool) -> OpRates:
    return OpRates(peak_flops=10 ** rng.uniform(12, 16), large_efficiency=rng.uniform(0.2, 1),
                   half_size_flops=10 ** rng.uniform(7, 11), memory_rate=10 ** rng.uniform(11, 13),
                   kernel_s=rng.choice([0.0, rng.uniform(0, 1e-5)]), matmul=matmul)


def _sizes(rng: np.random.Generator, n: int, low: float) -> np.ndarray:
    """Positive sizes over many decades, with zeros among them."""
    values = 10 ** rng.uniform(low, 15, n)
    values[rng.random(n) < 0.15] = 0.0
    return values


@pytest.mark.parametrize("seed", range(40))
def test_the_scalar_and_array_kernels_agree_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    rates = _rates(rng, matmul=bool(seed % 4))  # every fourth: elementwise / embedding
    count = int(rng.integers(1, 200))
    flops, nbytes = _sizes(rng, 300, 0), _sizes(rng, 300, 0)
    each = None
    if seed % 3:  # given kernel sizes, some of them zero or negative
        each = _sizes(rng, 300, 2) * rng.choice([1.0, -1.0], 300, p=[0.9, 0.1])
    many = kernel_times(rates, flops, nbytes, count, each)
    for i in range(len(flops)):
        one = kernel_time(rates, float(flops[i]), float(nbytes[i]), count,
                          None if each is None else float(each[i]))
        assert one == KernelTime(time_s=float(many.time_s[i]), compute_s=float(many.compute_s[i]),
                                 memory_s=float(many.memory_s[i]), overhead_s=many.overhead_s)
        assert one.compute_bound == bool(many.compute_bound[i])


def test_zero_flops_cost_no_compute_and_a_sizeless_matrix_kernel_never_finishes():
    rates = OpRates(peak_flops=1e15, large_efficiency=0.8, half_size_flops=1e9, memory_rate=2e12,
                    kernel_s=5e-6, matmul=True)
    for each in (None, 0.0, -5.0, 1e9):
        assert kernel_time(rates, 0.0, 4e6, 2, each).compute_s == 0.0
    for each in (0.0, -5.0):
        t = kernel_time(rates, 1e9, 4e6, 1, each)
        assert t.compute_s == math.inf and t.time_s == math.inf and t.compute_bound
        assert kernel_times(rates, np.array([1e9]), np.array([4e6]), 1,
                            np.array([each])).compute_s[0] == math.inf


def test_the_kernel_is_the_roofline():
    rates = OpRates(peak_flops=1e15, large_efficiency=0.8, half_size_flops=1e9, memory_rate=2e12,
                    kernel_s=5e-6, matmul=True)
    t = kernel_time(rates, 3e12, 1e9, 4)  # four kernels of 0.75 TFLOP each
    eff = 0.8 * 0.75e12 / (0.75e12 + 1e9)
    assert t.compute_s == pytest.approx(3e12 / (1e15 * eff), rel=1e-15)
    assert t.memory_s == pytest.approx(1e9 / 2e12, rel=1e-15)
    assert t.overhead_s == 4 * 5e-6
    assert t.time_s == t.compute_s + t.overhead_s and t.compute_bound
    assert matmul_efficiency(rates, 1e9) == pytest.approx(0.4)
    elementwise = kernel_time(replace(rates, matmul=False), 1e6, 1e9, 1)
    assert elementwise.compute_s == 1e6 / 1e15 and not elementwise.compute_bound


@pytest.mark.parametrize("kind", list(OpKind))
def test_compute_op_time_is_the_kernel_on_the_profile(kind):
    hw = load_hardware("h100-sxm")
    op = ComputeOp(name="x", kind=kind, flops=3.3e11, bytes=2.1e8, precision="bf16", count=3,
                   gemm_flops_each=1.1e11 if kind == OpKind.GEMM else None)
    want = kernel_time(op_rates(hw, "bf16", kind), op.flops, op.bytes, op.count,
                       op.gemm_flops_each)
    got = compute_op_time(hw, op)
    assert (got.time_s, got.compute_s, got.memory_s, got.overhead_s) == (
        want.time_s, want.compute_s, want.memory_s, want.overhead_s)
    assert got.bound == ("compute" if want.compute_bound else "memory")


@pytest.mark.parametrize("hw_id", ["h100-sxm", "a100-sxm", "mi300x", "tpu-v5p"])
def test_a_memory_bound_affine_op_costs_its_memory_time_exactly(hw_id):
    """From where :meth:`AffineTimer.memory_bound` says, its shortcut is the kernel's time."""
    hw = load_hardware(hw_id)
    lo = ComputeOp(name="core", kind=OpKind.ATTENTION, flops=4.0e6, bytes=2.5e6, precision="bf16",
                   count=32, gemm_flops_each=1.25e5)
    hi = ComputeOp(name="core", kind=OpKind.ATTENTION, flops=8.0e6, bytes=4.5e6, precision="bf16",
                   count=32, gemm_flops_each=2.5e5)
    t = timer(hw, AffineOp.through(lo, hi, 8, 16))
    bound = t.memory_bound(8)
    assert bound is not None and bound.start >= 8
    xs = np.array([int(bound.start) + k * 997 for k in range(200)] + [1 << 40])
    many, kernels = bound.time(xs), t.times(xs)
    for i, x in enumerate(xs.tolist()):
        assert bound.time(x) == t.time(x).time_s == kernels.time_s[i] == many[i]
        assert not t.time(x).compute_bound
