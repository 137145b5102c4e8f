"""What an autoscaler measures, and the replica count each measure asks for.

Each policy of :class:`~simulator.profiles.autoscaling.ScalePolicy` is a class here with
``desired(now, active)``: the count it wants at a decision at ``now`` with ``active``
replicas serving or starting (the autoscaler bounds it to [min, pool]).

- :class:`QueueLength` and :class:`Occupancy` measure a *load* in replicas' worth at the
  target and ask for it rounded up: the Kubernetes HPA's ``ceil(current x metric / target)``
  (the sum over replicas of each one's metric, over the target, is that product). Within
  the tolerance of the current count they keep it.
- :class:`Occupancy` reads each replica's running integrals (KV block-seconds over its
  cache, sequence-seconds over its batch slots) and divides their growth since the last
  decision by the time since: the average over the interval of the iterations that ended
  in it (what a Prometheus ``avg_over_time`` of vLLM's gauges sees, to within the
  iteration in flight at each end).
- :class:`SloAttainment` judges the requests finished in the last window against the SLO,
  and those still waiting for their first token past the TTFT target (or in the system past
  the end-to-end target) as misses already.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from simulator.engine.serving.latency import slo_met
from simulator.engine.serving.metrics import ReplicaStats
from simulator.engine.serving.requests import COMPLETED, PENDING, Requests
from simulator.engine.serving.system import InSystem
from simulator.profiles.autoscaling import ScaleMetric, ScalePolicy
from simulator.profiles.inference import SLO

# The HPA's default scale-up limit (kubernetes.io, HPA "Default Behavior"): per 15 s period
# the larger of 100% more pods or 4 more. Bounds the SLO policy's step, whose miss ratio is
# not a load estimate and can be large.
HPA_SCALE_UP_PODS = 4
HPA_SCALE_UP_FACTOR = 2
# The SLO policy asks for one fewer only with its miss budget at most half used: a band of
# hysteresis between scaling up (budget overrun) and down.
SLO_COMFORT = 0.5


def proportional(load: float, active: int, tolerance: float) -> int:
    """The HPA rule: ``load`` replicas' worth rounded up, unless it is within ``tolerance``
    of the ``active`` count (then that count). Rounded to 1e-9 first, so that a load of
    exactly n replicas summed in floating point asks for n."""
    if active and abs(load / active - 1) <= tolerance:
        return active
    return math.ceil(round(load, 9))


class QueueLength:
    """Requests in the system (waiting and running) per replica."""

    def __init__(self, in_system: InSystem, rule: ScalePolicy):
        self.in_system, self.rule = in_system, rule

    def desired(self, now: float, active: int) -> int:
        """The requests in the system now over the target per replica."""
        return proportional(self.in_system.count / self.rule.target, active,
                            self.rule.tolerance)


class Occupancy:
    """The share of the KV cache (``kv_utilization``) or of the batch slots
    (``batch_utilization``) in use, summed over replicas and averaged over the interval."""

    def __init__(self, stats: Sequence[ReplicaStats], rule: ScalePolicy):
        self.stats, self.rule = stats, rule
        self.kv = rule.metric is ScaleMetric.KV_UTILIZATION
        self._t, self._total = 0.0, 0.0

    def total(self) -> float:
        """Replica-seconds of full occupancy so far, over all replicas."""
        if self.kv:
            return sum(s.kv_blocks_s / s.kv_blocks for s in self.stats)
        return sum(s.batch_s / s.max_batch for s in self.stats)

    def measured(self, now: float) -> float:
        """Replicas' worth of full occupancy, averaged since the last call (0 at the
        first, at t = 0)."""
        total = self.total()
        span = now - self._t
        value = (total - self._total) / span if span > 0 else 0.0
        self._t, self._total = now, total
        return value

    def desired(self, now: float, active: int) -> int:
        """The occupied replicas' worth over the target share."""
        return proportional(self.measured(now) / self.rule.target, active,
                            self.rule.tolerance)


