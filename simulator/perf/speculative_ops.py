"""Speculative decoding as ops: the drafter, the verify pass, their memory, and the expected
tokens a step yields.

One speculative step of a batch of ``B`` sequences (draft length ``k``):

- **draft**: ``k`` forward passes of the drafter, one after another, each on ``B`` tokens
  (one per sequence) over the sequences' contexts, each ending in an LM head;
- **verify**: one forward pass of the target over ``B·(k + 1)`` tokens (the last accepted
  token and the ``k`` drafts of each sequence): the weights are read once for ``k + 1``
  times the rows (more FLOPs per byte), the LM head runs on every row, and the attention
  reads each sequence's KV cache once for ``k + 1`` queries
  (:meth:`~simulator.perf.serving_iteration.IterationModel.decode_extra` with ``queries``).

The drafter is an :class:`~simulator.perf.serving_iteration.IterationModel` of its own
profile (:func:`drafter_profile`): the draft model, or a one-layer copy of the target for an
EAGLE head (dense) or an MTP module (the model's MoE block). Both of those also run a
``2h -> h`` projection of the target's hidden state and the token embedding
(:class:`DrafterModel`), and share the target's embedding and LM head, so their weights in
memory are the layer and the projection only (:func:`drafter_memory`).

Expected tokens per step with per-position acceptance ``a_i`` (the chance the i-th draft is
accepted given that the ones before it were): ``E = 1 + sum_i prod_{j<=i} a_j``; for one rate
``a`` that is ``(1 - a^(k+1)) / (1 - a)`` (Leviathan et al. 2023, arXiv 2211.17192, eq. 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate
from operator import mul

from simulator.perf.memory import kv_bytes_per_token, stage_params
from simulator.perf.opspec import Gemm, forward_ops
from simulator.perf.serving_iteration import IterationModel, Op
from simulator.profiles.model import ModelProfile
from simulator.profiles.params import count_params
from simulator.profiles.precision import Precision
from simulator.profiles.speculative import Speculative, SpeculativeMethod


def position_acceptance(spec: Speculative, target: ModelProfile) -> tuple[float, ...]:
    """The acceptance of each of the ``k`` draft positions: the workload's, or for MTP the
    model profile's measured rate at every position."""
    a = spec.acceptance
    if a is None:
        assert target.mtp is not None and target.mtp.acceptance is not None
        a = target.mtp.acceptance.value
    if isinstance(a, tuple):
        return a
    return (float(a),) * spec.draft_tokens


def survival(acceptance: tuple[float, ...]) -> tuple[float, ...]:
    """``prod_{j<=i} a_j`` for each position i: the chance that at least i + 1 drafts are
    accepted."""
    return tuple(accumulate(acceptance, mul))


def expected_tokens(acceptance: tuple[float, ...]) -> float:
    """Tokens a step yields on average: the accepted drafts plus the target's own token,
    ``1 + sum_i prod_{j<=i} a_j``."""
    return 1.0 + sum(survival(acceptance))


def drafter_profile(spec: Speculative, target: ModelProfile) -> ModelProfile:
    """The model one draft pass runs: the draft model, or one layer of the target's kind
    (dense for an EAGLE head; the MoE block for an MTP module)."""
    if spec.method is SpeculativeMethod.DRAFT_MODEL:
        assert spec.draft_model is not None
        return spec.draft_model
    moe = None
    if spec.method is SpeculativeMethod.MTP and target.moe is not None:
        moe = target.moe.model_copy(update={"first_dense_layers": 0, "layer_frequency": 1})
    return target.model_copy(update={"id": f"{target.id}-{spec.method.value}", "layers": 1,
                                     "moe": moe, "mtp": None, "published_params": None})


def _projects(spec: Speculative) -> bool:
    """EAGLE heads and MTP modules project [hidden state; embedding] (2h) down to h."""
    return spec.method is not SpeculativeMethod.DRAFT_MODEL


@dataclass(frozen=True, kw_only=True)
class DrafterModel(IterationModel):
    """A drafter's iteration model: the profile's ops, plus the ``2h -> h`` projection of an
    EAGLE head or MTP module in the body (replicated on every TP rank, as its GEMM is small)."""

    projection: bool = False

    def body(self, tokens: int) -> list[Op]:
        """The layer's ops on ``tokens`` new tokens, and the projection before it."""
        ops = super().body(tokens)
        if self.projection:
            h = self.model.hidden_size
            ops += forward_ops([Gemm(name="draft.fc", m=float(tokens), k=2.0 * h, n=float(h))],
                               self.prec)
        return ops


def drafter_model(spec: Speculative, target: IterationModel) -> DrafterModel:
    """The drafter on the target's layout and precisions."""
    return DrafterModel(model=drafter_profile(spec, target.model), layout=target.layout,
                        weight_precision=target.weight_precision,
                        act_precision=target.act_precision, kv_precision=target.kv_precision,
                        imbalance=target.imbalance, separate_quant=target.separate_quant,
                        projection=_projects(spec))


def _modules(spec: Speculative, target: ModelProfile) -> tuple[int, int]:
    """(drafter copies held in memory, copies whose KV cache is kept): an MTP model holds
    all its ``depth`` modules and a k-step draft uses the first ``min(depth, k)``."""
    if spec.method is SpeculativeMethod.MTP and target.mtp is not None:
        depth = target.mtp.depth
        return depth, min(depth, spec.draft_tokens)
    return 1, 1


def drafter_memory(spec: Speculative, target: ModelProfile, *, weight_precision: Precision,
                   kv_precision: Precision, tp: int) -> tuple[float, float]:
    """(weight bytes, KV bytes per token) the drafter adds to one device of a TP replica.

    A draft model holds all its weights, embedding and head included (sharded over the
    same ``tp``); an EAGLE head or MTP module holds its layer and its ``2h x h`` projection
    (replicated), not the embedding and head it shares with the target.
    """
    drafter = drafter_profile(spec, target)
    params = stage_params(drafter, tp, 1).total
    if _projects(spec):
        counts = count_params(drafter)
        h = drafter.hidden_size
        params -= (counts.embedding + counts.lm_head) / tp
        params += 2.0 * h * h
    held, kept = _modules(spec, target)
    weights = held * params * Precision(weight_precision).bytes_per_element
    return weights, kept * kv_bytes_per_token(drafter, kv_precision, tp, 1)
