"""The shipped `jetstream` stack prefills a prompt at the power-of-two length JetStream's
token_utils.pad_tokens pads it to (its default prefill lengths, 16 to 32,768)."""

from __future__ import annotations

import pytest

from simulator.engine.serving import run_serving
from simulator.engine.serving.stack_cost import StackCost
from simulator.profiles.catalog import load_stack
from tests.engine.test_serving_stacks import scenario


def test_jetstream_pads_prompts_to_powers_of_two_from_16_to_32768():
    cost = StackCost.of(load_stack("jetstream"), kernels=100, max_batch=128)
    assert cost.prompt_buckets == tuple(2 ** k for k in range(4, 16))  # 16 .. 32,768
    # 200 -> 256, 16 -> 16 (a bucket's own length), 17 -> 32, 3 -> 16, 1,025 -> 2,048;
    # 40,000 is longer than every bucket and runs as it is
    tokens, pairs = cost.pad_prompts([200, 16, 17, 3, 1025, 40_000])
    assert tokens == 256 + 16 + 32 + 16 + 2048 + 40_000
    assert pairs == (256 * 257 + 16 * 17 + 32 * 33 + 16 * 17 + 2048 * 2049
                     + 40_000 * 40_001) // 2


def test_a_jetstream_prompt_of_200_tokens_costs_what_one_of_256_costs():
    # one request, one output token: its TTFT is one prefill at the bucket plus the stack's
    # host work, the same for both lengths; a 128-token prompt has a smaller bucket
    one = {"arrivals": {"process": "offline", "requests": 1}, "output_tokens": 1,
           "batching": {"chunked_prefill": False}}

    def ttft(prompt: int) -> float:
        result = run_serving(scenario({**one, "prompt_tokens": prompt}, "jetstream")).result
        return result.inference.ttft_s.mean

    assert ttft(200) == pytest.approx(ttft(256), rel=1e-12)
    assert ttft(129) == pytest.approx(ttft(256), rel=1e-12)
    assert ttft(128) < ttft(129)


def test_jetstream_prefills_one_prompt_per_call():
    assert load_stack("jetstream").max_prompts == 1
    # two equal prompts at t=0, one output token each, on the `ideal` stack (no host work):
    # batched, one prefill of both reads the weights once; one prompt per call, the
    # iteration runs two prefills of one prompt in series, so both first tokens come at
    # twice the TTFT of that prompt served alone
    stack = {"id": "one-prompt", "name": "one prompt", "host": _ideal_host(),
             "admission": {"value": "continuous", "source": "test"},
             "prompts_per_prefill": {"value": 1, "source": "test"}}
    two = {"arrivals": {"process": "offline", "requests": 2}, "output_tokens": 1,
           "prompt_tokens": 500, "batching": {"chunked_prefill": False}}
    one = {**two, "arrivals": {"process": "offline", "requests": 1}}
    alone = run_serving(scenario(one)).requests.ttft_s[0]
    split = run_serving(scenario(two, stack)).requests.ttft_s
    together = run_serving(scenario(two)).requests.ttft_s
    assert split == pytest.approx([2 * alone, 2 * alone], rel=1e-12)
    assert run_serving(scenario(one, stack)).requests.ttft_s[0] == pytest.approx(alone,
                                                                                rel=1e-12)
    assert together[0] == together[1]
    assert alone < together[0] < 2 * alone  # the batched prefill shares the weight reads


def test_a_prompt_beside_decodes_is_its_own_prefill_then_a_decode_step():
    # two prompts of 500 at t=0, a budget of 600 tokens: the first iteration prefills A
    # alone (B does not fit what is left); the second runs B's prefill beside A's first
    # decode (context 500 + 1). With one prompt per call that iteration is B's prefill
    # alone, then a decode step of its own: B's TTFT = p + p + d; fused, p + (one step)
    from simulator.engine.serving.iteration_cost import Usage
    from simulator.engine.serving.pools import build_pools
    from tests.engine.test_serving_stacks import decode_time
    stack = {"id": "one-prompt", "name": "one prompt", "host": _ideal_host(),
             "admission": {"value": "continuous", "source": "test"},
             "prompts_per_prefill": {"value": 1, "source": "test"}}
    two = {"arrivals": {"process": "offline", "requests": 2}, "output_tokens": 3,
           "prompt_tokens": 500,
           "batching": {"chunked_prefill": False, "max_tokens_per_step": 600}}
    cost = build_pools(scenario(two))[0].cost
    p = cost.step_time(Usage(), 500, 0, 500 * 501 // 2, 1, 0, 0)
    fused = cost.step_time(Usage(), 500, 0, 500 * 501 // 2, 1, 1, 501)
    split = run_serving(scenario(two, stack)).requests.ttft_s
    assert sorted(split) == pytest.approx([p, 2 * p + decode_time(cost, 1, 501)], rel=1e-9)
    together = run_serving(scenario(two)).requests.ttft_s
    assert sorted(together) == pytest.approx([p, p + fused], rel=1e-9)
    assert fused < p + decode_time(cost, 1, 501)  # fused, the weights are read once


def _ideal_host() -> dict:
    return load_stack("ideal").model_dump(mode="json")["host"]
