"""One training step of one pipeline, simulated in SimPy.

Symmetric ranks are simulated once: every data-parallel replica (and every TP/CP rank of a
stage) does the same thing at the same time, so one pipeline stands for the whole fleet.

- Each pipeline stage is a process that runs its schedule's passes in order. A pass starts
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

import gc
from collections.abc import Generator
from dataclasses import dataclass, field
from functools import partial

import simpy

from simulator.engine.training.links import Channel, Job, Link, Links
from simulator.engine.training.plan import Bucket, GatherMode, PassCost, StepPlan
from simulator.engine.training.schedule import Pass, Task
from simulator.results.training import StepBreakdown, StepTimeline
from simulator.results.utilization import Utilization

COMPUTE, DP_STREAM = "compute", "dp comm"
PP_STREAMS = {Pass.FORWARD: "pp send (activations)", Pass.BACKWARD: "pp send (gradients)"}
_CATEGORIES = ("compute", "tp", "ep", "cp", "pp", "dp", "bubble")


@dataclass
class _Ledger:
    """Time per category, and busy figures, of one stage."""

    time: dict[str, float] = field(default_factory=lambda: dict.fromkeys(_CATEGORIES, 0.0))
    work: dict[tuple[int, Pass], float] = field(default_factory=dict)  # passes run, by chunk
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


# One pass of a stage's order with what the main loop needs precomputed: the task, its cost,
# the key of the message it waits for (or None), and the (peer stage, key) of the message it
# sends (or None). A tuple, not a dataclass: a deep pipeline has a hundred thousand per step.
_Entry = tuple[Task, PassCost, tuple | None, tuple[int, tuple] | None]


class _SendName:
    """A send's slice name, formatted only if a trace is written."""

    __slots__ = ("dst", "task")

    def __init__(self, task: Task, dst: int):
        self.task, self.dst = task, dst

    def __str__(self) -> str:
        return f"{self.task.label} -> stage {self.dst}"


