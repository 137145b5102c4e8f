"""How a serving stack sizes its KV cache from the device's memory: ``kv_cache_memory``.

Every paged-attention engine takes for its KV cache what a memory budget leaves after the
model, but the budgets differ in what they are a share of:

- ``share_of_total`` (vLLM's ``gpu_memory_utilization``, 0.9 by default): the engine may use
  that share of the device's *total* memory for everything it allocates, weights, the
  activation peak of a profiling run, the memory outside PyTorch (CUDA context, NCCL
  buffers) and the KV cache; the rest of the device stays free.
- ``share_of_free`` (TensorRT-LLM's ``kv_cache_free_gpu_mem_fraction`` /
  ``KvCacheConfig.free_gpu_memory_fraction``, 0.9 by default): the KV cache takes that share
  of the memory still *free* once the engine, its weights and activation buffers and the
  runtime's context are loaded.
- ``static_share_of_total`` (SGLang's ``mem_fraction_static``): weights and KV cache (the
  "static" memory) take that share of total memory, after the runtime's context; activations
  live in the rest.

The arithmetic is :func:`simulator.perf.kv_budget.kv_reserve`; docs/serving.md states it.
A stack without the block keeps xpusim's earlier rule, ``share_of_total`` at 0.95.

What the cache is sized *beside* includes the activation peak of the run the engine profiles
before it sizes the cache; :class:`SamplerMemory` (``sampler_memory``) says what the sampler
holds at that peak, the part of it that grows with the vocabulary
(:mod:`simulator.perf.serving_workspace`).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from simulator.profiles.numbers import SPEC_CONFIG, PositiveFloat
from simulator.profiles.quantities import Fraction, Sourced


class KvBudgetRule(StrEnum):
    """What the stack's memory fraction is a share of."""

    SHARE_OF_TOTAL = "share_of_total"  # vLLM: everything within f x total
    SHARE_OF_FREE = "share_of_free"  # TensorRT-LLM: KV = f x (free after the engine loads)
    STATIC_SHARE_OF_TOTAL = "static_share_of_total"  # SGLang: weights + KV within f x total


class KvCacheMemory(BaseModel):
    """The stack's KV-cache memory budget: a rule and its fraction."""

    model_config = SPEC_CONFIG

    rule: Sourced[KvBudgetRule] = Field(
        description="share_of_total (vLLM gpu_memory_utilization), share_of_free "
                    "(TensorRT-LLM kv_cache_free_gpu_mem_fraction) or static_share_of_total "
                    "(SGLang mem_fraction_static)")
    fraction: Sourced[Fraction] = Field(
        description="the stack's fraction, 0 < f <= 1 (\"90%\" accepted)")


class SamplerMemory(BaseModel):
    """What an engine's sampler holds in the run that sizes the KV cache: the logits of every
    sequence of a full batch and the sort, mask and probability buffers of top-k/top-p,
    all ``sequences x vocabulary`` in size, so large for a large vocabulary."""

    model_config = SPEC_CONFIG

    gathered_logits: Sourced[bool] = Field(
        description="true: the logits are gathered over tensor parallelism and the device "
                    "whose peak binds the cache samples from the whole vocabulary (every "
                    "device where they are all-gathered; the sampling rank where they are "
                    "gathered to it and every rank takes the smallest cache any rank found); "
                    "false: each keeps its 1/tp slice")
    bytes_per_logit: Sourced[PositiveFloat] = Field(
        description="bytes live per (sequence, vocabulary entry) at the sampler's peak: the "
                    "16-bit logits, their fp32 copy and the sampling buffers")
