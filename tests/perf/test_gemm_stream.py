"""`efficiency.gemm.stream`: a memory-bound GEMM reads its operands at its own fraction of
HBM bandwidth, slower than a copy; everything else keeps the copy's fraction."""

from __future__ import annotations

import pytest

from simulator.perf.ops import OpKind
from simulator.perf.roofline import op_rates
from simulator.profiles.catalog import load_hardware
from tests.conftest import assert_clean_error, edited_h100_profile, run_cli


def test_gemms_stream_at_the_gemm_fraction_other_kernels_at_the_copys():
    hw = load_hardware("h100-sxm")  # 3.35 TB/s, copy 0.90, GEMM stream 0.847
    assert op_rates(hw, "fp8", OpKind.GEMM).memory_rate == pytest.approx(3.35e12 * 0.847)
    assert op_rates(hw, "bf16", OpKind.GEMM).memory_rate == pytest.approx(3.35e12 * 0.847)
    for kind in (OpKind.ELEMENTWISE, OpKind.ATTENTION, OpKind.EMBEDDING):
        assert op_rates(hw, "bf16", kind).memory_rate == pytest.approx(3.35e12 * 0.90)
    assert op_rates(hw, "fp8", OpKind.QUANTIZE).memory_rate == pytest.approx(3.35e12 * 0.47)


def test_a_profile_without_a_stream_fraction_streams_gemms_at_the_copy_rate():
    hw = load_hardware("mi300x")  # no GEMM measurement of its own: no stream fraction
    assert hw.efficiency.gemm.stream is None
    assert op_rates(hw, "bf16", OpKind.GEMM).memory_rate == pytest.approx(5.3e12 * 0.775)


def test_a_decode_gemm_is_slower_by_the_ratio_of_the_two_fractions():
    """Llama 3 70B's gate/up projection at TP 8 for 16 decode tokens, fp8 on H100:
    weights 8192 x 3584 (29.4 MB) plus 16 x (8192 + 3584) activations (0.19 MB) = 29.55 MB;
    at 0.847 x 3.35 TB/s that is 10.41 us, at the copy's 0.90 it was 9.80 us."""
    rates = op_rates(load_hardware("h100-sxm"), "fp8", OpKind.GEMM)
    nbytes = 8192 * 3584 + 16 * (8192 + 3584)
    assert nbytes / rates.memory_rate == pytest.approx(10.41e-6, rel=1e-3)


@pytest.mark.parametrize(("value", "message"), [
    ("1.2", "efficiency.gemm.stream.value: must be at most 1"),
    ("0", "efficiency.gemm.stream.value: must be greater than 0"),
])
def test_a_stream_fraction_outside_zero_to_one_is_refused(tmp_path, value, message):
    bad = edited_h100_profile(tmp_path, "    stream: {value: 0.847,",
                              f"    stream: {{value: {value},")
    result = run_cli("validate", str(bad))
    assert_clean_error(result, message)
    assert len(result.err.strip().splitlines()) <= 2
