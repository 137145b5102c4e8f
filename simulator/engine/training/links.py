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
from dataclasses import dataclass
from typing import Any

import simpy
from simpy.events import Timeout

Link = tuple[str, str, int]  # (direction "out" or "in", fabric, stage): a link's key
_EPS = 1e-15


class Wire:
    """One link's state: the transfers on it, in the order they started.

    An object per link, resolved once from its key, so that a transfer touches its links
    without hashing their keys."""

    __slots__ = ("flows",)

    def __init__(self) -> None:
        self.flows: dict[_Flow, None] = {}


class _Flow:
    """A transfer in flight: its work left at full speed, its rate, and its latest timer.

    ``finish`` is its timers' callback: the latest one finishes it, an earlier one (from
    before a re-timing) fires unheeded. (A bound method, not a ``partial`` per timer.)
    ``Links.send`` fills the fields in: an ``__init__`` call would cost as much again as
    the object."""

    __slots__ = ("arg", "net", "on_done", "rate", "remaining", "since", "start", "timer",
                 "wires")

    net: Links
    wires: tuple[Wire, ...]
    remaining: float  # seconds of work left at full speed, as of ``since``
    on_done: Callable[[Any, float, float], None]
    arg: Any
    start: float
    since: float
    rate: float
    timer: simpy.Event

    def finish(self, event: simpy.Event) -> None:
        """A timer fired: if it is the latest, the transfer has arrived."""
        if event is not self.timer:
            return  # re-timed since: a later timer will finish it
        shared = False
        for wire in self.wires:
            flows = wire.flows
            del flows[self]
            if flows:
                shared = True
        net = self.net
        self.on_done(self.arg, self.start, net.env.now)
        if shared:
            net.retime(net.sharing(self))


_new = object.__new__


class Links:
    """Every link of the simulated pipeline, and the transfers on them."""

    def __init__(self, env: simpy.Environment):
        self.env = env
        self.wires: dict[Link, Wire] = {}

    def resolve(self, links: tuple[Link, ...]) -> tuple[Wire, ...]:
        """The wires of ``links`` (created on first use): resolve once, send many times."""
        wires = self.wires
        return tuple(wires.get(k) or wires.setdefault(k, Wire()) for k in links)

    def send(self, wires: tuple[Wire, ...], seconds: float,
             on_done: Callable[[Any, float, float], None], arg: Any) -> None:
        """Start a transfer of ``seconds`` (alone) on ``wires``; ``on_done(arg, start, end)``.

        ``arg`` saves the caller a closure per transfer."""
        env = self.env
        now = env.now
        if seconds <= 0 or not wires:
            done = env.timeout(max(seconds, 0.0))
            done.callbacks.append(lambda _: on_done(arg, now, env.now))
            return
        flow = _new(_Flow)
        flow.net, flow.wires, flow.remaining, flow.on_done, flow.arg = (
            self, wires, seconds, on_done, arg)
        flow.start = flow.since = now
        flow.rate = 1.0
        alone = True
        for wire in wires:
            flows = wire.flows
            if flows:
                alone = False
            flows[flow] = None
        if alone:  # the common case: full speed, one timer
            timer = flow.timer = Timeout(env, seconds)
            timer.callbacks.append(flow.finish)
        else:
            flow.rate = 0.0  # not started: re-timing gives it its share
            self.retime(self.sharing(flow))

    @staticmethod
    def sharing(flow: _Flow) -> dict[_Flow, None]:
        """The transfers on any of ``flow``'s wires, in wire order, then start order."""
        out: dict[_Flow, None] = {}
        for wire in flow.wires:
            out.update(wire.flows)
        return out

    def retime(self, flows: dict[_Flow, None]) -> None:
        """Give each of ``flows`` the rate of its busiest wire now, and a new timer if the
        rate changed (the old one then fires unheeded)."""
        env = self.env
        now = env.now
        for flow in flows:
            busiest = 1
            for wire in flow.wires:
                busiest = max(busiest, len(wire.flows))
            rate = 1.0 / busiest
            if rate == flow.rate:
                continue
            flow.remaining -= (now - flow.since) * flow.rate
            flow.since, flow.rate = now, rate
            timer = flow.timer = Timeout(env, max(0.0, flow.remaining) / rate)
            timer.callbacks.append(flow.finish)


@dataclass(slots=True, kw_only=True)
class Job:
    """A transfer waiting in a channel (not frozen: a frozen dataclass costs four times as
    much to make, and a step makes one per bucket). ``done`` fires when it has arrived."""

    name: str
    seconds: float
    wires: tuple[Wire, ...]
    done: simpy.Event


class Channel:
    """One communication stream (a NCCL stream): its transfers run one after another.

    ``record(job, start, end)`` hears of each transfer as it arrives, before ``job.done``
    fires; ``on_busy(busy)``, if given, hears when the channel starts working after being
    idle and when it runs out of work (the SMs its kernels hold: :mod:`.shared_compute`)."""

    def __init__(self, links: Links, record: Callable[[Job, float, float], None],
                 on_busy: Callable[[bool], None] | None = None):
        self.links, self.record, self.on_busy = links, record, on_busy
        self.queue: deque[Job] = deque()
        self.busy = False
        self._on_done = self._done  # bound once, handed to every transfer

    def put(self, job: Job) -> None:
        """Queue ``job``: it starts when the transfers queued before it have arrived."""
        self.queue.append(job)
        if not self.busy:
            self._next()

    def _next(self) -> None:
        """Start the next queued transfer, if any."""
        on_busy = self.on_busy
        if not self.queue:
            self.busy = False
            if on_busy is not None:
                on_busy(False)
            return
        if not self.busy and on_busy is not None:
            on_busy(True)
        self.busy = True
        job = self.queue.popleft()
        self.links.send(job.wires, job.seconds, self._on_done, job)

    def _done(self, job: Job, start: float, end: float) -> None:
        """A transfer has arrived: record it, fire its event, start the next."""
        self.record(job, start, end)
        job.done.succeed()
        self._next()
