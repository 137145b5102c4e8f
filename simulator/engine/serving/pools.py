"""A serving run's pools of replicas: one layout and role on one hardware profile each,
with the iteration cost, KV capacity and priced speed its replicas share.

A homogeneous fleet is one pool (two when disaggregated: prefill and decode); a mixed fleet
(``workload.pools``) is one pool per entry, each priced on its own hardware through the
scenario's per-pool view (:meth:`~simulator.profiles.scenario.Scenario.pools`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.engine.serving.dp_cost import DataParallelCost
from simulator.engine.serving.dp_ranks import replica_batching
from simulator.engine.serving.iteration_cost import IterationCost
from simulator.engine.serving.kv_cache import KVCapacity, ceil_div, kv_capacity
from simulator.engine.serving.requests import Requests
from simulator.engine.serving.scheduler import Role
from simulator.engine.serving.speculative import Speculation, SpeculativeCost
from simulator.engine.serving.stack_cost import StackCost
from simulator.engine.serving.usage import Usage
from simulator.errors import DoesNotFit
from simulator.perf.layouts import inference_layout
from simulator.perf.moe_balance import moe_imbalance
from simulator.perf.roofline import run_precision
from simulator.perf.serving_iteration import iteration_model
from simulator.profiles.inference import (
    Batching,
    InferenceParallelism,
    InferenceWorkload,
    mean_tokens,
)
from simulator.profiles.moe_routing import LoadBalancer
from simulator.profiles.scenario import Scenario


@dataclass(frozen=True, kw_only=True)
class Pool:
    """Replicas of one layout and role on one hardware, sharing their cost cache and
    cache capacity."""

    role: Role
    replicas: int
    parallelism: InferenceParallelism
    capacity: KVCapacity
    cost: IterationCost
    batching: Batching  # the scheduler's limits (summed over attention DP ranks)
    hardware: str  # the profile's id
    peak_flops: float  # per device, at the run's precision
    hbm_bandwidth: float  # per device


def build_pools(scenario: Scenario, speculation: Speculation | None = None) -> list[Pool]:
    """The scenario's pools: prefill and decode when disaggregated, one per entry of
    ``workload.pools`` on its hardware, else the one pool of ``workload.replicas``."""
    w = scenario.workload
    assert isinstance(w, InferenceWorkload)
    if w.disaggregation is not None:
        d = w.disaggregation
        return [_pool(scenario, Role.PREFILL, d.prefill_replicas,
                      d.prefill_parallelism or w.parallelism, speculation),
                _pool(scenario, Role.DECODE, d.decode_replicas,
                      d.decode_parallelism or w.parallelism, speculation)]
    pools = []
    for part in scenario.pools():
        pw = part.workload
        assert isinstance(pw, InferenceWorkload) and pw.replicas is not None
        pools.append(_pool(part, Role.MIXED, pw.replicas, pw.parallelism, speculation))
    return pools


def _pool(scenario: Scenario, role: Role, count: int, par: InferenceParallelism,
          speculation: Speculation | None) -> Pool:
    """One pool of ``count`` replicas laid out as ``par`` on the scenario's hardware."""
    w = scenario.workload
    assert isinstance(w, InferenceWorkload)
    kv = w.kv_cache_precision
    assert kv is not None
    capacity = kv_capacity(scenario, par)
    if capacity.blocks < 1:
        raise DoesNotFit(f"{scenario.model.id} on {scenario.hardware.id} with tp={par.tp} "
                         f"pp={par.pp}: no room for a single KV-cache block after the "
                         f"weights, the workspace and the runtime reserve")
    imbalance = moe_imbalance(w.moe, scenario.model, par.ep, LoadBalancer.NONE)
    model = iteration_model(scenario.model, inference_layout(par, w.moe), w.precision, kv,
                            imbalance, activation_quant=w.engine.activation_quant,
                            slots=expert_slots(scenario, par), head_16bit=w.engine.head_16bit,
                            moe_gather=gathers_moe_tokens(scenario))
    stack = StackCost.of(w.engine, kernels=model.kernels(),
                         max_batch=w.batching.max_batch_size, frontend=w.frontend)
    if par.attention_dp > 1:  # (speculation is refused with attention DP)
        cost: IterationCost = DataParallelCost(scenario.hardware, model, stack)
    else:
        cost = IterationCost(scenario.hardware, model, stack, speculation=None if (
            speculation is None) else SpeculativeCost(scenario.hardware, model,
                                                      speculation.spec))
        cost.rate = None if speculation is None else speculation.rate
    hw = scenario.hardware
    return Pool(role=role, replicas=count, parallelism=par, capacity=capacity, cost=cost,
                batching=replica_batching(w.batching, par.attention_dp), hardware=hw.id,
                peak_flops=hw.peak(run_precision(hw, w.precision)),
                hbm_bandwidth=hw.hbm_bandwidth)


