"""What a pipeline stage receives from and sends to other stages: the one rule the simulated
step routes its messages by and the analytic estimate counts them by
(simulator/engine/training/pipeline_hops.py)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from simulator.engine.training.estimate import estimate_step_s
from simulator.engine.training.pipeline_hops import (
    Crossings,
    neighbours,
    next_virtual,
    previous_virtual,
    stage_crossings,
)
from simulator.engine.training.plan import Chunk, PassCost, Stage, StepPlan
from simulator.engine.training.schedule import schedule
from simulator.engine.training.step import simulate_step


def uniform(pp: int, microbatches: int, *, vpp: int = 1, **options) -> StepPlan:
    """``pp`` equal stages of ``vpp`` chunks: a microbatch's forward 1 s and backward 2 s
    through each stage, split evenly over its chunks."""
    chunk = Chunk(forward=PassCost(compute_s=1.0 / vpp), backward=PassCost(compute_s=2.0 / vpp))
    kind = "interleaved" if vpp > 1 else "1f1b"
    order = tuple(tuple(o) for o in schedule(kind, pp, microbatches, vpp))
    return StepPlan(stages=(Stage((chunk,) * vpp),) * pp, order=order, **options)


def test_the_virtual_pipeline_runs_stage_by_stage_then_chunk_by_chunk():
    """pp 4, vpp 2: (0,0) (1,0) (2,0) (3,0) (0,1) (1,1) (2,1) (3,1)."""
    assert next_virtual(4, 2, 3, 0) == (0, 1)
    assert next_virtual(4, 2, 3, 1) is None
    assert previous_virtual(4, 2, 0, 1) == (3, 0)
    assert previous_virtual(4, 2, 0, 0) is None
    # a backward pass takes its input from the next virtual stage, sends to the previous
    assert neighbours(4, 2, 0, 1, forward=False) == ((1, 1), (3, 0))
    assert neighbours(4, 2, 0, 0, forward=True) == (None, (1, 0))


@pytest.mark.parametrize("pp,vpp,expected", [
    # pp 4, vpp 2, by hand. Stage 0: F(0,0) receives nothing, sends to (1,0); B(0,0)
    # receives from (1,0), sends nothing; F(0,1) from (3,0) to (1,1); B(0,1) from (1,1) to
    # (3,0): 3 and 3. Stage 3 mirrors it: F(3,1) sends nothing, B(3,1) receives nothing.
    # Stages 1 and 2: every one of their 4 passes receives and sends.
    (4, 2, [(3, 3), (4, 4), (4, 4), (3, 3)]),
    (2, 1, [(1, 1), (1, 1)]),  # 1F1B: one activation and one gradient each way
    (3, 1, [(1, 1), (2, 2), (1, 1)]),
    (1, 3, [(0, 0)]),  # one stage: its chunks hand over in memory
])
def test_each_stage_receives_and_sends_what_its_neighbours_on_other_stages_make(pp, vpp,
                                                                               expected):
    assert [tuple(stage_crossings(pp, vpp, s)) for s in range(pp)] == expected


def test_the_simulated_step_prices_exactly_the_crossings_of_each_stage():
    """pp 4, vpp 2, 8 microbatches with blocking 0.1 s sends and 0.05 s gathers: each stage
    gathers and blocks on 8 x its crossings, 24, 32, 32 and 24 of each, and sends as many
    transfers over the network."""
    m = 8
    out = simulate_step(uniform(4, m, vpp=2, p2p_s=0.1, p2p_gather_s=0.05, p2p_blocking=True))
    timeline = out.timeline
    gathers = Counter(i.stage for i in timeline.intervals()
                      if i.name == "all-gathering a received shard")
    blocked = Counter(i.stage for i in timeline.intervals() if i.name == "blocking send")
    sent = Counter(t.source for t in timeline.transfers())
    assert [gathers[s] for s in range(4)] == [24, 32, 32, 24]
    assert [blocked[s] for s in range(4)] == [24, 32, 32, 24]
    assert [sent[s] for s in range(4)] == [24, 32, 32, 24]
    assert all(stage_crossings(4, 2, s) == Crossings(gathers[s] // m, sent[s] // m)
               for s in range(4))


def test_the_estimate_charges_each_stage_its_own_crossings():
    """pp 4, vpp 2, 8 microbatches, 0.25 s gathers, no transfer time: the middle stages take
    3 + 4 x 0.25 = 4 s a microbatch, the end ones 3 + 3 x 0.25 = 3.75 s. The estimate is
    M x slowest + (pp - 1) x mean / vpp = 8 x 4 + 3 x 3.875 / 2 = 37.8125 s (charging every
    stage 2 vpp = 4 gathers would give 8 x 4 + 3 x 4 / 2 = 38 s)."""
    assert estimate_step_s(uniform(4, 8, vpp=2, p2p_gather_s=0.25)) == pytest.approx(37.8125)


@pytest.mark.parametrize("pp,vpp,m,tolerance", [
    # two stages, both end stages: each receives 2 vpp - 1 = 3 inputs a microbatch
    (2, 2, 8, 0.05),
    (4, 1, 8, 0.10),
])
def test_the_estimate_and_the_step_agree_on_the_gathers_share(pp, vpp, m, tolerance):
    """The gathers' share of the step (the step with 0.02 s gathers less the step without)
    by the estimate within ``tolerance`` of the simulated one, on uniform stages. By
    hand for pp 2, vpp 2, 8 microbatches: each stage gathers 3 inputs a microbatch,
    8 x 0.06 + (2 - 1) x 0.06 / 2 = 0.51 s (the simulation: 0.50 s); the rule of 2 vpp = 4
    a stage gave 8 x 0.08 + 0.04 = 0.68 s, 36% over."""
    plain = uniform(pp, m, vpp=vpp)
    gathered = replace(plain, p2p_gather_s=0.02)
    estimated = estimate_step_s(gathered) - estimate_step_s(plain)
    simulated = simulate_step(gathered).step_time_s - simulate_step(plain).step_time_s
    if (pp, vpp, m) == (2, 2, 8):
        assert estimated == pytest.approx(0.51)
    assert estimated == pytest.approx(simulated, rel=tolerance)
