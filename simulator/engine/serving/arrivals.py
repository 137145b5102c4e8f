"""When requests arrive and how long they are: seeded, vectorised draws.

Every process returns arrival times (seconds from the start, non-decreasing) and the token
lengths of each request, drawn from one :class:`numpy.random.Generator` in a fixed order
(times, then prompt lengths, then output lengths), so a seed fixes the whole workload.

- ``poisson``: exponential gaps of mean ``1/rate_per_s``; with a ``profile``, ``growth`` or
  ``rate_trace``, a non-homogeneous Poisson process over the window ``duration_s`` from
  ``start_s`` of the rate's timeline (:mod:`simulator.engine.serving.nhpp`).
- ``gamma``: a renewal process with gamma gaps of mean ``1/rate_per_s`` and coefficient of
  variation ``cv`` (shape ``1/cv²``): ``cv > 1`` is burstier than Poisson, ``cv < 1`` smoother.
- ``constant``: one request every ``1/rate_per_s`` seconds, the first at t = 0.
- ``offline``: all ``requests`` at t = 0 (MLPerf Offline).
- ``trace``: times and lengths from a file (:mod:`simulator.engine.serving.traces`); with
  ``rate_per_s`` the times are scaled so the trace's mean rate becomes that rate (refused
  when every row arrives at the same time: there is no rate to scale).
- ``closed``: ``concurrency`` clients each keep one request outstanding; the first request of
  every client arrives at t = 0 and the others' times are not known in advance (``inf``
  here): the engine releases the next request when one ends, after ``think_time_s``.

``requests`` caps the number of arrivals and ``duration_s`` the time of the last one;
with both, whichever comes first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from simulator.engine.serving.nhpp import nhpp_times
from simulator.engine.serving.prefixes import PromptPrefixes, shape_prompts
from simulator.engine.serving.traces import read_trace
from simulator.errors import InputError
from simulator.profiles.inference import (
    ArrivalProcess,
    Arrivals,
    DistKind,
    InferenceWorkload,
    TokenDistribution,
)
from simulator.profiles.numbers import MAX_SEQUENCE_TOKENS

_CHUNK = 4096  # gaps drawn per batch when only duration_s bounds the arrivals


@dataclass(frozen=True)
class Workload:
    """The requests of a run, in arrival order."""

    arrival_s: np.ndarray  # float64, non-decreasing
    prompt_tokens: np.ndarray  # int64, >= 1
    output_tokens: np.ndarray  # int64, >= 1
    # what the prompts share (a system prompt, sessions, a trace's block hashes); None: nothing
    prefixes: PromptPrefixes | None = None

    def __len__(self) -> int:
        return len(self.arrival_s)


def sample_tokens(dist: int | TokenDistribution, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` lengths from ``dist``: rounded to integers and clamped to [min, max] (max
    defaults to the longest request a run takes, so a wide distribution cannot draw a length
    that overflows later arithmetic)."""
    if not isinstance(dist, TokenDistribution):
        return np.full(n, int(dist), dtype=np.int64)
    d = dist  # (validation guarantees the parameters each kind needs)
    if d.dist is DistKind.FIXED:
        assert d.value is not None
        values = np.full(n, float(d.value))
    elif d.dist is DistKind.UNIFORM:
        assert d.low is not None and d.high is not None
        values = rng.integers(d.low, d.high, size=n, endpoint=True).astype(float)
    elif d.dist is DistKind.NORMAL:
        assert d.mean is not None and d.std is not None
        values = rng.normal(d.mean, d.std, size=n)
    elif d.dist is DistKind.LOGNORMAL:
        # the mean and std are of the lengths: sigma² = ln(1 + std²/mean²)
        assert d.mean is not None and d.std is not None
        sigma2 = np.log1p((d.std / d.mean) ** 2)
        values = rng.lognormal(np.log(d.mean) - sigma2 / 2, np.sqrt(sigma2), size=n)
    else:
        assert d.values is not None
        weights = np.asarray(d.weights if d.weights is not None else [1.0] * len(d.values))
        values = rng.choice(np.asarray(d.values, dtype=float), size=n, p=weights / weights.sum())
    high = d.max if d.max is not None else MAX_SEQUENCE_TOKENS
    return np.clip(np.rint(values), d.min, high).astype(np.int64)


