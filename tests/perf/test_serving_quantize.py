"""Activation quantization in serving: a kernel per quantized GEMM input where the stack
does not fuse it into the producer, its bytes by hand, and the held-out vLLM NVFP4 check."""

from __future__ import annotations

import pytest

from simulator import load_hardware, load_model
from simulator.perf.ops import ComputeOp, Layout, OpKind
from simulator.perf.roofline import compute_op_time
from simulator.perf.serving_iteration import iteration_model
from simulator.perf.serving_quantize import separate_quantization
from simulator.profiles.catalog import load_stack
from simulator.profiles.precision import Precision

H, FFN, LAYERS = 4096, 14336, 32  # Llama 3.1 8B
# qkv, o_proj and gate_up read hidden-size rows; down reads ffn-size rows
ELEMENTS_PER_TOKEN_LAYER = H + H + H + FFN  # 26,624


def _quant_ops(model_id: str, precision: str, stack: str, tokens: int,
               layout: Layout | None = None) -> list[ComputeOp]:
    im = iteration_model(load_model(model_id), layout or Layout(tp=1), precision, "fp8",
                         activation_quant=load_stack(stack).activation_quant)
    return [op for op in im.body(tokens)
            if isinstance(op, ComputeOp) and op.kind is OpKind.QUANTIZE]


def test_nvfp4_inputs_get_one_kernel_per_gemm_reading_16_bits_writing_fp4_and_scales():
    ops = _quant_ops("llama3.1-8b", "fp4", "trtllm", 1000)
    assert sorted(op.name for op in ops) == sorted(
        ["attn.qkv.quantize_input", "attn.o_proj.quantize_input",
         "mlp.gate_up.quantize_input", "mlp.down.quantize_input"])
    assert sum(op.count for op in ops) == 4 * LAYERS
    elements = 1000 * ELEMENTS_PER_TOKEN_LAYER * LAYERS  # 851,968,000
    # read 2 B, write 0.5 B of fp4 + 1 e4m3 scale per 16 elements = 2.5625 B per element
    assert sum(op.bytes for op in ops) == pytest.approx(elements * 2.5625)


def test_fp8_inputs_write_one_byte_where_the_stack_runs_a_kernel_per_gemm():
    ops = _quant_ops("llama3.1-8b", "fp8", "vllm-0.6", 10)
    assert sum(op.bytes for op in ops) == pytest.approx(10 * ELEMENTS_PER_TOKEN_LAYER
                                                        * LAYERS * 3.0)


@pytest.mark.parametrize(("precision", "stack"), [
    ("fp8", "trtllm"),  # per-tensor scales fused into the producers
    ("bf16", "vllm-0.6"),  # nothing to quantize
    ("int4", "vllm-0.6"),  # weight-only kernels: 16-bit activations
    ("fp4", "ideal"),
])
def test_no_quantization_kernels_where_fused_or_not_quantized(precision, stack):
    assert _quant_ops("llama3.1-8b", precision, stack, 100) == []


def test_a_routed_expert_input_is_quantized_once_per_token_and_the_router_not_at_all():
    ops = {op.name: op for op in _quant_ops("mixtral-8x7b", "fp8", "vllm-0.6", 64)}
    assert "moe.router.quantize_input" not in ops
    gate_up = next(op for name, op in ops.items() if name.endswith("gate_up.quantize_input"))
    down = next(op for name, op in ops.items() if name.endswith("down.quantize_input"))
    # 64 tokens x hidden 4096 x 32 layers once, before the top-2 permute; down per copy
    assert gate_up.flops == pytest.approx(64 * 4096 * 32)
    assert down.flops == pytest.approx(64 * 2 * 14336 * 32)


def test_held_out_vllm_nvfp4_benchmark_on_b200():
    """physics_facts sec. 1 (vLLM PR 20646), M=8192, K=4096, N=6144: 136.2 us with the
    activation quant (3,025 TFLOP/s) and 109.0 us pre-quantized (3,779): 27.2 us."""
    elements = 8192 * 4096
    op = ComputeOp(name="q", kind=OpKind.QUANTIZE, flops=elements,
                   bytes=elements * 2.5625, precision=Precision.BF16)
    measured = 2 * 8192 * 6144 * 4096 * (1 / 3025e12 - 1 / 3779e12)
    assert compute_op_time(load_hardware("b200"), op).time_s == pytest.approx(measured, rel=0.2)


def test_a_stack_without_the_block_keeps_the_quantization_inside_the_producers():
    """A stack file written before ``activation_quant`` existed prices as it did then."""
    im = iteration_model(load_model("llama3.1-8b"), Layout(tp=1), "fp4", "fp8")
    assert not im.separate_quant
    assert not [op for op in im.body(100)
                if isinstance(op, ComputeOp) and op.kind is OpKind.QUANTIZE]
    assert separate_quantization(Precision.FP4, None) is False
    assert separate_quantization(Precision.FP4, load_stack("trtllm").activation_quant)