def slo_missed(slo: SLO, ttft: np.ndarray, tpot: np.ndarray, e2e: np.ndarray) -> np.ndarray:
    """Which requests are over any target (:func:`~simulator.engine.serving.latency.slo_met`
    negated: a NaN, e.g. no TPOT with one output token, or no finish for a request dropped
    or still running, is not over)."""
    return ~slo_met(slo, ttft=ttft, tpot=tpot, e2e=e2e)


class SloAttainment:
    """The share of recent requests meeting the SLO, against the target share."""

    def __init__(self, requests: Requests, slo: SLO, rule: ScalePolicy):
        self.requests, self.slo, self.rule = requests, slo, rule
        arrival = requests.arrival_s
        # open-loop and closed-loop arrivals are in index order: the live ones are a slice
        self._ordered = bool(np.all(arrival[1:] >= arrival[:-1]))
        self._lo = 0  # the requests before it finished (or were dropped) before the window

    def _live(self, now: float) -> slice:
        """The requests that may be judged at ``now``: arrived, and finished within the
        window if at all."""
        reqs, since = self.requests, now - self.rule.window_s
        status, finish, lo = reqs.status, reqs.finish_s, self._lo
        n = len(reqs)
        while lo < n and status[lo] != PENDING and not finish[lo] > since:
            lo += 1
        self._lo = lo
        hi = int(np.searchsorted(reqs.arrival_s, now, "right")) if self._ordered else n
        return slice(lo, max(lo, hi))

    def judge(self, now: float) -> tuple[int, int, int]:
        """Requests judged, those missing a target, and those waiting for admission."""
        r, live = self.requests, self._live(now)
        arrival, status = r.arrival_s[live], r.status[live]
        first, finish, out = r.first_token_s[live], r.finish_s[live], r.output_tokens[live]
        done = (status == COMPLETED) & (finish > now - self.rule.window_s)
        tpot = np.full(len(out), np.nan)
        many = done & (out > 1)
        tpot[many] = (finish[many] - first[many]) / (out[many] - 1)
        late = slo_missed(self.slo, first - arrival, tpot, finish - arrival) & done
        age = now - arrival
        pending = (status == PENDING) & (arrival <= now)
        overdue = np.zeros(len(age), dtype=bool)
        if self.slo.ttft_s is not None:
            overdue |= np.isnan(first) & (age > self.slo.ttft_s)
        if self.slo.e2e_s is not None:
            overdue |= age > self.slo.e2e_s
        overdue &= pending
        waiting = int(np.sum(pending & np.isnan(r.admitted_s[live])))
        return int(np.sum(done | overdue)), int(np.sum(late | overdue)), waiting

    def desired(self, now: float, active: int) -> int:
        """Below the target: the count times the miss share over the allowed one (within
        the HPA's step); with half the miss budget or less used and few waiting: one fewer;
        else (or with nothing to judge) the count."""
        judged, missed, waiting = self.judge(now)
        if not judged:
            return active
        allowed, share = 1 - self.rule.target, missed / judged
        if share > allowed * (1 + self.rule.tolerance):
            step = max(HPA_SCALE_UP_FACTOR * active, active + HPA_SCALE_UP_PODS)
            return min(step, math.ceil(active * share / allowed))
        if share <= SLO_COMFORT * allowed and waiting <= active:
            return active - 1
        return active


Policy = QueueLength | Occupancy | SloAttainment


def policy_of(rule: ScalePolicy, *, in_system: InSystem, stats: Sequence[ReplicaStats],
              requests: Requests, slo: SLO | None) -> Policy:
    """The policy object measuring ``rule.metric``."""
    if rule.metric is ScaleMetric.QUEUE_LENGTH:
        return QueueLength(in_system, rule)
    if rule.metric is ScaleMetric.SLO_ATTAINMENT:
        assert slo is not None  # checked with the scenario
        return SloAttainment(requests, slo, rule)
    return Occupancy(stats, rule)
