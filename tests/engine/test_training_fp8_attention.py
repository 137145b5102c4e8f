"""fp8 attention (``workload.fp8_attention``, Transformer Engine's fp8 dot-product
attention): the attention core's precision and efficiency, and the checks."""

from __future__ import annotations

import pytest

from simulator.loading import load_scenario
from simulator.perf.layouts import training_layout
from simulator.perf.ops import OpKind
from simulator.perf.roofline import large_efficiency, op_time
from simulator.perf.transformer import training_ops
from simulator.profiles.catalog import load_hardware
from simulator.profiles.precision import Precision
from tests.conftest import ROOT, assert_clean_error, run_cli

T = "scenarios/llama3.1-8b-h100-training.yaml"  # Llama 3.1 8B on 8 x H100
H100 = load_hardware("h100-sxm")
FA3_RATIO = (1200 / 1979) / (740 / 989)  # FA3: fp8 1.2 PFLOP/s vs 16-bit 740 TFLOP/s, H100


def test_fp8_attention_runs_at_its_own_fraction_of_the_fp8_peak():
    """H100: bf16 cuDNN attention 0.63 forward, 0.50 backward (measured); fp8 those times
    FA3's ratio of fractions, 0.81: 0.511 and 0.405."""
    fwd = large_efficiency(H100, Precision.FP8, OpKind.ATTENTION)
    bwd = large_efficiency(H100, Precision.FP8, OpKind.ATTENTION_BACKWARD)
    assert fwd == pytest.approx(0.63 * FA3_RATIO, abs=1e-3)
    assert bwd == pytest.approx(0.50 * FA3_RATIO, abs=1e-3)
    assert large_efficiency(H100, Precision.BF16, OpKind.ATTENTION) == 0.63
    # a profile without fp8 attention fractions keeps its bf16 ones
    mi300x = load_hardware("mi300x")
    assert mi300x.efficiency.attention is None or mi300x.efficiency.attention.fp8_forward is None


def _cores(fp8_attention: bool) -> list:
    scenario = load_scenario(ROOT / T, ["workload.precision=fp8"])
    w = scenario.workload
    ops = training_ops(scenario.model, training_layout(w), w.seq_len, w.micro_batch_size,
                       w.precision, "none", fp8_attention=fp8_attention)
    return [op for op in ops.forward + ops.backward
            if op.kind in (OpKind.ATTENTION, OpKind.ATTENTION_BACKWARD)]


def test_only_the_attention_core_changes_precision():
    plain, fp8 = _cores(False), _cores(True)
    assert [op.precision for op in plain] == [Precision.BF16] * len(plain)
    assert [op.precision for op in fp8] == [Precision.FP8] * len(fp8)
    assert [op.flops for op in fp8] == [op.flops for op in plain]
    # twice the peak at 0.81 of the fraction: the 8k-token cores, compute-bound, run
    # 1 / (2 x 0.81) = 0.62 of their bf16 time (within the size curve's small shift)
    for a, b in zip(plain, fp8, strict=True):
        ratio = op_time(H100, b).time_s / op_time(H100, a).time_s
        assert ratio == pytest.approx(1 / (2 * FA3_RATIO), rel=0.05)


@pytest.mark.parametrize(("assignments", "fragment"), [
    (["workload.fp8_attention=true"], "fp8_attention needs fp8 or fp4 GEMMs"),
    (["workload.precision=fp8", "workload.fp8_attention=true",
      "workload.flash_attention=false"], "fp8_attention needs flash_attention"),
    (["hardware=mi300x", "workload.precision=fp8", "workload.fp8_attention=true"],
     "mi300x has none in its profile"),
])
def test_bad_fp8_attention_is_one_clean_error(assignments, fragment):
    args = [a for assignment in assignments for a in ("--set", assignment)]
    assert_clean_error(run_cli("run", T, "--quiet", *args), fragment)


def test_the_roofline_view_runs_the_attention_core_in_fp8_as_the_step_does():
    """``xpusim roofline`` lists the attention cores at fp8 when the step runs them so: each
    shorter than the same core in bf16 (it had priced them in bf16 whatever the workload)."""
    from simulator.perf.roofline_view import roofline

    def core_rows(fp8: bool) -> list[float]:
        scenario = load_scenario(ROOT / T, ["workload.precision=fp8",
                                            f"workload.fp8_attention={str(fp8).lower()}"])
        return [r.time_s for r in roofline(scenario).rows if "attn.core" in r.name]

    fp8, bf16 = core_rows(True), core_rows(False)
    assert fp8 and len(fp8) == len(bf16)
    assert all(a < b for a, b in zip(fp8, bf16, strict=True))
