"""The busiest attention-DP rank of an iteration: the batch every other rank waits for.

An attention-DP replica's ranks each run the attention of their own requests and meet at
every MoE layer's dispatch, so a layer takes as long as the slowest rank's attention. The
replica's scheduler plans the iteration for all ranks together (its limits are the ranks'
summed); requests are spread over the ranks as evenly as counts allow, as the DP routers of
SGLang (round robin) and TensorRT-LLM (attention-DP balance) do: ``n`` sequences put
``ceil(n/dp)`` on the busiest rank. A prompt lives on one rank, so the busiest rank holds
``ceil(chunks/dp)`` of the iteration's prompt chunks (of the mean chunk's size) and
``ceil(decodes/dp)`` of its decodes (with their mean context). Every rank runs its share
on its own devices; the straggler's wait is the busiest rank's time over the mean rank's.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.engine.serving.kv_cache import ceil_div
from simulator.profiles.inference import Batching


@dataclass(frozen=True, slots=True)
class RankBatch:
    """One rank's part of an iteration: prompt chunks in aggregate (as the scheduler's
    ``Plan`` gives them) and decodes with their total context."""

    prompt_tokens: int
    prompt_cached: int
    prompt_pairs: int
    prompt_sequences: int
    decode_batch: int
    decode_context: int

    @property
    def tokens(self) -> int:
        """New tokens the rank runs: prompt tokens and one per decode."""
        return self.prompt_tokens + self.decode_batch

    @property
    def sequences(self) -> int:
        """Sequences the rank samples a token for."""
        return self.prompt_sequences + self.decode_batch


def _share(total: int, part: int, whole: int) -> int:
    """``total·part/whole`` rounded up (an integer share of a count)."""
    return ceil_div(total * part, whole) if whole else 0


def busiest_rank(dp: int, iteration: RankBatch) -> RankBatch:
    """The busiest of ``dp`` ranks' part of ``iteration`` (the replica's whole iteration):
    ``ceil(n/dp)`` of its prompt chunks and of its decodes, each with their share of the
    tokens, cached tokens, pairs and context (see the module docstring)."""
    if dp < 1:
        raise ValueError(f"a replica has at least one attention DP rank (got {dp})")
    n, d = iteration.prompt_sequences, iteration.decode_batch
    chunks, decodes = ceil_div(n, dp), ceil_div(d, dp)
    tokens, cached = _share(iteration.prompt_tokens, chunks, n), _share(iteration.prompt_cached,
                                                                       chunks, n)
    # one fresh chunk of q tokens covers q(q+1)/2 pairs, exactly
    pairs = (tokens * (tokens + 1) // 2 if chunks == 1 and not cached
             else _share(iteration.prompt_pairs, chunks, n))
    return RankBatch(prompt_tokens=tokens, prompt_cached=cached, prompt_pairs=pairs,
                     prompt_sequences=chunks, decode_batch=decodes,
                     decode_context=_share(iteration.decode_context, decodes, d))


def straggler_wait(dp: int, iteration: RankBatch) -> float:
    """The busiest rank's tokens over the mean rank's (>= 1): how much longer the
    token-proportional work of a layer takes than if the ranks were even."""
    if iteration.tokens == 0:
        return 1.0
    return busiest_rank(dp, iteration).tokens * dp / iteration.tokens


def replica_batching(batching: Batching, dp: int) -> Batching:
    """The scheduler's limits for a replica of ``dp`` attention DP ranks: the ranks'
    batches and token budgets summed (``batching`` gives one rank's, as SGLang and
    TensorRT-LLM schedule each rank on its own), while a prompt's chunk stays one rank's
    budget (a prompt lives on one rank)."""
    if dp == 1:
        return batching
    chunk = batching.chunked_prefill
    return batching.model_copy(update={
        "max_batch_size": batching.max_batch_size * dp,
        "max_tokens_per_step": batching.max_tokens_per_step * dp,
        "chunked_prefill": batching.max_tokens_per_step if chunk is True else chunk})
