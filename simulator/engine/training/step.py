"""One training step of one pipeline, simulated in SimPy.

Symmetric ranks are simulated once: every data-parallel replica (and every TP/CP rank of a
stage) does the same thing at the same time, so one pipeline stands for the whole fleet.

- Each pipeline stage runs its schedule's passes in order (a generator that the events it
  waits for resume directly, cheaper than a SimPy process: see ``_Stage``). A pass starts
  when its input has arrived (an activation from the previous virtual stage, a gradient
  from the next one) and lasts what :class:`PassCost` says: compute plus the TP, EP and CP
  communication that is not overlapped.
- Point-to-point sends are asynchronous (the sender goes on, as with Megatron-LM's
  ``overlap_p2p_comm`` and Llama 3's pipeline) and travel over the sender's outgoing and the
  receiver's incoming link, which they share with data-parallel traffic (see ``links``).
- Each stage has one data-parallel channel (one NCCL stream) that runs gradient
  reduce-scatters / all-reduces and ZeRO parameter all-gathers bucket by bucket. With
  overlap, a gradient bucket is issued as soon as the backward pass that produces it has got
  that far, and the first forward of a chunk waits only for the parameter buckets it needs.
- The step closes with a barrier (gradient-norm clipping needs every stage's reduced
  gradients) and the optimizer step.

Every interval of every stage is classified as it is simulated (compute, exposed TP/EP/CP,
waiting for a transfer in flight, waiting for data-parallel communication, or idle), so the
breakdown of the stage that finishes last sums to the step time.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from functools import partial

import simpy
from simpy.events import Event, Timeout

from simulator.engine.stepping import collector_paused, run_counting
from simulator.engine.training.links import Channel, Job, Links, Wire
from simulator.engine.training.plan import Bucket, GatherMode, PassCost, StepPlan
from simulator.engine.training.schedule import Pass, Task
from simulator.results.training import StepBreakdown, StepTimeline
from simulator.results.utilization import Utilization

COMPUTE, DP_STREAM = "compute", "dp comm"
PP_STREAMS = ("pp send (activations)", "pp send (gradients)")  # forward, backward
_CATEGORIES = ("compute", "tp", "ep", "cp", "pp", "dp", "bubble")


@dataclass
class _Ledger:
    """Time per category, and busy figures, of one stage."""

    time: dict[str, float] = field(default_factory=lambda: dict.fromkeys(_CATEGORIES, 0.0))
    # passes run by route (2 chunk + backward): a list, because a (chunk, Pass) key hashes
    # through Enum.__hash__, a Python call, twice per update
    runs: list[float] = field(default_factory=list)
    order: list[int] = field(default_factory=list)  # routes as first run: the summing order
    hbm_bytes: float = 0.0
    network_s: float = 0.0
    end_s: float | None = None  # when its gradients are reduced (arrival at the barrier)


@dataclass(frozen=True)
class StepOutcome:
    """The simulated step: its time, breakdown, utilization and timeline."""

    step_time_s: float
    breakdown: StepBreakdown
    utilization: Utilization
    timeline: StepTimeline
    critical_stage: int  # finishes last: ``breakdown`` is its
    busiest_stage: int = 0  # longest busy (compute and exposed comm): the bottleneck
    busiest_breakdown: StepBreakdown | None = None  # its time, idle to the barrier as bubble
    events: int = 0  # SimPy events processed (what simulating the step costs)

    @property
    def bubble_fraction(self) -> float:
        return self.breakdown.bubble / self.step_time_s if self.step_time_s else 0.0


# What every pass of one (chunk, kind) on a stage shares: its cost and duration, the box of
# the message it waits for (or None), and its route out (or None). Microbatch ``m``'s message
# id is ``box + m * boxes`` (see _Step._box). Tuples, not dataclasses: the main loop unpacks
# one per pass.
_Route = tuple[PassCost, float, "int | None", "_Out | None"]
# Where such a pass sends: (source stage, destination stage, box, wires, seconds, stream).
_Out = tuple[int, int, int, tuple[Wire, ...], float, str]
# A send in flight, as the links hand it back on arrival: (route out, message id, task).
_Send = tuple[_Out, int, Task]
# A stage's ``send``: what it hooks on the event it waits for (see _Stage.start).
Wake = Callable[[simpy.Event], object]


class _Step:
    def __init__(self, plan: StepPlan):
        self.plan = plan
        self.env = simpy.Environment()
        self.pp, self.vpp = plan.pp, plan.vpp
        self.ledgers = [_Ledger() for _ in range(self.pp)]
        # (stage, stream, name, kind, start, duration); a send adds its destination, and
        # its name is formatted only if the timeline is read (see _records)
        self.slices: list[tuple] = []
        self.passes: list[tuple] = []  # (stage, start, task, cost, fraction)
        self.inbox: dict[int, simpy.Event] = {}  # by message id (see _box)
        self.net = Links(self.env)
        self.channels = [Channel(self.net, partial(self._record_dp, s)) for s in range(self.pp)]
        self._p2p_wires: dict[tuple[int, int], tuple[Wire, ...]] = {}
        self._dp_wires: dict[tuple[int, tuple[str, ...]], tuple[Wire, ...]] = {}
        self._on_arrival = self._arrived  # bound once, handed to every send
        self.boxes = 2 * self.pp * self.vpp  # message ids per microbatch
        self.events = 0

    # ---- plumbing ------------------------------------------------------------------------
    def _slice(self, stage: int, stream: str, name: str, kind: str, start: float,
               duration: float) -> None:
        if duration > 0:
            self.slices.append((stage, stream, name, kind, start, duration))

    def _message(self, key: int) -> simpy.Event:
        event = self.inbox.get(key)
        if event is None:
            event = self.inbox[key] = Event(self.env)
        return event

    def _box(self, backward: bool, stage: int, chunk: int) -> int:
        """The message id of microbatch 0 of (kind, receiving stage, chunk); microbatch
        ``m``'s is ``box + m * 2 pp vpp``. Integers hash for nothing; tuples hash anew."""
        return (backward * self.pp + stage) * self.vpp + chunk

    def _next_virtual(self, stage: int, chunk: int) -> tuple[int, int] | None:
        if stage < self.pp - 1:
            return stage + 1, chunk
        return (0, chunk + 1) if chunk < self.vpp - 1 else None

    def _prev_virtual(self, stage: int, chunk: int) -> tuple[int, int] | None:
        if stage > 0:
            return stage - 1, chunk
        return (self.pp - 1, chunk - 1) if chunk > 0 else None

    def _p2p(self, src: int, dst: int) -> tuple[Wire, ...]:
        wires = self._p2p_wires.get((src, dst))
        if wires is None:
            fabrics = sorted(self.plan.p2p_fabrics)
            wires = self._p2p_wires[src, dst] = self.net.resolve(tuple(
                [("out", f, src) for f in fabrics] + [("in", f, dst) for f in fabrics]))
        return wires

    def _route(self, stage: int, chunk: int, kind: Pass) -> _Route:
        """What every pass of ``kind`` through ``chunk`` on ``stage`` shares (see _Route)."""
        forward = kind is Pass.FORWARD
        costs = self.plan.stages[stage].chunks[chunk]
        cost = costs.forward if forward else costs.backward
        source = (self._prev_virtual if forward else self._next_virtual)(stage, chunk)
        target = (self._next_virtual if forward else self._prev_virtual)(stage, chunk)
        out = None
        if target:
            dst, dst_chunk = target
            seconds = self.plan.p2p_s if dst != stage else 0.0
            out = (stage, dst, self._box(not forward, dst, dst_chunk),
                   self._p2p(stage, dst) if seconds > 0 else (), seconds,
                   PP_STREAMS[0 if forward else 1])
        return (cost, cost.duration_s, self._box(not forward, stage, chunk) if source else None,
                out)

    def _routes(self, stage: int) -> list[_Route]:
        """The stage's routes, the one of (chunk, kind) at ``2 chunk + (kind is backward)``:
        worked out once per step, not once per microbatch."""
        return [self._route(stage, c, kind) for c in range(self.vpp)
                for kind in (Pass.FORWARD, Pass.BACKWARD)]

    # ---- point to point -------------------------------------------------------------------
    def _send(self, out: _Out, key: int, task: Task) -> None:
        """An asynchronous send: the receiver's message ``key`` fires with (sent, arrived)."""
        src, dst, _box, wires, seconds, _stream = out
        if seconds <= 0:
            now = self.env.now
            self._message(key).succeed((now, now))
            return
        ledgers = self.ledgers
        ledgers[src].network_s += seconds
        ledgers[dst].network_s += seconds
        self.net.send(wires, seconds, self._on_arrival, (out, key, task))

    def _arrived(self, send: _Send, start: float, end: float) -> None:
        out, key, task = send
        self.slices.append((out[0], out[5], task, "pp_comm", start, end - start, out[1]))
        message = self.inbox.get(key)
        if message is None:  # (_message, inline: once per send)
            message = self.inbox[key] = Event(self.env)
        message.succeed((start, end))

    # ---- data parallel --------------------------------------------------------------------
    def _record_dp(self, stage: int, job: Job, start: float, end: float) -> None:
        self._slice(stage, DP_STREAM, job.name, "dp_comm", start, end - start)
        self.ledgers[stage].network_s += job.seconds

    def _dp(self, stage: int, fabrics: tuple[str, ...]) -> tuple[Wire, ...]:
        wires = self._dp_wires.get((stage, fabrics))
        if wires is None:
            ordered = sorted(fabrics)
            wires = self._dp_wires[stage, fabrics] = self.net.resolve(tuple(
                [("out", f, stage) for f in ordered] + [("in", f, stage) for f in ordered]))
        return wires

    def _issue(self, stage: int, buckets: tuple[Bucket, ...]) -> list[simpy.Event]:
        """Queue ``buckets`` on the stage's data-parallel channel; one event per bucket."""
        events = []
        for bucket in buckets:
            done = Event(self.env)
            if bucket.time_s > 0:
                self.channels[stage].put(
                    Job(bucket.name, bucket.time_s, self._dp(stage, bucket.fabrics), done))
            else:
                done.succeed()
            events.append(done)
        return events

    def _wait(self, stage: int, events: list[simpy.Event], category: str, name: str,
              wake: Wake) -> Generator:
        start = self.env.now
        pending = [e for e in events if not e.processed]
        if pending:
            self.env.all_of(pending).callbacks.append(wake)
            yield
        waited = self.env.now - start
        self.ledgers[stage].time[category] += waited
        self._slice(stage, COMPUTE, name, "wait_" + category, start, waited)

    # ---- a stage ----------------------------------------------------------------------------
    def _receive(self, stage: int, key: int, wake: Wake) -> Generator:
        """Wait for a message: with the transfer in flight it is exposed PP comm; before it
        was sent, bubble."""
        env, time = self.env, self.ledgers[stage].time
        start = env.now
        message = self._message(key)
        if message.callbacks is not None:  # not processed yet
            message.callbacks.append(wake)
            yield
        sent, arrived = message.value
        in_flight = arrived - max(start, sent) if arrived > start else 0.0
        time["pp"] += in_flight
        time["bubble"] += env.now - start - in_flight
        self._slice(stage, COMPUTE, "waiting for a transfer", "wait_pp", env.now - in_flight,
                    in_flight)

    def _run(self, stage: int, task: Task, cost: PassCost, fraction: float,
             wake: Wake) -> Generator:
        """Run ``fraction`` of a pass (its compute, then its exposed communication),
        booked as starting now."""
        self.ledgers[stage].runs[2 * task.chunk + (task.kind is Pass.BACKWARD)] += fraction
        self.passes.append((stage, self.env.now, task, cost, fraction))
        duration = cost.duration_s * fraction
        if duration > 0:
            Timeout(self.env, duration).callbacks.append(wake)
            yield

    def _split_pass(self, stage: int, task: Task, cost: PassCost, gathers: list[simpy.Event],
                    grads: tuple[Bucket, ...], grad_events: list[simpy.Event],
                    wake: Wake) -> Generator:
        """A pass cut where parameter buckets must have arrived (before their share of the
        work) and where gradient buckets are ready (after theirs)."""
        points = [(k / len(gathers), 1, k) for k in range(len(gathers))]
        points += [((k + 1) / len(grads), 0, k) for k in range(len(grads))]
        done = 0.0
        for fraction, action, k in sorted(points):
            if fraction > done:
                yield from self._run(stage, task, cost, fraction - done, wake)
                done = fraction
            if action == 0:
                grad_events += self._issue(stage, grads[k:k + 1])
            elif gathers[k].callbacks is not None:  # not in yet (else _wait books nothing)
                yield from self._wait(stage, [gathers[k]], "dp", "waiting for parameters",
                                      wake)
        if done < 1.0:
            yield from self._run(stage, task, cost, 1.0 - done, wake)

    # ---- the whole step ---------------------------------------------------------------------
    def run(self) -> StepOutcome:
        for stage in range(self.pp):
            _Stage(self, stage).start()
        self.events = run_counting(self.env)
        # every message is delivered: drop them now, by reference count, rather than
        # leave thousands of events in the step's reference cycles for the collector
        self.inbox.clear()
        stuck = [s for s, ledger in enumerate(self.ledgers) if ledger.end_s is None]
        if stuck:
            raise RuntimeError(f"the pipeline schedule deadlocked: stages {stuck} never "
                               f"finished (a bug in the schedule)")
        return self._close()

    def _tail(self, stage: int) -> tuple[float, float]:
        """Optimizer time, and the parameter gather after it (ZeRO 1/2 without overlap)."""
        s = self.plan.stages[stage]
        gather = 0.0
        if self.plan.gather is GatherMode.STEP and not self.plan.dp_overlap:
            gather = sum(b.time_s for c in s.chunks for b in c.param_buckets)
        return s.optimizer_s, gather

    def _settle(self) -> None:
        """Turn the passes each stage ran into time, bytes and network busy time."""
        for stage, ledger in enumerate(self.ledgers):
            chunks = self.plan.stages[stage].chunks
            for r in ledger.order:
                c, backward = divmod(r, 2)
                cost = chunks[c].backward if backward else chunks[c].forward
                runs = ledger.runs[r]
                ledger.time["compute"] += runs * cost.compute_s
                ledger.time["tp"] += runs * cost.tp_s
                ledger.time["ep"] += runs * cost.ep_s
                ledger.time["cp"] += runs * cost.cp_s
                ledger.hbm_bytes += runs * cost.hbm_bytes
                ledger.network_s += runs * cost.comm_busy_s

    def _close(self) -> StepOutcome:
        self._settle()
        barrier = max(ledger.end_s for ledger in self.ledgers)  # type: ignore[type-var]
        tails = [self._tail(s) for s in range(self.pp)]
        for stage, (optimizer, gather) in enumerate(tails):
            self._slice(stage, COMPUTE, "optimizer", "optimizer", barrier, optimizer)
            self._slice(stage, DP_STREAM, "parameter all-gather", "dp_comm",
                        barrier + optimizer, gather)
        worst_tail = max(range(self.pp), key=lambda s: sum(tails[s]))
        step = barrier + sum(tails[worst_tail])
        ledgers = self.ledgers
        critical = max(range(self.pp), key=lambda s: (ledgers[s].end_s, -s))
        t = ledgers[critical].time
        breakdown = StepBreakdown(
            compute=t["compute"], exposed_tp_comm=t["tp"], exposed_ep_comm=t["ep"],
            exposed_pp_comm=t["pp"], exposed_dp_comm=t["dp"] + tails[worst_tail][1],
            bubble=t["bubble"], optimizer=tails[worst_tail][0], other=t["cp"])
        busiest = max(range(self.pp), key=lambda s: (
            sum(v for k, v in ledgers[s].time.items() if k != "bubble"), -s))
        busiest_breakdown = (breakdown if busiest == critical
                             else self._breakdown(busiest, step, tails[busiest]))
        return StepOutcome(step, breakdown, self._utilization(step, tails),
                           self._timeline(step), critical, busiest, busiest_breakdown,
                           self.events)

    def _breakdown(self, stage: int, step: float, tail: tuple[float, float]) -> StepBreakdown:
        """Where a stage that is not the last to finish spends the step: what it waits at
        the barrier, and for a longer optimizer tail elsewhere, counts as bubble, so the
        parts sum to the step."""
        t = self.ledgers[stage].time
        optimizer, gather = tail
        parts = dict(compute=t["compute"], exposed_tp_comm=t["tp"], exposed_ep_comm=t["ep"],
                     exposed_pp_comm=t["pp"], exposed_dp_comm=t["dp"] + gather,
                     optimizer=optimizer, other=t["cp"])
        return StepBreakdown(**parts, bubble=step - sum(parts.values()))

    def _utilization(self, step: float, tails: list[tuple[float, float]]) -> Utilization:
        if step <= 0:
            return Utilization(compute=0.0, memory_bandwidth=0.0, network=0.0, busy=0.0)
        pp, plan = self.pp, self.plan
        busy = sum(ledger.time["compute"] + tails[s][0]
                   for s, ledger in enumerate(self.ledgers)) / (pp * step)
        memory = 0.0
        if plan.peak_hbm_bandwidth > 0:
            moved = sum(ledger.hbm_bytes + plan.stages[s].optimizer_bytes
                        for s, ledger in enumerate(self.ledgers))
            memory = moved / (pp * step * plan.peak_hbm_bandwidth)
        network = sum(min(1.0, (ledger.network_s + tails[s][1]) / step)
                      for s, ledger in enumerate(self.ledgers)) / pp
        # FLOP utilization needs the model's FLOPs; run_training fills it in (= hfu)
        return Utilization(compute=0.0, memory_bandwidth=min(1.0, memory), network=network,
                           busy=min(1.0, busy))

    def _timeline(self, step: float) -> StepTimeline:
        """The timeline, its records built only when read (few runs ever do)."""
        return StepTimeline(self.pp, step, partial(_records, self.slices, self.passes),
                            self.plan.title)


