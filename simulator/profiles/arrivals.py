"""`workload.arrivals`: when a serving run's requests arrive and how many.

Open-loop processes at a rate (Poisson, gamma, constant), all at once (offline), a request
trace, or closed-loop clients. A Poisson rate may vary in time: a daily or weekly
``profile``, a ``growth`` trend, or a ``rate_trace`` of measured rates, on a timeline whose
``start_s`` is the run's t = 0 (:mod:`simulator.profiles.rate_shape`,
:mod:`simulator.profiles.rate_curve`). Those runs need ``duration_s``: the window of the
timeline simulated; ``requests`` may cap it further.
"""

from __future__ import annotations

import math
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from simulator.profiles.input_files import not_a_readable_file
from simulator.profiles.numbers import (
    MAX_REAL,
    MAX_REQUESTS,
    SPEC_CONFIG,
    GammaCv,
    PositiveFloat,
    PositiveInt,
    Requests,
)
from simulator.profiles.quantities import NonNegativeSeconds, Seconds
from simulator.profiles.rate_curve import RateCurve
from simulator.profiles.rate_shape import Growth, RateProfile
from simulator.profiles.rate_trace import read_rate_trace

YEAR_S = 365.25 * 86400.0
MAX_RATE_WINDOW_S = 10 * YEAR_S  # a time-varying run is cut at every hour: <= 87,660 pieces
MAX_TIMELINE_S = 100 * YEAR_S  # start_s + duration_s


class ArrivalProcess(StrEnum):
    """How requests arrive: open-loop processes at a rate, all at once, from a trace, or from
    closed-loop clients."""

    POISSON = "poisson"
    GAMMA = "gamma"  # renewal process with gamma inter-arrivals of the given cv (bursty if >1)
    CONSTANT = "constant"
    OFFLINE = "offline"  # every request at t=0 (MLPerf Offline)
    TRACE = "trace"
    CLOSED = "closed"  # `concurrency` clients, each sending its next request when one ends


class Arrivals(BaseModel):
    """When requests arrive and how many."""

    model_config = SPEC_CONFIG

    process: ArrivalProcess = ArrivalProcess.POISSON
    rate_per_s: PositiveFloat | None = Field(
        None, description="mean arrival rate; with profile or growth, the rate they multiply "
                          "(trace, rate_trace: rescales it to this mean rate)")
    cv: GammaCv | None = Field(None, description="gamma: coefficient of variation")
    path: str | None = Field(None, description="trace: CSV/JSONL file of requests (relative "
                                                "to the scenario file); see docs/serving.md")
    requests: Requests | None = Field(None, description="stop after this many arrivals")
    duration_s: Seconds | None = Field(
        None, description="stop arrivals after this time (a time-varying rate: the window "
                          "of its timeline simulated, from start_s)")
    concurrency: PositiveInt | None = Field(
        None, description="closed: clients, each with one request outstanding at a time "
                          "(benchmark clients' concurrency mode)")
    think_time_s: NonNegativeSeconds | None = Field(
        None, description="closed: pause between a client's request ending and its next "
                          "(default 0)")
    hash_block_tokens: PositiveInt = Field(
        512, description="trace: prompt tokens per id of a row's hash_ids (Mooncake's "
                         "traces: 512); a multiple of batching.kv_block_tokens")
    profile: RateProfile | None = Field(
        None, description="poisson: the rate's daily or weekly shape, multipliers of "
                          "rate_per_s (docs/serving.md, load that varies in time)")
    growth: Growth | None = Field(
        None, description="poisson: the rate's trend over the timeline (linear, exponential "
                          "or a table), a multiplier of the rate")
    rate_trace: str | None = Field(
        None, description="poisson: CSV of time_s,rate_per_s (relative to the scenario "
                          "file); rate_per_s rescales it to that mean rate")
    start_s: NonNegativeSeconds = Field(
        0.0, description="the timeline time at the run's t = 0 (with profile, growth or "
                         "rate_trace): simulate a window of a day, a week or a year")

    @field_validator("path", "rate_trace")
    @classmethod
    def _resolve_path(cls, value: str | None, info: ValidationInfo) -> str | None:
        """A relative trace path is relative to the scenario's directory."""
        if value is None:
            return None
        path = Path(value).expanduser()
        base = (info.context or {}).get("base_dir")
        if not path.is_absolute() and base:
            path = Path(base) / path
        problem = not_a_readable_file(path)
        if problem == "no such file":
            raise ValueError(f"no such trace file: {path}")
        if problem is not None:
            raise ValueError(f"trace file {path}: {problem}")
        return str(path.resolve())

    @model_validator(mode="after")
    def _parameters(self) -> Arrivals:
        p = self.process
        if p in (ArrivalProcess.POISSON, ArrivalProcess.GAMMA, ArrivalProcess.CONSTANT):
            if self.rate_per_s is None and self.rate_trace is None:
                raise ValueError(f"process: {p.value} needs rate_per_s")
            if self.requests is None and self.duration_s is None:
                raise ValueError(f"process: {p.value} needs requests or duration_s")
        problem = _time_varying_problem(self)
        if problem is not None:
            raise ValueError(problem)
        expected = self.expected_requests
        if expected is not None and expected > MAX_REQUESTS:
            raise ValueError(f"rate_per_s x duration_s = {expected:.3g} requests; at most "
                             f"{MAX_REQUESTS:,} are simulated (set requests, or a shorter "
                             f"duration)")
        if p is ArrivalProcess.GAMMA and self.cv is None:
            raise ValueError("process: gamma needs cv")
        if p is not ArrivalProcess.GAMMA and self.cv is not None:
            raise ValueError("cv is only used with process: gamma")
        if p is ArrivalProcess.TRACE and not self.path:
            raise ValueError("process: trace needs path")
        if p is not ArrivalProcess.TRACE and self.path:
            raise ValueError("path is only used with process: trace")
        if p is ArrivalProcess.OFFLINE and self.requests is None:
            raise ValueError("process: offline needs requests")
        if p is ArrivalProcess.CLOSED:
            if self.concurrency is None or self.requests is None:
                raise ValueError("process: closed needs concurrency and requests")
            if self.rate_per_s is not None or self.duration_s is not None:
                raise ValueError("process: closed takes no rate_per_s or duration_s: the "
                                 "clients send as fast as the system answers")
        elif self.concurrency is not None or self.think_time_s is not None:
            raise ValueError("concurrency and think_time_s are only used with process: closed")
        return self

    @property
    def expected_requests(self) -> float | None:
        """How many requests arrive (``requests``, else about rate x duration); None for a
        trace, whose length is known once it is read."""
        if self.varies_in_time and self.duration_s is not None:
            total = self.rate_curve().integral(self.start_s, self.start_s + self.duration_s)
            return total if self.requests is None else min(float(self.requests), total)
        if self.requests is not None:
            return float(self.requests)
        if self.rate_per_s is not None and self.duration_s is not None:
            return self.rate_per_s * self.duration_s
        return None

    @property
    def varies_in_time(self) -> bool:
        """Whether the rate follows a profile, a growth trend or a rate trace."""
        return (self.profile is not None or self.growth is not None
                or self.rate_trace is not None)

    def rate_curve(self) -> RateCurve:
        """The rate over the timeline (constant ``rate_per_s`` when nothing varies it); a
        rate trace with ``rate_per_s`` is rescaled to that time-weighted mean rate."""
        trace = read_rate_trace(self.rate_trace) if self.rate_trace is not None else None
        base = self.rate_per_s if self.rate_per_s is not None else 1.0
        if trace is not None and self.rate_per_s is not None:
            mean = trace.mean_rate()
            assert mean  # (validation: a rescaled trace has a span and a rate over it)
            base = self.rate_per_s / mean
        return RateCurve(base=base, profile=self.profile, trace=trace, growth=self.growth)


