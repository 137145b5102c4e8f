"""Attention DP + wide EP in the serving engine: the busiest rank every other waits for, the
per-rank limits, refused layouts, and end-to-end runs (one NVL72 replica, a disaggregated
wide-EP decode pool)."""

from __future__ import annotations

import copy

import pytest

from simulator import load_hardware, load_model
from simulator.engine.serving.disaggregation import KVTransfer, Placement
from simulator.engine.serving.dp_cost import DataParallelCost
from simulator.engine.serving.dp_ranks import (
    RankBatch,
    busiest_rank,
    replica_batching,
    straggler_wait,
)
from simulator.engine.serving.run import run_serving
from simulator.engine.serving.usage import Usage
from simulator.errors import InputErrors
from simulator.loading import scenario_from_dict
from simulator.perf.layouts import inference_layout
from simulator.perf.serving_iteration import iteration_model
from simulator.profiles.inference import Batching, InferenceParallelism
from tests.conftest import ROOT, assert_clean_error, run_cli

NVL72 = {"name": "wide ep", "hardware": "gb200-nvl72", "cluster": {"accelerators": 72},
         "model": "deepseek-v3",
         "workload": {"kind": "inference", "precision": "fp8", "replicas": 1,
                      "parallelism": {"tp": 1, "attention_dp": 72, "ep": 72},
                      "moe": {"load_balancer": "eplb", "redundant_experts": 32},
                      "arrivals": {"process": "offline", "requests": 300},
                      "prompt_tokens": 600, "output_tokens": 40,
                      "batching": {"max_batch_size": 8, "max_tokens_per_step": 2048}},
         "seed": 3}


