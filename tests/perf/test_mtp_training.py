"""DeepSeek-V3's multi-token-prediction (MTP) module in training: its FLOPs, parameters,
placement on the last pipeline stage, saved activations and the workload switch.

Hand arithmetic for DeepSeek-V3 (h = 7,168, 128 heads, MLA q_lora 1,536, kv_lora 512,
qk_nope 128, qk_rope 64, v 128; experts of 2,048, 256 routed, 8 active, 1 shared; vocab
129,280):
  attention  q 7168·1536 + 1536 + 1536·128·192 = 48,760,320
             kv 7168·576 + 512 + 512·128·256    = 20,906,496
             o 128·128·7168                      = 117,440,512   -> 187,107,328
  one expert 3·7168·2048 = 44,040,192; router 7168·256 = 1,835,008
  five norms 5·7168 = 35,840; eh_proj 2·7168² = 102,760,448
  module dense  187,107,328 + 35,840 + 102,760,448 + 44,040,192 + 1,835,008 = 335,778,816
  module expert 256·44,040,192 = 11,274,289,152
  active        335,778,816 + 8·44,040,192 = 688,100,352
  head          129,280·7,168 = 926,679,040
  FLOPs/token   6·(688,100,352 + 926,679,040) + 6·128·(192+128)·4096 = 10,695,309,312
"""

from __future__ import annotations

import pytest

from simulator.engine.training.planner import build_plan
from simulator.loading import load_scenario
from simulator.perf.footprint import mtp_activation_bytes, training_footprint
from simulator.perf.layouts import training_layout, training_stage_layers
from simulator.perf.memory import all_stage_params
from simulator.perf.model_flops import model_flops_per_token
from simulator.perf.mtp_training import (
    mtp_flops_per_token,
    mtp_module_params,
    mtp_stage_params,
    trained_mtp_layers,
)
from simulator.perf.ops import ComputeOp
from simulator.perf.quantize_ops import training_recipe
from simulator.perf.roofline_view import roofline
from simulator.perf.stage_split import end_stage_weights
from simulator.perf.training_chunks import ChunkShape, chunk_params, chunk_shapes
from simulator.perf.transformer import StageLayers, training_ops
from simulator.profiles.catalog import load_model
from tests.conftest import ROOT, assert_clean_error, run_cli

V3 = load_model("deepseek-v3")
T48 = ROOT / "validation" / "cases" / "T48-megatron-bridge-deepseek-v3-1024xh100.yaml"
H800 = ROOT / "scenarios" / "deepseek-v3-h800-training.yaml"
MODULE_DENSE, MODULE_EXPERT = 335_778_816, 11_274_289_152
EMBEDDING = 129_280 * 7_168


def t48(*overrides: str):
    """T48's scenario (the case file's ``scenario`` block) with ``overrides``."""
    import yaml

    from simulator.loading import scenario_from_dict
    from simulator.profiles.overrides import apply_overrides
    case = yaml.safe_load(T48.read_text())
    return scenario_from_dict(apply_overrides(case["scenario"], list(overrides)))


def test_module_parameters_and_flops_match_the_hand_count():
    assert mtp_module_params(V3) == (MODULE_DENSE, MODULE_EXPERT)
    assert mtp_flops_per_token(V3, 4096, 1) == 10_695_309_312
    assert mtp_flops_per_token(V3, 4096, 2) == 2 * 10_695_309_312
    assert mtp_flops_per_token(V3, 4096, 0) == 0.0
    # with its own embedding and head copies the module is the report's 14B (sec. 2.2)
    assert pytest.approx(14e9, rel=0.05) == MODULE_DENSE + MODULE_EXPERT + 2 * EMBEDDING


def test_mfu_numerator_counts_the_module_as_megatron_does():
    """Model FLOPs per token rise by the module's 10.70 GFLOP, 3.8% of DeepSeek-V3's
    281.16 GFLOP at 4k (Megatron-Bridge's flop_utils counts it too: T48's printed 338
    TFLOP/s per GPU at 1,297 tokens/s is its formula with MTP, 337.2; 324.0 without)."""
    without, with_mtp = (model_flops_per_token(V3, 4096, d) for d in (0, 1))
    assert with_mtp - without == 10_695_309_312
    assert with_mtp / without == pytest.approx(1.0380, abs=1e-4)
    plan = build_plan(t48())
    w = t48().workload
    assert plan.model_flops_per_step == pytest.approx(with_mtp * w.tokens_per_step)


