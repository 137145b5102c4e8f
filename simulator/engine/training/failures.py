"""Failures, checkpoints and restarts over a whole run, simulated in SimPy at run scale.

The fleet fails as a Poisson process, the sum of its parts' processes: causes that come with
each accelerator (MTBF per accelerator) and causes that come with each host (MTBF per node),
so its mean time between failures is M = 1 / (accelerators / MTBF_acc + nodes / MTBF_node).
Training advances in checkpoint intervals of ``I`` seconds of work; a blocking checkpoint
then stalls it for the write time δ = checkpoint bytes / storage bandwidth, an asynchronous
one does not stall but only becomes durable δ later. A failure loses the work since the
last durable checkpoint and costs ``restart_s`` (during which the fleet may fail again).
``interval: auto`` is Young's optimum sqrt(2·δ·M) (Young 1974; Daly 2006 adds higher-order
terms).

Between two failures nothing random happens, so the simulation jumps from failure to
failure: a run of months costs as many events as it has interruptions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass

import numpy as np
import simpy

from simulator.errors import XpusimError
from simulator.results.training import RunTimeline

MAX_INTERRUPTIONS = 1_000_000  # beyond this expected count a run is hopeless: say so
MAX_TIMELINE_EVENTS = 100_000  # per kind of event kept for the plots; beyond, truncated


class NoProgress(XpusimError):
    """Failures arrive so often that the run cannot finish in any reasonable time."""


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    """A run of ``work_s`` seconds of training (steps x step time) on a failing fleet of
    ``accelerators`` devices in ``nodes`` hosts."""

    work_s: float
    accelerators: int
    mtbf_per_accelerator_s: float
    restart_s: float
    checkpoint_write_s: float
    interval_s: float | None  # seconds of training between checkpoints; None: none taken
    blocking: bool = True
    enabled: bool = True
    nodes: int = 0
    mtbf_per_node_s: float = math.inf  # host causes; inf: none beyond the per-device MTBF

    @property
    def fleet_mtbf_s(self) -> float:
        """The fleet's mean time between failures (see ``fleet_mtbf``)."""
        return fleet_mtbf(accelerators=self.accelerators,
                          mtbf_per_accelerator_s=self.mtbf_per_accelerator_s,
                          nodes=self.nodes, mtbf_per_node_s=self.mtbf_per_node_s)

    @property
    def stall_s(self) -> float:
        """Training time lost per checkpoint written."""
        return self.checkpoint_write_s if self.blocking else 0.0


@dataclass(frozen=True, kw_only=True)
class RunOutcome:
    """One sampled run, and the closed-form expectations it should scatter around."""

    wall_time_s: float
    interruptions: int
    lost_work_s: float
    restart_s: float
    checkpoint_stall_s: float
    checkpoints: int
    expected_wall_time_s: float
    expected_interruptions: float
    timeline: RunTimeline | None = None


def fleet_mtbf(*, accelerators: int, mtbf_per_accelerator_s: float, nodes: int = 0,
               mtbf_per_node_s: float = math.inf) -> float:
    """1 / (accelerators / MTBF_acc + nodes / MTBF_node): independent parts' failure rates
    add, so a job's rate grows with its devices for device causes and with the hosts it
    occupies for host causes (inf where neither can fail)."""
    rate = accelerators / mtbf_per_accelerator_s + nodes / mtbf_per_node_s
    return 1.0 / rate if rate > 0 else math.inf


def young_daly_interval(write_s: float, fleet_mtbf_s: float) -> float:
    """sqrt(2·δ·M): the checkpoint interval that minimises the expected waste."""
    return math.sqrt(2.0 * write_s * fleet_mtbf_s)


def resolve_interval(setting: float | str, write_s: float, fleet_mtbf_s: float,
                     step_s: float, *, enabled: bool, blocking: bool) -> float | None:
    """The interval used: ``auto`` (Young/Daly; none without failures) or the setting,
    at least one step, and (asynchronous) at least one write so that writes do not pile up."""
    if setting == "auto":
        if not enabled or write_s <= 0:
            return None
        interval = young_daly_interval(write_s, fleet_mtbf_s)
    else:
        interval = float(setting)
    interval = max(interval, step_s)
    return interval if blocking else max(interval, write_s)


