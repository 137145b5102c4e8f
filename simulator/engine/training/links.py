"""Network links shared fairly by the transfers on them, and the data-parallel channel.

A transfer is given the seconds it would take alone on its links (from the collective
model). Transfers that overlap in time share each link equally (a fluid, processor-sharing
model): a transfer progresses at 1/n of full speed while n transfers use its busiest link.
So a pipeline send that meets a gradient bucket on the same NIC slows it and is slowed by
it, as two NCCL streams on one NIC are, instead of waiting for the whole bucket.

Events happen only when a transfer starts or ends, and only the transfers sharing a link
with it are re-timed. Everything is ordered (dicts, not sets) so that runs are reproducible.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import simpy

Link = tuple[str, str, int]  # (direction "out" or "in", fabric, stage)
_EPS = 1e-15


@dataclass(eq=False, slots=True)
class _Flow:
    links: tuple[Link, ...]
    remaining: float  # seconds left at full speed
    on_done: Callable[[float, float], None]  # called with (start, end)
    start: float
    rate: float = 0.0
    since: float = 0.0
    version: int = 0


@dataclass
class Links:
    """Every link of the simulated pipeline, and the transfers on them."""

    env: simpy.Environment
    flows: dict[Link, dict[_Flow, None]] = field(default_factory=dict)

    def transfer(self, links: tuple[Link, ...], seconds: float,
                 on_done: Callable[[float, float], None]) -> None:
        """Start a transfer of ``seconds`` (alone) on ``links``; ``on_done(start, end)``."""
        now = self.env.now
        if seconds <= 0 or not links:
            done = self.env.timeout(max(seconds, 0.0))
            done.callbacks.append(lambda _: on_done(now, self.env.now))
            return
        flow = _Flow(links, seconds, on_done, now, since=now)
        alone = True
        for link in links:
            on_link = self.flows.get(link)
            if on_link is None:
                on_link = self.flows[link] = {}
            alone = alone and not on_link
            on_link[flow] = None
        if alone:  # the common case: full speed, one timer
            flow.rate = 1.0
            timer = self.env.timeout(seconds)
            timer.callbacks.append(partial(self._finish, flow, flow.version))
        else:
            self._retime(self._sharing(flow))

    def _sharing(self, flow: _Flow) -> dict[_Flow, None]:
        out: dict[_Flow, None] = {}
        for link in flow.links:
            out.update(self.flows.get(link, {}))
        return out

    def _retime(self, flows: dict[_Flow, None]) -> None:
        now = self.env.now
        for flow in flows:
            busiest = 1
            for link in flow.links:
                busiest = max(busiest, len(self.flows[link]))
            rate = 1.0 / busiest
            if rate == flow.rate:
                continue
            flow.remaining -= (now - flow.since) * flow.rate
            flow.since, flow.rate = now, rate
            flow.version += 1
            timer = self.env.timeout(max(0.0, flow.remaining) / rate)
            timer.callbacks.append(partial(self._finish, flow, flow.version))

    def _finish(self, flow: _Flow, version: int, _event: simpy.Event) -> None:
        if version != flow.version:
            return  # re-timed since: a later timer will finish it
        shared = False
        for link in flow.links:
            on_link = self.flows[link]
            del on_link[flow]
            shared = shared or bool(on_link)
        flow.on_done(flow.start, self.env.now)
        if shared:
            self._retime(self._sharing(flow))


@dataclass(frozen=True)
class Job:
    """A transfer waiting in a channel."""

    name: str
    seconds: float
    links: tuple[Link, ...]
    done: simpy.Event


class Channel:
    """One communication stream (a NCCL stream): its transfers run one after another."""

    def __init__(self, links: Links, record: Callable[[Job, float, float], None]):
        self.links, self.record = links, record
        self.queue: deque[Job] = deque()
        self.busy = False

    def put(self, job: Job) -> None:
        self.queue.append(job)
        if not self.busy:
            self._next()

    def _next(self) -> None:
        if not self.queue:
            self.busy = False
            return
        self.busy = True
        job = self.queue.popleft()
        self.links.transfer(job.links, job.seconds, partial(self._done, job))

    def _done(self, job: Job, start: float, end: float) -> None:
        self.record(job, start, end)
        job.done.succeed()
        self._next()
