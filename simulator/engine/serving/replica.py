"""A replica on the SimPy clock: plan an iteration, price it, wait it out, commit it.

The replica keeps its own clock of iteration boundaries, computed as ``previous boundary +
iteration time`` (SimPy only orders events), so that a run of many decode steps taken in one
event ends at exactly the boundaries the steps would reach one by one: the boundaries of a
run are a sequential cumulative sum of the same per-step times.

**Jumping.** When an iteration is decode-only and nothing was preempted, the batch cannot
change until a sequence finishes, the cache runs out, or a request arrives that could be
admitted. The replica then prices every step up to the first two in one call and waits for
the last boundary, or for an admissible arrival: it then stops at the first boundary at or
after the arrival, where a step-by-step replica would have admitted it. ``single_step``
turns jumping off (for testing that both give the same results).

**Events.** The replica is a state machine driven by SimPy callbacks rather than a process
(a generator resumed through SimPy's process machinery costs several times a callback): one
timeout per iteration or run, and one immediate event to wake it when it is idle. A run cut
short by an arrival schedules a new timeout for its new end; the old one fires unheeded.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from functools import reduce
from itertools import accumulate
from operator import add

import numpy as np
import simpy
from simpy.events import Timeout

from simulator.engine.serving.iteration_cost import IterationCost, RunPrice, Usage
from simulator.engine.serving.metrics import Meter, ReplicaStats, Series
from simulator.engine.serving.scheduler import Plan, Scheduler

Hook = Callable[["Replica", list[int], list[int], float], None]  # finished, handed off, time
_LONG_RUN = 64  # runs of more steps are summed up with numpy
_NONE: list[int] = []  # no hand-offs (never appended to)


class _Run:
    """A run of decode steps in flight: its batch, what was priced, and how many steps will
    run. ``bounds[i]`` is the end of step ``i - 1`` (``bounds[0]`` the run's start), listed
    only when a cut or the time series needs them (``end`` is the last one). A
    replica has one run in flight at most, so it reuses one of these."""

    __slots__ = ("batch", "bounds", "context", "cut", "end", "extra", "first", "free",
                 "preempted", "price", "start", "steps")

    def __init__(self) -> None:
        self.batch = self.context = self.preempted = self.steps = self.first = self.free = 0
        self.extra = 0  # blocks held by prompts (prefilling or being sent) at the start
        self.price: RunPrice | None = None
        self.bounds: list[float] | None = None
        self.start = self.end = 0.0
        self.cut = False


def _bounds(run: _Run) -> list[float]:
    """List ``run``'s step boundaries (the same sums as its end)."""
    run.bounds = list(accumulate(run.price.time_s, initial=run.start))
    return run.bounds


class Replica:
    """One model replica: a scheduler, its iteration costs and its own statistics."""

    __slots__ = ("_idle", "_run", "_state", "_step", "_timeout", "_waking", "clock", "cost",
                 "decode_pool", "env", "meter", "on_outcome", "sched", "series", "single_step",
                 "slot", "stats", "usage")

    def __init__(self, env: simpy.Environment, scheduler: Scheduler, cost: IterationCost,
                 stats: ReplicaStats, series: Series, on_outcome: Hook,
                 single_step: bool = False):
        self.env = env
        self.sched = scheduler
        self.cost = cost
        self.usage = Usage()
        self.stats = stats
        self.series = series
        self.meter = Meter(series, scheduler.capacity.blocks)
        self.on_outcome = on_outcome
        self.single_step = single_step
        self.clock = 0.0
        self.slot = 0  # index in its pool, and whether that is a decode pool (set by the system)
        self.decode_pool = False
        self._idle = True  # nothing to do until a request arrives
        self._waking = False  # an idle replica has been told to wake up
        self._step: tuple[Plan, float, float, int] | None = None
        self._run: _Run | None = None  # the run in flight: None, or ``_state``
        self._state = _Run()
        self._timeout: Timeout | None = None  # the event that ends what is in flight

    @property
    def index(self) -> int:
        return self.stats.index

    # ---- inputs -------------------------------------------------------------------------
    def enqueue(self, r: int, at: float) -> None:
        """Request ``r`` reaches this replica at time ``at``."""
        sched = self.sched
        sched.waiting.append(r)
        if self._idle:
            self._wake(at)
            return
        run = self._run
        # during a jump only an arrival that could be admitted ends it: with others queued,
        # the head is blocked and FCFS keeps this one waiting too
        if (run is not None and not run.cut and len(sched.waiting) == 1
                and sched.could_admit(r, run.free)):
            self._cut(run, at)

    def release(self, blocks: int, at: float) -> None:
        """KV blocks held for a hand-off are free again."""
        self.sched.release(blocks)
        if self._idle:
            self._wake(at)

    # ---- events ---------------------------------------------------------------------------
    def _wake(self, at: float) -> None:
        if self._waking:
            return
        self._waking = True
        event = self.env.event()
        event.callbacks.append(self._on_wake)
        event.succeed(at)

    def _on_wake(self, event: simpy.Event) -> None:
        self._idle = self._waking = False
        self.clock = max(self.clock, event.value)
        self._next()

    def _wait_until(self, t: float, then: Callable[[simpy.Event], None]) -> None:
        timeout = self._timeout = Timeout(self.env, max(0.0, t - self.env.now))
        timeout.callbacks.append(then)

    def _cut(self, run: _Run, at: float) -> None:
        """An admissible request arrived at ``at``: stop at the first boundary at or after it."""
        run.cut = True
        assert self._timeout is not None
        self._timeout.callbacks.clear()  # the run's old end now fires unheeded
        bounds = run.bounds or _bounds(run)
        j = bisect_left(bounds, at, 1, run.steps)  # at most the last boundary
        run.steps, run.end = j, bounds[j]
        self._wait_until(run.end, self._end_run)

    # ---- iterations -------------------------------------------------------------------------
    def _next(self, blocks: int = -1) -> None:
        """Plan the next iteration and start it (``blocks``: those in use, if known)."""
        sched = self.sched
        need = sched.decode_only(blocks)
        if need >= 0:
            dec = sched.dec
            self._start_run(dec.n, dec.base_sum + dec.n * sched.step, 0, need)
            return
        plan = sched.plan(self.clock)
        if plan.chunks:
            self._start_step(plan)
        elif plan.decode_batch:
            self._start_run(plan.decode_batch, plan.decode_context, plan.preempted, plan.blocks)
        else:
            self._idle = True

    def _start_step(self, plan: Plan) -> None:
        """One iteration with prompt chunks (and decodes)."""
        tokens, cached, pairs = plan.prompt
        time = self.cost.step_time(self.usage, tokens, cached, pairs, len(plan.chunks),
                                   plan.decode_batch, plan.decode_context)
        end = self.clock + time
        self._step = (plan, time, end, tokens)
        env = self.env
        timeout = self._timeout = Timeout(env, max(0.0, end - env.now))
        timeout.callbacks.append(self._end_step)

    def _end_step(self, event: simpy.Event) -> None:
        assert self._step is not None
        plan, time, end, tokens = self._step
        self._step = None
        self.clock = end
        out = self.sched.commit_step(plan, end)
        stats = self.stats
        stats.output_tokens += out.output_tokens
        sequences = plan.sequences
        kv = plan.blocks * time
        stats.record(1, sequences, time, kv, plan.blocks)
        self.meter.count(end, out.output_tokens, time, kv, sequences * time)
        if plan.preempted:
            stats.preemptions += plan.preempted
        stats.prompt_tokens += tokens
        if out.finished or out.handoff:
            self.on_outcome(self, out.finished, out.handoff, end)
        self._next()

    def _start_run(self, batch: int, context: int, preempted: int, first: int) -> None:
        """Decode-only steps of ``batch`` sequences of total context ``context``, with
        ``first`` KV blocks in use at the first: one step, or as many as nothing changes in
        (a jump)."""
        sched = self.sched
        steps = 1 if self.single_step or preempted else sched.run_limit(first)
        price = self.cost.run_price(batch, context, steps)
        end = reduce(add, price.time_s, self.clock)  # the last of the steps' boundaries
        run = self._run = self._state
        run.batch, run.context, run.preempted = batch, context, preempted
        run.steps, run.first, run.free = steps, first, sched.cap - first
        run.extra = sched.prefill_blocks + sched.held_blocks
        run.price, run.bounds, run.start, run.end = price, None, self.clock, end
        run.cut = steps == 1  # nothing to cut
        env = self.env
        timeout = self._timeout = Timeout(env, max(0.0, end - env.now))
        timeout.callbacks.append(self._end_run)

    def _sums(self, run: _Run, steps: int) -> tuple[float, float, int]:
        """Busy seconds and block-seconds of the first ``steps`` steps of ``run``, and the
        blocks at the last of them (before the commit moves the step on). The blocks grow
        by the sequences that cross a block boundary at each step."""
        times, b = run.price.time_s, run.first
        if steps == 1:
            busy = times[0]
            return busy, b * busy, b
        dec, step = self.sched.dec, self.sched.step
        if steps > _LONG_RUN:
            t = np.array(times[:steps])
            crossings = np.array(dec.residues)[-(step + np.arange(1, steps)) % dec.block]
            blocks = b + np.concatenate(([0], np.cumsum(crossings)))
            return float(t.sum()), float(blocks @ t), int(blocks[-1])
        residues, block = dec.residues, dec.block
        busy = times[0]
        kv = b * busy
        for i in range(1, steps):
            b += residues[-(step + i) % block]
            t = times[i]
            busy += t
            kv += b * t
        return busy, kv, b

    def _add_by_bin(self, run: _Run, steps: int, batch: int) -> None:
        """Add a run whose steps end in several bins of the series, bin by bin."""
        series, sched = self.series, self.sched
        dec, step = sched.dec, sched.step
        residues, block, capacity = dec.residues, dec.block, sched.capacity.blocks
        width, bounds, times = series.width, run.bounds or _bounds(run), run.price.time_s
        b, current, at = run.first, int(bounds[1] / width), bounds[1]
        busy = kv = 0.0
        n = 0
        for i in range(steps):
            if i:
                b += residues[-(step + i) % block]
            k = int(bounds[i + 1] / width)
            if k != current:
                series.add(at, (batch * n, 0, busy, kv / capacity, batch * busy))
                current, at, busy, kv, n = k, bounds[i + 1], 0.0, 0.0, 0
            busy += times[i]
            kv += b * times[i]
            n += 1
        series.add(at, (batch * n, 0, busy, kv / capacity, batch * busy))

    def _end_run(self, event: simpy.Event) -> None:
        if event is not self._timeout:
            return  # the end of a run since cut short
        run = self._run
        assert run is not None
        self._run = None
        steps, batch = run.steps, run.batch
        end = run.end
        self.clock = end
        busy, kv, b = self._sums(run, steps)
        series = self.series
        if end >= series.bins * series.width:
            series.fit(end)
        width = series.width
        if int((run.start + run.price.time_s[0]) / width) != int(end / width):
            # the run's steps end in different bins: each bin gets its own steps
            self.meter.flush()
            self._add_by_bin(run, steps, batch)
            self.meter.open(end)
        else:
            self.meter.count(end, batch * steps, busy, kv, batch * busy)
        stats = self.stats
        stats.output_tokens += batch * steps
        sched = self.sched
        dec = sched.dec
        # blocks in use at the next step: those at the run's last, the sequences crossing a
        # block boundary at the next, less what the sequences that finish there hold
        cross = dec.residues[-(sched.step + steps) % dec.block]
        finished = sched.commit_run(steps)
        stats.record(steps, batch, busy, kv, b)
        if run.preempted:
            stats.preemptions += run.preempted
        # IterationCost.use_run, inline
        usage = self.usage
        usage.const[batch] += steps
        usage.const_x[batch] += steps * run.context + batch * steps * (steps - 1) // 2
        usage.timer_s += busy
        if run.price.compute_bound_s is not None:
            usage.compute_bound_s += sum(run.price.compute_bound_s[:steps])
        if finished:
            self.on_outcome(self, finished, _NONE, end)
        extra = sched.prefill_blocks + sched.held_blocks  # (a hand-off may have freed some)
        self._next(b - run.extra + cross - dec.gone + extra)
