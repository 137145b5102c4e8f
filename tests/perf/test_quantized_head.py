"""A quantized checkpoint's 16-bit embedding and LM head (a stack's ``quantized_head: false``):
the bytes they add per device and the LM head GEMM at the 16-bit rate, worked out by hand."""

from __future__ import annotations

import pytest

from simulator import load_hardware, load_model
from simulator.loading import scenario_from_dict
from simulator.perf.footprint import inference_footprint, widened_head_bytes
from simulator.perf.ops import ComputeOp, Layout
from simulator.perf.roofline import compute_op_time
from simulator.perf.serving_iteration import iteration_model
from simulator.profiles.catalog import load_stack
from simulator.profiles.precision import Precision

VH = 128_256 * 4_096  # Llama 3.1 8B: vocab x hidden = 525,336,576 per matrix (untied)


@pytest.mark.parametrize(("precision", "tp", "pp", "expected"), [
    ("fp8", 1, 1, 1.0 * 2 * VH),  # embedding and head, 1 byte more each per element
    ("fp4", 1, 1, 1.4375 * 2 * VH),  # 2 - 0.5625 bytes (NVFP4: 4 bits + an 8-bit scale per 16)
    ("fp8", 2, 1, 1.0 * 2 * VH / 2),  # vocab-parallel over TP
    ("fp8", 1, 2, 1.0 * VH),  # an end stage holds one of the two
    ("bf16", 1, 1, 0.0),  # already 16-bit
    ("fp16", 4, 1, 0.0),
])
def test_widened_head_bytes_by_hand(precision, tp, pp, expected):
    got = widened_head_bytes(load_model("llama3.1-8b"), Precision(precision), tp, pp)
    assert got == pytest.approx(expected, rel=1e-12)


def _scenario(engine: str, precision: str = "fp8"):
    return scenario_from_dict({
        "name": "head", "hardware": "h100-sxm", "cluster": {"accelerators": 1},
        "model": "llama3.1-8b", "seed": 0,
        "workload": {"kind": "inference", "engine": engine, "precision": precision,
                     "kv_cache_precision": "fp8", "arrivals": {"process": "offline",
                                                               "requests": 10},
                     "prompt_tokens": 128, "output_tokens": 128}})


def test_the_trtllm_stack_keeps_the_head_16_bit_and_the_kv_cache_shrinks_by_it():
    assert load_stack("trtllm").head_16bit and not load_stack("ideal").head_16bit
    trt, ideal = (inference_footprint(_scenario(e)) for e in ("trtllm", "ideal"))
    # 1 extra byte per element of two 128,256 x 4,096 matrices: 1.0507 GB more weights
    assert trt.parts["weights"] - ideal.parts["weights"] == pytest.approx(2 * VH, rel=1e-12)
    assert trt.headroom == pytest.approx(ideal.headroom - 2 * VH, rel=1e-12)
    bf16 = (inference_footprint(_scenario(e, "bf16")) for e in ("trtllm", "ideal"))
    assert len({f.parts["weights"] for f in bf16}) == 1


def _lm_head(head_16bit: bool, precision: str = "fp8") -> ComputeOp:
    im = iteration_model(load_model("llama3.1-8b"), Layout(tp=1), precision, "fp8",
                         head_16bit=head_16bit)
    (op,) = [o for o in im.head(4096) if o.name == "lm_head"]
    assert isinstance(op, ComputeOp)
    return op


def test_a_16_bit_lm_head_runs_at_the_bf16_rate_and_reads_2_byte_weights():
    wide, narrow = _lm_head(True), _lm_head(False)
    assert (wide.precision, narrow.precision) == (Precision.BF16, Precision.FP8)
    assert wide.flops == narrow.flops == 2 * 4096 * VH
    # one more byte per element of the weights (VH), the inputs (4096 x 4096) and the
    # logits written (4096 x 128,256): a GEMM moves its operands at one element size
    assert wide.bytes - narrow.bytes == pytest.approx(VH + 4096 * 4096 + 4096 * 128_256,
                                                      rel=1e-12)
    h100 = load_hardware("h100-sxm")
    # 4096 rows are compute-bound: the ratio is fp8's sustained rate over bf16's,
    # 1,979 x 0.675 / (989 x 0.73) = 1.85 (peaks and gemm.large of the H100 profile)
    ratio = compute_op_time(h100, wide).time_s / compute_op_time(h100, narrow).time_s
    assert ratio == pytest.approx(1979 * 0.675 / (989 * 0.73), rel=0.03)


def test_bf16_weights_are_unchanged_by_the_flag():
    assert _lm_head(True, "bf16") == _lm_head(False, "bf16")
