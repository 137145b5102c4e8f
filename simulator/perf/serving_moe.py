"""A mixture-of-experts layer in a serving replica: attention TP, experts EP on the same devices.

Training carves expert parallelism out of the data-parallel ranks (:func:`moe_specs`). A
serving replica has no data parallelism: vLLM and SGLang run the attention tensor-parallel
over the replica's ``tp`` devices of a pipeline stage and spread the routed experts over the
same devices, ``ep`` expert groups of ``tp/ep`` devices each (expert tensor parallelism
within a group). After the attention block every device holds all ``t`` tokens; each takes
its own ``t/tp`` slice, routes it, and an all-to-all inside the stage dispatches every
(token, expert) copy to the ``tp/ep`` devices of the expert's group and combines the partial
outputs back. Every device then holds its slice's routed output; an all-gather gives every
device all tokens again for the next attention block. Shared experts run TP-split on all
tokens; their partial sums and the routed slices are then summed by one all-reduce instead
(each device adding its slice's rows to its shared partial), which also re-replicates.

On average a device's experts receive ``t·k/ep`` (token, expert) assignments of the layer;
``imbalance`` (max/mean, :mod:`simulator.perf.moe_balance`) scales the busiest device's
share and the all-to-all bytes it receives and returns: the layer waits for it. With
``ep == 1`` this is exactly the tensor-parallel layer of :func:`simulator.perf.mlp_ops.moe_specs`.
"""

from __future__ import annotations

from simulator.perf.mlp_ops import experts_touched, ffn, moe_specs
from simulator.perf.ops import Collective, Layout
from simulator.perf.opspec import Batch, Comm, Elem, Gemm, Prec, norm
from simulator.profiles.model import ModelProfile, Norm


def serving_moe_specs(model: ModelProfile, layout: Layout, batch: Batch, p: Prec,
                      imbalance: float = 1.0) -> list:
    """One MoE layer on one device of a serving replica (see the module docstring)."""
    if layout.ep == 1:
        return moe_specs(model, layout, batch, p, imbalance)
    assert model.moe is not None
    moe = model.moe
    h, t, tp, ep = model.hidden_size, batch.tokens, layout.tp, layout.ep
    if tp % ep:
        raise ValueError(f"serving expert parallelism needs ep ({ep}) to divide tp ({tp}): "
                         f"the experts of a pipeline stage live on its tp devices")
    e, k = moe.experts, moe.active_experts
    group = tp // ep  # devices sharing one expert's FFN columns
    local = t / tp  # this device's slice of the tokens
    touched = experts_touched(e, k, t) / ep  # of this device's e/ep experts
    rows = t * k / ep * imbalance / touched  # assignments per touched expert
    # every copy goes to all devices of its expert group; the busiest device receives (and
    # returns) ``imbalance`` times the mean
    sent = local * k * group * h * p.eb * imbalance
    stage = layout.tp_group
    specs: list = [
        norm("mlp.norm", batch.residual_tokens, h, model.norm is Norm.LAYERNORM, p, add=True),
        Gemm(name="moe.router", m=local, k=h, n=e),
        Elem(name="moe.topk", flops=5.0 * local * e, bytes=local * e * p.eb + local * k * 8.0),
        Elem(name="moe.permute", flops=0.0, bytes=2.0 * local * k * h * p.eb),
        Comm(name="moe.dispatch", forward_collective=Collective.ALL_TO_ALL, bytes=sent,
             group=stage),
        *ffn("moe.experts", model, rows, moe.expert_ffn_size / group, p, groups=touched),
        Comm(name="moe.combine", forward_collective=Collective.ALL_TO_ALL, bytes=sent, group=stage),
        Elem(name="moe.unpermute", flops=2.0 * local * k * h,
             bytes=(local * k * h + local * h) * p.eb),
    ]
    if moe.shared_experts:
        specs += ffn("moe.shared", model, t, moe.shared_experts * moe.expert_ffn_size / tp, p)
        return [*specs, Comm(name="moe.all_reduce", forward_collective=Collective.ALL_REDUCE,
                             bytes=t * h * p.eb, group=stage)]
    return [*specs, Comm(name="moe.all_gather", forward_collective=Collective.ALL_GATHER,
                         bytes=t * h * p.eb, group=stage)]