def _window_problem(arrivals: Arrivals) -> str | None:
    """Why a time-varying rate's window cannot be simulated (None when it can)."""
    duration, start = arrivals.duration_s, arrivals.start_s
    if duration is None:
        return ("a time-varying rate needs duration_s: the window of its timeline to "
                "simulate (requests may cap it further)")
    if duration > MAX_RATE_WINDOW_S:
        return (f"duration_s is {duration / YEAR_S:.3g} years; a time-varying rate is "
                f"simulated over at most {MAX_RATE_WINDOW_S / YEAR_S:.0f} years")
    if start + duration > MAX_TIMELINE_S:
        return (f"start_s + duration_s reaches {(start + duration) / YEAR_S:.3g} years into "
                f"the timeline; at most {MAX_TIMELINE_S / YEAR_S:.0f}")
    if arrivals.rate_trace is not None and arrivals.rate_per_s is not None:
        mean = read_rate_trace(arrivals.rate_trace).mean_rate()
        if not mean:
            return ("rate_per_s rescales a rate trace to that mean rate, but the trace has "
                    "no rate over its span (one row, or 0 until its last row): drop "
                    "rate_per_s to use its rates as they are")
    curve = arrivals.rate_curve()
    total, peak = curve.integral(start, start + duration), curve.peak(start, start + duration)
    if not (math.isfinite(total) and math.isfinite(peak) and peak <= MAX_REAL):
        return "the rate grows beyond any finite count within the window: check growth"
    if total <= 0:
        return ("the rate is 0 over the whole window (start_s to start_s + duration_s): no "
                "request would arrive")
    if arrivals.requests is None and total > MAX_REQUESTS:
        return (f"the rate's integral over duration_s is {total:.3g} requests; at most "
                f"{MAX_REQUESTS:,} are simulated: simulate a shorter window (start_s, "
                f"duration_s), scale rate_per_s and the replicas down together, or cap with "
                f"requests (docs/serving.md, load that varies in time)")
    return None


def _time_varying_problem(arrivals: Arrivals) -> str | None:
    """Why the time-varying fields cannot be used together as given (None when they can)."""
    if not arrivals.varies_in_time:
        if arrivals.start_s:
            return ("start_s places the run on the timeline of a time-varying rate: set "
                    "profile, growth or rate_trace")
        return None
    if arrivals.process is not ArrivalProcess.POISSON:
        return (f"profile, growth and rate_trace shape the rate of a Poisson process "
                f"(process: poisson), not process: {arrivals.process.value}")
    if arrivals.profile is not None and arrivals.rate_trace is not None:
        return ("profile and rate_trace both give the rate's shape over the clock: use one")
    return _window_problem(arrivals)


