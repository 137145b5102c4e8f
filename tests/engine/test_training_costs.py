"""Pass costs from the cost models: overlap rules, chunk placement, parameters, model FLOPs."""

from __future__ import annotations

import pytest

from simulator.engine.training.costs import pass_cost
from simulator.loading import load_scenario
from simulator.perf.layouts import training_layout, training_stage_layers
from simulator.perf.memory import all_stage_params
from simulator.perf.model_flops import model_flops_per_token
from simulator.perf.mtp_training import trained_mtp_layers
from simulator.perf.ops import Collective, CommOp, ComputeOp, Group, OpKind
from simulator.perf.roofline import op_time
from simulator.perf.training_chunks import chunk_params, chunk_shapes
from simulator.perf.transformer import training_ops
from simulator.profiles.catalog import load_hardware, load_model
from tests.conftest import ROOT

SCENARIOS = ROOT / "scenarios"
H100 = load_hardware("h100-sxm")


def gemm(name: str, tflop: float) -> ComputeOp:
    return ComputeOp(name=name, kind=OpKind.GEMM, flops=tflop * 1e12, bytes=1e6,
                     precision="bf16", gemm_flops_each=tflop * 1e12)


def collective(name: str, kind: Collective, gbytes: float) -> CommOp:
    return CommOp(name=name, collective=kind, bytes=gbytes * 1e9, group=Group(8, 1))


def seconds(op) -> float:
    # training's collectives are NCCL's: priced with the profile's size curve
    return op_time(H100, op, library=True).time_s


def test_tp_collectives_hide_behind_their_neighbouring_gemms():
    """An all-gather hides behind the GEMM after it, a reduce-scatter behind the one before."""
    ops = [collective("attn.sp_all_gather", Collective.ALL_GATHER, 1.0), gemm("attn.qkv", 0.2),
           gemm("attn.o_proj", 1.0),
           collective("attn.sp_reduce_scatter", Collective.REDUCE_SCATTER, 1.0)]
    ag, qkv, o, rs = map(seconds, ops)
    hidden = pass_cost(H100, ops, overlap_tp=True, overlap_ep=False)
    exposed = pass_cost(H100, ops, overlap_tp=False, overlap_ep=False)
    assert exposed.tp_s == pytest.approx(ag + rs)
    assert hidden.tp_s == pytest.approx(max(0.0, ag - qkv) + max(0.0, rs - o))
    assert hidden.compute_s == exposed.compute_s == pytest.approx(qkv + o)
    assert hidden.comm_busy_s == pytest.approx(ag + rs)


def test_a_gemm_hides_at_most_its_own_length():
    ops = [gemm("mlp.down", 0.5),
           collective("mlp.sp_reduce_scatter", Collective.REDUCE_SCATTER, 1.0),
           collective("mlp.extra_all_reduce", Collective.ALL_REDUCE, 1.0)]
    down, rs, ar = map(seconds, ops)
    cost = pass_cost(H100, ops, overlap_tp=True, overlap_ep=False)
    assert cost.tp_s == pytest.approx(rs + ar - down)


def test_expert_all_to_alls_overlap_only_when_asked():
    ops = [gemm("moe.experts.gate_up", 1.0),
           CommOp(name="moe.dispatch", collective=Collective.ALL_TO_ALL, bytes=1e9,
                  group=Group(8, 1))]
    plain = pass_cost(H100, ops, overlap_tp=True, overlap_ep=False)
    dualpipe = pass_cost(H100, ops, overlap_tp=True, overlap_ep=True)
    assert plain.ep_s == pytest.approx(seconds(ops[1]))
    assert dualpipe.ep_s == pytest.approx(max(0.0, seconds(ops[1]) - seconds(ops[0])))
    assert plain.tp_s == dualpipe.tp_s == 0.0


def test_context_parallel_exchange_hides_behind_attention():
    scenario = load_scenario(SCENARIOS / "llama3.1-8b-h100-training.yaml",
                             ["workload.parallelism.cp=2"])
    w = scenario.workload
    ops = training_ops(scenario.model, training_layout(w), w.seq_len, 1, "bf16", "full")
    cp_ops = [op for op in ops.forward if isinstance(op, CommOp) and ".cp_" in op.name]
    assert cp_ops
    cost = pass_cost(H100, ops.forward, overlap_tp=False, overlap_ep=False)
    assert 0.0 <= cost.cp_s < sum(seconds(op) for op in cp_ops)


def attention_backward(tflop: float) -> ComputeOp:
    return ComputeOp(name="attn.core.backward", kind=OpKind.ATTENTION_BACKWARD,
                     flops=tflop * 1e12, bytes=1e6, precision="bf16",
                     gemm_flops_each=tflop * 1e12)