class _Stage:
    """One pipeline stage running its pass order (``run``, driven like a SimPy process).

    Most passes only wait for their input, compute and send: ``run`` does those inline,
    with everything precomputed. The few that meet data-parallel traffic (a ZeRO gather
    before the first forward of a chunk, gradient buckets in the last backward, every pass
    under ZeRO 3) take the general path, ``_pass``."""

    def __init__(self, step: _Step, stage: int):
        plan = step.plan
        self.step, self.stage, self.ledger = step, stage, step.ledgers[stage]
        self.order = plan.order[stage]
        self.chunks = plan.stages[stage].chunks
        self.overlap = plan.dp_overlap
        self.per_pass = plan.gather is GatherMode.PASS
        self.per_step = plan.gather is GatherMode.STEP
        self.routes: list[_Route] = []
        self.first_forward: dict[int, int] = {}
        self.last_backward: dict[int, int] = {}
        self.step_gathers: dict[int, list[simpy.Event]] = {}
        self.prefetched: dict[int, list[simpy.Event]] = {}
        self.grad_events: list[simpy.Event] = []
        self.wake: Wake  # set by start

    # ---- driving ``run`` ----------------------------------------------------------------
    # What a SimPy process does, with the same events (one to start it, at time 0 before
    # anything else, one when it ends), minus the machinery a step does not need (failed
    # events, interrupts, a Python frame per resume): ``run`` hooks its own ``send`` on the
    # event it waits for, then yields nothing, so SimPy resumes it directly. It never
    # returns (``send`` would raise StopIteration into SimPy): it ends suspended.
    def start(self) -> None:
        """Start ``run`` (SimPy's Initialize is urgent; here every start is scheduled
        before any other event, so normal priority gives the same order)."""
        run = self.run()
        self.wake = run.send
        next(run)  # to its first, bare yield: nothing has happened yet
        started = Event(self.step.env)
        started.callbacks.append(self.wake)
        started.succeed()

    # ---- the stage's work -----------------------------------------------------------------
    def _start(self) -> set[int]:
        """Work out the routes, issue what comes before the first pass (this step's share of
        the parameters, chunk by chunk, or ZeRO 3's first prefetch), and say which passes
        take the general path."""
        step, chunks, overlap, order = self.step, self.chunks, self.overlap, self.order
        self.routes = step._routes(self.stage)
        first_forward, last_backward = self.first_forward, self.last_backward
        first_backward: dict[int, int] = {}
        backward = Pass.BACKWARD
        for i, (kind, _microbatch, chunk) in enumerate(order):
            if kind is backward:
                last_backward[chunk] = i
                if chunk not in first_backward:
                    first_backward[chunk] = i
            elif chunk not in first_forward:
                first_forward[chunk] = i
        # the routes in the order the stage first runs them, the order _settle sums them in
        self.ledger.order = [r for _, r in sorted(
            [(i, 2 * c) for c, i in first_forward.items()]
            + [(i, 2 * c + 1) for c, i in first_backward.items()])]
        self.ledger.runs = [0.0] * len(self.routes)
        if self.per_step and overlap:
            for c in sorted(self.first_forward, key=self.first_forward.__getitem__):
                self.step_gathers[c] = step._issue(self.stage, chunks[c].param_buckets)
        if self.per_pass:
            if overlap and order:
                self.prefetched[0] = step._issue(self.stage, chunks[order[0].chunk].param_buckets)
            return set(range(len(order)))
        general = {i for c, i in self.first_forward.items() if self.step_gathers.get(c)}
        if overlap:
            general.update(i for c, i in self.last_backward.items() if chunks[c].grad_buckets)
        return general

    def run(self) -> Generator:
        """The stage's passes in order (see _Stage); driven as ``start`` says."""
        yield  # until started
        general = sorted(self._start())
        wake = self.wake
        step, stage, routes, order = self.step, self.stage, self.routes, self.order
        env, boxes, backward = step.env, step.boxes, Pass.BACKWARD
        inbox, passes, slices, send = step.inbox, step.passes, step.slices, step._send
        time, runs = self.ledger.time, self.ledger.runs
        ledgers, net_send, on_arrival = step.ledgers, step.net.send, step._on_arrival
        start_at = 0
        for end_at in [*general, len(order)]:  # plain passes, then a general one
            for task in order[start_at:end_at]:
                kind, microbatch, chunk = task
                r = 2 * chunk + (kind is backward)
                cost, duration, box, out = routes[r]
                if box is not None:
                    message_id = box + microbatch * boxes
                    message = inbox.get(message_id)
                    if message is None:
                        message = inbox[message_id] = Event(env)
                    if message.callbacks is not None:  # not processed: wait (see _receive)
                        start = env.now
                        message.callbacks.append(wake)
                        yield
                        sent, arrived = message.value
                        now = env.now
                        in_flight = arrived - max(start, sent) if arrived > start else 0.0
                        time["pp"] += in_flight
                        time["bubble"] += now - start - in_flight
                        if in_flight > 0:
                            slices.append((stage, COMPUTE, "waiting for a transfer",
                                           "wait_pp", now - in_flight, in_flight))
                    else:  # it is in: _receive would add zeros, which change no bit
                        now = env.now
                else:
                    now = env.now
                runs[r] += 1.0
                passes.append((stage, now, task, cost, 1.0))
                if duration > 0:
                    Timeout(env, duration).callbacks.append(wake)
                    yield
                if out is None:
                    continue
                # _send, inline: most passes send
                seconds = out[4]
                if seconds > 0:
                    ledgers[stage].network_s += seconds
                    ledgers[out[1]].network_s += seconds
                    net_send(out[3], seconds, on_arrival,
                             (out, out[2] + microbatch * boxes, task))
                else:
                    send(out, out[2] + microbatch * boxes, task)
            if end_at < len(order):
                yield from self._pass(end_at, order[end_at])
            start_at = end_at + 1
        yield from self._end()
        Event(env).succeed()  # the process's own event, as SimPy has it
        yield  # for ever

    def _pass(self, i: int, task: Task) -> Generator:
        """One pass with the data-parallel traffic around it (see _Stage)."""
        step, stage, chunks, order = self.step, self.stage, self.chunks, self.order
        per_pass, overlap = self.per_pass, self.overlap
        forward = task.kind is Pass.FORWARD
        chunk = chunks[task.chunk]
        cost, _duration, box, out = self.routes[2 * task.chunk + (not forward)]
        if per_pass and overlap and i + 1 < len(order):  # prefetch the next pass's
            self.prefetched[i + 1] = step._issue(stage, chunks[order[i + 1].chunk].param_buckets)
        if box is not None:
            yield from step._receive(stage, box + task.microbatch * step.boxes, self.wake)
        gathers: list[simpy.Event] = []
        if per_pass and overlap:
            gathers = self.prefetched.pop(i)
        elif per_pass:
            yield from step._wait(stage, step._issue(stage, chunk.param_buckets), "dp",
                                  "gathering parameters", self.wake)
        elif forward and self.first_forward[task.chunk] == i:
            gathers = self.step_gathers.get(task.chunk, [])
        reduce_now = not forward and (per_pass or self.last_backward[task.chunk] == i)
        grads = chunk.grad_buckets if reduce_now and overlap else ()
        if gathers or grads:
            yield from step._split_pass(stage, task, cost, gathers, grads, self.grad_events,
                                        self.wake)
        else:
            yield from step._run(stage, task, cost, 1.0, self.wake)
        if out is not None:
            step._send(out, out[2] + task.microbatch * step.boxes, task)
        if reduce_now and per_pass and not overlap:
            yield from step._wait(stage, step._issue(stage, chunk.grad_buckets), "dp",
                                  "reducing gradients", self.wake)

    def _end(self) -> Generator:
        """Reduce what is left of the gradients (all of them without overlap), then arrive
        at the barrier."""
        step, stage = self.step, self.stage
        if not self.overlap and not self.per_pass:
            for c in self.chunks:
                self.grad_events += step._issue(stage, c.grad_buckets)
        yield from step._wait(stage, self.grad_events, "dp", "reducing gradients", self.wake)
        self.ledger.end_s = step.env.now


