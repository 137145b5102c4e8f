"""Sliding-window and chunked attention layers against hand-derived spans and pairs.

A query whose full-attention layer reads n keys (itself included) reads min(n, W) on a
sliding layer and (n - 1) mod W + 1 on a chunked one. A prompt of n tokens covers
n(n+1)/2 pairs full, W(W+1)/2 + (n - W)·W sliding, and the sum of c(c+1)/2 over its
W-token chunks chunked. Every layer is priced at the layer average of these amounts.
"""

from __future__ import annotations

from functools import cache

import pytest

from simulator import load_hardware, load_model
from simulator.engine.serving.iteration_cost import IterationCost
from simulator.engine.serving.usage import Usage
from simulator.perf.local_attention import (
    attended_context,
    attended_prefill,
    pairs_through,
    span,
)
from simulator.perf.ops import ComputeOp, Layout
from simulator.perf.serving_iteration import iteration_model
from simulator.perf.transformer import decode_ops, prefill_ops, training_ops
from simulator.profiles.model import LayerAttention, LocalAttention, LocalKind

LOCAL, FULL = LayerAttention.LOCAL, LayerAttention.FULL
CHUNKED = LocalAttention(kind=LocalKind.CHUNKED, window=8192, pattern=[LOCAL], source="test")
SLIDING = LocalAttention(kind=LocalKind.SLIDING, window=128, pattern=[LOCAL], source="test")


@cache
def llama():
    return load_model("llama3.1-8b")


def with_local(local: LocalAttention | None):
    """Llama 3.1 8B (32 layers, full attention) with ``local`` attention."""
    return llama().model_copy(update={"local_attention": local})


def core(ops: list, field: str) -> float:
    """The forward attention cores' flops or bytes, all layers (an op's are its total)."""
    return sum(getattr(op, field) for op in ops
               if isinstance(op, ComputeOp) and op.name == "attn.core")


# ---- the span and the pairs ---------------------------------------------------------------
def test_a_chunked_layer_reads_its_own_chunk():
    # 20,000 tokens before it: 20,001 keys in full, 20,000 mod 8,192 + 1 = 3,617 chunked
    assert span(CHUNKED, 20_001) == 3_617
    assert span(CHUNKED, 8_192) == 8_192  # the last token of the first chunk
    assert span(CHUNKED, 8_193) == 1  # the first of the second reads only itself
    assert span(SLIDING, 20_001) == 128
    assert span(SLIDING, 100) == 100


def test_pairs_of_a_chunked_prompt_sum_its_chunks():
    # 20,000 = 8,192 + 8,192 + 3,616: 2·8,192·8,193/2 + 3,616·3,617/2
    assert pairs_through(CHUNKED, 20_000) == 2 * 8192 * 8193 / 2 + 3616 * 3617 / 2
    assert pairs_through(CHUNKED, 20_000) == 73_656_592
    # sliding 128 over 1,000 tokens: 128·129/2 + 872·128 = 8,256 + 111,616
    assert pairs_through(SLIDING, 1_000) == 119_872
    assert pairs_through(None, 1_000) == 1000 * 1001 / 2


@pytest.mark.parametrize("kind", list(LocalKind))
def test_closed_forms_match_the_sum_of_spans(kind):
    local = LocalAttention(kind=kind, window=7, pattern=[LOCAL], source="test")
    for n in range(0, 40):
        assert pairs_through(local, n) == sum(span(local, k) for k in range(1, n + 1))


# ---- pricing: decode, prefill, training ---------------------------------------------------
def test_decode_reads_the_chunk_not_the_context():
    tp1 = Layout()
    full = decode_ops(llama(), tp1, [20_001], "bf16", "bf16")
    chunked = decode_ops(with_local(CHUNKED), tp1, [20_001], "bf16", "bf16")
    assert core(chunked, "bytes") < core(full, "bytes")
    # per layer: 2 (K, V) x 8 heads x 128 x 2 bytes = 4,096 B a key; Q and O 32 heads x 128
    # x 2 bytes each, 32 layers
    q_and_o = 2 * 32 * 128 * 2
    assert core(full, "bytes") == pytest.approx(32 * (20_001 * 4_096 + q_and_o))
    assert core(chunked, "bytes") == pytest.approx(32 * (3_617 * 4_096 + q_and_o))
    assert core(chunked, "flops") == pytest.approx(core(full, "flops") * 3_617 / 20_001)


def test_alternating_layers_average_their_spans():
    # [local, full] over 32 layers: 16 of each; a decode token at 20,001 keys reads
    # (16·20,001 + 16·128)/32 keys per layer on average
    model = with_local(SLIDING.model_copy(update={"pattern": [LOCAL, FULL]}))
    assert model.local_layers == 16
    mean = (16 * 20_001 + 16 * 128) / 32
    full = decode_ops(llama(), Layout(), [20_001], "bf16", "bf16")
    mixed = decode_ops(model, Layout(), [20_001], "bf16", "bf16")
    assert core(mixed, "flops") == pytest.approx(core(full, "flops") * mean / 20_001)
    assert attended_context(model, 1, 20_001) == round(mean)