def _expm1(x: float) -> float:
    """e^x - 1, infinite where it overflows (a hopeless run, refused later)."""
    try:
        return math.expm1(x)
    except OverflowError:
        return math.inf


def expected_wall_time(spec: RunSpec) -> float:
    """Closed form. Blocking checkpoints: Daly (2006) for Poisson failures,
    E[T] = (W/I)·M·e^{R/M}·(e^{(I+δ)/M} - 1) (failures may also strike restarts).
    Asynchronous: first order, T = W / (1 - (R + I/2 + δ)/M): each failure costs a restart
    and on average half an interval plus the write still in flight."""
    w, m, r = spec.work_s, spec.fleet_mtbf_s, spec.restart_s
    interval = spec.interval_s
    checkpoints = math.floor(w / interval) if interval else 0
    if not spec.enabled:
        return w + checkpoints * spec.stall_s
    if m <= 0.0:  # rates beyond floating point (MTBFs of 1e-300 h): a hopeless run
        return math.inf
    if spec.blocking or interval is None:
        period = interval + spec.stall_s if interval else w
        periods = w / interval if interval else 1.0
        return periods * m * math.exp(min(r / m, 700.0)) * _expm1(period / m)
    waste = (r + interval / 2 + spec.checkpoint_write_s) / m
    return w / (1.0 - waste) if waste < 1.0 else math.inf


class _RunWithFailures:
    """One sampled run as a SimPy process (``run``): training jumps from failure to failure,
    each followed by a restart (``_restart``) that may itself be cut short by a failure."""

    def __init__(self, spec: RunSpec, rng: np.random.Generator,
                 progress: Callable[[float, float], None] | None = None):
        self.spec, self.rng = spec, rng
        self.env = simpy.Environment()
        self.interruptions = self.checkpoints = 0
        self.lost = self.restarts = self.stalls = 0.0
        self.progress = progress
        self.remaining = spec.work_s  # seconds of training not yet made durable
        # when things happened, for the plots (recording does not touch the random draws)
        self.failure_times: list[float] = []
        self.restart_spans: list[tuple[float, float]] = []
        self.checkpoint_times: list[float] = []
        self.truncated = False

    def _record_checkpoints(self, start: float, writes: int) -> None:
        """The start times of the ``writes`` checkpoints of a segment begun at ``start``."""
        interval = self.spec.interval_s
        room = MAX_TIMELINE_EVENTS - len(self.checkpoint_times)
        if not interval or writes <= 0:
            return
        if writes > room:
            self.truncated, writes = True, max(room, 0)
        period = interval + self.spec.stall_s
        k = np.arange(writes)
        self.checkpoint_times.extend((start + interval + k * period).tolist())

    def _record_failure(self, t: float) -> None:
        """Keep a failure's time for the plot, and report progress."""
        if len(self.failure_times) < MAX_TIMELINE_EVENTS:
            self.failure_times.append(t)
        else:
            self.truncated = True
        if self.progress is not None:
            self.progress(self.spec.work_s - self.remaining, self.spec.work_s)

    def _record_restart(self, start: float, end: float) -> None:
        """Keep a restart's span for the plot."""
        if len(self.restart_spans) < MAX_TIMELINE_EVENTS:
            self.restart_spans.append((start, end))
        else:
            self.truncated = True

    def timeline(self) -> RunTimeline:
        """When things happened, for the plots."""
        return RunTimeline(wall_time_s=self.env.now, failures_s=tuple(self.failure_times),
                           restarts_s=tuple(self.restart_spans),
                           checkpoints_s=tuple(self.checkpoint_times),
                           checkpoint_write_s=self.spec.checkpoint_write_s,
                           blocking=self.spec.blocking, truncated=self.truncated)

    def _next_failure(self) -> float:
        """Seconds until the fleet's next failure (never, with failures off)."""
        return float(self.rng.exponential(self.spec.fleet_mtbf_s)) if self.spec.enabled \
            else math.inf

    def _finish_time(self, work: float) -> tuple[float, int]:
        """Wall time to do ``work`` without failure, and the checkpoints written on the way."""
        interval = self.spec.interval_s
        n = math.floor(work / interval) if interval else 0
        return work + n * self.spec.stall_s, n

    def _segment(self, elapsed: float) -> tuple[float, float, int, float]:
        """After ``elapsed`` wall seconds from a durable checkpoint: work done, work made
        durable, checkpoints started, seconds stalled writing."""
        s, interval = self.spec, self.spec.interval_s
        if not interval:
            return elapsed, 0.0, 0, 0.0
        if s.blocking:
            period = interval + s.checkpoint_write_s
            n = math.floor(elapsed / period)
            rest = elapsed - n * period
            return (n * interval + min(rest, interval), n * interval, n,
                    n * s.checkpoint_write_s + max(0.0, rest - interval))
        n = math.floor(elapsed / interval)
        durable = n if elapsed - n * interval >= s.checkpoint_write_s else max(0, n - 1)
        return elapsed, durable * interval, n, 0.0

    def run(self) -> Generator[simpy.Event, None, None]:
        """Train until the work is durable: each failure loses the work since the last
        durable checkpoint and costs a restart."""
        env, remaining = self.env, self.spec.work_s
        while True:
            need, writes = self._finish_time(remaining)
            gap = self._next_failure()
            start = env.now
            if gap >= need:
                yield env.timeout(need)
                self.checkpoints += writes
                self.stalls += writes * self.spec.stall_s
                self._record_checkpoints(start, writes)
                self.remaining = 0.0
                return
            yield env.timeout(gap)
            done, durable, writes, stalled = self._segment(gap)
            remaining -= durable
            self.remaining = remaining
            self.lost += done - durable
            self.checkpoints += writes
            self.stalls += stalled
            self.interruptions += 1
            self._record_checkpoints(start, writes)
            self._record_failure(env.now)
            yield from self._restart()

    def _restart(self) -> Generator[simpy.Event, None, None]:
        """Restart after a failure; a failure during it starts it over."""
        while True:
            gap = self._next_failure()
            start = self.env.now
            if gap >= self.spec.restart_s:
                yield self.env.timeout(self.spec.restart_s)
                self.restarts += self.spec.restart_s
                self._record_restart(start, self.env.now)
                return
            yield self.env.timeout(gap)  # failed again while restarting: start over
            self.restarts += gap
            self.interruptions += 1
            self._record_restart(start, self.env.now)
            self._record_failure(self.env.now)


