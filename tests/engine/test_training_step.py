"""Data-parallel overlap, ZeRO gathers, shared links, the optimizer and each stage's ledger,
on hand-built plans whose answers can be worked out on paper, and invariants of the ledger
on the shipped layouts."""

from __future__ import annotations

import pickle

import pytest
import simpy

from simulator.engine.training.links import Links
from simulator.engine.training.plan import (
    Bucket,
    Chunk,
    GatherMode,
    PassCost,
    Stage,
    StepPlan,
)
from simulator.engine.training.planner import build_plan
from simulator.engine.training.schedule import schedule
from simulator.engine.training.step import simulate_step
from simulator.loading import load_scenario
from simulator.results.training import PassRun, Slice, Transfer
from tests.conftest import ROOT

OUT = ("scale_out",)


def chunk(f: float = 1.0, b: float = 2.0, grads=(), params=()) -> Chunk:
    """A chunk whose forward computes ``f`` seconds and backward ``b``."""
    return Chunk(forward=PassCost(compute_s=f), backward=PassCost(compute_s=b),
                 grad_buckets=tuple(grads), param_buckets=tuple(params))


def pipeline(stages: tuple[Stage, ...], m: int, kind: str = "1f1b", **options) -> StepPlan:
    """``stages`` running ``kind`` over ``m`` microbatches (``options``: StepPlan's)."""
    order = tuple(tuple(o) for o in schedule(kind, len(stages), m))
    return StepPlan(stages=stages, order=order, **options)


def one_stage(m: int, grads=(), params=(), overlap=True, gather=GatherMode.NONE,
              optimizer=0.0, f=1.0, b=2.0) -> StepPlan:
    return pipeline((Stage((chunk(f, b, grads, params),), optimizer),), m, dp_overlap=overlap,
                    gather=gather)


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
    forward = [r for r in out.timeline.passes() if r.forward]
    assert [r.start_s for r in forward] == pytest.approx([0.3, 0.8])
    assert [r.fraction for r in forward] == [0.5, 0.5]


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
    out = simulate_step(pipeline((Stage((chunk(),), 0.1), Stage((chunk(),), 0.3)), 2))
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
    free = pipeline((Stage((chunk(),)),) * 2, 1, p2p_s=0.5)
    shared = pipeline((Stage((chunk(grads=(Bucket("g", 1.0, OUT),)),)),) * 2, 1, p2p_s=0.5)
    assert simulate_step(shared).step_time_s > simulate_step(free).step_time_s + 0.1


def test_the_busiest_stage_is_reported_beside_the_last_to_finish():
    """Stage 1 does twice stage 0's work: under 1F1B stage 0 finishes last (its final backward
    waits for stage 1's), so its breakdown is mostly bubble; stage 1 computes m(f + b) =
    2 x 6 = 12 s, and each stage's breakdown sums to the step."""
    out = simulate_step(pipeline((Stage((chunk(1.0, 2.0),)), Stage((chunk(2.0, 4.0),))), 2))
    assert out.critical_stage == 0
    assert out.busiest_stage == 1
    busiest = out.busiest_breakdown
    assert busiest.compute == pytest.approx(12.0)
    assert out.breakdown.compute == pytest.approx(6.0)
    assert busiest.total == pytest.approx(out.step_time_s)
    assert out.breakdown.total == pytest.approx(out.step_time_s)
    assert busiest.bubble < out.breakdown.bubble


def test_a_slow_middle_stage_is_the_busiest_but_not_the_last():
    """GPipe, three stages, m=2; the middle one is three times slower (f, b = 3, 6 s against
    1, 2 s). By hand: stage 1 runs F0 1-4, F1 4-7; stage 2 F0 4-5, F1 7-8, B0 8-10,
    B1 10-12; stage 1 B0 10-16, B1 16-22; stage 0 B0 16-18, B1 22-24. Stage 0 finishes last
    (24 s) with 6 s of compute; stage 1 computes 18 s and waits 1 + 3 s, then 2 s at the
    barrier; stage 2 is done at 12 s."""
    stages = (Stage((chunk(1.0, 2.0),)), Stage((chunk(3.0, 6.0),)), Stage((chunk(1.0, 2.0),)))
    out = simulate_step(pipeline(stages, 2, kind="gpipe"))
    assert out.step_time_s == pytest.approx(24.0)
    assert (out.critical_stage, out.busiest_stage) == (0, 1)
    assert [s.end_s for s in out.stages] == pytest.approx([24.0, 22.0, 12.0])
    assert out.breakdown.compute == pytest.approx(6.0)
    assert out.breakdown.bubble == pytest.approx(18.0)
    assert out.busiest_breakdown.compute == pytest.approx(18.0)
    assert out.busiest_breakdown.bubble == pytest.approx(6.0)
    assert out.stages[1].bubble_s == pytest.approx(4.0)  # before the barrier


