"""Time-varying Poisson arrivals: the counts follow the integral of the rate.

Each expectation is the rate's integral worked by hand in the test; counts are checked
against the Poisson spread (the variance of a Poisson count equals its mean), with bounds
wide enough (4-5 standard deviations) that a correct sampler essentially never fails and a
wrong shape, phase or growth law does.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.engine.serving.arrivals import arrival_times
from simulator.engine.serving.nhpp import CHUNK
from simulator.profiles.inference import Arrivals

# a day: quiet night (0.2 of the peak), morning ramp, peak afternoon, evening
HOURLY = [0.2] * 7 + [0.4, 0.6, 0.8, 0.9, 1.0] + [1.0] * 6 + [0.9, 0.8, 0.6, 0.5, 0.3, 0.2]
DAY = 86_400.0
YEAR = 365.25 * DAY


def times_of(seed: int = 1, **fields) -> np.ndarray:
    arrivals = Arrivals(process="poisson", **fields)
    times = arrival_times(arrivals, np.random.default_rng(seed))
    assert np.all(np.diff(times) >= 0)
    return times


def test_every_hour_of_a_day_holds_its_share_of_the_arrivals():
    # rate 10/s x multiplier x 3600 s per hour: 7,200 at night, 36,000 at the peak
    times = times_of(rate_per_s=10, profile={"hourly": HOURLY}, duration_s="1 d")
    counts = np.bincount((times // 3600).astype(int), minlength=24)
    expected = 10 * np.asarray(HOURLY) * 3600
    z = (counts - expected) / np.sqrt(expected)
    assert np.all(np.abs(z) < 5), z
    # 24 standardized counts: their squares sum to a chi-square of 24 degrees of freedom
    # (mean 24, sd 6.9); a misplaced hour (a 7,200 vs 36,000 swap) would add thousands
    assert float(np.sum(z**2)) < 24 + 5 * math.sqrt(48)
    assert len(times) == pytest.approx(10 * sum(HOURLY) * 3600, rel=0.01)


def test_counts_over_many_seeds_have_poisson_mean_and_variance():
    # window 06:00-08:00: 3/s x (0.2 + 0.4) x 3600 = 6,480 expected
    expected = 3 * (0.2 + 0.4) * 3600
    counts = np.array([len(times_of(seed, rate_per_s=3, profile={"hourly": HOURLY},
                                    start_s="6 h", duration_s="2 h"))
                       for seed in range(200)])
    # mean within 5 standard errors (sqrt(6480/200) = 5.7); variance near the mean
    # (the sample variance of 200 Poisson counts has a relative sd of about 0.1)
    assert abs(counts.mean() - expected) < 5 * math.sqrt(expected / 200)
    assert counts.var(ddof=1) == pytest.approx(expected, rel=0.4)


def test_start_s_moves_the_run_along_the_clock():
    only_six_pm = [0.0] * 18 + [1.0] + [0.0] * 5
    times = times_of(rate_per_s=10, profile={"hourly": only_six_pm}, start_s="18 h",
                     duration_s="3 h")
    # every arrival lies in the first hour of the run (18:00-19:00 of the timeline)
    assert times.max() <= 3600 and len(times) == pytest.approx(36_000, abs=5 * 190)
    next_day = times_of(rate_per_s=10, profile={"hourly": only_six_pm}, start_s="1 d",
                        duration_s="1 d")
    assert np.all((next_day >= 18 * 3600) & (next_day <= 19 * 3600))


def test_a_weekly_profile_follows_the_days():
    weekday, weekend = [1.0] * 24, [0.25] * 24
    times = times_of(rate_per_s=1, profile={"weekly": [weekday] * 5 + [weekend] * 2},
                     duration_s="7 d")
    per_day = np.bincount((times // DAY).astype(int), minlength=7)
    # 86,400 a weekday, 21,600 a weekend day (Poisson sd 294 and 147)
    assert np.all(np.abs(per_day[:5] - 86_400) < 5 * 294)
    assert np.all(np.abs(per_day[5:] - 21_600) < 5 * 147)


def test_exponential_growth_matches_its_integral():
    # 0.01/s growing x1000 a year, the window days 200-210: the integral of
    # 0.01*1000^(t/Y) dt is 0.01*Y/ln(1000) * (1000^(t1/Y) - 1000^(t0/Y)), about 420,000
    t0, t1 = 200 * DAY, 210 * DAY
    expected = 0.01 * YEAR / math.log(1000) * (1000 ** (t1 / YEAR) - 1000 ** (t0 / YEAR))
    arrivals = Arrivals(process="poisson", rate_per_s=0.01, duration_s=10 * DAY, start_s=t0,
                        growth={"kind": "exponential", "factor": 1000, "over_s": "1 y"})
    assert arrivals.expected_requests == pytest.approx(expected, rel=1e-9)
    times = arrival_times(arrivals, np.random.default_rng(4))
    assert abs(len(times) - expected) < 5 * math.sqrt(expected)
    # the second half of the window carries 1000^(5 d / Y) = 1.099x the first half's
    first, second = np.sum(times < 5 * DAY), np.sum(times >= 5 * DAY)
    assert second / first == pytest.approx(1000 ** (5 * DAY / YEAR), rel=0.02)


def test_a_declining_line_stops_at_zero():
    # 4/s falling linearly to 0.5x over 10 h reaches 0 at 20 h: the integral over a day is
    # the triangle 4 * 20 h / 2 = 144,000, and nothing arrives after 20 h
    arrivals = Arrivals(process="poisson", rate_per_s=4, duration_s="1 d",
                        growth={"kind": "linear", "factor": 0.5, "over_s": "10 h"})
    assert arrivals.expected_requests == pytest.approx(4 * 20 * 3600 / 2)
    times = arrival_times(arrivals, np.random.default_rng(2))
    assert times.max() < 20 * 3600
    assert abs(len(times) - 144_000) < 5 * math.sqrt(144_000)


def test_a_growth_table_is_joined_by_straight_lines():
    # 1/s x (1 -> 3 over hours 1-3, flat 3 after, 1 before): over 0-5 h the multiplier's
    # integral is 1 h x 1 + 2 h x 2 + 2 h x 3 = 11 h, so 39,600 requests
    arrivals = Arrivals(process="poisson", rate_per_s=1, duration_s="5 h",
                        growth={"kind": "table", "points": [{"at_s": "1 h", "factor": 1},
                                                            {"at_s": "3 h", "factor": 3}]})
    assert arrivals.expected_requests == pytest.approx(11 * 3600)
    times = arrival_times(arrivals, np.random.default_rng(8))
    late = np.sum(times >= 3 * 3600)  # 2 h at 3/s: 21,600
    assert abs(late - 21_600) < 5 * math.sqrt(21_600)


def test_a_rate_trace_is_a_step_function_and_rate_per_s_rescales_it(tmp_path):
    trace = tmp_path / "rates.csv"
    # epoch times: shifted to 0; rates 2/s for 100 s, 6/s for 300 s, then 4/s onward
    trace.write_text("time_s,rate_per_s\n1700000000,2\n1700000100,6\n1700000400,4\n")
    arrivals = Arrivals(process="poisson", rate_trace=str(trace), duration_s=500)
    # 2*100 + 6*300 + 4*100 = 2,400
    assert arrivals.expected_requests == pytest.approx(2_400)
    curve = arrivals.rate_curve()
    np.testing.assert_allclose(curve.rate(np.array([0, 99.9, 100, 399, 450])),
                               [2, 2, 6, 6, 4])
    # the trace's mean over its span is (2*100 + 6*300)/400 = 5/s: rate_per_s 10 doubles it
    doubled = Arrivals(process="poisson", rate_trace=str(trace), rate_per_s=10,
                       duration_s=500)
    assert doubled.expected_requests == pytest.approx(4_800)
    counts = [len(arrival_times(doubled, np.random.default_rng(s))) for s in range(50)]
    assert abs(np.mean(counts) - 4_800) < 5 * math.sqrt(4_800 / 50)


def test_the_same_seed_gives_the_same_times_and_another_seed_others():
    fields = {"rate_per_s": 5, "profile": {"hourly": HOURLY}, "duration_s": "2 h",
              "growth": {"kind": "linear", "factor": 2, "over_s": "30 d"}}
    np.testing.assert_array_equal(times_of(3, **fields), times_of(3, **fields))
    assert not np.array_equal(times_of(3, **fields), times_of(4, **fields))


def test_requests_cap_a_window_that_holds_more():
    # 1,000/s for an hour expects 3.6M candidates, more than CHUNK per piece: the hour is
    # split; the cap of 300,000 is reached about 300 s in
    assert CHUNK < 1000 * 3600
    times = times_of(rate_per_s=1000, profile={"hourly": [1.0] * 24}, duration_s="1 h",
                     requests=300_000)
    assert len(times) == 300_000
    assert times[-1] == pytest.approx(300, abs=5 * math.sqrt(300_000) / 1000)


def test_a_run_under_a_daily_curve_serves_every_arrival_and_claims_no_steady_state():
    # 05:00-09:00 at a peak of 1/s: 0.2, 0.2, 0.4, 0.6 of it, 5,040 requests expected
    from simulator.simulate import simulate
    from tests.engine.test_serving_engine import scenario

    run = scenario({"arrivals": {"process": "poisson", "rate_per_s": 1.0, "start_s": "5 h",
                                 "duration_s": "4 h", "profile": {"hourly": HOURLY}}})
    result = simulate(run)
    n = result.inference.requests + result.inference.dropped + result.inference.unfinished
    assert n == len(result.requests.arrival_s)
    assert abs(n - 5_040) < 5 * math.sqrt(5_040)
    assert not result.steady.found
    assert "the offered load varies in time" in result.steady.basis
    # a note, not a warning to simulate more requests: more would not make it steady
    assert result.steady.basis in result.notes
    assert not any("steady" in warning for warning in result.warnings)
    # the last hour (0.6/s) carries three times the first's (0.2/s) arrivals
    arrival = np.asarray(result.requests.arrival_s)
    assert np.sum(arrival >= 3 * 3600) / np.sum(arrival < 3600) == pytest.approx(3, rel=0.15)
    # the time series shows the offered load: every arrival once, and the curve's shape
    ts = result.inference.time_series
    offered = np.asarray(ts.arrivals_per_s)
    assert float(np.sum(offered) * ts.bin_s) == pytest.approx(n, abs=1e-6)
    t = np.asarray(ts.t_s)
    first, last = offered[t + ts.bin_s <= 3600], offered[(t >= 3 * 3600) & (t < 4 * 3600)]
    assert first.mean() == pytest.approx(0.2, rel=0.15)
    assert last.mean() == pytest.approx(0.6, rel=0.15)
