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

**Keeping up.** Meeting the SLO over the run is necessary, not sufficient: a run shorter
than the time an overloaded fleet's backlog needs to push p99 TTFT over the limit meets the
SLO at a rate above the fleet's capacity. A probe therefore also reads the backlog's trend
(:mod:`simulator.studies.keep_up`). While the SLO is met but the backlog still grows, the
rate is simulated again over twice the arrival window (the warm-up kept), up to
:data:`SUSTAIN_S` (or the scenario's own window, if longer) and :data:`MAX_REQUESTS`; the
rate passes once the backlog levels off, and fails if the SLO is missed on a longer run or
the backlog still grows on the longest. A run that meets the SLO without a steady window
(its batch still filling when the arrivals end) is simulated again the same way; over the
longest window its backlog over the arrivals decides. Each probe keeps the reason it passed
or failed (``Probe.reason``). A rate above one that needed a longer window to settle goes straight
to that window once its first run says "still growing": nearer capacity a fleet settles no
faster (and a rate that misses the SLO is still caught on the first, short run).
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
from simulator.studies.keep_up import judge

DEFAULT_TOLERANCE = 0.02  # bracket ratio hi/lo at which the bisection stops
MAX_DOUBLINGS = 12  # bracketing gives up beyond start x 2^12 (or start / 2^12)
SUSTAIN_S = 600.0  # longest arrival window a growing backlog is re-simulated over (MLPerf Server's
# minimum run, min_duration 600,000 ms in LoadGen's mlperf.conf)
RATE_ARRIVALS = (ArrivalProcess.POISSON, ArrivalProcess.GAMMA, ArrivalProcess.CONSTANT)


@dataclass(frozen=True, kw_only=True)
class Probe:
    """One simulated rate, whether it passed (every SLO target met and the fleet keeping
    up), why, and the arrival window of its longest run (None: not a scenario's)."""

    rate_per_s: float
    meets: bool
    reason: str = ""
    window_s: float | None = None


@dataclass(frozen=True, kw_only=True)
class Capacity:
    """The search's answer: the highest rate known to meet the SLO (None: even the lowest
    rate tried misses it), the lowest known to miss it (None: none did), and every probe."""

    rate_per_s: float | None
    missed_at_per_s: float | None
    probes: tuple[Probe, ...]
    rel_tolerance: float

    def describe(self) -> str:
        """One line: the bracket, the number of rates probed, and why the lowest rate that
        failed did."""
        lo = "-" if self.rate_per_s is None else f"{self.rate_per_s:.4g}"
        hi = "-" if self.missed_at_per_s is None else f"{self.missed_at_per_s:.4g}"
        why = next((p.reason for p in self.probes
                    if p.rate_per_s == self.missed_at_per_s and p.reason), "")
        return (f"meets at {lo}/s, misses at {hi}/s ({len(self.probes)} rates probed, "
                f"tolerance {self.rel_tolerance:.0%})" + (f"; at {hi}/s: {why}" if why else ""))


def max_sustainable_rate(meets: Callable[[float], bool | Probe], *, start: float,
                         rel_tolerance: float = DEFAULT_TOLERANCE) -> Capacity:
    """The highest rate with ``meets(rate)``, searched from ``start`` (module docstring);
    ``meets`` answers a bool, or a :class:`Probe` that says why."""
    if not start > 0 or not math.isfinite(start):
        raise ValueError(f"the search starts from a positive rate, got {start!r}")
    if not 0 < rel_tolerance < 1:
        raise ValueError(f"rel_tolerance must be in (0, 1), got {rel_tolerance!r}")
    probes: list[Probe] = []

    def probe(rate: float) -> bool:
        """Judge ``rate`` once and record it."""
        outcome = meets(rate)
        found = outcome if isinstance(outcome, Probe) else Probe(rate_per_s=rate,
                                                                 meets=bool(outcome))
        probes.append(found)
        return found.meets

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


def at_rate(scenario: Scenario, rate_per_s: float, *, stretch: float = 1.0) -> Scenario:
    """The scenario with its arrivals at ``rate_per_s`` over the same arrival window (times
    ``stretch``): the request count scales with the rate and the stretch, the warm-up with
    the rate only (the fill-up it leaves out lasts as long whatever the run's length);
    everything else, the seed included, unchanged."""
    w = check_searchable(scenario)
    assert w.arrivals.rate_per_s is not None and w.arrivals.requests is not None
    scale = float(rate_per_s) / w.arrivals.rate_per_s
    requests = max(1, round(w.arrivals.requests * scale * stretch))
    if requests > MAX_REQUESTS:
        raise InputError(f"at {rate_per_s:.4g}/s the scenario's arrival window holds "
                         f"{requests:,} requests; at most {MAX_REQUESTS:,} are simulated")
    warmup = min(round(w.warmup_requests * scale), requests - 1)
    arrivals = w.arrivals.model_copy(update={"rate_per_s": float(rate_per_s),
                                             "requests": requests})
    workload = w.model_copy(update={"arrivals": arrivals, "warmup_requests": warmup})
    return scenario.model_copy(update={"workload": workload})


def arrival_window_s(scenario: Scenario) -> float:
    """The scenario's arrival window: its requests over its rate, in seconds."""
    w = check_searchable(scenario)
    assert w.arrivals.rate_per_s is not None and w.arrivals.requests is not None
    return w.arrivals.requests / w.arrivals.rate_per_s


def _longer(window_s: float, longest_s: float, rate_per_s: float) -> float | None:
    """The next, longer arrival window for a rate whose backlog still grows: twice
    ``window_s``, at most ``longest_s`` and :data:`MAX_REQUESTS` requests; None when
    ``window_s`` is already the longest."""
    longest = min(longest_s, MAX_REQUESTS / rate_per_s)
    nxt = min(2 * window_s, longest)
    return nxt if nxt > window_s * (1 + 1e-9) else None


def judged_rate(scenario: Scenario, simulate: Callable[[Scenario], Any], rate_per_s: float,
                *, first_window_s: float | None = None) -> Probe:
    """``rate_per_s`` judged on the scenario (module docstring, "Keeping up"): simulated
    over the scenario's arrival window, then, while the SLO is met and the backlog still
    grows, over longer ones (the first at least ``first_window_s``)."""
    base = arrival_window_s(scenario)
    longest = min(max(SUSTAIN_S, base), MAX_REQUESTS / rate_per_s)
    window: float | None = base
    while window is not None:
        run = window
        verdict = judge(simulate(at_rate(scenario, rate_per_s, stretch=run / base)),
                        rate_per_s)
        if verdict.conclusive:
            break
        window = _longer(run, longest, rate_per_s)
        if window is not None and first_window_s is not None:
            window = max(window, min(first_window_s, longest))
    ok = verdict.meets and (verdict.settled or verdict.growth_per_s is None)
    return Probe(rate_per_s=rate_per_s, meets=ok, reason=verdict.reason, window_s=run)


def slo_met(result: Any) -> bool:
    """Whether a serving result meets every SLO target it reports."""
    targets = result.inference.slo
    return bool(targets) and all(t.met for t in targets.values())


def scenario_capacity(scenario: Scenario, simulate: Callable[[Scenario], Any], *,
                      start: float | None = None,
                      rel_tolerance: float = DEFAULT_TOLERANCE) -> Capacity:
    """The highest rate at which ``simulate`` of the scenario meets its SLO and keeps up,
    searched from ``start`` (default: the scenario's own rate). A rate starts from the
    longest window a lower rate that passed needed: nearer capacity, a fleet settles no
    faster."""
    w = check_searchable(scenario)
    first = start if start is not None else w.arrivals.rate_per_s
    assert first is not None
    needed: dict[float, float] = {}  # rate that passed -> the window it was judged over

    def probe(rate: float) -> Probe:
        """Judge ``rate``, starting from the window lower rates needed."""
        lower = [window for passed, window in needed.items() if passed <= rate]
        found = judged_rate(scenario, simulate, rate, first_window_s=max(lower, default=None))
        if found.meets and found.window_s is not None:
            needed[rate] = found.window_s
        return found

    return max_sustainable_rate(probe, start=first, rel_tolerance=rel_tolerance)
