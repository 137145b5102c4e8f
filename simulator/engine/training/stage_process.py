"""A pipeline stage as a discrete-event process: its schedule's passes in order.

**How a stage runs: one callback state machine.** A stage's body (:meth:`StageProcess.run`)
is a generator; :func:`drive` resumes it from the callbacks of the event it waits for, as
SimPy resumes a process, without a ``Process`` in between (see :func:`drive` for why).

- States: where the body waits. It waits for a pass's input message (step 2 below), for
  the timeout that ends a part of a pass (step 4), for a parameter bucket at a cut point
  (step 4), for data-parallel buckets (steps 3 and 6, and at the end).
- Events: the message's event (fired by the sender's transfer on arrival), the timeout,
  a bucket's event or a condition over several (fired by the stage's DP channel).
- Transitions: the event's callback resumes the body, which runs on (booking the wait
  in the stage's ledger) until its next wait. A start event begins the first pass; after
  the last pass and the final reduction the body returns and an end event fires, as a
  process's would, so the events and their order are SimPy's.

What a pass does, in order (the body of :meth:`StageProcess.run`'s loop, the one place a
pass is simulated):

1. ZeRO 3 with overlap: issue the next pass's parameter gather (a prefetch).
2. Wait for its input message, if it has one (an activation from the previous virtual
   stage, a gradient from the next): the time the transfer is in flight is exposed PP
   communication, the time before it was sent is bubble.
3. ZeRO 3 without overlap: gather its parameters, and wait for them. Passes that meet
   data-parallel buckets (:meth:`StageProcess._meets_dp`) learn here where the buckets cut
   them (:func:`_cut_points`): before the share of the work each parameter bucket feeds
   (the first forward of a chunk under ZeRO 1/2 overlap, every pass under ZeRO 3 overlap),
   after the share that produces each gradient bucket (the last backward of a chunk with
   overlap, every backward under ZeRO 3 overlap). Other passes are one part.
4. Compute, part by part: its kernels, then its exposed TP, EP and CP communication, as
   :class:`PassCost` says (slowed while a data-parallel collective holds some of the SMs:
   :mod:`.shared_compute`); between parts, issue a gradient bucket or wait for a
   parameter bucket that has not arrived.
5. Send its output (:class:`.p2p.PointToPoint`): asynchronously, or, where sends block
   (Megatron-LM 2021-22), wait until it has arrived. A received input sent as 1/tp shards
   is first all-gathered over TP (step 2), on the compute stream.
6. ZeRO 3 without overlap: a backward reduces its gradients, and waits.

Before its first pass a stage issues, with overlap, this step's parameter gathers chunk by
chunk (ZeRO 1/2: the gather of the previous step's update, placed at the start of the step,
which is the steady state) or ZeRO 3's first prefetch. After its last pass it reduces what
is left of its gradients (all of them without overlap) and arrives at the barrier.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy
from simpy.events import Event, Timeout

from simulator.engine.training.data_parallel import DataParallelStream
from simulator.engine.training.ledger import Ledger
from simulator.engine.training.p2p import PointToPoint
from simulator.engine.training.plan import Bucket, GatherMode, StepPlan
from simulator.engine.training.records import StepRecords
from simulator.engine.training.schedule import Pass, Task
from simulator.engine.training.shared_compute import SharedCompute

COMPUTE = "compute"
# What a pass does at a cut point, in this order where points coincide: issue a gradient
# bucket, wait for a parameter bucket, end.
_GRADIENTS, _PARAMETERS, _END = 0, 1, 2
# The cut points of a pass no data-parallel bucket meets.
_WHOLE: tuple[tuple[float, int, int], ...] = ((1.0, _END, 0),)
_BACKWARD = Pass.BACKWARD  # bound once: looking up an enum member costs a call

ProcessBody = Generator[Event, Any, None]  # what a SimPy process runs


def drive(env: simpy.Environment, body: ProcessBody) -> None:
    """Run ``body`` as ``env.process(body)`` would, resumed straight from the callbacks
    of the event it waits for.

    A stage needs none of what ``Process._resume`` does besides resuming: nothing
    interrupts it, no event it waits for fails, and it only waits for events still
    pending. Leaving the rest out saves about 4% of a sweep's layouts and 5% of the
    405B step (docs/performance.md); a test runs every shipped training scenario both
    ways and compares the results bit for bit. A start event and an end event stand for
    the process's own, so the events and their order are SimPy's."""
    send = body.send

    def resume(event: Event) -> None:
        """Send the fired event's value in; hook on the event the stage waits for next."""
        try:
            send(event._value).callbacks.append(resume)  # _value: as Process._resume reads it
        except StopIteration:
            Event(env).succeed()  # the process's end

    started = Event(env)
    started.callbacks.append(resume)
    started.succeed()


