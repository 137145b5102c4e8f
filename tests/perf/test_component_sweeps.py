"""The profiles' GEMM efficiency curves and collective size curves against the public
component measurements they were fitted to (physics_facts §1 and §7): large-GEMM fraction
and half size per precision; the all-reduce bus bandwidth of NCCL and RCCL by buffer size.

The GEMM curve is eff(F) = large · F / (F + half); a GEMM of F FLOPs runs at peak · eff(F).
The sweeps time back-to-back launches, so the kernel overhead is left out here.
"""

from __future__ import annotations

import pytest

from simulator.profiles.catalog import load_hardware
from simulator.profiles.precision import Precision

T = 1e12


def _rate(profile: str, precision: str, flops: float) -> float:
    hw = load_hardware(profile)
    p = Precision(precision)
    gemm = hw.efficiency.gemm
    large = gemm.large[p].value
    return hw.peak(p) * large * flops / (flops + gemm.half_size(p))


def _cube(n: int) -> float:
    return 2.0 * n ** 3


def _gemm(m: int, n: int, k: int) -> float:
    return 2.0 * m * n * k


@pytest.mark.parametrize(("profile", "precision", "flops", "measured", "rel"), [
    # Azure ND GB200 v6, cuBLASLt FP8 squares (fitted: rms 0.6%)
    ("gb200-nvl72", "fp8", _cube(2048), 2244 * T, 0.03),
    ("gb200-nvl72", "fp8", _cube(4096), 2835 * T, 0.03),
    ("gb200-nvl72", "fp8", _cube(8192), 2877 * T, 0.03),
    ("gb200-nvl72", "fp8", _cube(16384), 2907 * T, 0.03),
    # the same sweep, FP4 (fitted: rms 2%)
    # B200 cuBLASLt 13.3 MXFP4 (DeepGEMM PR 348; fitted: rms 5%)
    ("b200", "fp4", _cube(8192), 5239 * T, 0.08),
    ("b200", "fp4", _gemm(4096, 4096, 7168), 3939 * T, 0.10),
    ("b200", "fp4", _gemm(512, 7168, 2048), 1190 * T, 0.05),
    ("b200", "fp4", _gemm(128, 2048, 7168), 338 * T, 0.05),
    # B200 torch BF16 (vLLM PRs 19566 and 20646; fitted: rms 8%)
    ("b200", "bf16", _gemm(256, 4096, 4096), 893 * T, 0.10),
    ("b200", "bf16", _gemm(512, 4096, 4096), 1336 * T, 0.12),
    ("b200", "bf16", _gemm(2048, 4096, 4096), 1444 * T, 0.03),
    ("b200", "bf16", _gemm(8192, 6144, 4096), 1421 * T, 0.08),
    # not fitted: B200 FP8 at M=1024, N=K=4096 (vLLM PR 19566) on the GB200-fitted curve
    ("b200", "fp8", _gemm(1024, 4096, 4096), 2354 * T, 0.05),
    # MI300X hipBLASLt FP8 (Azure ND MI300X v5); large from AMD's MAF, half from this sweep
    ("mi300x", "fp8", _cube(2048), 428 * T, 0.10),
    ("mi300x", "fp8", _cube(4096), 955 * T, 0.10),
    ("mi300x", "fp8", _cube(8192), 1159 * T, 0.10),
])
def test_profile_curves_reproduce_the_component_sweeps(profile, precision, flops, measured,
                                                       rel):
    assert _rate(profile, precision, flops) == pytest.approx(measured, rel=rel)


def test_no_fp4_gemm_outruns_twice_the_fp8_one_on_the_same_tensor_cores():
    """FP4 peak is twice FP8's on Blackwell, so at any size an FP4 GEMM runs at most twice
    as fast as the FP8 GEMM of the same shape. The GB200 sweep's FP4 squares (7,628 TFLOP/s
    at 16384^3, 2.6x its FP8 squares) break that bound, which is why the profile does not
    take them at face value."""
    for profile in ("b200", "gb200-nvl72", "gb300-nvl72"):
        for n in (1024, 2048, 4096, 8192, 16384, 32768):
            fp4, fp8 = _rate(profile, "fp4", _cube(n)), _rate(profile, "fp8", _cube(n))
            assert fp4 <= 2.0 * fp8, (profile, n, fp4 / fp8)
    assert 7628 / 2907 > 2.0  # the published pair that cannot both be dense rates


def test_fp4_kernels_need_larger_gemms_to_fill_a_blackwell_gpu():
    """At 2048^3 cuBLASLt FP4 reaches 0.17 of GB200's FP4 peak, FP8 0.45 of its own: the FP4
    half size is an order of magnitude above the FP8 one."""
    gemm = load_hardware("gb200-nvl72").efficiency.gemm
    assert gemm.half_size(Precision.FP4) > 10 * gemm.half_size(Precision.FP8)
    assert gemm.half_size(Precision.BF16) == gemm.half_size_flops.value


