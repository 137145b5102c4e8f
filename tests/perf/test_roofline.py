"""Roofline timing: hand-computed values from the H100 profile's numbers, and properties.

H100 SXM profile (measured, benchmarks/device/): bf16 peak 989.4 TFLOP/s, large-GEMM efficiency
0.73 (fp8 0.675), half-size 3.5e9 FLOPs, attention 0.63 forward and 0.50 backward, HBM 3.35 TB/s
at 0.90, 4.6 µs per kernel; A100 has no FP8 (bf16 312 TFLOP/s).
"""

from __future__ import annotations

from functools import cache
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import hardware_ids, load_hardware
from simulator.perf.kernel import matmul_efficiency
from simulator.perf.ops import Collective, CommOp, ComputeOp, Group, OpKind
from simulator.perf.roofline import (
    OpTime,
    compute_op_time,
    op_rates,
    op_time,
    run_precision,
)
from simulator.profiles.precision import Precision

PEAK, EFF, HALF, BW, HBM_EFF, LAUNCH = 989.4e12, 0.73, 3.5e9, 3.35e12, 0.90, 4.6e-6
STREAM = 0.847  # a GEMM's bytes: efficiency.gemm.stream, below the copy's HBM_EFF
ATTN_FWD = 0.63


@cache
def hw(name: str = "h100-sxm"):
    return load_hardware(name)


def scaled(profile, flops_factor: float, bw_factor: float):
    """The same device with every peak and the HBM bandwidth multiplied."""
    peaks = {p: s.model_copy(update={"value": s.value * flops_factor})
             for p, s in profile.compute.peak_flops.items()}
    bandwidth = profile.memory.bandwidth
    memory = profile.memory.model_copy(
        update={"bandwidth": bandwidth.model_copy(update={"value": bandwidth.value * bw_factor})})
    return profile.model_copy(update={
        "compute": profile.compute.model_copy(update={"peak_flops": peaks}), "memory": memory})


# ---- GEMM efficiency curve ----------------------------------------------------------------
def test_gemm_efficiency_is_half_of_large_at_the_half_size():
    assert matmul_efficiency(op_rates(hw(), "bf16"), HALF) == pytest.approx(EFF / 2)
    assert matmul_efficiency(op_rates(hw(), "fp8"), HALF) == pytest.approx(0.675 / 2)


@pytest.mark.parametrize("name", hardware_ids())
def test_gemm_efficiency_increases_with_size_and_tends_to_large(name):
    profile = hw(name)
    for precision, large in profile.efficiency.gemm.large.items():
        sizes = [10.0 ** e for e in range(3, 19)]
        effs = [matmul_efficiency(op_rates(profile, precision), f) for f in sizes]
        assert all(a < b for a, b in pairwise(effs))
        assert effs[-1] == pytest.approx(large.value, rel=1e-6)
        assert effs[-1] < large.value


def test_missing_precision_runs_at_the_next_wider_one():
    a100 = hw("a100-sxm")
    assert run_precision(a100, "fp8") is Precision.BF16
    assert run_precision(hw("tpu-v5e"), "fp16") is Precision.BF16
    op = ComputeOp(name="g", kind=OpKind.GEMM, flops=1e15, bytes=1.0, precision=Precision.FP8)
    bf16 = ComputeOp(name="g", kind=OpKind.GEMM, flops=1e15, bytes=1.0, precision=Precision.BF16)
    assert compute_op_time(a100, op) == compute_op_time(a100, bf16)


# ---- one op -------------------------------------------------------------------------------
def test_large_gemm_is_compute_bound_at_the_curve_efficiency():
    op = ComputeOp(name="gemm", kind=OpKind.GEMM, flops=2e12, bytes=1e8, precision=Precision.BF16,
                   count=2, gemm_flops_each=1e12)
    t = compute_op_time(hw(), op)
    eff = EFF * 1e12 / (1e12 + HALF)
    assert t.compute_s == pytest.approx(2e12 / (PEAK * eff))
    assert t.memory_s == pytest.approx(1e8 / (BW * STREAM))
    assert t.overhead_s == pytest.approx(2 * LAUNCH)
    assert t.bound == "compute"
    assert t.time_s == pytest.approx(t.compute_s + 2 * LAUNCH)


def test_gemm_size_falls_back_to_flops_per_kernel():
    with_size = ComputeOp(name="g", kind=OpKind.GEMM, flops=4e9, bytes=1.0,
                          precision=Precision.BF16, count=4, gemm_flops_each=1e9)
    without = ComputeOp(name="g", kind=OpKind.GEMM, flops=4e9, bytes=1.0, precision=Precision.BF16,
                        count=4)
    assert compute_op_time(hw(), with_size) == compute_op_time(hw(), without)
    assert compute_op_time(hw(), without).compute_s == pytest.approx(
        4e9 / (PEAK * EFF * 1e9 / (1e9 + HALF)))


def test_attention_uses_the_curve_at_its_size():
    op = ComputeOp(name="core", kind=OpKind.ATTENTION, flops=1e11, bytes=1e6,
                   precision=Precision.BF16, count=1, gemm_flops_each=1e11)
    assert compute_op_time(hw(), op).compute_s == pytest.approx(
        1e11 / (PEAK * ATTN_FWD * 1e11 / (1e11 + HALF)))


def with_attention(profile, forward: float | None, backward: float | None = None):
    """``profile`` with its attention fractions replaced (None: removed)."""
    from simulator.profiles.hardware import AttentionEfficiency

    attention = None if forward is None else AttentionEfficiency.model_validate(
        {"forward": {"value": forward, "source": "test"},
         "backward": {"value": backward, "source": "test"}})
    efficiency = profile.efficiency.model_copy(update={"attention": attention})
    return profile.model_copy(update={"efficiency": efficiency})


