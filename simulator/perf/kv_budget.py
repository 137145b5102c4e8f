"""What a serving stack keeps outside its KV cache: the runtime's context and the share of
memory its budget rule leaves unused (:mod:`simulator.profiles.kv_memory`).

With capacity ``C``, the bytes the engine has loaded ``U`` (weights, a drafter's weights,
the iteration workspace) and the runtime's context ``X`` (CUDA/ROCm context, communication
buffers: :data:`~simulator.perf.memory.RUNTIME_RESERVE_FIXED_BYTES`), a stack with fraction
``f`` keeps for its KV cache

- ``share_of_total``:        ``f·C − U − X``             (vLLM)
- ``share_of_free``:         ``f·(C − U − X)``           (TensorRT-LLM)
- ``static_share_of_total``: ``f·C − W − X``, at most ``C − U − X`` (SGLang: the workspace
  lives in the ``(1 − f)·C`` outside the static pool; where it does not fit there, it takes
  from the pool)

so it leaves unused ``(1 − f)·C``, ``(1 − f)·(C − U − X)`` and ``max(0, (1 − f)·C − (U −
W))`` respectively (``W`` the weights). A stack without the rule keeps ``share_of_total`` at
0.95: 2 GiB plus 5% of capacity beside the model, xpusim's rule before stacks stated theirs
and still the training reserve (:func:`~simulator.perf.memory.runtime_reserve`).
"""

from __future__ import annotations

from simulator.perf.memory import RUNTIME_RESERVE_FIXED_BYTES, RUNTIME_RESERVE_FRACTION
from simulator.profiles.kv_memory import KvBudgetRule, KvCacheMemory

DEFAULT_RULE = KvBudgetRule.SHARE_OF_TOTAL  # with 1 - RUNTIME_RESERVE_FRACTION, 0.95


def kv_reserve(memory: KvCacheMemory | None, *, capacity: float, loaded: float,
               weights: float) -> dict[str, float]:
    """The footprint parts a stack keeps beside what it loaded, so that the device's
    headroom is its KV cache: ``runtime_reserve`` (the context) and ``kv_budget_margin``
    (what its rule leaves unused). ``loaded`` counts every byte the engine holds before its
    KV cache, ``weights`` the model's (and a drafter's) weights among them."""
    rule = DEFAULT_RULE if memory is None else memory.rule.value
    unused = RUNTIME_RESERVE_FRACTION if memory is None else 1.0 - memory.fraction.value
    context = RUNTIME_RESERVE_FIXED_BYTES
    if rule is KvBudgetRule.SHARE_OF_FREE:
        margin = unused * max(0.0, capacity - loaded - context)
    elif rule is KvBudgetRule.STATIC_SHARE_OF_TOTAL:
        margin = max(0.0, unused * capacity - (loaded - weights))
    else:
        margin = unused * capacity
    if memory is None:  # one part, as before stacks stated their rule
        return {"runtime_reserve": context + margin}
    return {"runtime_reserve": context, "kv_budget_margin": margin}
