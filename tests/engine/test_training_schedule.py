"""Pipeline schedules on hand-built plans: the bubble emerges from the order, and matches the
closed forms where they hold (equal stage times, no communication)."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.engine.training.plan import Chunk, PassCost, Stage, StepPlan
from simulator.engine.training.schedule import Pass, schedule
from simulator.engine.training.step import simulate_step


def plan(pp: int, m: int, f: float = 1.0, b: float = 2.0, kind: str = "1f1b", vpp: int = 1,
         p2p: float = 0.0, stage_costs: list[tuple[float, float]] | None = None) -> StepPlan:
    """``pp`` stages of ``vpp`` chunks; a stage's forward takes f, its backward b in all."""
    costs = stage_costs or [(f, b)] * pp
    stages = tuple(Stage((Chunk(forward=PassCost(compute_s=fs / vpp),
                                backward=PassCost(compute_s=bs / vpp)),) * vpp)
                   for fs, bs in costs)
    order = tuple(tuple(o) for o in schedule(kind, pp, m, vpp))
    return StepPlan(stages=stages, order=order, p2p_s=p2p)


@pytest.mark.parametrize("pp,m", [(2, 1), (2, 8), (4, 4), (4, 16), (8, 3), (16, 16)])
@pytest.mark.parametrize("kind", ["1f1b", "gpipe"])
def test_bubble_matches_the_closed_form(pp, m, kind):
    """(pp-1)/(m+pp-1) of the step (Narayanan et al. 2021), for 1F1B and GPipe alike."""
    out = simulate_step(plan(pp, m, kind=kind))
    assert out.step_time_s == pytest.approx((m + pp - 1) * 3.0)
    assert out.bubble_fraction == pytest.approx((pp - 1) / (m + pp - 1))
    assert out.breakdown.compute == pytest.approx(m * 3.0)


@pytest.mark.parametrize("pp,m,vpp", [(2, 2, 2), (4, 4, 2), (4, 8, 4), (8, 16, 2), (16, 16, 8)])
def test_interleaved_bubble_is_smaller_by_vpp(pp, m, vpp):
    """Interleaving divides the bubble time by vpp: (pp-1)/vpp of a stage's pass pair."""
    flat = simulate_step(plan(pp, m))
    out = simulate_step(plan(pp, m, kind="interleaved", vpp=vpp))
    assert out.bubble_fraction < flat.bubble_fraction
    bubble = (pp - 1) / vpp * 3.0
    assert out.breakdown.bubble == pytest.approx(bubble)
    assert out.step_time_s == pytest.approx(m * 3.0 + bubble)


def test_one_stage_without_communication_is_its_summed_compute():
    costs = [(0.7, 1.9)]
    out = simulate_step(plan(1, 5, stage_costs=costs))
    assert out.step_time_s == pytest.approx(5 * (0.7 + 1.9))
    assert out.breakdown.compute == pytest.approx(out.step_time_s)
    assert out.bubble_fraction == 0.0


@pytest.mark.parametrize("kind,vpp,pp,m", [
    (kind, vpp, pp, m)
    for kind, vpp in [("1f1b", 1), ("gpipe", 1), ("interleaved", 2), ("interleaved", 3)]
    for pp, m in [(1, 1), (2, 2), (3, 6), (4, 8), (5, 5)]
    if kind != "interleaved" or pp > 1])
def test_every_stage_runs_each_pass_once_forward_first(kind, vpp, pp, m):
    for order in schedule(kind, pp, m, vpp):
        passes = Counter((t.kind, t.microbatch, t.chunk) for t in order)
        assert set(passes.values()) == {1}
        assert len(passes) == 2 * m * vpp
        seen = set()
        for t in order:
            if t.kind is Pass.BACKWARD:
                assert (t.microbatch, t.chunk) in seen
            else:
                seen.add((t.microbatch, t.chunk))


def test_interleaved_needs_microbatches_in_groups_of_pp():
    with pytest.raises(ValueError, match="multiple of pp"):
        schedule("interleaved", 4, 6, 2)


def test_unknown_schedule():
    with pytest.raises(ValueError, match="1f1b, interleaved or gpipe"):
        schedule("zero-bubble", 4, 8)


@settings(max_examples=40, deadline=None)
@given(pp=st.integers(1, 8), m=st.integers(1, 24),
       costs=st.lists(st.tuples(st.floats(0.05, 2.0), st.floats(0.05, 4.0)), min_size=8,
                      max_size=8))
def test_more_microbatches_never_raise_the_1f1b_bubble_fraction(pp, m, costs):
    """With any stage times (equal or not) and no transfer latency."""
    few = simulate_step(plan(pp, m, stage_costs=costs[:pp]))
    more = simulate_step(plan(pp, m + 1, stage_costs=costs[:pp]))
    assert more.bubble_fraction <= few.bubble_fraction + 1e-12


@settings(max_examples=40, deadline=None)
@given(pp=st.integers(1, 6), m=st.integers(1, 12), kind=st.sampled_from(["1f1b", "gpipe"]),
       p2p=st.floats(0.0, 0.5),
       costs=st.lists(st.tuples(st.floats(0.05, 2.0), st.floats(0.05, 4.0)), min_size=6,
                      max_size=6))
def test_breakdown_sums_to_the_step_time(pp, m, kind, p2p, costs):
    out = simulate_step(plan(pp, m, kind=kind, p2p=p2p, stage_costs=costs[:pp]))
    assert out.breakdown.total == pytest.approx(out.step_time_s, rel=1e-12)
    assert min(out.breakdown.model_dump().values()) >= -1e-12


def test_transfers_are_on_the_critical_path():
    """Two stages, one microbatch: F0, send, F1, B1, send, B0 in a row."""
    out = simulate_step(plan(2, 1, f=1.0, b=2.0, p2p=0.25))
    assert out.step_time_s == pytest.approx(1.0 + 0.25 + 1.0 + 2.0 + 0.25 + 2.0)
    # stage 0 finishes last; between F0 and B0 it waited 3.5 s, the last 0.25 s of them with
    # the gradient in flight
    assert out.critical_stage == 0
    assert out.breakdown.exposed_pp_comm == pytest.approx(0.25)
    assert out.breakdown.bubble == pytest.approx(3.25)


def test_the_step_is_deterministic():
    a = simulate_step(plan(4, 8, kind="interleaved", vpp=2, p2p=0.1))
    b = simulate_step(plan(4, 8, kind="interleaved", vpp=2, p2p=0.1))
    assert a.timeline == b.timeline
    assert a.timeline.slices() == b.timeline.slices()
    assert a.breakdown == b.breakdown
