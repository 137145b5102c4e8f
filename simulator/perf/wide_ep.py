"""A MoE layer of a wide expert-parallel serving replica: attention DP ranks, experts over all.

Large MoE models are served with the attention data-parallel and the experts spread over the
whole replica (SGLang ``--enable-dp-attention --ep``, TensorRT-LLM ``enable_attention_dp``
with ``moe_expert_parallel_size``; DeepSeek-V3/R1 on GB200 NVL72 with EP 8 to 72). A stage of
``attention_dp x tp`` devices holds ``attention_dp`` ranks, each running the attention (and
the dense layers, embedding and LM head) of its own requests on its ``tp`` devices; the
layer's routed experts (``experts + redundant`` slots) are spread over ``ep`` groups of
``etp = attention_dp·tp/ep`` devices.

One MoE layer on the busiest device (the costs the layer waits for):

- its rank's ``t_r`` tokens were all-reduced by the attention, so each of the rank's ``tp``
  devices routes its own ``t_r/tp`` slice (norm, router, top-k, permute);
- **dispatch** (all-to-all over the EP group) sends each (token, expert) copy to the ``etp``
  devices of its expert's group; a device sends ``t_r/tp·k·etp`` copies and the hottest
  expert group's devices receive ``T·k/ep·imbalance`` of the replica's ``T`` tokens, so the
  exchange moves ``k·h·max(t_r·etp/tp, T·imbalance/ep)`` elements on the busiest device.
  Tokens go at the GEMM operand precision (fp8 dispatch, DeepEP and TensorRT-LLM) and come
  back in 16 bits (**combine**; physics_facts sec. 3). With ``deepep`` kernels the prefill
  ("normal", high-throughput) kernels send a token once per remote scale-up domain and
  forward it inside; decode iterations use the low-latency kernels, which send every copy
  on its own (DeepEP's two modes; SGLang's ``--deepep-mode auto``);
- the grouped expert GEMMs run the received rows over the slots they touch;
- each device un-permutes its slice; the rank's ``tp`` devices then all-reduce the slices
  with the shared experts' partial sums (or all-gather them), which re-replicates the rank's
  tokens for the next attention. With ``tp == 1`` nothing is exchanged inside a rank.

Where ``t_r`` differs from ``T/attention_dp`` the other ranks wait at the dispatch for the
slowest: :mod:`simulator.engine.serving.dp_ranks` works out the busiest rank's batch.
"""

from __future__ import annotations

from dataclasses import replace

from simulator.perf.mlp_ops import experts_touched, ffn
from simulator.perf.ops import Collective, Layout
from simulator.perf.opspec import Batch, Comm, Elem, Gemm, Prec, norm
from simulator.profiles.model import ModelProfile, Norm


def dispatch_elements(*, rank_tokens: float, total_tokens: float, layout: Layout,
                      top_k: int, imbalance: float) -> float:
    """Hidden-state rows (times ``h`` elements) the busiest device moves in one dispatch
    (or combine): the larger of what it sends (``t_r/tp·k·etp``) and what the hottest
    expert group's device receives (``T·k/ep·imbalance``)."""
    sent = rank_tokens / layout.tp * top_k * layout.expert_tp
    received = total_tokens * top_k / layout.ep * imbalance
    return max(sent, received)


def wide_ep_moe_specs(model: ModelProfile, layout: Layout, rank: Batch, *, total_tokens: float,
                      p: Prec, imbalance: float, slots: int, low_latency: bool,
                      gather: bool = False) -> list:
    """One MoE layer on the busiest device of an attention-DP x EP stage (module docstring).

    ``rank`` is the busiest DP rank's batch, ``total_tokens`` the replica's; ``slots`` the
    expert slots (experts plus redundant ones); ``low_latency``: a decode iteration, whose
    kernels send every copy on its own even where the layout deduplicates per domain.
    """
    local = rank_moe_specs(model, layout, rank, p)
    exchange = exchange_specs(model, layout, rank.tokens, total_tokens=total_tokens, p=p,
                              imbalance=imbalance, slots=slots, low_latency=low_latency,
                              gather=gather)
    return [*local[:4], *exchange, *local[4:]]