def test_default_follows_the_model_profile_and_the_workload_turns_it_off():
    assert trained_mtp_layers(V3, t48().workload) == 1
    assert trained_mtp_layers(V3, t48("workload.mtp_layers=0").workload) == 0
    assert trained_mtp_layers(V3, t48("workload.mtp_layers=2").workload) == 2
    llama = load_scenario(ROOT / "scenarios" / "llama3.1-8b-h100-training.yaml")
    assert trained_mtp_layers(llama.model, llama.workload) == 0  # no mtp block
    lora = load_scenario(ROOT / "scenarios" / "llama2-70b-lora-mi300x.yaml")
    assert lora.workload.mtp_layers is None
    assert trained_mtp_layers(V3, lora.workload) == 0  # LoRA trains no module


def test_the_module_takes_a_layers_place_in_the_last_chunk():
    """T48: PP8 x VPP4, 7 layers first and 6 last. Without MTP the last stage's chunks hold
    2, 2, 1, 1 layers; with it 2, 2, 2 and a last chunk of the module, the head and the loss
    alone (Megatron's 'Et|(tt|)*30mL' shape; megatron-bridge 0.3.1 counts 'mtp' as a layout
    entry)."""
    w = t48().workload
    layers = training_stage_layers(w, 61)
    plain = chunk_shapes(w, layers)
    assert [c.layers for c in plain[-1]] == [2, 2, 1, 1]
    assert all(c.mtp == 0 for row in plain for c in row)
    shapes = chunk_shapes(w, layers, mtp=1)
    assert [c.layers for c in shapes[-1]] == [2, 2, 2, 0]
    assert [c.layers for c in shapes[0]] == [1, 2, 2, 2]
    last = shapes[-1][-1]
    assert (last.lm_head, last.mtp, last.first_layer) == (True, 1, 61)
    assert [c.mtp for row in shapes for c in row].count(1) == 1
    assert sum(c.layers for row in shapes for c in row) == 61


def test_the_last_chunks_ops_add_the_module():
    """A chunk of the head alone vs the head and the module (TP2 with SP, one 4,096-token
    microbatch): the module adds one MoE layer, the projection's GEMM 2·4096·14336·3584 FLOPs,
    a second head GEMM and loss, and a second embedding lookup."""
    w = t48().workload
    layout = training_layout(w)

    def ops(mtp: int):
        return training_ops(V3, layout, 4096, 1, "fp8", "selective",
                            stage=StageLayers(first_layer=61, layers=0, embedding=False,
                                              lm_head=True, mtp=mtp))
    plain, with_mtp = ops(0), ops(1)
    assert not [op for op in plain.forward if op.name.startswith("moe.")]
    proj = [op for op in with_mtp.forward if op.name == "mtp.eh_proj"]
    assert [op.flops for op in proj] == [2 * 4096 * (2 * 7168) * 3584]
    heads = [op for op in with_mtp.forward if op.name == "lm_head"]
    assert sum(op.flops for op in heads) == 2 * (2 * 4096 * 7168 * 129280 / 2)
    assert [op.name for op in with_mtp.forward].count("embedding") == 1
    assert any(op.name.startswith("moe.") for op in with_mtp.forward)
    def flops(part) -> float:
        return sum(op.flops for op in part if isinstance(op, ComputeOp))
    assert flops(with_mtp.backward) > 2 * flops(plain.backward)


def test_block_recomputation_skips_the_module():
    """Megatron Core: recompute_method block is 'not supported for MTP yet' (skipped), so
    recompute_layers never covers the module's layer; uniform full recompute does."""
    layout = training_layout(t48().workload)
    stage = StageLayers(first_layer=59, layers=2, embedding=False, lm_head=True, mtp=1)

    def redone_attention(**kw) -> float:
        ops = training_ops(V3, layout, 4096, 1, "bf16", "full", stage=stage, **kw)
        return sum(op.count for op in ops.recompute if op.name.startswith("recompute.attn"))
    every = redone_attention()
    assert every == pytest.approx(3 / 2 * redone_attention(recompute_layers=2))
    assert redone_attention(recompute_layers=5) == redone_attention(recompute_layers=2)