# --- collectives: nccl-tests / rccl-tests all-reduce sweeps (physics_facts sec. 7) -----------

MiB = 1 << 20


def _all_reduce_time(profile: str, n: int, size: float, busbw: float,
                     algorithm: str) -> tuple[float, float]:
    """(model, measured) seconds of an all-reduce of ``size`` bytes over ``n`` devices of one
    domain, priced as training prices it (a library collective); the measured time is
    2(n-1)/n·S / busbw, nccl-tests' definition of bus bandwidth."""
    from simulator.perf.collectives import collective_time
    from simulator.perf.ops import Collective, Group

    model = collective_time(load_hardware(profile), Collective.ALL_REDUCE, size, Group(n),
                            algorithm=algorithm, library=True).time_s
    return model, 2 * (n - 1) / n * size / busbw


@pytest.mark.parametrize(("profile", "n", "algorithm", "size", "busbw", "rel"), [
    # Azure ND H100 v5, 8 GPUs, NVLS on (auto picks NVLS at all three sizes). The curve
    # (floor 0.20, half size 16 MB) was fitted to these nine NVIDIA points at once; model
    # 34.0 / 122.4 / 32,657 us against 42.0 / 125.5 / 31,383 us.
    ("h100-sxm", 8, "auto", 1 * MiB, 43.7e9, 0.20),
    ("h100-sxm", 8, "auto", 16 * MiB, 234e9, 0.05),
    ("h100-sxm", 8, "auto", 8192 * MiB, 479e9, 0.05),
    # Azure ND H200 v5, the same: 34.0 / 122.4 / 32,657 us against 34.6 / 122.3 / 31,318
    ("h200-sxm", 8, "auto", 1 * MiB, 53.0e9, 0.05),
    ("h200-sxm", 8, "auto", 16 * MiB, 240e9, 0.05),
    ("h200-sxm", 8, "auto", 8192 * MiB, 480e9, 0.05),
    # Azure ND GB200 v6, 4 GPUs of one tray, Ring: 27.2 / 78.4 / 18,884 us against
    # 19.5 / 76.0 / 18,948. At 1 MiB the profile's latency alone (6 steps of 3 us, an
    # estimate) is 18 of the measured 19.5 us, so the curve's floor makes it 39% slow.
    ("gb200-nvl72", 4, "ring", 1 * MiB, 80.5e9, 0.40),
    ("gb200-nvl72", 4, "ring", 16 * MiB, 331e9, 0.05),
    ("gb200-nvl72", 4, "ring", 8192 * MiB, 680e9, 0.05),
    # Azure ND MI300X v5 (RCCL, ring on the xGMI mesh). No curve: the alpha-beta model with
    # 14 steps of 5 us and 0.70 of 448 GB/s already gives 75.9 / 116.8 / 444 / 1,568 /
    # 48,005 us against 81.9 / 111.6 / 442 / 1,550 / 47,421.
    ("mi300x", 8, "auto", 1 * MiB, 22.4e9, 0.10),
    ("mi300x", 8, "auto", 8 * MiB, 131.6e9, 0.10),
    ("mi300x", 8, "auto", 64 * MiB, 266e9, 0.05),
    ("mi300x", 8, "auto", 256 * MiB, 303e9, 0.05),
    ("mi300x", 8, "auto", 8192 * MiB, 317e9, 0.05),
])
def test_library_all_reduce_reproduces_the_nccl_and_rccl_sweeps(profile, n, algorithm, size,
                                                                busbw, rel):
    model, measured = _all_reduce_time(profile, n, size, busbw, algorithm)
    assert model == pytest.approx(measured, rel=rel)


def test_mid_size_all_reduce_reaches_half_the_large_bus_bandwidth_on_nvlink_4_and_5():
    """The measured pattern the curve stands for: at 16 MiB busbw is half the 8 GiB value on
    H100, H200 and GB200 (234/479, 240/480, 331/680). The model agrees within 0.45-0.55,
    where the alpha-beta model without the curve said 0.78 (H100 NVLS) and 0.67 (GB200 ring)."""
    for profile, n, algorithm in (("h100-sxm", 8, "auto"), ("gb200-nvl72", 4, "ring")):
        mid, _ = _all_reduce_time(profile, n, 16 * MiB, 1.0, algorithm)
        large, _ = _all_reduce_time(profile, n, 8192 * MiB, 1.0, algorithm)
        ratio = (16 * MiB / mid) / (8192 * MiB / large)
        assert 0.45 < ratio < 0.55, (profile, ratio)
