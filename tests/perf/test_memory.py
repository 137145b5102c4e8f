"""Memory footprint per device, against hand-derived formulas."""

from __future__ import annotations

import pytest

from simulator import load_hardware, load_model, scenario_from_dict
from simulator.perf.footprint import inference_footprint, training_footprint
from simulator.perf.memory import (
    BYTES_OPTIMIZER,
    activation_bytes_per_layer,
    inflight_microbatches,
    kv_bytes_per_token,
    runtime_reserve,
    stage_params,
)
from simulator.profiles.precision import Precision


def serving(model, hardware, accelerators, tp, precision="bf16", **workload):
    return scenario_from_dict({
        "name": "t", "hardware": hardware, "cluster": {"accelerators": accelerators},
        "model": model,
        "workload": {"kind": "inference", "precision": precision, "parallelism": {"tp": tp},
                     "arrivals": {"process": "offline", "requests": 1},
                     "prompt_tokens": 1000, "output_tokens": 100, **workload},
    })


def training(model, hardware, accelerators, **workload):
    base = {"kind": "training", "seq_len": 2048, "global_batch_size": 64,
            "recompute": "selective"}
    return scenario_from_dict({
        "name": "t", "hardware": hardware, "cluster": {"accelerators": accelerators},
        "model": model, "workload": {**base, **workload},
    })


def test_kv_bytes_per_token_gqa_by_hand():
    """Llama 3.1 70B: 2 (K,V) x 8 kv heads x 128 dims x 80 layers x 2 bytes = 327,680 B."""
    m = load_model("llama3.1-70b")
    assert kv_bytes_per_token(m, Precision.BF16) == 2 * 8 * 128 * 80 * 2
    assert kv_bytes_per_token(m, Precision.FP8) == 2 * 8 * 128 * 80
    # TP8: one KV head per device; TP16 would replicate heads, never go below one
    assert kv_bytes_per_token(m, Precision.BF16, tp=8) == 2 * 1 * 128 * 80 * 2
    assert kv_bytes_per_token(m, Precision.BF16, tp=16) == 2 * 1 * 128 * 80 * 2


def test_kv_bytes_per_token_mla_by_hand():
    """DeepSeek-V3: (kv_lora_rank 512 + rope 64) x 61 layers x bytes; replicated over TP."""
    m = load_model("deepseek-v3")
    assert kv_bytes_per_token(m, Precision.BF16) == (512 + 64) * 61 * 2
    assert kv_bytes_per_token(m, Precision.BF16, tp=8) == (512 + 64) * 61 * 2
    assert kv_bytes_per_token(m, Precision.BF16, pp=61) == (512 + 64) * 2


def test_405b_bf16_does_not_fit_one_h100_and_blames_weights():
    fp = inference_footprint(serving("llama3.1-405b", "h100-sxm", 1, 1))
    assert not fp.fits
    assert fp.biggest == "weights"
    assert fp.parts["weights"] == pytest.approx(2 * load_model("llama3.1-405b").params_total)
    assert "does not fit" in fp.verdict() and "weights" in fp.verdict()
    assert fp.headroom < 0


def test_405b_fp8_fits_tp8_on_h200():
    fp = inference_footprint(serving("llama3.1-405b", "h200-sxm", 8, 8, precision="fp8"))
    assert fp.fits
    # weights split over 8 devices at one byte each, but the embedding and LM head at two
    # (the default stack, trtllm, keeps them 16-bit): one more byte for each of the two
    # 128,256 x 16,384 matrices
    model = load_model("llama3.1-405b")
    wide = 2 * 128_256 * 16_384
    assert fp.parts["weights"] == pytest.approx((model.params_total + wide) / 8, rel=1e-9)


def test_zero_stages_shard_what_they_promise():
    """2 + 4 + 12 bytes/param (fp32 gradients): ZeRO-1 shards the 12, ZeRO-2 the 4+12,
    ZeRO-3 all of it (Rajbhandari et al. 2020)."""
    footprints = {z: training_footprint(training("llama3.1-8b", "h100-sxm", 8,
                                                 parallelism={"zero": z}))
                  for z in (0, 1, 2, 3)}
    n = stage_params(load_model("llama3.1-8b"), 1, 1).total
    assert footprints[0].parts["optimizer"] == pytest.approx(BYTES_OPTIMIZER * n)
    assert footprints[1].parts["optimizer"] == pytest.approx(BYTES_OPTIMIZER * n / 8)
    assert footprints[1].parts["gradients"] == pytest.approx(4 * n)
    assert footprints[2].parts["gradients"] == pytest.approx(4 * n / 8)
    assert footprints[2].parts["weights"] == pytest.approx(2 * n)
    assert footprints[3].parts["weights"] == pytest.approx(2 * n / 8)


