"""An autoscaled run's cost over time: the bins' widths and edges, the step function's
integral by hand, the run's cost spread by driver (by hand, and summing to the run's), and
tokens, requests and SLO misses that add up to the run's."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.economics.bin_cost import idle_energy_share, spread_cost
from simulator.economics.power import PowerModel
from simulator.engine.serving.scale_bins import bin_edges, bin_width, step_integral
from simulator.simulate import simulate
from tests.engine.test_autoscaling import step_scenario


@pytest.mark.parametrize(("span_s", "width"), [
    (600, 60),  # 10 one-minute bins
    (2160, 60),  # 36 minutes: 36 bins
    (3600, 300),  # an hour: 60 minutes would be 60 bins (> 36), so 5-minute bins
    (86400, 3600),  # a day: 48 half-hours are too many, 24 hours
    (7 * 86400, 21600),  # a week: 16,800 s a bin at least, so 6 hours
    (100 * 86400, 3 * 86400),  # past 36 days, whole days: 100 / 36 -> 3
])
def test_the_bin_width_is_the_roundest_with_at_most_36_bins(span_s, width):
    assert bin_width(span_s) == width


def test_the_edges_fall_on_multiples_of_the_width_and_a_short_tail_joins():
    assert bin_edges(0.1, 3601.5, 300).tolist() == [0.1, *range(300, 3600, 300), 3601.5]
    assert bin_edges(5.0, 1000.0, 300).tolist() == [5, 300, 600, 900, 1000]  # 100 s >= 30
    assert bin_edges(5.0, 920.0, 300).tolist() == [5, 300, 600, 920]  # 20 s < 30 joins
    assert bin_edges(0.0, 100.0, 300).tolist() == [0, 100]


def test_the_step_functions_integral_by_hand():
    # 1 replica from 0, 3 from 10 s, 2 from 25 s; bins [0, 10, 20, 40]
    got = step_integral([0.0, 10.0, 25.0], [1, 3, 2], np.array([0.0, 10.0, 20.0, 40.0]))
    assert got.tolist() == pytest.approx([10.0, 30.0, 3 * 5 + 2 * 15])


def test_the_cost_is_spread_by_its_drivers_by_hand():
    durations = np.array([100.0, 300.0])
    replicas = np.array([100.0, 900.0])  # 1 replica, then 3
    busy = np.array([0.0, 300.0])
    # rent by replica-seconds: 10% and 90%
    assert spread_cost({"rent": 10.0}, durations=durations, replica_seconds=replicas,
                       busy_s=busy, idle_share=0.5).tolist() == pytest.approx([1.0, 9.0])
    # capital by time (25%, 75%); electricity 40% idle (by time) and 60% by busy time
    # (all in the second bin): 8 x (0.4 x 0.25) = 0.8 and 8 x (0.4 x 0.75 + 0.6) = 7.2
    got = spread_cost({"capital": 4.0, "electricity": 8.0}, durations=durations,
                      replica_seconds=replicas, busy_s=busy, idle_share=0.4)
    assert got.tolist() == pytest.approx([1.0 + 0.8, 3.0 + 7.2])
    # 2 devices idle at 100 W + 50 W system, PUE 1.2, for 1 h: 0.36 kWh of a run's 0.72
    power = PowerModel(idle_w=100.0, tdp_w=700.0, system_w=50.0, pue=1.2)
    assert idle_energy_share(power, devices=2, time_s=3600, energy_kwh=0.72) == \
        pytest.approx(0.5)


@pytest.fixture(scope="module")
def stepped():
    return simulate(step_scenario())


def test_the_bins_add_up_to_the_run(stepped):
    m, a = stepped.inference, stepped.inference.autoscaling
    bins = a.bins
    assert a.bin_s == 300 and len(bins) == 12  # an hour and the drain, in 5-minute bins
    assert bins[0].start_s == pytest.approx(min(stepped.requests.arrival_s))
    assert bins[-1].end_s == pytest.approx(bins[0].start_s + m.duration_s)
    assert sum(b.cost_usd for b in bins) == pytest.approx(stepped.cost_usd, rel=1e-12)
    assert sum(b.replica_seconds for b in bins) == pytest.approx(a.replica_seconds)
    tokens = sum(b.prompt_tokens + b.output_tokens for b in bins)
    assert tokens == pytest.approx(m.total_tokens_per_s * m.duration_s, rel=1e-12)
    assert sum(b.arrived for b in bins) == m.arrived
    assert sum(b.slo_missed for b in bins) == a.slo_missed
    assert sum(b.arrived_during_scale_up for b in bins) == a.arrived_during_scale_up
    assert sum(b.slo_missed_during_scale_up for b in bins) == a.slo_missed_during_scale_up
    # the time series' busy device-seconds are the replicas' own (one device each)
    busy = sum(r.busy * m.duration_s * r.devices for r in m.per_replica)
    assert sum(b.device_busy_s for b in bins) == pytest.approx(busy, rel=1e-9)


def test_a_rented_bin_costs_its_replica_hours_and_the_scale_up_shows(stepped):
    rate = stepped.cost.usd_per_accelerator_hour
    bins = stepped.inference.autoscaling.bins
    for b in bins:
        assert b.cost_usd == pytest.approx(b.replica_seconds / 3600 * rate, rel=1e-9)
        weighted = b.output_tokens + b.prompt_tokens  # input_token_weight 1
        assert b.usd_per_million_tokens == pytest.approx(b.cost_usd / weighted * 1e6)
    # the step up at 1,200 s: the misses during the scale-up are all in the 1,200-1,500 bin
    rise = next(b for b in bins if b.start_s == 1200)
    assert rise.slo_missed_during_scale_up == stepped.inference.autoscaling.\
        slo_missed_during_scale_up > 0
    assert rise.slo_attainment < 1
    # the quiet bins after the drain: one replica at 4/s costs more per token than the
    # busy pool at 40/s
    assert bins[-2].usd_per_million_tokens > 1.2 * rise.usd_per_million_tokens


def test_an_owned_fleet_spreads_its_capital_by_time_and_power_by_work():
    from simulator.profiles.cost import CostAssumptions

    scenario = step_scenario(report_bin_s=600)
    owned = simulate(scenario.model_copy(update={"cost": CostAssumptions(mode="owned")}))
    bins, parts = owned.inference.autoscaling.bins, owned.cost.breakdown_usd
    assert set(parts) == {"capital", "facility", "electricity"}
    assert owned.inference.autoscaling.bin_s == 600 and len(bins) == 6
    assert sum(b.cost_usd for b in bins) == pytest.approx(owned.cost_usd, rel=1e-12)
    # the owned pool is paid for all the time: each bin at least its time's share of the
    # capital, the facility and the idle electricity
    t = owned.time_s
    power = PowerModel(idle_w=scenario.hardware.power.idle.value,
                       tdp_w=scenario.hardware.power.tdp.value,
                       system_w=scenario.hardware.power.system_per_device.value,
                       pue=scenario.cost.pue)
    idle = idle_energy_share(power, devices=8, time_s=t, energy_kwh=owned.energy_kwh)
    fixed = parts["capital"] + parts["facility"] + idle * parts["electricity"]
    for b in bins:
        floor = fixed * (b.end_s - b.start_s) / t
        assert b.cost_usd >= floor * (1 - 1e-9)
        # the rest is the electricity above idle, in proportion to the busy device-seconds
        busy = sum(x.device_busy_s for x in bins)
        rest = (1 - idle) * parts["electricity"] * b.device_busy_s / busy
        assert b.cost_usd == pytest.approx(floor + rest, rel=1e-9)
    # the bins of the 10x load (1,200-2,400 s) cost more than those at 4/s, but per token
    # less: the owned fleet idles at 4/s
    quiet, busy_bin = bins[0], bins[2]
    assert busy_bin.cost_usd > quiet.cost_usd
    assert busy_bin.usd_per_million_tokens < quiet.usd_per_million_tokens


def test_the_run_files_hold_the_bins_and_the_plot(stepped):
    import csv
    import io

    from simulator.report.outputs import run_figures, run_files

    rows = list(csv.DictReader(io.StringIO(run_files(stepped)["cost_over_time.csv"])))
    bins = stepped.inference.autoscaling.bins
    assert len(rows) == len(bins)
    assert [float(r["cost_usd"]) for r in rows] == pytest.approx([b.cost_usd for b in bins])
    assert rows[0]["start_s"] and "slo_missed_during_scale_up" in rows[0]
    figures = {name: png for name, _h, png, _c in run_figures(stepped)}
    assert figures["cost_over_time.png"][:8] == b"\x89PNG\r\n\x1a\n"


def test_the_terminal_shows_the_days_spread():
    from tests.conftest import ROOT, run_cli

    result = run_cli("run", str(ROOT / "scenarios" / "llama3.1-8b-h100-autoscaling.yaml"))
    assert result.code == 0, result.err
    line = next(x for x in result.out.splitlines() if x.startswith("cost over time"))
    # 12 five-minute bins; the dearest per token is the drain after the step down
    assert "12 bins; per million tokens" in line and "at 40 min-45 min" in line
    assert "SLO attainment lowest" in line and "at 20 min-25 min" in line


def test_a_run_of_hours_gets_a_table_of_its_bins_and_a_short_one_does_not(stepped):
    from rich.console import Console

    from simulator.report.cost_table import cost_over_time_table

    a = stepped.inference.autoscaling
    assert cost_over_time_table(a) is None  # an hour: the spread in the Serving table only
    # the same bins stretched to a day: 12 two-hour bins, one row each
    day = a.model_copy(update={"bins": [b.model_copy(update={
        "start_s": b.start_s * 24, "end_s": b.end_s * 24}) for b in a.bins]})
    table = cost_over_time_table(day)
    assert table is not None and table.row_count == 12
    console = Console(width=160, record=True)
    console.print(table)
    text = console.export_text()
    rise = next(b for b in a.bins if b.start_s == 1200)
    assert f"{rise.usd_per_million_tokens:,.4g}" in text
    assert f"{rise.slo_attainment:.1%}" in text and "8 h" in text  # 1,200 s x 24
