"""Wide expert parallelism: the dispatch volume and its time on the real fabric (inside one
NVLink domain vs across InfiniBand), the kernel modes, and the memory per device of an
attention-DP replica, against hand arithmetic."""

from __future__ import annotations

import pytest

from simulator import load_hardware, load_model
from simulator.loading import scenario_from_dict
from simulator.perf.collectives import comm_op_time
from simulator.perf.footprint import inference_footprint
from simulator.perf.layouts import inference_layout
from simulator.perf.memory import kv_bytes_per_token, runtime_reserve, stage_params
from simulator.perf.ops import CommOp
from simulator.perf.opspec import forward_ops
from simulator.perf.serving_iteration import iteration_model
from simulator.perf.wide_ep import dispatch_elements, wide_ep_moe_specs
from simulator.profiles.inference import InferenceParallelism
from simulator.profiles.moe_routing import Dispatcher, MoeRouting

DS = load_model("deepseek-v3")
H, K = 7168, 8  # DeepSeek-V3: hidden size, experts per token


def _comms(par: InferenceParallelism, rank: int, total: int, *, imbalance: float = 1.0,
           moe: MoeRouting | None = None, low_latency: bool = True) -> dict[str, CommOp]:
    model = iteration_model(DS, inference_layout(par, moe), "fp8", "fp8", imbalance,
                            slots=288)
    batch = model._prefill_batch(rank, 0, float(rank), 1)
    specs = wide_ep_moe_specs(DS, model.layout, batch, total_tokens=float(total), p=model.prec,
                              imbalance=imbalance, slots=288, low_latency=low_latency)
    return {op.name: op for op in forward_ops(specs, model.prec) if isinstance(op, CommOp)}


def test_the_dispatch_moves_the_larger_of_what_a_device_sends_and_receives():
    nvl72 = InferenceParallelism(tp=1, attention_dp=72, ep=72)
    layout = inference_layout(nvl72)
    assert (layout.tp, layout.dp, layout.ep, layout.expert_tp) == (1, 72, 72, 1)
    # 64 tokens on each of 72 ranks: each device sends 64·8 copies and receives 4608·8/72
    assert dispatch_elements(rank_tokens=64, total_tokens=4608, layout=layout, top_k=K,
                             imbalance=1.0) == 512
    # the hottest rank receives 1.109 x the mean (EPLB at EP32's spread)
    assert dispatch_elements(rank_tokens=64, total_tokens=4608, layout=layout, top_k=K,
                             imbalance=1.109) == pytest.approx(4608 * 8 / 72 * 1.109)
    # a straggler rank with 128 tokens sends twice the mean
    assert dispatch_elements(rank_tokens=128, total_tokens=4608, layout=layout, top_k=K,
                             imbalance=1.109) == 1024
    comms = _comms(nvl72, 64, 4608)
    assert comms["moe.dispatch"].bytes == 512 * H * 1  # fp8 dispatch
    assert comms["moe.combine"].bytes == 512 * H * 2  # bf16 combine
    assert "moe.all_reduce" not in comms  # tp = 1: nothing exchanged inside a rank


def test_expert_tp_sends_each_copy_to_every_device_of_its_group():
    # 8 ranks of tp 2 = 16 devices, ep 8: each expert split over etp = 2 devices
    par = InferenceParallelism(tp=2, attention_dp=8, ep=8)
    layout = inference_layout(par)
    assert layout.expert_tp == 2 and layout.ep_group.stride == 2
    comms = _comms(par, 100, 800)
    # a device routes 100/2 tokens, 8 copies each, to the 2 devices of each expert's group
    assert comms["moe.dispatch"].bytes == 50 * 8 * 2 * H
    # the rank's two devices then all-reduce the slices with the shared expert (16 bits)
    assert comms["moe.all_reduce"].bytes == 100 * H * 2
    assert comms["moe.all_reduce"].group.size == 2


def test_inside_one_nvlink_domain_the_all_to_all_runs_at_the_kernels_nvlink_rate():
    hw = load_hardware("gb200-nvl72")
    op = _comms(InferenceParallelism(tp=1, attention_dp=72, ep=72), 64, 4608)["moe.dispatch"]
    # all 72 members in the domain: direct, 71/72 of the buffer over NVLink 5 (900 GB/s one
    # way) at the expert kernels' 0.74, plus the kernels' 25 us floor
    hand = 25e-6 + (71 / 72) * 512 * H / (900e9 * 0.74)
    cost = comm_op_time(hw, op)
    assert cost.fabric == "scale_up"
    assert cost.time_s == pytest.approx(hand, rel=1e-9)


