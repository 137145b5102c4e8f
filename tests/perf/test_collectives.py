"""Collective cost model: hand-derived checks against the alpha-beta formulas, and properties.

Expected values are written out from the formulas in docs/modelling_collectives.md with the
profile's numbers, not taken from the code, so that a changed formula fails here.
"""

from __future__ import annotations

import math
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import hardware_ids, load_hardware
from simulator.perf.collectives import (
    NVLS_GAIN,
    CollectiveCost,
    collective_time,
    comm_op_time,
)
from simulator.perf.ops import Collective, CommOp, Group

GB = 1e9
AR, RS, AG, A2A, P2P = (Collective.ALL_REDUCE, Collective.REDUCE_SCATTER,
                        Collective.ALL_GATHER, Collective.ALL_TO_ALL, Collective.SEND_RECV)


@cache
def hw(profile_id: str):
    return load_hardware(profile_id)


def up_eff(profile_id: str) -> float:
    return hw(profile_id).efficiency.scale_up_collective.value


def out_eff(profile_id: str) -> float:
    return hw(profile_id).efficiency.scale_out_collective.value


def close(a: float, b: float, rel: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=rel)


# --- single scale-up domain --------------------------------------------------------------

def test_ring_all_reduce_on_8_h100_matches_the_nccl_formula():
    s, alpha = 1 * GB, 3e-6  # h100-sxm: 900 GB/s bidirectional NVLink = 450 GB/s one way
    cost = collective_time(hw("h100-sxm"), AR, s, Group(8), algorithm="ring")
    expected = 2 * 7 / 8 * s / (450e9 * up_eff("h100-sxm")) + 14 * alpha
    assert cost.fabric == "scale_up" and cost.algorithm == "ring"
    assert close(cost.time_s, expected)
    assert close(cost.bus_bytes, 2 * 7 / 8 * s)


@pytest.mark.parametrize("profile_id", ["h100-sxm", "mi300x", "tpu-v5e", "trainium2"])
@pytest.mark.parametrize("group", [Group(4), Group(8), Group(2, 4), Group(64, 8)])
def test_reduce_scatter_plus_all_gather_is_a_ring_all_reduce(profile_id, group):
    s = 256e6
    rs = collective_time(hw(profile_id), RS, s, group, algorithm="ring")
    ag = collective_time(hw(profile_id), AG, s, group, algorithm="ring")
    ar = collective_time(hw(profile_id), AR, s, group, algorithm="ring")
    assert close(rs.time_s + ag.time_s, ar.time_s)
    assert close((rs + ag).bus_bytes, ar.bus_bytes)


def test_nvls_is_picked_for_large_all_reduce_and_priced_at_the_measured_gain():
    s = 1 * GB
    cost = collective_time(hw("h100-sxm"), AR, s, Group(8))
    bw = 450e9 * up_eff("h100-sxm")
    assert cost.algorithm == "nvls" and cost.bus_bytes == s
    assert close(cost.time_s, 2 * 7 / 8 * s / (bw * NVLS_GAIN) + 2 * 3 * 3e-6)


def test_nvls_needs_switch_side_reduction():
    with pytest.raises(ValueError, match="'nvls' is not available"):
        collective_time(hw("a100-sxm"), AR, GB, Group(8), algorithm="nvls")
    assert collective_time(hw("a100-sxm"), AR, GB, Group(8)).algorithm != "nvls"


def test_all_to_all_on_a_switch_is_direct():
    s = 64e6
    cost = collective_time(hw("h100-sxm"), A2A, s, Group(8))
    # expert all-to-all kernels: the profile's all_to_all fraction (0.78), not the ring's
    expected = 7 / 8 * s / (450e9 * 0.78) + 7 * 3e-6
    assert cost.algorithm == "direct" and close(cost.time_s, expected)


def test_send_recv_inside_and_across_domains():
    s = 32e6
    inside = collective_time(hw("h100-sxm"), P2P, s, Group(2, 4))
    across = collective_time(hw("h100-sxm"), P2P, s, Group(2, 8))
    assert close(inside.time_s, s / (450e9 * up_eff("h100-sxm")) + 3e-6)
    assert across.fabric == "scale_out"
    assert close(across.time_s, s / (50e9 * out_eff("h100-sxm")) + 10e-6)


def test_gb200_nvl72_keeps_72_contiguous_ranks_on_nvlink():
    cost = collective_time(hw("gb200-nvl72"), AR, GB, Group(72))
    assert cost.fabric == "scale_up"
    assert collective_time(hw("gb200-nvl72"), AR, GB, Group(144)).fabric == "hierarchical"