def test_prefill_pairs_of_a_chunked_prompt():
    full = prefill_ops(llama(), Layout(), [20_000], "bf16", "bf16", "bf16")
    chunked = prefill_ops(with_local(CHUNKED), Layout(), [20_000], "bf16", "bf16", "bf16")
    assert core(chunked, "flops") == pytest.approx(
        core(full, "flops") * 73_656_592 / (20_000 * 20_001 / 2))


def test_a_prompt_chunk_after_cached_tokens():
    # 1,000 new after 9,000 cached, chunked 8,192: positions 9,001..10,000 lie in the second
    # chunk at 809..1,808: pairs 1,808·1,809/2 - 808·809/2; cached keys read 9,000 - 8,192
    model = with_local(CHUNKED)
    pairs = 1808 * 1809 // 2 - 808 * 809 // 2
    assert attended_prefill(model, 1_000, 9_000, 1000 * 9000 + 1000 * 1001 // 2, 1) == (
        808, pairs)
    full = prefill_ops(llama(), Layout(), [1_000], "bf16", "bf16", "bf16", [9_000])
    chunked = prefill_ops(model, Layout(), [1_000], "bf16", "bf16", "bf16", [9_000])
    assert core(chunked, "flops") == pytest.approx(
        core(full, "flops") * pairs / (1000 * 9000 + 1000 * 1001 / 2))


def test_training_with_sliding_layers():
    # 4,096 tokens, window 128 on every layer: 128·129/2 + 3,968·128 pairs of 4,096·4,097/2
    full = training_ops(llama(), Layout(), 4096, 1, "bf16")
    sliding = training_ops(with_local(SLIDING), Layout(), 4096, 1, "bf16")
    ratio = (128 * 129 / 2 + 3968 * 128) / (4096 * 4097 / 2)
    assert core(sliding.forward, "flops") == pytest.approx(core(full.forward, "flops") * ratio)


def test_full_attention_is_unchanged():
    model = with_local(None)
    assert model.local_layers == 0
    assert attended_context(model, 4, 80_000) == 80_000
    assert attended_prefill(model, 100, 900, 12345, 1) == (900, 12345)


# ---- the serving engine ---------------------------------------------------------------------
def test_the_engine_prices_decode_at_the_attended_span():
    hw = load_hardware("h100-sxm")
    model = with_local(CHUNKED)
    cost = IterationCost(hw, iteration_model(model, Layout(), "bf16", "bf16"))
    plain = IterationCost(hw, iteration_model(llama(), Layout(), "bf16", "bf16"))
    batch, context = 8, 8 * 20_001
    local_s = cost.step_time(Usage(), 0, 0, 0, 0, batch, context)
    # the same as full attention over 3,617 keys a sequence
    assert local_s == pytest.approx(plain.step_time(Usage(), 0, 0, 0, 0, batch, 8 * 3_617))
    # a run of steps agrees with the steps one at a time (context grows by the batch)
    run = cost.run_price(batch, context, 3)
    for i in range(3):
        assert run.time_s[i] == pytest.approx(
            cost.step_time(Usage(), 0, 0, 0, 0, batch, context + i * batch))


# ---- the KV cache -------------------------------------------------------------------------
def test_sliding_layers_keep_only_their_window_in_the_kv_cache():
    from simulator.engine.serving.kv_cache import kv_capacity
    from simulator.loading import load_scenario
    from simulator.perf.local_attention import kv_held_fraction
    from tests.conftest import ROOT

    path = ROOT / "scenarios" / "llama3.1-8b-h100-serving.yaml"
    scenario = load_scenario(path, ["model=gpt-oss-20b"])
    full = scenario.model_copy(update={"model": scenario.model.model_copy(
        update={"local_attention": None})})
    # gpt-oss-20b: 12 sliding layers (window 128) of 24. A request holds on average its
    # prompt and half its output, 1,000 + 250/2 = 1,125 tokens: (12·1,125 + 12·128)/(24·1,125)
    held = (12 * 1125 + 12 * 128) / (24 * 1125)
    assert kv_held_fraction(scenario.model, 1125) == pytest.approx(held)
    layout = scenario.workload.parallelism
    ratio = kv_capacity(scenario, layout).blocks / kv_capacity(full, layout).blocks
    assert ratio == pytest.approx(1 / held, rel=1e-3)
    # chunked layers keep the whole context (no stack frees a finished chunk by default)
    assert kv_held_fraction(with_local(CHUNKED), 20_000) == 1.0


def test_a_disaggregated_transfer_sends_only_the_sliding_window():
    from simulator.engine.serving.disaggregation import KVTransfer, place
    from simulator.profiles.inference import InferenceParallelism

    par = InferenceParallelism(tp=1)
    places = place([par] * 2)
    hw = load_hardware("h100-sxm")
    local = load_model("gpt-oss-20b")
    full = local.model_copy(update={"local_attention": None})

    def transfer(model):
        return KVTransfer(hw=hw, model=model, kv_precision="fp8", prefill=par, decode=par,
                          prefill_places=places[:1], decode_places=places[1:])

    # 10,000 tokens: 12 full layers send 10,000, 12 sliding ones 128, as much as
    # (12·10,000 + 12·128)/24 = 5,064 tokens on every layer
    assert transfer(local).duration(0, 0, 10_000) == pytest.approx(
        transfer(full).duration(0, 0, 5_064))
