"""The submodules Megatron Core's selective recomputation can checkpoint, by name.

Megatron-LM's ``--recompute-granularity selective --recompute-modules ...`` (megatron-core
0.12+, TransformerConfig.recompute_modules, recalled) names the parts of a layer whose
outputs backward recomputes instead of keeping; the default is ``core_attn`` alone, which
is what ``recompute: selective`` priced before the list existed. The MoE recipes
(DeepSeek-V3, Qwen3) use the others to fit: ``mla_up_proj`` drops MLA's up-projected
queries, keys and values, ``moe_act`` the experts' activation output.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from simulator.profiles.model import AttentionKind, ModelProfile


class RecomputeModule(StrEnum):
    """One checkpointable submodule (the names Megatron's --recompute-modules takes)."""

    CORE_ATTN = "core_attn"  # the attention core (scores, softmax, weighted values)
    MLA_UP_PROJ = "mla_up_proj"  # MLA's q/kv up-projections and RoPE (MLA models)
    LAYERNORM = "layernorm"  # the two pre-norms: their outputs, the QKV and FC1 inputs
    MLP = "mlp"  # a dense MLP block (the dense layers of an MoE model)
    MOE = "moe"  # the whole MoE block, its all-to-alls included (MoE models)
    MOE_ACT = "moe_act"  # the routed experts' activation function (MoE models)
    SHARED_EXPERTS = "shared_experts"  # the shared experts (models with shared experts)


DEFAULT_MODULES = (RecomputeModule.CORE_ATTN,)


def recompute_module_problems(modules: Sequence[RecomputeModule],
                              model: ModelProfile) -> list[str]:
    """Why ``modules`` cannot apply to ``model`` (empty when they all can)."""
    problems = []
    if RecomputeModule.MLA_UP_PROJ in modules and model.attention is not AttentionKind.MLA:
        problems.append(f"mla_up_proj needs multi-head latent attention; {model.id} uses "
                        f"{model.attention.value}")
    moe_only = [m.value for m in modules
                if m in (RecomputeModule.MOE, RecomputeModule.MOE_ACT,
                         RecomputeModule.SHARED_EXPERTS)]
    if moe_only and model.moe is None:
        verb = "needs" if len(moe_only) == 1 else "need"
        problems.append(f"{', '.join(moe_only)} {verb} an MoE model; {model.id} is dense")
    elif (RecomputeModule.SHARED_EXPERTS in modules and model.moe is not None
          and not model.moe.shared_experts):
        problems.append(f"shared_experts: {model.id} has no shared experts")
    return problems
