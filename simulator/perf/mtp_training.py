"""Multi-token-prediction (MTP) modules in training: what they compute, hold and save.

DeepSeek-V3 (arXiv 2412.19437, sec. 2.2) trains D = 1 MTP module beside the model: it
RMS-normalizes the main model's last hidden state and the embedding of the next token,
concatenates them (2h), projects them to h, runs one transformer block of the model's own
kind (an MoE layer for DeepSeek-V3) and a final RMSNorm, and predicts the token after next
with the model's shared output head; its cross-entropy is added to the loss (the weight
lambda does not change the work). Megatron Core 0.14 implements it as ``--mtp-num-layers``
(read in megatron-core 0.14.0, transformer/multi_token_prediction.py and
models/gpt/gpt_model.py), which this module follows:

- **where**: every MTP module sits on the last pipeline stage, in its last virtual chunk
  (``get_mtp_num_layers_to_build``: ``is_pipeline_last_stage(ignore_virtual=False)``);
  that stage also builds its own copy of the word embedding (``pre_process or
  mtp_process``), whose gradient is all-reduced with the first stage's.
- **what it computes** per module and token: an embedding lookup (vocab-parallel, reduced
  over TP), ``enorm`` and ``hnorm``, ``eh_proj`` (a column-parallel 2h -> h linear: its
  input all-gathered over sequence-parallel ranks, its output gathered over TP and split
  back over the sequence), one transformer layer, ``final_layernorm``, and a second pass of
  the output layer and the cross-entropy (``output_layer`` applied to each module's hidden
  states).
- **what it saves**: the transformer layer's activations as any layer's; the norms' and
  the projection's inputs; a second logits tensor for its loss. Under full recomputation
  with the uniform method the module is checkpointed whole (only its two inputs kept);
  the block method (``recompute_num_layers`` of each chunk) skips it ("not supported for
  MTP yet"), so it keeps everything.

Inference with the MTP module as a speculative drafter is :mod:`simulator.perf.speculative_ops`.
"""

from __future__ import annotations

from simulator.perf.ops import Collective, Layout
from simulator.perf.opspec import Batch, Comm, Elem, Gemm, Prec, norm
from simulator.profiles.model import ModelProfile, Norm
from simulator.profiles.params import attention_params, count_params, ffn_params
from simulator.profiles.training import FinetuneMethod, TrainingWorkload


def trained_mtp_layers(model: ModelProfile, workload: TrainingWorkload) -> int:
    """The MTP modules a training run trains: the workload's ``mtp_layers``, else the model
    profile's depth (its pre-training recipe), none for LoRA (adapters train the model)."""
    if workload.mtp_layers is not None:
        return workload.mtp_layers
    if model.mtp is None or workload.finetune.method is FinetuneMethod.LORA:
        return 0
    return model.mtp.depth


def mtp_is_moe(model: ModelProfile) -> bool:
    """Whether an MTP module's transformer layer is an MoE layer: it is built from the
    spec of the model's last layer (DeepSeek-V3's module is MoE)."""
    return model.is_moe_layer(model.layers - 1)


def _per_norm(model: ModelProfile) -> float:
    return 2.0 * model.hidden_size if model.norm is Norm.LAYERNORM else float(model.hidden_size)


def mtp_module_params(model: ModelProfile) -> tuple[float, float]:
    """(dense, routed-expert) parameters of one MTP module: its transformer layer (two
    norms), ``enorm``, ``hnorm``, ``final_layernorm`` and the 2h x h projection. The
    embedding and the output head are shared with the model (counted apart)."""
    h = model.hidden_size
    dense = attention_params(model) + 5 * _per_norm(model) + 2.0 * h * h
    expert = 0.0
    if mtp_is_moe(model):
        assert model.moe is not None
        one = ffn_params(model, model.moe.expert_ffn_size)
        expert = model.moe.experts * one
        dense += model.moe.shared_experts * one + h * model.moe.experts
    else:
        dense += ffn_params(model, model.ffn_size)
    return dense, expert


