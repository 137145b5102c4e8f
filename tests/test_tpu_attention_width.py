"""TPU attention fractions follow the MXU width: Trillium's MXU is 256 wide, v5e's and v5p's
128 (jax 0.10.2 ``tpu_info.py``: ``mxu_column_size``). Every Splash-attention matmul carries
the head dim (128 for the models run here) as its contraction or output width, so on v6e
half of the array works: 0.85 x 128/256 = 0.425; on v5e and v5p attention runs at the GEMM
fraction (the profiles set no attention block).
"""

from __future__ import annotations

import pytest

from simulator import load_hardware
from simulator.perf.ops import OpKind
from simulator.perf.roofline import large_efficiency

HEAD_DIM = 128


def test_v6e_attention_is_the_gemm_fraction_times_the_filled_width():
    hw = load_hardware("tpu-v6e")
    gemm = large_efficiency(hw, "bf16")
    assert gemm == 0.85
    for kind in (OpKind.ATTENTION, OpKind.ATTENTION_BACKWARD):
        assert large_efficiency(hw, "bf16", kind) == pytest.approx(gemm * HEAD_DIM / 256)
        assert large_efficiency(hw, "bf16", kind) == pytest.approx(0.425)


@pytest.mark.parametrize("name", ["tpu-v5e", "tpu-v5p"])
def test_128_wide_mxus_run_attention_at_the_gemm_fraction(name):
    hw = load_hardware(name)
    assert hw.efficiency.attention is None
    assert (large_efficiency(hw, "bf16", OpKind.ATTENTION)
            == large_efficiency(hw, "bf16") * HEAD_DIM / 128)


def test_the_v6e_source_names_the_width_and_the_case_that_prompted_it():
    attention = load_hardware("tpu-v6e").efficiency.attention
    assert attention is not None
    for part in (attention.forward, attention.backward):
        assert part.estimate
        assert "mxu_column_size 256" in part.source
        assert "informed by case T53" in part.source
