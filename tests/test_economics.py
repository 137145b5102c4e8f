"""Economics arithmetic, checked against numbers worked out by hand."""

from __future__ import annotations

import pytest

from simulator import load_hardware
from simulator.economics.cost import (
    capital_recovery_factor,
    cost_per_million_tokens,
    run_cost,
)
from simulator.economics.power import MEMORY_POWER_WEIGHT, Activity, power_model
from simulator.profiles.cost import CostAssumptions

H100 = load_hardware("h100-sxm")  # idle 90 W, TDP 700 W, system 575 W, $2.99/h


def test_cloud_rent_by_hand():
    report = run_cost(H100, CostAssumptions(), 8, Activity(3600.0, 0.5, 0.0))
    assert report.cost_usd == pytest.approx(8 * 1.0 * 2.99)
    discounted = run_cost(H100, CostAssumptions(reserved_discount=0.25), 8, Activity(3600.0))
    assert discounted.cost_usd == pytest.approx(8 * 2.99 * 0.75)


def test_power_and_energy_by_hand():
    # device: 90 + 610 * 0.5 = 395 W; + 575 W system = 970 W IT; PUE 1.2 -> 1164 W
    report = run_cost(H100, CostAssumptions(pue=1.2), 8, Activity(3600.0, 0.5, 0.0))
    assert report.average_power_w == pytest.approx(8 * 1164.0)
    assert report.energy_kwh == pytest.approx(8 * 1.164)
    assert report.carbon_kg == pytest.approx(8 * 1.164 * 0.4)


def test_memory_bound_work_draws_less_than_compute_bound():
    model = power_model(H100, 1.0)
    compute = model.device_w(Activity(1.0, 1.0, 0.0))
    memory = model.device_w(Activity(1.0, 1.0, 1.0))
    assert compute == pytest.approx(700.0)
    assert memory == pytest.approx(90 + 610 * MEMORY_POWER_WEIGHT)
    assert model.device_w(Activity(1.0)) == pytest.approx(90.0)
    # half the time streaming memory at full bandwidth, idle otherwise
    assert model.device_w(Activity(1.0, 0.5, 0.5)) == pytest.approx(90 + 610 * 0.5 * 0.6)


def test_owned_cost_by_hand():
    a = CostAssumptions(mode="owned", depreciation_years=5, cost_of_capital=0.0,
                        facility_usd_per_kw_month=150, electricity_usd_per_kwh=0.10, pue=1.5)
    hours = 24 * 365.25  # one year
    report = run_cost(H100, a, 1, Activity(hours * 3600, 1.0, 0.0))
    assert report.breakdown_usd["capital"] == pytest.approx(50000 / 5)
    assert report.breakdown_usd["facility"] == pytest.approx((0.700 + 0.575) * 150 * 12)
    energy_kwh = (700 + 575) * 1.5 * hours / 1000
    assert report.energy_kwh == pytest.approx(energy_kwh)
    assert report.breakdown_usd["electricity"] == pytest.approx(energy_kwh * 0.10)
    assert report.cost_usd == pytest.approx(sum(report.breakdown_usd.values()))


def test_capital_recovery_factor():
    assert capital_recovery_factor(0.0, 4) == pytest.approx(0.25)
    # textbook: 8% over 5 years -> 0.25046
    assert capital_recovery_factor(0.08, 5) == pytest.approx(0.250456, rel=1e-5)


def test_doubling_electricity_changes_only_the_energy_share():
    base = CostAssumptions(mode="owned", electricity_usd_per_kwh=0.08)
    double = CostAssumptions(mode="owned", electricity_usd_per_kwh=0.16)
    act = Activity(86400.0, 0.7, 0.2)
    a, b = run_cost(H100, base, 64, act), run_cost(H100, double, 64, act)
    assert b.breakdown_usd["electricity"] == pytest.approx(2 * a.breakdown_usd["electricity"])
    assert b.breakdown_usd["capital"] == a.breakdown_usd["capital"]
    assert b.breakdown_usd["facility"] == a.breakdown_usd["facility"]
    assert b.energy_kwh == a.energy_kwh


def average_activity(spans: list[Activity]) -> Activity:
    """One span equivalent to a sequence of spans (time-weighted busy fractions)."""
    total = sum(s.duration_s for s in spans)
    compute = sum(s.compute_busy * s.duration_s for s in spans) / total
    memory = sum(s.memory_busy * s.duration_s for s in spans) / total
    return Activity(total, compute, memory)


def test_energy_equals_the_integral_of_power_over_a_time_series():
    spans = [Activity(10.0, 0.9, 0.1), Activity(30.0, 0.8, 0.7), Activity(5.0, 0.0, 0.0)]
    model = power_model(H100, 1.3)
    integral = sum(model.facility_w(s) * s.duration_s for s in spans)
    assert model.energy_j(spans, 1) == pytest.approx(integral)
    # power is linear in the busy fractions, so the time-averaged activity gives the same
    assert model.energy_j([average_activity(spans)], 1) == pytest.approx(integral)


def test_rent_only_parts_need_a_purchase_price_when_owned():
    from simulator.errors import InputError

    with pytest.raises(InputError, match="rent-only"):
        run_cost(load_hardware("tpu-v5p"), CostAssumptions(mode="owned"), 4, Activity(10.0))


def test_cost_per_million_tokens():
    assert cost_per_million_tokens(10.0, 0, 1e6) == pytest.approx(10.0)
    assert cost_per_million_tokens(10.0, 1e6, 1e6) == pytest.approx(5.0)  # blended
    assert cost_per_million_tokens(10.0, 1e6, 1e6, input_weight=0.25) == pytest.approx(8.0)


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_activity_rejects_impossible_fractions(bad):
    with pytest.raises(ValueError, match="within"):
        Activity(1.0, bad, 0.0)
