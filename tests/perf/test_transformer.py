"""Transformer op counts against hand-derived formulas.

Expected values are written out from the model's shapes (or published parameter counts), not
taken from the code, so that a changed convention fails here. Conventions checked:
  training FLOPs/token = 6·N + 7·L·(s+1)·a·(d_qk + d_v)/2, where N counts every GEMM weight
  (embedding lookups excluded, LM head included): forward 2N, backward 4N (Kaplan et al.
  2020; Narayanan et al. 2021). Attention: QK^T and PV cost 2·(d_qk + d_v) per (query, key)
  pair and head; causal self-attention over s tokens has s(s+1)/2 pairs, i.e. (s+1)/2 per
  token; forward + FlashAttention-2 backward (2.5x) is 3.5x the forward.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache

import pytest

from simulator import load_hardware, load_model
from simulator.perf.mlp_ops import experts_touched
from simulator.perf.ops import GEMM_KINDS, Collective, CommOp, ComputeOp, Layout, OpKind
from simulator.perf.roofline import compute_op_time
from simulator.perf.transformer import (
    RECOMPUTE_PREFIX,
    StageLayers,
    decode_ops,
    prefill_ops,
    training_ops,
)
from simulator.profiles.params import count_params


@cache
def hw_gb200():
    return load_hardware("gb200-nvl72")


@cache
def model(name: str):
    return load_model(name)


def flops(ops, prefix: str = "", kind: OpKind | None = None) -> float:
    return sum(o.flops for o in ops if isinstance(o, ComputeOp) and o.name.startswith(prefix)
               and kind in (None, o.kind))


def nbytes(ops, prefix: str = "") -> float:
    return sum(o.bytes for o in ops if isinstance(o, ComputeOp) and o.name.startswith(prefix))


def gemm_flops(ops) -> float:
    return sum(o.flops for o in ops if isinstance(o, ComputeOp) and o.kind in GEMM_KINDS)


def comms(ops) -> list[CommOp]:
    return [o for o in ops if isinstance(o, CommOp)]


def gemm_params(m, active: bool) -> float:
    """Weights every token multiplies: all parameters minus the embedding lookups, plus the
    LM head (the embedding matrix again when tied)."""
    c = count_params(m)
    total = c.active if active else c.total
    return total - c.embedding - c.lm_head + m.vocab_size * m.hidden_size


def attention_dims(m) -> tuple[int, int]:
    """(d_qk, d_v) per head."""
    if m.mla is not None:
        return m.mla.qk_nope_head_dim + m.mla.qk_rope_head_dim, m.mla.v_head_dim
    return m.head_dim_resolved, m.head_dim_resolved


# ---- training FLOPs per token -----------------------------------------------------------
@pytest.mark.parametrize(("name", "seq", "moe"), [
    ("llama3.1-8b", 8192, False), ("gpt3-175b", 2048, False),
    ("deepseek-v3", 4096, True), ("mixtral-8x7b", 4096, True),
])
def test_training_flops_per_token_match_6n_plus_attention(name, seq, moe):
    m = model(name)
    d_qk, d_v = attention_dims(m)
    n = gemm_params(m, active=moe)
    attention_fwd = m.layers * (seq + 1) * m.attention_heads * (d_qk + d_v)  # 2·pairs/token·…
    ops = training_ops(m, Layout(), seq, 2, "bf16")
    tokens = 2 * seq
    fwd = flops(ops.forward) / tokens
    total = (flops(ops.forward) + flops(ops.backward)) / tokens
    assert fwd == pytest.approx(2 * n + attention_fwd, rel=0.02)
    assert total == pytest.approx(6 * n + 3.5 * attention_fwd, rel=0.02)


def test_moe_uses_active_not_total_parameters():
    m = model("mixtral-8x7b")
    ops = training_ops(m, Layout(), 4096, 1, "bf16")
    per_token = flops(ops.forward, "moe.experts", OpKind.GEMM) / 4096
    expert = 3 * m.hidden_size * m.moe.expert_ffn_size
    assert per_token == pytest.approx(2 * m.layers * m.moe.active_experts * expert, rel=1e-9)


# ---- recomputation ------------------------------------------------------------------------
def test_selective_recompute_adds_exactly_the_attention_core_forward():
    m = model("llama3.1-8b")
    none = training_ops(m, Layout(tp=2), 4096, 1, "bf16", "none")
    sel = training_ops(m, Layout(tp=2), 4096, 1, "bf16", "selective")
    core = flops(none.forward, "attn.core")
    assert core == pytest.approx(m.layers * 4096 * 4097 / 2 * 4 * 128 * 16)
    assert flops(sel.backward) - flops(none.backward) == pytest.approx(core)
    assert {o.name for o in sel.recompute} == {RECOMPUTE_PREFIX + "attn.core"}
    assert not none.recompute


def test_full_recompute_adds_one_whole_forward_of_the_layers():
    m = model("deepseek-v3")
    # 3 dense + 5 MoE
    stage = StageLayers(first_layer=0, layers=8, embedding=False, lm_head=False)
    layout = Layout(tp=4, ep=8, sequence_parallel=True)
    none = training_ops(m, layout, 4096, 1, "bf16", "none", stage=stage)
    full = training_ops(m, layout, 4096, 1, "bf16", "full", stage=stage)
    assert flops(full.recompute) == pytest.approx(flops(none.forward))
    assert nbytes(full.recompute) == pytest.approx(nbytes(none.forward))
    assert len(comms(full.recompute)) == len(comms(none.forward)) > 0
    assert flops(full.backward) - flops(none.backward) == pytest.approx(flops(none.forward))


def test_backward_is_twice_the_forward_gemms_and_2_5x_attention():
    m = model("llama3.1-70b")
    ops = training_ops(m, Layout(tp=8), 4096, 1, "bf16")
    assert gemm_flops(ops.backward) == pytest.approx(2 * gemm_flops(ops.forward))
    assert flops(ops.backward, "attn.core") == pytest.approx(2.5 * flops(ops.forward,
                                                                         "attn.core"))


def test_lora_drops_base_weight_gradients_and_adds_adapters():
    m = model("llama3.1-8b")
    rank, seq = 16, 4096
    base = training_ops(m, Layout(), seq, 1, "bf16")
    lora = training_ops(m, Layout(), seq, 1, "bf16", lora=(rank, ("q", "v")))
    wgrads = [o.name for o in lora.backward if o.name.endswith(".wgrad")]
    assert wgrads and all(name.startswith("lora.") for name in wgrads)
    # adapters: x·A (h→r) and ·B (r→out) for q (out 4096) and v (out 8·128); 3 passes
    adapters = 2 * seq * rank * ((4096 + 4096) + (4096 + 1024)) * m.layers
    assert flops(lora.forward, "lora.") == pytest.approx(adapters)
    assert flops(lora.backward, "lora.") == pytest.approx(2 * adapters)
    base_gemms = gemm_flops(base.forward)
    assert gemm_flops(lora.backward) == pytest.approx(base_gemms + 2 * adapters)


def test_bytes_of_gemms_gradients_and_fused_norms():
    m = model("llama3.1-8b")
    h, f, s_, layers = 4096, 14336, 2048, 32
    ops = training_ops(m, Layout(tp=2), s_, 1, "bf16")
    down = next(o for o in ops.forward if o.name == "mlp.down")
    # weight (f/2 x h) once per layer, input (s x f/2) read, output (s x h) written, bf16
    assert down.bytes == pytest.approx(layers * 2 * (f / 2 * h + s_ * (f / 2 + h)))
    wgrad = next(o for o in ops.backward if o.name == "mlp.down.wgrad")
    # reads input and output grad (bf16), reads and writes the fp32 main gradient
    assert wgrad.bytes == pytest.approx(layers * (2 * s_ * (f / 2 + h) + 8 * f / 2 * h))
    norm = next(o for o in ops.forward if o.name == "attn.norm")
    # residual add fused: read stream and block output, write stream and normalized copy
    assert norm.bytes == pytest.approx(layers * (4 * s_ * h * 2 + h * 2))


# ---- decode ------------------------------------------------------------------------------
def test_decode_batch1_70b_tp8_is_weight_bandwidth_bound():
    m, hw = model("llama3.1-70b"), load_hardware("h100-sxm")
    ops = decode_ops(m, Layout(tp=8), [1024], "bf16", "bf16")
    compute = [o for o in ops if isinstance(o, ComputeOp)]
    times = [compute_op_time(hw, o) for o in compute]
    step = sum(max(t.compute_s, t.memory_s) for t in times)
    # weights (embedding table excepted: only one row is read) over 8 GPUs at 3.35 TB/s x 0.9
    weights = 2 * (m.params_total - m.vocab_size * m.hidden_size) / 8
    assert step == pytest.approx(weights / (3.35e12 * 0.9), rel=0.10)
    assert sum(t.memory_s for t in times) > 10 * sum(t.compute_s for t in times)
    assert all(t.bound == "memory" for o, t in zip(compute, times, strict=True)
               if o.kind is OpKind.GEMM)


def test_decode_kv_read_llama70b_matches_hand_formula():
    m = model("llama3.1-70b")
    ctx = [4096, 1000]
    for tp, kv_per_device in [(1, 8), (8, 1)]:
        ops = decode_ops(m, Layout(tp=tp), ctx, "bf16", "fp8")
        kv = 2 * kv_per_device * 128 * 80 * 1 * sum(ctx)  # K and V, fp8
        q_and_o = 2 * len(ctx) * (64 // tp) * 128 * 2 * 80  # bf16 query in, output out
        assert nbytes(ops, "attn.core") == pytest.approx(kv + q_and_o, rel=1e-9)


def test_decode_kv_read_deepseek_v3_is_the_latent():
    m = model("deepseek-v3")
    ctx = [8192, 3000, 100]
    ops = decode_ops(m, Layout(), ctx, "fp8", "bf16")
    kv = (512 + 64) * 61 * 2 * sum(ctx)
    q_and_o = len(ctx) * 128 * ((512 + 64) + 512) * 2 * 61  # queries and outputs in latent
    assert nbytes(ops, "attn.core") == pytest.approx(kv + q_and_o, rel=1e-9)
    # absorbed attention: 2·ctx·(r + rope) + 2·ctx·r FLOPs per head
    assert flops(ops, "attn.core") == pytest.approx(2 * sum(ctx) * 128 * (576 + 512) * 61)


def test_decode_moe_reads_only_the_experts_its_tokens_touch():
    m = model("deepseek-v3")
    expert_bytes = 3 * 7168 * 2048 * 1  # fp8 weights of one expert
    ops = decode_ops(m, Layout(), [2048], "fp8", "bf16")
    assert nbytes(ops, "moe.experts.gate_up") + nbytes(ops, "moe.experts.down") == \
        pytest.approx(58 * 8 * expert_bytes, rel=0.01)  # one token: its 8 experts
    ops = decode_ops(m, Layout(), [2048] * 64, "fp8", "bf16")
    touched = 256 * (1 - (1 - 8 / 256) ** 64)
    assert experts_touched(256, 8, 64) == pytest.approx(touched)
    assert nbytes(ops, "moe.experts.gate_up") + nbytes(ops, "moe.experts.down") == \
        pytest.approx(58 * touched * expert_bytes, rel=0.02)


# ---- prefill -----------------------------------------------------------------------------
def test_chunked_prefill_attends_to_the_cached_context_and_writes_the_chunk():
    m = model("llama3.1-8b")
    ops = prefill_ops(m, Layout(), [512], "bf16", "bf16", "bf16", context_before=[1024])
    pairs = 512 * 1024 + 512 * 513 / 2
    assert flops(ops, "attn.core") == pytest.approx(2 * pairs * 256 * 32 * 32)
    written = 512 * 2 * 8 * 128 * (2 + 2) * 32  # new K/V read in bf16, stored in bf16
    assert nbytes(ops, "attn.kv_cache_write") == pytest.approx(written)
    lm_head = [o for o in ops if o.name == "lm_head"]
    assert lm_head[0].flops == pytest.approx(2 * 1 * 4096 * 128256)  # last token only


# ---- sharding ----------------------------------------------------------------------------
def test_tp_halves_gemm_flops_and_weight_bytes_per_device():
    m = model("llama3.1-70b")
    previous = None
    for tp in (1, 2, 4, 8):
        ops = prefill_ops(m, Layout(tp=tp), [2048, 1024], "bf16", "bf16", "bf16")
        now = gemm_flops(ops), flops(ops, "attn.core")
        if previous:
            assert now[0] == pytest.approx(previous[0] / 2)
            assert now[1] == pytest.approx(previous[1] / 2)
        previous = now


def test_tp_issues_two_all_reduces_per_layer_each_way():
    m = model("llama3.1-8b")
    size = 4096 * 4096 * 2
    ops = training_ops(m, Layout(tp=4), 4096, 1, "bf16",
                       stage=StageLayers(embedding=False, lm_head=False))
    for ops_ in (ops.forward, ops.backward):
        ars = [c for c in comms(ops_) if c.collective is Collective.ALL_REDUCE]
        assert sum(c.count for c in ars) == 2 * 32
        assert all(c.bytes == size and c.group.size == 4 for c in ars)
    sp = training_ops(m, Layout(tp=4, sequence_parallel=True), 4096, 1, "bf16",
                      stage=StageLayers(embedding=False, lm_head=False))
    for kind in (Collective.ALL_GATHER, Collective.REDUCE_SCATTER):
        sent = [c for c in comms(sp.forward) if c.collective is kind]
        assert sum(c.count for c in sent) == 2 * 32 and all(c.bytes == size for c in sent)


def test_ep_divides_expert_flops_of_a_fixed_batch_and_sends_two_all_to_alls():
    m = model("deepseek-v3")
    one = prefill_ops(m, Layout(), [4096] * 8, "fp8", "bf16", "bf16")
    eight = prefill_ops(m, Layout(ep=8), [4096], "fp8", "bf16", "bf16")
    assert flops(eight, "moe.experts") == pytest.approx(flops(one, "moe.experts") / 8)
    assert nbytes(eight, "moe.experts") < nbytes(one, "moe.experts") / 7
    a2a = [c for c in comms(eight) if c.collective is Collective.ALL_TO_ALL]
    assert sum(c.count for c in a2a) == 2 * 58
    assert all(c.bytes == 4096 * 8 * 7168 * 2 and c.group.size == 8 for c in a2a)


def test_cp_splits_attention_and_gathers_kv():
    m = model("llama3.1-8b")
    one = training_ops(m, Layout(), 16384, 1, "bf16")
    cp = training_ops(m, Layout(cp=4), 16384, 1, "bf16")
    assert flops(cp.forward, "attn.core") == pytest.approx(flops(one.forward, "attn.core") / 4)
    gathers = [c for c in comms(cp.forward) if c.name == "attn.cp_kv_all_gather"]
    assert gathers[0].count == 32 and gathers[0].group.size == 4
    assert gathers[0].bytes == 16384 * 2 * 8 * 128 * 2


def test_ring_attention_runs_one_kernel_per_cp_step():
    # TE's ring attention: cp kernels per core (local block, then one per received K/V
    # chunk), each 1/cp of the rank's causal attention, forward and backward
    m = model("llama3.1-8b")
    cp = training_ops(m, Layout(cp=4), 8192, 1, "bf16")
    for direction, name in ((cp.forward, "attn.core"), (cp.backward, "attn.core.backward")):
        core = next(o for o in direction if o.name == name)
        assert core.count == 32 * 4
        # per layer: 2 FLOPs x 8192*8193/2/4 pairs x (128 + 128) x 32 heads, split in 4
        per_layer = 2 * 8192 * 8193 / 2 / 4 * 256 * 32
        factor = 1.0 if name == "attn.core" else 2.5  # FlashAttention-2 backward
        assert core.gemm_flops_each == pytest.approx(factor * per_layer / 4)
    one = training_ops(m, Layout(), 8192, 1, "bf16")
    assert next(o for o in one.forward if o.name == "attn.core").count == 32
    slower = compute_op_time(hw_gb200(), next(o for o in cp.forward if o.name == "attn.core"))
    whole = replace(next(o for o in cp.forward if o.name == "attn.core"), count=32,
                    gemm_flops_each=per_layer)
    assert slower.time_s > compute_op_time(hw_gb200(), whole).time_s  # smaller kernels


def test_ring_attention_merges_each_later_step():
    m = model("llama3.1-8b")
    cp = training_ops(m, Layout(cp=4), 8192, 1, "bf16")
    merge = next(o for o in cp.forward if o.name == "attn.cp_merge")
    back = next(o for o in cp.backward if o.name == "attn.cp_merge.backward")
    out = 2048 * 32 * 128 * 2  # the rank's 2048 queries x 32 heads x 128, bf16
    lse = 2048 * 32 * 4  # one fp32 log-sum-exp per query and head
    kv_chunk = 8192 * 2 * 8 * 128 * 2 / 4  # one received K/V chunk (8 K/V heads)
    assert merge.count == back.count == 32 * 3  # 3 merges after the local step, per layer
    assert merge.bytes == pytest.approx(32 * 3 * 3 * (out + lse))  # read 2, write 1
    assert back.bytes == pytest.approx(32 * 3 * 3 * (out + kv_chunk))  # dQ and dK/dV sums
    one = training_ops(m, Layout(), 8192, 1, "bf16")
    assert not [o for o in one.forward if o.name == "attn.cp_merge"]


def test_pipeline_stages_split_layers_and_ends():
    m = model("deepseek-v3")
    stages = [StageLayers.of([16, 15, 15, 15], i) for i in range(4)]
    assert stages[0] == StageLayers(first_layer=0, layers=16, embedding=True, lm_head=False)
    assert stages[3] == StageLayers(first_layer=46, layers=15, embedding=False, lm_head=True)
    whole = training_ops(m, Layout(), 1024, 1, "bf16")
    parts = [training_ops(m, Layout(), 1024, 1, "bf16", stage=s) for s in stages]
    assert sum(flops(p.forward) for p in parts) == pytest.approx(flops(whole.forward))
    first = [o.name for o in parts[0].forward]
    assert "embedding" in first and "lm_head" not in first
    assert flops(parts[0].forward, "moe.") < flops(parts[1].forward, "moe.")  # 3 dense


def test_bad_arguments_are_rejected():
    m = model("llama3.1-8b")
    with pytest.raises(ValueError, match="recompute"):
        training_ops(m, Layout(), 1024, 1, "bf16", "partial")
    with pytest.raises(ValueError, match="imbalance"):
        decode_ops(m, Layout(), [10], "bf16", "bf16", imbalance=0.5)
    with pytest.raises(ValueError, match="context_lens"):
        decode_ops(m, Layout(), [], "bf16", "bf16")
    with pytest.raises(ValueError, match="LoRA target"):
        training_ops(m, Layout(), 1024, 1, "bf16", lora=(8, ("qkv",)))