def test_korthikanti_activation_count_for_a_gpt_layer():
    """GPT-3 style layer: s·b·h·(34 + 5·a·s/h) without recompute and without FlashAttention;
    34·s·b·h/t with TP+SP and selective recompute; 2·s·b·h for full recompute."""
    m = load_model("gpt3-175b")
    s, b, h, a, t = 2048, 1, 12288, 96, 8
    none = activation_bytes_per_layer(m, s, b, 1, False, "none", flash_attention=False)
    assert none == pytest.approx(s * b * h * (34 + 5 * a * s / h))
    selective_sp = activation_bytes_per_layer(m, s, b, t, True, "selective")
    assert selective_sp == pytest.approx(s * b * h * 34 / t)
    tp_only = activation_bytes_per_layer(m, s, b, t, False, "selective")
    assert tp_only == pytest.approx(s * b * h * (10 + 24 / t))
    assert activation_bytes_per_layer(m, s, b, t, True, "full") == pytest.approx(2 * s * b * h / t)


def test_pipeline_inflight_microbatches():
    assert inflight_microbatches("1f1b", pp=8, vpp=1, microbatches=64) == 8
    assert inflight_microbatches("1f1b", pp=8, vpp=1, microbatches=64, stage=7) == 1
    assert inflight_microbatches("1f1b", pp=8, vpp=1, microbatches=4) == 4
    assert inflight_microbatches("gpipe", pp=8, vpp=1, microbatches=64) == 64
    assert inflight_microbatches("interleaved", pp=8, vpp=2, microbatches=64) == \
        pytest.approx(8 * (1 + 7 / 16))


def test_interleaved_inflight_follows_megatron_warmup_per_stage():
    # Megatron's interleaved schedule: 2*(pp-r-1) + (vpp-1)*pp warm-up chunk forwards on
    # rank r, one more before the first backward, capped at m*vpp; in stage units / vpp.
    # pp 16, vpp 8, m 32: rank 0 (30 + 112 + 1) / 8, rank 1 (28 + 113) / 8, rank 15
    # (0 + 112 + 1) / 8 - the last stage holds nearly as much as the first
    assert inflight_microbatches("interleaved", 16, 8, 32) == pytest.approx(143 / 8)
    assert inflight_microbatches("interleaved", 16, 8, 32, stage=1) == pytest.approx(141 / 8)
    assert inflight_microbatches("interleaved", 16, 8, 32, stage=15) == pytest.approx(113 / 8)
    # pp 8, vpp 2, m 64, last stage: (0 + 8 + 1) / 2 = 4.5 (not 1 as under 1F1B)
    assert inflight_microbatches("interleaved", 8, 2, 64, stage=7) == pytest.approx(4.5)
    # m = pp (Llama 3 405B on 16,384 GPUs: 16 sequences per DP rank, pp 16, vpp 8): all
    # 16 x 8 chunk forwards run before any backward, on every stage: 128 / 8 = 16
    assert inflight_microbatches("interleaved", 16, 8, 16) == pytest.approx(16)
    assert inflight_microbatches("interleaved", 16, 8, 16, stage=15) == pytest.approx(16)
    # pp 4, vpp 2, m 5: rank 0 would warm up 6 + 4 = 10 = m*vpp chunks, so all 10: 5
    assert inflight_microbatches("interleaved", 4, 2, 5) == pytest.approx(5)
    # rank 3: 0 + 4 + 1 = 5 chunks of 10: 2.5
    assert inflight_microbatches("interleaved", 4, 2, 5, stage=3) == pytest.approx(2.5)


def test_first_stage_holds_the_most_activations_under_1f1b():
    scenario = training("llama3.1-70b", "h100-sxm", 64, parallelism={"tp": 8, "pp": 4},
                        seq_len=4096, global_batch_size=256)
    fp = training_footprint(scenario)
    assert any("stage 0" in note for note in fp.notes)


def test_lora_keeps_optimizer_state_only_for_adapters():
    full = training_footprint(training("llama2-70b", "mi300x", 8, finetune={"method": "full"},
                                       parallelism={"zero": 0}, recompute="full"))
    lora = training_footprint(training("llama2-70b", "mi300x", 8, parallelism={"zero": 0},
                                       finetune={"method": "lora", "rank": 16},
                                       recompute="full"))
    assert lora.parts["optimizer"] < full.parts["optimizer"] / 500
    # rank 16 on q, k, v, o: 16·((h+h) + (h+kv) + (h+kv) + (h+h)) per layer, 80 layers
    h, kv = 8192, 8 * 128
    adapters = 16 * (2 * h + 2 * (h + kv) + 2 * h) * 80
    assert lora.parts["optimizer"] == pytest.approx(BYTES_OPTIMIZER * adapters)


def test_runtime_reserve_is_part_of_every_footprint():
    hw = load_hardware("h100-sxm")
    fp = inference_footprint(serving("llama3.1-8b", "h100-sxm", 1, 1))
    assert fp.parts["runtime_reserve"] == runtime_reserve(hw)
    assert 2 * 2**30 < runtime_reserve(hw) < 0.15 * hw.hbm_capacity