def _named_send(src: int, stream: str, task: Task, kind: str, start: float,
                duration: float, dst: int) -> tuple:
    """A send's record as the links left it (with its destination), named."""
    return src, stream, f"{task.label} -> stage {dst}", kind, start, duration


def _records(slices: list[tuple], passes: list[tuple]) -> list[tuple]:
    """A step's timeline records: the slices as collected, then each pass as its compute
    and the TP, EP and CP communication it leaves exposed."""
    records = [r if len(r) == 6 else _named_send(*r) for r in slices]
    for stage, start, task, cost, fraction in passes:
        kind = "forward" if task.kind is Pass.FORWARD else "backward"
        records.append((stage, COMPUTE, task, kind, start, cost.duration_s * fraction))
        t = start + cost.compute_s * fraction
        for name, seconds in (("tp", cost.tp_s), ("ep", cost.ep_s), ("cp", cost.cp_s)):
            if seconds > 0:
                records.append((stage, COMPUTE, f"{name} comm", f"{name}_comm", t,
                                seconds * fraction))
                t += seconds * fraction
    return records


def simulate_step(plan: StepPlan) -> StepOutcome:
    """Simulate one step of ``plan`` (deterministic: no randomness in a step)."""
    if len(plan.order) != plan.pp:
        raise ValueError(f"the plan has {plan.pp} stages but {len(plan.order)} pass orders")
    with collector_paused():
        return _Step(plan).run()
