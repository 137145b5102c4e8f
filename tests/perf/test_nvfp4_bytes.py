"""An fp4 element is NVFP4's: 4 bits plus its share of one E4M3 scale byte per 16 values.

physics_facts sec. 3 (TensorRT-LLM's one-sided all-to-all blog): an NVFP4 token of hidden
7,168 is 4,032 bytes, 7,168 x (0.5 + 1/16); BF16 is 14,336. Weights, KV caches and
exchanged activations stored in fp4 carry those scale bytes, so a weight-streaming decode
step at fp4 reads 12.5% more than 4 bits a weight.
"""

from __future__ import annotations

import pytest

from simulator import load_model
from simulator.perf.ops import Layout
from simulator.perf.opspec import Gemm
from simulator.perf.quantize_ops import NVFP4_BYTES
from simulator.perf.serving_iteration import iteration_model
from simulator.perf.transformer import _inference_prec
from simulator.profiles.precision import Precision


def test_an_fp4_element_carries_its_block_scale():
    assert Precision.FP4.bytes_per_element == 0.5 + 1.0 / 16.0  # 4.5 bits


def test_an_nvfp4_token_is_the_blogs_4032_bytes():
    assert 7168 * Precision.FP4.bytes_per_element == 4032.0
    assert 7168 * Precision.BF16.bytes_per_element == 14336.0


def test_the_activation_quantizer_writes_the_same_element():
    assert Precision.FP4.bytes_per_element == NVFP4_BYTES


def test_a_one_row_fp4_gemm_reads_weights_and_scales():
    p = _inference_prec(Precision.FP4, Precision.FP4, Precision.FP8)
    (op,) = Gemm(name="g", m=1, k=4096, n=4096).forward(p)
    # weights 4096 x 4096 x 0.5625 = 9,437,184 B; input and output rows 2 x 4096 x 0.5625
    assert op.bytes == pytest.approx(9_437_184 + 4_608, rel=1e-12)


def test_scout_decode_at_fp4_reads_every_expert_with_its_scales():
    """Llama 4 Scout on one GPU, 512 decode tokens: all 16 experts are touched
    (16·(1 - (15/16)^512) = 16 to 1e-14), 32 rows each; per layer the grouped GEMMs read
    16 x 5120 x (16384 + 8192) x 0.5625 B of weights, plus 512 rows x (5120 + 16384) and
    512 x (8192 + 5120) activation elements in and out, 48 layers."""
    model = load_model("llama4-scout")
    ops = iteration_model(model, Layout(tp=1, ep=1), "fp4", "fp8").body(512)
    got = sum(op.bytes for op in ops if op.name in ("moe.experts.gate_up", "moe.experts.down"))
    weights = 16 * 5120 * (16384 + 8192) * 0.5625
    activations = 512 * ((5120 + 16384) + (8192 + 5120)) * 0.5625
    assert got == pytest.approx(48 * (weights + activations), rel=1e-9)  # 54.8 GB a step
