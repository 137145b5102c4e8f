"""Iteration pricing: the grouped ops equal the cost models', an affine op's timer equals the
roofline at one size or many, jumps price steps exactly, EP inside a replica, KV transfers."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import load_hardware, load_model
from simulator.engine.serving.disaggregation import KVTransfer, place
from simulator.engine.serving.iteration_cost import IterationCost
from simulator.errors import InputErrors
from simulator.loading import scenario_from_dict
from simulator.perf.affine_op import AffineOp, timer
from simulator.perf.mlp_ops import moe_specs
from simulator.perf.ops import Collective, CommOp, Layout
from simulator.perf.opspec import Batch, Phase
from simulator.perf.roofline import compute_op_time
from simulator.perf.serving_iteration import iteration_model
from simulator.perf.serving_moe import serving_moe_specs
from simulator.perf.transformer import _inference_prec, decode_ops, prefill_ops
from simulator.profiles.inference import InferenceParallelism
from simulator.profiles.precision import Precision
from tests.perf.oracles import decode_run, iteration_cost, op_by_op, total_time

CASES = [  # model, hardware, tp, weight precision, kv precision
    ("llama3.1-8b", "h100-sxm", 1, "bf16", "bf16"),
    ("llama3.1-70b", "mi300x", 2, "fp8", "fp8"),
    ("deepseek-v3", "gb200-nvl72", 8, "fp8", "fp8"),
    ("mixtral-8x7b", "gaudi3", 4, "bf16", "bf16"),
]


@cache
def case(i: int):
    name, hw, tp, w, kv = CASES[i]
    model, hardware = load_model(name), load_hardware(hw)
    im = iteration_model(model, Layout(tp=tp), w, kv)
    return model, hardware, im


@pytest.mark.parametrize("i", range(len(CASES)), ids=[c[0] for c in CASES])
def test_an_iteration_of_only_prompts_or_only_decodes_is_what_perf_says(i):
    model, hw, im = case(i)
    layout, w, a, kv = im.layout, im.weight_precision, im.act_precision, im.kv_precision
    chunks = [(700, 0), (300, 1200), (1, 40)]
    expected = total_time(hw, prefill_ops(model, layout, [q for q, _ in chunks], w, a, kv,
                                          [c for _, c in chunks]))
    assert total_time(hw, im.ops(chunks, [])) == pytest.approx(expected, rel=1e-12)
    contexts = [5, 900, 4000, 33]
    expected = total_time(hw, decode_ops(model, layout, contexts, w, kv, act_precision=a))
    assert total_time(hw, im.ops([], contexts)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("i", range(len(CASES)), ids=[c[0] for c in CASES])
def test_a_mixed_iteration_reads_the_weights_once(i):
    _model, hw, im = case(i)
    mixed = total_time(hw, im.ops([(500, 0)], [1000] * 32))
    apart = total_time(hw, im.ops([(500, 0)], [])) + total_time(hw, im.ops([], [1000] * 32))
    assert mixed < apart
    assert mixed > total_time(hw, im.ops([(500, 0)], []))


@pytest.mark.parametrize("i", range(len(CASES)), ids=[c[0] for c in CASES])
def test_the_engine_prices_an_iteration_as_the_sum_of_its_ops(i):
    _model, hw, im = case(i)
    cost = IterationCost(hw, im)
    chunks = [(400, 100), (50, 0)]
    contexts = [700, 1300, 20]
    pairs = sum(q * c + q * (q + 1) // 2 for q, c in chunks)
    v = iteration_cost(cost, 450, 100, pairs, 2, 3, sum(contexts))
    assert v.time_s == pytest.approx(total_time(hw, im.ops(chunks, contexts)), rel=1e-12)
    np.testing.assert_allclose(v.row(), op_by_op(hw, im.ops(chunks, contexts)).row(), rtol=1e-12)


@pytest.mark.parametrize("i", range(len(CASES)), ids=[c[0] for c in CASES])
def test_a_run_of_decode_steps_is_priced_exactly_as_each_step_alone(i):
    _model, hw, im = case(i)
    cost = IterationCost(hw, im)
    batch, context, steps = 24, 24 * 900, 300
    run = decode_run(cost, batch, context, steps)
    alone = [decode_run(cost, batch, context + batch * k, 1).time_s[0] for k in range(steps)]
    np.testing.assert_array_equal(run.time_s, alone)  # bit for bit
    direct = [total_time(hw, im.ops([], [context // batch + k] * batch))
              for k in (0, 150, 299)]
    np.testing.assert_allclose(run.time_s[[0, 150, 299]], direct, rtol=1e-12)
    assert run.totals.time_s == pytest.approx(np.sum(run.time_s), rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 512), st.integers(1, 200_000))
def test_an_affine_timer_is_the_roofline_at_one_size_or_many(batch, per_seq):
    _, hw, im = case(2)  # MLA: several context-dependent ops
    lo, hi = im.decode_extra(batch, batch), im.decode_extra(batch, 2 * batch)
    context = batch + per_seq
    at = im.decode_extra(batch, context)
    for a, b, op in zip(lo, hi, at, strict=True):
        if a == b or isinstance(op, CommOp):
            continue
        affine = timer(hw, AffineOp.through(a, b, batch, 2 * batch))
        got = affine.times(np.array([context]))
        assert got.time_s[0] == affine.time(context).time_s  # the same bits
        assert got.time_s[0] == pytest.approx(compute_op_time(hw, op).time_s, rel=1e-12)


def _moe(ep: int, tokens: float = 256.0):
    model = load_model("deepseek-v3")
    p = _inference_prec(Precision.FP8, Precision.FP8, Precision.FP8)
    batch = Batch(phase=Phase.DECODE, tokens=tokens, residual_tokens=tokens, sequences=int(tokens),
                  pairs=tokens * 100, kv_tokens=tokens * 100, cached=tokens * 100)
    return model, p, batch, serving_moe_specs(model, Layout(tp=8, ep=ep), batch, p)


def test_serving_ep_of_one_is_the_tensor_parallel_moe_layer():
    model, p, batch, specs = _moe(1)
    assert specs == moe_specs(model, Layout(tp=8), batch, p)


def test_serving_ep_spreads_experts_over_the_replica_and_talks_inside_it():
    model, _p, _batch, specs = _moe(8)
    by_name = {s.name: s for s in specs}
    # all-to-alls among the 8 devices of the stage (one scale-up domain), not across replicas
    for name in ("moe.dispatch", "moe.combine"):
        assert by_name[name].forward_collective is Collective.ALL_TO_ALL
        assert by_name[name].group.size == 8 and by_name[name].group.stride == 1
    # each device runs 32 whole experts (no expert TP) on t*k/ep assignments
    gate_up = by_name["moe.experts.gate_up"]
    assert gate_up.n == 2 * model.moe.expert_ffn_size
    assert gate_up.m * gate_up.groups == pytest.approx(256 * 8 / 8)
    # the layer's routed FLOPs per device equal the TP layer's (same work, split differently)
    _, _, _, tp_specs = _moe(1)
    tp_gate_up = {s.name: s for s in tp_specs}["moe.experts.gate_up"]
    assert gate_up.flops == pytest.approx(tp_gate_up.flops, rel=1e-9)


def test_serving_ep_must_divide_tp():
    model = load_model("deepseek-v3")
    p = _inference_prec(Precision.FP8, Precision.FP8, Precision.FP8)
    batch = Batch(phase=Phase.DECODE, tokens=8.0, residual_tokens=8.0, sequences=8, pairs=800.0,
                  kv_tokens=800.0, cached=800.0)
    with pytest.raises(ValueError, match=r"ep \(16\) to divide tp \(8\)"):
        serving_moe_specs(model, Layout(tp=8, ep=16), batch, p)


def test_kv_transfers_use_scale_up_within_a_domain_and_scale_out_between():
    par = InferenceParallelism(tp=4)
    places = place([par] * 4)

    def transfer(hw, prefill, decode):
        return KVTransfer(hw=hw, model=load_model("llama3.1-70b"), kv_precision=Precision.FP8,
                          prefill=par, decode=par, prefill_places=prefill,
                          decode_places=decode)

    for hw_id, same_node, other_node in (("h100-sxm", "scale_up", "scale_out"),
                                         ("gb200-nvl72", "scale_up", "scale_up")):
        hw = load_hardware(hw_id)
        t = transfer(hw, places[:2], places[2:])
        assert t.fabric(0, 0) == other_node  # devices 0-3 to 8-11
        assert t.fabric(1, 1) == other_node
        near = transfer(hw, places[:1], places[1:2])
        assert near.fabric(0, 0) == same_node
    t = transfer(load_hardware("h100-sxm"), places[:1], places[2:3])
    # 10,000 tokens x 80 layers x 2 x 8 heads x 128 x 1 byte, a quarter per device, over
    # one 400 Gb/s NIC each
    per_device = 10_000 * 80 * 2 * 8 * 128 / 4
    assert t.duration(0, 0, 10_000) > per_device / 50e9
    start, end = t.schedule(0, 0, 10_000, 1.0)
    again = t.schedule(0, 0, 10_000, 1.0)  # the link is busy: the second one queues
    assert start == 1.0 and again[0] == end


def test_a_scenario_whose_ep_does_not_divide_tp_is_refused():
    data = {"name": "ep", "hardware": "gb200-nvl72", "cluster": {"accelerators": 8},
            "model": "deepseek-v3",
            "workload": {"kind": "inference", "precision": "fp8",
                         "parallelism": {"tp": 4, "pp": 2, "ep": 8},
                         "arrivals": {"process": "offline", "requests": 1},
                         "prompt_tokens": 10, "output_tokens": 10}}
    with pytest.raises(InputErrors, match="ep=8 must divide tp=4") as info:
        scenario_from_dict(data)
    assert info.value.errors[0].path == "workload.parallelism.ep"