def rank_moe_specs(model: ModelProfile, layout: Layout, rank: Batch, p: Prec) -> list:
    """The parts of the layer that depend on the rank's tokens alone: norm, router, top-k and
    permute before the dispatch; un-permute, shared experts and the rank's TP exchange
    after the combine."""
    assert model.moe is not None
    moe = model.moe
    h, k, tp = model.hidden_size, moe.active_experts, layout.tp
    local = rank.tokens / tp
    specs: list = [
        norm("mlp.norm", rank.residual_tokens, h, model.norm is Norm.LAYERNORM, p, add=True),
        Gemm(name="moe.router", m=local, k=h, n=moe.experts),
        Elem(name="moe.topk", flops=5.0 * local * moe.experts,
             bytes=local * moe.experts * p.eb + local * k * 8.0),
        Elem(name="moe.permute", flops=0.0, bytes=2.0 * local * k * h * p.ab),
        Elem(name="moe.unpermute", flops=2.0 * local * k * h,
             bytes=(local * k * h + local * h) * p.eb),
    ]
    if moe.shared_experts:
        shared = moe.shared_experts * moe.expert_ffn_size / tp
        specs += ffn("moe.shared", model, rank.tokens, shared, p)
    if tp == 1:
        return specs
    collective = Collective.ALL_REDUCE if moe.shared_experts else Collective.ALL_GATHER
    name = "moe.all_reduce" if moe.shared_experts else "moe.all_gather"
    return [*specs, Comm(name=name, forward_collective=collective, bytes=rank.tokens * h * p.eb,
                         group=layout.tp_group)]


def exchange_specs(model: ModelProfile, layout: Layout, rank_tokens: float, *,
                   total_tokens: float, p: Prec, imbalance: float, slots: int,
                   low_latency: bool, gather: bool = False,
                   gathered_tokens: float | None = None) -> list:
    """The parts that depend on every rank's tokens: dispatch, the grouped expert GEMMs over
    the slots the iteration touches, combine. ``gather``: the exchange is an all-gather of
    every rank's tokens and a reduce-scatter of the outputs (:func:`gather_specs`) of
    ``gathered_tokens`` rows (default ``total_tokens``; more where every rank replays a
    CUDA graph padded to one size: the collectives' shapes are the graph's, padded rows
    included, while the padding's rows, copies of one dummy request, add no expert)."""
    assert model.moe is not None
    if gathered_tokens is not None and gathered_tokens < total_tokens:
        raise ValueError(f"the all-gather moves at least the iteration's {total_tokens:g} "
                         f"tokens (got {gathered_tokens:g})")
    moe = model.moe
    h, k, ep, etp = model.hidden_size, moe.active_experts, layout.ep, layout.expert_tp
    received = total_tokens * k / ep * imbalance  # (token, expert) rows on the busiest device
    touched = experts_touched(slots, k, total_tokens) / ep  # of this device's slots/ep
    experts = ffn("moe.experts", model, received / touched, moe.expert_ffn_size / etp, p,
                  groups=touched)
    if gather:
        return gather_specs(model, layout, gathered_tokens or total_tokens, p, experts)
    rows = dispatch_elements(rank_tokens=rank_tokens, total_tokens=total_tokens, layout=layout,
                             top_k=k, imbalance=imbalance)
    group = layout.ep_group
    if layout.ep_dedup and not low_latency:
        group = replace(group, copies=k * etp, max_domains=layout.ep_max_domains)
    return [
        Comm(name="moe.dispatch", forward_collective=Collective.ALL_TO_ALL,
             bytes=rows * h * p.ab, group=group),
        *experts,
        Comm(name="moe.combine", forward_collective=Collective.ALL_TO_ALL,
             bytes=rows * h * p.eb, group=group),
    ]


def gather_specs(model: ModelProfile, layout: Layout, total_tokens: float, p: Prec,
                 experts: list) -> list:
    """The exchange without all-to-all kernels (TensorRT-LLM's attention-DP MoE outside a
    multi-node NVLink domain): every device all-gathers the replica's ``T`` tokens (at the
    GEMM operand precision, with their expert ids and weights), runs its experts on the rows
    routed to them, writes a ``T``-row output in 16 bits (zeros where none of its experts
    was chosen) and reduce-scatters it, so each rank gets back its own tokens summed over
    the devices. Every device moves all ``T`` rows twice, where an all-to-all moves about
    ``T·k/ep`` of them."""
    assert model.moe is not None
    h, k, t = model.hidden_size, model.moe.active_experts, total_tokens
    return [
        Comm(name="moe.gather_tokens", forward_collective=Collective.ALL_GATHER,
             bytes=t * (h * p.ab + 8.0 * k), group=layout.ep_group),
        *experts,
        Elem(name="moe.finalize", flops=0.0, bytes=t * h * p.eb),
        Comm(name="moe.reduce_scatter", forward_collective=Collective.REDUCE_SCATTER,
             bytes=t * h * p.eb, group=layout.ep_group),
    ]
