"""The MoE layer's ops against hand-derived shapes, bytes and groups.

Sources: DeepGEMM grouped-GEMM figures (physics_facts sec. 1), Megatron Core's alltoall
token dispatcher and MoE parallel folding (physics_facts sec. 6).
"""

from __future__ import annotations

from functools import cache

import pytest

from simulator import load_hardware, load_model
from simulator.perf.mlp_ops import ExpertGemm, experts_touched, moe_specs
from simulator.perf.ops import Collective, CommOp, ComputeOp, Group, Layout
from simulator.perf.opspec import Batch, Gemm, Phase, Prec, forward_ops
from simulator.perf.roofline import compute_op_time
from simulator.profiles.precision import Precision

BF16 = Precision.BF16
FP8 = Precision.FP8
PREC = Prec(weight=BF16, act=BF16, compute=BF16, kv=BF16, other=BF16)


@cache
def model(name: str):
    return load_model(name)


def training_batch(tokens: float, layout: Layout) -> Batch:
    residual = tokens / layout.tp if layout.sequence_parallel else tokens
    return Batch(phase=Phase.TRAIN, tokens=tokens, residual_tokens=residual, sequences=1,
                 pairs=tokens * (tokens + 1) / 2, kv_tokens=tokens, cached=0.0)


def layer(layout: Layout, tokens: float = 4096.0, imbalance: float = 1.0,
          name: str = "deepseek-v3") -> list:
    specs = moe_specs(model(name), layout, training_batch(tokens, layout), PREC, imbalance)
    return forward_ops(specs, PREC)


def named(ops, name: str):
    [op] = [o for o in ops if o.name == name]
    return op


def tflops(hw, gemm: Gemm) -> float:
    [op] = gemm.forward(Prec(weight=FP8, act=FP8, compute=FP8, kv=FP8, other=BF16))
    return op.flops / compute_op_time(hw, op).time_s / 1e12


def test_a_grouped_expert_gemm_runs_at_the_efficiency_of_one_experts_size():
    # DeepGEMM masked layout on H800, N=4096, K=7168, fp8 (physics_facts sec. 1): the same
    # 60 GFLOP as 1024 rows x 1 group runs at 1233 TFLOP/s, as 256 rows x 4 groups at 932.
    hw = load_hardware("h800-sxm")
    one = tflops(hw, ExpertGemm(name="e", m=1024, k=7168, n=4096, groups=1))
    four = tflops(hw, ExpertGemm(name="e", m=256, k=7168, n=4096, groups=4))
    # size curve: eff = 0.675 F/(F + 3.5e9), F one expert's 2mkn; peak 1979 TFLOP/s; the
    # kernel overhead (4.6 us) on top
    def expected(m: int, groups: int) -> float:
        f = 2 * m * 7168 * 4096
        seconds = groups * f / (1979e12 * 0.675 * f / (f + 3.5e9)) + 4.6e-6
        return groups * f / seconds / 1e12
    assert one == pytest.approx(expected(1024, 1), rel=1e-6)  # 1151 (measured 1233)
    assert four == pytest.approx(expected(256, 4), rel=1e-6)  # 1001 (measured 932)
    assert four / one == pytest.approx(0.869, abs=0.002)  # measured 932/1233 = 0.76
    # the launch-sized curve would have priced both alike
    assert tflops(hw, Gemm(name="e", m=256, k=7168, n=4096, groups=4)) == pytest.approx(one)


def test_decode_experts_read_the_weights_of_every_touched_expert():
    # 16 tokens on one device (ep=1), DeepSeek-V3: 256 experts, top-8, h 7168, f_e 2048
    ops = layer(Layout(), tokens=16)
    touched = 256 * (1 - (1 - 8 / 256) ** 16)  # 101.5
    gate_up, down = named(ops, "moe.experts.gate_up"), named(ops, "moe.experts.down")
    rows = 16 * 8 / touched
    assert gate_up.bytes == pytest.approx(touched * (7168 * 4096 + rows * (7168 + 4096)) * 2)
    assert down.bytes == pytest.approx(touched * (2048 * 7168 + rows * (2048 + 7168)) * 2)
    # a few rows per expert: judged as one 128-row tile of one expert, not of the launch
    assert gate_up.gemm_flops_each == 2 * 128 * 7168 * 4096


