"""A replica on the SimPy clock: plan an iteration, price it, wait it out, commit it.

The replica keeps its own clock of iteration boundaries, computed as ``previous boundary +
iteration time`` (SimPy only orders events), so that a run of many decode-only iterations
taken in one event ends at exactly the boundaries the iterations would reach one by one: the
boundaries of a run are a sequential cumulative sum of the same per-iteration times.

**Jumping.** When an iteration is decode-only and nothing was preempted, the batch cannot
change until a sequence finishes, the cache runs out, or a request arrives that could be
admitted. The replica then prices every iteration up to the first two in one call and waits
for the last boundary, or for an admissible arrival: it then stops at the first boundary at
or after the arrival, where a replica going one iteration at a time would have admitted it.
``jump=False`` turns jumping off (for testing that both give the same results).

**Events.** The replica is a state machine driven by SimPy callbacks (one documented
machine rather than a process: a generator resumed through SimPy's process machinery costs
several times a callback): one timeout per iteration with prompt chunks or per run, and one
immediate event to wake it when it is idle. A run cut short by an arrival schedules a new
timeout for its new end; the old one fires unheeded. Each such timeout is an *engine step*
(``engine_steps`` in the result: what the engine priced as one event).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from functools import reduce
from itertools import accumulate
from operator import add
from typing import cast

import numpy as np
import simpy
from simpy.events import Timeout

from simulator.engine.serving.decode_steps import RunPrice
from simulator.engine.serving.iteration_cost import IterationCost
from simulator.engine.serving.iteration_plan import Plan
from simulator.engine.serving.metrics import Meter, ReplicaStats, Series
from simulator.engine.serving.scheduler import Scheduler
from simulator.engine.serving.usage import Usage

Hook = Callable[["Replica", list[int], list[int], float], None]  # finished, handed off, time
_LONG_RUN = 64  # runs of more iterations are summed up with numpy
_NONE: list[int] = []  # no hand-offs (never appended to)


class _RunInFlight:
    """A run of decode-only iterations in flight: its batch, what was priced, and how many
    iterations will run. ``bounds[i]`` is the end of iteration ``i - 1`` of the run
    (``bounds[0]`` its start), listed only when a cut or the time series needs them
    (``end`` is the last one). A replica has one run in flight at most, so it reuses one of
    these."""

    __slots__ = ("batch", "bounds", "context", "cut", "end", "first", "free", "iterations",
                 "preempted", "price", "start")

    def __init__(self) -> None:
        self.batch = self.context = self.preempted = self.iterations = 0
        self.first = self.free = 0  # KV blocks in use, and free, at its first iteration
        self.price: RunPrice  # set by each run
        self.bounds: list[float] | None = None
        self.start = self.end = 0.0
        self.cut = False

    def boundaries(self) -> list[float]:
        """The run's iteration boundaries (the same sums as its end), listed once."""
        if self.bounds is None:
            self.bounds = list(accumulate(self.price.time_s, initial=self.start))
        return self.bounds


