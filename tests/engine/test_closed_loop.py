"""Closed-loop clients (``arrivals.process: closed``): a fixed number of clients, each with
one request outstanding, as benchmark clients run in their concurrency mode.

Hand-derived expectations: with one client the next request arrives exactly when the last
one ends (plus the think time); the number of requests in the system never exceeds the
clients; and the interactive response-time law X = N / (R + Z) holds over the run
(Denning and Buzen 1978: throughput X, clients N, mean response R, think time Z).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from simulator.engine.serving import run_serving
from simulator.errors import InputErrors
from simulator.loading import scenario_from_dict
from tests.engine.test_serving_engine import LOGNORMAL_OUTPUT, LOGNORMAL_PROMPT, scenario


def closed(concurrency: int, requests: int, think: float | None = None, **workload):
    arrivals = {"process": "closed", "concurrency": concurrency, "requests": requests}
    if think is not None:
        arrivals["think_time_s"] = think
    return scenario({"arrivals": arrivals, **workload})


def test_one_client_sends_each_request_when_the_last_one_ends():
    outcome = run_serving(closed(1, 20))
    r = outcome.requests
    assert r.arrival_s[0] == 0.0
    np.testing.assert_array_equal(r.arrival_s[1:], r.finish_s[:-1])
    assert outcome.result.inference.requests == 20


def test_think_time_separates_a_clients_requests():
    outcome = run_serving(closed(1, 10, think=2.5))
    r = outcome.requests
    np.testing.assert_allclose(r.arrival_s[1:] - r.finish_s[:-1], 2.5, rtol=0, atol=1e-9)


def test_never_more_requests_in_the_system_than_clients():
    r = run_serving(closed(8, 120)).requests
    events = sorted([(t, +1) for t in r.arrival_s] + [(t, -1) for t in r.finish_s],
                    key=lambda e: (e[0], e[1]))  # at a tie the leaving request goes first
    in_system = np.cumsum([d for _, d in events])
    assert in_system.max() == 8
    assert in_system.min() >= 0


@pytest.mark.parametrize("think", [0.0, 0.7])
def test_every_later_request_is_sent_by_a_request_ending(think):
    """Each request after the first round arrives the think time after some request ended,
    one arrival per ending (multisets of times, matched in order)."""
    r = run_serving(closed(6, 90, think=think)).requests
    sent_at = Counter(np.round(r.arrival_s[6:] - think, 9).tolist())
    ended_at = Counter(np.round(r.finish_s, 9).tolist())
    assert sent_at <= ended_at  # (Counter inclusion: with multiplicity)
    assert sum(sent_at.values()) == 84


@pytest.mark.parametrize(("clients", "think"), [(4, 0.0), (16, 0.0), (8, 1.0)])
def test_the_interactive_response_time_law(clients, think):
    """Until the last request is sent every client is either waiting for an answer or
    thinking, so throughput over that time times (R + Z) is N (edge effects: ~1%)."""
    r = run_serving(closed(clients, 40 * clients, think=think)).requests
    arrival, finish = r.arrival_s, r.finish_s
    last = arrival.max()
    throughput = np.sum(finish <= last) / last
    response = float(np.mean(finish - arrival))
    assert throughput * (response + think) == pytest.approx(clients, rel=0.03)


def test_as_many_clients_as_requests_is_the_offline_run():
    a = run_serving(closed(50, 50)).requests
    b = run_serving(scenario({"arrivals": {"process": "offline", "requests": 50}})).requests
    for name in ("arrival_s", "first_token_s", "finish_s"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_a_seed_fixes_a_closed_loop_run():
    a, b = run_serving(closed(6, 60)).requests, run_serving(closed(6, 60)).requests
    np.testing.assert_array_equal(a.finish_s, b.finish_s)


def test_jumping_gives_the_same_closed_loop_results_as_single_stepping():
    s = closed(6, 80, think=0.3)
    a, b = run_serving(s).requests, run_serving(s, jump=False).requests
    for name in ("arrival_s", "first_token_s", "finish_s"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


@pytest.mark.parametrize(("arrivals", "message"), [
    ({"process": "closed", "requests": 10}, "needs concurrency and requests"),
    ({"process": "closed", "concurrency": 4}, "needs concurrency and requests"),
    ({"process": "closed", "concurrency": 4, "requests": 10, "rate_per_s": 3},
     "takes no rate_per_s"),
    ({"process": "poisson", "rate_per_s": 3, "requests": 10, "concurrency": 4},
     "only used with process: closed"),
])
def test_closed_loop_parameters_are_checked(arrivals, message):
    with pytest.raises(InputErrors, match=message):
        scenario_from_dict({"name": "x", "hardware": "h100-sxm", "cluster": {"accelerators": 1},
                            "model": "llama3.1-8b",
                            "workload": {"kind": "inference", "arrivals": arrivals,
                                         "prompt_tokens": LOGNORMAL_PROMPT,
                                         "output_tokens": LOGNORMAL_OUTPUT}})
