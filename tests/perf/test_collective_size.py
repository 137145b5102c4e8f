"""The library collectives' size curve (``efficiency.collective_size_curve``): the arithmetic
of the curve, where it applies (training's NCCL ring/NVLS collectives on the scale-up fabric)
and where it does not (serving's all-reduce, all-to-all, send/recv, scale-out, profiles
without one).

Expected times are written out from docs/modelling_collectives.md with the profiles' numbers:
H100 NVLink 450 GB/s one way at 0.82, 3 us a step; curve floor 0.20, half size 16 MB.
"""

from __future__ import annotations

import numpy as np
import pytest

from simulator.engine.training.planner import build_plan
from simulator.loading import load_scenario
from simulator.perf.collectives import NVLS_GAIN, collective_time, comm_op_time
from simulator.perf.ops import Collective, CommOp, Group
from simulator.perf.pricer import Pricer
from simulator.perf.roofline import op_time
from simulator.profiles.catalog import load_hardware
from tests.conftest import ROOT, assert_clean_error, run_cli

AR, RS, AG, A2A, P2P = (Collective.ALL_REDUCE, Collective.REDUCE_SCATTER,
                        Collective.ALL_GATHER, Collective.ALL_TO_ALL, Collective.SEND_RECV)
H100_LINK = 450e9 * 0.82


def _without_curve(profile: str):
    hw = load_hardware(profile)
    return hw.model_copy(update={"efficiency": hw.efficiency.model_copy(
        update={"collective_size_curve": None})})


def test_the_curve_rises_from_its_floor_to_one_and_is_half_way_at_half_size():
    curve = load_hardware("h100-sxm").efficiency.collective_size_curve
    assert curve is not None
    assert curve.factor(0.0) == pytest.approx(0.20)
    assert curve.factor(16e6) == pytest.approx(0.20 + 0.80 * 0.5)  # 0.6
    assert curve.factor(16e9) == pytest.approx(0.20 + 0.80 * 1000 / 1001)
    assert curve.factor(1e15) == pytest.approx(1.0, abs=1e-6)


def test_a_training_all_reduce_of_16_mb_on_8_h100_runs_at_0_6_of_the_link():
    hw, s = load_hardware("h100-sxm"), 16e6
    cost = collective_time(hw, AR, s, Group(8), library=True)
    # NVLS: 2*ceil(log2 8) = 6 steps of 3 us; 1.75 S over 1.25 x the ring's bus bandwidth x 0.6
    nvls = 6 * 3e-6 + 1.75 * s / (H100_LINK * NVLS_GAIN * 0.6)
    assert cost.algorithm == "nvls"
    assert cost.time_s == pytest.approx(nvls)  # 119.2 us
    ring = collective_time(hw, AR, s, Group(8), algorithm="ring", library=True)
    assert ring.time_s == pytest.approx(14 * 3e-6 + 1.75 * s / (H100_LINK * 0.6))
    # not a library collective: today's large-message bandwidth
    plain = collective_time(hw, AR, s, Group(8))
    assert plain.time_s == pytest.approx(6 * 3e-6 + 1.75 * s / (H100_LINK * NVLS_GAIN))


@pytest.mark.parametrize("collective", [RS, AG])
def test_reduce_scatter_and_all_gather_follow_the_curve_too(collective):
    hw, s = load_hardware("h100-sxm"), 64e6
    factor = 0.2 + 0.8 * 64 / 80
    cost = collective_time(hw, collective, s, Group(8), library=True)
    assert cost.time_s == pytest.approx(7 * 3e-6 + 7 / 8 * s / (H100_LINK * factor))


@pytest.mark.parametrize(("collective", "group"), [
    (A2A, Group(8)),           # all-to-all: not the measured ring/NVLS kernels
    (P2P, Group(2)),           # send/recv: no sweep
    (AR, Group(16, 8)),        # one rank per node: scale-out only, no multi-node sweep
    (RS, Group(4, 8)),
])
def test_all_to_all_send_recv_and_the_scale_out_fabric_are_left_as_they_were(collective, group):
    hw = load_hardware("h100-sxm")
    for s in (1e6, 16e6, 256e6):
        assert (collective_time(hw, collective, s, group, library=True).time_s
                == collective_time(hw, collective, s, group).time_s)


def test_a_hierarchical_all_reduce_slows_only_its_scale_up_phase():
    """TP-like group of 16 on 8-GPU nodes: k = 8 per node, m = 2 nodes. The NVLink phase
    (reduce-scatter + all-gather over 8, 2 x 7/8 S) is at 0.6 of the link at 16 MB; the
    network phase (2 nodes, S/8 each, ring: 2 x 1/2 x S/8 at 50 GB/s x 0.74) is not."""
    hw, s = load_hardware("h100-sxm"), 16e6
    cost = collective_time(hw, AR, s, Group(16), algorithm="hierarchical", library=True)
    up = 1.75 * s / (H100_LINK * 0.6)
    out = 2 * 0.5 * (s / 8) / (50e9 * 0.74)
    ring_out, tree_out = out + 2 * 1 * 10e-6, 2 * (s / 8) / (50e9 * 0.74) + 2 * 1 * 10e-6
    expected = max(up, out) + 14 * 3e-6 + min(ring_out - out, tree_out)
    assert cost.time_s == pytest.approx(expected)
    assert cost.time_s > collective_time(hw, AR, s, Group(16), algorithm="hierarchical").time_s


