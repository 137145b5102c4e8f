"""Which of a layer's forward ops selective recomputation runs again, per named submodule.

Megatron Core checkpoints each listed submodule (``--recompute-modules``): backward reruns
its forward just before the gradients that need it. The submodules map to the op specs of
one layer by name: ``core_attn`` the attention core, ``mla_up_proj`` MLA's q/kv
up-projections and the RoPE applied to them (Megatron checkpoints the two together),
``layernorm`` the two pre-norms, ``mlp`` a dense MLP block past its norm, ``moe`` the
whole MoE block past its norm (its all-to-alls run again), ``moe_act`` the experts'
activation function, ``shared_experts`` the shared experts. A GEMM's quantization pass
(fp8/fp4 training) is named after its GEMM and goes with it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from simulator.perf.ops import CommOp, ComputeOp
from simulator.perf.opspec import Core, Prec, forward_ops
from simulator.perf.quantize_ops import Quantize
from simulator.profiles.recompute_modules import RecomputeModule

_PRE_NORMS = ("attn.norm", "mlp.norm")
_ATTENTION_RULES: dict[RecomputeModule, Callable[[object], bool]] = {
    RecomputeModule.CORE_ATTN: lambda spec: isinstance(spec, Core),
    RecomputeModule.MLA_UP_PROJ: lambda spec: _name(spec).startswith(
        ("attn.q_up", "attn.kv_up", "attn.rope")),
    RecomputeModule.LAYERNORM: lambda spec: _name(spec) in _PRE_NORMS,
}
_MOE_RULES: dict[RecomputeModule, Callable[[object], bool]] = {
    RecomputeModule.LAYERNORM: lambda spec: _name(spec) in _PRE_NORMS,
    RecomputeModule.MOE: lambda spec: _name(spec) not in _PRE_NORMS,
    RecomputeModule.MOE_ACT: lambda spec: _name(spec) == "moe.experts.activation",
    RecomputeModule.SHARED_EXPERTS: lambda spec: _name(spec).startswith("moe.shared."),
}
_DENSE_RULES: dict[RecomputeModule, Callable[[object], bool]] = {
    RecomputeModule.LAYERNORM: lambda spec: _name(spec) in _PRE_NORMS,
    RecomputeModule.MLP: lambda spec: _name(spec) not in _PRE_NORMS,
}


def _name(spec: object) -> str:
    """A spec's op name; a quantization pass answers to its GEMM's."""
    if isinstance(spec, Quantize):
        return spec.gemm.name
    return str(getattr(spec, "name", ""))


def _chosen(specs: list, rules: dict[RecomputeModule, Callable[[object], bool]],
            modules: Sequence[RecomputeModule]) -> list:
    """The specs any listed module's rule picks, in forward order."""
    picks = [rules[m] for m in modules if m in rules]
    return [spec for spec in specs if any(pick(spec) for pick in picks)]


def selective_redo(*, attention: list, dense: list, moe: list, n_layers: int, n_moe: int,
                   modules: Sequence[RecomputeModule], p: Prec) -> list[ComputeOp | CommOp]:
    """The forward ops backward repeats for ``modules`` over a stage's ``n_layers`` layers
    (``n_moe`` of them MoE layers), before any renaming as recomputed work."""
    return (forward_ops(_chosen(attention, _ATTENTION_RULES, modules), p, n_layers)
            + forward_ops(_chosen(dense, _DENSE_RULES, modules), p, n_layers - n_moe)
            + forward_ops(_chosen(moe, _MOE_RULES, modules), p, n_moe))
