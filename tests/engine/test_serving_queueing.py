"""The serving engine against queueing theory: M/D/1, Little's law, saturation.

With one sequence per batch and one-token answers every request is a single prefill
iteration of a fixed prompt: a deterministic server (M/D/1 under Poisson arrivals). Its
service time comes from the engine's own cost function.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from simulator.engine.serving import run_serving
from simulator.engine.serving.iteration_cost import Usage
from simulator.engine.serving.pools import build_pools as _pools
from simulator.loading import scenario_from_dict

PROMPT = 500


def scenario(workload: dict, seed: int = 0, model: str = "llama3.1-8b"):
    base = {"kind": "inference", "prompt_tokens": PROMPT, "output_tokens": 1}
    return scenario_from_dict({"name": "queueing", "hardware": "h100-sxm",
                               "cluster": {"accelerators": 1}, "model": model,
                               "workload": {**base, **workload}, "seed": seed})


def service_time() -> float:
    """One prefill iteration of the prompt, priced by the engine's cost model."""
    cost = _pools(scenario({"arrivals": {"process": "offline", "requests": 1}}))[0].cost
    return cost.step_time(Usage(), PROMPT, 0, PROMPT * (PROMPT + 1) // 2, 1, 0, 0)


def md1(rho: float, n: int, seed: int):
    s = service_time()
    return s, run_serving(scenario({"arrivals": {"process": "poisson", "rate_per_s": rho / s,
                                                 "requests": n},
                                    "batching": {"max_batch_size": 1}}, seed=seed))


def test_md1_mean_wait_matches_pollaczek_khinchine():
    rho, n = 0.5, 100_000
    s, outcome = md1(rho, n, seed=0)
    wait = outcome.requests.queue_s
    expected = rho * s / (2 * (1 - rho))  # Pollaczek-Khinchine, deterministic service
    assert np.mean(wait) == pytest.approx(expected, rel=0.03)
    # every request is served for exactly s, so the sojourn is wait + s
    np.testing.assert_allclose(outcome.requests.e2e_s, wait + s, rtol=0, atol=1e-9)


def test_md1_waits_follow_lindley_recursion_request_by_request():
    s, outcome = md1(0.8, 5_000, seed=1)
    arrival, wait = outcome.requests.arrival_s, outcome.requests.queue_s
    expected = np.zeros(len(arrival))
    for i in range(1, len(arrival)):
        expected[i] = max(0.0, expected[i - 1] + s - (arrival[i] - arrival[i - 1]))
    np.testing.assert_allclose(wait, expected, rtol=0, atol=1e-9)


def test_littles_law_holds():
    _, outcome = md1(0.7, 3_000, seed=2)
    little = outcome.result.inference.little_law
    assert little.relative_error < 1e-9
    assert little.mean_in_system > 0


def _chat(rate: float, requests: int):
    return run_serving(scenario({
        "arrivals": {"process": "poisson", "rate_per_s": rate, "requests": requests},
        "prompt_tokens": 512, "output_tokens": 64,
        "batching": {"max_batch_size": 16, "max_tokens_per_step": 2048}}, seed=4))


def test_throughput_saturates_and_tail_latency_grows_without_bound_past_it():
    rates = [5, 20, 80, 320, 1280]
    runs = [_chat(rate, 1_500) for rate in rates]
    throughput = [r.result.inference.requests_per_s for r in runs]
    # below saturation the replica keeps up with the arrivals
    assert throughput[0] == pytest.approx(rates[0], rel=0.1)
    # it does not fall as the load rises (a finite run's ramp-up costs a little), and levels
    # off past saturation
    assert all(b >= a * 0.95 for a, b in itertools.pairwise(throughput))
    assert throughput[-1] == pytest.approx(throughput[-2], rel=0.05)
    assert throughput[-1] < rates[-2] / 4
    # past saturation the queue only grows: p99 TTFT grows with the length of the run
    short, long = (_chat(rates[-2], n).result.inference.ttft_s.p99 for n in (750, 3_000))
    assert long > 3 * short
    for r in runs:
        assert r.result.inference.little_law.relative_error < 1e-9
