"""Speculative decoding's ops and memory (simulator.perf.speculative_ops), against hand
arithmetic: the expected-tokens formula, the verify pass's attention, the drafters'
weights and KV cache."""

from __future__ import annotations

import pytest

from simulator.perf.layouts import inference_layout
from simulator.perf.memory import kv_bytes_per_token
from simulator.perf.serving_iteration import iteration_model
from simulator.perf.speculative_ops import (
    drafter_memory,
    drafter_profile,
    expected_tokens,
    position_acceptance,
)
from simulator.profiles.catalog import load_model
from simulator.profiles.inference import InferenceParallelism
from simulator.profiles.params import count_params
from simulator.profiles.precision import Precision
from simulator.profiles.speculative import Speculative


def spec(**fields) -> Speculative:
    return Speculative.model_validate(fields)


@pytest.mark.parametrize(("a", "k"), [(0.8, 4), (0.6, 1), (0.9, 7), (0.3, 3), (0.0, 5)])
def test_expected_tokens_is_leviathans_closed_form_for_one_rate(a, k):
    # E = (1 - a^(k+1)) / (1 - a) (Leviathan et al. 2023, eq. 1)
    assert expected_tokens((a,) * k) == pytest.approx((1 - a ** (k + 1)) / (1 - a), rel=1e-12)


def test_expected_tokens_by_hand():
    assert expected_tokens((0.8,) * 4) == pytest.approx(1 + 0.8 + 0.64 + 0.512 + 0.4096)  # 3.3616
    # per position: 1 + a1 + a1·a2 + a1·a2·a3
    assert expected_tokens((0.9, 0.6, 0.5)) == pytest.approx(1 + 0.9 + 0.54 + 0.27)
    assert expected_tokens((0.0, 0.9)) == 1.0  # nothing past a rejected first draft


def test_mtp_acceptance_defaults_to_the_model_profiles_measured_rate():
    v3 = load_model("deepseek-v3")
    assert v3.mtp is not None and v3.mtp.depth == 1
    assert v3.mtp.acceptance is not None and v3.mtp.acceptance.value == 0.875
    assert "2412.19437" in v3.mtp.acceptance.source
    assert position_acceptance(spec(method="mtp", draft_tokens=2), v3) == (0.875, 0.875)
    assert position_acceptance(spec(method="mtp", draft_tokens=1, acceptance=0.7), v3) == (0.7,)


def _core(ops):
    [core] = [op for op in ops if op.name == "attn.core"]
    return core


def test_verify_attention_reads_each_sequences_cache_once_for_k_plus_one_queries():
    """Llama 3.1 70B, tp 8 (8 query heads and 1 K/V head of 128 per device), 80 layers,
    bf16 cache: 4 sequences, 4,000 cached keys in all, k = 4 (5 queries each)."""
    model = iteration_model(load_model("llama3.1-70b"),
                            inference_layout(InferenceParallelism(tp=8)), "bf16", "bf16")
    one, five = _core(model.decode_extra(4, 4000)), _core(model.decode_extra(4, 4000, 5))
    # pairs: 5 queries over 4,000 keys, the j-th also over j earlier drafts: 5·4000 + 4·(0+1+2+3+4)
    pairs = 5 * 4000 + 4 * 10
    assert five.flops == pytest.approx(80 * 2 * pairs * (128 + 128) * 8)
    assert one.flops == pytest.approx(80 * 2 * 4000 * 256 * 8)
    # KV read: (4,000 + 4·4 drafts) keys x K and V x 128 x 2 bytes, once per layer
    kv_five = 80 * (4000 + 16) * 2 * 128 * 2
    kv_one = 80 * 4000 * 2 * 128 * 2
    q_and_o = 80 * 2 * 8 * 128 * 2  # a query row and an output row per head, per token
    assert five.bytes == pytest.approx(kv_five + 20 * q_and_o)
    assert one.bytes == pytest.approx(kv_one + 4 * q_and_o)


def test_a_draft_model_holds_all_its_weights_and_its_own_kv_cache():
    target, draft = load_model("llama3.1-70b"), load_model("llama3.1-8b")
    s = spec(method="draft_model", draft_model="llama3.1-8b", draft_tokens=4, acceptance=0.8)
    weights, kv = drafter_memory(s, target, weight_precision=Precision.BF16,
                                 kv_precision=Precision.BF16, tp=8)
    assert weights == pytest.approx(2 * draft.params_total / 8)  # bf16, sharded over tp 8
    assert draft.params_total == pytest.approx(8.03e9, rel=0.01)  # the published count
    assert kv == 32 * 2 * 1 * 128 * 2  # 32 layers, K and V, 1 K/V head per device, bf16


def test_an_eagle_head_holds_one_layer_and_its_projection_not_the_embedding_or_head():
    target = load_model("llama3.1-70b")
    s = spec(method="eagle", draft_tokens=3, acceptance=0.7)
    weights, kv = drafter_memory(s, target, weight_precision=Precision.BF16,
                                 kv_precision=Precision.BF16, tp=8)
    h, f = 8192, 28672
    attention = h * (8192 + 2 * 1024) + 8192 * h  # QKV (64 + 2·8 heads of 128), output
    mlp = 3 * h * f  # gate, up, down
    norms = 3 * h  # two in the layer, the final one
    params = (attention + mlp + norms) / 8 + 2 * h * h  # the 2h -> h projection, replicated
    assert weights == pytest.approx(2 * params)
    assert kv == 1 * 2 * 1 * 128 * 2  # one layer


def test_deepseek_mtp_module_matches_the_published_size():
    """DeepSeek-V3's checkpoint is 671B + 14B of MTP module (report, sec. 2.2); the module's
    own copies of the embedding and the head (129,280 x 7,168 each) are shared in serving."""
    v3 = load_model("deepseek-v3")
    module = drafter_profile(spec(method="mtp", draft_tokens=1), v3)
    assert (module.layers, module.moe_layers) == (1, 1)
    counts = count_params(module)
    own = counts.total - counts.embedding - counts.lm_head + 2 * 7168 * 7168
    assert own == pytest.approx(14e9 - 2 * 129280 * 7168, rel=0.08)
    weights, kv = drafter_memory(spec(method="mtp", draft_tokens=2), v3,
                                 weight_precision=Precision.FP8, kv_precision=Precision.FP8,
                                 tp=1)
    assert weights == pytest.approx(own)  # fp8: one byte a parameter, one module
    assert kv == kv_bytes_per_token(v3, "fp8") / 61  # one layer's latent and RoPE key