def test_last_stage_of_an_interleaved_pipeline_holds_most_of_a_warm_up():
    # Llama 3.1 70B (80 layers) on TP8 x PP4 (vpp 2) x DP2, 64 sequences: m = 32 per rank.
    # Stages hold 10, 10, 10 and 50 layers; the last stage keeps (0 + (2-1)*4 + 1) = 5
    # chunk forwards of 25 layers each, 2.5 microbatches of 50 layers (the 1F1B-style
    # scaling of stage 0's count gave it 1 x (1 + 3/8)), against stage 0's (6 + 4 + 1) / 2
    # = 5.5 of 10 layers: the last stage is the most loaded.
    scenario = training("llama3.1-70b", "h100-sxm", 64, pipeline_schedule="interleaved",
                        micro_batch_size=1,
                        parallelism={"tp": 8, "pp": 4, "vpp": 2, "sequence_parallel": True,
                                     "first_stage_layers": 10, "last_stage_layers": 50})
    fp = training_footprint(scenario)
    per_layer = activation_bytes_per_layer(load_model("llama3.1-70b"), 2048, 1, 8, True,
                                           "selective")
    assert fp.parts["activations"] == pytest.approx(2.5 * 50 * per_layer)
    assert any("stage 3 of 4" in note for note in fp.notes)


# ---- MoE and MLA layers: every saved tensor written out (selective, FlashAttention) -------
def _per_token(model_id: str, tp: int = 1, sp: bool = False, g: float = 2.0,
               etp: int | None = None) -> float:
    """One layer's saved bytes per token of the sequence (s = 4,096, b = 1)."""
    return activation_bytes_per_layer(load_model(model_id), 4096, 1, tp, sp, "selective",
                                      gemm_input_bytes=g, etp=etp) / 4096


def test_deepseek_v3_layer_counts_mla_head_dims_latents_and_routed_copies():
    """DeepSeek-V3 (config.json): h 7,168, 128 heads, q/k head 128 nope + 64 rope = 192,
    v head 128, q_lora 1,536, kv_lora 512, 8 of 256 experts of 2,048 plus 1 shared; fp8
    GEMM inputs (g = 1)."""
    qkv = 2 * 128 * (192 + 192 + 128)            # Q, K, V at 16 bits: 131,072
    out_proj = 1 * 128 * 128                     # output projection input: 16,384
    attn_rest = 2 * 7168 + 1 * 7168              # norm input, down-projection input
    latents = 2 * (1536 + 512 + 64) + 1 * (1536 + 512)   # norm inputs + up-proj inputs
    f = 2048 * (8 + 1)
    mlp = 2 * 2 * f + 1 * f                      # SwiGLU input (2f, 16-bit), FC2 input
    mlp_rest = 2 * 7168 + 1 * 7168               # norm input, router/shared FC1 input
    routed = 1 * 8 * 7168                        # grouped FC1 input, k copies of h
    total = qkv + out_proj + attn_rest + latents + mlp + mlp_rest + routed
    assert total == 346_240
    assert _per_token("deepseek-v3", g=1.0) == pytest.approx(total)
    # bf16 GEMM inputs: every g-term doubles
    bf16 = total + out_proj + 7168 + (1536 + 512) + f + 7168 + routed
    assert _per_token("deepseek-v3", g=2.0) == pytest.approx(bf16)


def test_routed_copies_split_by_tp_over_etp_with_sequence_parallelism():
    """TP2 with SP: every term halves, except the routed copies, which sit on all etp
    ranks of their expert group: etp 1 halves them, etp 2 (the default, = tp) does not."""
    whole = _per_token("deepseek-v3", g=1.0)
    routed = 8 * 7168
    assert _per_token("deepseek-v3", 2, True, 1.0, etp=1) == pytest.approx(whole / 2)
    assert _per_token("deepseek-v3", 2, True, 1.0) == pytest.approx(whole / 2 + routed / 2)


def test_mixtral_layer_counts_its_two_routed_copies():
    """Mixtral 8x7B: h 4,096, 32 heads of 128, 8 K/V heads, top-2 of 8 experts of 14,336,
    no shared expert; bf16 (g = 2)."""
    attn = 2 * 32 * 128 + 2 * 2 * 8 * 128 + 2 * 32 * 128   # Q, K+V, out-proj input: 20,480
    attn_rest = 2 * 4096 + 2 * 4096              # norm input, QKV input
    f = 2 * 14336
    mlp = 3 * 2 * f                              # SwiGLU input 2·2f, FC2 input 2f
    mlp_rest = 2 * 4096 + 2 * 4096
    routed = 2 * 2 * 4096                        # k = 2 copies of h at 16 bits
    total = attn + attn_rest + mlp + mlp_rest + routed
    assert total == 241_664
    assert _per_token("mixtral-8x7b") == pytest.approx(total)