def ring(kind: Collective, gbytes: float, cp: int) -> CommOp:
    suffix = "all_gather" if kind is Collective.ALL_GATHER else "reduce_scatter"
    return CommOp(name=f"attn.cp_kv_all_gather.backward.{suffix}", collective=kind,
                  bytes=gbytes * 1e9, group=Group(cp, 1))


@pytest.mark.parametrize("cp", [2, 4])
def test_ring_attention_returns_its_last_dkv_chunk_after_the_last_kernel(cp):
    """Behind a long core the K/V re-gather hides, but one of the dK/dV reduce-scatter's
    cp - 1 hops comes after the last kernel: rs/(cp-1) stays exposed (all of it at cp=2)."""
    ops = [ring(Collective.ALL_GATHER, 0.1, cp), attention_backward(50.0),
           ring(Collective.REDUCE_SCATTER, 0.1, cp)]
    ag, core, rs = map(seconds, ops)
    assert core * (cp - 1) / cp > ag + rs  # the core is long enough to hide everything else
    cost = pass_cost(H100, ops, overlap_tp=False, overlap_ep=False)
    assert cost.cp_s == pytest.approx(rs / (cp - 1))
    assert cost.compute_s == pytest.approx(core)


def test_ring_attention_hides_nothing_behind_its_last_kernel():
    """With cp = 2 only the first of the two kernels runs while K/V arrive: a transfer
    longer than half the core shows by its excess over that half."""
    ops = [ring(Collective.ALL_GATHER, 2.0, 2), attention_backward(0.5)]
    ag, core = map(seconds, ops)
    assert ag > core / 2
    cost = pass_cost(H100, ops, overlap_tp=False, overlap_ep=False)
    assert cost.cp_s == pytest.approx(ag - core / 2)


def test_llama3_chunks_put_the_embedding_and_the_head_on_chunks_of_their_own():
    """Llama 3 405B, pp16 vpp8, 7 + 14x8 + 7 layers (the paper's Sec. 3.3.2)."""
    scenario = load_scenario(SCENARIOS / "llama3.1-405b-h100-training.yaml")
    w, model = scenario.workload, scenario.model
    shapes = chunk_shapes(w, training_stage_layers(w, model.layers))
    assert [len(row) for row in shapes] == [8] * 16
    first, last = shapes[0][0], shapes[-1][-1]
    assert (first.layers, first.embedding, first.lm_head) == (0, True, False)
    assert (last.layers, last.embedding, last.lm_head) == (0, False, True)
    assert sum(s.layers for row in shapes for s in row) == model.layers
    # virtual stage c*pp + s holds the layers after every chunk before it in that order
    virtual = sorted((c * 16 + s, shape) for s, row in enumerate(shapes)
                     for c, shape in enumerate(row))
    start = 0
    for _, shape in virtual:
        assert shape.first_layer == start
        start += shape.layers


@pytest.mark.parametrize("name", ["llama3.1-405b-h100-training.yaml",
                                  "deepseek-v3-h800-training.yaml",
                                  "gpt3-175b-gb200-training.yaml"])
def test_chunk_parameters_add_up_to_the_footprints_stage_parameters(name):
    scenario = load_scenario(SCENARIOS / name)
    w, model, par = scenario.workload, scenario.model, scenario.workload.parallelism
    layers = training_stage_layers(w, model.layers)
    mtp = trained_mtp_layers(model, w)  # DeepSeek-V3's module and embedding copy included
    expected = all_stage_params(model, par.tp, par.pp, par.ep, layers, mtp_layers=mtp)
    for row, stage in zip(chunk_shapes(w, layers, mtp=mtp), expected, strict=True):
        params = [chunk_params(model, w, shape) for shape in row]
        assert sum(p.dense for p in params) == pytest.approx(stage.dense)
        assert sum(p.expert for p in params) == pytest.approx(stage.expert)


def test_model_flops_match_megatrons_formula_for_gpt3():
    """Korthikanti et al. 2022: 72·B·s·l·h²·(1 + s/(6h) + V/(12·l·h)) per B sequences; the
    formula leaves out biases and norms (under 0.01% here)."""
    model = load_model("gpt3-175b")
    s, layers, h, v = 2048, 96, 12288, model.vocab_size
    megatron = 72 * layers * h * h * (1 + s / (6 * h) + v / (12 * layers * h))
    assert model_flops_per_token(model, s) == pytest.approx(megatron, rel=1e-3)


def test_model_flops_count_six_per_active_parameter_for_moe():
    model = load_model("deepseek-v3")
    dense_part = model_flops_per_token(model, 1) - 6 * model.layers * 128 * (192 + 128)
    embedding = model.vocab_size * model.hidden_size
    assert dense_part == pytest.approx(6 * (model.params_active - embedding))
