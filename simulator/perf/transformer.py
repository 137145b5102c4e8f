"""FLOPs and HBM bytes per device for prefill, decode and training of a transformer.

Each pass is a list of :class:`ComputeOp` (what one device computes and moves) and
:class:`CommOp` (what its TP, CP and EP groups exchange; data- and pipeline-parallel traffic
is left to the engines). Ops of identical layers are merged, ``count`` saying how many.

Conventions (see docs/modelling_ops.md for sources):
- GEMM FLOPs are 2·m·k·n; biases, norms and activations are memory-bound elementwise ops.
- Attention counts QK^T and PV, 2·pairs·(d_qk + d_v) per head, where ``pairs`` are the
  (query, key) pairs attended. Causal self-attention over s tokens has s(s+1)/2 pairs per
  sequence (the exact half, diagonal included); a chunk of q new tokens after c cached ones
  has q·c + q(q+1)/2; a decode token attends to its whole context.
- Backward: an input-gradient and a weight-gradient GEMM per forward GEMM (2x its FLOPs);
  the attention core 2.5x (FlashAttention-2 recomputes the scores).
- Weights are read once per pass per device; decode reads the KV cache, prefill writes it.
- The LM head runs on every token in training, on each sequence's last token in inference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from simulator.perf.attention_ops import attention_specs
from simulator.perf.lora_ops import lora_specs
from simulator.perf.mlp_ops import dense_mlp_specs, moe_specs
from simulator.perf.mtp_training import mtp_is_moe, mtp_projection_specs
from simulator.perf.ops import Collective, CommOp, ComputeOp, Layout, OpKind
from simulator.perf.opspec import (
    Batch,
    Comm,
    Elem,
    Gemm,
    Grad,
    Phase,
    Prec,
    backward_ops,
    forward_ops,
    norm,
)
from simulator.perf.quantize_ops import QuantRecipe, weight_quantization, with_quantization
from simulator.perf.recompute_modules import selective_redo
from simulator.profiles.model import ModelProfile, Norm, PositionEmbedding
from simulator.profiles.precision import Precision
from simulator.profiles.recompute_modules import DEFAULT_MODULES, RecomputeModule

Op = ComputeOp | CommOp
RECOMPUTE_PREFIX = "recompute."
LOGIT_BYTES = 4.0  # the cross-entropy works on fp32 logits


@dataclass(frozen=True, kw_only=True)
class StageLayers:
    """The layers one pipeline stage runs, and whether it holds the model's two ends: what
    the op lists need of a stage (the training engine's ``Stage`` is the stage it runs)."""

    first_layer: int = 0
    layers: int | None = None  # None: through the last layer
    embedding: bool = True
    lm_head: bool = True
    mtp: int = 0  # multi-token-prediction modules (perf.mtp_training), with the LM head

    @classmethod
    def of(cls, stage_layers: Sequence[int], index: int) -> StageLayers:
        """Stage ``index`` of a pipeline whose stages hold ``stage_layers`` layers each."""
        return cls(first_layer=sum(stage_layers[:index]), layers=stage_layers[index],
                   embedding=index == 0, lm_head=index == len(stage_layers) - 1)

    def layer_indices(self, model: ModelProfile) -> range:
        """The model's layers this stage runs (checked against the model)."""
        end = model.layers if self.layers is None else self.first_layer + self.layers
        if not 0 <= self.first_layer <= end <= model.layers:
            raise ValueError(f"stage layers {self.first_layer}..{end} outside the model's "
                             f"{model.layers}")
        return range(self.first_layer, end)


@dataclass(frozen=True)
class TrainingOps:
    """One microbatch on one stage. ``backward`` starts with any recomputed forward work
    (names prefixed ``recompute.``), which runs just before the gradients it feeds.
    ``step`` is work done once per optimizer step, not per microbatch (the weights'
    low-precision quantization)."""

    forward: list[Op]
    backward: list[Op]
    step: list[Op] = field(default_factory=list)

    @property
    def recompute(self) -> list[Op]:
        """The forward work the backward repeats."""
        return [op for op in self.backward if op.name.startswith(RECOMPUTE_PREFIX)]


# ---- precisions and batches -------------------------------------------------------------
def _wide(p: Precision) -> Precision:
    """Elementwise kernels and the attention core keep 16 bits when GEMMs go below."""
    return p if p.bytes_per_element >= 2 else Precision.BF16


def _inference_prec(weight: Precision | str, act: Precision | str,
                    kv: Precision | str) -> Prec:
    w, a = Precision(weight), Precision(act)
    # weight-only quantized GEMMs (W4A16, W8A16) dequantize and run at the activation precision
    compute = w if w.bytes_per_element > a.bytes_per_element else a
    return Prec(weight=w, act=a, compute=compute, kv=Precision(kv), other=_wide(a))


def _residual(tokens: float, layout: Layout) -> float:
    return tokens / layout.tp if layout.sequence_parallel else tokens


def prefill_batch(layout: Layout, prompt_lens: Sequence[int],
                  context_before: Sequence[int] | None = None) -> Batch:
    """New tokens q after c cached ones, per sequence; CP splits each sequence's tokens."""
    q = [float(n) for n in prompt_lens]
    c = [float(n) for n in (context_before if context_before is not None else [0] * len(q))]
    if not q or min(q) <= 0 or len(c) != len(q) or min(c) < 0:
        raise ValueError("prompt_lens must be positive, context_before (if given) as long "
                         "and non-negative")
    tokens = sum(q) / layout.cp
    pairs = sum(qi * ci + qi * (qi + 1) / 2 for qi, ci in zip(q, c, strict=True)) / layout.cp
    return Batch(phase=Phase.PREFILL, tokens=tokens, residual_tokens=_residual(tokens, layout),
                 sequences=len(q), pairs=pairs, kv_tokens=sum(q) + sum(c),
                 cached=sum(c) / layout.cp)


def decode_batch(layout: Layout, context_lens: Sequence[int]) -> Batch:
    """One new token per sequence, attending to ``context_lens`` keys (itself included);
    CP shards each context, every rank computing partial attention for all tokens."""
    if not context_lens or min(context_lens) <= 0:
        raise ValueError("context_lens must be a non-empty list of positive lengths")
    tokens = float(len(context_lens))
    kv = sum(context_lens) / layout.cp
    return Batch(phase=Phase.DECODE, tokens=tokens, residual_tokens=_residual(tokens, layout),
                 sequences=len(context_lens), pairs=kv, kv_tokens=kv, cached=kv)


def training_batch(layout: Layout, seq_len: int, micro_batch: int,
                   flash_attention: bool = True, attention_block: int | None = None) -> Batch:
    """CP splits the sequence (load-balanced causal chunks); K/V of the whole sequence is read.

    Without FlashAttention the score GEMMs compute the whole s x s square (the causal mask is
    applied to the scores afterwards), so every pair is computed, not half of them. With an
    ``attention_block`` B the kernel skips only blocks wholly above the diagonal and computes
    the diagonal ones whole (Splash attention's block mask): n = s/B blocks a side compute
    B²·n(n+1)/2 pairs, s(s+B)/2, instead of the exact s(s+1)/2.
    """
    tokens = micro_batch * seq_len / layout.cp
    if not flash_attention:
        pairs = micro_batch * seq_len * seq_len / layout.cp
    else:
        granule = attention_block or 1
        pairs = micro_batch * seq_len * (seq_len + granule) / 2 / layout.cp
    return Batch(phase=Phase.TRAIN, tokens=tokens, residual_tokens=_residual(tokens, layout),
                 sequences=micro_batch, pairs=pairs, kv_tokens=float(micro_batch * seq_len),
                 cached=0.0, materialized=not flash_attention)


# ---- the model's ends -------------------------------------------------------------------
def embedding_specs(model: ModelProfile, layout: Layout, batch: Batch, p: Prec) -> list:
    """Vocab-parallel gather: each TP rank reads the rows in its shard, then the partial
    outputs are summed (all-reduce; reduce-scatter with sequence parallelism)."""
    h, t = model.hidden_size, batch.tokens
    sp = layout.sequence_parallel
    specs: list = [
        Elem(name="embedding", flops=0.0, bytes=t * h * p.wb / layout.tp + t * h * p.eb,
             kind=OpKind.EMBEDDING, backward_factor=0.0),
        Grad(name="embedding.wgrad", kind=OpKind.EMBEDDING, flops=t * h / layout.tp,
             bytes=t * h * p.eb + t * h / layout.tp * 8.0),  # scatter-add into the fp32 grad
        Comm(name="embedding.tp_reduce",
             forward_collective=Collective.REDUCE_SCATTER if sp else Collective.ALL_REDUCE,
             bytes=t * h * p.eb, group=layout.tp_group,
             backward_collectives=(Collective.ALL_GATHER,) if sp else ()),
    ]
    if model.position_embedding is PositionEmbedding.LEARNED:
        e = batch.residual_tokens * h
        specs.append(Elem(name="embedding.positions", flops=e, bytes=e * (2 * p.eb + p.wb)))
    return specs


def head_specs(model: ModelProfile, layout: Layout, batch: Batch, p: Prec) -> list:
    """Final norm, the vocab-parallel LM head and, in training, the loss."""
    h, v, tp = model.hidden_size, model.vocab_size, layout.tp
    specs: list = [norm("final_norm", batch.residual_tokens, h,
                        model.norm is Norm.LAYERNORM, p, add=True)]
    if batch.phase is not Phase.TRAIN:
        rows = batch.sequences  # only the last token of each sequence is sampled
        return [*specs, Gemm(name="lm_head", m=rows, k=h, n=v / tp),
                Comm(name="lm_head.logits_all_gather", forward_collective=Collective.ALL_GATHER,
                     bytes=rows * v * p.eb, group=layout.tp_group),
                Elem(name="sampling", flops=5.0 * rows * v, bytes=rows * v * (p.eb + LOGIT_BYTES))]
    t = batch.tokens
    if layout.sequence_parallel:
        specs.append(Comm(name="lm_head.sp_all_gather", forward_collective=Collective.ALL_GATHER,
                          bytes=t * h * p.eb, group=layout.tp_group,
                          backward_collectives=(Collective.REDUCE_SCATTER,)))
    else:  # column-parallel input: identity forward, all-reduce of its gradient
        specs.append(Comm(name="lm_head.input", forward_collective=None, bytes=t * h * p.eb,
                          group=layout.tp_group, backward_collectives=(Collective.ALL_REDUCE,)))
    logits = t * v / tp
    return [*specs, Gemm(name="lm_head", m=t, k=h, n=v / tp),
            Elem(name="loss", flops=5.0 * logits, bytes=logits * (p.eb + 3 * LOGIT_BYTES),
                 backward_factor=0.5),
            Comm(name="loss.tp_all_reduce", forward_collective=Collective.ALL_REDUCE,
                 bytes=3 * t * LOGIT_BYTES, group=layout.tp_group)]


# ---- passes -------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class _Layers:
    attention: list
    dense: list
    moe: list
    n_layers: int
    n_moe: int

    def forward(self, p: Prec) -> list[Op]:
        """The forward ops of the stage's layers (attention, dense MLPs, MoE layers)."""
        return (forward_ops(self.attention, p, self.n_layers)
                + forward_ops(self.dense, p, self.n_layers - self.n_moe)
                + forward_ops(self.moe, p, self.n_moe))

    def backward(self, p: Prec) -> list[Op]:
        """The backward ops of the stage's layers, in the same grouping as :meth:`forward`."""
        return (backward_ops(self.moe, p, self.n_moe)
                + backward_ops(self.dense, p, self.n_layers - self.n_moe)
                + backward_ops(self.attention, p, self.n_layers))


def _first_layers(layers: _Layers, model: ModelProfile, stage: StageLayers,
                  count: int | None) -> _Layers:
    """The stage's first ``count`` layers (all of them when ``count`` is None): those
    Megatron-LM's block recomputation (``--recompute-num-layers``) runs again."""
    if count is None:
        return layers
    first = stage.layer_indices(model)[:max(0, count)]  # never an MTP module's layer
    return replace(layers, n_layers=len(first), n_moe=sum(model.is_moe_layer(i) for i in first))


def _layers(model: ModelProfile, layout: Layout, batch: Batch, p: Prec, stage: StageLayers,
            imbalance: float) -> _Layers:
    if imbalance < 1.0:
        raise ValueError(f"imbalance is max/mean tokens per expert, at least 1 (got "
                         f"{imbalance})")
    indices = stage.layer_indices(model)  # and the MTP modules' layers, of the last's kind
    n_moe = sum(model.is_moe_layer(i) for i in indices) + stage.mtp * mtp_is_moe(model)
    moe = moe_specs(model, layout, batch, p, imbalance) if n_moe else []
    return _Layers(attention=attention_specs(model, layout, batch, p),
                   dense=dense_mlp_specs(model, layout, batch, p), moe=moe,
                   n_layers=len(indices) + stage.mtp, n_moe=n_moe)


def _inference_pass(model: ModelProfile, layout: Layout, batch: Batch, p: Prec,
                    stage: StageLayers | None, imbalance: float) -> list[Op]:
    stage = stage or StageLayers()
    ops: list[Op] = []
    if stage.embedding:
        ops += forward_ops(embedding_specs(model, layout, batch, p), p)
    ops += _layers(model, layout, batch, p, stage, imbalance).forward(p)
    if stage.lm_head:
        ops += forward_ops(head_specs(model, layout, batch, p), p)
    return ops


def prefill_ops(model: ModelProfile, layout: Layout, prompt_lens: Sequence[int],
                weight_precision: Precision | str, act_precision: Precision | str,
                kv_precision: Precision | str, context_before: Sequence[int] | None = None,
                *, stage: StageLayers | None = None, imbalance: float = 1.0) -> list[Op]:
    """Prefill of a batch of prompts or prompt chunks (``context_before`` tokens already
    cached per sequence), on one device of ``layout``."""
    batch = prefill_batch(layout, prompt_lens, context_before)
    p = _inference_prec(weight_precision, act_precision, kv_precision)
    return _inference_pass(model, layout, batch, p, stage, imbalance)


def decode_ops(model: ModelProfile, layout: Layout, context_lens: Sequence[int],
               weight_precision: Precision | str, kv_precision: Precision | str, *,
               act_precision: Precision | str = Precision.BF16,
               stage: StageLayers | None = None, imbalance: float = 1.0) -> list[Op]:
    """One decode step: one new token per sequence, attending to ``context_lens`` keys."""
    batch = decode_batch(layout, context_lens)
    p = _inference_prec(weight_precision, act_precision, kv_precision)
    return _inference_pass(model, layout, batch, p, stage, imbalance)


def _quantized(layers: _Layers, recipe: QuantRecipe | None) -> _Layers:
    """The layers with their GEMMs' quantization passes (low-precision training)."""
    return _Layers(attention=with_quantization(layers.attention, recipe),
                   dense=with_quantization(layers.dense, recipe),
                   moe=with_quantization(layers.moe, recipe), n_layers=layers.n_layers,
                   n_moe=layers.n_moe)


def _weight_quantization(layers: _Layers, p: Prec, mtp_in: list, depth: int) -> list[Op]:
    """Each layer's weights quantized once per step (the MTP modules' layers among them),
    and the ``depth`` modules' projections (``mtp_in``: a TE linear in the fp8 autocast,
    whose quantized weight is cached over a step's microbatches as the layers' are)."""
    return [*weight_quantization(layers.attention, p, layers.n_layers),
            *weight_quantization(layers.dense, p, layers.n_layers - layers.n_moe),
            *weight_quantization(layers.moe, p, layers.n_moe),
            *weight_quantization(mtp_in, p, depth)]


def _freeze(specs: list) -> list:
    """LoRA: base weights get no gradient; input gradients still flow through them."""
    kept = [s for s in specs if not isinstance(s, Grad)]
    return [replace(s, frozen=True) if isinstance(s, Gemm) else s for s in kept]


def _mtp_ends(model: ModelProfile, layout: Layout, batch: Batch, p: tuple[Prec, Prec],
              depth: int, quantization: QuantRecipe | None) -> tuple[list, list, list[Op]]:
    """The ``depth`` MTP modules' specs around their layers (:mod:`simulator.perf.
    mtp_training`): the embedding lookup and the projection (in the fp8 autocast, as its
    layer), and its final norm, second LM-head pass and loss (priced like the model's head);
    ``p`` holds the layers' and the head's precisions. Third, the forward ops the uniform
    full recomputation runs again besides the layers: it checkpoints each module's
    projection, layer and final norm as one (megatron-core 0.14.0,
    ``MultiTokenPredictionLayer.forward``: ``_checkpointed_forward`` of
    ``_proj_and_transformer_layer``, read); the lookup runs before it, the head after."""
    if depth <= 0:
        return [], [], []
    projection = with_quantization(mtp_projection_specs(model, layout, batch, p[0]),
                                   quantization)
    out = head_specs(model, layout, batch, p[1])
    redo = forward_ops(projection, p[0], depth) + forward_ops(out[:1], p[1], depth)
    return embedding_specs(model, layout, batch, p[0]) + projection, out, redo


def training_ops(model: ModelProfile, layout: Layout, seq_len: int, micro_batch: int,
                 precision: Precision | str, recompute: str = "none",
                 lora: tuple[int, Sequence[str]] | None = None, *,
                 stage: StageLayers | None = None, imbalance: float = 1.0,
                 flash_attention: bool = True,
                 quantization: QuantRecipe | None = None,
                 recompute_layers: int | None = None,
                 fp8_attention: bool = False,
                 recompute_modules: Sequence[RecomputeModule] | None = None,
                 attention_block: int | None = None) -> TrainingOps:
    """Forward and backward of one microbatch on one pipeline stage (``stage``, default the
    whole model). ``recompute``: "none", "selective" (attention core again) or "full" (the
    stage's layers forward again; with ``recompute_layers``, only its first that many, as
    Megatron-LM's block method does). ``lora``: (rank, targets) with the base frozen.
    ``flash_attention``: false for frameworks that write the attention scores to HBM.
    ``quantization``: the low-precision recipe whose passes precede the layers' GEMMs.
    ``fp8_attention``: the attention core runs in fp8 (Transformer Engine's fp8 DPA).
    ``recompute_modules``: what "selective" redoes (default the attention core).
    ``attention_block``: the fused attention kernel's causal block (see training_batch)."""
    if recompute not in ("none", "selective", "full"):
        raise ValueError(f"recompute must be none, selective or full (got {recompute!r})")
    stage = stage or StageLayers()
    prec = Precision(precision)
    p = Prec(weight=prec, act=prec, compute=prec, kv=prec, other=_wide(prec),
             attention=Precision.FP8 if fp8_attention else None)
    batch = training_batch(layout, seq_len, micro_batch, flash_attention, attention_block)
    layers = _layers(model, layout, batch, p, stage, imbalance)
    ends_in = embedding_specs(model, layout, batch, p) if stage.embedding else []
    # Megatron-LM's output layer is a plain ColumnParallelLinear, outside Transformer
    # Engine's fp8 autocast: the LM head stays in 16 bits when the layers go below.
    head_p = p if quantization is None else replace(p, weight=p.other, act=p.other,
                                                    compute=p.other)
    ends_out = head_specs(model, layout, batch, head_p) if stage.lm_head else []
    mtp_in, mtp_out, mtp_redo = _mtp_ends(model, layout, batch, (p, head_p), stage.mtp,
                                         quantization)
    extra: list = []
    if lora is not None:
        layers = _Layers(attention=_freeze(layers.attention), dense=_freeze(layers.dense),
                         moe=_freeze(layers.moe), n_layers=layers.n_layers, n_moe=layers.n_moe)
        ends_in, ends_out = _freeze(ends_in), _freeze(ends_out)
        extra = lora_specs(model, layout, batch, lora[0], lora[1])
    layers = _quantized(layers, quantization)
    forward = (forward_ops(ends_in, p) + forward_ops(mtp_in, p, stage.mtp) + layers.forward(p)
               + forward_ops(extra, p, layers.n_layers) + forward_ops(ends_out, head_p)
               + forward_ops(mtp_out, head_p, stage.mtp))
    redo: list[Op] = []
    if recompute == "full":
        again = _first_layers(layers, model, stage, recompute_layers)
        redo = again.forward(p) + forward_ops(extra, p, again.n_layers) if again.n_layers else []
        redo += mtp_redo if recompute_layers is None else []  # the block method skips MTP
    elif recompute == "selective":
        redo = selective_redo(attention=layers.attention, dense=layers.dense, moe=layers.moe,
                              n_layers=layers.n_layers, n_moe=layers.n_moe,
                              modules=recompute_modules or DEFAULT_MODULES, p=p)
    redo = [replace(op, name=RECOMPUTE_PREFIX + op.name) for op in redo]
    backward = (redo + backward_ops(mtp_out, head_p, stage.mtp) + backward_ops(ends_out, head_p)
                + backward_ops(extra, p, layers.n_layers) + layers.backward(p)
                + backward_ops(mtp_in, p, stage.mtp) + backward_ops(ends_in, p))
    return TrainingOps(forward, backward, _weight_quantization(layers, p, mtp_in, stage.mtp))