def simulate_run(spec: RunSpec, rng: np.random.Generator,
                 progress: Callable[[float, float], None] | None = None) -> RunOutcome:
    """Sample one run with ``rng``; deterministic for a given generator state.

    ``progress(done, total)``, if given, is called at each failure with the seconds of
    training made durable so far and the run's total, and once at the end.
    """
    expected = expected_wall_time(spec)
    fleet = spec.fleet_mtbf_s
    expected_failures = (expected / fleet if fleet > 0 else math.inf) if spec.enabled else 0.0
    if expected_failures > MAX_INTERRUPTIONS:
        how_often = (f"about {expected_failures:.3g} times" if math.isfinite(expected_failures)
                     else "so often that it would never finish")
        raise NoProgress(
            f"failures would interrupt the run {how_often} (fleet "
            f"MTBF {spec.fleet_mtbf_s / 3600:.3g} h, checkpoint every "
            f"{spec.interval_s or math.inf:.3g} s, restart {spec.restart_s:.3g} s): "
            f"checkpoint more often, restart faster or use fewer accelerators")
    run = _RunWithFailures(spec, rng, progress)
    run.env.process(run.run())
    run.env.run()
    if progress is not None:
        progress(spec.work_s, spec.work_s)
    return RunOutcome(wall_time_s=run.env.now, interruptions=run.interruptions,
                      lost_work_s=run.lost, restart_s=run.restarts,
                      checkpoint_stall_s=run.stalls, checkpoints=run.checkpoints,
                      expected_wall_time_s=expected, expected_interruptions=expected_failures,
                      timeline=run.timeline())