def test_mesh_subgroup_gets_only_its_own_links():
    # mi300x: 448 GB/s one way split over 7 peer links; 4 members use 3 of them
    s = 1 * GB
    four = collective_time(hw("mi300x"), AR, s, Group(4), algorithm="ring")
    eight = collective_time(hw("mi300x"), AR, s, Group(8), algorithm="ring")
    bw4 = 448e9 * 3 / 7 * up_eff("mi300x")
    assert close(four.time_s, 2 * 3 / 4 * s / bw4 + 6 * 5e-6)
    assert four.time_s / four.bus_bytes > eight.time_s / eight.bus_bytes
    assert four.time_s > eight.time_s


def test_torus_rings_per_dimension():
    # tpu-v5e 16x16: 200 GB/s one way over 4 link directions = 50 GB/s per direction;
    # one full dimension is a wrap-around ring over two links, both directions: 100 GB/s
    s, eff, alpha = 1 * GB, up_eff("tpu-v5e"), 2e-6
    one_dim = collective_time(hw("tpu-v5e"), AG, s, Group(16))
    two_dims = collective_time(hw("tpu-v5e"), AG, s, Group(256))
    assert one_dim.algorithm == "torus_ring"
    assert close(one_dim.time_s, 15 / 16 * s / (100e9 * eff) + 15 * alpha)
    assert close(two_dims.time_s, 255 / 256 * s / (200e9 * eff) + 30 * alpha)
    # a line of 4 (no wrap-around) is limited by its middle link: 3/4 of a ring
    line = collective_time(hw("tpu-v5e"), AG, s, Group(4))
    assert close(line.time_s, 3 / 4 * s / (0.75 * 100e9 * eff) + 3 * alpha)
    # all-to-all: floor(16²/4)/16 = 4 hops per byte over the ring's 100 GB/s
    a2a = collective_time(hw("tpu-v5e"), A2A, s, Group(16))
    assert close(a2a.time_s, 4 * s / (100e9 * eff) + 15 * alpha)
    with pytest.raises(ValueError, match="'tree' is not available"):
        collective_time(hw("tpu-v5e"), AR, s, Group(16), algorithm="tree")


# --- across domains ----------------------------------------------------------------------

def test_hierarchical_beats_a_flat_ring_across_nodes():
    # 64 ranks at stride 1 on 8-GPU nodes: 8 members in each of 8 domains
    s, h = 1 * GB, hw("h100-sxm")
    hier = collective_time(h, AR, s, Group(64), algorithm="hierarchical")
    flat = collective_time(h, AR, s, Group(64), algorithm="ring")
    assert hier.fabric == flat.fabric == "hierarchical"
    assert hier.time_s < flat.time_s
    assert collective_time(h, AR, s, Group(64)).algorithm == "hierarchical"
    up, out = 450e9 * up_eff("h100-sxm"), 50e9 * out_eff("h100-sxm")
    expected = (max(2 * 7 / 8 * s / up, 2 * 7 / 8 * (s / 8) / out)  # phases overlap
                + 2 * 7 * 3e-6 + 2 * 7 * 10e-6)
    assert close(hier.time_s, expected)
    # 63 steps per pass: 7 cross the network (10 us), 56 stay on NVLink (3 us)
    assert close(flat.time_s, 2 * 63 / 64 * s / 8 / out + 2 * (56 * 3e-6 + 7 * 10e-6))


def test_reduce_scatter_across_domains_is_a_flat_ring():
    # NCCL has no hierarchical reduce-scatter or all-gather for several ranks per node (Tree
    # and NVLSTree are all-reduce algorithms, PAT is for one rank per node), so a DP group of
    # 256 ranks at stride 2 on GB200 NVL72 (36 per 72-GPU domain, 8 domains) runs one ring:
    # 255 steps, 7 over InfiniBand (10 us) and 248 over NVLink (3 us).
    s, h = 502e6, hw("gb200-nvl72")
    for collective in (RS, AG):
        cost = collective_time(h, collective, s, Group(256, 2))
        assert cost.fabric == "hierarchical" and cost.algorithm == "ring"
        up, out = 900e9 * up_eff("gb200-nvl72"), 50e9 * out_eff("gb200-nvl72")
        beta = max(255 / 256 * s / 36 / out, 255 / 256 * s * 35 / 36 / up)  # NVLink decides
        assert close(cost.time_s, beta + 248 * 3e-6 + 7 * 10e-6)
        with pytest.raises(ValueError, match="'hierarchical' is not available"):
            collective_time(h, collective, s, Group(256, 2), algorithm="hierarchical")


def test_dp_group_with_one_rank_per_node_is_pure_scale_out():
    # DP=64 behind TP=8 (stride 8): one member per node, nothing to do on NVLink
    s = 1 * GB
    cost = collective_time(hw("h100-sxm"), AR, s, Group(64, 8), algorithm="ring")
    assert cost.fabric == "scale_out"
    assert close(cost.time_s, 2 * 63 / 64 * s / (50e9 * out_eff("h100-sxm")) + 126 * 10e-6)


