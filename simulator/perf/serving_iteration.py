"""The ops of one serving iteration: prompt chunks and decode steps in one forward pass.

A continuous-batching engine runs every scheduled sequence through the model together: the
GEMMs, norms and collectives see all new tokens at once (weights are read once), while the
attention core runs per phase (prompt chunks over their cached context, decode tokens over
theirs). :class:`IterationModel` splits an iteration's ops into groups that depend on few
numbers, so that an engine can cache each group by a small key:

- ``body(tokens)``: everything that depends only on the iteration's new tokens (embedding,
  projections, norms, FFN or experts, TP collectives, pipeline sends);
- ``head(sequences)``: the LM head, logits gather and sampling, one row per sequence;
- ``prefill_extra(tokens, cached, pairs, sequences)``: the prompt chunks' attention core
  (and, for MLA, the expansion of the cached latent);
- ``decode_extra(sequences, context)``: the decode tokens' attention core over ``context``
  keys in total (and, for MLA, the weight-absorbed projections).

The attention amounts these take (cached, pairs, context) are layer averages over a model's
local and full layers: the engine (and :meth:`IterationModel.ops`) maps the full-attention
amounts through :mod:`simulator.perf.local_attention` first, which keeps them affine.

Their sum is the iteration. With only prompts it equals :func:`~simulator.perf.transformer.
prefill_ops`, with only decodes :func:`~simulator.perf.transformer.decode_ops` (same ops,
grouped differently; tested), except that MoE layers with ``ep > 1`` use the serving layout
of :mod:`simulator.perf.serving_moe`, and with attention data parallelism (``layout.dp > 1``)
the wide-EP layer of :mod:`simulator.perf.wide_ep` on the busiest rank's tokens
(:meth:`IterationModel.rank_body`). A pipeline-parallel replica runs its stages one after
another for one batch: all layers, plus ``pp - 1`` activation sends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from simulator.perf.attention_ops import attention_specs
from simulator.perf.local_attention import attended_context, attended_prefill
from simulator.perf.mlp_ops import dense_mlp_specs
from simulator.perf.ops import Collective, CommOp, ComputeOp, Group, Layout
from simulator.perf.opspec import Batch, Core, Phase, Prec, forward_ops
from simulator.perf.serving_moe import serving_moe_specs
from simulator.perf.serving_quantize import quantize_specs, separate_quantization
from simulator.perf.transformer import _inference_prec, embedding_specs, head_specs
from simulator.perf.wide_ep import exchange_specs, rank_moe_specs
from simulator.profiles.model import ModelProfile
from simulator.profiles.precision import Precision
from simulator.profiles.serving_stack import ActivationQuant

Op = ComputeOp | CommOp
FINAL_NORM = "final_norm"


def prefill_pairs(prompt_lens: Sequence[int], context_before: Sequence[int]) -> float:
    """(query, key) pairs of causal chunks: q·c + q(q+1)/2 per sequence."""
    return float(sum(q * c + q * (q + 1) // 2
                     for q, c in zip(prompt_lens, context_before, strict=True)))


@dataclass(frozen=True, kw_only=True)
class IterationModel:
    """One replica's model, layout and precisions; builds the op groups of an iteration."""

    model: ModelProfile
    layout: Layout
    weight_precision: Precision
    act_precision: Precision
    kv_precision: Precision
    imbalance: float = 1.0
    separate_quant: bool = False  # GEMM inputs quantized by kernels of their own
    slots: int = 0  # expert slots with attention DP (experts + redundant); 0: the experts
    head_16bit: bool = False  # the LM head stays 16-bit in a quantized checkpoint
    moe_gather: bool = False  # attention-DP MoE exchange: all-gather + reduce-scatter
    _shared: frozenset[str] = field(init=False, repr=False, compare=False)
    _moe_layers: int = field(init=False, repr=False, compare=False)
    _prec: Prec = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.layout.cp != 1:
            raise ValueError("a serving replica has no context parallelism (cp must be 1)")
        object.__setattr__(self, "_moe_layers", self.model.moe_layers)
        object.__setattr__(self, "_prec", _inference_prec(self.weight_precision,
                                                          self.act_precision, self.kv_precision))
        prefill = {s.name for s in self._attention(self._prefill_batch(4, 4, 10.0, 1))
                   if not isinstance(s, Core)}
        decode = {s.name for s in self._attention(self._decode_batch(1, 8))
                  if not isinstance(s, Core)}
        object.__setattr__(self, "_shared", frozenset(prefill & decode))

    @property
    def prec(self) -> Prec:
        """The precisions of an iteration (weights, activations, KV cache)."""
        return self._prec

    # ---- batches (a replica has cp = 1 and no sequence parallelism) ----------------------
    @staticmethod
    def _prefill_batch(tokens: int, cached: int, pairs: float, sequences: int) -> Batch:
        t = float(tokens)
        return Batch(phase=Phase.PREFILL, tokens=t, residual_tokens=t, sequences=sequences,
                     pairs=pairs, kv_tokens=t + cached, cached=float(cached), attended=True)

    @staticmethod
    def _decode_batch(sequences: int, context: int, queries: int = 1) -> Batch:
        """``queries`` new tokens per sequence (a speculative verify pass: k + 1), the first
        of each over its context, the others over one more key each."""
        b, s = float(sequences), float(context)
        if queries == 1:
            return Batch(phase=Phase.DECODE, tokens=b, residual_tokens=b, sequences=sequences,
                         pairs=s, kv_tokens=s, cached=s, attended=True)
        extra = float(queries - 1)
        t = b * queries
        return Batch(phase=Phase.DECODE, tokens=t, residual_tokens=t, sequences=sequences,
                     pairs=queries * s + b * extra * queries / 2, kv_tokens=s + b * extra,
                     cached=s, attended=True)

    def _attention(self, batch: Batch) -> list:
        return attention_specs(self.model, self.layout, batch, self.prec)

    def _layers(self) -> tuple[int, int]:
        return self.model.layers, self._moe_layers

    @property
    def _experts(self) -> int:
        return self.model.moe.experts if self.model.moe is not None else 1

    # ---- op groups ----------------------------------------------------------------------
    def body(self, tokens: int) -> list[Op]:
        """Ops that depend only on the number of new tokens in the iteration (with attention
        DP: spread as evenly as the ranks allow, :meth:`rank_body`)."""
        if tokens <= 0:
            raise ValueError(f"an iteration has at least one token (got {tokens})")
        if self.layout.dp > 1:
            return self.rank_body(-(-tokens // self.layout.dp), tokens, low_latency=False)
        p, model, layout = self.prec, self.model, self.layout
        batch = self._prefill_batch(tokens, 0, float(tokens), 1)
        moe = serving_moe_specs(model, layout, batch, p, self.imbalance) if self._moe_layers else []
        return self._assemble(batch, moe)

    def rank_body(self, rank_tokens: int, total_tokens: int, *, low_latency: bool) -> list[Op]:
        """:meth:`body` on the busiest device of an attention-DP replica: its rank runs
        ``rank_tokens`` of the replica's ``total_tokens`` through its attention and dense
        layers, and every rank's tokens through the experts (:mod:`simulator.perf.wide_ep`);
        ``low_latency``: a decode-only iteration (DeepEP's low-latency kernels). The sum of
        :meth:`rank_local` and :meth:`rank_exchange`."""
        return (self.rank_local(rank_tokens)
                + self.rank_exchange(rank_tokens, total_tokens, low_latency=low_latency))

    def rank_local(self, rank_tokens: int) -> list[Op]:
        """The body's ops that depend on the rank's tokens alone (everything but the expert
        exchange and GEMMs): affine in them, so an engine can fit and cache it."""
        if rank_tokens <= 0:
            raise ValueError(f"a rank runs at least one token (got {rank_tokens})")
        batch = self._prefill_batch(rank_tokens, 0, float(rank_tokens), 1)
        moe = rank_moe_specs(self.model, self.layout, batch, self.prec) if self._moe_layers else []
        return self._assemble(batch, moe)

    def rank_exchange(self, rank_tokens: int, total_tokens: int, *,
                      low_latency: bool, gathered_tokens: int | None = None) -> list[Op]:
        """The MoE layers' dispatch, expert GEMMs and combine of an attention-DP replica
        (``gathered_tokens``: the rows an all-gather exchange moves, where padding makes
        them more than ``total_tokens``; :func:`~simulator.perf.wide_ep.exchange_specs`)."""
        if not 0 < rank_tokens <= total_tokens:
            raise ValueError(f"a rank runs 1 to {total_tokens} of the iteration's tokens "
                             f"(got {rank_tokens})")
        n_moe = self._moe_layers
        if not n_moe:
            return []
        p = self.prec
        specs = exchange_specs(self.model, self.layout, float(rank_tokens),
                               total_tokens=float(total_tokens), p=p, imbalance=self.imbalance,
                               slots=self.slots or self._experts, low_latency=low_latency,
                               gather=self.moe_gather, gathered_tokens=gathered_tokens)
        ops = forward_ops(specs, p, n_moe)
        if self.separate_quant:
            ops += quantize_specs(specs, self.model, p, n_moe)
        return ops

    def _assemble(self, batch: Batch, moe: list) -> list[Op]:
        """The body's ops for one device's ``batch``, with the MoE layers' specs ``moe``."""
        p, model, layout = self.prec, self.model, self.layout
        tokens = batch.tokens
        n_layers, n_moe = self._layers()
        shared = [s for s in self._attention(batch) if s.name in self._shared]
        dense = dense_mlp_specs(model, layout, batch, p)
        ops: list[Op] = forward_ops(embedding_specs(model, layout, batch, p), p)
        ops += forward_ops(shared, p, n_layers)
        ops += forward_ops(dense, p, n_layers - n_moe)
        ops += forward_ops(moe, p, n_moe)
        if self.separate_quant:
            ops += quantize_specs(shared, model, p, n_layers)
            ops += quantize_specs(dense, model, p, n_layers - n_moe)
            ops += quantize_specs(moe, model, p, n_moe)
        ops += [op for op in forward_ops(head_specs(model, layout, batch, p), p)
                if op.name == FINAL_NORM]
        if layout.pp > 1:
            ops.append(CommOp(name="pp.activations", collective=Collective.SEND_RECV,
                              bytes=tokens * model.hidden_size * p.eb,
                              group=Group(2, layout.tp), count=layout.pp - 1))
        return ops

    @property
    def head_prec(self) -> Prec:
        """The LM head's precisions: the iteration's, or 16-bit weights and inputs where the
        checkpoint leaves the head unquantized (``head_16bit``) and the weights are narrower."""
        p = self._prec
        if not self.head_16bit or p.wb >= p.eb:
            return p
        return _inference_prec(p.other, p.other, p.kv)

    def head(self, sequences: int) -> list[Op]:
        """LM head, logits gather and sampling on the last token of each sequence."""
        batch = self._decode_batch(sequences, sequences)
        p = self.head_prec
        return [op for op in forward_ops(head_specs(self.model, self.layout, batch, p), p)
                if op.name != FINAL_NORM]

    def prefill_extra(self, tokens: int, cached: int, pairs: float, sequences: int) -> list[Op]:
        """Prompt-chunk attention: ``tokens`` new tokens of ``sequences`` sequences after
        ``cached`` context tokens, attending over ``pairs`` (query, key) pairs."""
        batch = self._prefill_batch(tokens, cached, pairs, sequences)
        own = [s for s in self._attention(batch) if s.name not in self._shared]
        return forward_ops(own, self.prec, self.model.layers)

    def decode_extra(self, sequences: int, context: int, queries: int = 1) -> list[Op]:
        """Decode attention: one token per sequence over ``context`` keys in total (with
        ``queries``, that many per sequence, each sequence's cache read once)."""
        own = [s for s in self._attention(self._decode_batch(sequences, context, queries))
               if s.name not in self._shared]
        return forward_ops(own, self.prec, self.model.layers)

    def kernels(self) -> int:
        """Kernels one iteration launches (each op's count; the same at every batch size):
        what a host launching eagerly issues one by one."""
        return sum(op.count for op in self.ops([], [1]))

    def ops(self, prompt_chunks: Sequence[tuple[int, int]],
            decode_contexts: Sequence[int]) -> list[Op]:
        """All ops of an iteration: chunks (new tokens, cached tokens) and decode contexts
        (with attention DP: one rank's, on the busiest device, all ranks equally loaded)."""
        q = [n for n, _ in prompt_chunks]
        c = [n for _, n in prompt_chunks]
        tokens = sum(q) + len(decode_contexts)
        if self.layout.dp > 1:  # one rank's batch, every rank as loaded
            body = self.rank_body(tokens, tokens * self.layout.dp, low_latency=not q)
        else:
            body = self.body(tokens)
        ops = body + self.head(len(q) + len(decode_contexts))
        if q:
            cached, pairs = attended_prefill(self.model, sum(q), sum(c),
                                             int(prefill_pairs(q, c)), len(q))
            ops += self.prefill_extra(sum(q), cached, float(pairs), len(q))
        if decode_contexts:
            b = len(decode_contexts)
            ops += self.decode_extra(b, attended_context(self.model, b, sum(decode_contexts)))
        return ops


def iteration_model(model: ModelProfile, layout: Layout, weight_precision: Precision | str,
                    kv_precision: Precision | str, imbalance: float = 1.0, *,
                    activation_quant: ActivationQuant | None = None,
                    slots: int = 0, head_16bit: bool = False,
                    moe_gather: bool = False) -> IterationModel:
    """The serving convention: GEMMs run at the weight precision (fp8 and fp4 checkpoints
    quantize activations too: W8A8, NVFP4/MXFP4 W4A4), except int4, whose kernels are
    weight-only (W4A16: AWQ, GPTQ). A precision the device lacks runs at a wider one it has
    (:func:`simulator.perf.roofline.run_precision`). ``activation_quant`` (the serving
    stack's) says whether those GEMM inputs are quantized by kernels of their own; ``slots``
    the expert slots of an attention-DP replica (0: the model's experts); ``head_16bit``
    whether the LM head stays 16-bit (the stack's ``quantized_head: false``); ``moe_gather``
    whether an attention-DP replica's MoE layers all-gather and reduce-scatter instead of an
    all-to-all (the stack's ``moe_exchange`` on this hardware)."""
    w = Precision(weight_precision)
    act = serving_act_precision(w)
    return IterationModel(model=model, layout=layout, weight_precision=w, act_precision=act,
                          kv_precision=Precision(kv_precision), imbalance=imbalance,
                          separate_quant=separate_quantization(act, activation_quant),
                          slots=slots, head_16bit=head_16bit, moe_gather=moe_gather)


def serving_act_precision(weight_precision: Precision | str) -> Precision:
    """Activation precision of serving GEMMs under the convention of :func:`iteration_model`."""
    w = Precision(weight_precision)
    return Precision.BF16 if w is Precision.INT4 else w

