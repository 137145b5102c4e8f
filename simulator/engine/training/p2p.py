"""Pipeline point-to-point traffic: where each pass's input comes from and its output goes
(the virtual pipeline's neighbours and which of them cross stages: :mod:`.pipeline_hops`).

A pass's input is a *message*: an activation from the previous virtual stage (forward) or a
gradient from the next one (backward). Each message is a SimPy event that fires with
(sent, arrived) times. Sends are
asynchronous (the sender goes on, as with Megatron-LM's ``overlap_p2p_comm`` and Llama 3's
pipeline) and travel over the sender's outgoing and the receiver's incoming link, which
they share with data-parallel traffic (see :mod:`.links`).

Message ids are integers: the message of microbatch ``m`` into (direction, receiving stage,
chunk) is ``box + m * boxes``, with ``box = (backward * pp + stage) * vpp + chunk`` and
``boxes = 2 pp vpp``: an index into the inbox, a list (a step sends thousands of messages;
tuples would hash anew each time).

Two things Megatron-LM of 2021-22 did differently are options of the plan: a send that
blocks its stage until it has arrived (``p2p_blocking``: ``batch_isend_irecv``, then
``wait`` and ``torch.cuda.synchronize``), and the all-gather over TP that rebuilds a
message sent as 1/tp shards (``Route.gather_s``: its scatter-gather optimisation, paid by
the receiver on its compute stream whether sends block or not).
"""

from __future__ import annotations

from itertools import repeat
from typing import NamedTuple

import simpy
from simpy.events import Event

from simulator.engine.training.ledger import Ledger
from simulator.engine.training.links import Links, Wire
from simulator.engine.training.pipeline_hops import crosses, neighbours
from simulator.engine.training.plan import PassCost, StepPlan
from simulator.engine.training.records import StepRecords
from simulator.engine.training.schedule import Pass, Task

PP_STREAMS = ("pp send (activations)", "pp send (gradients)")  # forward, backward


class SendRoute(NamedTuple):
    """Where every pass of one (chunk, direction) of a stage sends its output."""

    source: int
    destination: int
    forward: bool  # an activation (else a gradient)
    box: int  # the message id of microbatch 0 at the destination
    wires: tuple[Wire, ...]  # the source's outgoing and the destination's incoming links
    seconds: float  # the transfer alone on its links; 0 between chunks of one stage
    stream: str
    blocking: bool  # the sender waits for the send to arrive before it goes on


class Route(NamedTuple):
    """What every pass of one (chunk, direction) of a stage shares, worked out once per
    step: its cost, where its input comes from and where its output goes."""

    chunk: int
    backward: bool
    cost: PassCost
    duration_s: float  # ``cost.duration_s``, read once per pass
    box: int | None  # the message id of microbatch 0's input; None: it needs none
    gather_s: float  # the all-gather over TP that rebuilds the input from its shard
    send: SendRoute | None  # None: the last virtual stage's forward, the first's backward


# A send in flight, as the links hand it back on arrival: (route, message id, task).
_Parcel = tuple[SendRoute, int, Task]


class PointToPoint:
    """The pipeline's messages: each stage's routes, the inbox, and the sends between."""

    def __init__(self, *, plan: StepPlan, env: simpy.Environment, links: Links,
                 ledgers: list[Ledger], records: StepRecords):
        self.plan, self.env, self.links = plan, env, links
        self.ledgers, self.transfers = ledgers, records.transfers
        self.pp, self.vpp = plan.pp, plan.vpp
        self.boxes = 2 * self.pp * self.vpp  # message ids per microbatch
        # one event per message id, made up front (each is sent once and awaited once; the
        # few ids no pass uses are never triggered, so they cost the step no event). A
        # single virtual stage sends nothing.
        messages = self.boxes * plan.microbatches if self.pp * self.vpp > 1 else 0
        self.inbox = list(map(Event, repeat(env, messages)))
        self._wires: dict[tuple[int, int], tuple[Wire, ...]] = {}
        self._on_arrival = self._arrived  # bound once, handed to every send

    def routes(self, stage: int) -> list[tuple[Route, Route]]:
        """The stage's routes: ``routes[chunk][backward]``."""
        return [(self._route(stage, chunk, Pass.FORWARD), self._route(stage, chunk, Pass.BACKWARD))
                for chunk in range(self.vpp)]

    def send(self, route: SendRoute, task: Task) -> None:
        """Send ``task``'s output: the destination's message fires with (sent, arrived)."""
        key = route.box + task.microbatch * self.boxes
        seconds = route.seconds
        if seconds <= 0:
            now = self.env.now
            self.inbox[key].succeed((now, now))
            return
        self.ledgers[route.source].network_s += seconds
        self.ledgers[route.destination].network_s += seconds
        self.links.send(route.wires, seconds, self._on_arrival, (route, key, task))

    def _arrived(self, parcel: _Parcel, start: float, end: float) -> None:
        """A send has arrived: record the transfer, fire the destination's message."""
        route, key, task = parcel
        self.transfers.append((route.source, route.destination, route.stream, route.forward,
                               task.microbatch, task.chunk, start, end - start))  # a Transfer
        self.inbox[key].succeed((start, end))

    def _box(self, backward: bool, stage: int, chunk: int) -> int:
        """The message id of microbatch 0 into (direction, receiving stage, chunk)."""
        return (backward * self.pp + stage) * self.vpp + chunk

    def _route(self, stage: int, chunk: int, kind: Pass) -> Route:
        """The route of the passes of (``chunk``, ``kind``) on ``stage``."""
        forward = kind is Pass.FORWARD
        costs = self.plan.stages[stage].chunks[chunk]
        cost = costs.forward if forward else costs.backward
        source, target = neighbours(self.pp, self.vpp, stage, chunk, forward=forward)
        send = None
        if target:
            destination, destination_chunk = target
            seconds = self.plan.p2p_s if crosses(stage, target) else 0.0
            send = SendRoute(
                source=stage, destination=destination, forward=forward,
                box=self._box(not forward, destination, destination_chunk),
                wires=self._p2p_wires(stage, destination) if seconds > 0 else (),
                seconds=seconds, stream=PP_STREAMS[0 if forward else 1],
                blocking=self.plan.p2p_blocking and seconds > 0)
        gather_s = self.plan.p2p_gather_s if crosses(stage, source) else 0.0
        return Route(chunk=chunk, backward=not forward, cost=cost, duration_s=cost.duration_s,
                     box=self._box(not forward, stage, chunk) if source else None,
                     gather_s=gather_s, send=send)

    def _p2p_wires(self, source: int, destination: int) -> tuple[Wire, ...]:
        """The links a send from ``source`` to ``destination`` crosses (resolved once)."""
        wires = self._wires.get((source, destination))
        if wires is None:
            fabrics = sorted(self.plan.p2p_fabrics)
            wires = self._wires[source, destination] = self.links.resolve(tuple(
                [("out", f, source) for f in fabrics]
                + [("in", f, destination) for f in fabrics]))
        return wires