def test_tp16_on_8_gpu_nodes_crosses_scale_out_and_is_slower_than_tp8():
    s = 256e6
    tp8 = collective_time(hw("h100-sxm"), AR, s, Group(8))
    tp16 = collective_time(hw("h100-sxm"), AR, s, Group(16))
    assert tp8.fabric == "scale_up" and tp16.fabric == "hierarchical"
    assert tp16.time_s > tp8.time_s


def test_tree_wins_small_messages_at_large_scale_and_ring_wins_large_ones():
    group = Group(1024, 8)  # one rank per node
    assert collective_time(hw("h100-sxm"), AR, 4e3, group).algorithm == "tree"
    assert collective_time(hw("h100-sxm"), AR, 4e3, Group(8, 8)).algorithm == "tree"
    assert collective_time(hw("h100-sxm"), AR, 100 * GB, Group(8, 8)).algorithm == "ring"


# --- bookkeeping and errors --------------------------------------------------------------

def test_group_of_one_or_no_bytes_is_free_and_local():
    for cost in (collective_time(hw("h100-sxm"), AR, GB, Group(1)),
                 collective_time(hw("h100-sxm"), A2A, 0, Group(64))):
        assert cost.time_s == 0 and cost.fabric == "local" and cost.bus_bytes == 0


def test_comm_op_repeats_count_times():
    op = CommOp(name="tp-ar", collective=AR, bytes=16e6, group=Group(8), count=3)
    one = collective_time(hw("h100-sxm"), AR, 16e6, Group(8))
    three = comm_op_time(hw("h100-sxm"), op)
    assert close(three.time_s, 3 * one.time_s) and close(three.bus_bytes, 3 * one.bus_bytes)
    assert sum([one, one, one]).time_s == pytest.approx(three.time_s)
    assert comm_op_time(hw("h100-sxm"), CommOp(name="none", collective=AR, bytes=16e6,
                                               group=Group(8), count=0)).time_s == 0


@pytest.mark.parametrize(("nbytes", "group", "collective", "algorithm", "message"), [
    (-1.0, Group(8), AR, "auto", "bytes must be a finite number >= 0"),
    (float("nan"), Group(8), AR, "auto", "bytes must be a finite number >= 0"),
    (1e6, Group(0), AR, "auto", "group size must be >= 1"),
    (1e6, Group(8, 0), AR, "auto", "stride must be >= 1"),
    (1e6, Group(4), P2P, "auto", "send_recv is between a pair"),
    (1e6, Group(8), AR, "butterfly", "unknown collective algorithm 'butterfly'"),
    (1e6, Group(8), RS, "tree", "choose from auto, ring"),
])
def test_bad_inputs_say_what_is_wrong(nbytes, group, collective, algorithm, message):
    with pytest.raises(ValueError, match=message):
        collective_time(hw("h100-sxm"), collective, nbytes, group, algorithm)


def test_costs_add():
    a = CollectiveCost(time_s=1.0, fabric="scale_up", algorithm="ring", bus_bytes=10.0)
    b = CollectiveCost(time_s=2.0, fabric="scale_out", algorithm="tree", bus_bytes=5.0)
    assert a + b == CollectiveCost(time_s=3.0, fabric="mixed", algorithm="ring+tree",
                                   bus_bytes=15.0)
    assert a + collective_time(hw("h100-sxm"), AR, 0, Group(8)) == a


# --- properties --------------------------------------------------------------------------

profiles = st.sampled_from(hardware_ids())
collectives = st.sampled_from(list(Collective))
groups = st.builds(Group, st.integers(1, 300), st.sampled_from([1, 2, 4, 8, 16, 64, 256]))
sizes = st.floats(0, 1e11, allow_nan=False)


def scaled_links(h, up_factor: float, out_factor: float):
    """The profile with its scale-up and scale-out link bandwidths multiplied."""
    def bigger(fabric, factor):
        bw = fabric.bandwidth_per_device
        return fabric.model_copy(
            update={"bandwidth_per_device": bw.model_copy(update={"value": bw.value * factor})})
    return h.model_copy(update={"scale_up": bigger(h.scale_up, up_factor),
                                "scale_out": bigger(h.scale_out, out_factor)})


def pair_if_p2p(collective, group):
    return Group(min(group.size, 2), group.stride) if collective is P2P else group