class _Step:
    def __init__(self, plan: StepPlan):
        self.plan = plan
        self.env = simpy.Environment()
        self.pp, self.vpp = plan.pp, plan.vpp
        self.ledgers = [_Ledger() for _ in range(self.pp)]
        self.slices: list[tuple] = []
        self.passes: list[tuple] = []  # (stage, start, task, cost, fraction)
        self.inbox: dict[tuple, simpy.Event] = {}
        self.net = Links(self.env)
        self.channels = [Channel(self.net, partial(self._record_dp, s)) for s in range(self.pp)]
        self._p2p_links: dict[tuple[int, int], tuple[Link, ...]] = {}
        self.events = 0

    # ---- plumbing ------------------------------------------------------------------------
    def _slice(self, stage: int, stream: str, name: str, kind: str, start: float,
               duration: float) -> None:
        if duration > 0:
            self.slices.append((stage, stream, name, kind, start, duration))

    def _message(self, key: tuple) -> simpy.Event:
        event = self.inbox.get(key)
        if event is None:
            event = self.inbox[key] = self.env.event()
        return event

    def _next_virtual(self, stage: int, chunk: int) -> tuple[int, int] | None:
        if stage < self.pp - 1:
            return stage + 1, chunk
        return (0, chunk + 1) if chunk < self.vpp - 1 else None

    def _prev_virtual(self, stage: int, chunk: int) -> tuple[int, int] | None:
        if stage > 0:
            return stage - 1, chunk
        return (self.pp - 1, chunk - 1) if chunk > 0 else None

    def _entries(self, stage: int) -> list[_Entry]:
        chunks, entries = self.plan.stages[stage].chunks, []
        for task in self.plan.order[stage]:
            forward = task.kind is Pass.FORWARD
            source = (self._prev_virtual if forward else self._next_virtual)(stage, task.chunk)
            target = (self._next_virtual if forward else self._prev_virtual)(stage, task.chunk)
            inbox = (task.kind, stage, task.chunk, task.microbatch) if source else None
            outbox = (target[0], (task.kind, *target, task.microbatch)) if target else None
            cost = chunks[task.chunk].forward if forward else chunks[task.chunk].backward
            entries.append((task, cost, inbox, outbox))
        return entries

    # ---- point to point -------------------------------------------------------------------
    def _send(self, src: int, dst: int, key: tuple, task: Task) -> None:
        """An asynchronous send: the receiver's message fires with (sent, arrived)."""
        message = self._message(key)
        seconds = self.plan.p2p_s if src != dst else 0.0
        if seconds <= 0:
            message.succeed((self.env.now, self.env.now))
            return
        links = self._p2p_links.get((src, dst))
        if links is None:
            fabrics = sorted(self.plan.p2p_fabrics)
            links = self._p2p_links[src, dst] = tuple(
                [("out", f, src) for f in fabrics] + [("in", f, dst) for f in fabrics])

        def arrived(start: float, end: float) -> None:
            self.slices.append((src, PP_STREAMS[task.kind], _SendName(task, dst), "pp_comm",
                                start, end - start))
            message.succeed((start, end))

        self.ledgers[src].network_s += seconds
        self.ledgers[dst].network_s += seconds
        self.net.transfer(links, seconds, arrived)

    # ---- data parallel --------------------------------------------------------------------
    def _record_dp(self, stage: int, job: Job, start: float, end: float) -> None:
        self._slice(stage, DP_STREAM, job.name, "dp_comm", start, end - start)
        self.ledgers[stage].network_s += job.seconds

    def _issue(self, stage: int, buckets: tuple[Bucket, ...]) -> list[simpy.Event]:
        """Queue ``buckets`` on the stage's data-parallel channel; one event per bucket."""
        events = []
        for bucket in buckets:
            done = self.env.event()
            if bucket.time_s > 0:
                fabrics = sorted(bucket.fabrics)
                links = tuple([("out", f, stage) for f in fabrics]
                              + [("in", f, stage) for f in fabrics])
                self.channels[stage].put(Job(bucket.name, bucket.time_s, links, done))
            else:
                done.succeed()
            events.append(done)
        return events

    def _wait(self, stage: int, events: list[simpy.Event], category: str,
              name: str) -> Generator:
        start = self.env.now
        pending = [e for e in events if not e.processed]
        if pending:
            yield self.env.all_of(pending)
        waited = self.env.now - start
        self.ledgers[stage].time[category] += waited
        self._slice(stage, COMPUTE, name, "wait_" + category, start, waited)

    # ---- a stage ----------------------------------------------------------------------------
    def _run(self, stage: int, task: Task, cost: PassCost, fraction: float) -> Generator:
        """Run ``fraction`` of a pass (its compute, then its exposed communication)."""
        work, key = self.ledgers[stage].work, (task.chunk, task.kind)
        work[key] = work.get(key, 0.0) + fraction
        self.passes.append((stage, self.env.now, task, cost, fraction))
        duration = cost.duration_s * fraction
        if duration > 0:
            yield self.env.timeout(duration)

    def _split_pass(self, stage: int, task: Task, cost: PassCost, gathers: list[simpy.Event],
                    grads: tuple[Bucket, ...], grad_events: list[simpy.Event]) -> Generator:
        """A pass cut where parameter buckets must have arrived (before their share of the
        work) and where gradient buckets are ready (after theirs)."""
        points = [(k / len(gathers), 1, k) for k in range(len(gathers))]
        points += [((k + 1) / len(grads), 0, k) for k in range(len(grads))]
        done = 0.0
        for fraction, action, k in sorted(points):
            if fraction > done:
                yield from self._run(stage, task, cost, fraction - done)
                done = fraction
            if action == 0:
                grad_events += self._issue(stage, grads[k:k + 1])
            else:
                yield from self._wait(stage, [gathers[k]], "dp", "waiting for parameters")
        if done < 1.0:
            yield from self._run(stage, task, cost, 1.0 - done)

    def _stage(self, stage: int) -> Generator:
        plan, env, ledger = self.plan, self.env, self.ledgers[stage]
        chunks = plan.stages[stage].chunks
        entries = self._entries(stage)
        overlap = plan.dp_overlap
        per_pass, per_step = plan.gather is GatherMode.PASS, plan.gather is GatherMode.STEP
        last_backward = {e[0].chunk: i for i, e in enumerate(entries)
                         if e[0].kind is Pass.BACKWARD}
        first_forward: dict[int, int] = {}
        for i, e in enumerate(entries):
            if e[0].kind is Pass.FORWARD:
                first_forward.setdefault(e[0].chunk, i)
        step_gathers: dict[int, list[simpy.Event]] = {}
        if per_step and overlap:  # this step's share of the parameters, chunk by chunk
            for c in sorted(first_forward, key=first_forward.__getitem__):
                step_gathers[c] = self._issue(stage, chunks[c].param_buckets)
        prefetched: dict[int, list[simpy.Event]] = {}
        if per_pass and overlap and entries:
            prefetched[0] = self._issue(stage, chunks[entries[0][0].chunk].param_buckets)
        grad_events: list[simpy.Event] = []
        time, work, passes = ledger.time, ledger.work, self.passes
        durations = {id(cost): cost.duration_s
                     for chunk in chunks for cost in (chunk.forward, chunk.backward)}
        for i, (task, cost, inbox, outbox) in enumerate(entries):
            chunk = chunks[task.chunk]
            forward = task.kind is Pass.FORWARD
            if per_pass and overlap and i + 1 < len(entries):  # prefetch the next pass's
                prefetched[i + 1] = self._issue(stage,
                                                chunks[entries[i + 1][0].chunk].param_buckets)
            if inbox is not None:
                # waiting with the transfer in flight is exposed PP comm; before it, bubble
                start = env.now
                sent, arrived = yield self._message(inbox)
                in_flight = arrived - max(start, sent) if arrived > start else 0.0
                time["pp"] += in_flight
                time["bubble"] += env.now - start - in_flight
                self._slice(stage, COMPUTE, "waiting for a transfer", "wait_pp",
                            env.now - in_flight, in_flight)
            gathers: list[simpy.Event] = []
            if per_pass and overlap:
                gathers = prefetched.pop(i)
            elif per_pass:
                yield from self._wait(stage, self._issue(stage, chunk.param_buckets), "dp",
                                      "gathering parameters")
            elif forward and first_forward[task.chunk] == i:
                gathers = step_gathers.get(task.chunk, [])
            reduce_now = not forward and (per_pass or last_backward[task.chunk] == i)
            grads = chunk.grad_buckets if reduce_now and overlap else ()
            if gathers or grads:
                yield from self._split_pass(stage, task, cost, gathers, grads, grad_events)
            else:  # the common case, inlined
                key = (task.chunk, task.kind)
                work[key] = work.get(key, 0.0) + 1.0
                passes.append((stage, env.now, task, cost, 1.0))
                duration = durations[id(cost)]
                if duration > 0:
                    yield env.timeout(duration)
            if outbox is not None:
                self._send(stage, outbox[0], outbox[1], task)
            if reduce_now and per_pass and not overlap:
                yield from self._wait(stage, self._issue(stage, chunk.grad_buckets), "dp",
                                      "reducing gradients")
        if not overlap and not per_pass:
            for c in chunks:
                grad_events += self._issue(stage, c.grad_buckets)
        yield from self._wait(stage, grad_events, "dp", "reducing gradients")
        ledger.end_s = env.now

    # ---- the whole step ---------------------------------------------------------------------
    def run(self) -> StepOutcome:
        for stage in range(self.pp):
            self.env.process(self._stage(stage))
        step, events = self.env.step, 0
        try:
            while True:  # env.run(), counting the events
                step()
                events += 1
        except simpy.core.EmptySchedule:
            pass
        self.events = events
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
            for (c, kind), runs in ledger.work.items():
                cost = chunks[c].forward if kind is Pass.FORWARD else chunks[c].backward
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


def _records(slices: list[tuple], passes: list[tuple]) -> list[tuple]:
    """A step's timeline records: the slices as collected, then each pass as its compute
    and the TP, EP and CP communication it leaves exposed."""
    records = list(slices)
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
    # A deep pipeline creates hundreds of thousands of short-lived events that hold no
    # reference cycles; the cyclic collector would rescan them over and over (a quarter of
    # the run time), so it is paused for the simulation and restored as it was.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _Step(plan).run()
    finally:
        if collecting:
            gc.enable()
