"""The attention block of one layer, as shapes: projections, RoPE, KV cache, the fused core.

MHA/GQA: one fused QKV projection, FlashAttention-style core, output projection; heads split
over TP, a K/V head replicated when tp exceeds the K/V heads (as vLLM and Megatron do).
MLA (DeepSeek-V2/V3): the query goes through its latent (q_lora_rank), keys and values
through a shared latent (kv_lora_rank) plus one decoupled RoPE key. The down-projections
are replicated on every TP rank; the per-head up-projections split over TP.
Training and prefill expand the latent into per-head K and V (kv_up over every key the
attention reads, cached context included). Decode uses the weight-absorbed form: the query
is mapped into the latent space (W_UK), attention runs over the cached latent
(kv_lora_rank + rope per token, shared by all heads) and the output is mapped back (W_UV).
"""

from __future__ import annotations

from simulator.perf.local_attention import attended_batch
from simulator.perf.ops import Collective, Layout
from simulator.perf.opspec import (
    Batch,
    Comm,
    Core,
    Elem,
    Gemm,
    Phase,
    Prec,
    norm,
    tp_entry,
    tp_exit,
)
from simulator.profiles.model import AttentionKind, ModelProfile, Norm, PositionEmbedding

LSE_BYTES = 4.0  # FlashAttention keeps one fp32 log-sum-exp per query row and head
SCORES_BACKWARD_FACTOR = 2.0  # backward of softmax/dropout on materialized scores


def attention_specs(model: ModelProfile, layout: Layout, batch: Batch, p: Prec) -> list:
    """One layer's attention block per device, from its (residual-fused) norm to the TP
    reduction of its output. Local-attention layers (sliding window, chunked) enter through
    the layer average of what they attend (:func:`~simulator.perf.local_attention.
    attended_batch`)."""
    batch = attended_batch(model, batch, layout.cp)
    h = model.hidden_size
    layernorm = model.norm is Norm.LAYERNORM
    specs: list = [norm("attn.norm", batch.residual_tokens, h, layernorm, p, add=True)]
    specs += tp_entry("attn", batch, h, p, layout)
    if model.attention is AttentionKind.MLA:
        specs += _mla(model, layout, batch, p)
    else:
        specs += _mha(model, layout, batch, p)
    return specs + tp_exit("attn", batch, h, p, layout)


def heads_per_device(model: ModelProfile, tp: int) -> tuple[float, float]:
    """(query heads, K/V heads) on one TP rank; K/V heads are replicated below one per rank."""
    q = model.attention_heads / tp
    if model.attention is AttentionKind.MLA:
        return q, q
    return q, max(1.0, model.kv_heads_resolved / tp)


def kv_cache_read_bytes(model: ModelProfile, layout: Layout, kv_tokens: float,
                        kv_bytes: float) -> float:
    """Bytes of KV cache one device reads per layer when attending over ``kv_tokens`` keys.

    GQA/MHA: K and V of the device's K/V heads. MLA (absorbed): the latent and the RoPE key,
    which every TP rank holds and reads whole.
    """
    if model.attention is AttentionKind.MLA:
        assert model.mla is not None
        return kv_tokens * (model.mla.kv_lora_rank + model.mla.qk_rope_head_dim) * kv_bytes
    _, kv_heads = heads_per_device(model, layout.tp)
    return kv_tokens * 2 * kv_heads * model.head_dim_resolved * kv_bytes


def _rows(batch: Batch, group: float) -> float:
    """Query rows per sequence that share one K/V head (the attention GEMMs' m)."""
    return batch.tokens / batch.sequences * group


def _stats(batch: Batch, heads: float) -> float:
    return 0.0 if batch.phase is Phase.DECODE else batch.tokens * heads * LSE_BYTES


