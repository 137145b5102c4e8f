"""The end of a simulated step: the barrier, the optimizer, and what the step reports.

Every stage arrives at the barrier when its gradients are reduced (gradient-norm clipping
needs all of them). The first and the last stage then all-reduce the gradient of the word
embedding they share (:mod:`.embedding_grads`); every stage runs its optimizer step (and,
for ZeRO 1/2 without overlap, the parameter all-gather after it). The step ends with the
longest of those tails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from simulator.engine.training.data_parallel import DP_STREAM
from simulator.engine.training.ledger import Ledger, StageTotals
from simulator.engine.training.plan import GatherMode, StepPlan
from simulator.engine.training.records import StepRecords
from simulator.engine.training.stage_process import COMPUTE
from simulator.perf.embedding_grads import NAME as EMBEDDING_GRADS
from simulator.results.training import StepBreakdown, StepTimeline
from simulator.results.utilization import Utilization


@dataclass(frozen=True, kw_only=True)
class StepOutcome:
    """The simulated step: its time, breakdowns, utilization and timeline, as plain data."""

    step_time_s: float
    breakdown: StepBreakdown  # of the critical stage
    utilization: Utilization
    timeline: StepTimeline
    critical_stage: int  # finishes last: ``breakdown`` is its
    busiest_stage: int  # longest busy (compute and exposed comm): the bottleneck
    busiest_breakdown: StepBreakdown  # its time, idle to the barrier as bubble
    stages: tuple[StageTotals, ...]  # every stage's ledger
    events: int  # SimPy events processed (what simulating the step costs)

    @property
    def bubble_fraction(self) -> float:
        """The critical stage's bubble, as a share of the step."""
        return self.breakdown.bubble / self.step_time_s if self.step_time_s else 0.0


class Tail(NamedTuple):
    """What a stage runs after the barrier, in order: the shared embedding's gradient
    all-reduce (first and last stage), its optimizer step, and the parameter gather after
    it (ZeRO 1/2 without overlap)."""

    embedding: float
    optimizer: float
    gather: float

    @property
    def total(self) -> float:
        """The tail's length: its parts run one after another."""
        return self.embedding + self.optimizer + self.gather

    @property
    def comm(self) -> float:
        """Its communication, which the stage waits for."""
        return self.embedding + self.gather


def _tail(plan: StepPlan, stage: int) -> Tail:
    """A stage's tail after the barrier."""
    s = plan.stages[stage]
    gather = 0.0
    if plan.gather is GatherMode.STEP and not plan.dp_overlap:
        gather = sum(b.time_s for c in s.chunks for b in c.param_buckets)
    return Tail(plan.embedding_grads_s(stage), s.optimizer_s, gather)


def close_step(plan: StepPlan, ledgers: list[Ledger], records: StepRecords,
               events: int) -> StepOutcome:
    """The step's outcome from every stage's ledger, once all have reached the barrier."""
    for stage, ledger in enumerate(ledgers):
        ledger.settle(plan.stages[stage].chunks)
    ends = [ledger.end_s for ledger in ledgers]
    assert None not in ends
    barrier = max(e for e in ends if e is not None)
    tails = [_tail(plan, s) for s in range(plan.pp)]
    for stage, tail in enumerate(tails):
        _record_tail(records, stage, barrier, tail)
    worst = tails[max(range(plan.pp), key=lambda s: tails[s].total)]
    step = barrier + worst.total
    critical = max(range(plan.pp), key=lambda s: (ends[s], -s))
    t = ledgers[critical].time
    breakdown = StepBreakdown(
        compute=t["compute"], exposed_tp_comm=t["tp"], exposed_ep_comm=t["ep"],
        exposed_pp_comm=t["pp"], exposed_dp_comm=t["dp"] + worst.comm,
        bubble=t["bubble"], optimizer=worst.optimizer, other=t["cp"])
    busiest = max(range(plan.pp), key=lambda s: (ledgers[s].busy_s(), -s))
    busiest_breakdown = (breakdown if busiest == critical
                         else _waiting_breakdown(ledgers[busiest], step, tails[busiest]))
    return StepOutcome(step_time_s=step, breakdown=breakdown,
                       utilization=_utilization(plan, ledgers, step, tails),
                       timeline=records.timeline(plan, step), critical_stage=critical,
                       busiest_stage=busiest, busiest_breakdown=busiest_breakdown,
                       stages=tuple(StageTotals.of(ledger) for ledger in ledgers),
                       events=events)


def _record_tail(records: StepRecords, stage: int, barrier: float, tail: Tail) -> None:
    """The tail's intervals on the stage's timeline, from the barrier on."""
    records.interval(stage, DP_STREAM, EMBEDDING_GRADS, "dp_comm", barrier, tail.embedding)
    start = barrier + tail.embedding
    records.interval(stage, COMPUTE, "optimizer", "optimizer", start, tail.optimizer)
    records.interval(stage, DP_STREAM, "parameter all-gather", "dp_comm",
                     start + tail.optimizer, tail.gather)


def _waiting_breakdown(ledger: Ledger, step: float, tail: Tail) -> StepBreakdown:
    """Where a stage that is not the last to finish spends the step: what it waits at the
    barrier, and for a longer optimizer tail elsewhere, counts as bubble, so the parts sum
    to the step."""
    t = ledger.time
    parts = dict(compute=t["compute"], exposed_tp_comm=t["tp"], exposed_ep_comm=t["ep"],
                 exposed_pp_comm=t["pp"], exposed_dp_comm=t["dp"] + tail.comm,
                 optimizer=tail.optimizer, other=t["cp"])
    return StepBreakdown(**parts, bubble=step - sum(parts.values()))


def _utilization(plan: StepPlan, ledgers: list[Ledger], step: float,
                 tails: list[Tail]) -> Utilization:
    """Busy, memory-bandwidth and network utilization averaged over the stages. FLOP
    utilization needs the model's FLOPs: ``run_training`` fills it in (= hfu)."""
    if step <= 0:
        return Utilization(compute=0.0, memory_bandwidth=0.0, network=0.0, busy=0.0)
    pp = plan.pp
    busy = sum(ledger.time["compute"] + tails[s].optimizer
               for s, ledger in enumerate(ledgers)) / (pp * step)
    memory = 0.0
    if plan.peak_hbm_bandwidth > 0:
        moved = sum(ledger.hbm_bytes + plan.stages[s].optimizer_bytes
                    for s, ledger in enumerate(ledgers))
        memory = moved / (pp * step * plan.peak_hbm_bandwidth)
    network = sum(min(1.0, (ledger.network_s + tails[s].comm) / step)
                  for s, ledger in enumerate(ledgers)) / pp
    return Utilization(compute=0.0, memory_bandwidth=min(1.0, memory), network=network,
                       busy=min(1.0, busy))
