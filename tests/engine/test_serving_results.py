"""The serving result: its keys, its formulas against the per-request records, the records
themselves and their CSV."""

from __future__ import annotations

import csv
import io
import json
import pickle

import numpy as np
import pytest

from simulator.engine.serving import run_serving
from simulator.loading import scenario_from_dict
from simulator.report.requests_csv import requests_csv
from simulator.results.inference import InferenceResult

ISSUE_KEYS = ("requests", "duration_s", "requests_per_s", "output_tokens_per_s",
              "total_tokens_per_s", "ttft_s", "tpot_s", "e2e_s", "queue_s", "slo_attainment",
              "goodput_requests_per_s", "kv_cache_utilization", "batch_size", "preemptions",
              "per_replica", "dropped")


def scenario(workload: dict | None = None, accelerators: int = 2):
    base = {"kind": "inference", "replicas": accelerators,
            "arrivals": {"process": "poisson", "rate_per_s": 30, "requests": 400},
            "prompt_tokens": {"dist": "lognormal", "mean": 800, "std": 500, "min": 8},
            "output_tokens": {"dist": "lognormal", "mean": 150, "std": 100, "min": 1},
            "slo": {"ttft_s": 0.04, "tpot_s": 0.0095, "percentile": 90},
            "warmup_requests": 20}
    return scenario_from_dict({"name": "results", "hardware": "h100-sxm",
                               "cluster": {"accelerators": accelerators},
                               "model": "llama3.1-8b", "workload": {**base, **(workload or {})},
                               "seed": 9})


@pytest.fixture(scope="module")
def outcome():
    return run_serving(scenario())


def test_json_has_the_issue_keys_and_round_trips(outcome):
    data = json.loads(outcome.result.model_dump_json())
    assert set(data) == {"inference", "time_s", "utilization"}
    for key in ISSUE_KEYS:
        assert key in data["inference"], key
    for key in ("ttft_s", "tpot_s", "e2e_s", "queue_s"):
        assert set(data["inference"][key]) == {"mean", "p50", "p90", "p99"}
    assert set(data["utilization"]) == {"compute", "memory_bandwidth", "network", "busy"}
    assert data["utilization"]["busy"] == data["inference"]["activity"]["busy"]
    assert InferenceResult.model_validate(data) == outcome.result
    assert data["time_s"] == data["inference"]["duration_s"]


def test_latency_statistics_come_from_the_records_after_warmup(outcome):
    rec, r = outcome.requests, outcome.result.inference
    kept = np.arange(len(rec.status)) >= 20
    ttft = rec.ttft_s[kept]
    assert r.ttft_s.mean == pytest.approx(np.mean(ttft))
    assert r.ttft_s.p99 == pytest.approx(np.percentile(ttft, 99))
    tpot = rec.tpot_s[kept & (rec.output_tokens > 1)]
    assert r.tpot_s.p50 == pytest.approx(np.median(tpot))
    assert r.queue_s.p90 == pytest.approx(np.percentile(rec.queue_s[kept], 90))


def test_slo_attainment_and_goodput(outcome):
    rec, r = outcome.requests, outcome.result.inference
    kept = np.arange(len(rec.status)) >= 20
    ok = (rec.ttft_s <= 0.04) & ((rec.output_tokens == 1) | (rec.tpot_s <= 0.0095))
    assert r.slo_attainment == pytest.approx(np.mean(ok[kept]))
    assert 0 < r.slo_attainment < 1  # the targets are chosen to bite
    assert r.goodput_requests_per_s == pytest.approx(np.sum(ok[kept]) / r.duration_s)
    ttft = r.slo["ttft_s"]
    assert ttft.value_s == pytest.approx(np.percentile(rec.ttft_s[kept], 90))
    assert ttft.met == (ttft.attainment >= 0.9)


def test_throughputs_and_sums(outcome):
    rec, r = outcome.requests, outcome.result.inference
    span = np.max(rec.finish_s) - np.min(rec.arrival_s)
    assert r.duration_s == pytest.approx(span)
    assert r.output_tokens_per_s == pytest.approx(np.sum(rec.output_tokens) / span)
    assert r.total_tokens_per_s == pytest.approx(
        np.sum(rec.output_tokens + rec.prompt_tokens) / span)
    assert sum(p.requests for p in r.per_replica) == r.requests
    assert sum(p.output_tokens for p in r.per_replica) == np.sum(rec.output_tokens)
    assert sum(r.batch_size_histogram.iterations) == r.iterations
    assert r.iterations == sum(p.iterations for p in r.per_replica)
    for name in ("compute", "memory_bandwidth", "network"):
        assert 0 <= getattr(outcome.result.utilization, name) <= 1
    assert r.activity.compute_bound + r.activity.memory_bound <= r.activity.busy + 1e-12


def test_time_series_are_compact_and_add_up(outcome):
    ts, r = outcome.result.inference.time_series, outcome.result.inference
    n = len(ts.t_s)
    assert 1 <= n <= 128
    for series in (ts.requests_per_s, ts.output_tokens_per_s, ts.queue_length, ts.in_system,
                   ts.kv_cache_utilization, ts.batch_size):
        assert len(series) == n
    assert sum(ts.requests_per_s) * ts.bin_s == pytest.approx(r.requests)
    assert sum(ts.output_tokens_per_s) * ts.bin_s == pytest.approx(
        np.sum(outcome.requests.output_tokens))
    # the time-average in system over the bins is Little's L (bins start at t = 0)
    t0 = float(np.min(outcome.requests.arrival_s))
    end = t0 + r.duration_s
    mean_in = sum(ts.in_system) * ts.bin_s / end
    assert mean_in == pytest.approx(r.little_law.mean_in_system * r.duration_s / end, rel=1e-6)


def test_requests_csv_has_one_row_per_request_that_reads_back_exactly(outcome):
    rows = list(csv.DictReader(io.StringIO(requests_csv(outcome.requests))))
    assert len(rows) == 400
    assert list(rows[0]) == list(outcome.requests.columns())
    assert float(rows[5]["ttft_s"]) == outcome.requests.ttft_s[5]
    assert rows[5]["status"] == "completed"
    assert {row["transfer_s"] for row in rows} == {""}  # not disaggregated: no transfers


def test_dropped_requests_have_empty_cells():
    s = scenario({"batching": {"kv_cache_tokens": 1500}, "slo": None}, accelerators=1)
    outcome = run_serving(s)
    assert outcome.result.inference.dropped > 0
    rows = csv.DictReader(io.StringIO(requests_csv(outcome.requests)))
    dropped = [row for row in rows if row["status"] == "dropped"]
    assert dropped and dropped[0]["ttft_s"] == "" and dropped[0]["finish_s"] == ""
    assert dropped[0]["prompt_tokens"] != ""
    assert outcome.result.inference.slo_attainment is None


def test_the_records_are_read_only_and_survive_a_copy_to_another_process(outcome):
    records = outcome.requests
    with pytest.raises(ValueError, match="read-only"):
        records.ttft_s[0] = 0.0
    copy = pickle.loads(pickle.dumps(records))
    assert copy == records and not copy.finish_s.flags.writeable


def test_the_result_carries_the_records_outside_its_json(tmp_path):
    from simulator.report.outputs import data_files
    from simulator.simulate import simulate

    result = simulate(scenario({"arrivals": {"process": "poisson", "rate_per_s": 30,
                                             "requests": 50}}))
    assert result.requests is not None and len(result.requests) == 50
    assert "requests" not in result.model_dump(mode="json")
    files = data_files(result)
    assert files["requests.csv"] == requests_csv(result.requests)
    assert "requests" not in json.loads(files["result.json"])
