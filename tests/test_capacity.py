"""The sustainable-rate search (simulator.studies.capacity): brackets, bisects, and finds
rates that are known by hand."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from simulator.errors import InputError
from simulator.loading import scenario_from_dict
from simulator.simulate import simulate
from simulator.studies.capacity import (
    DEFAULT_TOLERANCE,
    at_rate,
    max_sustainable_rate,
    scenario_capacity,
    slo_met,
)


def _threshold(limit: float):
    calls: list[float] = []

    def meets(rate: float) -> bool:
        calls.append(rate)
        return rate <= limit

    return meets, calls


@pytest.mark.parametrize("start", [0.5, 10.0, 37.3, 100.0, 5000.0])
def test_the_search_brackets_the_threshold_within_the_tolerance(start):
    meets, calls = _threshold(37.3)
    found = max_sustainable_rate(meets, start=start)
    assert found.rate_per_s is not None and found.missed_at_per_s is not None
    assert found.rate_per_s <= 37.3 < found.missed_at_per_s
    assert found.missed_at_per_s / found.rate_per_s <= 1 + DEFAULT_TOLERANCE
    assert len(found.probes) == len(calls)
    # bracketing by 2x takes at most log2(5000/37.3) + 1 = 8.1 probes from the farthest
    # start, then bisection of a factor 2 down to 2%: log2(ln 2 / ln 1.02) = 5.1 -> 6
    assert len(calls) <= 9 + 6


def test_the_search_is_deterministic():
    first = max_sustainable_rate(_threshold(3.3)[0], start=1.0)
    again = max_sustainable_rate(_threshold(3.3)[0], start=1.0)
    assert first == again


def test_a_slo_missed_at_every_rate_and_one_never_missed():
    never = max_sustainable_rate(lambda rate: False, start=8.0)
    assert never.rate_per_s is None and never.missed_at_per_s == pytest.approx(8.0 / 2**12)
    always = max_sustainable_rate(lambda rate: True, start=8.0)
    assert always.missed_at_per_s is None and always.rate_per_s == pytest.approx(8.0 * 2**12)


def test_bad_search_arguments_are_rejected():
    with pytest.raises(ValueError, match="positive rate"):
        max_sustainable_rate(lambda rate: True, start=0.0)
    with pytest.raises(ValueError, match="rel_tolerance"):
        max_sustainable_rate(lambda rate: True, start=1.0, rel_tolerance=0.0)


# ---- on a scenario -------------------------------------------------------------------------
def _scenario(**workload) -> dict:
    base = {"kind": "inference", "precision": "fp8", "replicas": 1,
            "arrivals": {"process": "poisson", "rate_per_s": 4.0, "requests": 400},
            "prompt_tokens": 512, "output_tokens": 64, "warmup_requests": 100,
            "slo": {"ttft_s": 0.5, "tpot_s": 0.05}}
    base.update(workload)
    return {"name": "capacity test", "hardware": "h100-sxm", "cluster": {"accelerators": 1},
            "model": "llama3.1-8b", "workload": base, "seed": 7}


def test_a_probe_keeps_the_arrival_window_and_the_seed():
    scenario = scenario_from_dict(_scenario())
    faster = at_rate(scenario, 10.0)
    # 400 requests at 4/s is a 100 s window; at 10/s it holds 1,000, warm-up 100 -> 250
    assert faster.workload.arrivals.rate_per_s == 10.0
    assert faster.workload.arrivals.requests == 1000
    assert faster.workload.warmup_requests == 250
    assert faster.seed == scenario.seed and faster.workload.slo == scenario.workload.slo


def _deterministic_queue(service_s: float):
    """A fake simulate: one server, constant arrivals, every request served alone in
    ``service_s`` (D/D/1). Request k arrives at k/r and starts at max(k/r, k·S), so its
    TTFT is S + k·max(0, S - 1/r): no request waits while r <= 1/S."""

    def run(scenario):
        w = scenario.workload
        rate, n = w.arrivals.rate_per_s, w.arrivals.requests
        k = np.arange(w.warmup_requests, n)
        ttft = service_s + k * max(0.0, service_s - 1.0 / rate)
        p99 = float(np.percentile(ttft, 99))
        met = p99 <= w.slo.ttft_s
        return SimpleNamespace(inference=SimpleNamespace(
            slo={"ttft_s": SimpleNamespace(met=met, value_s=p99)}))

    return run


def test_the_search_finds_the_saturation_rate_of_a_deterministic_queue():
    """Service 0.1 s, TTFT target 0.1001 s: any queueing at all breaks the target, so the
    highest sustainable rate is the server's saturation rate 1 / 0.1 s = 10 requests/s."""
    scenario = scenario_from_dict(_scenario(
        arrivals={"process": "constant", "rate_per_s": 4.0, "requests": 400},
        slo={"ttft_s": 0.1001}))
    found = scenario_capacity(scenario, _deterministic_queue(0.1))
    assert found.rate_per_s is not None and found.missed_at_per_s is not None
    assert found.rate_per_s <= 10.0 < found.missed_at_per_s
    assert found.missed_at_per_s / found.rate_per_s <= 1.02


def test_the_search_on_the_real_simulator_is_consistent_at_its_bracket():
    """The rate found meets the SLO when simulated, and the first rate above it does not."""
    scenario = scenario_from_dict(_scenario())
    found = scenario_capacity(scenario, simulate, rel_tolerance=0.05)
    assert found.rate_per_s is not None and found.missed_at_per_s is not None
    assert slo_met(simulate(at_rate(scenario, found.rate_per_s)))
    assert not slo_met(simulate(at_rate(scenario, found.missed_at_per_s)))
    assert found.missed_at_per_s / found.rate_per_s <= 1.05


@pytest.mark.parametrize(("workload", "message"), [
    ({"arrivals": {"process": "offline", "requests": 400}}, "arrivals.process: offline"),
    ({"slo": None}, "needs workload.slo"),
    ({"arrivals": {"process": "poisson", "rate_per_s": 4.0, "duration_s": 100.0}},
     "needs arrivals.requests"),
    ({"arrivals": {"process": "poisson", "rate_per_s": 4.0, "duration_s": 100.0,
                   "requests": 400, "profile": {"hourly": [1.0] * 24}}},
     "make it vary in time"),
])
def test_scenarios_without_a_rate_to_search_are_refused_with_the_reason(workload, message):
    scenario = scenario_from_dict(_scenario(**workload))
    with pytest.raises(InputError, match=message):
        scenario_capacity(scenario, simulate)
