"""Data-parallel overlap, ZeRO gathers, shared links and the optimizer, on hand-built plans
whose answers can be worked out on paper."""

from __future__ import annotations

import pickle

import pytest
import simpy

from simulator.engine.training.links import Links
from simulator.engine.training.plan import Bucket, Chunk, GatherMode, PassCost, Stage, StepPlan
from simulator.engine.training.schedule import schedule
from simulator.engine.training.step import simulate_step

OUT = ("scale_out",)


def one_stage(m: int, grads=(), params=(), overlap=True, gather=GatherMode.NONE,
              optimizer=0.0, f=1.0, b=2.0) -> StepPlan:
    chunk = Chunk(PassCost(f), PassCost(b), tuple(grads), tuple(params))
    order = tuple(tuple(o) for o in schedule("1f1b", 1, m))
    return StepPlan((Stage((chunk,), optimizer),), order, m, dp_overlap=overlap, gather=gather)


def buckets(n: int, seconds: float, name: str = "g") -> list[Bucket]:
    return [Bucket(f"{name}{k}", seconds, OUT) for k in range(n)]


def test_gradient_buckets_overlap_the_last_backward():
    """m=2, f=1, b=2: the last backward runs 4..6 s and readies a bucket every 0.5 s; four
    0.5 s buckets then run back to back from 4.5 s, the last ending at 6.5 s."""
    out = simulate_step(one_stage(2, grads=buckets(4, 0.5)))
    assert out.step_time_s == pytest.approx(6.5)
    assert out.breakdown.exposed_dp_comm == pytest.approx(0.5)
    assert out.breakdown.compute == pytest.approx(6.0)


def test_without_overlap_the_reduction_follows_the_compute():
    out = simulate_step(one_stage(2, grads=buckets(4, 0.5), overlap=False))
    assert out.step_time_s == pytest.approx(8.0)
    assert out.breakdown.exposed_dp_comm == pytest.approx(2.0)


def test_zero_parameter_gather_overlaps_the_first_forward():
    """Two 0.3 s buckets before the first forward (1 s, cut in halves): wait 0.3 s, compute
    0.5 s, bucket 2 is already there (0.6 s), compute 0.5 s."""
    out = simulate_step(one_stage(1, params=buckets(2, 0.3, "p"), gather=GatherMode.STEP))
    assert out.step_time_s == pytest.approx(0.3 + 3.0)
    assert out.breakdown.exposed_dp_comm == pytest.approx(0.3)


def test_zero_parameter_gather_without_overlap_follows_the_optimizer():
    out = simulate_step(one_stage(1, params=buckets(2, 0.3, "p"), gather=GatherMode.STEP,
                                  overlap=False, optimizer=0.2))
    assert out.step_time_s == pytest.approx(3.0 + 0.2 + 0.6)
    assert out.breakdown.optimizer == pytest.approx(0.2)
    assert out.breakdown.exposed_dp_comm == pytest.approx(0.6)
    assert out.breakdown.total == pytest.approx(out.step_time_s)


@pytest.mark.parametrize("overlap", [True, False])
def test_zero3_gathers_and_reduces_around_every_pass(overlap):
    """Without overlap every pass waits for its gather (0.4 s) and every backward for its
    reduction (0.4 s): 2 microbatches -> 4 gathers + 2 reductions exposed."""
    plan = one_stage(2, grads=buckets(1, 0.4), params=buckets(1, 0.4, "p"),
                     gather=GatherMode.PASS, overlap=overlap)
    out = simulate_step(plan)
    assert out.breakdown.total == pytest.approx(out.step_time_s)
    if overlap:
        assert out.step_time_s < 6.0 + 6 * 0.4
        assert out.breakdown.exposed_dp_comm == pytest.approx(0.4 + 0.4)  # first gather, last
    else:
        assert out.step_time_s == pytest.approx(6.0 + 6 * 0.4)


def test_optimizer_waits_for_every_stage():
    """The barrier before the optimizer: the step ends with the slowest stage's optimizer."""
    stages = (Stage((Chunk(PassCost(1.0), PassCost(2.0)),), 0.1),
              Stage((Chunk(PassCost(1.0), PassCost(2.0)),), 0.3))
    order = tuple(tuple(o) for o in schedule("1f1b", 2, 2))
    out = simulate_step(StepPlan(stages, order, 2))
    assert out.step_time_s == pytest.approx(3 * 3.0 + 0.3)
    assert out.breakdown.optimizer == pytest.approx(0.3)