def test_uniform_recomputation_redoes_the_modules_projection_and_final_norm():
    """megatron-core 0.14.0 checkpoints each module's projection, layer and final norm as
    one (``_checkpointed_forward(self._proj_and_transformer_layer, ...)``, read): full
    recomputation, uniform, runs eh_proj (2·4096·14336·3584 FLOPs at TP2) and the final norm
    again once per module, the embedding lookup and the head not; the block method none."""
    layout = training_layout(t48().workload)

    def redone(depth: int, **kw) -> dict[str, float]:
        stage = StageLayers(first_layer=59, layers=2, embedding=False, lm_head=True, mtp=depth)
        ops = training_ops(V3, layout, 4096, 1, "bf16", "full", stage=stage, **kw)
        out: dict[str, float] = {}
        for op in ops.recompute:
            out[op.name] = out.get(op.name, 0.0) + getattr(op, "flops", 0.0)  # x count
        return out
    two = redone(2)
    assert two["recompute.mtp.eh_proj"] == 2 * (2 * 4096 * (2 * 7168) * 3584)
    assert two["recompute.final_norm"] == 2 * redone(1)["recompute.final_norm"] > 0
    assert "recompute.mtp.enorm" in two and "recompute.mtp.eh_proj.gather" in two
    assert not any(name.startswith(("recompute.embedding", "recompute.lm_head"))
                   for name in two)
    assert not [n for n in redone(1, recompute_layers=2) if ".mtp." in n or "final" in n]
    assert not [n for n in redone(0) if ".mtp." in n or "final" in n]


def test_fp8_quantizes_each_modules_projection_weight_once_a_step():
    """eh_proj is a TE linear in the fp8 autocast: like a layer's GEMM its weight is
    quantized once a step, 2h x h/tp = 14,336 x 3,584 elements a module at TP2; its
    layer's weights count among the layers' (one MoE layer more)."""
    w = t48().workload
    recipe = training_recipe(w.precision, w.fp8_recipe.value,
                             t48().hardware.compute.fp8_transposed_copies)

    def step(depth: int) -> dict[str, float]:
        stage = StageLayers(first_layer=59, layers=2, embedding=False, lm_head=True, mtp=depth)
        ops = training_ops(V3, training_layout(w), 4096, 1, "fp8", "selective", stage=stage,
                           quantization=recipe)
        return {op.name: op.flops for op in ops.step}
    assert "mtp.eh_proj.quantize_weight" not in step(0)
    assert step(1)["mtp.eh_proj.quantize_weight"] == 14_336 * 3_584
    assert step(2)["mtp.eh_proj.quantize_weight"] == 2 * 14_336 * 3_584
    assert step(1)["moe.experts.down.quantize_weight"] == pytest.approx(
        3 / 2 * step(0)["moe.experts.down.quantize_weight"])


def test_last_stage_holds_the_module_and_an_embedding_copy():
    """T48 (TP2, EP64, ETP1): the last stage gains (335,778,816 + 926,679,040)/2 dense and
    11,274,289,152/64 expert parameters per device; a single-stage model already holds the
    embedding."""
    w, par = t48().workload, t48().workload.parallelism
    layers = training_stage_layers(w, 61)
    base = all_stage_params(V3, 2, 8, 64, layers, etp=1)
    mtp = all_stage_params(V3, 2, 8, 64, layers, etp=1, mtp_layers=1)
    assert mtp[:-1] == base[:-1]
    assert mtp[-1].dense - base[-1].dense == pytest.approx((MODULE_DENSE + EMBEDDING) / 2)
    assert mtp[-1].expert - base[-1].expert == pytest.approx(MODULE_EXPERT / 64)
    assert mtp_stage_params(V3, 1, holds_embedding=True) == (MODULE_DENSE, MODULE_EXPERT)
    # the last stage's chunks add up to it, as the DP buckets and the optimizer see them
    params = [chunk_params(V3, w, shape) for shape in chunk_shapes(w, layers, mtp=1)[-1]]
    assert sum(p.dense for p in params) == pytest.approx(mtp[-1].dense)
    assert sum(p.expert for p in params) == pytest.approx(mtp[-1].expert)
    assert par.expert_tp == 1
    lone = chunk_params(V3, w, ChunkShape(first_layer=61, layers=0, embedding=False,
                                          lm_head=True, mtp=1))
    assert lone.expert == pytest.approx(MODULE_EXPERT / 64)


def test_saved_activations_of_the_module():
    """H800 scenario (TP1, fp8 saved inputs, selective [layernorm, mla_up_proj, moe_act]):
    the module keeps one layer's activations plus, per token, 2h for each of enorm, hnorm and
    the final norm and 1 byte x 2h for the projection's input: 8·7168 = 57,344 bytes."""
    s = load_scenario(H800)
    w = s.workload
    layer = mtp_activation_bytes(V3, w, 1) - 4096 * 8 * 7168
    assert layer > 0
    assert mtp_activation_bytes(V3, w, 2) == pytest.approx(2 * (layer + 4096 * 8 * 7168))
    assert mtp_activation_bytes(V3, w.model_copy(update={"mtp_layers": 0}), 0) == 0.0
    # full recomputation, uniform: the module is checkpointed whole, its two inputs kept
    full = t48("workload.recompute_layers=null").workload
    assert mtp_activation_bytes(V3, full, 1) == pytest.approx(4096 / 2 * 4 * 7168)


