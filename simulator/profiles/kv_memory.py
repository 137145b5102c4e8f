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
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from simulator.profiles.numbers import SPEC_CONFIG
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

