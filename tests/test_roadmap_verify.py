"""The roadmap's simulated SLO attainment (:mod:`simulator.studies.roadmap_verify`): each
month's peak on one replica per profile at the peak utilisation, weighted by the traffic
each carries; identical pairs simulated once; measured 1.0 well below capacity and below
1 above it."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from simulator.report.roadmap_report import slo_lines
from simulator.studies import roadmap, roadmap_verify
from simulator.studies.executors import InProcessExecutor, PoolExecutor
from simulator.studies.roadmap import Replica
from simulator.studies.roadmap_result import run_roadmap
from simulator.studies.roadmap_spec import Roadmap
from simulator.studies.roadmap_verify import Carrier, verify_plan
from tests.conftest import ROOT

SCENARIO = str(ROOT / "scenarios" / "llama3.1-70b-h100-serving.yaml")
SENTINEL = SimpleNamespace(workload=None)  # a replica's scenario where runs are faked


def _write(tmp_path: Path, spec: dict) -> Path:
    path = tmp_path / "roadmap.yaml"
    path.write_text(yaml.safe_dump({"scenario": SCENARIO, **spec}))
    return path


def _fake_replica(base, ref, hw, tick):
    return Replica(profile=hw.id, layout="tp8 pp1", devices=8, rate_per_s=5.0, busy=0.5,
                   memory=0.5, note="fixed", scenario=SENTINEL)  # type: ignore[arg-type]


def _fake_runs(monkeypatch) -> list[float]:
    """Record each simulated rate; a replica meets the SLO for every request up to its
    sustainable 5 req/s and for half of them above."""
    rates: list[float] = []

    def attainment(scenarios, item):
        assert scenarios[item[0]] is SENTINEL
        rates.append(item[1])
        return 1.0 if item[1] <= 5.0 + 1e-9 else 0.5
    monkeypatch.setattr(roadmap, "_replica", _fake_replica)
    monkeypatch.setattr(roadmap_verify, "_attainment_at", attainment)
    return rates


SPEC = {
    "horizon_months": 3, "headroom": 0.25, "demand": {"peak_per_s": [10, 20, 30]},
    "hardware": [{"id": "h100-cloud", "profile": "h100-sxm",
                  "price": {"mode": "cloud", "usd_per_accelerator_hour": 2.0}}],
    "owned": [{"profile": "h100-sxm", "accelerators": 16, "until_month": 1}],
}


def test_each_month_runs_its_replicas_at_the_peak_utilisation(tmp_path, monkeypatch):
    rates = _fake_runs(monkeypatch)
    data = run_roadmap(_write(tmp_path, SPEC))
    # Peaks 10, 20, 30 x 1.25 = 12.5, 25, 37.5 req/s, servers of one 5 req/s replica.
    # Month 0: owned 2 replicas (10) + 1 cloud server = 15: utilisation 10/15, each
    # replica at 5 x 2/3 = 3.33 req/s. Month 1: 5 servers = 25, 0.8 -> 4.0. Month 2:
    # 8 servers = 40, 0.75 -> 3.75. Owned and cloud share the profile: 3 simulations.
    assert sorted(rates) == pytest.approx(sorted([10 / 3, 4.0, 3.75]))
    assert data["verify_simulations"] == 3 and data["verified"]
    assert data["periods"][0]["slo_attainment"] == {"owned": 1.0, "h100-cloud": 1.0}
    assert data["periods"][2]["slo_attainment"] == {"h100-cloud": 1.0}
    assert [p["slo_attainment_fleet"] for p in data["periods"]] == [1.0, 1.0, 1.0]
    assert slo_lines(data) == ["SLO: at every month's peak at least 99% of requests meet "
                               "every target (simulated on the plan's fleet)"]


def test_a_month_short_of_capacity_runs_above_the_sustainable_rate(tmp_path, monkeypatch):
    rates = _fake_runs(monkeypatch)
    capped = {**SPEC, "headroom": 0.0, "owned": [],
              "hardware": [{**SPEC["hardware"][0], "max_units": 3}]}
    data = run_roadmap(_write(tmp_path, capped))
    # 3 servers (15 req/s) at most: month 0 needs 10 (2 servers, 5 req/s each, 1.0);
    # month 1 needs 20 on 15 (each replica at 20/3 = 6.67 > 5: 0.5), month 2 30 on 15
    # (10 req/s each: 0.5). Capacity alone says 0.75 and 0.5 of the peak.
    assert rates == pytest.approx([5.0, 20 / 3, 10.0])
    assert [p["slo_attainment_fleet"] for p in data["periods"]] == [1.0, 0.5, 0.5]
    assert [p["slo_share_at_peak"] for p in data["periods"]] == pytest.approx([1, 0.75, 0.5])
    # the answer says where: the fake scenario names no percentile, so p99 is assumed
    assert slo_lines(data) == ["SLO missed at the peak (simulated share of requests meeting "
                               "every target): M1 50.0%, M2 50.0%"]


def test_the_fleet_share_weighs_each_option_by_the_requests_it_carries(monkeypatch):
    # Two profiles in one month, carrying 30 and 10 req/s, measured at 1.0 and 0.5:
    # (30 x 1.0 + 10 x 0.5) / 40 = 0.875.
    fast = Replica(profile="a", layout="-", devices=1, rate_per_s=6.0, busy=0, memory=0,
                   note="", scenario=SENTINEL)  # type: ignore[arg-type]
    slow = Replica(profile="b", layout="-", devices=1, rate_per_s=2.0, busy=0, memory=0,
                   note="", scenario=SENTINEL)  # type: ignore[arg-type]
    monkeypatch.setattr(roadmap_verify, "_attainment_at",
                        lambda scenarios, item: 1.0 if item[1] == pytest.approx(3.0) else 0.5)
    month = [Carrier(key="a", replica=fast, rate_per_s=30.0),
             Carrier(key="b", replica=slow, rate_per_s=10.0)]
    found, simulations = verify_plan([month, month], [0.5, 0.5])
    assert simulations == 2  # (a, 3.0) and (b, 1.0), each once over both months
    assert found[0].by_carrier == {"a": 1.0, "b": 0.5}
    assert found[0].fleet == pytest.approx(0.875) and found[1] == found[0]


def test_no_verify_leaves_the_attainment_out(tmp_path, monkeypatch):
    rates = _fake_runs(monkeypatch)
    data = run_roadmap(_write(tmp_path, SPEC), verify=False)
    assert rates == [] and not data["verified"] and data["verify_simulations"] == 0
    assert all(p["slo_attainment"] == {} and p["slo_attainment_fleet"] is None
               for p in data["periods"])


@pytest.fixture(scope="module")
def h100_replica() -> Replica:
    """One H100 replica of the shipped example's scenario at its best within the SLO."""
    spec = Roadmap.model_validate({
        "scenario": SCENARIO, "set": ["workload.arrivals.requests=300"], "horizon_months": 1,
        "demand": {"peak_per_s": [10]}, "hardware": [{"id": "h", "profile": "h100-sxm"}]})
    figs = roadmap.figures(spec, ROOT / "scenarios", lambda _f: None)
    return figs.option_replica["h"]