def test_footprint_counts_a_second_logits_tensor():
    """T48's last stage: fp32 logits of 4,096 tokens x 129,280/2 vocab shard, twice."""
    on = training_footprint(t48("workload.parallelism.first_stage_layers=null",
                                "workload.parallelism.last_stage_layers=null",
                                "workload.parallelism.pp=1", "workload.parallelism.vpp=1",
                                "workload.pipeline_schedule=1f1b",
                                "workload.recompute_layers=null",
                                "cluster.accelerators=128"))
    off = training_footprint(t48("workload.parallelism.first_stage_layers=null",
                                 "workload.parallelism.last_stage_layers=null",
                                 "workload.parallelism.pp=1", "workload.parallelism.vpp=1",
                                 "workload.pipeline_schedule=1f1b",
                                 "workload.recompute_layers=null",
                                 "cluster.accelerators=128", "workload.mtp_layers=0"))
    assert off.parts["logits"] == 4.0 * 4096 * 129280 / 2
    assert on.parts["logits"] == 2 * off.parts["logits"]
    assert on.parts["activations"] > off.parts["activations"]
    assert on.parts["weights"] > off.parts["weights"]


@pytest.mark.parametrize("value,fragment", [
    ("1", "workload.mtp_layers: 1 with LoRA: adapters train the main model"),
    ("-1", "workload.mtp_layers: must be at least 0 (got -1)"),
    ("true", "workload.mtp_layers: expected a number, got a boolean"),
    ("one", "workload.mtp_layers: must be a whole number"),
])
def test_bad_mtp_layers_is_one_clear_error(value, fragment):
    result = run_cli("run", str(ROOT / "scenarios" / "llama2-70b-lora-mi300x.yaml"),
                     "--set", f"workload.mtp_layers={value}")
    assert_clean_error(result, fragment)


def test_plans_may_lighten_the_last_stage_by_the_modules_weight():
    """The last stage's extra weight in layers (plan's split search): DeepSeek-V3's head alone
    weighs 2·926,679,040 FLOPs a token; the module adds its forward, a third of its training
    FLOPs less the causal half of its scores: (10,695,309,312 - 3·128·320·4096)/3 =
    3,397,330,944, so the weight grows by 1 + 3,397,330,944/1,853,358,080."""
    plain, with_mtp = end_stage_weights(V3, 4096), end_stage_weights(V3, 4096, 1)
    assert with_mtp.first == plain.first
    assert with_mtp.last == pytest.approx(plain.last * (1 + 3_397_330_944 / 1_853_358_080))
    assert len(with_mtp.lighter_by()[1]) == 5  # 0..4 layers fewer (3.92 rounds up)


def test_roofline_view_shows_the_module_beside_the_head():
    """MaxText's DeepSeek-V3 recipe (one stage, so the head's) with the module switched on:
    the projection's GEMM, 2·16,384 tokens·14,336·7,168 FLOPs, in forward and twice in
    backward; off (the recipe's setting), none."""
    recipe = ROOT / "scenarios" / "recipes" / "deepseek-v3-tpu-v5p-1024-maxtext.yaml"
    on = roofline(load_scenario(recipe, ["workload.mtp_layers=1"]))
    proj = [r for r in on.rows if r.name.startswith("mtp.eh_proj")]
    assert [r.flops for r in proj] == [2 * 16384 * 14336 * 7168] * 3
    off = roofline(load_scenario(recipe))
    assert not [r for r in off.rows if r.name.startswith("mtp.")]


def test_a_checkpoint_holds_the_trained_modules_once():
    """14 B a trained parameter (bf16 weight, fp32 master and Adam moments): the module adds
    335,778,816 + 11,274,289,152 = 11,610,067,968 parameters, 162.5 GB; the last stage's
    embedding copy is tied to the first stage's in the checkpoint, so it adds nothing."""
    from simulator.engine.training.run import checkpoint_bytes
    with_mtp, without = checkpoint_bytes(load_scenario(H800)), checkpoint_bytes(
        load_scenario(H800, ["workload.mtp_layers=0"]))
    assert without == 14.0 * V3.params_total
    assert with_mtp - without == 14.0 * 11_610_067_968