def test_every_send_is_network_time_on_both_ends():
    """Two stages, 1F1B, m=2, f=1, b=2, 0.5 s sends that never meet on a link. By hand:
    stage 0 runs F0 0-1, F1 1-2, B0 5-7, B1 8-10; stage 1 F0 1.5-2.5, B0 2.5-4.5,
    F1 4.5-5.5, B1 5.5-7.5. Each stage sends two messages and receives two, 0.5 s each: 2 s
    of network time in a 10 s step, a network utilization of 0.2."""
    out = simulate_step(pipeline((Stage((chunk(),)),) * 2, 2, p2p_s=0.5))
    assert out.step_time_s == pytest.approx(10.0)
    assert [s.network_s for s in out.stages] == pytest.approx([2.0, 2.0])
    assert out.utilization.network == pytest.approx(0.2)
    assert out.utilization.busy == pytest.approx(12.0 / 20.0)
    assert [s.compute_s for s in out.stages] == pytest.approx([6.0, 6.0])
    assert [s.end_s for s in out.stages] == pytest.approx([10.0, 7.5])
    sends = list(out.timeline.transfers())
    assert [(t.source, t.destination, t.forward, t.microbatch) for t in sends] == [
        (0, 1, True, 0), (0, 1, True, 1), (1, 0, False, 0), (1, 0, False, 1)]
    assert all(t.duration_s == pytest.approx(0.5) for t in sends)


def _expected_network_s(plan: StepPlan, stage: int) -> float:
    """A stage's network busy time worked out from the plan alone: each pipeline message it
    sends or receives (every virtual stage but the first receives an activation and sends a
    gradient back, every one but the last the reverse), each data-parallel bucket it issues,
    and the communication inside its passes, hidden or not."""
    pp, vpp, m = plan.pp, plan.vpp, plan.microbatches
    chunks = plan.stages[stage].chunks
    messages = 0
    if pp > 1:
        messages = 2 * m * (2 * vpp - (stage == 0) - (stage == pp - 1))
    grads = sum(b.time_s for c in chunks for b in c.grad_buckets)
    params = sum(b.time_s for c in chunks for b in c.param_buckets)
    if plan.gather is GatherMode.PASS:
        dp = 2 * m * params + m * grads  # a gather before every pass, a reduction per backward
    elif plan.gather is GatherMode.STEP and plan.dp_overlap:
        dp = params + grads  # the gather runs in the step; without overlap, after it
    else:
        dp = grads
    passes = m * sum(c.forward.comm_busy_s + c.backward.comm_busy_s for c in chunks)
    return messages * plan.p2p_s + dp + passes


LAYOUTS = [("llama3.1-405b-h100-training", []),
           ("llama3.1-405b-h100-training", ["workload.parallelism.zero=3"]),
           ("deepseek-v3-h800-training", []),
           ("llama3.1-70b-h100-training", ["workload.parallelism.zero=3",
                                           "workload.overlap.dp_comm=false"]),
           ("llama3.1-70b-h100-training", ["workload.pipeline_schedule=gpipe",
                                           "workload.parallelism.zero=0"])]


@pytest.mark.parametrize("stem,overrides", LAYOUTS, ids=lambda v: " ".join(v) if v else "")
def test_each_stages_ledger_adds_up_on_real_layouts(stem, overrides):
    """Per stage, the ledger's network time is what the plan says crosses the stage's links,
    its compute the plan's passes, and its categories sum to the time it took."""
    plan = build_plan(load_scenario(ROOT / "scenarios" / f"{stem}.yaml", overrides)).step
    out = simulate_step(plan)
    m = plan.microbatches
    for s, totals in enumerate(out.stages):
        chunks = plan.stages[s].chunks
        assert totals.network_s == pytest.approx(_expected_network_s(plan, s), rel=1e-9)
        # the passes, and what the SMs of the collectives they overlapped cost them
        assert totals.compute_s == pytest.approx(
            m * sum(c.forward.compute_s + c.backward.compute_s for c in chunks)
            + totals.slowed_s, rel=1e-9)
        assert 0.0 <= totals.slowed_s <= plan.collective_sm_share * _expected_network_s(plan, s)
        spent = (totals.compute_s + totals.tp_s + totals.ep_s + totals.cp_s + totals.pp_s
                 + totals.dp_s + totals.bubble_s)
        assert spent == pytest.approx(totals.end_s, rel=1e-9)


def test_the_timeline_is_plain_data():
    """Two stages, m=2, f=1, b=2, 0.5 s sends: the timeline holds typed records (no engine
    objects), pickles as it is (a sweep worker's), and expands into slices on demand."""
    plan = pipeline((Stage((chunk(),)),) * 2, 2, p2p_s=0.5)
    timeline = simulate_step(plan).timeline
    again = pickle.loads(pickle.dumps(timeline))
    assert again == timeline == simulate_step(plan).timeline
    assert all(isinstance(r, PassRun) for r in timeline.passes())
    assert all(isinstance(t, Transfer) for t in timeline.transfers())
    slices = timeline.slices()
    assert all(isinstance(s, Slice) and type(s.name) is str for s in slices)
    passes = [s for s in slices if s.kind in ("forward", "backward")]
    sends = [s for s in slices if s.kind == "pp_comm"]
    assert len(passes) == 2 * 2 * 2  # two stages, two microbatches, forward and backward
    assert sorted(s.name for s in sends) == ["B0 -> stage 0", "B1 -> stage 0",
                                             "F0 -> stage 1", "F1 -> stage 1"]
    assert all(s.duration_s == pytest.approx(0.5) for s in sends)
    assert again.slices() == slices
