"""The paged KV cache of one replica: its capacity in blocks, and how blocks are counted.

Capacity is the HBM a device has left after the weights (a speculative drafter's included),
the iteration workspace and the runtime reserve
(:func:`simulator.perf.footprint.inference_footprint`), divided by the KV bytes one token
takes on that device (the target's and the drafter's), rounded down to whole blocks of
``kv_block_tokens``; ``batching.kv_cache_tokens`` caps it (a what-if). A model's
sliding-window layers keep only their window, which lowers the bytes a token of context
takes by the layer average kept at the mean request's context over its life (prompt +
output/2): :mod:`simulator.perf.kv_token_bytes`, the rule the layout search of ``xpusim
compare`` sizes its candidate layouts by as well. Every device of a
replica (of an attention DP rank) holds the same tokens (its share of the heads or the
replicated MLA latent), so the replica's capacity in tokens is one device's times its
attention DP ranks, whose blocks the scheduler pools (a rank's own cache fragmenting is not
modelled).

A sequence whose context is ``c`` tokens holds ``ceil_div(c, block)`` blocks
(:func:`ceil_div`, the one ceiling division of the serving engine). With prefix caching the
blocks several sequences share are held once, and blocks no sequence uses stay cached in the
free space until it is needed (:mod:`~simulator.engine.serving.prefix_cache`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from simulator.errors import DoesNotFit
from simulator.perf.footprint import inference_footprint
from simulator.perf.kv_token_bytes import kv_bytes_per_context_token, kv_tokens_held
from simulator.profiles.inference import InferenceParallelism, InferenceWorkload
from simulator.profiles.scenario import Scenario

Count = TypeVar("Count", int, np.ndarray)


def ceil_div(a: Count, b: int) -> Count:
    """``ceil(a / b)`` in integer arithmetic (``a`` an int or an integer array, ``b > 0``):
    exact where a float division would round. The blocks a context of ``a`` tokens holds
    in blocks of ``b``."""
    return -(-a // b)


@dataclass(frozen=True)
class KVCapacity:
    """One replica's cache: ``blocks`` of ``block_tokens`` tokens each."""

    blocks: int
    block_tokens: int
    bytes_per_token: float  # on one device


def kv_capacity(scenario: Scenario, parallelism: InferenceParallelism) -> KVCapacity:
    """The KV cache of a replica laid out as ``parallelism``."""
    w = scenario.workload
    assert isinstance(w, InferenceWorkload)
    dp = parallelism.attention_dp
    footprint = inference_footprint(scenario, tp=parallelism.tp, pp=parallelism.pp,
                                    attention_dp=dp)
    # sliding-window layers keep only their window, a drafter adds its own K and V: the
    # rule the layout search sizes layouts by too (simulator.perf.kv_token_bytes)
    per_token = kv_bytes_per_context_token(scenario, tp=parallelism.tp, pp=parallelism.pp)
    tokens = kv_tokens_held(scenario, footprint.headroom, tp=parallelism.tp,
                            pp=parallelism.pp, attention_dp=dp)
    block = w.batching.kv_block_tokens
    cap = w.batching.kv_cache_tokens
    if cap is not None:
        if cap > tokens:
            layout = f"tp={parallelism.tp} pp={parallelism.pp}" + (
                f" attention_dp={dp}" if dp > 1 else "")
            raise DoesNotFit(f"workload.batching.kv_cache_tokens: {cap:,} tokens of KV cache do "
                             f"not fit a replica with {layout}; at most {int(tokens):,} do")
        tokens = cap
    return KVCapacity(int(tokens // block), block, per_token)