def mtp_stage_params(model: ModelProfile, depth: int, *,
                     holds_embedding: bool) -> tuple[float, float]:
    """(dense, routed-expert) parameters ``depth`` modules add to the stage that runs them,
    unsharded: the modules, and a copy of the word embedding unless the stage already holds
    it (the first stage, or a tied output layer's copy)."""
    if depth <= 0:
        return 0.0, 0.0
    dense, expert = mtp_module_params(model)
    embedding = 0.0 if holds_embedding or model.tied_embeddings \
        else count_params(model).embedding
    return depth * dense + embedding, depth * expert


def mtp_projection_specs(model: ModelProfile, layout: Layout, batch: Batch, p: Prec) -> list:
    """One module's ops between the embedding lookup and its transformer layer: the two
    norms, the concatenation and the column-parallel ``eh_proj`` with its TP traffic."""
    h, tp = model.hidden_size, layout.tp
    t, r = batch.tokens, batch.residual_tokens
    layernorm = model.norm is Norm.LAYERNORM
    sp = layout.sequence_parallel
    return [
        norm("mtp.enorm", r, h, layernorm, p),
        norm("mtp.hnorm", r, h, layernorm, p),
        Elem(name="mtp.concat", flops=0.0, bytes=2 * r * 2 * h * p.eb,
             backward_factor=0.0),  # its gradient is two views of the incoming one
        # column-parallel input: gathered over the sequence with SP (reduce-scattered
        # gradient), else identity forward and an all-reduced gradient
        Comm(name="mtp.eh_proj.input",
             forward_collective=Collective.ALL_GATHER if sp else None,
             bytes=t * 2 * h * p.eb, group=layout.tp_group,
             backward_collectives=(Collective.REDUCE_SCATTER if sp else Collective.ALL_REDUCE,)),
        Gemm(name="mtp.eh_proj", m=t, k=2.0 * h, n=h / tp),
        # gather_from_tensor_model_parallel_region, then the split back over the sequence
        # (whose gradient is an all-gather)
        Comm(name="mtp.eh_proj.gather", forward_collective=Collective.ALL_GATHER,
             bytes=t * h * p.eb, group=layout.tp_group,
             backward_collectives=(Collective.ALL_GATHER,) if sp else ()),
    ]


def mtp_glue_saved_bytes(model: ModelProfile, residual_tokens: float, gemm_input_bytes: float,
                         *, checkpointed: bool) -> float:
    """Bytes one module keeps for backward besides its transformer layer, per microbatch:
    the 16-bit inputs of ``enorm``, ``hnorm`` and ``final_layernorm`` and the projection's
    2h input at the GEMM-input width (``residual_tokens``: the sequence shard with SP).
    Checkpointed whole (full recomputation, uniform), only its two h-wide inputs."""
    h = model.hidden_size
    per_token = 4.0 * h if checkpointed else 3 * 2.0 * h + gemm_input_bytes * 2 * h
    return residual_tokens * per_token


def mtp_flops_per_token(model: ModelProfile, seq_len: int, depth: int) -> float:
    """Model FLOPs (forward and backward, no recomputation) of ``depth`` modules per
    trained token, in :func:`simulator.engine.training.costs.model_flops_per_token`'s
    convention: 6 per active parameter of the module (its layer's, its norms' and the 2h x h
    projection's) and of the second pass of the output head (vocab x h), plus one layer's
    attention scores, 6·heads·(d_qk + d_v)·seq_len. Megatron-Bridge counts the same work in
    its TFLOP/s (read in megatron-bridge 0.3.1, training/utils/flop_utils.py:
    ``num_layers + mtp_num_layers``, the eh projection, the logits ``mtp_num_layers + 1``
    times)."""
    if depth <= 0:
        return 0.0
    dense, _ = mtp_module_params(model)
    active = dense
    if mtp_is_moe(model):
        assert model.moe is not None
        active += model.moe.active_experts * ffn_params(model, model.moe.expert_ffn_size)
    d_qk, d_v = model.score_dims
    attention = 6.0 * model.attention_heads * (d_qk + d_v) * seq_len
    return depth * (6.0 * (active + float(model.vocab_size * model.hidden_size)) + attention)
