"""A guard on simulation cost that is not a timed test: the engines' event counts.

Wall time depends on the machine and its neighbours; the number of SimPy events an engine
processes for a fixed scenario does not. A change that makes the serving engine step
through decode iterations again, or gives every pipeline pass a few more events, multiplies
these counts and fails here. The counts are recorded below; when a change lowers one by
more than the tolerance, record the new count (so the guard stays tight), and say why in
the commit. The benchmarks (``python benchmarks/run_all.py``) give the seconds.
"""

from __future__ import annotations

import pytest

from simulator.engine.serving import run_serving
from simulator.engine.training.planner import build_plan
from simulator.engine.training.step import simulate_step
from simulator.loading import load_scenario
from tests.conftest import ROOT
from tests.engine.test_serving_engine import CASES, scenario

TOLERANCE = 0.10  # relative: event counts are deterministic, this leaves room for small changes

# (SimPy events, engine steps) of the serving engine on fixed, seeded scenarios
SERVING = {
    "chat": (1203, 701),  # 300 Poisson requests, one Llama 3.1 8B replica
    "bursty, round robin": (907, 509),  # 300 gamma (cv 3) requests, two replicas
}
DISAGGREGATED = (10676, 4271)  # scenarios/llama3.1-70b-h100-disaggregated.yaml
# SimPy events of one training step
TRAINING = {
    "llama3.1-405b-h100-training": 16116,  # 4,096 passes: TP8 PP16 VPP8, 16 microbatches
    "deepseek-v3-h800-training": 13723,
}


def _close(got: int, recorded: int) -> bool:
    return abs(got - recorded) <= TOLERANCE * recorded


@pytest.mark.parametrize("name", SERVING)
def test_serving_event_counts_stay_where_they_were(name):
    case = CASES[name]
    outcome = run_serving(scenario(case, accelerators=case.get("replicas", 1)))
    got = (outcome.events, outcome.result.inference.engine_steps)
    assert all(_close(g, r) for g, r in zip(got, SERVING[name], strict=True)), \
        f"(events, engine steps) {got} vs recorded {SERVING[name]}"


def test_disaggregated_serving_event_counts_stay_where_they_were():
    outcome = run_serving(load_scenario(ROOT / "scenarios"
                                        / "llama3.1-70b-h100-disaggregated.yaml"))
    got = (outcome.events, outcome.result.inference.engine_steps)
    assert all(_close(g, r) for g, r in zip(got, DISAGGREGATED, strict=True)), \
        f"(events, engine steps) {got} vs recorded {DISAGGREGATED}"


@pytest.mark.parametrize("stem", TRAINING)
def test_training_step_event_counts_stay_where_they_were(stem):
    plan = build_plan(load_scenario(ROOT / "scenarios" / f"{stem}.yaml"))
    events = simulate_step(plan.step).events
    assert _close(events, TRAINING[stem]), f"{events} events vs recorded {TRAINING[stem]}"


def test_serving_events_grow_with_requests_not_tokens():
    """Ten times the output tokens per request, about the same events."""
    def events(output_tokens: int) -> int:
        s = scenario({"arrivals": {"process": "poisson", "rate_per_s": 2, "requests": 100},
                      "output_tokens": output_tokens})
        return run_serving(s).events

    assert events(2000) < 1.3 * events(200)