def _scores(model: ModelProfile, batch: Batch, heads: float, p: Prec) -> list:
    """Attention without FlashAttention writes the s x s scores to HBM and passes over them:
    the score GEMM writes them, scale-mask-softmax reads and writes them, dropout (GPT-style
    models) reads them, writes them and a 1-byte mask, and the value GEMM reads them. That
    is 4 passes of 16-bit values, plus 2 more and the mask with dropout, per (query, key,
    head); backward passes over them about twice as often (Korthikanti et al. 2022 list
    the same tensors as stored activations)."""
    if not batch.materialized:
        return []
    dropout = model.position_embedding is PositionEmbedding.LEARNED
    passes = 4 * p.eb + (2 * p.eb + 1 if dropout else 0)
    elements = batch.pairs * heads
    return [Elem(name="attn.scores", flops=5.0 * elements, bytes=passes * elements,
                 backward_factor=SCORES_BACKWARD_FACTOR)]


def _rope(model: ModelProfile, batch: Batch, rotated_per_token: float, p: Prec) -> list:
    if model.position_embedding is not PositionEmbedding.ROPE:
        return []
    elements = batch.tokens * rotated_per_token
    return [Elem(name="attn.rope", flops=3.0 * elements, bytes=2.0 * elements * p.eb)]


def _cache_write(batch: Batch, per_token: float, p: Prec) -> list:
    """Inference stores the new tokens' K/V (or latent) in the cache, converting precision."""
    if batch.phase is Phase.TRAIN:
        return []
    return [Elem(name="attn.kv_cache_write", flops=0.0,
                 bytes=batch.tokens * per_token * (p.eb + p.kvb), backward_factor=0.0)]


def _cp(batch: Batch, layout: Layout, kv_per_token: float, o_per_token: float,
        p: Prec) -> list:
    """Context parallelism: gather K/V of the whole sequence (ring-style), or in decode
    combine the partial outputs of the context shards."""
    if batch.phase is Phase.DECODE:
        return [Comm(name="attn.cp_combine", forward_collective=Collective.ALL_REDUCE,
                     bytes=batch.tokens * o_per_token * p.eb, group=layout.cp_group)]
    return [Comm(name="attn.cp_kv_all_gather", forward_collective=Collective.ALL_GATHER,
                 bytes=batch.kv_tokens * kv_per_token * p.eb, group=layout.cp_group,
                 backward_collectives=(Collective.ALL_GATHER, Collective.REDUCE_SCATTER))]


def ring_steps(batch: Batch, layout: Layout) -> int:
    """Attention kernels per core in training with context parallelism: Transformer
    Engine's ring attention (``cp_comm_type`` p2p, the default) computes the local block,
    then one block per K/V chunk received, ``cp`` kernels in all; with load-balanced causal
    chunks each does 1/cp of the rank's attention (forward and backward alike)."""
    return layout.cp if batch.phase is Phase.TRAIN else 1


def _ring_merge(batch: Batch, layout: Layout, out_bytes: float, stats_bytes: float,
                kv_bytes: float) -> list:
    """Ring attention's merges, one kernel per step after the first: forward folds each
    step's partial output into the running one by their log-sum-exps (the online softmax:
    read both outputs and statistics, write one; TE's per-step output correction), backward
    adds each step's partial dQ to the running one and each received dK/dV chunk to the
    gradient it passes on (read two, write one of each)."""
    steps = ring_steps(batch, layout)
    if steps <= 1:
        return []
    forward = 3.0 * (out_bytes + stats_bytes)
    backward = 3.0 * (out_bytes + kv_bytes / steps)
    return [Elem(name="attn.cp_merge", flops=0.0, bytes=(steps - 1) * forward,
                 backward_factor=backward / forward, kernels=steps - 1)]


