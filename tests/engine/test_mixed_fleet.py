"""Mixed fleets (workload.pools): one service on replicas of different hardware, the
least_time router, per-pool results and costs, and the bad inputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from simulator.engine.serving import run_serving
from simulator.engine.serving.pools import build_pools, full_batch, replica_speed
from simulator.engine.serving.router import LeastLoaded, LeastTime, make_policy
from simulator.engine.serving.usage import Usage
from simulator.errors import XpusimError
from simulator.loading import load_scenario, scenario_from_dict
from simulator.profiles.inference import InferenceWorkload, Router
from simulator.simulate import simulate
from tests.conftest import ROOT, assert_clean_error, run_cli
from tests.engine.test_serving_engine import _records_equal

PROMPT, OUTPUT = 512, 128
H100 = {"hardware": "h100-sxm", "replicas": 2}
GB200 = {"hardware": "gb200-nvl72", "replicas": 2}


def fleet(pools: list[dict], *, router: str = "least_time", requests: int = 600,
          process: str = "offline", **extra) -> dict:
    """A raw Llama 3.1 8B scenario on ``pools``, all requests at once by default."""
    arrivals = {"process": process, "requests": requests}
    if process == "poisson":
        arrivals["rate_per_s"] = extra.pop("rate_per_s")
    return {"name": "mixed", "cluster": {"accelerators": "auto"}, "model": "llama3.1-8b",
            "workload": {"kind": "inference", "pools": pools, "router": router,
                         "arrivals": arrivals, "prompt_tokens": PROMPT,
                         "output_tokens": OUTPUT, "batching": {"max_batch_size": 64}},
            "seed": 3, **extra}


# ---- the router on its own ----------------------------------------------------------------
def test_least_time_fills_replicas_in_proportion_to_speed():
    # speeds 1 and 2, loads only rising: the keys (load+1)/speed go [1, .5] -> replica 1,
    # [1, 1] -> 0 (tie, lowest index), [2, 1] -> 1, [2, 1.5] -> 1, [2, 2] -> 0, ...: every
    # three requests one goes to replica 0 and two to replica 1
    policy, loads = LeastTime([1.0, 2.0]), [0, 0]
    for _ in range(30):
        loads[policy.choose(loads)] += 1
    assert loads == [10, 20]
    loads[1] -= 15  # 15 finish on the fast replica: its key is (5+1)/2 = 3 < (10+1)/1
    policy.lowered(1, loads[1])
    assert policy.choose(loads) == 1


def test_least_time_on_equal_speeds_is_least_loaded():
    assert isinstance(make_policy(Router.LEAST_TIME, 3, [2.0, 2.0, 2.0]), LeastLoaded)
    assert isinstance(make_policy(Router.LEAST_TIME, 2, [1.0, 3.0]), LeastTime)
    with pytest.raises(ValueError, match="positive speed"):
        LeastTime([1.0, 0.0])


# ---- the speed a replica is weighed by -------------------------------------------------------
def test_replica_speed_is_the_priced_service_rate_of_a_mean_request():
    s = scenario_from_dict(fleet([H100, GB200]))
    w = s.workload
    assert isinstance(w, InferenceWorkload)
    for pool in build_pools(s):
        b = full_batch(pool, w)
        assert b == 64  # the batch limit: the KV cache holds far more 640-token requests
        prefill = pool.cost.step_time(Usage(), PROMPT, 0, PROMPT * (PROMPT + 1) // 2, 1, 0, 0)
        step = pool.cost.step_time(Usage(), 0, 0, 0, 0, b, b * (PROMPT + OUTPUT // 2))
        # one request: its prefill, then 128 decode steps shared by 64 sequences
        assert replica_speed(pool, w) == pytest.approx(1 / (prefill + OUTPUT * step / b))
    h100, gb200 = (replica_speed(p, w) for p in build_pools(s))
    # GB200 has 8 TB/s of HBM against 3.35 TB/s and ~2.3x the dense bf16 peak: faster, by
    # no more than either ratio allows
    assert 1.5 < gb200 / h100 < 3.0


# ---- routing on a whole run ------------------------------------------------------------------
def test_least_time_splits_an_offline_batch_by_the_pools_speeds():
    s = scenario_from_dict(fleet([H100, GB200]))
    result = run_serving(s).result.inference
    h100, gb200 = result.pools
    # all 600 arrive at t=0 and are routed before any finishes, so each replica's load k
    # satisfies k/speed equal to within one request: replica shares speed / sum of speeds
    total = 2 * h100.speed_requests_per_s + 2 * gb200.speed_requests_per_s
    for pool in (h100, gb200):
        expected = 600 * pool.replicas * pool.speed_requests_per_s / total
        assert abs(pool.requests - expected) <= pool.replicas
    assert gb200.requests > h100.requests
    assert h100.requests + gb200.requests == result.requests == 600


def test_least_loaded_ignores_speed_on_a_mixed_fleet():
    s = scenario_from_dict(fleet([H100, GB200], router="least_loaded"))
    h100, gb200 = run_serving(s).result.inference.pools
    assert h100.requests == gb200.requests == 300  # 150 per replica, whatever its speed


def test_a_mixed_fleets_throughput_lies_between_the_homogeneous_fleets():
    def throughput(pools: list[dict]) -> float:
        return run_serving(scenario_from_dict(fleet(pools))).result.inference.requests_per_s

    slow = throughput([{**H100, "replicas": 4}])
    fast = throughput([{**GB200, "replicas": 4}])
    mixed = throughput([H100, GB200])
    assert slow < mixed < fast


# ---- every request, and the cost ---------------------------------------------------------
def test_every_request_is_accounted_for_and_the_cost_is_the_pools_sum():
    raw = fleet([H100, {**GB200, "replicas": 1}], process="poisson", rate_per_s=30,
                requests=400)
    result = simulate(scenario_from_dict(raw))
    m = result.inference
    assert m is not None
    assert m.requests + m.dropped + m.unfinished == m.arrived == 400
    assert sum(p.requests for p in m.pools) == m.requests
    assert [r.hardware for r in m.per_replica] == ["h100-sxm"] * 2 + ["gb200-nvl72"]
    assert result.hardware == "h100-sxm+gb200-nvl72"
    # cloud, rented per accelerator: accelerators x hours x the profile's price, per pool
    hours = result.time_s / 3600
    h100 = scenario_from_dict(raw).pools()[0].hardware.price.cloud_per_device_hour.value
    gb200 = scenario_from_dict(raw).pools()[1].hardware.price.cloud_per_device_hour.value
    assert m.pools[0].cost_usd == pytest.approx(2 * hours * h100)
    assert m.pools[1].cost_usd == pytest.approx(1 * hours * gb200)
    assert result.cost_usd == pytest.approx(2 * hours * h100 + hours * gb200)
    assert result.cost.billed_accelerators == 3
    assert result.energy_kwh == pytest.approx(sum(p.energy_kwh for p in m.pools))


def test_the_default_hardware_and_the_scenarios_own():
    raw = fleet([{"replicas": 1}, {**GB200, "replicas": 1}], hardware="h100-sxm")
    s = scenario_from_dict(raw)
    assert [p.hardware.id for p in s.pools()] == ["h100-sxm", "gb200-nvl72"]
    assert s.cluster.accelerators == 2
    raw["workload"]["pools"][0]["parallelism"] = {"tp": 2}
    assert scenario_from_dict(raw).cluster.accelerators == 3  # auto: 1 x 2 + 1 x 1


# ---- bad inputs ----------------------------------------------------------------------------
BAD = {
    "replicas with pools": (lambda r: r["workload"].update(replicas=2),
                            "workload.replicas: replicas cannot be given with workload.pools"),
    "a pool's tp": (lambda r: r["workload"]["pools"][1].update(parallelism={"tp": 3}),
                    "workload.pools[1].parallelism.tp: tp=3 does not divide"),
    "unknown hardware": (lambda r: r["workload"]["pools"][0].update(hardware="h900"),
                         "workload.pools[0].hardware"),
    "a cluster other than the pools": (lambda r: r.update(cluster={"accelerators": 8}),
                                       "the pools use 4 accelerators but cluster.accelerators"),
    "no pools": (lambda r: r["workload"].update(pools=[]), "workload.pools"),
    "cache_aware": (lambda r: r["workload"].update(router="cache_aware", batching={
        "prefix_caching": True}), "cache_aware routing ignores the pools' speeds"),
    "a pool without replicas": (lambda r: r["workload"]["pools"][0].pop("replicas"),
                                "workload.pools[0].replicas"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_pools_are_refused_with_their_field(case):
    raw = fleet([dict(H100), dict(GB200)])
    change, message = BAD[case]
    change(raw)
    with pytest.raises(XpusimError) as err:
        scenario_from_dict(raw)
    assert message in str(err.value)


def test_a_bad_pool_exits_2_with_one_line(tmp_path: Path):
    path = tmp_path / "mixed.yaml"
    path.write_text("name: m\ncluster: {accelerators: auto}\nmodel: llama3.1-8b\n"
                    "workload:\n  kind: inference\n  pools:\n"
                    "    - {hardware: h100-sxm, replicas: 2, parallelism: {tp: 3}}\n"
                    "  arrivals: {process: offline, requests: 10}\n"
                    "  prompt_tokens: 100\n  output_tokens: 10\n")
    assert_clean_error(run_cli("run", str(path)), "workload.pools[0].parallelism.tp")


SHIPPED = "scenarios/llama3.1-70b-mixed-h100-gb200.yaml"


def test_the_shipped_mixed_scenario_runs_and_the_fast_pool_takes_more():
    s = load_scenario(ROOT / SHIPPED, ["workload.arrivals.requests=300"])
    result = simulate(s)
    assert math.isfinite(result.cost_usd) and result.inference is not None
    h100, gb200 = result.inference.pools
    assert (h100.accelerators, gb200.accelerators) == (8, 4)
    # one GB200 replica of five takes more than a fifth: its priced speed is above an H100's
    assert gb200.speed_requests_per_s > h100.speed_requests_per_s
    assert gb200.request_share > 1 / 5


def test_roofline_of_a_mixed_fleet_shows_each_pool():
    out = run_cli("roofline", SHIPPED, "--format", "json")
    assert out.code == 0, out.err
    assert [p["hardware"] for p in json.loads(out.out)["pools"]] == ["h100-sxm", "gb200-nvl72"]


def test_two_pools_of_one_kind_run_as_one_pool():
    # the same replicas split into two pools: same routing (equal speeds: least_time is
    # least_loaded), same requests, same cost (a sum of two halves)
    split = fleet([H100, H100], process="poisson", rate_per_s=40, requests=300)
    whole = fleet([{**H100, "replicas": 4}], process="poisson", rate_per_s=40, requests=300)
    a, b = simulate(scenario_from_dict(split)), simulate(scenario_from_dict(whole))
    assert a.requests is not None and b.requests is not None
    assert _records_equal(a.requests, b.requests) == []
    assert a.time_s == b.time_s
    assert a.cost_usd == pytest.approx(b.cost_usd, rel=1e-12)
    assert a.energy_kwh == pytest.approx(b.energy_kwh, rel=1e-12)
    assert a.steady.cost_usd == pytest.approx(b.steady.cost_usd, rel=1e-12)
    assert [p.requests for p in a.inference.pools] == [
        sum(r.requests for r in b.inference.per_replica[:2]),
        sum(r.requests for r in b.inference.per_replica[2:])]


@pytest.mark.parametrize("command", [["plan"], ["sensitivity"], ["compare", "--hardware",
                                                                  "h100-sxm"]])
def test_one_hardware_studies_refuse_a_mixed_fleet(command):
    assert_clean_error(run_cli(*command, SHIPPED),
                       f"xpusim {command[0]} works on one hardware profile")
