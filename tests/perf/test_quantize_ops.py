"""Low-precision training's quantization passes: bytes by recipe, and the measured overheads
of Transformer Engine's gemm_profiling worked examples they reproduce."""

from __future__ import annotations

import pytest

from simulator.perf.layouts import training_layout
from simulator.perf.ops import OpKind
from simulator.perf.opspec import Gemm, Prec
from simulator.perf.quantize_ops import Quantize, training_recipe
from simulator.perf.roofline import op_time
from simulator.perf.transformer import training_ops
from simulator.profiles.catalog import load_hardware, load_model
from simulator.profiles.precision import Precision
from simulator.profiles.training import TrainingWorkload

P = Prec(weight=Precision.FP8, act=Precision.FP8, compute=Precision.FP8, kv=Precision.FP8,
         other=Precision.BF16)
G = Gemm(name="g", m=100, k=10, n=20)  # X 1,000 elements, W 200, dY 2,000


def _cost(op):
    return op.bytes, op.count


@pytest.mark.parametrize(("precision", "recipe", "hopper", "x", "dy", "w"), [
    # delayed on Hopper: read 2 B, write the fp8 copy and its transpose (1 + 1 B)
    ("fp8", "delayed", True, (1000 * 4.0, 1), (2000 * 4.0, 1), (200 * 4.0, 1)),
    # delayed on Blackwell: one copy serves both GEMMs: read 2, write 1
    ("fp8", "delayed", False, (1000 * 3.0, 1), (2000 * 3.0, 1), (200 * 3.0, 1)),
    # current scaling: amax pass and cast pass read twice: 2·2 + 1
    ("fp8", "current", False, (1000 * 5.0, 2), (2000 * 5.0, 2), (200 * 5.0, 2)),
    # MXFP8: one read, rowwise and columnwise copies with an e8m0 scale per 32
    ("fp8", "mxfp8", False, (1000 * (2 + 2 * (1 + 1 / 32)), 1),
     (2000 * (2 + 2 * (1 + 1 / 32)), 1), (200 * (2 + 2 * (1 + 1 / 32)), 1)),
    # 1x128 blocks with fp32 scales
    ("fp8", "block", True, (1000 * (2 + 2 * (1 + 4 / 128)), 1),
     (2000 * (2 + 2 * (1 + 4 / 128)), 1), (200 * (2 + 2 * (1 + 4 / 128)), 1)),
    # NVFP4: amax + cast (2 reads) per copy set; X and dY's columnwise copy goes through the
    # Hadamard transform with its own amax and cast (2 more reads); 0.5 B + e4m3 per 16.
    # The weight's 2D scaling serves both copies from one pair of reads.
    ("fp4", "delayed", False, (1000 * (4 * 2 + 2 * (0.5 + 1 / 16)), 4),
     (2000 * (4 * 2 + 2 * (0.5 + 1 / 16)), 4), (200 * (2 * 2 + 2 * (0.5 + 1 / 16)), 2)),
])
def test_quantization_bytes_follow_the_recipe(precision, recipe, hopper, x, dy, w):
    q = Quantize(gemm=G, recipe=training_recipe(precision, recipe, hopper))
    assert _cost(q.forward(P)[0]) == pytest.approx(x)
    assert _cost(q.backward(P)[0]) == pytest.approx(dy)
    assert _cost(q.weight(P)) == pytest.approx(w)


def test_a_frozen_weight_needs_no_columnwise_activation_copies():
    """LoRA: no weight gradient, so X and dY are quantized rowwise only (2 + 1 B each)."""
    frozen = Gemm(name="g", m=100, k=10, n=20, frozen=True)
    q = Quantize(gemm=frozen, recipe=training_recipe("fp8", "delayed", True))
    assert q.forward(P)[0].bytes == pytest.approx(1000 * 3.0)
    assert q.backward(P)[0].bytes == pytest.approx(2000 * 3.0)
    assert q.weight(P).bytes == pytest.approx(200 * 4.0)  # W still needs its dgrad transpose


def test_sixteen_bit_training_quantizes_nothing():
    assert training_recipe("bf16", "delayed", True) is None


# TE gemm_profiling (physics_facts §2): a 5B-class layer, hidden 4096, FFN 16384 (not gated),
# MHA, M = 31 x 512 = 15,872 tokens. Per layer, fwd + bwd: (autocast ms, pre-quantized ms).
TE_LAYER = [Gemm(name=n, m=15872, k=k, n=out) for n, k, out in
            [("qkv", 4096, 12288), ("proj", 4096, 4096), ("fc1", 4096, 16384),
             ("fc2", 16384, 4096)]]


@pytest.mark.parametrize(("profile", "precision", "recipe", "autocast", "kernels"), [
    ("h200-sxm", "fp8", "current", 20.29, 16.79),  # measured ratio 1.208
    ("h200-sxm", "fp8", "delayed", 18.98, 16.79),  # 1.130 (same GEMMs as current)
    ("gb300-nvl72", "fp8", "current", 9.15, 6.81),  # B300 die: 1.344
    ("gb300-nvl72", "fp8", "delayed", 7.80, 6.81),  # 1.145
    ("gb300-nvl72", "fp8", "mxfp8", 8.98, 7.16),  # 1.254
    ("gb300-nvl72", "fp4", "delayed", 6.45, 3.76),  # NVFP4: 1.715
])
def test_quantization_reproduces_the_measured_autocast_overheads(profile, precision, recipe,
                                                                  autocast, kernels):
    """Pre-quantized GEMM time plus the priced quantization passes (the benchmark casts the
    weights on every call) over the pre-quantized time is the measured autocast ratio within
    10%: one ``quantize`` fraction per architecture explains every recipe's overhead."""
    hw = load_hardware(profile)
    recipe_ = training_recipe(precision, recipe, hw.compute.fp8_transposed_copies)
    ops = []
    for gemm in TE_LAYER:
        q = Quantize(gemm=gemm, recipe=recipe_)
        ops += [*q.forward(P), *q.backward(P), q.weight(P)]
    overhead_ms = sum(op_time(hw, op).time_s for op in ops) * 1e3
    assert (kernels + overhead_ms) / kernels == pytest.approx(autocast / kernels, rel=0.10)


def test_fp8_training_ops_carry_quantization_per_gemm_and_weights_per_step():
    model = load_model("llama3.1-8b")
    w = TrainingWorkload(kind="training", precision="fp8", seq_len=4096, global_batch_size=8)
    recipe = training_recipe("fp8", "delayed", True)
    ops = training_ops(model, training_layout(w), 4096, 1, "fp8", quantization=recipe)
    plain = training_ops(model, training_layout(w), 4096, 1, "fp8")
    quant = [op for op in ops.forward if getattr(op, "kind", None) is OpKind.QUANTIZE]
    # attention (qkv, o) and the gated MLP (gate+up, down): four GEMMs per layer
    assert [op.name for op in quant] == ["attn.qkv.quantize_input", "attn.o_proj.quantize_input",
                                         "mlp.gate_up.quantize_input",
                                         "mlp.down.quantize_input"]
    assert all(op.count == model.layers for op in quant)
    assert len(ops.step) == 4 and not plain.step
    assert len(ops.forward) == len(plain.forward) + 4
    assert len(ops.backward) == len(plain.backward) + 4
