"""One optimizer step of one pipeline, simulated in SimPy.

Symmetric ranks are simulated once: every data-parallel replica (and every TP/CP rank of a
stage) does the same thing at the same time, so one pipeline stands for the whole fleet.

The pieces, one concept a module:

- :mod:`.plan`: what the step is made of (pass costs, buckets, the schedule's order);
- :mod:`.stage_process`: each pipeline stage as a process running its passes;
- :mod:`.p2p`: the messages between stages (routes, inbox, asynchronous sends);
- :mod:`.data_parallel`: each stage's data-parallel stream (gradient and parameter buckets);
- :mod:`.links`: the links both share, fairly;
- :mod:`.shared_compute`: the SMs a stage's running collectives take from its passes;
- :mod:`.ledger`: where each stage's time goes, booked as it is simulated;
- :mod:`.records`: what the timeline keeps;
- :mod:`.outcome`: the barrier, the optimizer and the step's figures.

Every interval of every stage is classified as it is simulated (compute, exposed TP/EP/CP,
waiting for a transfer in flight, waiting for data-parallel communication, or idle), so the
breakdown of the stage that finishes last sums to the step time.
"""

from __future__ import annotations

import simpy

from simulator.engine.stepping import collector_paused, run_counting
from simulator.engine.training.data_parallel import DataParallelStream
from simulator.engine.training.ledger import Ledger
from simulator.engine.training.links import Links
from simulator.engine.training.outcome import StepOutcome, close_step
from simulator.engine.training.p2p import PointToPoint
from simulator.engine.training.plan import StepPlan
from simulator.engine.training.records import StepRecords
from simulator.engine.training.shared_compute import SharedCompute
from simulator.engine.training.stage_process import StageProcess, drive


def simulate_step(plan: StepPlan) -> StepOutcome:
    """Simulate one step of ``plan`` (deterministic: no randomness in a step)."""
    if len(plan.order) != plan.pp:
        raise ValueError(f"the plan has {plan.pp} stages but {len(plan.order)} pass orders")
    with collector_paused():
        env = simpy.Environment()
        links = Links(env)
        records = StepRecords()
        ledgers = [Ledger() for _ in range(plan.pp)]
        p2p = PointToPoint(plan=plan, env=env, links=links, ledgers=ledgers, records=records)
        share = plan.collective_sm_share
        for stage, ledger in enumerate(ledgers):
            shared = SharedCompute(env, share) if share > 0 else None
            dp = DataParallelStream(env=env, links=links, stage=stage, ledger=ledger,
                                    records=records,
                                    on_busy=shared.set_busy if shared else None)
            process = StageProcess(env=env, plan=plan, stage=stage, ledger=ledger, p2p=p2p,
                                   dp=dp, records=records, shared=shared)
            drive(env, process.run())
        events = run_counting(env)
        # every message is delivered: drop them now, by reference count, rather than
        # leave thousands of events in the step's reference cycles for the collector
        p2p.inbox.clear()
        stuck = [s for s, ledger in enumerate(ledgers) if ledger.end_s is None]
        if stuck:
            raise RuntimeError(f"the pipeline schedule deadlocked: stages {stuck} never "
                               f"finished (a bug in the schedule)")
        return close_step(plan, ledgers, records, events)
