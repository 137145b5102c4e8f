"""Pipeline sends as Megatron-LM of 2021-22 ran them: blocking sends (``overlap.pp_comm:
false``) and the all-gather over TP that rebuilds a message sent as 1/tp shards."""

from __future__ import annotations

import pytest

from simulator.engine.training.estimate import estimate_step_s
from simulator.engine.training.plan import Chunk, PassCost, Stage, StepPlan
from simulator.engine.training.planner import build_plan
from simulator.engine.training.schedule import schedule
from simulator.engine.training.step import simulate_step
from simulator.loading import load_scenario
from tests.conftest import ROOT, assert_clean_error, run_cli

SCENARIO = ROOT / "scenarios" / "llama3.1-70b-h100-training.yaml"  # tp 8, pp 2, SP, 8k x 1


def two_stages(**options) -> StepPlan:
    """Two stages, 1F1B, two microbatches, forward 1 s and backward 2 s, 0.5 s sends."""
    chunk = Chunk(forward=PassCost(compute_s=1.0), backward=PassCost(compute_s=2.0))
    order = tuple(tuple(o) for o in schedule("1f1b", 2, 2))
    return StepPlan(stages=(Stage((chunk,)),) * 2, order=order, p2p_s=0.5, **options)


def test_a_blocking_send_holds_its_stage_until_it_arrives():
    """By hand (asynchronous sends take 10 s, tests/engine/test_training_step.py): stage 0
    runs F0 0-1, blocks on its send 1-1.5, F1 1.5-2.5, blocks 2.5-3; stage 1 gets F0 at 1.5,
    runs F0 1.5-2.5, B0 2.5-4.5, blocks 4.5-5, F1 5-6 (its input came at 3), B1 6-8,
    blocks 8-8.5. Stage 0 runs B0 5-7 and B1 8.5-10.5: a 10.5 s step. Stage 0's exposed PP
    time is its two blocked sends (1 s) and the two gradients in flight (0.5 s each); its
    bubble the rest of its waits (3-4.5 and 7-8)."""
    out = simulate_step(two_stages(p2p_blocking=True))
    assert out.step_time_s == pytest.approx(10.5)
    assert [s.end_s for s in out.stages] == pytest.approx([10.5, 8.5])
    assert [s.pp_s for s in out.stages] == pytest.approx([2.0, 1.5])
    assert [s.bubble_s for s in out.stages] == pytest.approx([2.5, 1.0])
    assert out.breakdown.exposed_pp_comm == pytest.approx(2.0)
    blocked = [i for i in out.timeline.intervals() if i.name == "blocking send"]
    assert sorted((i.stage, round(i.start_s, 9), round(i.duration_s, 9)) for i in blocked) == [
        (0, 1.0, 0.5), (0, 2.5, 0.5), (1, 4.5, 0.5), (1, 8.0, 0.5)]


def test_asynchronous_sends_are_the_default():
    """The same pipeline without ``p2p_blocking`` is the 10 s step of the async case."""
    assert simulate_step(two_stages()).step_time_s == pytest.approx(10.0)


def test_a_received_shard_is_all_gathered_before_its_pass():
    """Asynchronous 0.5 s sends and a 0.25 s all-gather on arrival. By hand: stage 0 runs F0
    0-1 and F1 1-2 (sends 1-1.5, 2-2.5); stage 1 gathers F0 1.5-1.75, runs F0 1.75-2.75,
    B0 2.75-4.75 (send 4.75-5.25), gathers F1 4.75-5, F1 5-6, B1 6-8 (send 8-8.5). Stage 0
    gathers B0's gradient 5.25-5.5, B0 5.5-7.5, gathers 8.5-8.75, B1 8.75-10.75. Every
    gather is exposed PP time on the receiver: stage 0's 1.5 s are its two gradients in
    flight (0.5 s each) and two gathers."""
    out = simulate_step(two_stages(p2p_gather_s=0.25))
    assert out.step_time_s == pytest.approx(10.75)
    assert [s.end_s for s in out.stages] == pytest.approx([10.75, 8.0])  # B1 sent async
    assert [s.pp_s for s in out.stages] == pytest.approx([1.5, 1.0])
    assert [s.bubble_s for s in out.stages] == pytest.approx([3.25, 1.0])
    gathers = [i for i in out.timeline.intervals()
               if i.name == "all-gathering a received shard"]
    assert sorted((i.stage, round(i.start_s, 9), round(i.duration_s, 9)) for i in gathers) == [
        (0, 5.25, 0.25), (0, 8.5, 0.25), (1, 1.5, 0.25), (1, 4.75, 0.25)]


