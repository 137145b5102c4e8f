"""The serving stack's share of an iteration (``workload.engine``): host work in series or
overlapped, multi-step amortisation, eager launches, graph padding, static batching.

Device times come from the engine's own cost model (the ``ideal`` stack adds nothing to
them); what a stack adds is worked out by hand from its numbers.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from simulator.engine.serving import run_serving
from simulator.engine.serving.iteration_cost import IterationCost, Usage
from simulator.engine.serving.pools import build_pools as _pools
from simulator.engine.serving.stack_cost import StackCost
from simulator.loading import scenario_from_dict
from simulator.perf.pricer import add_costs
from tests.engine.test_serving_engine import _records_equal

MS, US = 1e-3, 1e-6


def scenario(workload: dict | None = None, engine: object = "ideal", seed: int = 0):
    base = {"kind": "inference", "engine": engine,
            "arrivals": {"process": "poisson", "rate_per_s": 20, "requests": 200},
            "prompt_tokens": {"dist": "lognormal", "mean": 600, "std": 400, "min": 8,
                              "max": 6000},
            "output_tokens": {"dist": "lognormal", "mean": 120, "std": 100, "min": 1,
                              "max": 1500}}
    return scenario_from_dict({"name": "stack test", "hardware": "h100-sxm",
                               "cluster": {"accelerators": 1}, "model": "llama3.1-8b",
                               "workload": {**base, **(workload or {})}, "seed": seed})


def ideal_cost() -> IterationCost:
    """Llama 3.1 8B on one H100 with no serving-stack cost: device times alone."""
    return _pools(scenario())[0].cost


def with_stack(**fields: object) -> IterationCost:
    """The same replica with a stack whose numbers are ``fields`` (the rest zero)."""
    base = StackCost(schedule=(0.0, 0.0, 0.0), schedule_overlapped=False,
                     output=(0.0, 0.0, 0.0), output_overlapped=True, scheduler_steps=1,
                     eager_s=0.0, graph_sizes=())
    ideal = ideal_cost()
    return IterationCost(ideal.hw, ideal.model, dataclasses.replace(base, **fields))


def decode_time(cost: IterationCost, batch: int, context: int) -> float:
    return cost.run_price(batch, context, 1).time_s[0]


def prefill_time(cost: IterationCost, tokens: int) -> float:
    """One fresh prompt of ``tokens`` tokens, alone in its iteration."""
    return cost.step_time(Usage(), tokens, 0, tokens * (tokens + 1) // 2, 1, 0, 0)


# ---- host work: in series adds, overlapped hides ------------------------------------------
def test_host_work_in_series_adds_to_the_device_time():
    gpu = decode_time(ideal_cost(), 4, 4 * 500)
    # schedule 2 ms + 4 sequences x 10 us + 4 new tokens x 1 us = 2.044 ms, in series
    cost = with_stack(schedule=(2 * MS, 10 * US, 1 * US))
    assert decode_time(cost, 4, 4 * 500) == pytest.approx(gpu + 2.044 * MS, rel=1e-12)
    # a prompt of 300 tokens: 2 ms + 1 x 10 us + 300 x 1 us = 2.31 ms
    assert prefill_time(cost, 300) == pytest.approx(prefill_time(ideal_cost(), 300)
                                                    + 2.31 * MS, rel=1e-12)


def test_overlapped_host_work_costs_only_what_exceeds_the_device_time():
    gpu = decode_time(ideal_cost(), 4, 4 * 500)  # ~5 ms: 16 GB of bf16 weights at 3.35 TB/s
    assert 3 * MS < gpu < 10 * MS
    small = with_stack(output=(1 * MS, 0.0, 0.0))  # 1 ms < gpu: hidden
    assert decode_time(small, 4, 4 * 500) == gpu
    large = with_stack(output=(40 * MS, 0.0, 0.0))  # 40 ms > gpu: the step takes 40 ms
    assert decode_time(large, 4, 4 * 500) == 40 * MS
    # both at once: max(gpu, 40 ms) + 3 ms in series
    both = with_stack(output=(40 * MS, 0.0, 0.0), schedule=(3 * MS, 0.0, 0.0))
    assert decode_time(both, 4, 4 * 500) == pytest.approx(43 * MS, rel=1e-12)


def test_multi_step_scheduling_pays_the_schedule_once_per_steps_on_decode_only():
    gpu_decode = decode_time(ideal_cost(), 8, 8 * 100)
    gpu_prompt = prefill_time(ideal_cost(), 200)
    # 4 ms + 8 x 50 us = 4.4 ms, over 10 steps: 0.44 ms a decode step
    cost = with_stack(schedule=(4 * MS, 50 * US, 0.0), scheduler_steps=10)
    assert decode_time(cost, 8, 8 * 100) == pytest.approx(gpu_decode + 0.44 * MS, rel=1e-12)
    # an iteration with a prompt is scheduled on its own: 4 ms + 1 x 50 us
    assert prefill_time(cost, 200) == pytest.approx(gpu_prompt + 4.05 * MS, rel=1e-12)


def test_the_api_server_is_paid_over_http_and_not_in_process():
    from simulator.profiles.catalog import load_stack
    from simulator.profiles.serving_stack import Frontend
    stack = load_stack("vllm-0.5")
    http = StackCost.of(stack, kernels=324, max_batch=256)
    local = StackCost.of(stack, kernels=324, max_batch=256, frontend=Frontend.IN_PROCESS)
    # a decode step of 256 sequences. schedule: 3.7 ms + 256 x 20 us + 256 x 0.3 us
    # = 8.8968 ms; API server (frontend): 4.2 ms + 256 x 25 us = 10.6 ms; both in series
    assert http.host(256, 256, True) == pytest.approx((19.4968 * MS, 0.0), rel=1e-12)
    assert local.host(256, 256, True) == pytest.approx((8.8968 * MS, 0.0), rel=1e-12)
    # vllm-0.6 runs the API server in its own process: overlapped, so it only floors a step
    v06 = StackCost.of(load_stack("vllm-0.6"), kernels=324, max_batch=256)
    assert v06.host(256, 256, True) == pytest.approx((8.8968 * MS, 10.6 * MS), rel=1e-12)
    # a stack without a frontend part is the same either way
    tgi = load_stack("tgi")
    assert (StackCost.of(tgi, kernels=324, max_batch=256)
            == StackCost.of(tgi, kernels=324, max_batch=256, frontend=Frontend.IN_PROCESS))


def test_a_streaming_harness_pays_the_frontend_where_the_stack_runs_it():
    from simulator.profiles.catalog import load_stack
    from simulator.profiles.serving_stack import Frontend
    streaming = Frontend.IN_PROCESS_STREAMING
    # vllm-0.5: the frontend shares the engine's process, so a harness streaming each
    # step's outputs pays it in series: 8.8968 ms schedule + 10.6 ms frontend, as over http
    v05 = StackCost.of(load_stack("vllm-0.5"), kernels=324, max_batch=256, frontend=streaming)
    assert v05.host(256, 256, True) == pytest.approx((19.4968 * MS, 0.0), rel=1e-12)
    # vllm-0.6 declares its frontend overlapped: the streaming only floors the step
    v06 = StackCost.of(load_stack("vllm-0.6"), kernels=324, max_batch=256, frontend=streaming)
    assert v06.host(256, 256, True) == pytest.approx((8.8968 * MS, 10.6 * MS), rel=1e-12)
    # a whole-results harness pays none of it
    local = StackCost.of(load_stack("vllm-0.6"), kernels=324, max_batch=256,
                         frontend=Frontend.IN_PROCESS)
    assert local.host(256, 256, True) == pytest.approx((8.8968 * MS, 0.0), rel=1e-12)


def test_workload_frontend_reaches_the_replicas_cost():
    # one 100-token prompt, then 2 decode steps; the API server costs 2 ms + 10 us per
    # sequence per iteration in series: 3 iterations x 2.01 ms = 6.03 ms over http
    stack = {"id": "served", "name": "served", "admission": {"value": "continuous",
                                                                "source": "test"},
             "host": {**_host(), "frontend": _host(schedule=(2 * MS, 10 * US, 0.0))["schedule"]}}
    w = {"arrivals": {"process": "offline", "requests": 1}, "prompt_tokens": 100,
         "output_tokens": 3}
    http = run_serving(scenario(w, stack)).result.inference
    local = run_serving(scenario({**w, "frontend": "in_process"}, stack)).result.inference
    streamed = run_serving(scenario({**w, "frontend": "in_process_streaming"},
                                    stack)).result.inference
    ideal = run_serving(scenario(w)).result.inference
    assert http.e2e_s.mean == pytest.approx(ideal.e2e_s.mean + 6.03 * MS, rel=1e-9)
    assert local.e2e_s.mean == ideal.e2e_s.mean
    assert streamed.e2e_s.mean == pytest.approx(http.e2e_s.mean, rel=1e-12)


def test_a_static_generate_loop_has_no_per_sequence_host_work():
    from simulator.profiles.catalog import load_stack
    # optimum-habana: 0.5 ms of schedule + 0.2 ms of output per step, in series, whatever
    # the batch (the batch is one tensor)
    oh = StackCost.of(load_stack("optimum-habana"), kernels=800, max_batch=4000)
    assert oh.host(4000, 4000, True) == pytest.approx((0.7 * MS, 0.0), rel=1e-12)
    assert oh.host(8, 8, True) == pytest.approx((0.7 * MS, 0.0), rel=1e-12)
    assert oh.padded(1234) == 4000  # one compiled shape: every decode step runs the batch
    assert oh.eager_s == 0.0  # HPU graphs / lazy mode: no per-kernel launch
    # TGI's Python model server at the same batch: scheduling 2 ms + 4000 x 10 us + 4000 x
    # 0.05 us = 42.2 ms in series; output 0.5 ms + 4000 x 10 us = 40.5 ms, overlapped with
    # the next step (its generate_token pipelines the CPU work)
    tgi = StackCost.of(load_stack("tgi"), kernels=800, max_batch=4000)
    assert tgi.host(4000, 4000, True) == pytest.approx((42.2 * MS, 40.5 * MS), rel=1e-12)


def test_prompts_are_prefilled_at_their_compiled_bucket():
    cost = StackCost(schedule=(0.0, 0.0, 0.0), schedule_overlapped=False,
                     output=(0.0, 0.0, 0.0), output_overlapped=True, scheduler_steps=1,
                     eager_s=0.0, graph_sizes=(), prompt_buckets=(2048, 4096, 8192, 12288))
    assert not cost.free  # buckets alone make a stack cost something
    # 10,000 -> 12,288; 100 -> 2,048; 20,000 (above every bucket) as it is
    tokens, pairs = cost.pad_prompts([10_000, 100, 20_000])
    assert tokens == 12_288 + 2_048 + 20_000
    assert pairs == 12_288 * 12_289 // 2 + 2_048 * 2_049 // 2 + 20_000 * 20_001 // 2
    assert cost.pad_prompts([2048]) == (2048, 2048 * 2049 // 2)  # a bucket's own length


def test_a_bucketed_prompt_costs_what_its_bucket_costs():
    # one request of 1,000 prompt tokens and 1 output token: its TTFT is one prefill; with a
    # bucket of 2,048 it is the prefill of a 2,048-token prompt without buckets
    stack = {"id": "buckets", "name": "buckets", "host": _host(),
             "admission": {"value": "continuous", "source": "test"},
             "prompt_buckets": {"value": [512, 2048], "source": "test"}}
    one = {"arrivals": {"process": "offline", "requests": 1}, "output_tokens": 1,
           "batching": {"chunked_prefill": False}}
    padded = run_serving(scenario({**one, "prompt_tokens": 1000}, stack)).result.inference
    plain = run_serving(scenario({**one, "prompt_tokens": 2048})).result.inference
    unpadded = run_serving(scenario({**one, "prompt_tokens": 1000})).result.inference
    assert padded.ttft_s.mean == pytest.approx(plain.ttft_s.mean, rel=1e-12)
    assert padded.ttft_s.mean > 1.5 * unpadded.ttft_s.mean


def test_a_replicas_routing_speed_prices_its_prompt_at_the_bucket():
    from simulator.engine.serving.pools import full_batch, replica_speed
    stack = {"id": "buckets", "name": "buckets", "host": _host(),
             "admission": {"value": "continuous", "source": "test"},
             "prompt_buckets": {"value": [1024], "source": "test"}}
    s = scenario({"prompt_tokens": 600, "output_tokens": 120}, stack)
    (pool,) = _pools(s)
    cost, b = pool.cost, full_batch(pool, s.workload)
    # the mean prompt of 600 tokens is prefilled as 1,024 (1024 x 1025 / 2 pairs)
    prefill = cost.step_time(Usage(), 1024, 0, 1024 * 1025 // 2, 1, 0, 0)
    step = cost.step_time(Usage(), 0, 0, 0, 0, b, b * (600 + 60))
    assert replica_speed(pool, s.workload) == pytest.approx(1 / (prefill + 120 * step / b))


def test_decode_attention_runs_at_its_compiled_bucket():
    cost = with_stack(decode_buckets=(2048, 4096, 8192, 12800))
    stack = cost.stack
    assert stack is not None
    assert stack.pad_context(10_000, 1) == 12_800
    assert stack.pad_context(3 * 3000, 3) == 3 * 4096  # a mean context of 3,000 -> 4,096
    assert stack.pad_context(4096, 1) == 4096  # a bucket's own length
    assert stack.pad_context(20_000, 1) == 20_000  # beyond every bucket: as it is
    # a run of 3 steps of one sequence from 10,000 tokens: every step attends over 12,800
    ideal = ideal_cost()
    run = cost.run_price(1, 10_000, 3)
    assert run.contexts == [12_800] * 3
    assert run.time_s == pytest.approx([decode_time(ideal, 1, 12_800)] * 3, rel=1e-12)
    assert decode_time(cost, 1, 12_801) == decode_time(ideal, 1, 12_801)  # not padded


# ---- launches and graphs --------------------------------------------------------------------
def test_an_eager_iteration_takes_at_least_kernels_times_launch():
    ideal = ideal_cost()
    kernels = ideal.model.kernels()
    assert kernels == 324  # 32 layers of 10 kernels, embedding, final norm, head, sampling
    # 324 kernels x 50 us = 16.2 ms, more than the ~5 ms a small decode step computes
    cost = with_stack(eager_s=kernels * 50 * US)
    assert decode_time(cost, 4, 4 * 500) == pytest.approx(16.2 * MS, rel=1e-12)
    # inside a captured graph the launches do not count
    graphed = with_stack(eager_s=kernels * 50 * US, graph_sizes=(1, 2, 4, 8))
    assert decode_time(graphed, 4, 4 * 500) == decode_time(ideal, 4, 4 * 500)


def test_a_decode_batch_is_padded_to_the_next_captured_size():
    ideal = ideal_cost()
    cost = with_stack(graph_sizes=(1, 2, 4, 8, 16))
    step, plain = cost.decode_step(5), ideal.decode_step(5)
    # the GEMMs, norms and head run 8 rows; the attention runs the 5 real sequences
    assert step.const == add_costs(ideal.body(8), ideal.head(8), plain.own)
    assert step.timers == plain.timers
    assert cost.decode_step(8).const == ideal.decode_step(8).const  # a captured size: as is
    # a batch above every captured size runs eagerly, unpadded, at least kernels x launch
    eager = with_stack(graph_sizes=(1, 2, 4, 8), eager_s=30 * MS)
    assert eager.decode_step(9).const == ideal.decode_step(9).const
    assert decode_time(eager, 9, 9 * 100) == 30 * MS
    # without padding a batch between captured sizes runs eagerly too
    unpadded = with_stack(graph_sizes=(1, 2, 4, 8), eager_s=30 * MS, pads=False)
    assert unpadded.decode_step(5).const == plain.const
    assert decode_time(unpadded, 5, 5 * 100) == 30 * MS
    assert decode_time(unpadded, 4, 4 * 100) == decode_time(ideal, 4, 4 * 100)


def test_a_capped_capture_list_stops_at_the_engines_batch_limit():
    from simulator.engine.serving.stack_cost import capped_sizes
    listed = (1, 2, 4, 1024, 2048, 4096, 8192)
    # a limit of 2,304 sequences: 4,096 and 8,192 are never replayed; with padding the limit
    # itself is captured, so a batch of 2,072 runs 2,304 rows, not 4,096
    assert capped_sizes(listed, 2304, pads=True) == (1, 2, 4, 1024, 2048, 2304)
    assert capped_sizes(listed, 2304, pads=False) == (1, 2, 4, 1024, 2048)  # 2,072 eager
    assert capped_sizes(listed, 2048, pads=True) == (1, 2, 4, 1024, 2048)  # listed already
    assert capped_sizes(listed, 16_384, pads=True) == listed  # nothing above the limit
    assert capped_sizes((8, 16), 5, pads=True) == (5,)  # every size above: the limit alone


def test_the_cap_applies_only_where_the_stack_asks_for_it():
    from simulator.profiles.catalog import load_stack
    trtllm = load_stack("trtllm")  # capped, no padding: the list stops at 1,024 for 1,500
    assert StackCost.of(trtllm, kernels=324, max_batch=1500).graph_sizes[-2:] == (512, 1024)
    assert StackCost.of(trtllm, kernels=324, max_batch=4096).graph_sizes[-1] == 2048
    vllm = load_stack("vllm-v1")  # not capped: vLLM captures above max_num_seqs
    listed = vllm.graphs.batch_sizes.value
    assert StackCost.of(vllm, kernels=324, max_batch=100).graph_sizes == listed
    assert max(listed) > 100


def test_padding_makes_a_compute_bound_batch_slower_in_proportion():
    # 1,500 sequences padded to 2,048: the GEMMs are compute-bound there, so the body costs
    # nearly 2048/1500 as much (within the kernel's size-dependent efficiency)
    ideal = ideal_cost()
    ratio = ideal.body(2048).time_s / ideal.body(1500).time_s
    assert 1.2 < ratio < 2048 / 1500 + 0.01


# ---- whole runs ---------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ["vllm-0.5", "tgi", "vllm-v1", "neuron", "jetstream"])
def test_jumping_gives_the_same_results_as_single_stepping_with_a_stack(engine):
    s = scenario({"batching": {"kv_cache_tokens": 30_000, "max_batch_size": 48}}, engine)
    jumped, stepped = run_serving(s), run_serving(s, jump=False)
    assert _records_equal(jumped.requests, stepped.requests) == []
    assert jumped.result.inference.iterations == stepped.result.inference.iterations


def test_jumping_gives_the_same_results_as_single_stepping_with_buckets():
    stack = {"id": "buckets", "name": "buckets", "host": _host(schedule=(1 * MS, 0.0, 0.0)),
             "admission": {"value": "continuous", "source": "test"},
             "prompt_buckets": {"value": [512, 1024, 2048, 4096], "source": "test"},
             "decode_buckets": {"value": [512, 1024, 2048, 4096], "source": "test"}}
    s = scenario({"batching": {"kv_cache_tokens": 30_000, "max_batch_size": 48}}, stack)
    jumped, stepped = run_serving(s), run_serving(s, jump=False)
    assert _records_equal(jumped.requests, stepped.requests) == []
    assert jumped.result.inference.iterations == stepped.result.inference.iterations
    plain = run_serving(scenario({"batching": {"kv_cache_tokens": 30_000,
                                               "max_batch_size": 48}})).result.inference
    assert jumped.result.inference.e2e_s.mean > plain.e2e_s.mean  # padding costs time


def test_cpu_overhead_fraction_is_the_host_share_of_busy_time():
    # one request: a 100-token prompt, then 2 decode steps (3 output tokens). A stack with
    # 1 ms + 1 us per token in series: host = (1 ms + 100 us) + 2 x (1 ms + 1 us) = 3.102 ms
    stack = {"id": "serial", "name": "serial", "admission": {"value": "continuous",
                                                                "source": "test"},
             "host": _host(schedule=(1 * MS, 0.0, 1 * US))}
    w = {"arrivals": {"process": "offline", "requests": 1}, "prompt_tokens": 100,
         "output_tokens": 3}
    out = run_serving(scenario(w, stack)).result.inference
    ideal = run_serving(scenario(w)).result.inference
    assert out.e2e_s.mean == pytest.approx(ideal.e2e_s.mean + 3.102 * MS, rel=1e-9)
    assert out.cpu_overhead_fraction == pytest.approx(3.102 * MS / out.e2e_s.mean, rel=1e-9)
    assert ideal.cpu_overhead_fraction == 0.0
    # the devices compute for the same seconds: the host's 3.102 ms leave them idle
    assert (out.activity.busy * out.duration_s
            == pytest.approx(ideal.activity.busy * ideal.duration_s, rel=1e-9))
    assert out.duration_s == pytest.approx(ideal.duration_s + 3.102 * MS, rel=1e-9)


def _host(schedule=(0.0, 0.0, 0.0), output=(0.0, 0.0, 0.0)) -> dict:
    """A stack's ``host`` mapping: both parts in series, no launch cost."""
    def work(parts):
        names = ("fixed", "per_sequence", "per_new_token")
        return {**{n: {"value": v, "source": "test"} for n, v in zip(names, parts,
                                                                     strict=True)},
                "overlapped": {"value": False, "source": "test"}}
    return {"schedule": work(schedule), "output": work(output),
            "scheduler_steps": {"value": 1, "source": "test"},
            "launch": {"value": 0, "source": "test"}}