def _renewal(gaps: Callable[[int], np.ndarray], arrivals: Arrivals,
             first_at_zero: bool) -> np.ndarray:
    """Cumulative sums of gaps from ``gaps(n)`` until ``requests`` or ``duration_s``."""
    limit = arrivals.requests
    horizon = arrivals.duration_s
    if limit is not None:
        g = gaps(limit)
        if first_at_zero:
            g[0] = 0.0
        times = np.cumsum(g)
    else:
        assert horizon is not None  # (validation: requests, duration_s or both)
        parts: list[np.ndarray] = []
        last = 0.0
        while True:
            g = gaps(_CHUNK)
            if first_at_zero and not parts:
                g[0] = 0.0
            t = last + np.cumsum(g)
            parts.append(t)
            last = float(t[-1])
            if last > horizon:
                break
        times = np.concatenate(parts)
    if horizon is not None:
        times = times[times <= horizon]
    return times


def arrival_times(arrivals: Arrivals, rng: np.random.Generator) -> np.ndarray:
    """Arrival times of a synthetic process (not ``trace``)."""
    p = arrivals.process
    if p is ArrivalProcess.OFFLINE:
        return np.zeros(arrivals.requests or 0)
    if p is ArrivalProcess.CLOSED:
        assert arrivals.requests is not None and arrivals.concurrency is not None
        times = np.full(arrivals.requests, np.inf)
        times[:arrivals.concurrency] = 0.0
        return times
    if p is ArrivalProcess.POISSON and arrivals.varies_in_time:
        assert arrivals.duration_s is not None  # (validation: a window of the timeline)
        return nhpp_times(arrivals.rate_curve(), start_s=arrivals.start_s,
                          duration_s=arrivals.duration_s, requests=arrivals.requests, rng=rng)
    rate = arrivals.rate_per_s
    assert rate is not None
    if p is ArrivalProcess.POISSON:
        return _renewal(lambda n: rng.exponential(1.0 / rate, size=n), arrivals, False)
    if p is ArrivalProcess.GAMMA:
        assert arrivals.cv is not None
        shape = 1.0 / arrivals.cv**2
        return _renewal(lambda n: rng.gamma(shape, 1.0 / (rate * shape), size=n), arrivals,
                        False)
    if p is ArrivalProcess.CONSTANT:
        return _renewal(lambda n: np.full(n, 1.0 / rate), arrivals, True)
    raise ValueError(f"arrival process {p.value} is read from a file, not drawn")


def _from_trace(arrivals: Arrivals) -> Workload:
    assert arrivals.path is not None
    trace = read_trace(arrivals.path)
    times, prompts, outputs = trace.arrival_s, trace.prompt_tokens, trace.output_tokens
    if arrivals.rate_per_s is not None:
        if not times[-1] > times[0]:
            raise InputError(f"rate_per_s rescales a trace's arrival times to a mean rate, but "
                             f"all {len(times):,} rows of {arrivals.path} arrive at "
                             f"t = {times[0]:g} s: there is no rate to rescale (drop "
                             f"rate_per_s, or give the trace its arrival times)",
                             path="workload.arrivals.rate_per_s")
        observed = (len(times) - 1) / (times[-1] - times[0])
        times = times * (observed / arrivals.rate_per_s)
    keep = np.ones(len(times), dtype=bool)
    if arrivals.duration_s is not None:
        keep &= times <= arrivals.duration_s
    if arrivals.requests is not None:
        keep &= np.arange(len(times)) < arrivals.requests
    prefixes = None
    if trace.hash_ids is not None:
        n = int(keep.sum())
        prefixes = PromptPrefixes(
            system=np.zeros(n, dtype=np.int64), chain=np.arange(n, dtype=np.int64),
            hashes=[ids for ids, k in zip(trace.hash_ids, keep.tolist(), strict=True) if k],
            hash_block_tokens=arrivals.hash_block_tokens)
    return Workload(times[keep], prompts[keep], outputs[keep], prefixes)


def generate_workload(workload: InferenceWorkload, rng: np.random.Generator) -> Workload:
    """All requests of a run: times from ``workload.arrivals``, lengths from the
    distributions (or from the trace); with a shared system prompt or sessions, shaped by
    :func:`~simulator.engine.serving.prefixes.shape_prompts`."""
    arrivals = workload.arrivals
    if arrivals.process is ArrivalProcess.TRACE:
        return _from_trace(arrivals)
    times = arrival_times(arrivals, rng)
    if workload.shared_prefix is not None or workload.sessions is not None:
        return Workload(*shape_prompts(workload, times, rng, sample_tokens))
    n = len(times)
    return Workload(times, sample_tokens(workload.prompt_tokens, n, rng),
                    sample_tokens(workload.output_tokens, n, rng))
