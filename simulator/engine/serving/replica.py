"""A replica as a SimPy process: plan an iteration, price it, wait it out, commit it.

The replica keeps its own clock of iteration boundaries, computed as ``previous boundary +
iteration time`` (SimPy only orders events), so that a run of many decode steps taken in one
event ends at exactly the boundaries the steps would reach one by one: the boundaries of a
run are a sequential cumulative sum (``np.cumsum``) of the same per-step times.

**Jumping.** When an iteration is decode-only and nothing was preempted, the batch cannot
change until a sequence finishes, the cache runs out, or a request arrives that could be
admitted. The replica then prices every step up to the first two in one call and waits for
the last boundary, or for an admissible arrival: it then stops at the first boundary at or
after the arrival, where a step-by-step replica would have admitted it. ``single_step``
turns jumping off (for testing that both give the same results).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import simpy

from simulator.engine.serving.iteration_cost import IterationCost
from simulator.engine.serving.metrics import ReplicaStats, Series
from simulator.engine.serving.scheduler import Outcome, Plan, Scheduler

Hook = Callable[["Replica", Outcome, float], None]


def _pairs(chunks: list[tuple[int, int, int]]) -> int:
    return sum(q * c + q * (q + 1) // 2 for _, q, c in chunks)


class Replica:
    """One model replica: a scheduler, its iteration costs and its own statistics."""

    def __init__(self, env: simpy.Environment, scheduler: Scheduler, cost: IterationCost,
                 stats: ReplicaStats, series: Series, on_outcome: Hook,
                 single_step: bool = False):
        self.env = env
        self.sched = scheduler
        self.cost = cost
        self.stats = stats
        self.series = series
        self.on_outcome = on_outcome
        self.single_step = single_step
        self.clock = 0.0
        self.slot = 0  # index in its pool, and whether that is a decode pool (set by the system)
        self.decode_pool = False
        self._wake: simpy.Event | None = None
        self._idle = False
        self._run_free = 0
        self.process = env.process(self._loop())

    @property
    def index(self) -> int:
        return self.stats.index

    # ---- inputs -------------------------------------------------------------------------
    def enqueue(self, r: int, at: float) -> None:
        """Request ``r`` reaches this replica at time ``at``."""
        self.sched.enqueue(r)
        wake = self._wake
        if wake is None or wake.triggered:
            return
        # during a jump only an arrival that could be admitted ends it: with others queued,
        # the head is blocked and FCFS keeps this one waiting too
        if self._idle or (len(self.sched.waiting) == 1
                          and self.sched.could_admit(r, self._run_free)):
            wake.succeed(at)

    def release(self, blocks: int, at: float) -> None:
        """KV blocks held for a hand-off are free again."""
        self.sched.release(blocks)
        if self._idle and self._wake is not None and not self._wake.triggered:
            self._wake.succeed(at)

    # ---- the process ----------------------------------------------------------------------
    def _wait_until(self, t: float):
        return self.env.timeout(max(0.0, t - self.env.now))

    def _loop(self):
        while True:
            plan = self.sched.plan(self.clock)
            if plan.empty:
                self._idle, self._wake = True, self.env.event()
                at = yield self._wake
                self._idle, self._wake = False, None
                self.clock = max(self.clock, at)
            elif plan.chunks:
                yield from self._step(plan)
            else:
                yield from self._decode_run(plan)

    def _step(self, plan: Plan):
        """One iteration with prompt chunks (and decodes)."""
        chunks = plan.chunks
        tokens = sum(q for _, q, _ in chunks)
        v = self.cost.step(tokens, sum(c for _, _, c in chunks), _pairs(chunks), len(chunks),
                           plan.decode_batch, plan.decode_context)
        end = self.clock + v[0]
        yield self._wait_until(end)
        self.clock = end
        out = self.sched.commit_step(plan, end)
        self.stats.output_tokens += out.output_tokens
        self.stats.record(1, plan.sequences, v[:1], np.array([plan.blocks]), v)
        self.stats.preemptions += plan.preempted
        self.stats.prompt_tokens += tokens
        self.series.add(end, output_tokens=out.output_tokens, busy_s=v[0],
                        kv_blocks_s=plan.blocks * v[0] / self.sched.capacity.blocks,
                        batch_s=plan.sequences * v[0])
        self.on_outcome(self, out, end)

    def _decode_run(self, plan: Plan):
        """Decode-only steps: one, or as many as nothing changes in (a jump)."""
        single = self.single_step or plan.preempted > 0
        steps, blocks = self.sched.run_limit(1 if single else None)
        batch, context = plan.decode_batch, plan.decode_context
        run = self.cost.decode_run(batch, context, steps)
        bounds = np.cumsum(np.concatenate(([self.clock], run.time_s)))[1:]
        if steps > 1:
            self._run_free = self.sched.capacity.blocks - int(blocks[0])
            self._wake = self.env.event()
            yield self._wait_until(float(bounds[-1])) | self._wake
            wake, self._wake = self._wake, None
            if wake.triggered:
                j = min(int(np.searchsorted(bounds, wake.value, side="left")), steps - 1)
                if j < steps - 1:
                    steps = j + 1
                    run = self.cost.decode_run(batch, context, steps)
                yield self._wait_until(float(bounds[j]))
        else:
            yield self._wait_until(float(bounds[0]))
        end = float(bounds[steps - 1])
        self.clock = end
        out = self.sched.commit_run(steps)
        self.stats.output_tokens += out.output_tokens
        self.stats.record(steps, batch, run.time_s, blocks[:steps], run.totals)
        self.stats.preemptions += plan.preempted
        b = bounds[:steps]
        self.series.add_many(b, output_tokens=np.full(steps, float(batch)), busy_s=run.time_s,
                             kv_blocks_s=blocks[:steps] * run.time_s / self.sched.capacity.blocks,
                             batch_s=batch * run.time_s)
        self.on_outcome(self, out, end)
