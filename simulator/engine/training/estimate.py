"""An analytic step time from a step plan, without simulating it: the training plan's
pre-screen, which ranks layouts so that only the most promising few are simulated.

The pipeline part is the textbook one (Narayanan et al. 2021, §2.2): ``M`` microbatches
through the slowest stage, plus the fill and drain bubble of ``pp - 1`` stage times, cut by
``vpp`` with the interleaved schedule, each hop adding a transfer each way:

    M · t_max + (pp - 1) · (t_mean / vpp + 2 · p2p)

where ``t`` is one microbatch's forward and backward through all of a stage's chunks, with
the all-gathers that rebuild the inputs it receives from other stages from TP shards and,
where sends block, the sends it makes to other stages (:mod:`.p2p`), counted by the rule the
simulated step routes its messages by (:func:`.pipeline_hops.stage_crossings`: ``2 vpp``
each on a middle stage, one fewer of each on the first and last). ZeRO-3
gathers every pass's parameters and reduces every backward's gradients on the stage's one
data-parallel stream: with overlap a stage goes at the slower of its compute and that
stream, without it at their sum. After the last backward comes what the gradient
reduction leaves exposed (with overlap, the last-reduced chunk's buckets, or the part of the
step's data-parallel traffic the compute cannot hide; the last chunk's buckets are issued
one by one during its last backward, which hides all but the last or what outlasts the
pass), the first and the last stage's
all-reduce of a word embedding they share, and the optimizer step. Compute
that overlaps data-parallel traffic loses the profile's ``collective_sm_share`` of it
(:mod:`.shared_compute`).

It ignores contention between transfers and the exact order of passes: the simulation is
the answer, this only decides what is worth simulating.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from simulator.engine.training.pipeline_hops import stage_crossings
from simulator.engine.training.plan import Chunk, GatherMode, Stage, StepPlan
from simulator.engine.training.planner import build_plan, chunk_prices
from simulator.perf.footprint import resolved_memory_options
from simulator.perf.layouts import training_layout
from simulator.profiles.scenario import Scenario
from simulator.profiles.training import PipelineSchedule, TrainingWorkload


def _bucket_s(buckets: tuple) -> float:
    """The time of ``buckets`` one after another on one stream."""
    return sum(b.time_s for b in buckets)


def _chunk_compute_s(chunk: Chunk) -> float:
    """One microbatch's forward and backward through ``chunk``."""
    return chunk.forward.duration_s + chunk.backward.duration_s


def _pipeline_comm_s(plan: StepPlan, index: int) -> float:
    """What one microbatch's messages cost stage ``index`` on its own stream, through all
    its chunks: each input received from another stage all-gathered from its TP shards,
    and each output sent to another stage waited for where sends block."""
    hops = stage_crossings(plan.pp, plan.vpp, index)
    blocking_s = plan.p2p_s if plan.p2p_blocking else 0.0
    return hops.receives * plan.p2p_gather_s + hops.sends * blocking_s


def stage_microbatch_s(plan: StepPlan, index: int) -> float:
    """One microbatch through all of stage ``index``'s chunks (ZeRO-3 traffic and the
    pipeline communication on its stream included)."""
    stage = plan.stages[index]
    compute = sum(_chunk_compute_s(c) for c in stage.chunks) + _pipeline_comm_s(plan, index)
    if plan.gather is not GatherMode.PASS:
        return compute
    stream = sum(2 * _bucket_s(c.param_buckets) + _bucket_s(c.grad_buckets)
                 for c in stage.chunks)
    if not plan.dp_overlap:
        return compute + stream
    # the compute that overlaps the stream runs on the SMs its kernels leave free
    return max(compute + plan.collective_sm_share * min(compute, stream), stream)


def _tail_s(plan: StepPlan, stage: Stage, busy_s: float) -> float:
    """What follows ``stage``'s last backward: exposed gradient reduction, then the
    optimizer. ``busy_s`` is the stage's compute over the step, which hides traffic."""
    if plan.gather is GatherMode.PASS:
        exposed = _last_chunk_exposed_s(stage.chunks[0]) if plan.dp_overlap else 0.0
        return exposed + stage.optimizer_s
    grads = sum(_bucket_s(c.grad_buckets) for c in stage.chunks)
    gathers = sum(_bucket_s(c.param_buckets) for c in stage.chunks) \
        if plan.gather is GatherMode.STEP else 0.0
    if not plan.dp_overlap:
        return grads + gathers + stage.optimizer_s
    last_chunk = _last_chunk_exposed_s(stage.chunks[0])
    return (max(last_chunk, grads + gathers - busy_s) + _slowed_s(plan, stage, busy_s)
            + stage.optimizer_s)


