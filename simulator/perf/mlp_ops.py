"""The feed-forward block of one layer, as shapes: dense (gated or not) or mixture of experts.

TP splits the FFN columns (Megatron: column-parallel up/gate, row-parallel down), experts
included (expert tensor parallelism equal to TP). EP spreads the routed experts over ``ep``
ranks of the data-parallel dimension; each rank brings its own tokens, so on average a rank's
experts receive as many token-expert assignments as the rank sends (tokens x top_k), and the
expert weights per rank shrink by ``ep``. ``imbalance`` (max/mean tokens per expert) scales
the busiest rank's expert work.
"""

from __future__ import annotations

from simulator.perf.ops import Collective, Layout
from simulator.perf.opspec import (
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


def ffn(prefix: str, model: ModelProfile, m: float, ffn_local: float, p: Prec,
        groups: float = 1.0) -> list:
    """Up (and gate) projection, activation, down projection on ``groups`` x ``m`` rows."""
    h, gated = model.hidden_size, model.activation.gated
    elements = groups * m * ffn_local
    # gated: read gate and up, write the product; plain: read and write (GELU ~8 FLOPs)
    activation = Elem(name=f"{prefix}.activation", flops=(6.0 if gated else 8.0) * elements,
                      bytes=(3.0 if gated else 2.0) * elements * p.eb)
    up = "gate_up" if gated else "up"
    return [
        Gemm(name=f"{prefix}.{up}", m=m, k=h, n=(2 if gated else 1) * ffn_local, groups=groups),
        activation,
        Gemm(name=f"{prefix}.down", m=m, k=ffn_local, n=h, groups=groups),
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
    moe = model.moe
    h, t, tp, ep = model.hidden_size, batch.tokens, layout.tp, layout.ep
    e, k = moe.experts, moe.active_experts
    # the EP group's experts see every rank's tokens; this rank holds e/ep of them
    touched = experts_touched(e, k, t * ep) / ep
    rows = t * k * imbalance / touched  # tokens per touched expert on this rank
    # Tokens are dispatched at the experts' GEMM operand precision (fp8 when the GEMMs run
    # in fp8: DeepSeek-V3 report, sec. 3.3.3) and combined in 16 bits.
    dispatched = batch.residual_tokens * k * h * p.ab
    combined = batch.residual_tokens * k * h * p.eb
    specs: list = [
        norm("mlp.norm", batch.residual_tokens, h, model.norm is Norm.LAYERNORM, p, add=True),
        *tp_entry("mlp", batch, h, p, layout),
        Gemm(name="moe.router", m=t, k=h, n=e),  # replicated over TP
        Elem(name="moe.topk", flops=5.0 * t * e, bytes=t * e * p.eb + t * k * 8.0),
        Elem(name="moe.permute", flops=0.0, bytes=2.0 * t * k * h * p.eb),
        Comm(name="moe.dispatch", forward_collective=Collective.ALL_TO_ALL, bytes=dispatched,
             group=layout.ep_group, backward_collectives=(Collective.ALL_TO_ALL,)),
        *ffn("moe.experts", model, rows, moe.expert_ffn_size / tp, p, groups=touched),
        Comm(name="moe.combine", forward_collective=Collective.ALL_TO_ALL, bytes=combined,
             group=layout.ep_group, backward_collectives=(Collective.ALL_TO_ALL,)),
        Elem(name="moe.unpermute", flops=2.0 * t * k * h, bytes=(t * k * h + t * h) * p.eb),
    ]
    if moe.shared_experts:
        shared = moe.shared_experts * moe.expert_ffn_size / tp
        specs += ffn("moe.shared", model, t, shared, p)
    return specs + tp_exit("mlp", batch, h, p, layout)
