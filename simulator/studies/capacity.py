"""The highest arrival rate a deployment sustains under its SLO ("max sustainable rate").

MLPerf Server and Interactive results publish the rate (queries/s) a system was run at and
passed its latency constraints (p99 TTFT and p99 TPOT); submitters raise it until the run
would fail. The comparable prediction is therefore not the latency at that rate, which near
saturation magnifies any small capacity error, but the highest rate at which the simulated
deployment still meets the same constraints.

The search assumes the SLO is met below some rate and missed above it. Poisson and gamma
arrivals of one seed are the same draws scaled by ``1 / rate`` (:mod:`simulator.engine.
serving.arrivals`), so a higher rate compresses the same requests in time and latency does
not fall as the rate rises. It brackets the answer from a starting rate by doubling or
halving, then bisects geometrically until the bracket's ratio is within ``rel_tolerance``:

    start meets?  yes: 2x, 4x, ... until one misses;  no: 1/2x, 1/4x, ... until one meets
    then          probe sqrt(lo * hi) until hi / lo <= 1 + rel_tolerance

The answer is ``lo``, the highest rate simulated that met the SLO (the true threshold is in
``[lo, hi)``). With the default 2% tolerance a search from within a factor of two of the
answer takes about 7 simulations. Every probe is deterministic (the scenario's seed), so the
search is too.

Each probe keeps the scenario's *arrival window* (``requests / rate_per_s``), not its request
count: at rate r the run has ``requests * r / rate_per_s`` requests and the warm-up scales
alike. An overloaded system first grows its batch (TPOT rises) or its queue (TTFT rises)
and only fails the SLO once the backlog has built up, so a run's length decides how much
overload it hides; a fixed window (MLPerf runs at least 600 s) makes every probe as strict
as the scenario's own run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulator.errors import InputError
from simulator.profiles.inference import ArrivalProcess, InferenceWorkload
from simulator.profiles.numbers import MAX_REQUESTS
from simulator.profiles.scenario import Scenario

DEFAULT_TOLERANCE = 0.02  # bracket ratio hi/lo at which the bisection stops
MAX_DOUBLINGS = 12  # bracketing gives up beyond start x 2^12 (or start / 2^12)
RATE_ARRIVALS = (ArrivalProcess.POISSON, ArrivalProcess.GAMMA, ArrivalProcess.CONSTANT)


@dataclass(frozen=True, kw_only=True)
class Probe:
    """One simulated rate and whether it met every SLO target."""

    rate_per_s: float
    meets: bool


@dataclass(frozen=True, kw_only=True)
class Capacity:
    """The search's answer: the highest rate known to meet the SLO (None: even the lowest
    rate tried misses it), the lowest known to miss it (None: none did), and every probe."""

    rate_per_s: float | None
    missed_at_per_s: float | None
    probes: tuple[Probe, ...]
    rel_tolerance: float

    def describe(self) -> str:
        """One line: the bracket and the number of simulations."""
        lo = "-" if self.rate_per_s is None else f"{self.rate_per_s:.4g}"
        hi = "-" if self.missed_at_per_s is None else f"{self.missed_at_per_s:.4g}"
        return (f"meets at {lo}/s, misses at {hi}/s ({len(self.probes)} simulations, "
                f"tolerance {self.rel_tolerance:.0%})")


def max_sustainable_rate(meets: Callable[[float], bool], *, start: float,
                         rel_tolerance: float = DEFAULT_TOLERANCE) -> Capacity:
    """The highest rate with ``meets(rate)``, searched from ``start`` (module docstring)."""
    if not start > 0 or not math.isfinite(start):
        raise ValueError(f"the search starts from a positive rate, got {start!r}")
    if not 0 < rel_tolerance < 1:
        raise ValueError(f"rel_tolerance must be in (0, 1), got {rel_tolerance!r}")
    probes: list[Probe] = []

    def probe(rate: float) -> bool:
        """Simulate ``rate`` once and record it."""
        ok = bool(meets(rate))
        probes.append(Probe(rate_per_s=rate, meets=ok))
        return ok

    lo, hi = _bracket(probe, start)
    if lo is not None and hi is not None:
        while hi / lo > 1 + rel_tolerance:
            mid = math.sqrt(lo * hi)
            if probe(mid):
                lo = mid
            else:
                hi = mid
    return Capacity(rate_per_s=lo, missed_at_per_s=hi, probes=tuple(probes),
                    rel_tolerance=rel_tolerance)


def _bracket(probe: Callable[[float], bool], start: float) -> tuple[float | None, float | None]:
    """(a rate that meets, the next one up that misses), stepping by factors of two; None on
    a side the doublings never reached."""
    if probe(start):
        lo = start
        for _ in range(MAX_DOUBLINGS):
            if not probe(lo * 2):
                return lo, lo * 2
            lo *= 2
        return lo, None
    hi = start
    for _ in range(MAX_DOUBLINGS):
        if probe(hi / 2):
            return hi / 2, hi
        hi /= 2
    return None, hi


# ---- on a scenario -----------------------------------------------------------------------
def check_searchable(scenario: Scenario) -> InferenceWorkload:
    """The scenario's workload, if a rate search applies to it; else an :class:`InputError`
    saying what is missing."""
    w = scenario.workload
    if not isinstance(w, InferenceWorkload):
        raise InputError("the sustainable rate is searched for serving scenarios only")
    if w.arrivals.process not in RATE_ARRIVALS or w.arrivals.rate_per_s is None:
        raise InputError(f"the sustainable rate is searched over arrivals.rate_per_s; "
                         f"arrivals.process: {w.arrivals.process.value} has none (use "
                         f"{', '.join(p.value for p in RATE_ARRIVALS)})")
    if w.arrivals.varies_in_time:
        raise InputError("the sustainable-rate search scales a steady rate; arrivals.profile, "
                         "growth and rate_trace make it vary in time (drop them to search)")
    if w.arrivals.requests is None:
        raise InputError("the sustainable-rate search needs arrivals.requests (a fixed "
                         "number of requests at every rate), not duration_s")
    if w.slo is None or (w.slo.ttft_s is None and w.slo.tpot_s is None and w.slo.e2e_s is None):
        raise InputError("the sustainable-rate search needs workload.slo targets to meet")
    return w


def at_rate(scenario: Scenario, rate_per_s: float) -> Scenario:
    """The scenario with its arrivals at ``rate_per_s`` over the same arrival window: the
    request count and the warm-up scale with the rate (everything else, the seed included,
    unchanged)."""
    w = check_searchable(scenario)
    assert w.arrivals.rate_per_s is not None and w.arrivals.requests is not None
    scale = float(rate_per_s) / w.arrivals.rate_per_s
    requests = max(1, round(w.arrivals.requests * scale))
    if requests > MAX_REQUESTS:
        raise InputError(f"at {rate_per_s:.4g}/s the scenario's arrival window holds "
                         f"{requests:,} requests; at most {MAX_REQUESTS:,} are simulated")
    warmup = min(round(w.warmup_requests * scale), requests - 1)
    arrivals = w.arrivals.model_copy(update={"rate_per_s": float(rate_per_s),
                                             "requests": requests})
    workload = w.model_copy(update={"arrivals": arrivals, "warmup_requests": warmup})
    return scenario.model_copy(update={"workload": workload})


def slo_met(result: Any) -> bool:
    """Whether a serving result meets every SLO target it reports."""
    targets = result.inference.slo
    return bool(targets) and all(t.met for t in targets.values())


def scenario_capacity(scenario: Scenario, simulate: Callable[[Scenario], Any], *,
                      start: float | None = None,
                      rel_tolerance: float = DEFAULT_TOLERANCE) -> Capacity:
    """The highest rate at which ``simulate`` of the scenario meets its SLO, searched from
    ``start`` (default: the scenario's own rate)."""
    w = check_searchable(scenario)
    first = start if start is not None else w.arrivals.rate_per_s
    assert first is not None
    return max_sustainable_rate(lambda rate: slo_met(simulate(at_rate(scenario, rate))),
                                start=first, rel_tolerance=rel_tolerance)