def test_the_busiest_rank_holds_a_whole_prompt_chunk_and_its_share_of_decodes():
    # one 8,192-token chunk and 100 decodes (150,000 keys) over 8 ranks: the chunk's rank
    # runs all of it, plus ceil(100/8) = 13 decodes with 13/100 of the context
    whole = RankBatch(8192, 0, 8192 * 8193 // 2, 1, 100, 150_000)
    r = busiest_rank(8, whole)
    assert r == RankBatch(8192, 0, 8192 * 8193 // 2, 1, 13, 19_500)
    # the mean rank runs 8,292/8 tokens: the others wait 8 x 8,205/8,292 for it
    assert straggler_wait(8, whole) == pytest.approx(8205 * 8 / 8292)
    # 16 chunks of 512 (4,096 cached in all) over 8 ranks: 2 each, 1,024 tokens, 512 cached
    spread = busiest_rank(8, RankBatch(8192, 4096, 3_000_000, 16, 0, 0))
    assert (spread.prompt_tokens, spread.prompt_cached, spread.prompt_sequences) == (1024, 512, 2)
    assert spread.prompt_pairs == 375_000
    assert straggler_wait(8, RankBatch(8192, 4096, 3_000_000, 16, 0, 0)) == 1.0


def test_decode_batches_that_do_not_divide_wait_for_the_rank_with_one_more():
    # 100 decodes over 72 ranks: 28 ranks hold 2, 44 hold 1; every rank waits for 2
    r = busiest_rank(72, RankBatch(0, 0, 0, 0, 100, 100_000))
    assert (r.decode_batch, r.decode_context) == (2, 2000)
    assert straggler_wait(72, RankBatch(0, 0, 0, 0, 100, 100_000)) == pytest.approx(1.44)
    assert straggler_wait(72, RankBatch(0, 0, 0, 0, 144, 144_000)) == 1.0
    assert busiest_rank(1, RankBatch(5, 1, 9, 2, 3, 4)) == RankBatch(5, 1, 9, 2, 3, 4)
    with pytest.raises(ValueError, match="at least one attention DP rank"):
        busiest_rank(0, RankBatch(0, 0, 0, 0, 1, 1))


def test_the_scheduler_limits_are_each_ranks_summed_a_chunk_stays_one_ranks():
    per_rank = Batching(max_batch_size=64, max_tokens_per_step=4096)
    replica = replica_batching(per_rank, 8)
    assert (replica.max_batch_size, replica.max_tokens_per_step) == (512, 32768)
    assert replica.chunked_prefill == 4096
    fixed = replica_batching(Batching(chunked_prefill=1024), 8)
    assert fixed.chunked_prefill == 1024
    assert replica_batching(per_rank, 1) is per_rank


def _cost() -> DataParallelCost:
    par = InferenceParallelism(tp=1, attention_dp=8, ep=8)
    model = iteration_model(load_model("deepseek-v3"), inference_layout(par), "fp8", "fp8",
                            slots=256)
    return DataParallelCost(load_hardware("h200-sxm"), model)


def test_a_prompt_on_one_rank_makes_the_others_wait():
    cost = _cost()
    one = cost.step_time(Usage(), 8192, 0, 8192 * 8193 // 2, 1, 0, 0)
    # the same tokens as 8 prompts of 1,024, one per rank
    eight = cost.step_time(Usage(), 8192, 0, 8 * 1024 * 1025 // 2, 8, 0, 0)
    assert one > 3 * eight
    # a decode step of 9 sequences waits for the rank with 2
    assert cost.run_price(9, 9000, 1).time_s[0] > cost.run_price(8, 8000, 1).time_s[0]


def test_usage_totals_count_every_iteration():
    cost = _cost()
    usage = Usage()
    t = cost.step_time(usage, 1024, 0, 1024 * 1025 // 2, 1, 4, 4000)
    assert cost.totals(usage).time_s == pytest.approx(t)


@pytest.mark.parametrize(("change", "fragments"), [
    (lambda w: w.update(moe={}),
     ["workload.parallelism.ep", "ep=72 does not divide the 256 expert slots",
      "redundant_experts: 32 would give 288 = 72 x 4"]),
    (lambda w: w["parallelism"].update(attention_dp=8, ep=16),
     ["workload.parallelism.ep", "ep=16 must divide attention_dp*tp = 8*1 = 8"]),
    (lambda w: w["parallelism"].update(tp=8, attention_dp=1, ep=16),
     ["workload.parallelism.ep", "ep=16 must divide tp=8", "attention_dp"]),
    (lambda w: w["parallelism"].update(attention_dp=36, pp=2),
     ["workload.parallelism.pp", "attention_dp=36 runs with pp=1"]),
    (lambda w: w["parallelism"].update(tp=8, attention_dp=1, ep=8),
     ["workload.moe.redundant_experts", "need a layout with attention_dp > 1"]),
    (lambda w: w["parallelism"].update(attention_dp=72, ep=8),  # 256+32 slots / 8: etp 9
     ["workload.parallelism.ep", "attention_dp*tp/ep = 9", "FFN size (2048)"]),
])
def test_impossible_layouts_are_refused_naming_the_field(tmp_path, change, fragments):
    data = copy.deepcopy(NVL72)
    change(data["workload"])
    path = tmp_path / "s.yaml"
    import yaml
    path.write_text(yaml.safe_dump(data))
    assert_clean_error(run_cli("validate", str(path)), *fragments)


def test_a_dense_model_has_no_attention_dp_and_training_no_redundant_experts():
    data = copy.deepcopy(NVL72)
    data["model"] = "llama3.1-70b"
    data["workload"]["parallelism"] = {"tp": 8, "attention_dp": 2}
    data["workload"]["moe"] = {}
    data["cluster"] = {"accelerators": 16}
    with pytest.raises(InputErrors, match="attention_dp=2 needs a MoE model") as info:
        scenario_from_dict(data)
    assert info.value.errors[0].path == "workload.parallelism.attention_dp"
    training = {"name": "t", "hardware": "h100-sxm", "cluster": {"accelerators": 16},
                "model": "mixtral-8x7b",
                "workload": {"kind": "training", "seq_len": 4096, "global_batch_size": 64,
                             "parallelism": {"tp": 2, "ep": 8},
                             "moe": {"redundant_experts": 8}}}
    with pytest.raises(InputErrors, match="training places none"):
        scenario_from_dict(training)


def test_deepseek_v3_on_nvl72_with_attention_dp_and_ep72_through_the_cli(tmp_path):
    import yaml
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(NVL72))
    result = run_cli("run", "--quiet", "--format", "json", str(path))
    assert result.code == 0, result.err
    out = result.json()
    inference = out["inference"]
    assert (inference["requests"], inference["dropped"], inference["unfinished"]) == (300, 0, 0)
    # 8 sequences per rank on 72 ranks: at most 576 in a batch
    assert 0 < inference["batch_size"]["max"] <= 576
    # one replica of 72 devices, all busy
    assert out["utilization"]["busy"] > 0.5


def test_jumping_and_single_stepping_agree():
    scenario = scenario_from_dict(NVL72)
    jumped = run_serving(scenario).result.inference
    stepped = run_serving(scenario, jump=False).result.inference
    assert jumped.duration_s == stepped.duration_s
    assert jumped.output_tokens_per_s == stepped.output_tokens_per_s


def test_disaggregated_wide_ep_decode_pool_receives_kv_over_the_network():
    data = copy.deepcopy(NVL72)
    data["hardware"] = "h200-sxm"
    data["cluster"] = {"accelerators": 24}
    w = data["workload"]
    del w["replicas"]
    w["parallelism"] = {"tp": 8}
    w["moe"] = {"load_balancer": "eplb", "redundant_experts": 0, "dispatcher": "deepep"}
    w["disaggregation"] = {"prefill_replicas": 1, "decode_replicas": 1,
                           "decode_parallelism": {"tp": 1, "attention_dp": 16, "ep": 16}}
    result = run_serving(scenario_from_dict(data)).result.inference
    assert (result.requests, result.dropped, result.unfinished) == (300, 0, 0)
    assert result.tpot_s.mean > 0
    # wide-EP decode over IB (two servers) vs the same pool inside one NVL72 domain
    data["hardware"] = "gb200-nvl72"
    nvl = run_serving(scenario_from_dict(data)).result.inference
    assert nvl.tpot_s.mean < result.tpot_s.mean


def test_kv_transfers_into_a_dp_replica_use_one_lane_per_rank():
    hw, model = load_hardware("h200-sxm"), load_model("deepseek-v3")

    def transfer(dp: int) -> KVTransfer:
        return KVTransfer(hw=hw, model=model, kv_precision="fp8",
                          prefill=InferenceParallelism(tp=8),
                          decode=InferenceParallelism(tp=1, attention_dp=dp, ep=dp),
                          prefill_places=[Placement(0, 8), Placement(8, 8)],
                          decode_places=[Placement(16, dp)])
    two = transfer(2)
    a = two.schedule(0, 0, 10_000, 0.0)
    b = two.schedule(1, 0, 10_000, 0.0)  # another prefill replica, the second rank's lane
    assert a[0] == b[0] == 0.0
    one = transfer(1)
    a = one.schedule(0, 0, 10_000, 0.0)
    b = one.schedule(1, 0, 10_000, 0.0)
    assert b[0] == a[1]  # one lane: the second waits


def test_the_cached_rank_body_prices_the_same_ops_as_building_them():
    cost = _cost()
    for rank, total, low in ((1, 8, True), (300, 2000, False), (5000, 9000, False)):
        built = cost.pricer.cost(cost.model.rank_body(rank, total, low_latency=low))
        assert cost.rank_body(rank, total, low).time_s == pytest.approx(built.time_s, rel=1e-9)
    with pytest.raises(ValueError, match="a rank runs 1 to 8"):
        cost.model.rank_exchange(9, 8, low_latency=True)


def test_compare_keeps_an_attention_dp_layout_and_fills_replicas():
    from pathlib import Path

    from simulator.studies.compare_layout import inference_layout as compare_layout
    from simulator.studies.compare_layout import layout_of
    data = copy.deepcopy(NVL72)
    out, notes = compare_layout(data, Path("."), load_hardware("gb200-nvl72"), 144, "count", 72)
    assert out["workload"]["parallelism"] == NVL72["workload"]["parallelism"]
    assert out["workload"]["replicas"] == 2  # 144 / (72 x 1 x 1)
    assert "kept as written" in notes[0]
    assert layout_of(scenario_from_dict(out))[1] == "2 x tp1 pp1 attention-dp72 ep72"


def test_the_roofline_view_shows_one_dp_ranks_batch_with_the_exchange_over_all_ranks():
    from simulator.perf.roofline_view import roofline
    view = roofline(scenario_from_dict(NVL72))
    assert "attention_dp=72 ep=72" in view.title
    dispatch = [r for r in view.rows if r.name.startswith("moe.dispatch")]
    assert len(dispatch) == 2 and all("72 ranks" in r.name for r in dispatch)


def test_plan_refuses_an_attention_dp_scenario_naming_the_field():
    path = ROOT / "scenarios" / "deepseek-v3-gb200-nvl72-wide-ep.yaml"
    assert_clean_error(run_cli("plan", str(path)), "workload.parallelism.attention_dp",
                       "sweep them instead")


def test_a_request_longer_than_one_ranks_cache_is_dropped():
    # 8 ranks' cache capped at 8 x 4,096 tokens: a 6,000-token request fits the pooled
    # blocks but not the one rank it would live on
    data = copy.deepcopy(NVL72)
    data["cluster"] = {"accelerators": 8}
    w = data["workload"]
    w["parallelism"] = {"tp": 1, "attention_dp": 8, "ep": 8}
    w["moe"] = {}
    w["batching"] = {"max_batch_size": 8, "max_tokens_per_step": 2048,
                     "kv_cache_tokens": 8 * 4096}
    w["arrivals"] = {"process": "offline", "requests": 4}
    w["prompt_tokens"], w["output_tokens"] = 6000, 10
    result = run_serving(scenario_from_dict(data)).result.inference
    assert (result.dropped, result.requests) == (4, 0)
    w["prompt_tokens"] = 4000  # 4,009 tokens at most: fits one rank
    result = run_serving(scenario_from_dict(data)).result.inference
    assert (result.dropped, result.requests) == (0, 4)


def test_a_replayed_graph_gathers_every_ranks_padded_rows():
    """trtllm-bench's padded graphs on 8 H200 (attention DP 8, EP8, TensorRT-LLM's
    all-gather exchange): 2,555 sequences put 320 on the busiest rank, which replays the
    384 graph, and every rank replays the same one, so the all-gather moves 8 x 384 = 3,072
    rows where 2,555 sequences are real; a batch past the capture list runs eagerly, each
    rank its own tokens."""
    from simulator.engine.serving.stack_cost import StackCost
    from simulator.profiles.catalog import load_stack
    hw = load_hardware("h200-sxm")
    par = InferenceParallelism(tp=1, attention_dp=8, ep=8)
    model = iteration_model(load_model("llama4-maverick"), inference_layout(par), "fp8", "fp8",
                            slots=128, moe_gather=True)
    bench = load_stack(ROOT / "validation" / "stacks" / "trtllm-bench.yaml")
    stack = StackCost.of(bench, kernels=model.kernels(), max_batch=1024)
    cost = DataParallelCost(hw, model, stack)
    step = cost.decode_step(2555)
    padded = cost.rank_body(384, 2555, True, 3072)
    assert padded.time_s > cost.rank_body(384, 2555, True).time_s  # the wider collectives
    head, own = cost.head(384), step.own
    assert step.const.time_s == pytest.approx(padded.time_s + head.time_s + own.time_s,
                                              rel=1e-9)
    # 8 x 1,025 sequences: 1,025 a rank, above the 1,024 the capture list is capped at
    eager = cost.decode_step(8 * 1025)
    unpadded = cost.rank_body(1025, 8200, True)
    assert eager.const.time_s == pytest.approx(
        unpadded.time_s + cost.head(1025).time_s + eager.own.time_s, rel=1e-9)
