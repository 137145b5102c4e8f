"""Speculative decoding in the serving engine: tokens per step against the expected-tokens
formula, TPOT at batch 1 against the ratio derived from the step prices, the break-even
batch, the drafter's memory, determinism, and jumping against single-stepping."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.engine.serving import run_serving
from simulator.engine.serving.iteration_cost import IterationCost
from simulator.engine.serving.kv_cache import kv_capacity
from simulator.engine.serving.speculative import (
    SpeculativeCost,
    StepSampler,
    break_even_batch,
    per_token_time,
)
from simulator.perf.footprint import inference_footprint
from simulator.perf.layouts import inference_layout
from simulator.perf.serving_iteration import iteration_model
from simulator.perf.speculative_ops import expected_tokens, survival
from simulator.profiles.inference import InferenceParallelism
from tests.engine.test_serving_engine import _records_equal, scenario

DRAFT = {"method": "draft_model", "draft_model": "llama3.1-8b", "draft_tokens": 4,
         "acceptance": 0.8}
E = (1 - 0.8 ** 5) / (1 - 0.8)  # 3.3616 tokens a step


def seventy(speculative: dict | None, *, concurrency: int = 1, requests: int | None = None,
            output: int = 257, **extra):
    """Llama 3.1 70B on 8 H100s (TP8), fixed lengths, closed-loop clients: the decode
    batch is the number of clients once they are all decoding."""
    w = {"arrivals": {"process": "closed", "concurrency": concurrency,
                      "requests": requests or 4 * concurrency},
         "prompt_tokens": 128, "output_tokens": output, "engine": "ideal",
         "parallelism": {"tp": 8},
         "batching": {"max_batch_size": 512, "max_tokens_per_step": 16384}, **extra}
    if speculative is not None:
        w["speculative"] = speculative
    return scenario(w, model="llama3.1-70b", accelerators=8)


def test_the_step_sampler_covers_the_tokens_in_about_n_over_e_steps():
    a = np.array(survival((0.8,) * 4))
    sampler = StepSampler(seed=3, survival=a, rate=E)
    steps = [sampler.steps_for(r, 1000) for r in range(400)]
    # a step yields 1 + L tokens, P(L >= i) = 0.8^i for i <= 4: mean E, variance below
    pmf = [0.2, 0.8 * 0.2, 0.64 * 0.2, 0.512 * 0.2, 0.4096]
    var = sum(p * (1 + i) ** 2 for i, p in enumerate(pmf)) - E ** 2
    per_request = np.sqrt(var * 1000 / E ** 3)  # renewal theory: sd of steps to cover 1000
    assert np.mean(steps) == pytest.approx(1000 / E, abs=5 * per_request / np.sqrt(400) + 1)
    assert np.std(steps) == pytest.approx(per_request, rel=0.25)
    assert sampler.tokens == 400 * 1000 and sampler.steps == sum(steps)
    # the same request and tokens to go draw the same steps, whichever sampler asks
    again = StepSampler(seed=3, survival=a, rate=E)
    assert again.steps_for(7, 1000) == steps[7]
    # nothing accepted: one token a step
    none = StepSampler(seed=3, survival=np.array(survival((0.0,) * 3)), rate=1.0)
    assert none.steps_for(0, 321) == 321


@pytest.mark.parametrize("acceptance", [0.8, (0.9, 0.7, 0.5, 0.3)])
def test_the_engines_tokens_per_step_match_the_expected_tokens_formula(acceptance):
    s = seventy({**DRAFT, "acceptance": acceptance}, concurrency=16, requests=96, output=1201)
    m = run_serving(s).result.inference.speculative
    assert m is not None
    a = (acceptance,) * 4 if isinstance(acceptance, float) else acceptance
    expected = 1 + sum(np.cumprod(a))  # 1 + sum_i prod_{j<=i} a_j
    assert m.expected_tokens_per_step == pytest.approx(expected)
    assert m.acceptance == pytest.approx(list(a))
    # 96 requests x 1200 decode tokens; about 34,000 steps: the mean's sd is under 0.01; a
    # request's last step is cut at its length (at most E-1 tokens of 1200 lost)
    assert m.tokens_per_step == pytest.approx(expected, abs=0.05)
    assert m.tokens_per_step <= expected + 0.03
    assert m.verify_steps == pytest.approx(96 * 1200 / expected, rel=0.02)


def _step(cost: IterationCost, batch: int, context: int) -> float:
    return cost.run_price(batch, batch * context, 1).time_s[0]


def test_tpot_at_batch_one_falls_by_the_ratio_of_the_step_prices():
    """At batch 1 a plain step takes t_t (the target's decode), a speculative step
    k·t_d + t_v (four draft passes, one verify over 5 tokens) and yields E tokens:
    TPOT falls by (k·t_d + t_v) / (E·t_t), with E as the requests drew it (a few requests'
    draws spread by a few per cent around the formula's 3.36). The verify pass reads the
    same weights as a decode step, so t_v is close to t_t; the ratio is about
    (4·t_d + t_t) / (3.36·t_t)."""
    plain = run_serving(seventy(None, requests=12)).result.inference.tpot_s.mean
    run = run_serving(seventy(DRAFT, requests=12)).result.inference
    fast = run.tpot_s.mean
    assert run.speculative is not None
    drawn = run.speculative.tokens_per_step  # E as the 12 requests drew it
    assert drawn == pytest.approx(E, abs=0.15)
    s = seventy(DRAFT)
    model = iteration_model(s.model, inference_layout(InferenceParallelism(tp=8)), "bf16",
                            "bf16")
    target = IterationCost(s.hardware, model)
    spec = SpeculativeCost(s.hardware, model, s.workload.speculative)
    spec_cost = IterationCost(s.hardware, model, speculation=spec)
    context = 128 + 128  # the mean context of a 128-token prompt and 257 tokens out
    t_t, t_d = _step(target, 1, context), _step(spec.draft, 1, context)
    t_spec = _step(spec_cost, 1, context)
    # the verify pass: the target's body and head on 5 rows, attention of 5 queries
    t_v = (target.body(5).time_s + target.head(5).time_s
           + target.pricer.cost(model.decode_extra(1, context, 5)).time_s)
    assert t_spec == pytest.approx(4 * t_d + t_v, rel=1e-3)  # (draft contexts: + 0..3)
    assert t_t < t_v < 1.1 * t_t  # verifying 5 tokens costs about one decode step
    ratio = t_spec / (drawn * t_t)
    assert fast / plain == pytest.approx(ratio, rel=0.01)
    assert fast / plain < 0.7  # speculation pays at batch 1


def test_speculation_hurts_past_the_break_even_batch():
    """Decode turns compute-bound as the batch grows, and verifying k+1 tokens a sequence
    then costs k+1 times the compute for E tokens: past the break-even batch, TPOT and
    throughput are worse with speculation."""
    s = seventy(DRAFT)
    model = iteration_model(s.model, inference_layout(InferenceParallelism(tp=8)), "bf16",
                            "bf16")
    plain = IterationCost(s.hardware, model)
    spec = IterationCost(s.hardware, model,
                         speculation=SpeculativeCost(s.hardware, model, s.workload.speculative))
    spec.rate = E
    even = break_even_batch(plain, spec, E, context=256, largest=512)
    assert even is not None and 16 < even < 256
    assert per_token_time(spec, even, 256, E) >= per_token_time(plain, even, 256, 1.0)
    assert per_token_time(spec, even - 1, 256, E) < per_token_time(plain, even - 1, 256, 1.0)
    assert break_even_batch(plain, spec, E, context=256, largest=even - 1) is None
    for clients, pays in ((8, True), (256, False)):
        a = run_serving(seventy(None, concurrency=clients)).result.inference
        b = run_serving(seventy(DRAFT, concurrency=clients)).result.inference
        assert (b.tpot_s.mean < a.tpot_s.mean) is pays, clients
        assert (b.output_tokens_per_s > a.output_tokens_per_s) is pays, clients
        assert b.speculative is not None and b.speculative.break_even_batch == even


def test_the_drafters_weights_and_kv_cache_take_memory():
    plain, fast = seventy(None), seventy(DRAFT)
    a, b = inference_footprint(plain), inference_footprint(fast)
    assert "draft_weights" not in a.parts
    assert b.parts["draft_weights"] == pytest.approx(2 * 8.03e9 / 8, rel=0.01)  # 8B, bf16, tp8
    assert b.headroom == pytest.approx(a.headroom - b.parts["draft_weights"])
    par = InferenceParallelism(tp=8)
    cap_a, cap_b = kv_capacity(plain, par), kv_capacity(fast, par)
    # 70B: 80 layers x 512 B per token and device; the 8B draft adds 32 x 512 B
    assert cap_a.bytes_per_token == 80 * 512
    assert cap_b.bytes_per_token == (80 + 32) * 512
    assert cap_b.blocks == int(b.headroom / (112 * 512) // 16)


def test_a_seed_fixes_the_draws_and_another_seed_changes_them():
    s = seventy(DRAFT, concurrency=4, requests=24)
    a, b = run_serving(s), run_serving(s)
    assert _records_equal(a.requests, b.requests) == []
    other = run_serving(s.model_copy(update={"seed": 1}))
    assert not np.array_equal(a.requests.tpot_s, other.requests.tpot_s)


@pytest.mark.parametrize("workload", [
    {},
    {"batching": {"kv_cache_tokens": 6000, "max_tokens_per_step": 1024},  # preemptions
     "engine": "vllm-v1"},
])
def test_jumping_gives_the_same_results_as_single_stepping(workload):
    s = scenario({"speculative": {"method": "eagle", "draft_tokens": 3,
                                  "acceptance": [0.8, 0.7, 0.6]},
                  "arrivals": {"process": "poisson", "rate_per_s": 20, "requests": 150},
                  **workload})
    jumped, stepped = run_serving(s), run_serving(s, jump=False)
    assert _records_equal(jumped.requests, stepped.requests) == []
    a, b = jumped.result.inference, stepped.result.inference
    assert a.requests == 150
    assert (a.iterations, a.preemptions) == (b.iterations, b.preemptions)
    if workload:
        assert a.preemptions > 0
    assert a.kv_cache_utilization.mean == pytest.approx(b.kv_cache_utilization.mean, rel=1e-12)


def test_nothing_accepted_only_adds_the_drafters_cost():
    """With acceptance 0 a step yields one token, as a plain step does, and costs a draft
    pass more: every request takes as many steps as tokens, and TPOT rises."""
    zero = {"method": "eagle", "draft_tokens": 1, "acceptance": 0.0}
    a = run_serving(seventy(None)).result.inference
    b = run_serving(seventy(zero)).result.inference
    assert b.speculative is not None and b.speculative.tokens_per_step == 1.0
    assert b.speculative.verify_steps == 4 * 256  # 4 requests x 256 tokens after the first
    assert b.iterations == a.iterations
    assert b.tpot_s.mean > a.tpot_s.mean


def test_deepseek_mtp_on_a_rack():
    """DeepSeek-V3's MTP module (depth 1, acceptance 0.875 from the report) drafting one
    token: 1.875 tokens a step, and decoding about 1.8x faster, as the report's 1.8x TPS."""
    base = {"arrivals": {"process": "closed", "concurrency": 1, "requests": 3},
            "prompt_tokens": 256, "output_tokens": 129, "engine": "ideal", "precision": "fp8",
            "parallelism": {"tp": 8, "ep": 8}}
    a = run_serving(scenario(base, model="deepseek-v3", hardware="h200-sxm",
                             accelerators=8)).result.inference
    b = run_serving(scenario({**base, "speculative": {"method": "mtp", "draft_tokens": 1}},
                             model="deepseek-v3", hardware="h200-sxm",
                             accelerators=8)).result.inference
    assert b.speculative is not None
    assert b.speculative.expected_tokens_per_step == pytest.approx(1.875)
    assert 1.4 < a.tpot_s.mean / b.tpot_s.mean < 1.875
    assert expected_tokens((0.875,)) == pytest.approx(1.875)


def test_the_accepted_tokens_kv_is_kept():
    """One request, 128 prompt tokens and 1,025 out: at its end the cache holds its whole
    context, ceil(1,152 / 16) = 72 blocks, with or without speculation (not one token per
    verify step: 315 steps would hold only ceil((128 + 315) / 16) = 28). The batch's KV grows
    by E tokens a step, so a request that drew fewer or more steps than 1,024 / E is off by
    the difference, (steps·E - 1,024) tokens."""
    plain = run_serving(seventy(None, requests=1, output=1025)).result.inference
    fast = run_serving(seventy(DRAFT, requests=1, output=1025)).result.inference

    def blocks(m) -> float:
        replica = m.per_replica[0]
        return replica.kv_cache_utilization.max * replica.kv_cache_tokens / 16

    assert blocks(plain) == pytest.approx(72)
    assert fast.speculative is not None
    steps = fast.speculative.verify_steps
    assert fast.iterations == steps + 1  # the prefill, then one verify step an iteration
    off = abs(steps * E - 1024) / 16 + 1
    assert abs(blocks(fast) - 72) <= off
    assert blocks(fast) > 60
