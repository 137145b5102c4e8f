"""Whether a fleet keeps up (simulator.studies.keep_up): the backlog's trend on synthetic
series, and the verdict on a run's SLO and backlog."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from simulator.studies.keep_up import KEEP_UP, backlog_growth, judge


def test_a_linear_backlog_grows_at_its_slope():
    t = np.arange(0.0, 10.0, 0.5)  # 20 bins
    assert backlog_growth(t, 5.0 + 3.0 * t, 0.0, 10.0) == pytest.approx(3.0)


def test_a_ramp_that_levels_off_is_read_only_where_it_is_level():
    """Rising 100/s over the first 4 s, then flat at 400: the second half of [0, 10) is
    [5, 10), all flat, so the slope is 0 although a fit over the whole span is not."""
    t = np.arange(0.0, 10.0, 0.25)
    n = np.minimum(100.0 * t, 400.0)
    assert backlog_growth(t, n, 0.0, 10.0) == pytest.approx(0.0, abs=1e-12)
    assert np.polyfit(t, n, 1)[0] > 20.0


def test_alternating_noise_on_a_level_has_a_small_slope():
    """+-10 around 1,000 over 40 bins of 1 s: noise, a slope of a small fraction of 1/s."""
    t = np.arange(0.0, 40.0, 1.0)
    n = 1000.0 + 10.0 * (-1.0) ** np.arange(40)
    # second half: x = 20..39, y alternates +10 (even x) and -10 (odd x): each pair
    # (x, x+1) adds 10 * (x - xbar) - 10 * (x + 1 - xbar) = -10; ten pairs: -100;
    # sum (x - xbar)^2 over 20 consecutive integers = (20^3 - 20) / 12 = 665
    assert backlog_growth(t, n, 0.0, 40.0) == pytest.approx(-100.0 / 665.0)


def test_too_few_bins_give_no_slope():
    t = np.arange(0.0, 6.0, 1.0)  # the second half of [0, 6) holds 3 bins
    assert backlog_growth(t, t, 0.0, 6.0) is None


def _result(*, met: bool, t: np.ndarray, n: np.ndarray, steady: tuple[float, float] | None):
    target = SimpleNamespace(met=met, value_s=2.5 if not met else 1.0, target_s=2.0,
                             percentile=99)
    series = SimpleNamespace(t_s=list(t), in_system=list(n), arrivals_per_s=[1.0] * len(t))
    window = (SimpleNamespace(found=True, start_s=steady[0], end_s=steady[1]) if steady
              else SimpleNamespace(found=False))
    return SimpleNamespace(inference=SimpleNamespace(slo={"ttft_s": target},
                                                     time_series=series),
                           steady=window, time_s=float(t[-1]))


def test_a_missed_slo_fails_and_says_which_target():
    t = np.arange(0.0, 30.0, 0.5)
    verdict = judge(_result(met=False, t=t, n=0 * t, steady=(5.0, 30.0)), 100.0)
    assert not verdict.sustainable and not verdict.meets
    assert verdict.reason == "misses the SLO: p99 TTFT 2.5 s > 2 s"


def test_a_percentile_under_its_target_can_miss_when_requests_did_not_finish():
    """p99 TPOT reads 76 ms against 80 ms, yet only 98.7% of requests are within it: the
    unfinished ones count outside, so the target is missed and the reason says why."""
    t = np.arange(0.0, 30.0, 0.5)
    result = _result(met=False, t=t, n=0 * t, steady=(5.0, 30.0))
    result.inference.slo = {"tpot_s": SimpleNamespace(met=False, value_s=0.076, target_s=0.08,
                                                      percentile=99, attainment=0.987)}
    verdict = judge(result, 100.0)
    assert not verdict.meets
    assert verdict.reason == ("misses the SLO: p99 TPOT 0.076 s, but 98.7% within 0.08 s "
                              "(unfinished requests count outside)")


def test_a_met_slo_with_a_growing_backlog_is_not_settled_and_says_how_fast():
    """100 req/s offered, the backlog grows 2 req/s (2% > KEEP_UP = 1%)."""
    t = np.arange(0.0, 30.0, 0.5)
    verdict = judge(_result(met=True, t=t, n=500 + 2.0 * t, steady=(5.0, 30.0)), 100.0)
    assert verdict.meets and not verdict.settled and not verdict.sustainable
    assert verdict.growth_per_s == pytest.approx(2.0)
    assert "the backlog grows at 2 req/s (2.0% of the rate)" in verdict.reason


def test_growth_within_the_allowance_keeps_up():
    t = np.arange(0.0, 30.0, 0.5)
    slow = KEEP_UP * 100.0 * 0.9  # 0.9 req/s at 100 req/s
    verdict = judge(_result(met=True, t=t, n=500 + slow * t, steady=(5.0, 30.0)), 100.0)
    assert verdict.sustainable and "keeps up" in verdict.reason


def test_without_a_steady_window_the_trend_is_read_over_the_arrivals():
    """No steady window: the span is the bins with arrivals, [0, 29.5]; its second half
    from 14.75 s holds a backlog rising 5 req/s: not settled."""
    t = np.arange(0.0, 30.0, 0.5)
    verdict = judge(_result(met=True, t=t, n=5.0 * t, steady=None), 100.0)
    assert verdict.growth_per_s == pytest.approx(5.0) and not verdict.settled


def test_a_level_backlog_without_a_steady_window_is_no_verdict_yet():
    """SLO met and the backlog level over the arrivals, but no steady window: settled (the
    backlog does not grow) yet not steady, so not sustainable and not conclusive."""
    t = np.arange(0.0, 30.0, 0.5)
    verdict = judge(_result(met=True, t=t, n=0 * t + 400.0, steady=None), 100.0)
    assert verdict.meets and verdict.settled and not verdict.steady
    assert not verdict.sustainable and not verdict.conclusive
    assert verdict.growth_per_s == pytest.approx(0.0, abs=1e-12)
    assert "without a steady window" in verdict.reason


def test_a_verdict_is_conclusive_when_missed_or_steady_and_level():
    t = np.arange(0.0, 30.0, 0.5)
    assert judge(_result(met=False, t=t, n=0 * t, steady=None), 100.0).conclusive
    level = judge(_result(met=True, t=t, n=0 * t + 400.0, steady=(5.0, 30.0)), 100.0)
    assert level.conclusive and level.steady and level.sustainable
    growing = judge(_result(met=True, t=t, n=5.0 * t, steady=(5.0, 30.0)), 100.0)
    assert not growing.conclusive
