"""Every shipped serving scenario runs end to end and says what its file claims (speed is
benchmarks/bench_serving.py's, not a timed test's: a wall-clock limit here failed under CPU
contention without anything being slower)."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from simulator.engine.serving import run_serving
from simulator.loading import load_scenario
from simulator.profiles.inference import InferenceWorkload
from tests.conftest import ROOT, SCENARIOS

SERVING = [p for p in SCENARIOS
           if isinstance(load_scenario(p).workload, InferenceWorkload)]


@cache
def run(stem: str):
    return run_serving(load_scenario(ROOT / "scenarios" / f"{stem}.yaml"))


@pytest.mark.parametrize("path", SERVING, ids=lambda p: p.stem)
def test_each_serving_scenario_runs_and_accounts_for_every_request(path):
    outcome = run(path.stem)
    r = outcome.result.inference
    assert r.requests + r.dropped == r.arrived and r.unfinished == 0
    assert r.requests > 0 and r.output_tokens_per_s > 0
    assert r.little_law.relative_error < 1e-9
    assert 0 < outcome.result.utilization.memory_bandwidth <= 1


def test_the_bursty_scenario_violates_its_slo_and_the_steady_one_meets_it():
    bursty = run("llama3.1-8b-h100-bursty").result.inference
    steady = run("llama3.1-8b-h100-serving").result.inference
    assert not bursty.slo["ttft_s"].met
    assert bursty.slo["ttft_s"].value_s > bursty.slo["ttft_s"].target_s
    assert steady.slo_attainment > bursty.slo_attainment
    assert all(t.met for t in steady.slo.values())


def test_the_three_vendors_see_the_same_traffic():
    runs = [run(f"llama3.1-70b-{hw}-serving") for hw in ("h100", "mi300x", "gaudi3")]
    first = runs[0].requests
    for other in runs[1:]:
        for column in ("arrival_s", "prompt_tokens", "output_tokens"):
            np.testing.assert_array_equal(getattr(first, column),
                                          getattr(other.requests, column))


def test_the_disaggregated_scenario_moves_every_kv_cache_to_the_decode_pool():
    outcome = run("llama3.1-70b-h100-disaggregated")
    rec = outcome.requests
    moved = rec.output_tokens > 1
    assert np.all(rec.decode_replica[moved] == 1)  # after the one prefill replica
    assert np.all(rec.transfer_s[moved] > 0)
    roles = [(p.role, p.requests) for p in outcome.result.inference.per_replica]
    assert roles[0][0] == "prefill" and roles[1][0] == "decode"
    assert roles[1][1] == int(np.sum(moved))


def test_the_offline_scenario_keeps_its_replicas_full():
    r = run("llama2-70b-h100-offline").result.inference
    assert r.kv_cache_utilization.mean > 0.8
    assert r.batch_size.mean > 200


def test_expert_parallel_scenario_runs_with_experts_inside_each_replica():
    outcome = run("deepseek-v3-gb200-nvl72-serving")
    assert len(outcome.result.inference.per_replica) == 9
    assert outcome.result.utilization.network > 0


def test_the_wide_ep_scenario_is_one_72_gpu_replica_decoding_faster_than_nine_tp8():
    wide = run("deepseek-v3-gb200-nvl72-wide-ep").result.inference
    tp8 = run("deepseek-v3-gb200-nvl72-serving").result.inference
    assert [(p.devices, p.role) for p in wide.per_replica] == [(72, "mixed")]
    # the same traffic: no per-layer all-reduce and the experts spread 72 ways
    assert wide.tpot_s.p50 < tp8.tpot_s.p50


def test_the_disaggregated_wide_ep_scenario_decodes_on_32_gpus_across_servers():
    outcome = run("deepseek-v3-h200-disaggregated-wide-ep")
    roles = [(p.role, p.devices) for p in outcome.result.inference.per_replica]
    assert roles == [("prefill", 8), ("prefill", 8), ("decode", 32)]
    moved = outcome.requests.output_tokens > 1
    assert np.all(outcome.requests.transfer_s[moved] > 0)  # over InfiniBand