class Replica:
    """One model replica: a scheduler, its iteration costs and its own statistics."""

    __slots__ = ("_idle", "_mixed", "_mixed_end", "_mixed_time", "_run", "_state", "_timeout",
                 "_waking", "clock", "cost", "decode_pool", "env", "jump", "meter",
                 "on_outcome", "sched", "series", "slot", "stats", "usage")

    def __init__(self, *, env: simpy.Environment, scheduler: Scheduler, cost: IterationCost,
                 stats: ReplicaStats, series: Series, on_outcome: Hook, jump: bool = True):
        self.env = env
        self.sched = scheduler
        self.cost = cost
        self.usage = Usage()
        self.stats = stats
        self.series = series
        self.meter = Meter(series, scheduler.kv_blocks, stats.devices)
        self.on_outcome = on_outcome
        self.jump = jump
        self.clock = 0.0
        self.slot = 0  # index in its pool, and whether that is a decode pool (set by the system)
        self.decode_pool = False
        self._idle = True  # nothing to do until a request arrives
        self._waking = False  # an idle replica has been told to wake up
        # the iteration with prompt chunks in flight: its plan, time and end
        self._mixed: Plan | None = None
        self._mixed_time = self._mixed_end = 0.0
        self._run: _RunInFlight | None = None  # the run in flight: None, or ``_state``
        self._state = _RunInFlight()
        self._timeout: Timeout | None = None  # the event that ends what is in flight

    @property
    def index(self) -> int:
        """The replica's number in the deployment (prefill pool first)."""
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

    def handed_off(self, r: int, at: float) -> None:
        """``r``'s KV cache has reached its decode replica at ``at``: its blocks here are
        free again."""
        self.sched.handed_off(r)
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
        self.clock = max(self.clock, cast(float, event.value))
        self._next()

    def _wait_until(self, t: float, then: Callable[[simpy.Event], None]) -> None:
        timeout = self._timeout = Timeout(self.env, max(0.0, t - self.env.now))
        timeout.callbacks.append(then)

    def _cut(self, run: _RunInFlight, at: float) -> None:
        """An admissible request arrived at ``at``: stop at the first boundary at or after it."""
        run.cut = True
        assert self._timeout is not None
        self._timeout.callbacks.clear()  # the run's old end now fires unheeded
        bounds = run.boundaries()
        j = bisect_left(bounds, at, 1, run.iterations)  # at most the last boundary
        run.iterations, run.end = j, bounds[j]
        self._wait_until(run.end, self._end_run)

    # ---- iterations -------------------------------------------------------------------------
    def _next(self) -> None:
        """Plan the next iteration and start it."""
        plan = self.sched.plan(self.clock)
        if plan.chunks:
            self._start_mixed(plan)
        elif plan.decode_batch:
            self._start_run(plan.decode_batch, plan.decode_context, plan.preempted, plan.blocks)
        else:
            self._idle = True

    def _start_mixed(self, plan: Plan) -> None:
        """One iteration with prompt chunks (and decodes)."""
        call = self.sched.prefill_call
        if call is not None and not plan.prompt_cached:
            time = self._prefill_calls(plan, call)
        else:
            time = self._prefill_call(plan.chunks, plan.prompt_tokens, plan.prompt_cached,
                                      plan.prompt_pairs, plan.decode_batch,
                                      plan.decode_context)
        end = self.clock + time
        self._mixed, self._mixed_time, self._mixed_end = plan, time, end
        self._wait_until(end, self._end_mixed)

    def _prefill_call(self, chunks: list[tuple[int, int]], tokens: int, cached: int,
                      pairs: int, decode_batch: int, decode_context: int) -> float:
        """Seconds of one prefill of ``chunks`` (``tokens`` new, ``cached`` read, ``pairs``
        attention pairs) with ``decode_batch`` decodes, counted in the replica's usage."""
        stack = self.cost.stack
        if stack is not None and stack.prompt_buckets and not cached:
            tokens, pairs = stack.pad_prompts([q for _, q in chunks])  # compiled lengths
        return self.cost.step_time(self.usage, tokens, cached, pairs, len(chunks),
                                   decode_batch, decode_context)

    def _prefill_calls(self, plan: Plan, call: int) -> float:
        """Seconds of an iteration whose fresh prompts are prefilled ``call`` at a time, one
        call after another (JetStream's prefill thread: one request per call), and whose
        decodes then step once, in a program of their own (JetStream's generate step)."""
        time = 0.0
        for i in range(0, len(plan.chunks), call):
            chunks = plan.chunks[i:i + call]
            tokens = sum(q for _, q in chunks)
            pairs = sum(q * (q + 1) // 2 for _, q in chunks)
            time += self._prefill_call(chunks, tokens, 0, pairs, 0, 0)
        if plan.decode_batch:
            time += self.cost.step_time(self.usage, 0, 0, 0, 0, plan.decode_batch,
                                        plan.decode_context)
        return time

    def _end_mixed(self, event: simpy.Event) -> None:
        plan, time, end = self._mixed, self._mixed_time, self._mixed_end
        assert plan is not None
        self._mixed = None
        self.clock = end
        out = self.sched.commit(plan, end)
        stats = self.stats
        stats.output_tokens += out.output_tokens
        sequences = plan.sequences
        kv = plan.blocks * time
        stats.record(1, sequences, time, kv, plan.blocks)
        self.meter.count(end, out.output_tokens, time, kv, sequences * time,
                         plan.prompt_produced)
        stats.preemptions += plan.preempted
        stats.prompt_tokens += plan.prompt_tokens
        if out.finished or out.handoff:
            self.on_outcome(self, out.finished, out.handoff, end)
        self._next()

    def _start_run(self, batch: int, context: int, preempted: int, first: int) -> None:
        """Decode-only iterations of ``batch`` sequences of total context ``context``, with
        ``first`` KV blocks in use at the first: one iteration, or as many as nothing
        changes in (a jump)."""
        sched = self.sched
        iterations = sched.run_limit(first) if self.jump and not preempted else 1
        price = self.cost.run_price(batch, context, iterations, sched.iteration)
        end = reduce(add, price.time_s, self.clock)  # the last of the iterations' boundaries
        run = self._run = self._state
        run.batch, run.context, run.preempted = batch, context, preempted
        run.iterations, run.first, run.free = iterations, first, sched.kv_blocks - first
        run.price, run.bounds, run.start, run.end = price, None, self.clock, end
        run.cut = iterations == 1  # nothing to cut
        self._wait_until(end, self._end_run)

    def _sums(self, run: _RunInFlight, iterations: int) -> tuple[float, float, int]:
        """Busy seconds and block-seconds of the first ``iterations`` iterations of ``run``,
        and the blocks at the last of them (before the commit moves the clock on). The
        blocks grow by the sequences that cross a block boundary at each iteration."""
        times, b = run.price.time_s, run.first
        if iterations == 1:
            busy = times[0]
            return busy, b * busy, b
        dec, now = self.sched.dec, self.sched.iteration
        if dec.rate is not None:  # speculative: the blocks at each step, on the token clock
            base = dec.blocks_at(now)
            seconds = np.array(times[:iterations])
            blocks = b + np.array([dec.blocks_at(now + i) - base for i in range(iterations)])
            return float(seconds.sum()), float(blocks @ seconds), int(blocks[-1])
        if iterations > _LONG_RUN:
            seconds = np.array(times[:iterations])
            crossings = np.array(dec.residues)[-(now + np.arange(1, iterations)) % dec.block]
            blocks = b + np.concatenate(([0], np.cumsum(crossings)))
            return float(seconds.sum()), float(blocks @ seconds), int(blocks[-1])
        residues, block = dec.residues, dec.block
        busy = times[0]
        kv = b * busy
        for i in range(1, iterations):
            b += residues[-(now + i) % block]
            t = times[i]
            busy += t
            kv += b * t
        return busy, kv, b

    def _add_by_bin(self, run: _RunInFlight, iterations: int, batch: int) -> None:
        """Add a run whose iterations end in several bins of the series, bin by bin."""
        series, sched = self.series, self.sched
        dec, now = sched.dec, sched.iteration
        residues, block, capacity = dec.residues, dec.block, sched.kv_blocks
        width, bounds, times = series.width, run.boundaries(), run.price.time_s
        devices = self.stats.devices
        b, current, at = run.first, int(bounds[1] / width), bounds[1]
        busy = kv = 0.0
        n = 0
        step_tokens = dec.tokens  # (tokens a sequence gains by each iteration)
        for i in range(iterations):
            if i:
                b += (residues[-(now + i) % block] if dec.rate is None
                      else dec.blocks_at(now + i) - dec.blocks_at(now + i - 1))
            k = int(bounds[i + 1] / width)
            if k != current:
                series.add(at, (batch * n, 0, busy, kv / capacity, batch * busy, 0,
                                busy * devices))
                current, at, busy, kv, n = k, bounds[i + 1], 0.0, 0.0, 0
            busy += times[i]
            kv += b * times[i]
            n += step_tokens(now + i + 1) - step_tokens(now + i)
        series.add(at, (batch * n, 0, busy, kv / capacity, batch * busy, 0,
                        busy * devices))

    def _end_run(self, event: simpy.Event) -> None:
        if event is not self._timeout:
            return  # the end of a run since cut short
        run = self._run
        assert run is not None
        self._run = None
        iterations, batch, end = run.iterations, run.batch, run.end
        self.clock = end
        busy, kv, b = self._sums(run, iterations)
        series = self.series
        if end >= series.bins * series.width:
            series.fit(end)
        width = series.width
        dec, now = self.sched.dec, self.sched.iteration
        # tokens each sequence gained: one an iteration, or by the speculative token clock
        tokens = batch * (dec.tokens(now + iterations) - dec.tokens(now))
        if int((run.start + run.price.time_s[0]) / width) != int(end / width):
            # the run's iterations end in different bins: each bin gets its own
            self.meter.flush()
            self._add_by_bin(run, iterations, batch)
            self.meter.open(end)
        else:
            self.meter.count(end, tokens, busy, kv, batch * busy)
        stats = self.stats
        stats.output_tokens += tokens
        finished = self.sched.commit_run(iterations)
        stats.record(iterations, batch, busy, kv, b)
        stats.preemptions += run.preempted
        self.cost.use_run(self.usage, batch, run.context, run.price, iterations, busy)
        if finished:
            self.on_outcome(self, finished, _NONE, end)
        self._next()
