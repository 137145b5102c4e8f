"""The model chunks of a training pipeline and the parameters one device holds of each.

A pipeline stage holds ``vpp`` chunks (virtual stages) in Megatron's interleaved placement;
:func:`chunk_shapes` says which layers each holds (and the embedding, the LM head and the
multi-token-prediction modules), :func:`chunk_params` how many parameters one device keeps of
a chunk, dense and expert, and how many it trains. The training engine prices and buckets
chunk by chunk; the roofline view reads a stage's data-parallel traffic from the same counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.perf.footprint import lora_params_per_layer
from simulator.perf.memory import even_stage_layers
from simulator.perf.mtp_training import mtp_stage_params
from simulator.profiles.model import ModelProfile
from simulator.profiles.params import ParamCount, attention_params, count_params, ffn_params
from simulator.profiles.training import FinetuneMethod, TrainingWorkload


@dataclass(frozen=True, kw_only=True)
class ChunkShape:
    """The layers one model chunk (a virtual pipeline stage) holds."""

    first_layer: int
    layers: int
    embedding: bool
    lm_head: bool
    mtp: int = 0  # multi-token-prediction modules (on the chunk with the LM head)


@dataclass(frozen=True, kw_only=True)
class ChunkParams:
    """Parameters of one chunk held by one device: dense (split by TP) and expert (by EP·TP),
    and how many of them are trained (all, or LoRA adapters only)."""

    dense: float
    expert: float
    trainable_dense: float
    trainable_expert: float
    gemm_dense: float = 0.0  # of ``dense``: the weights of matrix multiplies in the layers
    # (attention, dense FFN, shared experts; not norms, router, embedding or LM head),
    # which fp8_param_gather keeps in fp8


def chunk_shapes(workload: TrainingWorkload, layers_per_stage: list[int], *,
                 mtp: int = 0) -> list[list[ChunkShape]]:
    """Per pipeline stage, its ``vpp`` chunks in Megatron's interleaved placement.

    Virtual stage ``c·pp + s`` is chunk ``c`` of stage ``s``; a stage's layers split as
    evenly as possible over its chunks; the embedding sits on virtual stage 0 and the LM head
    on the last one, with the ``mtp`` multi-token-prediction modules (Megatron Core builds
    them on the last virtual stage only).
    """
    pp, vpp = len(layers_per_stage), workload.parallelism.vpp
    sizes = [even_stage_layers(n, vpp) for n in layers_per_stage]
    # A lighter first stage lightens its first chunks (the one with the embedding), a lighter
    # last stage its last chunks (Llama 3: the embedding and the LM head get chunks of their
    # own when the end stages hold one layer less).
    sizes[0] = sorted(sizes[0])
    if pp > 1:
        sizes[-1] = _last_stage_chunks(layers_per_stage[-1], vpp, mtp)
    shapes: list[list[ChunkShape | None]] = [[None] * vpp for _ in range(pp)]
    first = 0
    for c in range(vpp):
        for s in range(pp):
            n = sizes[s][c]
            last = s == pp - 1 and c == vpp - 1
            shapes[s][c] = ChunkShape(first_layer=first, layers=n,
                                      embedding=s == 0 and c == 0, lm_head=last,
                                      mtp=mtp if last else 0)
            first += n
    return [[shape for shape in row if shape is not None] for row in shapes]


def _last_stage_chunks(layers: int, vpp: int, mtp: int) -> list[int]:
    """The last stage's layers per chunk, lighter chunks last. Each MTP module takes the
    place of a layer in its last chunk, as Megatron's layouts count it (an ``m`` entry of
    ``--pipeline-model-parallel-layout``; megatron-bridge 0.3.1's DeepSeek-V3 layouts,
    recipes/deepseek/deepseek_v3.py, give the last stage ``decoder x 5 + mtp + loss`` at
    PP8, read): the stage's layers and modules split evenly, the modules' places then
    emptied from the last chunk back."""
    sizes = sorted(even_stage_layers(layers + mtp, vpp), reverse=True)
    left = mtp
    for c in reversed(range(vpp)):
        taken = min(left, sizes[c])
        sizes[c] -= taken
        left -= taken
    return sizes


def chunk_params(model: ModelProfile, workload: TrainingWorkload, shape: ChunkShape,
                 counts: ParamCount | None = None) -> ChunkParams:
    """Per-device parameters of a chunk, as :func:`simulator.perf.memory.all_stage_params`
    counts them (the last stage keeps its own copy of tied embeddings when pp > 1, and of
    the embedding when it runs MTP modules)."""
    par = workload.parallelism
    counts = counts or count_params(model)
    per_norm = counts.norms / (2 * model.layers + 1)
    dense = expert = gemm = 0.0
    for index in range(shape.first_layer, shape.first_layer + shape.layers):
        dense += attention_params(model) + 2 * per_norm
        gemm += attention_params(model)
        if model.is_moe_layer(index):
            assert model.moe is not None
            one = ffn_params(model, model.moe.expert_ffn_size)
            expert += model.moe.experts * one
            dense += model.moe.shared_experts * one + model.hidden_size * model.moe.experts
            gemm += model.moe.shared_experts * one
        else:
            dense += counts.dense_ffn_per_layer
            gemm += counts.dense_ffn_per_layer
    if shape.embedding:
        dense += counts.embedding
    if shape.lm_head:
        tied_copy = model.tied_embeddings and not shape.embedding
        dense += (counts.lm_head or counts.embedding if tied_copy else counts.lm_head) + per_norm
    mtp_dense, mtp_expert = mtp_stage_params(model, shape.mtp, holds_embedding=shape.embedding)
    dense, expert = (dense + mtp_dense) / par.tp, (expert + mtp_expert) / (par.ep * par.expert_tp)
    gemm /= par.tp
    if workload.finetune.method is FinetuneMethod.LORA:
        f = workload.finetune
        adapters = lora_params_per_layer(model, f.rank, f.targets) * shape.layers / par.tp
        return ChunkParams(dense=dense, expert=expert, trainable_dense=adapters,
                           trainable_expert=0.0, gemm_dense=gemm)
    return ChunkParams(dense=dense, expert=expert, trainable_dense=dense,
                       trainable_expert=expert, gemm_dense=gemm)
