"""Quantized input-gradient GEMMs (``efficiency.gemm.quantized_dgrad``).

Transformer Engine's B300 worked example (physics_facts sec. 2) times the Dgrad GEMMs of a
quantized layer 5-13% slower than its Fprop GEMMs (BF16 within 2%): dX = dY W^T swaps K and
N, and the kernel picked for the swapped shape is slower. The Blackwell profiles give such a
GEMM 1/1.09 = 0.917 of the large efficiency; the forward and weight-gradient GEMMs and every
16-bit GEMM keep the whole of it.
"""

from __future__ import annotations

import pytest

from simulator.perf.ops import ComputeOp, OpKind
from simulator.perf.opspec import Gemm, Prec
from simulator.perf.roofline import compute_op_time, large_efficiency
from simulator.profiles.catalog import load_hardware
from simulator.profiles.precision import Precision
from tests.conftest import assert_clean_error, edited_h100_profile, run_cli

GB200 = load_hardware("gb200-nvl72")


def _op(kind: OpKind, precision: Precision) -> ComputeOp:
    # 2e13 FLOPs in one kernel: the size curve sits at 2e13 / (2e13 + half) of large
    return ComputeOp(name="g", kind=kind, flops=2e13, bytes=1e6, precision=precision,
                     gemm_flops_each=2e13)


@pytest.mark.parametrize("precision", [Precision.FP8, Precision.FP4])
def test_a_quantized_input_gradient_runs_at_the_profiles_share_of_the_forward(precision):
    """fp8 on GB200: 0.583 x 0.917 = 0.5346 of peak for a large dgrad, 0.583 for the
    forward; so the dgrad takes 1/0.917 = 1.0905 x the forward's compute time."""
    large = GB200.efficiency.gemm.large[precision].value
    assert large_efficiency(GB200, precision, OpKind.GEMM_DGRAD) == pytest.approx(
        large * 0.917)
    assert large_efficiency(GB200, precision, OpKind.GEMM) == large
    forward = compute_op_time(GB200, _op(OpKind.GEMM, precision)).compute_s
    dgrad = compute_op_time(GB200, _op(OpKind.GEMM_DGRAD, precision)).compute_s
    assert dgrad / forward == pytest.approx(1 / 0.917)


def test_sixteen_bit_input_gradients_and_profiles_without_the_field_keep_the_forward_rate():
    """BF16 Dgrad is within 2% of Fprop in TE's table, so 16-bit GEMMs are untouched; the
    H100 profile has no ``quantized_dgrad`` and prices its fp8 dgrad as its forward."""
    bf16 = [compute_op_time(GB200, _op(k, Precision.BF16)) for k in (OpKind.GEMM,
                                                                     OpKind.GEMM_DGRAD)]
    assert bf16[0] == bf16[1]
    h100 = load_hardware("h100-sxm")
    assert h100.efficiency.gemm.quantized_dgrad is None
    fp8 = [compute_op_time(h100, _op(k, Precision.FP8)) for k in (OpKind.GEMM,
                                                                 OpKind.GEMM_DGRAD)]
    assert fp8[0] == fp8[1]


def test_a_gemms_backward_names_its_input_gradient():
    """The input gradient is the GEMM_DGRAD kind, the weight gradient stays a GEMM; both
    keep the forward's FLOPs and size."""
    gemm = Gemm(name="mlp.down", m=8192, k=28672, n=8192)
    p = Prec(weight=Precision.FP8, act=Precision.FP8, compute=Precision.FP8,
             kv=Precision.BF16, other=Precision.BF16)
    dgrad, wgrad = gemm.backward(p)
    assert (dgrad.name, dgrad.kind) == ("mlp.down.dgrad", OpKind.GEMM_DGRAD)
    assert (wgrad.name, wgrad.kind) == ("mlp.down.wgrad", OpKind.GEMM)
    assert dgrad.flops == wgrad.flops == gemm.flops == 2 * 8192 * 28672 * 8192
    assert dgrad.gemm_flops_each == gemm.size


def test_a_share_above_one_is_a_clean_profile_error(tmp_path):
    bad = edited_h100_profile(tmp_path, "    half_size_flops: {value: 3.5e+9,",
                              "    quantized_dgrad: {value: 1.09, source: test}\n"
                              "    half_size_flops: {value: 3.5e+9,")
    assert_clean_error(run_cli("validate", str(bad)),
                       "efficiency.gemm.quantized_dgrad.value", "must be at most 1 (got 1.09)")
