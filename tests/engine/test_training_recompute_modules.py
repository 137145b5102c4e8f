"""Selective recomputation of named submodules (``workload.recompute_modules``, Megatron
Core's ``--recompute-modules``): the work backward repeats, the activations no longer kept,
and the checks."""

from __future__ import annotations

import pytest

from simulator.loading import load_scenario
from simulator.perf.layouts import training_layout
from simulator.perf.memory import activation_bytes_per_layer
from simulator.perf.quantize_ops import training_recipe
from simulator.perf.transformer import RECOMPUTE_PREFIX, StageLayers, training_ops
from simulator.profiles.catalog import load_model
from simulator.profiles.recompute_modules import RecomputeModule
from simulator.profiles.training import TrainingWorkload
from tests.conftest import ROOT, assert_clean_error, run_cli

DSV3 = "scenarios/recipes/deepseek-v3-256xgb200-mxfp8.yaml"  # TP1, mbs 1, seq 4096, MXFP8
LLAMA = "scenarios/llama3.1-8b-h100-training.yaml"
MOE_LAYER = StageLayers(first_layer=3, layers=1, embedding=False, lm_head=False)


def _recompute(modules: list[str] | None, stage: StageLayers = MOE_LAYER) -> dict[str, float]:
    """Recomputed op name (prefix stripped) -> its FLOPs, for one DeepSeek-V3 MoE layer."""
    scenario = load_scenario(ROOT / DSV3)
    w = scenario.workload
    assert isinstance(w, TrainingWorkload)
    ops = training_ops(scenario.model, training_layout(w), w.seq_len, w.micro_batch_size,
                       w.precision, "selective", stage=stage,
                       quantization=training_recipe(w.precision, w.fp8_recipe.value,
                                                    scenario.hardware.compute
                                                    .fp8_transposed_copies),
                       recompute_modules=None if modules is None
                       else [RecomputeModule(m) for m in modules])
    return {op.name.removeprefix(RECOMPUTE_PREFIX): getattr(op, "flops", 0.0)
            for op in ops.recompute}


def test_the_default_is_the_attention_core_alone():
    assert _recompute(None) == _recompute(["core_attn"])
    assert list(_recompute(None)) == ["attn.core"]


def test_mla_up_proj_redoes_the_two_up_projections_and_rope():
    """Per token: q_up 2 x 1,536 x 128 x (128 + 64) and kv_up 2 x 512 x 128 x (128 + 128)
    FLOPs, 4,096 tokens a microbatch on a TP1 rank."""
    redo = _recompute(["mla_up_proj"])
    assert set(redo) == {"attn.q_up.quantize_input", "attn.q_up", "attn.rope",
                         "attn.kv_up.quantize_input", "attn.kv_up"}
    tokens = 4096
    assert redo["attn.q_up"] == pytest.approx(tokens * 2 * 1536 * 128 * 192)
    assert redo["attn.kv_up"] == pytest.approx(tokens * 2 * 512 * 128 * 256)


def test_moe_redoes_the_block_and_its_all_to_alls_moe_act_only_the_activation():
    whole = _recompute(["moe"])
    assert {"moe.dispatch", "moe.combine", "moe.experts.gate_up", "moe.shared.down"} <= set(whole)
    assert "mlp.norm" not in whole
    assert set(_recompute(["moe_act"])) == {"moe.experts.activation"}
    assert set(_recompute(["layernorm"])) == {"attn.norm", "mlp.norm"}
    shared = _recompute(["shared_experts"])
    assert shared and all(name.startswith("moe.shared.") for name in shared)


def test_mlp_recomputes_only_the_dense_layers():
    """DeepSeek-V3's first three layers are dense: `mlp` redoes their MLP, not the MoE's."""
    assert _recompute(["mlp"]) == {}
    dense = _recompute(["mlp"], StageLayers(first_layer=0, layers=3, embedding=False,
                                            lm_head=False))
    assert "mlp.gate_up" in dense and not any(n.startswith("moe.") for n in dense)


