"""simulate() prices the run it simulated: cost and energy follow from time and activity."""

from __future__ import annotations

import pytest

from simulator import load_scenario
from simulator.simulate import simulate
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def serving():
    return simulate(load_scenario(ROOT / "scenarios" / "llama3.1-8b-h100-serving.yaml",
                                  ["workload.arrivals.requests=200"]))


def test_cloud_cost_is_rent_for_the_simulated_time(serving):
    hours = serving.time_s / 3600
    assert serving.cost_usd == pytest.approx(1 * hours * 2.99)
    assert serving.cost.usd_per_accelerator_hour == pytest.approx(2.99)


def test_energy_is_average_power_times_time(serving):
    assert serving.energy_kwh == pytest.approx(serving.average_power_w * serving.time_s / 3.6e6)
    # between idle and full power of one H100 plus its system share, times PUE 1.2
    assert 1.2 * (90 + 575) <= serving.average_power_w <= 1.2 * (700 + 575)


def test_cost_per_million_tokens_is_blended_over_prompt_and_output(serving):
    m = serving.inference
    tokens = m.total_tokens_per_s * m.duration_s
    assert serving.cost_per_million_tokens_usd == pytest.approx(serving.cost_usd / tokens * 1e6)
    assert serving.tokens_per_kwh == pytest.approx(tokens / serving.energy_kwh)


def test_owned_mode_changes_only_the_money():
    path = ROOT / "scenarios" / "llama3.1-8b-h100-serving.yaml"
    small = ["workload.arrivals.requests=200"]
    cloud = simulate(load_scenario(path, small))
    owned = simulate(load_scenario(path, [*small, "cost.mode=owned"]))
    assert owned.time_s == cloud.time_s and owned.energy_kwh == cloud.energy_kwh
    assert set(owned.cost.breakdown_usd) == {"capital", "facility", "electricity"}
    assert owned.cost_usd != cloud.cost_usd
