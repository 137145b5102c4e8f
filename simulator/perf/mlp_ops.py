"""The feed-forward block of one layer, as shapes: dense (gated or not) or mixture of experts.

TP splits the FFN columns (Megatron: column-parallel up/gate, row-parallel down). The routed
experts follow Megatron Core's alltoall token dispatcher with MoE parallel folding: each
device routes its own tokens (its sequence-parallel slice), an all-to-all over the ``ep``
group sends every (token, expert) copy to the rank holding the expert, the ``etp`` devices
of that rank's expert-tensor-parallel group all-gather what they received and each runs
its ``f_e/etp`` columns, and the way back is a reduce-scatter and a second all-to-all.
``etp`` defaults to ``tp`` (Megatron's default). On average a rank's experts receive as
many assignments as it sends; ``imbalance`` (max/mean assignments per EP rank) scales the
busiest rank's expert work and the all-to-all bytes it receives and returns.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from simulator.perf.ops import Collective, Group, Layout
from simulator.perf.opspec import (
    TILE_ROWS,
    Batch,
    Comm,
    Elem,
    Gemm,
    Prec,
    norm,
    tp_entry,
    tp_exit,
)
from simulator.profiles.model import ModelProfile, Norm


@dataclass(frozen=True, kw_only=True)
class ExpertGemm(Gemm):
    """One expert GEMM of a grouped kernel, ``groups`` experts of ``m`` rows each.

    A grouped (or masked) MoE kernel runs each expert as its own tiles; the tile schedule of
    one expert is that of an (m x k) @ (k x n) GEMM, so the size-efficiency curve judges one
    expert's GEMM, not the launch. DeepGEMM's FP8 grouped kernels on H800 (physics_facts
    sec. 1, N=4096, K=7168): 1024 tokens x 1 group 1233 TFLOP/s, 512 x 2 1040, 256 x 4 932 -
    the same total FLOPs, efficiency falling with the rows per group.
    """

    @property
    def size(self) -> float:
        """2·max(m, tile)·k·n: one expert's GEMM."""
        return 2.0 * max(self.m, TILE_ROWS) * self.k * self.n


def ffn(prefix: str, model: ModelProfile, m: float, ffn_local: float, p: Prec,
        groups: float | None = None) -> list:
    """Up (and gate) projection, activation, down projection on ``m`` rows; with ``groups``,
    a grouped expert kernel of that many experts of ``m`` rows each."""
    h, gated = model.hidden_size, model.activation.gated
    kernel = Gemm if groups is None else ExpertGemm
    groups = 1.0 if groups is None else groups
    elements = groups * m * ffn_local
    # gated: read gate and up, write the product; plain: read and write (GELU ~8 FLOPs)
    activation = Elem(name=f"{prefix}.activation", flops=(6.0 if gated else 8.0) * elements,
                      bytes=(3.0 if gated else 2.0) * elements * p.eb)
    up = "gate_up" if gated else "up"
    return [
        kernel(name=f"{prefix}.{up}", m=m, k=h, n=(2 if gated else 1) * ffn_local, groups=groups),
        activation,
        kernel(name=f"{prefix}.down", m=m, k=ffn_local, n=h, groups=groups),
    ]


def dense_mlp_specs(model: ModelProfile, layout: Layout, batch: Batch, p: Prec) -> list:
    """Residual-fused norm, the TP-split dense FFN and its TP reduction."""
    h = model.hidden_size
    return [
        norm("mlp.norm", batch.residual_tokens, h, model.norm is Norm.LAYERNORM, p, add=True),
        *tp_entry("mlp", batch, h, p, layout),
        *ffn("mlp", model, batch.tokens, model.ffn_size / layout.tp, p),
        *tp_exit("mlp", batch, h, p, layout),
    ]


def experts_touched(experts: int, top_k: int, tokens: float) -> float:
    """Expected experts that receive at least one of ``tokens`` tokens: E·(1-(1-k/E)^T).

    Each token picks k of E experts; an expert is missed by one token with probability
    1 - k/E. Routing is treated as uniform and independent between tokens.
    """
    return experts * (1.0 - (1.0 - top_k / experts) ** tokens)