@settings(max_examples=300, deadline=None)
@given(profiles, collectives, groups, sizes, st.floats(1, 10), st.floats(1, 10))
def test_more_link_bandwidth_never_slows_a_collective(pid, collective, group, s, fu, fo):
    group = pair_if_p2p(collective, group)
    before = collective_time(hw(pid), collective, s, group)
    after = collective_time(scaled_links(hw(pid), fu, fo), collective, s, group)
    assert after.time_s <= before.time_s * (1 + 1e-12)


@settings(max_examples=300, deadline=None)
@given(profiles, collectives, groups, sizes, sizes)
def test_time_never_falls_with_more_bytes(pid, collective, group, s1, s2):
    group = pair_if_p2p(collective, group)
    small, large = sorted((s1, s2))
    t_small = collective_time(hw(pid), collective, small, group).time_s
    t_large = collective_time(hw(pid), collective, large, group).time_s
    assert t_small <= t_large * (1 + 1e-12)


@settings(max_examples=200, deadline=None)
@given(profiles, groups, st.floats(1, 1e11))
def test_ring_all_reduce_moves_at_least_the_ring_minimum(pid, group, s):
    cost = collective_time(hw(pid), AR, s, group, algorithm="ring")
    n = group.size
    assert cost.bus_bytes >= 2 * (n - 1) / n * s * (1 - 1e-12)
    assert cost.time_s >= 0


def test_inside_one_domain_the_tree_is_not_offered_and_rccl_small_all_reduce_is_a_ring():
    # NCCL/RCCL's Tree is a chain inside a node (NCCL 2.4 blog): no log-depth tree there.
    # Held-out check, physics_facts §7 (Azure ND MI300X v5, RCCL all-reduce over 8 GPUs):
    # 22.4 GB/s busbw at 1 MiB and 131.6 at 8 MiB, i.e. 1.75·S/busbw = 81.9 and 111.6 us.
    # Ring: 14 steps x 5 us + 1.75·S / (448 GB/s x 0.70) = 70 + 5.86 = 75.9 us at 1 MiB,
    # 70 + 46.8 = 116.8 us at 8 MiB: within 8% of both (a tree would say 36.7 us at 1 MiB).
    mib, h = 1024 * 1024, hw("mi300x")
    for size, busbw in ((1 * mib, 22.4e9), (8 * mib, 131.6e9)):
        cost = collective_time(h, AR, size, Group(8))
        assert cost.algorithm == "ring"
        assert close(cost.time_s, 14 * 5e-6 + 1.75 * size / (448e9 * 0.70))
        assert cost.time_s == pytest.approx(1.75 * size / busbw, rel=0.08)
    with pytest.raises(ValueError, match="'tree' is not available"):
        collective_time(h, AR, mib, Group(8), algorithm="tree")
    # across nodes the tree stays: 64 ranks one per node, 2·6 steps instead of 2·63
    assert collective_time(hw("h100-sxm"), AR, 4e3, Group(64, 8)).algorithm == "tree"


def test_ranks_per_device_add_an_on_device_level():
    # trainium2: 4 ranks per chip (LNC=2). TP16 over the 4x4 torus, an all-reduce of 16 KiB:
    # the torus pass has (4-1)+(4-1) = 6 steps, the chip's own ranks add 4-1 = 3 per pass,
    # so 2·(6+3) = 18 steps of 3 us = 54 us. Bandwidth: the links carry
    # 2·15/16·S / (2 dims x 2 x 512/4 GB/s x 0.75) = 80 ns; the chip copies 2·3·S, each byte
    # read and written, through 2.9 TB/s x 0.8 HBM: 84.7 ns, pipelined: the larger counts.
    s, h = 16384, hw("trainium2")
    assert h.scale_up.ranks_per_device is not None and h.scale_up.ranks_per_device.value == 4
    cost = collective_time(h, AR, s, Group(16))
    copy = 2 * 3 * s * 2 / (2.9e12 * 0.8)
    assert copy > 2 * 15 / 16 * s / (2 * 2 * 128e9 * 0.75)
    assert close(cost.time_s, 18 * 3e-6 + copy)
    # without the field: one rank per chip, 12 steps and the links' time
    one = h.model_copy(update={"scale_up": h.scale_up.model_copy(
        update={"ranks_per_device": None})})
    assert close(collective_time(one, AR, s, Group(16)).time_s,
                 12 * 3e-6 + 2 * 15 / 16 * s / (2 * 2 * 128e9 * 0.75))
    # reduce-scatter: one pass, 6 + 3 steps; all-to-all is left as it is
    assert close(collective_time(h, RS, s, Group(16)).time_s,
                 9 * 3e-6 + max(3 * s * 2 / (2.9e12 * 0.8), 15 / 16 * s / 384e9))
    assert collective_time(h, A2A, s, Group(16)) == collective_time(one, A2A, s, Group(16))
    # a group of one chip stays local
    assert collective_time(h, AR, s, Group(1)).fabric == "local"
