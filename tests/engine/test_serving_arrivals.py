"""Arrival processes and token lengths: statistically right, seeded, bounded as asked."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.engine.serving.arrivals import arrival_times, generate_workload, sample_tokens
from simulator.profiles.inference import Arrivals, InferenceWorkload, TokenDistribution

N = 200_000


def gaps(process: str, **fields) -> np.ndarray:
    times = arrival_times(Arrivals(process=process, requests=N, **fields),
                          np.random.default_rng(1))
    assert len(times) == N and np.all(np.diff(times) >= 0)
    return np.diff(times)


def cv(x: np.ndarray) -> float:
    return float(np.std(x) / np.mean(x))


def test_poisson_rate_and_exponential_gaps():
    g = gaps("poisson", rate_per_s=8.0)
    assert 1 / np.mean(g) == pytest.approx(8.0, rel=0.01)
    assert cv(g) == pytest.approx(1.0, rel=0.01)
    # memoryless: P(gap > 2/rate) = e^-2
    assert np.mean(g > 2 / 8.0) == pytest.approx(np.exp(-2), rel=0.02)


@pytest.mark.parametrize("target_cv", [0.5, 2.0, 4.0])
def test_gamma_rate_and_coefficient_of_variation(target_cv):
    g = gaps("gamma", rate_per_s=12.0, cv=target_cv)
    assert 1 / np.mean(g) == pytest.approx(12.0, rel=0.02)
    assert cv(g) == pytest.approx(target_cv, rel=0.03)


def test_constant_and_offline():
    times = arrival_times(Arrivals(process="constant", rate_per_s=4, requests=5),
                          np.random.default_rng(0))
    np.testing.assert_allclose(times, [0, 0.25, 0.5, 0.75, 1.0])
    offline = arrival_times(Arrivals(process="offline", requests=7), np.random.default_rng(0))
    np.testing.assert_array_equal(offline, np.zeros(7))


def test_duration_bounds_the_arrivals_and_requests_cap_them():
    rng = np.random.default_rng(3)
    times = arrival_times(Arrivals(process="poisson", rate_per_s=100, duration_s=50), rng)
    assert times[-1] <= 50 and len(times) == pytest.approx(5000, rel=0.05)
    both = arrival_times(Arrivals(process="poisson", rate_per_s=100, duration_s=50,
                                  requests=1000), rng)
    assert len(both) == 1000
    short = arrival_times(Arrivals(process="poisson", rate_per_s=100, duration_s=1,
                                   requests=1000), rng)
    assert len(short) < 200 and short[-1] <= 1


def dist(**fields) -> TokenDistribution:
    return TokenDistribution(**fields)


def test_token_distributions():
    rng = np.random.default_rng(5)
    assert np.all(sample_tokens(300, 10, rng) == 300)
    assert np.all(sample_tokens(dist(dist="fixed", value=7), 10, rng) == 7)
    u = sample_tokens(dist(dist="uniform", low=10, high=20), N, rng)
    assert u.min() == 10 and u.max() == 20 and np.mean(u) == pytest.approx(15, rel=0.01)
    n = sample_tokens(dist(dist="normal", mean=500, std=50), N, rng)
    assert np.mean(n) == pytest.approx(500, rel=0.01) and np.std(n) == pytest.approx(50, rel=0.02)
    # lognormal: mean and std are of the lengths themselves
    ln = sample_tokens(dist(dist="lognormal", mean=1000, std=600), N, rng)
    assert np.mean(ln) == pytest.approx(1000, rel=0.01)
    assert np.std(ln) == pytest.approx(600, rel=0.03)
    e = sample_tokens(dist(dist="empirical", values=(10, 100), weights=(3, 1)), N, rng)
    assert np.mean(e == 10) == pytest.approx(0.75, rel=0.01)
    assert e.dtype == np.int64


def test_lengths_are_clamped_to_min_and_max():
    rng = np.random.default_rng(6)
    x = sample_tokens(dist(dist="normal", mean=100, std=300, min=20, max=150), N, rng)
    assert x.min() == 20 and x.max() == 150


def test_a_seed_fixes_the_workload():
    w = InferenceWorkload(kind="inference",
                          arrivals=Arrivals(process="poisson", rate_per_s=3, requests=50),
                          prompt_tokens=dist(dist="lognormal", mean=800, std=300),
                          output_tokens=dist(dist="uniform", low=1, high=500))
    a = generate_workload(w, np.random.default_rng(11))
    b = generate_workload(w, np.random.default_rng(11))
    c = generate_workload(w, np.random.default_rng(12))
    for name in ("arrival_s", "prompt_tokens", "output_tokens"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert not np.array_equal(getattr(a, name), getattr(c, name))


def test_lengths_without_a_max_stop_at_the_longest_request_a_run_takes():
    """A lognormal at the largest allowed cv draws lengths far beyond what a request may hold
    (and beyond int64); without a ``max`` they are clipped to MAX_SEQUENCE_TOKENS."""
    from simulator.profiles.numbers import MAX_SEQUENCE_TOKENS
    rng = np.random.default_rng(0)
    d = dist(dist="lognormal", mean=MAX_SEQUENCE_TOKENS // 100, std=MAX_SEQUENCE_TOKENS)
    lengths = sample_tokens(d, 10_000, rng)
    assert lengths.max() == MAX_SEQUENCE_TOKENS
    assert lengths.min() >= 1
