"""A stage's data-parallel stream: gradient reductions and ZeRO parameter gathers.

Each stage has one data-parallel channel (one NCCL stream) that runs its buckets one after
another, on the stage's links, where they share bandwidth with the pipeline's sends (see
:mod:`.links`). When buckets are issued, and what waits for them, is the stage's business
(:mod:`.stage_process`).
"""

from __future__ import annotations

from collections.abc import Callable

import simpy
from simpy.events import Event

from simulator.engine.training.ledger import Ledger
from simulator.engine.training.links import Channel, Job, Links, Wire
from simulator.engine.training.plan import Bucket
from simulator.engine.training.records import StepRecords

DP_STREAM = "dp comm"


class DataParallelStream:
    """One stage's data-parallel channel, its traffic booked on the stage's ledger."""

    def __init__(self, *, env: simpy.Environment, links: Links, stage: int, ledger: Ledger,
                 records: StepRecords, on_busy: Callable[[bool], None] | None = None):
        self.env, self.links, self.stage = env, links, stage
        self.ledger, self.records = ledger, records
        self.channel = Channel(links, self._done, on_busy)
        self._wires: dict[tuple[str, ...], tuple[Wire, ...]] = {}

    def issue(self, buckets: tuple[Bucket, ...]) -> list[Event]:
        """Queue ``buckets`` on the channel; one event per bucket, fired when it is done."""
        events = []
        for bucket in buckets:
            done = Event(self.env)
            if bucket.time_s > 0:
                self.channel.put(Job(name=bucket.name, seconds=bucket.time_s,
                                     wires=self._fabric_wires(bucket.fabrics), done=done))
            else:
                done.succeed()
            events.append(done)
        return events

    def _done(self, job: Job, start: float, end: float) -> None:
        """A bucket has arrived: its slice on the DP track, its seconds on the ledger."""
        self.records.interval(self.stage, DP_STREAM, job.name, "dp_comm", start, end - start)
        self.ledger.network_s += job.seconds

    def _fabric_wires(self, fabrics: tuple[str, ...]) -> tuple[Wire, ...]:
        """The stage's outgoing and incoming links on ``fabrics`` (resolved once)."""
        wires = self._wires.get(fabrics)
        if wires is None:
            ordered = sorted(fabrics)
            wires = self._wires[fabrics] = self.links.resolve(tuple(
                [("out", f, self.stage) for f in ordered]
                + [("in", f, self.stage) for f in ordered]))
        return wires
