"""The paged KV cache of one replica: its capacity in blocks, and blocks in use over time.

Capacity is the HBM a device has left after the weights, the iteration workspace and the
runtime reserve (:func:`simulator.perf.footprint.inference_footprint`), divided by the KV
bytes one token takes on that device, rounded down to whole blocks of ``kv_block_tokens``;
``batching.kv_cache_tokens`` caps it (a what-if). Every device of a replica holds the same
tokens (its share of the heads or the replicated MLA latent), so the replica's capacity in
tokens is one device's.

A sequence whose context is ``c`` tokens holds ``ceil(c / block)`` blocks. During a run of
decode steps every running sequence grows by one token per step; :func:`blocks_over_run`
gives the blocks in use at each step of such a run in O(steps + block) numpy work,
whatever the batch: ``ceil((x + i)/b) = q + 1 + floor((m + i)/b)`` with ``x - 1 = q·b + m``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.errors import DoesNotFit
from simulator.perf.footprint import inference_footprint
from simulator.perf.memory import kv_bytes_per_token
from simulator.profiles.inference import InferenceParallelism, InferenceWorkload
from simulator.profiles.scenario import Scenario


@dataclass(frozen=True)
class KVCapacity:
    """One replica's cache: ``blocks`` of ``block_tokens`` tokens each."""

    blocks: int
    block_tokens: int
    bytes_per_token: float  # on one device

    @property
    def tokens(self) -> int:
        return self.blocks * self.block_tokens

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_tokens)


def kv_capacity(scenario: Scenario, parallelism: InferenceParallelism) -> KVCapacity:
    """The KV cache of a replica laid out as ``parallelism``."""
    w = scenario.workload
    assert isinstance(w, InferenceWorkload)
    footprint = inference_footprint(scenario, tp=parallelism.tp, pp=parallelism.pp)
    kv = w.kv_cache_precision
    assert kv is not None
    per_token = kv_bytes_per_token(scenario.model, kv, parallelism.tp, parallelism.pp)
    block = w.batching.kv_block_tokens
    tokens = max(0.0, footprint.headroom) / per_token
    cap = w.batching.kv_cache_tokens
    if cap is not None:
        if cap > tokens:
            raise DoesNotFit(f"workload.batching.kv_cache_tokens: {cap:,} tokens of KV cache do "
                             f"not fit a replica with tp={parallelism.tp} pp={parallelism.pp}; "
                             f"at most {int(tokens):,} do")
        tokens = cap
    return KVCapacity(int(tokens // block), block, per_token)


def blocks_in_use(contexts: np.ndarray, block: int) -> int:
    """Blocks held by sequences of the given context lengths."""
    return int((-(-contexts // block)).sum())


def blocks_over_run(contexts: np.ndarray, block: int, steps: int) -> np.ndarray:
    """Blocks held at steps 0..steps-1 when every context grows by one token per step."""
    b = len(contexts)
    if b == 0:
        return np.zeros(steps, dtype=np.int64)
    x = contexts - 1
    base = int((x // block).sum()) + b
    # ge[v] = number of sequences whose residue m is >= v (v = 0..block)
    counts = np.bincount(x % block, minlength=block)
    ge = np.concatenate([np.cumsum(counts[::-1])[::-1], [0]])
    i = np.arange(steps, dtype=np.int64)
    return base + b * (i // block) + ge[block - i % block]