class StageProcess:
    """One pipeline stage running its pass order (``run``, driven by :func:`drive`)."""

    def __init__(self, *, env: simpy.Environment, plan: StepPlan, stage: int, ledger: Ledger,
                 p2p: PointToPoint, dp: DataParallelStream, records: StepRecords,
                 shared: SharedCompute | None = None):
        self.env, self.stage, self.ledger = env, stage, ledger
        self.shared = shared  # None: collectives take no SMs from the passes
        self.p2p, self.dp, self.records = p2p, dp, records
        self.order = plan.order[stage]
        self.chunks = plan.stages[stage].chunks
        self.routes = p2p.routes(stage)
        self.inbox, self.boxes = p2p.inbox, p2p.boxes
        self.passes = records.passes
        self.overlap = plan.dp_overlap
        self.per_pass = plan.gather is GatherMode.PASS  # ZeRO 3
        self.per_step = plan.gather is GatherMode.STEP  # ZeRO 1/2
        self.first_forward: dict[int, int] = {}  # chunk -> index of its first forward
        self.last_backward: dict[int, int] = {}  # chunk -> index of its last backward
        self._index_passes()
        self.step_gathers: dict[int, list[Event]] = {}  # ZeRO 1/2 overlap, by chunk
        self.prefetched: dict[int, list[Event]] = {}  # ZeRO 3 overlap, by pass index
        self.grad_events: list[Event] = []  # gradient buckets issued so far
        # align_grad_reduce: pass index -> chunks whose reduction is launched after it
        self.aligned_stage = self._aligning(plan)
        self.aligned = _aligned_issues(self.order, stage) if self.aligned_stage else {}
        self.unissued = set(range(len(self.chunks)))  # chunks whose gradients wait

    def _index_passes(self) -> None:
        """Find each chunk's first forward and last backward, and give the ledger its
        routes in the order the stage first runs them."""
        first_backward: dict[int, int] = {}
        backward_kind = _BACKWARD
        for i, (kind, _microbatch, chunk) in enumerate(self.order):
            if kind is backward_kind:
                self.last_backward[chunk] = i
                first_backward.setdefault(chunk, i)
            else:
                self.first_forward.setdefault(chunk, i)
        self.ledger.order = [route for _, route in sorted(
            [(i, (c, False)) for c, i in self.first_forward.items()]
            + [(i, (c, True)) for c, i in first_backward.items()])]
        self.ledger.runs = [[0.0, 0.0] for _ in self.routes]

    def run(self) -> ProcessBody:
        """The process: what comes before the first pass, every pass in order (the loop's
        body is the one place a pass is simulated: see the module's docstring for its
        steps), then the barrier."""
        self._issue_ahead()
        env, stage, order, routes = self.env, self.stage, self.order, self.routes
        inbox, boxes, send, passes = self.inbox, self.boxes, self.p2p.send, self.passes
        runs, time, interval = self.ledger.runs, self.ledger.time, self.records.interval
        meets_dp, backward_kind, shared = self._meets_dp(), _BACKWARD, self.shared
        for i, task in enumerate(order):
            kind, microbatch, c = task
            backward = kind is backward_kind
            route, dp = routes[c][backward], meets_dp[i]
            if dp:  # 1. prefetch the next pass's parameters
                self._prefetch(i)
            if route.box is not None:  # 2. its input
                message = inbox[route.box + microbatch * boxes]
                if message.callbacks is not None:  # not in yet (if it is, there is no wait)
                    start = env.now
                    sent, arrived = yield message
                    # exposed PP communication while the transfer was in flight, bubble
                    # before it was sent
                    now = env.now
                    in_flight = arrived - max(start, sent) if arrived > start else 0.0
                    time["pp"] += in_flight
                    time["bubble"] += now - start - in_flight
                    interval(stage, COMPUTE, "waiting for a transfer", "wait_pp",
                             now - in_flight, in_flight)
                if route.gather_s > 0:  # rebuild it from the shard that crossed
                    yield from self._pp_comm(route.gather_s, "all-gathering a received shard")
            gathers: list[Event] = []
            grads: tuple[Bucket, ...] = ()
            cuts = _WHOLE
            if dp:  # 3. its parameters, and where buckets cut its compute
                gathers, grads = yield from self._buckets_at(i, backward, c)
                cuts = _cut_points(len(gathers), len(grads))
            done = 0.0  # 4. its compute, part by part between its cut points
            for point, action, k in cuts:
                if point > done:
                    part = point - done
                    runs[c][backward] += part  # the ledger settles runs into time at the end
                    passes.append((stage, env.now, not backward, microbatch, c, part))
                    duration = route.duration_s * part
                    if duration > 0:
                        yield (Timeout(env, duration) if shared is None
                               else shared.run(duration))
                    done = point
                if action == _GRADIENTS:
                    self.grad_events += self.dp.issue(grads[k:k + 1])
                elif action == _PARAMETERS and gathers[k].callbacks is not None:
                    yield from self._wait_dp([gathers[k]], "waiting for parameters")
            self._launch_aligned(i)  # align_grad_reduce: with the first stage's launch
            if route.send is not None:  # 5. its output
                send(route.send, task)
                if route.send.blocking:
                    yield from self._blocked(inbox[route.send.box + microbatch * boxes])
            if dp and backward and self.per_pass and not self.overlap:  # 6. its gradients
                yield from self._wait_dp(self.dp.issue(self.chunks[c].grad_buckets),
                                         "reducing gradients")
        yield from self._finish()

    def _pp_comm(self, seconds: float, name: str) -> ProcessBody:
        """Pipeline communication on the stage's compute stream, booked as exposed."""
        start = self.env.now
        yield Timeout(self.env, seconds)
        self.ledger.time["pp"] += seconds
        self.records.interval(self.stage, COMPUTE, name, "pp_comm", start, seconds)

    def _blocked(self, message: Event) -> ProcessBody:
        """A blocking send: wait until ``message`` has arrived, booked as exposed."""
        if message.callbacks is None:  # already in
            return
        start = self.env.now
        yield message
        waited = self.env.now - start
        self.ledger.time["pp"] += waited
        self.records.interval(self.stage, COMPUTE, "blocking send", "pp_comm", start, waited)

    def _aligning(self, plan: StepPlan) -> bool:
        """Whether this stage launches its reductions aligned (Megatron's
        ``align_grad_reduce`` with overlap, ZeRO 0-2); the first stage of a
        non-interleaved pipeline still reduces during its last backward."""
        if not (plan.align_grad_reduce and self.overlap) or self.per_pass:
            return False
        return plan.vpp > 1 or self.stage > 0

    def _launch_aligned(self, i: int) -> None:
        """After pass ``i``: launch the chunks aligned to it (:func:`_aligned_issues`)."""
        for chunk in self.aligned.get(i, ()):
            self._issue_grads(chunk)

    def _issue_grads(self, chunk: int) -> None:
        """Launch every gradient bucket of ``chunk`` at once (``start_grad_sync``)."""
        if chunk in self.unissued:
            self.unissued.discard(chunk)
            self.grad_events += self.dp.issue(self.chunks[chunk].grad_buckets)

    def _meets_dp(self) -> list[bool]:
        """Per pass, whether data-parallel traffic meets it: every pass under ZeRO 3; with
        overlap, the first forward of a chunk whose parameters a ZeRO 1/2 gather brings,
        and the last backward of a chunk with gradients to reduce."""
        if self.per_pass:
            return [True] * len(self.order)
        meets = [False] * len(self.order)
        if self.overlap:
            for c, i in self.first_forward.items():
                meets[i] = self.per_step and bool(self.chunks[c].param_buckets)
            for c, i in self.last_backward.items():
                meets[i] = bool(self.chunks[c].grad_buckets) and not self.aligned_stage
        return meets

    def _prefetch(self, i: int) -> None:
        """ZeRO 3 with overlap: gather the next pass's parameters while this one runs."""
        if self.per_pass and self.overlap and i + 1 < len(self.order):
            upcoming = self.chunks[self.order[i + 1].chunk]
            self.prefetched[i + 1] = self.dp.issue(upcoming.param_buckets)

    def _buckets_at(self, i: int, backward: bool, c: int,
                    ) -> Generator[Event, Any, tuple[list[Event], tuple[Bucket, ...]]]:
        """The parameter buckets pass ``i`` must wait for as it goes, and the gradient
        buckets it issues as it goes (ZeRO 3 without overlap: first gather and wait)."""
        chunk = self.chunks[c]
        gathers: list[Event] = []
        if self.per_pass and self.overlap:
            gathers = self.prefetched.pop(i)
        elif self.per_pass:
            yield from self._wait_dp(self.dp.issue(chunk.param_buckets), "gathering parameters")
        elif not backward and self.first_forward[c] == i:
            gathers = self.step_gathers.get(c, [])
        reduce_now = backward and (self.per_pass or self.last_backward[c] == i)
        if reduce_now and self.overlap:
            self.unissued.discard(c)  # issued bucket by bucket as the pass goes
        return gathers, chunk.grad_buckets if reduce_now and self.overlap else ()

    def _issue_ahead(self) -> None:
        """With overlap: this step's parameter gathers in the order the chunks first run
        (ZeRO 1/2), or the first pass's (ZeRO 3)."""
        if not self.overlap:
            return
        if self.per_step:
            first = self.first_forward
            for c in sorted(first, key=first.__getitem__):
                self.step_gathers[c] = self.dp.issue(self.chunks[c].param_buckets)
        elif self.per_pass and self.order:
            self.prefetched[0] = self.dp.issue(self.chunks[self.order[0].chunk].param_buckets)

    def _wait_dp(self, events: list[Event], name: str) -> ProcessBody:
        """Wait for data-parallel buckets, booked as exposed DP communication."""
        start = self.env.now
        pending = [e for e in events if e.callbacks is not None]
        if pending:
            yield self.env.all_of(pending)
        waited = self.env.now - start
        self.ledger.time["dp"] += waited
        self.records.interval(self.stage, COMPUTE, name, "wait_dp", start, waited)

    def _finish(self) -> ProcessBody:
        """Reduce what is left of the gradients (all of them without overlap), then arrive
        at the barrier."""
        if not self.per_pass and (self.aligned_stage or not self.overlap):
            for c in sorted(self.unissued):  # what is left (Megatron: after the cooldown)
                self._issue_grads(c)
        yield from self._wait_dp(self.grad_events, "reducing gradients")
        if self.shared is not None:  # the passes ran slower by this much: compute
            self.ledger.slowed_s = self.shared.lost_s
            self.ledger.time["compute"] += self.shared.lost_s
        self.ledger.end_s = self.env.now


