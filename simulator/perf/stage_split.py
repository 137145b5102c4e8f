"""How a model's layers may split over pipeline stages: the options a training plan searches.

The first pipeline stage also holds the embedding table and the last the LM head and the
loss, so with equal layer counts the end stages are the heaviest: the first in memory (the
table, its gradients and optimizer state, next to the most microbatches in flight), the last
in memory and time (the head's GEMM of 2·vocab·hidden FLOPs per token). Megatron-LM's
``--decoder-first/last-pipeline-num-layers`` and Llama 3's 405B layout (arXiv 2407.21783
§3.3.2: one layer fewer on the first and the last stage, 7 + 14x8 + 7 over 16 stages) take
layers off the end stages to even this out.

A plan does not try every split. Each end stage may be lighter by 0 up to the ceiling of its
extra weight counted in layers (:func:`end_stage_weights`): for Llama 3.1 405B the table and
the head each weigh 0.66 of a layer, so each end is lighter by 0 or 1. The stages in between
hold ``m`` layers each, ``m`` a multiple of ``vpp`` (each of a stage's ``vpp`` model chunks
holds ``m / vpp`` layers; a lighter end stage's chunk next to the embedding or the head holds
fewer, as in Llama 3).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from simulator.perf.mtp_training import mtp_flops_per_token, mtp_stage_params
from simulator.profiles.model import ModelProfile
from simulator.profiles.params import count_params


@dataclass(frozen=True)
class EndStageWeights:
    """What the end stages hold beyond their layers, in layers of the model's average layer."""

    first: float  # the embedding table: its weights (its compute is a lookup)
    last: float  # the LM head: the larger of its weights and its GEMM's FLOPs

    def lighter_by(self) -> tuple[range, range]:
        """How many layers fewer the first and the last stage may hold: 0 up to the ceiling
        of their weights."""
        return range(math.ceil(self.first) + 1), range(math.ceil(self.last) + 1)


@dataclass(frozen=True, order=True)
class PipelineOption:
    """One way to lay the layers over ``pp`` stages: the end stages' layer counts and the
    model chunks per stage (``vpp``; 1 is a plain, non-interleaved pipeline)."""

    first: int
    last: int
    vpp: int


def end_stage_weights(model: ModelProfile, seq_len: int, mtp: int = 0) -> EndStageWeights:
    """The embedding's and the LM head's weight in layers (see the module docstring).

    A layer's weights are the parameters of the layers over their count; its FLOPs per token
    are twice its active parameters plus the attention scores and their use over a causal
    context, 2·heads·(d_qk + d_v)·seq_len/2. The head has vocab·hidden weights (a copy on the
    last stage even when tied) and 2·vocab·hidden FLOPs per token. ``mtp`` trained
    multi-token-prediction modules add to the last stage their parameters and an embedding
    copy, and per token their FLOPs (:mod:`simulator.perf.mtp_training`, a third of the
    training FLOPs, which count forward and backward) with the head's once more.
    """
    counts = count_params(model)
    ends = counts.embedding + counts.lm_head
    layer_params = (counts.total - ends) / model.layers
    layer_active = (counts.active - ends) / model.layers
    d_qk, d_v = model.score_dims
    layer_flops = 2.0 * layer_active + model.attention_heads * (d_qk + d_v) * seq_len
    table = float(model.vocab_size * model.hidden_size)
    dense, expert = mtp_stage_params(model, mtp, holds_embedding=False)
    # mtp_flops_per_token counts the full score matrix: its causal half here, as above
    causal = 3.0 * model.attention_heads * (d_qk + d_v) * seq_len * mtp
    modules = (mtp_flops_per_token(model, seq_len, mtp) - causal) / 3.0
    return EndStageWeights(first=counts.embedding / layer_params,
                           last=max((table + dense + expert) / layer_params,
                                    (2.0 * table + modules) / layer_flops))


def divisors(n: int) -> list[int]:
    """The divisors of ``n`` in increasing order."""
    return [d for d in range(1, n + 1) if n % d == 0]


def full_stage_layers(layers: int, pp: int, first: int, last: int) -> int | None:
    """The layers of a stage that is not an end stage (None when they do not split evenly);
    with two stages or fewer, the heavier end stage's."""
    if pp <= 2:
        return max(first, last) if first + last == layers or pp == 1 else None
    rest = layers - first - last
    if rest <= 0 or rest % (pp - 2):
        return None
    return rest // (pp - 2)


def pipeline_options(layers: int, pp: int, weights: EndStageWeights, *,
                     vpps: Iterable[int] | None = None,
                     fixed_split: tuple[int | None, int | None] | None = None,
                     ) -> list[PipelineOption]:
    """The splits a plan tries for ``pp`` stages: lighter end stages as the weights allow
    (or ``fixed_split``, the scenario's end-stage counts, None for a full stage), each with
    every ``vpp`` that divides the full stage's layers (or those of ``vpps`` that do) and
    leaves at most one end-stage chunk without layers (Llama 3's embedding-only chunk)."""
    if pp == 1:
        ok = fixed_split in (None, (None, None)) and (vpps is None or 1 in set(vpps))
        return [PipelineOption(layers, layers, 1)] if ok else []
    options: set[PipelineOption] = set()
    for first, last in _end_stages(layers, pp, weights, fixed_split):
        full = full_stage_layers(layers, pp, first, last)
        if full is None or first < 1 or last < 1:
            continue
        allowed = divisors(full) if vpps is None else [v for v in vpps if full % v == 0]
        options.update(PipelineOption(first, last, v) for v in allowed
                       if min(first, last) >= v - 1)
    return sorted(options)


def _end_stages(layers: int, pp: int, weights: EndStageWeights,
                fixed_split: tuple[int | None, int | None] | None) -> list[tuple[int, int]]:
    """The (first, last) layer counts to try: ``m - a`` and ``m - b`` with ``pp·m =
    layers + a + b``, or the fixed split (a full stage where it says None)."""
    if fixed_split is not None:
        first, last = fixed_split
        fixed = [n for n in (first, last) if n is not None]
        if pp == 2:
            full = layers - sum(fixed) if len(fixed) == 1 else layers // 2
            return [(first or full, last or full)]
        middle, left = divmod(layers - sum(fixed), pp - len(fixed))
        return [] if left else [(first or middle, last or middle)]
    pairs = []
    lighter_first, lighter_last = weights.lighter_by()
    for a in lighter_first:
        for b in lighter_last:
            if (layers + a + b) % pp == 0:
                full = (layers + a + b) // pp
                pairs.append((full - a, full - b))
    return pairs