def test_static_batching_runs_a_batch_until_its_longest_member_ends(tmp_path):
    # three requests at t=0, 100-token prompts, 3, 5 and 2 output tokens, batches of 2
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n0,100,3\n0,100,5\n0,100,2\n")
    stack = {"id": "static", "name": "static", "host": _host(),
             "admission": {"value": "static", "source": "test"}}
    w = {"arrivals": {"process": "trace", "path": str(trace)},
         "batching": {"max_batch_size": 2}}
    s = scenario(w, stack)
    cost = _pools(s)[0].cost
    two = cost.step_time(Usage(), 200, 0, 2 * (100 * 101 // 2), 2, 0, 0)  # both prompts
    one = prefill_time(cost, 100)
    # decode steps: context is 101 + i tokens per sequence after the prefill
    step2 = [decode_time(cost, 2, 2 * (101 + i)) for i in range(2)]  # requests 0 and 1
    step1 = [decode_time(cost, 1, 101 + i) for i in range(2, 4)]  # request 1 alone
    finish0 = two + step2[0] + step2[1]  # its 3rd token
    finish1 = finish0 + step1[0] + step1[1]  # its 5th token: the batch ends
    # request 2 waits for the whole batch (continuous batching would admit it at finish0)
    finish2 = finish1 + one + decode_time(cost, 1, 101)
    records = run_serving(s).requests
    np.testing.assert_allclose(records.finish_s, [finish0, finish1, finish2], rtol=1e-12)
    np.testing.assert_allclose(records.queue_s, [0, 0, finish1], rtol=1e-12)
    continuous = run_serving(scenario(w)).requests
    assert continuous.queue_s[2] == pytest.approx(finish0, rel=1e-12)


def test_full_batch_pads_every_decode_step_to_max_batch_size():
    # JetStream's fixed decode slots: 5 live sequences of 32 slots cost 32 rows of GEMMs
    s = scenario({"batching": {"max_batch_size": 32}}, "jetstream")
    cost, ideal = _pools(s)[0].cost, ideal_cost()
    assert cost.decode_step(5).const == add_costs(ideal.body(32), ideal.head(32),
                                                  ideal.decode_step(5).own)