def gathers_moe_tokens(scenario: Scenario) -> bool:
    """Whether the stack's attention-DP MoE exchange is an all-gather on the scenario's
    hardware (:meth:`~simulator.profiles.serving_stack.ServingStack.gathers_moe_tokens`)."""
    w = scenario.workload
    assert isinstance(w, InferenceWorkload)
    return w.engine.gathers_moe_tokens(scenario.hardware)


def expert_slots(scenario: Scenario, par: InferenceParallelism) -> int:
    """Expert slots of an attention-DP replica (experts + redundant); 0 otherwise."""
    w, moe = scenario.workload, scenario.model.moe
    assert isinstance(w, InferenceWorkload)
    if moe is None or par.attention_dp == 1:
        return 0
    return moe.experts + w.moe.redundant_experts


def full_batch(pool: Pool, w: InferenceWorkload) -> int:
    """Sequences a replica of ``pool`` runs at once serving the workload's mean request: its
    batch limit, or fewer where the KV cache holds fewer whole mean requests (at least 1)."""
    prompt, output = round(mean_tokens(w.prompt_tokens)), round(mean_tokens(w.output_tokens))
    per_request = ceil_div(prompt + output, pool.capacity.block_tokens)
    return max(1, min(pool.batching.max_batch_size, pool.capacity.blocks // per_request))


def replica_speed(pool: Pool, w: InferenceWorkload) -> float:
    """Requests per second a replica of ``pool`` serves at its full batch, priced: one mean
    request costs its prompt's prefill plus its output tokens' share of full-batch decode
    steps at the mean context (prompt + half the output), ``1 / (T_prefill(P) + O x
    T_step(B) / B)``. What ``least_time`` weighs replicas by: the ratio between pools is
    what matters, and it is the ratio of their priced service rates."""
    prompt = max(1, round(mean_tokens(w.prompt_tokens)))
    output = max(1, round(mean_tokens(w.output_tokens)))
    batch = full_batch(pool, w)
    cost = pool.cost
    tokens, pairs = prompt, prompt * (prompt + 1) // 2
    if cost.stack is not None and cost.stack.prompt_buckets:  # prefilled at its bucket
        tokens, pairs = cost.stack.pad_prompts([prompt])
    prefill = cost.step_time(Usage(), tokens, 0, pairs, 1, 0, 0)
    step = cost.step_time(Usage(), 0, 0, 0, 0, batch, batch * (prompt + output // 2))
    return 1.0 / (prefill + output * step / batch)


def droppable(requests: Requests, pools: list[Pool], max_seq_len: int) -> np.ndarray:
    """Requests no replica could ever serve: longer than the model's context, or needing
    more KV blocks than a replica (an attention DP rank: a request lives on one) has: the
    prompt on every pool that prefills, the longest context (prompt + output - 1 tokens) on
    every pool that decodes. On a mixed fleet the router does not look at lengths, so a
    request is served only where every pool could hold it."""
    prompt, output = requests.prompt_tokens, requests.output_tokens
    out = prompt + output > max_seq_len
    for pool in pools:
        blocks = pool.capacity.blocks // pool.parallelism.attention_dp
        if pool.role is not Role.DECODE:
            out |= ceil_div(prompt, pool.capacity.block_tokens) > blocks
        if pool.role is not Role.PREFILL:
            out |= ceil_div(prompt + output - 1, pool.capacity.block_tokens) > blocks
    return out