def _cut_points(gathers: int, grads: int) -> tuple[tuple[float, int, int], ...]:
    """Where a pass is cut, as (fraction of the pass done, action, bucket): before the share
    of the work each of ``gathers`` parameter buckets feeds, after the share that produces
    each of ``grads`` gradient buckets, and at its end."""
    points = [(k / gathers, _PARAMETERS, k) for k in range(gathers)]
    points += [((k + 1) / grads, _GRADIENTS, k) for k in range(grads)]
    return tuple(sorted(points)) + _WHOLE


def _aligned_issues(order: tuple[Task, ...], stage: int) -> dict[int, list[int]]:
    """When a stage launches each chunk's gradient reduction under Megatron's
    ``align_grad_reduce`` (megatron-core 0.14 ``schedules.py``,
    ``backward_step_helper_postprocess``; on by default in Megatron-LM and Megatron-Bridge
    0.3, ``align_grad_reduce: bool = True``): after the backward ``stage`` backward passes
    past the chunk's last one, which in a pipeline with no slack is when the first stage
    finishes its own last backward of the chunk, so every stage launches it at once ("to
    reduce idling from mismatched microbatch times"). Chunks whose launch falls past the
    last backward are launched at the end (:meth:`StageProcess._finish`). As pass index ->
    chunks launched after that pass."""
    backwards = [i for i, task in enumerate(order) if task.kind is _BACKWARD]
    issues: dict[int, list[int]] = {}
    last: dict[int, int] = {}
    for position, i in enumerate(backwards):
        last[order[i].chunk] = position
    for chunk, position in sorted(last.items(), key=lambda item: item[1]):
        target = position + stage
        if target < len(backwards):
            issues.setdefault(backwards[target], []).append(chunk)
    return issues
