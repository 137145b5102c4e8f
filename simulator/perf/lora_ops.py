"""LoRA adapters' GEMMs on a transformer layer's projections, split as their base layer is.

An adapter adds x·A·B beside a frozen projection: on a column-parallel projection (q, k, v,
gate, up) A is replicated and B split over TP; on a row-parallel one (o, down) the other way
round, so the adapter needs no collective of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

from simulator.perf.ops import Layout
from simulator.perf.opspec import Batch, Gemm
from simulator.profiles.model import ModelProfile

_COLUMN_TARGETS = {"q": ("h", "q"), "k": ("h", "kv"), "v": ("h", "kv"),
                   "gate": ("h", "f"), "up": ("h", "f")}
_ROW_TARGETS = {"o": ("q", "h"), "down": ("f", "h")}


def lora_specs(model: ModelProfile, layout: Layout, batch: Batch, rank: int,
               targets: Sequence[str]) -> list:
    """Adapter GEMMs x·A·B per target; A is replicated and B split for column-parallel
    targets, the other way round for row-parallel ones (o, down)."""
    tp = layout.tp
    dims = {"h": model.hidden_size, "f": model.ffn_size,
            "q": model.attention_heads * model.head_dim_resolved,
            "kv": model.kv_heads_resolved * model.head_dim_resolved}
    specs: list = []
    a_in: float
    b_out: float
    for target in targets:
        if target in _COLUMN_TARGETS:
            src, dst = _COLUMN_TARGETS[target]
            a_in, b_out = dims[src], dims[dst] / tp
        elif target in _ROW_TARGETS:
            src, dst = _ROW_TARGETS[target]
            a_in, b_out = dims[src] / tp, dims[dst]
        else:
            raise ValueError(f"unknown LoRA target {target!r}; expected one of "
                             f"{sorted(_COLUMN_TARGETS | _ROW_TARGETS)}")
        specs += [Gemm(name=f"lora.{target}.a", m=batch.tokens, k=a_in, n=rank),
                  Gemm(name=f"lora.{target}.b", m=batch.tokens, k=rank, n=b_out)]
    return specs