def test_across_infiniband_the_remote_share_leaves_on_each_devices_own_nic():
    hw = load_hardware("h100-sxm")
    op = _comms(InferenceParallelism(tp=1, attention_dp=64, ep=64), 64, 4096)["moe.dispatch"]
    s = 512 * H  # bytes each device sends
    # 8 nodes of 8: 8/64 of the buffer stays on NVLink, 56/64 leaves over the device's own
    # 400 Gb/s NIC (50 GB/s) at the kernels' 0.86; the two run concurrently
    local, remote = s * 8 / 64, s * 56 / 64
    beta = max((7 / 8) * local / (450e9 * 0.78), remote / (50e9 * 0.86))
    alpha = 7 * 3e-6 + 56 * 10e-6  # no kernel floor in the H100 profile: a latency per peer
    cost = comm_op_time(hw, op)
    assert cost.fabric == "hierarchical"
    assert cost.time_s == pytest.approx(beta + alpha, rel=1e-9)
    # the same exchange inside NVL72 is an order of magnitude faster
    nvl = comm_op_time(load_hardware("gb200-nvl72"),
                       _comms(InferenceParallelism(tp=1, attention_dp=64, ep=64), 64,
                              4096)["moe.dispatch"])
    assert cost.time_s > 10 * nvl.time_s


def test_deepep_prefill_kernels_deduplicate_per_domain_and_decode_kernels_do_not():
    par = InferenceParallelism(tp=1, attention_dp=32, ep=32)
    deepep = MoeRouting(dispatcher=Dispatcher.DEEPEP, max_domains_per_token=4)
    normal = _comms(par, 1024, 32 * 1024, moe=deepep, low_latency=False)["moe.dispatch"]
    low = _comms(par, 1024, 32 * 1024, moe=deepep, low_latency=True)["moe.dispatch"]
    assert (normal.group.copies, normal.group.max_domains) == (8, 4)
    assert low.group.copies == 0  # every copy on its own
    hw = load_hardware("h100-sxm")  # 4 nodes: deduplication saves network bytes
    assert comm_op_time(hw, normal).time_s < comm_op_time(hw, low).time_s


def _scenario(par: dict, redundant: int = 32, **batching):
    return scenario_from_dict({
        "name": "w", "hardware": "gb200-nvl72", "cluster": {"accelerators": 72},
        "model": "deepseek-v3",
        "workload": {"kind": "inference", "precision": "fp8", "replicas": 1,
                     "parallelism": par, "moe": {"redundant_experts": redundant},
                     "arrivals": {"process": "offline", "requests": 1},
                     "prompt_tokens": 1000, "output_tokens": 100,
                     "batching": batching or {"max_batch_size": 64}}})


def test_memory_per_device_experts_over_all_devices_dense_weights_per_rank():
    scenario = _scenario({"tp": 1, "attention_dp": 72, "ep": 72})
    whole = stage_params(DS, 1, 1)  # one device holding everything: dense and expert counts
    footprint = inference_footprint(scenario)
    # fp8: 1 byte per weight; the dense part (attention, dense and shared FFNs, embedding,
    # head) on each rank's single device, the 288 expert slots over all 72 devices; the
    # default stack (trtllm) keeps the embedding and head 16-bit: 1 byte more for each of
    # the two 129,280 x 7,168 matrices
    wide = 2 * 129_280 * H
    assert footprint.parts["weights"] == pytest.approx(whole.dense + whole.expert * 288 / 256
                                                       / 72 + wide)
    # tp 2 per rank (36 ranks): dense halves, experts still over 72 devices
    half = inference_footprint(_scenario({"tp": 2, "attention_dp": 36, "ep": 72}))
    assert half.parts["weights"] == pytest.approx(whole.dense / 2 + whole.expert * 288 / 256
                                                  / 72 + wide / 2)
    # workspace per rank: max_tokens_per_step x (4h + 2·ffn/tp) 16-bit + fp32 logits
    act = 2.0 * 8192 * (4 * H + 2 * 2048) + 4.0 * 64 * DS.vocab_size
    assert footprint.parts["activations"] == pytest.approx(act)
    assert footprint.parts["runtime_reserve"] == runtime_reserve(scenario.hardware)


def test_kv_capacity_is_each_ranks_own_cache_summed():
    from simulator.engine.serving.kv_cache import kv_capacity
    scenario = _scenario({"tp": 1, "attention_dp": 72, "ep": 72})
    par = scenario.workload.parallelism
    per_token = kv_bytes_per_token(DS, "fp8", 1, 1)  # the MLA latent: 61 x 576 bytes
    assert per_token == 61 * (512 + 64)
    headroom = inference_footprint(scenario).headroom
    cap = kv_capacity(scenario, par)
    assert cap.blocks == int(headroom / per_token * 72 // 16)
