"""The keys each layer kind attends: full causal attention, a sliding window, or a chunk.

A model's ``local_attention`` (simulator.profiles.model.LocalAttention) makes some layers
attend only a local span of keys. For a query whose full-attention layer reads ``n`` keys
(itself included, 0-based position ``n - 1``), a layer reads:

- full: ``n``;
- sliding window ``W``: ``min(n, W)`` (the last W tokens, Mistral / gpt-oss);
- chunked ``W``: ``(n - 1) mod W + 1`` (the tokens of its own W-token chunk, Llama 4's
  ``attention_chunk_size``): a token with 20,000 before it reads 20,000 mod 8,192 + 1 = 3,617.

Summed over the queries 1..n, ``pairs_through`` gives the (query, key) pairs of a prompt:
n(n+1)/2 full; W(W+1)/2 + (n - W)·W sliding (n > W); k·W(W+1)/2 + r(r+1)/2 chunked
(n = k·W + r). A chunk of q new tokens after c cached ones covers
``pairs_through(c + q) - pairs_through(c)``.

Every attention layer is then priced once at the *layer average* of these amounts (pairs,
keys read, cached keys), the full layers' and the local layers' weighted by their counts.
FLOPs and bytes, which are linear in them, are exact; the time is exact while every layer's
attention core is bound by the same resource (decode: memory; long prefill: compute), which
is also what lets the serving engine keep its cost lines affine. A batch of several
sequences is taken at its mean sequence (exact for equal sequences: a fixed-length
benchmark; an estimate for a spread of lengths, where the spans' mean is not the span of the
mean length). Without FlashAttention the score matrix is computed whole whatever the mask,
so a materialized batch keeps its pairs.

The KV cache: a sliding layer needs only the last W tokens' keys and values, and the serving
stacks free the rest (vLLM's hybrid KV-cache manager, the default of its V1 engine for
models mixing sliding and full layers, keeps a separate block table per layer group and
frees blocks that leave the window; TensorRT-LLM's variable sliding-window attention keeps
a cyclic window per layer). A chunked layer's cache is kept at full context: vLLM disables
its hybrid manager for chunked local attention by default (a latency regression, enabled
by ``VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE``), and we found no source that
TensorRT-LLM frees a finished chunk. ``kv_held_fraction`` is the layer average of the
tokens kept over the context, at one context for every sequence (the mean request's).
"""

from __future__ import annotations

from dataclasses import replace

from simulator.perf.opspec import Batch, Phase
from simulator.profiles.model import LocalAttention, LocalKind, ModelProfile


def span(local: LocalAttention, keys: float) -> float:
    """Keys a local layer reads for a query that a full layer would attend ``keys`` keys."""
    w = local.window
    if local.kind is LocalKind.SLIDING:
        return min(keys, w)
    return (keys - 1) % w + 1 if keys >= 1 else keys


def pairs_through(local: LocalAttention | None, n: float) -> float:
    """(query, key) pairs of the queries at positions 1..n (closed forms in the module
    docstring); ``None`` is full attention."""
    if local is None:
        return n * (n + 1) / 2
    w = local.window
    if local.kind is LocalKind.SLIDING:
        return n * (n + 1) / 2 if n <= w else w * (w + 1) / 2 + (n - w) * w
    whole, rest = divmod(n, w)
    return whole * w * (w + 1) / 2 + rest * (rest + 1) / 2


def cached_read(local: LocalAttention, cached: float) -> float:
    """Cached keys a chunk of new tokens after ``cached`` ones reads on a local layer: the
    last W - 1 (sliding: the first new token's window) or those of its chunk (chunked)."""
    if local.kind is LocalKind.SLIDING:
        return min(cached, local.window - 1)
    return cached % local.window


def _average(model: ModelProfile, full: float, local: float) -> float:
    """The layer average of an amount that is ``full`` on a full layer, ``local`` on a
    local one."""
    n, n_local = model.layers, model.local_layers
    return ((n - n_local) * full + n_local * local) / n


def _ratio(model: ModelProfile, full: float, local: float) -> float:
    """The layer average over the full amount (1 where the full amount is 0)."""
    return _average(model, full, local) / full if full > 0 else 1.0


def prefill_factors(model: ModelProfile, tokens: float, cached: float,
                    sequences: int) -> tuple[float, float]:
    """(cached keys, pairs) of prompt chunks, layer-averaged, as fractions of the full
    layers': ``tokens`` new after ``cached`` cached in all, over ``sequences`` sequences."""
    local = model.local_attention
    if local is None or tokens <= 0:
        return 1.0, 1.0
    q, c = tokens / sequences, cached / sequences
    full_pairs = pairs_through(None, c + q) - pairs_through(None, c)
    local_pairs = pairs_through(local, c + q) - pairs_through(local, c)
    return (_ratio(model, c, cached_read(local, c)), _ratio(model, full_pairs, local_pairs))


def decode_factor(model: ModelProfile, sequences: int, context: float) -> float:
    """Keys read by decode tokens, layer-averaged, as a fraction of the full layers':
    ``sequences`` tokens over ``context`` keys in all."""
    local = model.local_attention
    if local is None or context <= 0:
        return 1.0
    mean = context / sequences
    return _ratio(model, mean, span(local, mean))


def attended_prefill(model: ModelProfile, tokens: int, cached: int, pairs: int,
                     sequences: int) -> tuple[int, int]:
    """The serving engine's prompt chunks as their layer-averaged (cached keys, pairs),
    rounded to whole tokens and pairs; unchanged with full attention only."""
    if model.local_attention is None:
        return cached, pairs
    f_cached, f_pairs = prefill_factors(model, tokens, cached, sequences)
    return round(cached * f_cached), round(pairs * f_pairs)


def attended_context(model: ModelProfile, sequences: int, context: int) -> int:
    """The serving engine's decode context (keys in all) as the layer-averaged keys read."""
    if model.local_attention is None:
        return context
    return round(context * decode_factor(model, sequences, context))


def attended_batch(model: ModelProfile, batch: Batch, cp: int = 1) -> Batch:
    """``batch`` with its pairs and keys read averaged over the layer kinds (a batch built
    from full-attention amounts; ``cp`` ranks each hold 1/cp of its tokens and pairs)."""
    if model.local_attention is None or batch.attended:
        return batch
    if batch.phase is Phase.DECODE:
        f = decode_factor(model, batch.sequences, batch.cached * cp)
        return replace(batch, pairs=batch.pairs * f, kv_tokens=batch.kv_tokens * f,
                       cached=batch.cached * f, attended=True)
    f_cached, f_pairs = prefill_factors(model, batch.tokens * cp, batch.cached * cp,
                                        batch.sequences)
    if batch.materialized:
        f_pairs = 1.0
    dropped = batch.cached * cp * (1.0 - f_cached)
    return replace(batch, pairs=batch.pairs * f_pairs, kv_tokens=batch.kv_tokens - dropped,
                   cached=batch.cached * f_cached, attended=True)


def kv_kept(local: LocalAttention, context: float) -> float:
    """Tokens of K/V a local layer keeps for a sequence of ``context`` tokens: the window
    for a sliding layer, everything for a chunked one (see the module docstring)."""
    return min(context, local.window) if local.kind is LocalKind.SLIDING else context


def kv_held_fraction(model: ModelProfile, context: float) -> float:
    """The KV cache a sequence of ``context`` tokens holds over all layers, as a fraction
    of full attention's (1 without sliding layers)."""
    local = model.local_attention
    if local is None or context <= 0:
        return 1.0
    return _ratio(model, context, kv_kept(local, context))
