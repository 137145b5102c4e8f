"""``xpusim roadmap``: the plan built from replica capacities, priced with the economics,
its files, and every input error (exit 2, file and field path).

Most tests replace the capacity search by a fixed replica (the search itself is tested in
``test_capacity.py`` and ``test_compare.py``) so that every figure is derived by hand; one
runs the shipped example end to end.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from simulator.cli.main import main
from simulator.economics.cost import HOURS_PER_MONTH
from simulator.errors import InputError
from simulator.report.roadmap_report import roadmap_csv, write_roadmap_outputs
from simulator.studies import roadmap
from simulator.studies.roadmap import Replica
from simulator.studies.roadmap_result import run_roadmap
from tests.conftest import ROOT, assert_clean_error, run_cli

SCENARIO = str(ROOT / "scenarios" / "llama3.1-70b-h100-serving.yaml")
MONTH_HOURS = HOURS_PER_MONTH  # 365.25 x 24 / 12 = 730.5


def _fixed_replica(devices: int = 8, rate: float = 5.0):
    def fake(base, ref, hw, tick):
        return Replica(profile=hw.id, layout=f"tp{devices} pp1", devices=devices,
                       rate_per_s=rate, busy=0.5, memory=0.5, note=f"{hw.id}: fixed")
    return fake


def _write(tmp_path: Path, spec: dict) -> Path:
    path = tmp_path / "roadmap.yaml"
    path.write_text(yaml.safe_dump({"scenario": SCENARIO, **spec}))
    return path


BASE = {
    "horizon_months": 3, "headroom": 0.0,
    "demand": {"peak_per_s": [10, 20, 30]},
    "hardware": [{"id": "h100-cloud", "profile": "h100-sxm",
                  "price": {"mode": "cloud", "usd_per_accelerator_hour": 2.0}}],
    "owned": [{"profile": "h100-sxm", "accelerators": 16, "until_month": 1,
               "price": {"mode": "lease", "usd_per_accelerator_hour": 1.0}}],
}


def test_the_plan_by_hand(tmp_path, monkeypatch):
    monkeypatch.setattr(roadmap, "_replica", _fixed_replica())
    data = run_roadmap(_write(tmp_path, BASE))
    # One TP8 replica per 8-GPU server, 5 req/s. Owned: 16 H100 = 2 replicas = 10 req/s in
    # month 0 only (the lease ends at month 1). Cloud servers: 0, 20/5 = 4, 30/5 = 6.
    assert [p["units"]["h100-cloud"] for p in data["periods"]] == [0, 4, 6]
    assert [p["capacity_per_s"] for p in data["periods"]] == [10, 20, 30]
    assert [p["owned_accelerators"] for p in data["periods"]] == [16, 0, 0]
    server_month = 8 * MONTH_HOURS * 2.0  # 11,688 USD
    owned_month = 16 * MONTH_HOURS * 1.0  # 11,688 USD
    assert data["periods"][0]["cost_usd"] == pytest.approx(owned_month)
    assert data["periods"][2]["cost_usd"] == pytest.approx(6 * server_month)
    assert data["total_cost_usd"] == pytest.approx(owned_month + 10 * server_month)
    assert [p["utilization"] for p in data["periods"]] == [1.0, 1.0, 1.0]
    assert [p["headroom"] for p in data["periods"]] == [0.0, 0.0, 0.0]


def test_an_owned_fleet_of_no_whole_replicas_is_noted(tmp_path, monkeypatch):
    # 20 H100 in TP8 replicas: 2 replicas (10 req/s), 4 accelerators idle but paid for
    monkeypatch.setattr(roadmap, "_replica", _fixed_replica())
    owned = [{**BASE["owned"][0], "accelerators": 20}]
    data = run_roadmap(_write(tmp_path, {**BASE, "owned": owned}))
    assert data["owned"][0]["replicas"] == 2 and data["owned"][0]["capacity_per_s"] == 10
    assert data["periods"][0]["owned_cost_usd"] == pytest.approx(20 * MONTH_HOURS * 1.0)
    assert any("4 accelerators idle" in n for n in data["notes"])


def test_headroom_and_whole_units(tmp_path, monkeypatch):
    # TP2 replicas: four per 8-GPU server, 4 x 5 = 20 req/s a server. Peaks 12, 12, 12 with
    # 25% headroom need 15 req/s: one server (20 req/s), utilisation 12/20 = 60%.
    monkeypatch.setattr(roadmap, "_replica", _fixed_replica(devices=2))
    spec = {**BASE, "owned": [], "headroom": 0.25, "demand": {"peak_per_s": [12, 12, 12]}}
    data = run_roadmap(_write(tmp_path, spec))
    for p in data["periods"]:
        assert p["units"] == {"h100-cloud": 1} and p["accelerators"] == {"h100-cloud": 8}
        assert p["utilization"] == pytest.approx(0.6)
        assert p["headroom"] == pytest.approx(20 / 12 - 1)
    assert data["options"][0]["block_replicas"] == 4


@pytest.mark.parametrize(("profile", "devices", "block"), [
    ("h100-sxm", 16, (16, 2, 1)),    # wider than an 8-GPU server: two servers, one replica
    ("gb300-nvl72", 8, (72, 1, 9)),  # 72 / 8 = 9 TP8 replicas in a rack
    ("tpu-v5e", 2, (4, 1, 2)),       # a 4-chip slice holds two; 1-chip slices hold none
    ("tpu-v5e", 8, (8, 1, 1)),
])
def test_blocks_are_whole_purchase_units(tmp_path, monkeypatch, profile, devices, block):
    monkeypatch.setattr(roadmap, "_replica", _fixed_replica(devices=devices))
    spec = {**BASE, "owned": [], "hardware": [{"id": "x", "profile": profile}]}
    option = run_roadmap(_write(tmp_path, spec))["options"][0]
    assert (option["block_accelerators"], option["block_units"],
            option["block_replicas"]) == block


def test_lead_time_delays_arrival_and_orders_say_when(tmp_path, monkeypatch):
    # A cheap bought option with a 12-week lead time (first month 3): months 0-2 rent.
    monkeypatch.setattr(roadmap, "_replica", _fixed_replica())
    spec = {**BASE, "owned": [], "horizon_months": 6,
            "demand": {"start_per_s": 10},
            "hardware": [*BASE["hardware"],
                         {"id": "h100-buy", "profile": "h100-sxm", "lead_time_weeks": 12,
                          "price": {"mode": "buy", "purchase_usd_per_accelerator": 10000}}]}
    data = run_roadmap(_write(tmp_path, spec))
    bought = [p["units"]["h100-buy"] for p in data["periods"]]
    assert bought == [0, 0, 0, 2, 2, 2]
    assert [p["units"]["h100-cloud"] for p in data["periods"]] == [2, 2, 2, 0, 0, 0]
    assert data["orders"] == [{"option": "h100-buy", "blocks": 2, "arrival_month": 3,
                               "arrival": "M3", "order_month": 0, "order_by": "M0",
                               "mode": "buy"}]


def test_a_peak_beyond_every_option_is_reported_short(tmp_path, monkeypatch):
    # At most 3 cloud servers (15 req/s): months needing 20 and 30 fall 5 and 15 short and
    # carry 15/20 and 15/30 of their peak within the SLO.
    monkeypatch.setattr(roadmap, "_replica", _fixed_replica())
    capped = [{**BASE["hardware"][0], "max_units": 3}]
    data = run_roadmap(_write(tmp_path, {**BASE, "owned": [], "hardware": capped}))
    assert [p["shortfall_per_s"] for p in data["periods"]] == [0, 5, 15]
    assert [p["slo_share_at_peak"] for p in data["periods"]] == pytest.approx([1, 0.75, 0.5])
    assert data["months_short"] == ["M1", "M2"]


def test_sensitivity_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(roadmap, "_replica", _fixed_replica())
    spec = {**BASE, "owned": [], "sensitivity": [0.5, 1.5]}
    data = run_roadmap(_write(tmp_path, spec))
    rows = data["sensitivity"]
    assert [r["growth_multiplier"] for r in rows] == [1.0, 0.5, 1.5]
    # final peak 10 + k x 20: 30, 20, 40 -> 6, 4, 8 servers in the last month
    assert [r["final_peak_per_s"] for r in rows] == [30, 20, 40]
    assert [r["final_units"]["h100-cloud"] for r in rows] == [6, 4, 8]
    # cloud only: cost = servers over the months x one server-month; 0.5x: 2 + 3 + 4
    server_month = 8 * MONTH_HOURS * 2.0
    assert rows[1]["total_cost_usd"] == pytest.approx(9 * server_month)
    assert rows[0]["total_cost_usd"] == data["total_cost_usd"]
    # growing demand: more growth never costs less (0.5x <= 1x <= 1.5x)
    assert rows[1]["total_cost_usd"] <= rows[0]["total_cost_usd"] <= rows[2]["total_cost_usd"]


NIGHTS = [0.2] * 12 + [1.0] * 12  # half the day at the peak, half at a fifth


def test_a_daily_profile_rents_cloud_for_the_peak_hours_by_hand(tmp_path, monkeypatch):
    # Owned 16 H100 = 2 TP8 replicas = 10 req/s all day, all three months. Peak 30 req/s
    # for 12 hours, 6 req/s (a fifth) for 12: the peak hours need (30 - 10) / 5 = 4 cloud
    # servers, the night none: 4 x 12 h / 24 h = 2 servers on average, 2 x 730.5 = 1,461
    # server-hours a month, at 8 x 2.0 USD an accelerator-hour.
    monkeypatch.setattr(roadmap, "_replica", _fixed_replica())
    owned = [{**BASE["owned"][0], "until_month": None}]
    spec = {**BASE, "owned": owned, "demand": {"peak_per_s": [30, 30, 30],
                                               "daily_profile": {"hourly": NIGHTS}}}
    data = run_roadmap(_write(tmp_path, spec))
    server_month = 8 * MONTH_HOURS * 2.0
    for p in data["periods"]:
        assert p["units"] == {"h100-cloud": 4}  # at the peak hour
        assert p["cloud_block_hours"]["h100-cloud"] == pytest.approx(2 * MONTH_HOURS)
        assert p["cost_by_option_usd"]["h100-cloud"] == pytest.approx(2 * server_month)
        assert p["utilization"] == pytest.approx(30 / 30)
        # the night: 6 req/s on the owned 10 req/s; the day: (30 + 6) / (30 + 10)
        assert p["trough_utilization"] == pytest.approx(6 / 10)
        assert p["day_utilization"] == pytest.approx(36 / 40)
        assert p["short_hours_share"] == 0
    # without the profile every hour is the peak: 4 servers all month
    flat = run_roadmap(_write(tmp_path, {**spec, "demand": {"peak_per_s": [30, 30, 30]}}))
    assert flat["periods"][0]["cloud_block_hours"]["h100-cloud"] == pytest.approx(
        4 * MONTH_HOURS)
    assert flat["periods"][0]["trough_utilization"] == flat["periods"][0]["utilization"]


def test_a_weekly_profile_rents_less_at_weekends(tmp_path, monkeypatch):
    # Peak 10 req/s every weekday hour, half of it at weekends; 5 req/s servers: 2 on
    # weekdays, 1 at weekends -> (5 x 24 x 2 + 2 x 24 x 1) / 168 = 288/168 servers on
    # average over the month.
    monkeypatch.setattr(roadmap, "_replica", _fixed_replica())
    week = [[1.0] * 24] * 5 + [[0.5] * 24] * 2
    spec = {**BASE, "owned": [], "demand": {"peak_per_s": [10, 10, 10],
                                            "daily_profile": {"weekly": week}}}
    data = run_roadmap(_write(tmp_path, spec))
    assert len(data["day_shape"]) == 168
    p = data["periods"][0]
    assert p["units"] == {"h100-cloud": 2}
    assert p["cloud_block_hours"]["h100-cloud"] == pytest.approx(288 / 168 * MONTH_HOURS)
    assert p["trough_utilization"] == pytest.approx(5 / 5)  # a weekend hour, 1 server


def test_files_csv_and_cli_render(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(roadmap, "_replica", _fixed_replica())
    path = _write(tmp_path, BASE)
    data = run_roadmap(path)
    lines = roadmap_csv(data).splitlines()
    assert lines[0].startswith("month,label,peak_per_s") and "units_h100-cloud" in lines[0]
    assert len(lines) == 4
    written = write_roadmap_outputs(tmp_path / "out", data)
    assert {p.name for p in written} == {"roadmap.json", "roadmap.csv", "fleet.png",
                                         "cost.png", "slo.png", "report.html"}
    page = (tmp_path / "out" / "report.html").read_text()
    assert "Fleet over time" in page and "Sensitivity to demand growth" in page
    assert main(["roadmap", str(path), "--quiet", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["total_cost_usd"] == data["total_cost_usd"]
    assert main(["roadmap", str(path), "--quiet"]) == 0
    assert "h100-cloud 6" in capsys.readouterr().out


@pytest.mark.parametrize(("change", "fragments"), [
    ({"horizon_months": 4}, ["demand.peak_per_s lists 3 months; the horizon is 4"]),
    ({"demand": {"peak_per_s": [1, 2, 3], "start_per_s": 1}}, ["demand", "either"]),
    ({"hardware": [{"id": "x", "profile": "h100-sxm", "lead_time_weeks": -1}]},
     ["hardware[0].lead_time_weeks", "at least 0"]),
    ({"hardware": [{"id": "x", "profile": "h100-sxm", "price": {"mode": "rent"}}]},
     ["hardware[0].price.mode"]),
    ({"hardware": [{"id": "x", "profile": "no-such-gpu"}]}, ["hardware[0].profile"]),
    ({"owned": [{"profile": "h100-sxm", "accelerators": 0}]}, ["owned[0].accelerators"]),
    ({"start": "2027-13"}, ["start must be YYYY-MM"]),
    ({"scenario": "missing.yaml"}, ["missing.yaml"]),
    ({"hardware": []}, ["hardware", "at least 1"]),
    ({"surprise": 1}, ["surprise"]),
    ({"set": ["novalue"]}, ["set[0]", "expects PATH=VALUE"]),
    ({"demand": {"peak_per_s": [1, 2, 3], "daily_profile": {"hourly": [1.0] * 23}}},
     ["demand.daily_profile", "lists 23 multipliers; it needs 24"]),
    ({"demand": {"peak_per_s": [1, 2, 3], "daily_profile": {"hourly": [0.5] * 24}}},
     ["demand", "largest hour must be 1", "divide every hour by 0.5"]),
    ({"demand": {"peak_per_s": [1, 2, 3], "daily_profile": {"hourly": [1.0] * 23 + [2]}}},
     ["demand", "each in [0, 1]; hour 23 is 2"]),
    ({"demand": {"peak_per_s": [1, 2, 3], "daily_profile": {"hourly": [1.0] * 23 + [-1]}}},
     ["demand.daily_profile.hourly[23]", "at least 0"]),
    ({"demand": {"peak_per_s": [1, 2, 3],
                 "daily_profile": {"weekly": [[1.0] * 24] * 6 + [[1.0] * 23 + [3]]}}},
     ["demand", "day 6 hour 23 is 3"]),
    ({"demand": {"peak_per_s": [1, 2, 3], "daily_profile": [1.0] * 24}},
     ["demand.daily_profile"]),
])
def test_bad_input_is_one_line_exit_2(tmp_path, change, fragments):
    path = _write(tmp_path, {**BASE, **change})
    result = run_cli("roadmap", str(path), "--quiet")
    assert_clean_error(result, *fragments)
    if "missing.yaml" not in fragments:
        assert str(path) in result.err


def test_buying_a_rent_only_part_names_the_option(tmp_path, monkeypatch):
    # tpu-v5e has no purchase price: buying it is the option's price field's error
    monkeypatch.setattr(roadmap, "_replica", _fixed_replica())
    path = _write(tmp_path, {**BASE, "hardware": [{"id": "v5e", "profile": "tpu-v5e",
                                                   "price": {"mode": "buy"}}]})
    with pytest.raises(InputError) as caught:
        run_roadmap(path)
    assert caught.value.render().startswith(f"{path}: hardware[0].price: ")
    assert "no purchase price" in caught.value.render()


def test_a_scenario_without_an_slo_is_named(tmp_path):
    scenario = yaml.safe_load(Path(SCENARIO).read_text())
    del scenario["workload"]["slo"]
    (tmp_path / "no-slo.yaml").write_text(yaml.safe_dump(scenario))
    result = run_cli("roadmap", str(_write(tmp_path, {**BASE, "scenario": "no-slo.yaml"})))
    assert_clean_error(result, "no-slo.yaml", "workload.slo targets")


def test_a_roadmap_file_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "roadmap.yaml"
    path.write_text("- just a list\n")
    assert_clean_error(run_cli("roadmap", str(path)), "roadmap.yaml", "must be a mapping")


def test_the_shipped_example_end_to_end(tmp_path):
    example = ROOT / "scenarios" / "roadmaps" / "llama3.1-70b-2027.yaml"
    result = run_cli("roadmap", str(example), "--quiet", "--format", "json",
                     "--out", str(tmp_path / "out"))
    assert result.code == 0, result.err
    data = result.json()
    for p in data["periods"]:  # every month covered with its headroom, in whole units
        assert p["capacity_per_s"] >= p["required_per_s"] * (1 - 1e-9)
        assert all(isinstance(n, int) for n in p["units"].values())
    # the owned H100s leave in July (month 6); GB300 racks never arrive before April +
    # 12 weeks' lead from the plan's month 0: month 3
    assert [p["owned_accelerators"] for p in data["periods"]] == [512] * 6 + [0] * 6
    assert all(p["units"]["gb300-buy"] == 0 for p in data["periods"][:3])
    assert all(o["order_month"] == o["arrival_month"] - 3 for o in data["orders"]
               if o["option"] == "gb300-buy")
    assert (tmp_path / "out" / "report.html").is_file()
    # the example's nights are a fifth of the peak: the quietest hour's utilisation is
    # below the day's, which is below the peak hour's, and cloud servers are rented for
    # part of the day only (fewer server-hours than the peak hour's count all month)
    assert data["day_shape"][0] == 0.2 and max(data["day_shape"]) == 1.0
    for p in data["periods"]:
        assert p["trough_utilization"] < p["day_utilization"] < p["utilization"]
        hours = p["cloud_block_hours"]["h100-cloud"]
        assert hours <= p["units"]["h100-cloud"] * MONTH_HOURS * (1 + 1e-12)
        # each month's peak simulated: a fleet covered with 20% headroom meets the SLO
        assert data["verified"] and p["slo_attainment"]
        assert p["slo_attainment_fleet"] >= data["slo_percentile"] / 100
    assert any(0 < p["cloud_block_hours"]["h100-cloud"]
               < p["units"]["h100-cloud"] * MONTH_HOURS for p in data["periods"])


def test_no_verify_and_jobs_flags(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(roadmap, "_replica", _fixed_replica())
    path = _write(tmp_path, BASE)
    assert main(["roadmap", str(path), "--quiet", "--no-verify", "--format", "csv"]) == 0
    header = capsys.readouterr().out.splitlines()[0].split(",")
    assert "slo_attainment_fleet" in header and "cloud_block_hours_h100-cloud" in header
    assert not any(h.startswith("slo_attainment_") and h != "slo_attainment_fleet"
                   for h in header)  # nothing simulated, no per-option column
    assert main(["roadmap", str(path), "--quiet", "--no-verify"]) == 0
    out = capsys.readouterr().out
    assert "SLO met" not in out and "not simulated (--no-verify)" in out
    assert_clean_error(run_cli("roadmap", str(path), "--quiet", "--jobs", "0"),
                       "--jobs must be at least 1")