@pytest.mark.parametrize("profile", ["mi300x", "gaudi3", "tpu-v5e", "trainium2"])
def test_profiles_without_a_curve_price_library_collectives_as_before(profile):
    hw = load_hardware(profile)
    assert hw.efficiency.collective_size_curve is None
    for s in (1e6, 16e6):
        assert (collective_time(hw, AR, s, Group(8), library=True).time_s
                == collective_time(hw, AR, s, Group(8)).time_s)


def test_training_prices_collectives_with_the_curve_and_serving_without():
    hw = load_hardware("h100-sxm")
    op = CommOp(name="tp.all_reduce", collective=AR, bytes=16e6, group=Group(8), count=3)
    library = collective_time(hw, AR, 16e6, Group(8), library=True).time_s
    plain = collective_time(hw, AR, 16e6, Group(8)).time_s
    assert library > plain * 1.3
    assert op_time(hw, op, library=True).time_s == pytest.approx(3 * library)
    assert comm_op_time(hw, op).time_s == pytest.approx(3 * plain)
    # serving's pricer: TensorRT-LLM / vLLM one-shot all-reduce kernels, not NCCL
    assert Pricer(hw).collective(op) == pytest.approx(3 * plain)


@pytest.mark.parametrize("collective", [AG, RS])
def test_serving_all_gathers_and_reduce_scatters_run_in_nccl_and_follow_the_curve(collective):
    """Serving engines have their own kernels for the all-reduce only: TensorRT-LLM's
    attention-DP token all-gather of 700 tokens x 5,120 at fp8 (3.6 MB) over 4 H100s is a
    NCCL ring at 0.2 + 0.8 x 3.6 / 19.6 = 0.347 of the link."""
    hw, s = load_hardware("h100-sxm"), 3.6e6
    factor = 0.2 + 0.8 * 3.6 / (3.6 + 16)
    expected = 3 * 3e-6 + 3 / 4 * s / (H100_LINK * factor)  # 30.1 us, not 16.3 us
    assert collective_time(hw, collective, s, Group(4), library=True).time_s == pytest.approx(
        expected)
    op = CommOp(name="moe.gather_tokens", collective=collective, bytes=s, group=Group(4))
    assert Pricer(hw).collective(op) == pytest.approx(expected)  # serving's pricer
    # the pricer's many-sizes path gives the same, size by size
    sizes = np.array([1e5, s, 16e6, 1e9])
    assert Pricer(hw).collective_times(collective, sizes, Group(4), 2).tolist() == [
        2 * collective_time(hw, collective, b, Group(4), library=True).time_s for b in sizes]
    # without a curve (RCCL on MI300X): as before, the large-message bandwidth
    bare = _without_curve("h100-sxm")
    assert Pricer(bare).collective(op) == pytest.approx(3 * 3e-6 + 3 / 4 * s / H100_LINK)


def test_the_training_planner_prices_its_gradient_buckets_with_the_curve():
    """Llama 3.1 8B on one HGX H100, DP 8 inside the node: the ZeRO-1 gradient
    reduce-scatter runs on NVLink, so its buckets are slower with the curve than without."""
    scenario = load_scenario(ROOT / "scenarios/llama3.1-8b-h100-training.yaml")
    flat = scenario.model_copy(update={"hardware": _without_curve("h100-sxm")})
    with_curve = build_plan(scenario).step.stages[0].chunks[0].grad_buckets
    without = build_plan(flat).step.stages[0].chunks[0].grad_buckets
    assert len(with_curve) == len(without) > 0
    for a, b in zip(with_curve, without, strict=True):
        assert a.fabrics == b.fabrics == ("scale_up",)
        assert b.time_s < a.time_s < b.time_s / 0.2  # never below the floor's bandwidth


@pytest.mark.parametrize(("field", "bad", "message"), [
    ("floor", "{value: 0,", "efficiency.collective_size_curve.floor.value"),
    ("floor", "{value: 1.5,", "efficiency.collective_size_curve.floor.value"),
    ("half_size", "{value: -16 MB,", "efficiency.collective_size_curve.half_size.value"),
    ("half_size", "{value: 16 GB/s,", "efficiency.collective_size_curve.half_size.value"),
])
def test_a_bad_size_curve_is_one_clean_profile_error(tmp_path, field, bad, message):
    text = (ROOT / "hardware_profiles" / "h100-sxm.yaml").read_text()
    good = {"floor": "    floor: {value: 0.20,",
            "half_size": "    half_size: {value: 16 MB,"}[field]
    assert good in text
    path = tmp_path / "hw.yaml"
    path.write_text(text.replace(good, f"    {field}: {bad}"))
    assert_clean_error(run_cli("validate", str(path)), message)
