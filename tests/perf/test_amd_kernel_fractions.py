"""Kernels that reach less than the AMD Instinct profiles' GEMM and copy fractions.

Fused attention reaches less of peak than their GEMMs, and Transformer Engine's fp8
quantization passes less of the HBM bandwidth than a STREAM copy.

Without ``efficiency.attention`` an attention core runs at the GEMM's fraction; every NVIDIA
profile has measured (H100, H200) or derived (Blackwell) attention fractions below it, and the
AMD ones now carry the same derivation: the H100's measured ratio of cuDNN fused attention to
its GEMM fit, forward 0.63/0.73 and backward 0.50/0.73, times the part's bf16 large fraction.
"""

from __future__ import annotations

import pytest

from simulator.perf.ops import ComputeOp, OpKind
from simulator.perf.roofline import compute_op_time, large_efficiency
from simulator.profiles.catalog import load_hardware
from simulator.profiles.precision import Precision

FORWARD_RATIO = 0.63 / 0.73  # H100: cuDNN attention forward 0.63 over the bf16 GEMM fit 0.73
BACKWARD_RATIO = 0.50 / 0.73  # and backward 0.50

# (profile, bf16 large, forward, backward): 0.465 x 0.863 = 0.401, 0.465 x 0.685 = 0.319 ...
AMD = [("mi300x", 0.465, 0.401, 0.319),
       ("mi325x", 0.546, 0.471, 0.374),
       ("mi355x", 0.564, 0.487, 0.386)]


@pytest.mark.parametrize(("hw_id", "bf16", "forward", "backward"), AMD)
def test_amd_attention_is_the_h100_ratio_times_the_bf16_gemm_fraction(hw_id, bf16, forward,
                                                                      backward):
    hw = load_hardware(hw_id)
    assert hw.efficiency.gemm.large[Precision.BF16].value == bf16
    assert forward == pytest.approx(bf16 * FORWARD_RATIO, abs=6e-4)
    assert backward == pytest.approx(bf16 * BACKWARD_RATIO, abs=6e-4)
    assert large_efficiency(hw, Precision.BF16, OpKind.ATTENTION) == forward
    assert large_efficiency(hw, Precision.BF16, OpKind.ATTENTION_BACKWARD) == backward
    # GEMMs keep their own fraction
    assert large_efficiency(hw, Precision.BF16, OpKind.GEMM) == bf16


def test_the_blackwell_profiles_use_the_same_ratio():
    """B200: bf16 large 0.68, attention 0.68 x 0.863 = 0.587 and 0.68 x 0.685 = 0.466."""
    b200 = load_hardware("b200")
    assert b200.efficiency.attention.forward.value == pytest.approx(0.68 * FORWARD_RATIO,
                                                                    abs=6e-4)
    assert b200.efficiency.attention.backward.value == pytest.approx(0.68 * BACKWARD_RATIO,
                                                                     abs=6e-4)


def test_mi300x_attention_sits_above_the_measured_flashattention2_floor():
    """FlashAttention-2 (CK) forward on MI300X reached 329 TFLOP/s at head dim 64 (Azure's
    guide, physics_facts sec. 1): 329 / 1,307.4 = 0.252 of peak, a smaller head dim and an
    older kernel than the stacks run; the fraction must not fall below it."""
    mi300x = load_hardware("mi300x")
    floor = 329e12 / mi300x.peak("bf16")
    assert floor == pytest.approx(0.252, abs=1e-3)
    assert floor < mi300x.efficiency.attention.forward.value


def test_an_mi325x_attention_core_takes_longer_than_a_gemm_of_the_same_flops():
    """1e12 FLOPs at 1,307.4 TFLOP/s, size factor 1e12 / (1e12 + 4.62e9): at 0.471 (attention
    forward) 1.632 ms, at 0.374 (backward) 2.055 ms, at 0.546 (GEMM) 1.408 ms."""
    mi325x = load_hardware("mi325x")
    size = 1e12 / (1e12 + 4.62e9)

    def seconds(kind: OpKind) -> float:
        op = ComputeOp(name="core", kind=kind, flops=1e12, bytes=1e6, precision=Precision.BF16,
                       count=1, gemm_flops_each=1e12)
        return compute_op_time(mi325x, op).compute_s

    assert seconds(OpKind.ATTENTION) == pytest.approx(1e12 / (1307.4e12 * 0.471 * size))
    assert seconds(OpKind.ATTENTION_BACKWARD) == pytest.approx(1e12 / (1307.4e12 * 0.374 * size))
    assert seconds(OpKind.GEMM) == pytest.approx(1e12 / (1307.4e12 * 0.546 * size))
    assert seconds(OpKind.ATTENTION) == pytest.approx(1.632e-3, rel=1e-3)


@pytest.mark.parametrize(("hw_id", "bandwidth", "copy"), [("mi300x", 5.3e12, 0.775),
                                                         ("mi325x", 6.0e12, 0.775),
                                                         ("mi355x", 8.0e12, 0.75)])
def test_amd_fp8_quantization_moves_its_bytes_at_the_te_measured_fraction(hw_id, bandwidth, copy):
    """TE's cast/transpose passes reach 0.47 of peak HBM on H200 (TE1), carried over: 1 GB on
    an MI325X takes 1e9 / (6.0e12 x 0.47) = 0.355 ms, not the copy's 1e9 / (6.0e12 x 0.775) =
    0.215 ms; an elementwise op of the same bytes keeps the copy fraction."""
    hw = load_hardware(hw_id)
    assert hw.hbm_bandwidth == pytest.approx(bandwidth)
    assert hw.efficiency.quantize.value == 0.47
    assert hw.efficiency.hbm.value == copy

    def memory_s(kind: OpKind) -> float:
        op = ComputeOp(name="cast", kind=kind, flops=1e6, bytes=1e9, precision=Precision.BF16,
                       count=1)
        return compute_op_time(hw, op).memory_s

    assert memory_s(OpKind.QUANTIZE) == pytest.approx(1e9 / (bandwidth * 0.47))
    assert memory_s(OpKind.ELEMENTWISE) == pytest.approx(1e9 / (bandwidth * copy))
    if hw_id == "mi325x":
        assert memory_s(OpKind.QUANTIZE) == pytest.approx(0.355e-3, rel=2e-3)
