"""The autoscaler: replicas of the pool join and leave the router's choice as the load moves.

Every replica of ``workload.replicas`` is built up front; ``min_replicas`` serve from t = 0
and the others are idle (not billed, not routable). Every ``interval_s`` the autoscaler
sets the desired count its policy asks for (queue length, KV or batch occupancy, SLO
attainment: :mod:`~simulator.engine.serving.scale_policy`) within [min, max]
(:class:`~simulator.profiles.autoscaling.Autoscaling`):

- *up*: idle replicas start at once (billed from then) and serve after the start-up delay,
  ``provision_s`` plus their weights read at ``storage_bandwidth``;
- *down*: once the largest desired count of the last ``scale_down_delay_s`` is below the
  replicas serving and starting, the highest-numbered serving ones stop taking requests
  and drain: each is released (billing stops) when its last request ends.

A replica is kept out of the router's choice by adding :data:`OFF` to the load the router
sees, so the least-loaded router never picks it while any serving replica exists (one
always does: ``min_replicas >= 1``). The autoscaler stops deciding once every request has
finished (or nothing else is left to happen), so the simulation ends.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from enum import IntEnum

import numpy as np
import simpy
from simpy.events import Timeout

from simulator.engine.serving.metrics import Series
from simulator.engine.serving.scale_bins import bin_edges, bin_width, scale_bins, step_integral
from simulator.engine.serving.scale_policy import policy_of, slo_missed
from simulator.engine.serving.system import ServingSystem
from simulator.profiles.autoscaling import Autoscaling
from simulator.profiles.inference import SLO
from simulator.results.autoscaling import AutoscalingMetrics
from simulator.results.inference import RequestRecords

OFF = 1 << 40  # added to a non-serving replica's load, above any real load


class State(IntEnum):
    """Where a replica of an autoscaled pool is."""

    IDLE = 0  # not running, not billed
    STARTING = 1  # billed, loading its weights
    SERVING = 2  # billed, routable
    DRAINING = 3  # billed, finishing its requests, not routable


class Autoscaler:
    """Decides the pool's size every interval and moves replicas between states; keeps the
    count billed and serving over time (``t_s``, ``billed``, ``serving``: a step function
    changing at each time) and the scale-ups (decided, serving from)."""

    def __init__(self, *, env: simpy.Environment, system: ServingSystem,
                 policy: Autoscaling, startup_s: float, finished: Callable[[], bool],
                 slo: SLO | None = None):
        self.env, self.system, self.policy = env, system, policy
        self.rule = policy_of(policy.rule, in_system=system.in_system,
                              stats=[r.stats for r in system.replicas],
                              requests=system.requests, slo=slo)
        self.startup_s = startup_s
        self._finished = finished
        total = len(system.replicas)
        self.state = [State.SERVING if k < policy.min_replicas else State.IDLE
                      for k in range(total)]
        self._recent: deque[tuple[float, int]] = deque()  # (time, desired) of the window
        self.t_s: list[float] = []
        self.billed: list[int] = []
        self.serving: list[int] = []
        self.scale_ups: list[tuple[float, float]] = []
        self.scale_downs = 0
        # told (time, billed) at each change of the billed count, the first at t = 0: what a
        # tenant of the same fleet follows (engine/serving/shared_training.py)
        self.on_billed: list[Callable[[float, int], None]] = []
        self._told: int | None = None

    def start(self) -> None:
        """Keep the idle replicas out of routing, then decide every interval."""
        for k, state in enumerate(self.state):
            if state is State.IDLE:
                self.system.loads[k] += OFF
        self.system.drained = self._drained
        self._record(0.0)
        Timeout(self.env, self.policy.interval_s).callbacks.append(self._tick)

    def _count(self, *states: State) -> int:
        return sum(1 for s in self.state if s in states)

    def _record(self, t: float) -> None:
        billed = self._count(State.STARTING, State.SERVING, State.DRAINING)
        serving = self._count(State.SERVING)
        if billed != self._told:
            self._told = billed
            for listener in self.on_billed:
                listener(t, billed)
        if self.t_s and self.t_s[-1] == t:
            self.billed[-1], self.serving[-1] = billed, serving
            return
        self.t_s.append(t)
        self.billed.append(billed)
        self.serving.append(serving)

    def desired(self) -> int:
        """The replicas the policy wants now, within [min_replicas, the pool]."""
        want = self.rule.desired(self.env.now, self._count(State.SERVING, State.STARTING))
        return min(len(self.state), max(self.policy.min_replicas, want))

    def _tick(self, _event: simpy.Event) -> None:
        """One decision; then the next, unless every request has finished or nothing else
        is scheduled (nothing could change: ticking on would never end the run)."""
        if self._finished() or self.env.peek() == math.inf:
            return
        t = self.env.now
        desired = self.desired()
        recent = self._recent
        recent.append((t, desired))
        while recent[0][0] < t - self.policy.scale_down_delay_s:
            recent.popleft()
        active = self._count(State.SERVING, State.STARTING)
        if desired > active:
            self._scale_up(desired - active, t)
        else:
            keep = max(d for _, d in recent)
            self._scale_down(active - keep, t)
        Timeout(self.env, self.policy.interval_s).callbacks.append(self._tick)

    def _scale_up(self, n: int, t: float) -> None:
        idle = [k for k, s in enumerate(self.state) if s is State.IDLE][:n]
        for k in idle:
            self.state[k] = State.STARTING
            Timeout(self.env, self.startup_s).callbacks.append(self._joiner(k, t))
        if idle:
            self._record(t)

    def _joiner(self, k: int, decided: float) -> Callable[[simpy.Event], None]:
        def join(_event: simpy.Event) -> None:
            """Replica ``k`` has loaded its weights: the router may choose it."""
            now = self.env.now
            self.state[k] = State.SERVING
            system = self.system
            system.loads[k] -= OFF
            system.router.lowered(k, system.loads[k])
            self.scale_ups.append((decided, now))
            self._record(now)
        return join

    def _scale_down(self, n: int, t: float) -> None:
        serving = [k for k, s in enumerate(self.state) if s is State.SERVING]
        leaving = serving[::-1][:max(0, min(n, len(serving) - self.policy.min_replicas))]
        for k in leaving:
            self.state[k] = State.DRAINING
            self.system.loads[k] += OFF
            self.scale_downs += 1
            if self.system.loads[k] == OFF:
                self.state[k] = State.IDLE
        if leaving:
            self._record(t)

    def _drained(self, k: int, t: float) -> None:
        """Replica ``k``'s load went down: a draining one with none left is released."""
        if self.state[k] is State.DRAINING and self.system.loads[k] == OFF:
            self.state[k] = State.IDLE
            self._record(t)

    def metrics(self, records: RequestRecords, slo: SLO | None, t0: float,
                t_end: float, series: Series | None = None) -> AutoscalingMetrics:
        """The run's replicas over time, billed over [t0, t_end] (the run's span), the
        requests that arrived while a started replica was loading, and (given the run's
        ``series``) the run cut into time bins."""
        seconds = float(step_integral(self.t_s, self.billed, np.array([t0, t_end]))[0])
        arrival = np.asarray(records.arrival_s)
        during = np.zeros(len(arrival), dtype=bool)
        for decided, serving in self.scale_ups:
            during |= (arrival >= decided) & (arrival < serving)
        missed = None if slo is None else slo_missed(slo, records.ttft_s, records.tpot_s,
                                                    records.e2e_s)
        duration = t_end - t0
        width = self.policy.report_bin_s or bin_width(duration)
        bins = [] if series is None else scale_bins(
            steps=(self.t_s, self.billed), records=records, missed=missed, during=during,
            series=series, edges=bin_edges(t0, t_end, width))
        return AutoscalingMetrics(
            bin_s=width, bins=bins,
            startup_s=self.startup_s, replica_seconds=seconds,
            mean_replicas=seconds / duration if duration > 0 else float(self.billed[0]),
            max_replicas=max(self.billed), scale_ups=len(self.scale_ups),
            scale_downs=self.scale_downs, t_s=self.t_s, billed=self.billed,
            serving=self.serving, arrived_during_scale_up=int(np.sum(during)),
            slo_missed_during_scale_up=None if missed is None else int(np.sum(missed & during)),
            slo_missed=None if missed is None else int(np.sum(missed)))


def startup_s(policy: Autoscaling, weight_bytes: float) -> float:
    """A started replica's delay before serving: provisioning, then reading its weights
    (``weight_bytes``, the whole replica's) at the policy's storage bandwidth."""
    return policy.provision_s + weight_bytes / policy.storage_bandwidth