def _last_chunk_exposed_s(chunk: Chunk) -> float:
    """What the last-reduced chunk's gradient buckets leave after its last backward. They
    are issued one by one as that pass produces them (after each ``1/n`` of it, as the
    simulated stage cuts it), so the stream hides all but the last bucket where a bucket
    is shorter than the spacing, and otherwise all but what the pass's first ``(n-1)/n``
    covers."""
    buckets = chunk.grad_buckets
    if not buckets:
        return 0.0
    n = len(buckets)
    covered = chunk.backward.duration_s * (n - 1) / n
    return max(max(b.time_s for b in buckets), _bucket_s(buckets) - covered)


def _slowed_s(plan: StepPlan, stage: Stage, busy_s: float) -> float:
    """ZeRO 0-2 with overlap: what the stage's compute loses to the SMs its once-a-step
    gradient and parameter collectives hold while they overlap it."""
    if plan.gather is GatherMode.PASS or not plan.dp_overlap:
        return 0.0
    traffic = sum(_bucket_s(c.grad_buckets) for c in stage.chunks)
    if plan.gather is GatherMode.STEP:
        traffic += sum(_bucket_s(c.param_buckets) for c in stage.chunks)
    return plan.collective_sm_share * min(traffic, busy_s)


def estimate_step_s(plan: StepPlan) -> float:
    """The analytic step time of ``plan`` (see the module docstring)."""
    microbatches, pp, vpp = plan.microbatches, plan.pp, plan.vpp
    per_microbatch = [stage_microbatch_s(plan, i) for i in range(pp)]
    slowest, mean = max(per_microbatch), sum(per_microbatch) / pp
    pipeline = microbatches * slowest + (pp - 1) * (mean / vpp + 2 * plan.p2p_s)
    tails = [_tail_s(plan, s, microbatches * t) + plan.embedding_grads_s(k)
             for k, (s, t) in enumerate(zip(plan.stages, per_microbatch, strict=True))]
    # each stage's passes lose time to its collectives' SMs at its own moments (a chunk's
    # gradients are reduced after its last backward, which comes at a different time on
    # every stage); in a lockstep pipeline a late stage delays every other, so the other
    # stages' losses add to the worst tail's, about half of them on the critical path (the
    # rest falls in the bubble: the simulated 405B layout puts 1.1 s of a 2.2 s sum there)
    slowed = [_slowed_s(plan, s, microbatches * t)
              for s, t in zip(plan.stages, per_microbatch, strict=True)]
    return pipeline + max(tails) + (sum(slowed) - max(slowed)) / 2


def _pricing_key(scenario: Scenario) -> tuple[Any, ...]:
    """What a chunk's price depends on: the scenario without its pipeline split."""
    w = scenario.workload
    assert isinstance(w, TrainingWorkload)
    par = w.parallelism.model_copy(update={"vpp": 1, "first_stage_layers": None,
                                           "last_stage_layers": None})
    plain = w.model_copy(update={"parallelism": par,
                                 "pipeline_schedule": PipelineSchedule.ONE_F_ONE_B})
    return (scenario.hardware, scenario.model, training_layout(w), plain)


def estimate_step_times(scenarios: Sequence[Scenario]) -> list[float]:
    """:func:`estimate_step_s` of each scenario's plan; neighbours that differ only in their
    pipeline split (vpp, end stages, schedule) share the pricing of their chunks."""
    times: list[float] = []
    shared: tuple[tuple[Any, ...], Any] | None = None
    for scenario in map(resolved_memory_options, scenarios):
        key = _pricing_key(scenario)
        if shared is None or shared[0] != key:
            shared = (key, chunk_prices(scenario))
        times.append(estimate_step_s(build_plan(scenario, prices=shared[1]).step))
    return times