def test_router_topk_permute_and_unpermute_move_the_bytes_of_their_tokens():
    t, h, e, k = 4096, 7168, 256, 8
    ops = layer(Layout())
    assert named(ops, "moe.router").flops == 2 * t * h * e
    assert named(ops, "moe.topk").bytes == t * e * 2 + t * k * 8  # scores in, (idx, w) out
    assert named(ops, "moe.permute").bytes == 2 * t * k * h * 2  # k copies read and written
    assert named(ops, "moe.unpermute").bytes == (t * k * h + t * h) * 2
    assert named(ops, "moe.unpermute").flops == 2 * t * k * h
    assert not [o for o in ops if o.name.startswith("moe.sort")]  # no EP: nothing to sort


def test_ep_sorts_received_rows_by_local_expert_and_sends_two_all_to_alls():
    t, h, k = 4096, 7168, 8
    ops = layer(Layout(ep=8))
    assert named(ops, "moe.sort").bytes == 2 * t * k * h * 2
    assert named(ops, "moe.unsort").bytes == 2 * t * k * h * 2
    a2a = [o for o in ops if isinstance(o, CommOp)]
    assert [o.name for o in a2a] == ["moe.dispatch", "moe.combine"]
    assert all(o.bytes == t * k * h * 2 and o.group == Group(8, 1) for o in a2a)


def test_expert_tp_equal_to_tp_gathers_the_received_rows_in_the_tp_group():
    # tp=4 with sequence parallelism: each rank routes t/4 tokens; after the all-to-all the
    # four ranks of an expert all-gather what they received and each runs f_e/4 columns
    t, h, k = 4096, 7168, 8
    ops = layer(Layout(tp=4, ep=8, sequence_parallel=True))
    assert named(ops, "moe.dispatch").bytes == t / 4 * k * h * 2
    assert named(ops, "moe.dispatch").group == Group(8, 4)  # EP ranks tp apart
    gather = named(ops, "moe.etp_all_gather")
    assert gather.bytes == t * k * h * 2 and gather.group == Group(4, 1)
    assert named(ops, "moe.experts.down").flops == pytest.approx(2 * t * k * 512 * h)
    shared = named(ops, "mlp.shared.sp_all_gather")  # the shared expert needs all t tokens
    assert shared.bytes == t * h * 2


def test_expert_tp_one_folds_ep_over_the_attention_tp_ranks():
    # tp=4, etp=1, ep=8: the EP group is 8 consecutive ranks (two attention-TP groups);
    # no gather; each rank runs whole experts (f_e = 2048 columns) on its own rows
    t, h, k = 4096, 7168, 8
    folded = layer(Layout(tp=4, ep=8, etp=1, sequence_parallel=True))
    same = layer(Layout(tp=4, ep=8, sequence_parallel=True))
    assert named(folded, "moe.dispatch").group == Group(8, 1)
    assert not [o for o in folded if o.name == "moe.etp_all_gather"]
    down = named(folded, "moe.experts.down")
    assert down.flops == pytest.approx(2 * (t / 4) * k * 2048 * h)
    assert down.flops == pytest.approx(named(same, "moe.experts.down").flops)  # same work
    touched = experts_touched(256, 8, 8 * t / 4) / 8  # tokens of the EP group, per rank
    assert down.bytes == pytest.approx(touched * (2048 * h + (t / 4 * k / touched)
                                                  * (2048 + h)) * 2)


def test_expert_tp_different_from_tp_needs_sequence_parallelism():
    with pytest.raises(ValueError, match="needs sequence parallelism"):
        layer(Layout(tp=4, ep=8, etp=1))


def test_imbalance_scales_the_busiest_ranks_rows_and_all_to_all_bytes():
    base, hot = layer(Layout(ep=8)), layer(Layout(ep=8), imbalance=1.5)
    for name in ("moe.dispatch", "moe.combine", "moe.sort"):
        assert named(hot, name).bytes == pytest.approx(1.5 * named(base, name).bytes)
    assert named(hot, "moe.experts.down").flops == pytest.approx(
        1.5 * named(base, "moe.experts.down").flops)
    assert named(hot, "moe.permute").bytes == named(base, "moe.permute").bytes  # own tokens


def test_compute_ops_are_typed():
    assert all(isinstance(o, ComputeOp | CommOp) for o in layer(Layout(ep=8)))
    assert Collective.ALL_TO_ALL in {o.collective for o in layer(Layout(ep=8))
                                     if isinstance(o, CommOp)}


def test_expert_parameters_shard_over_ep_times_etp():
    from simulator.perf.memory import all_stage_params
    m = model("mixtral-8x7b")  # 32 layers of 8 experts, 3 x 4096 x 14336 each
    experts = 32 * 8 * 3 * 4096 * 14336
    [default] = all_stage_params(m, tp=2, pp=1, ep=4)  # etp = tp = 2
    [folded] = all_stage_params(m, tp=2, pp=1, ep=8, etp=1)
    assert default.expert == pytest.approx(experts / (4 * 2))
    assert folded.expert == pytest.approx(experts / (8 * 1))
    assert folded.dense == default.dense  # attention and router stay split by tp