@pytest.mark.parametrize(("kind", "large"), [(OpKind.ATTENTION, 0.6),
                                             (OpKind.ATTENTION_BACKWARD, 0.45),
                                             (OpKind.GEMM, EFF)])
def test_attention_kernels_run_at_the_profiles_attention_fractions(kind, large):
    profile = with_attention(hw(), 0.6, 0.45)
    op = ComputeOp(name="core", kind=kind, flops=1e11, bytes=1e6, precision=Precision.BF16, count=1,
                   gemm_flops_each=1e11)
    assert compute_op_time(profile, op).compute_s == pytest.approx(
        1e11 / (PEAK * large * 1e11 / (1e11 + HALF)))


@pytest.mark.parametrize("kind", [OpKind.ATTENTION, OpKind.ATTENTION_BACKWARD])
def test_attention_without_its_own_fractions_runs_at_the_gemm_efficiency(kind):
    profile = with_attention(hw(), None)
    op = ComputeOp(name="core", kind=kind, flops=1e11, bytes=1e6, precision=Precision.BF16, count=1,
                   gemm_flops_each=1e11)
    gemm = ComputeOp(name="core", kind=OpKind.GEMM, flops=1e11, bytes=1e6, precision=Precision.BF16,
                     count=1, gemm_flops_each=1e11)
    # compute at the GEMM's fraction; the bytes at the copy's HBM fraction (the GEMM's
    # weight stream has its own measured fraction, efficiency.gemm.stream)
    attention, matmul = compute_op_time(profile, op), compute_op_time(profile, gemm)
    assert attention.compute_s == matmul.compute_s
    assert attention.memory_s == pytest.approx(
        1e6 / (profile.hbm_bandwidth * profile.efficiency.hbm.value))


def test_materialized_attention_is_priced_as_plain_gemms():
    """Without FlashAttention the score and value matmuls are cuBLAS batched GEMMs, so the
    fused-kernel fractions do not apply to them (forward or backward)."""
    from simulator.perf.opspec import Core, Prec

    p = Prec(weight=Precision.BF16, act=Precision.BF16, compute=Precision.BF16,
             kv=Precision.BF16, other=Precision.BF16)
    fused = Core(name="attn.core", flops=1e11, q_bytes=1e6, kv_bytes=1e6, o_bytes=1e6)
    plain = Core(name="attn.core", flops=1e11, q_bytes=1e6, kv_bytes=1e6, o_bytes=1e6, fused=False)
    assert [op.kind for op in fused.forward(p) + fused.backward(p)] == [
        OpKind.ATTENTION, OpKind.ATTENTION_BACKWARD]
    assert [op.kind for op in plain.forward(p) + plain.backward(p)] == [OpKind.GEMM] * 2


@pytest.mark.parametrize("kind", [OpKind.ELEMENTWISE, OpKind.EMBEDDING])
def test_elementwise_ops_are_bytes_bound_at_hbm_efficiency(kind):
    op = ComputeOp(name="norm", kind=kind, flops=1e9, bytes=1e9, precision=Precision.BF16, count=3)
    t = compute_op_time(hw(), op)
    assert t.memory_s == pytest.approx(1e9 / (BW * HBM_EFF))
    assert t.compute_s == pytest.approx(1e9 / PEAK)  # full peak, no efficiency
    assert t.bound == "memory"
    assert t.time_s == pytest.approx(1e9 / (BW * HBM_EFF) + 3 * LAUNCH)


op_kinds = st.sampled_from(list(OpKind))
positive = st.floats(1.0, 1e16, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(kind=op_kinds, flops=positive, nbytes=positive, count=st.integers(1, 100),
       each=st.one_of(st.none(), positive), name=st.sampled_from(hardware_ids()),
       more_flops=st.floats(1.0, 10.0), more_bw=st.floats(1.0, 10.0))
def test_more_peak_or_bandwidth_is_never_slower(kind, flops, nbytes, count, each, name,
                                                more_flops, more_bw):
    profile = hw(name)
    precision = next(iter(profile.compute.peak_flops))
    op = ComputeOp(name="x", kind=kind, flops=flops, bytes=nbytes, precision=precision, count=count,
                   gemm_flops_each=each)
    base = compute_op_time(profile, op).time_s
    for faster in (scaled(profile, more_flops, 1.0), scaled(profile, 1.0, more_bw),
                   scaled(profile, more_flops, more_bw)):
        assert compute_op_time(faster, op).time_s <= base * (1 + 1e-12)


# ---- dispatch and sums --------------------------------------------------------------------
def test_op_time_dispatches_collectives_to_the_network_model():
    collectives = pytest.importorskip("simulator.perf.collectives")
    op = CommOp(name="tp", collective=Collective.ALL_REDUCE, bytes=64e6, group=Group(8), count=3)
    t = op_time(hw(), op)
    assert t.bound == "network"
    assert t.time_s > 0
    assert t.time_s == pytest.approx(collectives.comm_op_time(hw(), op).time_s)
    assert t.network_s == t.time_s and t.compute_s == t.memory_s == 0


def test_op_time_prices_compute_ops_by_the_roofline():
    op = ComputeOp(name="a", kind=OpKind.ELEMENTWISE, flops=0.0, bytes=1e9,
                   precision=Precision.BF16)
    assert op_time(hw(), op) == compute_op_time(hw(), op)
    assert isinstance(op_time(hw(), op), OpTime) and op_time(hw(), op).bound == "memory"