def _mha(model: ModelProfile, layout: Layout, batch: Batch, p: Prec) -> list:
    h, d, t = model.hidden_size, model.head_dim_resolved, batch.tokens
    q_heads, kv_heads = heads_per_device(model, layout.tp)
    kv_bytes = p.eb if batch.phase is Phase.TRAIN else p.kvb
    core = Core(name="attn.core", flops=2.0 * batch.pairs * (d + d) * q_heads,
                q_bytes=t * q_heads * d * p.eb,
                kv_bytes=kv_cache_read_bytes(model, layout, batch.kv_tokens, kv_bytes),
                o_bytes=t * q_heads * d * p.eb, stats_bytes=_stats(batch, q_heads),
                query_rows=_rows(batch, q_heads / kv_heads), fused=not batch.materialized,
                kernels=ring_steps(batch, layout), head_dims=(d, d))
    return [
        Gemm(name="attn.qkv", m=t, k=h, n=(q_heads + 2 * kv_heads) * d),
        *_rope(model, batch, (q_heads + kv_heads) * d, p),
        *_cache_write(batch, 2 * kv_heads * d, p),
        *_cp(batch, layout, 2 * kv_heads * d, q_heads * d, p),
        *_scores(model, batch, q_heads, p),
        core,
        *_ring_merge(batch, layout, core.o_bytes, core.stats_bytes, core.kv_bytes),
        Gemm(name="attn.o_proj", m=t, k=q_heads * d, n=h),
    ]


def _mla(model: ModelProfile, layout: Layout, batch: Batch, p: Prec) -> list:
    assert model.mla is not None
    x = model.mla
    h, t = model.hidden_size, batch.tokens
    heads, _ = heads_per_device(model, layout.tp)
    r, rope, nope, dv = x.kv_lora_rank, x.qk_rope_head_dim, x.qk_nope_head_dim, x.v_head_dim
    qk = nope + rope
    layernorm = model.norm is Norm.LAYERNORM
    if x.q_lora_rank:
        specs: list = [
            Gemm(name="attn.qkv_down", m=t, k=h, n=x.q_lora_rank + r + rope),  # replicated over TP
            norm("attn.latent_norm", t, x.q_lora_rank + r, layernorm, p),
            Gemm(name="attn.q_up", m=t, k=x.q_lora_rank, n=heads * qk),
        ]
    else:
        specs = [
            Gemm(name="attn.q_proj", m=t, k=h, n=heads * qk),
            Gemm(name="attn.kv_down", m=t, k=h, n=r + rope),  # replicated over TP
            norm("attn.latent_norm", t, r, layernorm, p),
        ]
    specs += _rope(model, batch, (heads + 1) * rope, p)
    specs += _cache_write(batch, r + rope, p)
    if batch.phase is Phase.DECODE:
        flops = 2.0 * batch.pairs * heads * ((r + rope) + r)
        specs += [
            Gemm(name="attn.q_absorb", m=t, k=nope, n=r,
                 groups=heads),  # W_UK folded into the query
            *_cp(batch, layout, r + rope, heads * r, p),
            Core(name="attn.core", flops=flops, q_bytes=t * heads * (r + rope) * p.eb,
                 kv_bytes=kv_cache_read_bytes(model, layout, batch.kv_tokens, p.kvb),
                 o_bytes=t * heads * r * p.eb, query_rows=_rows(batch, heads),
                 fused=not batch.materialized, head_dims=(r + rope, r)),
            Gemm(name="attn.v_absorb", m=t, k=r, n=dv, groups=heads),  # W_UV applied to the output
        ]
    else:
        # expand the latent of every key read (new tokens and, in prefill, cached context)
        specs += [
            Gemm(name="attn.kv_up", m=t + batch.cached, k=r, n=heads * (nope + dv)),
            *_cp(batch, layout, heads * (qk + dv), heads * dv, p),
            Core(name="attn.core", flops=2.0 * batch.pairs * (qk + dv) * heads,
                 q_bytes=t * heads * qk * p.eb, kv_bytes=batch.kv_tokens * heads * (qk + dv) * p.eb,
                 o_bytes=t * heads * dv * p.eb, stats_bytes=_stats(batch, heads),
                 query_rows=_rows(batch, 1.0), fused=not batch.materialized,
                 kernels=ring_steps(batch, layout), head_dims=(qk, dv)),
            *_ring_merge(batch, layout, t * heads * dv * p.eb, _stats(batch, heads),
                         batch.kv_tokens * heads * (qk + dv) * p.eb),
        ]
    specs.append(Gemm(name="attn.o_proj", m=t, k=heads * dv, n=h))
    return specs