def test_expert_all_to_all_inside_nvlink5_runs_at_its_kernel_efficiency_and_floor():
    from simulator.perf.collectives import collective_time
    hw = load_hardware("gb200-nvl72")
    s = 2048 * 8 * 7168 * 2  # TensorRT-LLM's EP8 point: 2048 tokens, top-8, bf16
    cost = collective_time(hw, Collective.ALL_TO_ALL, s, Group(8, 1))
    # 7/8 of the buffer leaves at 0.74 x 900 GB/s, plus the 25 us floor (not 7 x 3 us)
    assert cost.time_s == pytest.approx(7 / 8 * s / (0.74 * 900e9) + 25e-6)
    # TensorRT-LLM measured 311.8 us (dispatch) and 322.6 us (combine)
    assert 300e-6 < cost.time_s < 360e-6
    wide = collective_time(hw, Collective.ALL_TO_ALL, s, Group(64, 1))
    assert wide.time_s == pytest.approx(63 / 64 * s / (0.74 * 900e9) + 25e-6)  # measured 399


def test_expert_all_to_all_across_nodes_leaves_on_each_devices_own_nic():
    from simulator.perf.collectives import collective_time
    hw = load_hardware("h800-sxm")  # 8 per node; NVLink 200 GB/s one-way, one 50 GB/s NIC
    s = 4096 * 8 * 7168  # DeepEP's point: 4096 tokens, top-8, fp8 dispatch
    cost = collective_time(hw, Collective.ALL_TO_ALL, s, Group(64, 1))
    local, remote = s * 8 / 64, s * 56 / 64
    beta = max(7 / 8 * local / (0.78 * 200e9), remote / (0.86 * 50e9))
    assert cost.fabric == "hierarchical"
    assert cost.time_s == pytest.approx(beta + 7 * 3e-6 + 56 * 10e-6)  # no floor given: steps
    # without an all_to_all block a profile keeps the ring collective efficiencies
    mi = load_hardware("mi300x")
    assert mi.efficiency.all_to_all is None
    link = 448e9 * mi.efficiency.scale_up_collective.value
    mesh = collective_time(mi, Collective.ALL_TO_ALL, s, Group(8, 1))
    assert mesh.time_s == pytest.approx(7 / 8 * s / link + 7 * 5e-6)


def test_a_bad_all_to_all_efficiency_is_one_clear_error(tmp_path):
    from tests.conftest import assert_clean_error, edited_h100_profile, run_cli
    bad = edited_h100_profile(tmp_path, "    scale_up: {value: 0.78,",
                              "    scale_up: {value: -0.5,")
    assert_clean_error(run_cli("validate", str(bad)), "efficiency.all_to_all.scale_up")


def test_a_deduplicating_dispatch_crosses_the_network_once_per_domain():
    from simulator.perf.collectives import collective_time
    hw = load_hardware("h800-sxm")  # 8 nodes of 8: EP64
    s = 4096 * 8 * 7168  # 4096 tokens x top-8 copies, fp8
    nvlink = 7 / 8 * s / (0.78 * 200e9)  # every copy one NVLink hop w.p. 7/8
    for limit, reach in ((0, 8), (4, 4)):  # DeepSeek-V3 routes to at most 4 nodes
        domains = reach * (1 - (1 - 1 / reach) ** 8)  # 5.25 of 8; 3.60 of 4
        remote = 4096 * 7168 * domains * 7 / 8  # once per remote node
        cost = collective_time(hw, Collective.ALL_TO_ALL, s, Group(64, 1, 8, limit))
        assert cost.time_s == pytest.approx(max(nvlink, remote / (0.86 * 50e9))
                                            + 7 * 3e-6 + 56 * 10e-6)
    plain = collective_time(hw, Collective.ALL_TO_ALL, s, Group(64, 1))
    assert plain.time_s == pytest.approx(s * 56 / 64 / (0.86 * 50e9) + 7 * 3e-6 + 56 * 10e-6)


def test_the_deepep_dispatcher_reaches_the_layers_all_to_alls():
    ops = layer(Layout(ep=64, ep_dedup=True, ep_max_domains=4))
    for name in ("moe.dispatch", "moe.combine"):
        assert named(ops, name).group == Group(64, 1, 8, 4)
    assert named(layer(Layout(ep=64)), "moe.dispatch").group == Group(64, 1)