def test_simulated_attainment_is_whole_below_capacity_and_falls_above(h100_replica):
    # A third of the sustainable rate: every request meets p99 TTFT 2 s and TPOT 80 ms.
    # Twice the rate: the queue grows through the run and TTFTs pass 2 s.
    r = h100_replica.rate_per_s
    month = [Carrier(key="h", replica=h100_replica, rate_per_s=r)]
    (low, high), simulations = verify_plan([month, month], [1 / 3, 2.0])
    assert simulations == 2
    assert low.by_carrier == {"h": 1.0}
    assert high.fleet is not None and high.fleet < 0.9
    # the process pool gives the same shares (a task is a pure function of its inputs)
    with PoolExecutor(2) as pool:
        again, _ = verify_plan([month, month], [1 / 3, 2.0], executor=pool)
    assert again == [low, high]
    assert verify_plan([month], [2.0], executor=InProcessExecutor())[0] == [high]


def test_a_month_with_no_fleet_attains_nothing(tmp_path, monkeypatch):
    # The only option arrives in month 2 and nothing is owned: months 0 and 1 have no
    # fleet at their peak, so no request is served within the SLO (0, not unknown).
    rates = _fake_runs(monkeypatch)
    late = {**SPEC, "owned": [], "hardware": [{**SPEC["hardware"][0],
                                               "available_from_month": 2}]}
    data = run_roadmap(_write(tmp_path, late))
    assert [p["slo_attainment_fleet"] for p in data["periods"]] == [0.0, 0.0, 1.0]
    assert data["periods"][0]["slo_attainment"] == {}
    assert rates == pytest.approx([30 / 40 * 5.0])  # month 2: 8 servers for 37.5 req/s