def moe_specs(model: ModelProfile, layout: Layout, batch: Batch, p: Prec,
              imbalance: float = 1.0) -> list:
    """Router, dispatch, routed experts, combine, shared experts, for one MoE layer."""
    assert model.moe is not None
    moe, h = model.moe, model.hidden_size
    ep, etp = layout.ep, layout.expert_tp
    if layout.sequence_parallel is False and layout.tp > 1 and etp != layout.tp:
        raise ValueError(f"expert tensor parallelism etp={etp} different from tp={layout.tp} "
                         f"needs sequence parallelism (each TP rank routes its own tokens)")
    routed = batch.residual_tokens  # this device's tokens: its sequence-parallel slice
    # the ETP group all-gathers its members' received copies, unless they hold the same
    # tokens already (no sequence parallelism: every TP rank has all of them)
    gather = etp if routed < batch.tokens else 1
    e, k = moe.experts, moe.active_experts
    touched = experts_touched(e, k, ep * gather * routed) / ep  # of this rank's e/ep experts
    local = e // ep if ep > 1 else 1  # experts the received rows are sorted over
    received = gather * routed * k * imbalance  # (token, expert) rows on the busiest rank
    specs: list = [
        norm("mlp.norm", batch.residual_tokens, h, model.norm is Norm.LAYERNORM, p, add=True),
        *_route(model, routed, p),
        *_exchange("dispatch", routed * k * imbalance * h * p.ab, gather, layout, k),
        *_local_sort("moe.sort", received * h * p.ab, local),
        *ffn("moe.experts", model, received / touched, moe.expert_ffn_size / etp, p,
             groups=touched),
        *_local_sort("moe.unsort", received * h * p.eb, local),
        *_exchange("combine", routed * k * imbalance * h * p.eb, gather, layout, k),
        Elem(name="moe.unpermute", flops=2.0 * routed * k * h,
             bytes=(routed * k * h + routed * h) * p.eb),
    ]
    return specs + _shared_experts(model, layout, batch, p)


def _route(model: ModelProfile, tokens: float, p: Prec) -> list:
    """Router GEMM (h -> E), top-k over the scores, and the permute that copies each token
    once per chosen expert, grouped by expert (read k copies' rows, write them)."""
    assert model.moe is not None
    h, e, k = model.hidden_size, model.moe.experts, model.moe.active_experts
    return [
        Gemm(name="moe.router", m=tokens, k=h, n=e),
        # read the scores, write k (index, weight) pairs of 4 + 4 bytes per token
        Elem(name="moe.topk", flops=5.0 * tokens * e, bytes=tokens * e * p.eb + tokens * k * 8.0),
        Elem(name="moe.permute", flops=0.0, bytes=2.0 * tokens * k * h * p.eb),
    ]


def _dispatch_group(layout: Layout, copies: int) -> Group:
    """The EP group, carrying the dispatch kernel's per-domain deduplication (DeepEP sends a
    token's ``copies`` once to each remote domain) and node-limited routing."""
    if not layout.ep_dedup:
        return layout.ep_group
    return replace(layout.ep_group, copies=copies, max_domains=layout.ep_max_domains)


def _exchange(step: str, sent: float, gather: int, layout: Layout, copies: int) -> list:
    """The all-to-all of ``step`` (dispatch or combine) over the EP group, and the ETP
    group's all-gather after a dispatch (reduce-scatter before a combine) of what the
    rank received. Tokens are dispatched at the GEMM operand precision (fp8 when the GEMMs
    run in fp8: DeepSeek-V3 report, sec. 3.3.3) and combined in 16 bits."""
    a2a = Comm(name=f"moe.{step}", forward_collective=Collective.ALL_TO_ALL, bytes=sent,
               group=_dispatch_group(layout, copies), backward_collectives=(Collective.ALL_TO_ALL,))
    if gather == 1:
        return [a2a]
    if step == "dispatch":
        return [a2a, Comm(name="moe.etp_all_gather", forward_collective=Collective.ALL_GATHER,
                          bytes=gather * sent, group=layout.etp_group,
                          backward_collectives=(Collective.REDUCE_SCATTER,))]
    return [Comm(name="moe.etp_reduce_scatter", forward_collective=Collective.REDUCE_SCATTER,
                 bytes=gather * sent, group=layout.etp_group,
                 backward_collectives=(Collective.ALL_GATHER,)), a2a]


def _local_sort(name: str, nbytes: float, local_experts: int) -> list:
    """Rows arrive from the all-to-all ordered by source rank; with several local experts
    they are sorted by expert for the grouped GEMM, and back before the combine (Megatron's
    ``sort_chunks_by_idxs``): read and write every received row."""
    if local_experts <= 1:
        return []
    return [Elem(name=name, flops=0.0, bytes=2.0 * nbytes)]


def _shared_experts(model: ModelProfile, layout: Layout, batch: Batch, p: Prec) -> list:
    """The shared experts as a TP-split dense FFN on all of the TP group's tokens; without
    sequence parallelism the TP ranks' partial outputs (shared and routed) are summed by
    the block's all-reduce."""
    assert model.moe is not None
    moe, h = model.moe, model.hidden_size
    if not moe.shared_experts:
        return [] if layout.sequence_parallel else tp_exit("mlp", batch, h, p, layout)
    shared = moe.shared_experts * moe.expert_ffn_size / layout.tp
    return [*tp_entry("mlp.shared", batch, h, p, layout),
            *ffn("moe.shared", model, batch.tokens, shared, p),
            *tp_exit("mlp", batch, h, p, layout)]