def _saved(model_id: str, modules: list[str] | None, gemm_input_bytes: float) -> float:
    """One layer's saved activation bytes a token (s = 4,096, b = 1, tp = 1)."""
    model = load_model(model_id)
    return activation_bytes_per_layer(model, 4096, 1, 1, False, "selective",
                                      gemm_input_bytes=gemm_input_bytes,
                                      recompute_modules=modules) / 4096


@pytest.mark.parametrize(("modules", "freed"), [
    # MLA's Q, K (128 heads x (128 nope + 64 rope)) and V (128 x 128) at 16 bits, and the
    # up-projections' inputs (q_lora 1,536 + kv_lora 512) at one byte
    (["mla_up_proj"], 2 * 128 * (2 * 192 + 128) + (1536 + 512)),
    # the two norm outputs (QKV and FC1 inputs), one byte each in fp8
    (["layernorm"], 2 * 7168),
    # the routed experts' FC2 input: k·f_e = 8 x 2,048 at one byte
    (["moe_act"], 8 * 2048),
    # the whole MLP term: f = 2,048 x (8 + 1); activation input 4f plus FC2 input f; and
    # the grouped FC1's input, k = 8 routed copies of h = 7,168 at one byte
    (["moe"], 5 * 2048 * 9 + 8 * 7168),
    # the shared expert's ninth of it
    (["shared_experts"], 5 * 2048),
    (["mla_up_proj", "moe_act"], 2 * 128 * (2 * 192 + 128) + (1536 + 512) + 8 * 2048),
])
def test_recomputed_modules_free_what_they_would_have_kept(modules, freed):
    base = _saved("deepseek-v3", None, 1.0)
    assert base - _saved("deepseek-v3", modules, 1.0) == pytest.approx(freed)


def test_mlp_frees_a_dense_models_mlp_and_nothing_in_an_moe_model():
    """Llama 3.1 8B, bf16: 4f + 2f with f = 14,336."""
    base = _saved("llama3.1-8b", None, 2.0)
    assert base - _saved("llama3.1-8b", ["mlp"], 2.0) == pytest.approx(6 * 14336)
    assert _saved("deepseek-v3", ["mlp"], 1.0) == _saved("deepseek-v3", None, 1.0)


def test_the_option_reaches_the_step_time():
    """Recomputing the MoE block (its all-to-alls too) is slower than the attention core."""
    from simulator.simulate import simulate
    core = simulate(load_scenario(ROOT / DSV3)).training
    moe = simulate(load_scenario(ROOT / DSV3, ["workload.recompute_modules=[moe]"])).training
    assert core is not None and moe is not None
    assert moe.step_time_s > core.step_time_s
    assert moe.hfu > moe.mfu


@pytest.mark.parametrize(("path", "assignments", "fragment"), [
    (LLAMA, ["workload.recompute=full", "workload.recompute_modules=[mlp]"],
     "recompute_modules needs recompute: selective (got full)"),
    (LLAMA, ["workload.recompute=selective", "workload.recompute_modules=[mla_up_proj]"],
     "mla_up_proj needs multi-head latent attention; llama3.1-8b uses gqa"),
    (LLAMA, ["workload.recompute=selective", "workload.recompute_modules=[moe_act]"],
     "moe_act needs an MoE model; llama3.1-8b is dense"),
    ("scenarios/recipes/qwen3-30b-a3b-8xb200-mxfp8.yaml",
     ["workload.recompute=selective", "workload.recompute_modules=[shared_experts]"],
     "shared_experts: qwen3-30b-a3b has no shared experts"),
    (LLAMA, ["workload.recompute=selective", "workload.recompute_modules=[bogus]"],
     "workload.recompute_modules[0]: must be one of"),
    (LLAMA, ["workload.recompute=selective", "workload.recompute_modules=[]"],
     "workload.recompute_modules: must have at least 1 item"),
])
def test_bad_recompute_modules_is_one_clean_error(path, assignments, fragment):
    args = [a for assignment in assignments for a in ("--set", assignment)]
    assert_clean_error(run_cli("run", path, "--quiet", *args), fragment)
