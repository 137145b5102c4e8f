"""End-to-end properties of the serving engine on small scenarios.

Jumping through decode steps must give the same per-request times as single-stepping; no
request may be lost; a seed fixes everything; more KV cache never lowers throughput.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from simulator.engine.serving import run_serving
from simulator.errors import DoesNotFit
from simulator.loading import scenario_from_dict
from simulator.results.inference import RequestRecords

LOGNORMAL_PROMPT = {"dist": "lognormal", "mean": 600, "std": 400, "min": 8, "max": 6000}
LOGNORMAL_OUTPUT = {"dist": "lognormal", "mean": 120, "std": 100, "min": 1, "max": 1500}


def scenario(workload: dict | None = None, *, hardware: str = "h100-sxm",
             accelerators: int = 1, model: str = "llama3.1-8b", seed: int = 0):
    base = {"kind": "inference",
            "arrivals": {"process": "poisson", "rate_per_s": 20, "requests": 300},
            "prompt_tokens": LOGNORMAL_PROMPT, "output_tokens": LOGNORMAL_OUTPUT}
    return scenario_from_dict({"name": "engine test", "hardware": hardware,
                               "cluster": {"accelerators": accelerators}, "model": model,
                               "workload": {**base, **(workload or {})}, "seed": seed})


CASES = {
    "chat": {},
    # (a stack that takes blocks as contexts grow: trtllm reserves whole sequences)
    "tight cache, preemptions": {"batching": {"kv_cache_tokens": 12_000,
                                              "max_tokens_per_step": 1024},
                                 "engine": "vllm-v1"},
    "offline, small chunks": {"arrivals": {"process": "offline", "requests": 200},
                              "batching": {"chunked_prefill": 256, "max_batch_size": 64}},
    "no chunked prefill": {"batching": {"chunked_prefill": False, "max_tokens_per_step": 2048}},
    "bursty, round robin": {"arrivals": {"process": "gamma", "cv": 3.0, "rate_per_s": 40,
                                         "requests": 300},
                            "router": "round_robin", "replicas": 2},
}


def _records_equal(a: RequestRecords, b: RequestRecords) -> list[str]:
    """The columns in which ``a`` and ``b`` differ (NaN equal to NaN)."""
    other = b.columns()
    return [name for name, column in a.columns().items()
            if not np.array_equal(column, other[name], equal_nan=column.dtype.kind == "f")]


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_jumping_gives_the_same_results_as_single_stepping(case):
    accelerators = CASES[case].get("replicas", 1)
    s = scenario(CASES[case], accelerators=accelerators)
    jumped, stepped = run_serving(s), run_serving(s, jump=False)
    assert _records_equal(jumped.requests, stepped.requests) == []
    a, b = jumped.result.inference, stepped.result.inference
    assert (a.iterations, a.preemptions, a.requests) == (b.iterations, b.preemptions, b.requests)
    assert a.batch_size_histogram == b.batch_size_histogram
    for name in ("duration_s", "output_tokens_per_s"):
        assert getattr(a, name) == getattr(b, name)
    assert a.kv_cache_utilization.mean == pytest.approx(b.kv_cache_utilization.mean, rel=1e-12)
    assert jumped.result.utilization.compute == pytest.approx(
        stepped.result.utilization.compute, rel=1e-12)


def test_simulation_cost_grows_with_arrivals_and_completions_not_tokens():
    def steps(output_tokens: int) -> int:
        s = scenario({"arrivals": {"process": "poisson", "rate_per_s": 2, "requests": 100},
                      "output_tokens": output_tokens})
        r = run_serving(s).result.inference
        assert r.requests == 100
        return r.engine_steps

    short, long = steps(50), steps(2000)
    assert long < 10 * 100  # a few events per arrival and completion
    assert long < 2 * short  # 40x the tokens, not 40x the events


def test_preemption_happens_with_a_tight_cache_and_every_request_still_completes():
    s = scenario(CASES["tight cache, preemptions"])
    outcome = run_serving(s)
    r = outcome.result.inference
    assert r.preemptions > 0
    assert r.requests == r.arrived
    assert r.kv_cache_utilization.max <= 1.0
    # recomputed prompts: more prompt tokens prefilled than the prompts hold
    assert r.per_replica[0].prompt_tokens > int(np.sum(outcome.requests.prompt_tokens))
    assert int(np.sum(outcome.requests.preemptions)) == r.preemptions


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_no_request_is_lost(case):
    accelerators = CASES[case].get("replicas", 1)
    outcome = run_serving(scenario(CASES[case], accelerators=accelerators))
    r = outcome.result.inference
    assert r.requests + r.dropped + r.unfinished == r.arrived == len(outcome.requests.status)
    done = outcome.requests.status == "completed"
    rec = outcome.requests
    assert np.all(rec.arrival_s[done] <= rec.first_token_s[done])
    assert np.all(rec.first_token_s[done] <= rec.finish_s[done])
    assert np.all(rec.queue_s[done] >= 0)
    assert r.little_law.relative_error < 1e-9


def test_requests_no_replica_could_hold_are_dropped_and_reported():
    s = scenario({"prompt_tokens": {"dist": "uniform", "low": 100, "high": 3000},
                  "output_tokens": 100, "batching": {"kv_cache_tokens": 2_000}})
    outcome = run_serving(s)
    r = outcome.result.inference
    too_big = outcome.requests.prompt_tokens + 100 - 1 > 2_000
    assert r.dropped == int(np.sum(too_big)) > 0
    assert np.all(outcome.requests.status[too_big] == "dropped")
    assert r.requests == r.arrived - r.dropped


def test_same_seed_same_run_other_seed_other_run():
    a, b = run_serving(scenario(seed=5)), run_serving(scenario(seed=5))
    assert _records_equal(a.requests, b.requests) == []
    assert a.result == b.result
    c = run_serving(scenario(seed=6))
    assert not np.array_equal(a.requests.arrival_s, c.requests.arrival_s)


def test_a_larger_kv_cache_never_lowers_throughput():
    """With blocks taken as contexts grow. (Reserving whole sequences, a larger cache can
    lose a little to how the fixed-length requests fall into waves.)"""
    workload = {"arrivals": {"process": "offline", "requests": 300}, "engine": "vllm-v1",
                "batching": {"max_batch_size": 256, "max_tokens_per_step": 4096}}
    throughput = []
    for tokens in (8_000, 16_000, 32_000, 64_000, 128_000, 256_000):
        s = scenario({**workload, "batching": {**workload["batching"],
                                               "kv_cache_tokens": tokens}})
        throughput.append(run_serving(s).result.inference.output_tokens_per_s)
    assert all(b >= a for a, b in itertools.pairwise(throughput)), throughput
    assert throughput[-1] > 1.5 * throughput[0]


def test_a_kv_cache_larger_than_memory_is_refused():
    with pytest.raises(DoesNotFit, match="kv_cache_tokens"):
        run_serving(scenario({"batching": {"kv_cache_tokens": 10**9}}))


def test_chunked_prefill_splits_a_long_prompt_over_iterations():
    one = {"arrivals": {"process": "offline", "requests": 1}, "prompt_tokens": 5000,
           "output_tokens": 1}
    chunked = run_serving(scenario({**one, "batching": {"max_tokens_per_step": 1024}}))
    assert chunked.result.inference.iterations == 5  # ceil(5000 / 1024)
    whole = run_serving(scenario({**one, "batching": {"max_tokens_per_step": 1024,
                                                      "chunked_prefill": False}}))
    assert whole.result.inference.iterations == 1
    # chunks re-read the cached context: more attention work, so a later first token
    assert chunked.requests.ttft_s[0] > whole.requests.ttft_s[0]


def test_decode_steps_and_first_token_are_counted_per_request():
    s = scenario({"arrivals": {"process": "offline", "requests": 1}, "prompt_tokens": 100,
                  "output_tokens": 50})
    r = run_serving(s)
    assert r.result.inference.iterations == 50  # one prefill (first token) + 49 decodes
    assert r.requests.tpot_s[0] == pytest.approx(
        (r.requests.finish_s[0] - r.requests.first_token_s[0]) / 49)


def test_a_batch_limit_of_one_serves_requests_one_at_a_time():
    s = scenario({"arrivals": {"process": "offline", "requests": 5}, "prompt_tokens": 64,
                  "output_tokens": 8, "batching": {"max_batch_size": 1}})
    rec = run_serving(s).requests
    np.testing.assert_allclose(rec.queue_s[1:], rec.finish_s[:-1])
    assert run_serving(s).result.inference.batch_size.max == 1


def test_least_loaded_spreads_requests_and_round_robin_alternates():
    s = scenario({"replicas": 4, "arrivals": {"process": "constant", "rate_per_s": 50,
                                              "requests": 400}}, accelerators=4)
    rec = run_serving(s).requests
    assert sorted(np.bincount(rec.replica).tolist())[0] > 60
    rr = scenario({"replicas": 4, "router": "round_robin"}, accelerators=4)
    np.testing.assert_array_equal(run_serving(rr).requests.replica[:8],
                                  [0, 1, 2, 3, 0, 1, 2, 3])