def test_concurrent_transfers_share_a_link():
    env = simpy.Environment()
    net = Links(env)
    done = {}

    def arrived(name, _start, end):
        done.setdefault(name, end)

    net.send(net.resolve((("out", "scale_out", 0),)), 1.0, arrived, "a")
    env.run(until=0.5)
    net.send(net.resolve((("out", "scale_out", 0), ("in", "scale_out", 1))), 1.0, arrived, "b")
    env.run()
    # a: 0.5 s alone, then half speed for its last 0.5 s -> 1.5; b: 0.5 s of work at half
    # speed until 1.5, then the rest alone -> 2.0
    assert done == pytest.approx({"a": 1.5, "b": 2.0})


def test_a_pipeline_send_slows_behind_a_gradient_bucket():
    """The last stage's gradient bucket and its send to stage 0 share its outgoing link."""
    chunk = Chunk(PassCost(1.0), PassCost(2.0), (Bucket("g", 1.0, OUT),))
    order = tuple(tuple(o) for o in schedule("1f1b", 2, 1))
    free = StepPlan((Stage((Chunk(PassCost(1.0), PassCost(2.0)),)),) * 2, order, 1, p2p_s=0.5)
    shared = StepPlan((Stage((chunk,)),) * 2, order, 1, p2p_s=0.5)
    assert simulate_step(shared).step_time_s > simulate_step(free).step_time_s + 0.1


def test_the_busiest_stage_is_reported_beside_the_last_to_finish():
    """Stage 1 does twice stage 0's work: under 1F1B stage 0 finishes last (its final backward
    waits for stage 1's), so its breakdown is mostly bubble; stage 1 computes m(f + b) =
    2 x 6 = 12 s, and each stage's breakdown sums to the step."""
    stages = (Stage((Chunk(PassCost(1.0), PassCost(2.0)),), 0.0),
              Stage((Chunk(PassCost(2.0), PassCost(4.0)),), 0.0))
    order = tuple(tuple(o) for o in schedule("1f1b", 2, 2))
    out = simulate_step(StepPlan(stages, order, 2))
    assert out.critical_stage == 0
    assert out.busiest_stage == 1
    busiest = out.busiest_breakdown
    assert busiest.compute == pytest.approx(12.0)
    assert out.breakdown.compute == pytest.approx(6.0)
    assert busiest.total == pytest.approx(out.step_time_s)
    assert out.breakdown.total == pytest.approx(out.step_time_s)
    assert busiest.bubble < out.breakdown.bubble


def test_a_single_stage_is_both_the_busiest_and_the_last():
    out = simulate_step(one_stage(2, grads=buckets(4, 0.5)))
    assert out.busiest_stage == out.critical_stage == 0
    assert out.busiest_breakdown == out.breakdown


def test_the_timeline_is_built_on_first_read_and_survives_pickling():
    """Two stages, m=2, f=1, b=2, 0.5 s sends: the timeline's records come from what the
    step collected, once read; a pickled outcome (a sweep worker's) reads the same records,
    and equal timelines compare equal."""
    order = tuple(tuple(o) for o in schedule("1f1b", 2, 2))
    plan = StepPlan((Stage((Chunk(PassCost(1.0), PassCost(2.0)),)),) * 2, order, 2, p2p_s=0.5)
    out = simulate_step(plan)
    timeline = out.timeline
    assert "records" not in vars(timeline)  # not built by the step itself
    again = pickle.loads(pickle.dumps(out)).timeline
    records = timeline.records
    passes = [r for r in records if r[3] in ("forward", "backward")]
    sends = [r for r in records if r[3] == "pp_comm"]
    assert len(passes) == 2 * 2 * 2  # two stages, two microbatches, forward and backward
    assert len(sends) == 2 * 2  # each microbatch: one activation forward, one gradient back
    assert all(r[5] == pytest.approx(0.5) for r in sends)
    assert again.records == records
    assert again == timeline == simulate_step(plan).timeline