def test_the_estimate_counts_gathers_and_blocking_sends_per_crossing():
    """The estimate's stage time per microbatch grows by a gather per input received from
    the other stage and a blocking send per output sent to it: with two stages, one of each
    (stage 0's forward and stage 1's backward take no input, stage 1's forward and stage 0's
    backward send nothing). 1F1B over 2 microbatches, 2 stages of 3 s, (pp - 1) x
    (3 + 2 x 0.5) fill: 2 x 3 + 4 = 10 s asynchronous. With 0.25 s gathers alone each
    microbatch costs 3.25 s: 2 x 3.25 + 3.25 + 1 = 10.75 s, the simulated step above; with
    blocking sends too, 3 + 0.25 + 0.5 = 3.75 s: 2 x 3.75 + 3.75 + 1 = 12.25 s."""
    assert estimate_step_s(two_stages()) == pytest.approx(10.0)
    assert estimate_step_s(two_stages(p2p_gather_s=0.25)) == pytest.approx(10.75)
    assert estimate_step_s(two_stages(p2p_gather_s=0.25, p2p_blocking=True)) == \
        pytest.approx(12.25)


def test_the_plan_prices_the_gather_only_without_sequence_parallelism():
    """Llama 3.1 70B, 8k tokens, micro-batch 1, TP8 PP2 on H100: a send is one TP shard of
    S = 8192 x 8192 x 2 B = 134,217,728 B, S/8 over a 400 Gb/s NIC at 0.74 plus 10 us.
    Without SP the receiver all-gathers S over the TP group: a ring of 7 steps at 450 GB/s x
    0.82 bus bandwidth, scaled by the size curve 0.2 + 0.8 S/(S + 16 MB), plus 7 x 3 us."""
    big = 8192 * 8192 * 2
    send = big / 8 / (50e9 * 0.74) + 10e-6
    factor = 0.2 + 0.8 * big / (big + 16e6)
    gather = 7 / 8 * big / (450e9 * 0.82 * factor) + 7 * 3e-6
    sp = build_plan(load_scenario(SCENARIO)).step
    assert sp.p2p_s == pytest.approx(send)
    assert sp.p2p_gather_s == 0.0
    assert not sp.p2p_blocking
    plain = build_plan(load_scenario(
        SCENARIO, ["workload.parallelism.sequence_parallel=false",
                   "workload.overlap.pp_comm=false"])).step
    assert plain.p2p_s == pytest.approx(send)
    assert plain.p2p_gather_s == pytest.approx(gather)
    assert plain.p2p_blocking


def test_blocking_sends_slow_a_real_pipeline_by_at_most_their_transfers():
    """On the shipped 70B layout, blocking sends cost each stage at most the transfers it
    sends (2 per microbatch through its one chunk), and never speed the step up."""
    overlapped = load_scenario(SCENARIO)
    blocking = load_scenario(SCENARIO, ["workload.overlap.pp_comm=false"])
    plan = build_plan(blocking).step
    fast = simulate_step(build_plan(overlapped).step).step_time_s
    slow = simulate_step(plan).step_time_s
    assert fast < slow <= fast + 2 * plan.microbatches * plan.p2p_s + 1e-9


def test_pp_comm_must_be_a_boolean():
    """A bad value is one clean line naming the field, exit 2."""
    assert_clean_error(run_cli("run", str(SCENARIO), "--quiet", "--set",
                               "workload.overlap.pp_comm=sometimes"),
                       "workload.overlap.pp_comm: must be true or false")
