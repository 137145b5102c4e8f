"""Shapes of one layer's work, from which forward and backward operations are derived.

The transformer builders describe a layer once, as GEMM shapes, attention cores, elementwise
passes and collectives; the same description then yields the forward ops, the backward ops
(input-gradient and weight-gradient GEMMs, FlashAttention-2's backward) and the ops that
activation recomputation repeats. Keeping the shapes, not only the totals, is what lets the
backward pass be derived rather than guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TypeVar

from simulator.perf.ops import Collective, CommOp, ComputeOp, Group, Layout, OpKind
from simulator.profiles.precision import Precision

ATTENTION_BACKWARD_FACTOR = 2.5  # FlashAttention-2: 5 matmuls in backward vs 2 in forward
GRAD_ACCUMULATE_BYTES = 8.0  # fp32 main gradient read and written by each weight-grad GEMM
ELEMENTWISE_BACKWARD_FACTOR = 2.0  # reads the saved input and the incoming grad, writes grad
# A GEMM with fewer rows than one tensor-core tile fills the device through its k x n operand
# (GEMV and split-K kernels), so the size-efficiency curve judges it as a 128-row GEMM.
TILE_ROWS = 128.0


class Phase(StrEnum):
    """Which pass a batch is in: what the attention reads and whether a backward follows."""

    TRAIN = "train"
    PREFILL = "prefill"
    DECODE = "decode"


@dataclass(frozen=True, kw_only=True)
class Prec:
    """Precisions of one pass: stored weights, GEMM operands, compute, KV cache, the rest."""

    weight: Precision
    act: Precision  # GEMM activation operands
    compute: Precision  # the peak the GEMMs run at
    kv: Precision
    other: Precision  # attention core and elementwise kernels
    attention: Precision | None = None  # the attention core's, if not ``other`` (fp8 DPA)

    @property
    def wb(self) -> float:
        """Bytes per stored weight element."""
        return self.weight.bytes_per_element

    @property
    def ab(self) -> float:
        """Bytes per GEMM activation element."""
        return self.act.bytes_per_element

    @property
    def kvb(self) -> float:
        """Bytes per KV-cache element."""
        return self.kv.bytes_per_element

    @property
    def eb(self) -> float:
        """Bytes per element of the other activations (attention core, elementwise)."""
        return self.other.bytes_per_element


@dataclass(frozen=True, kw_only=True)
class Batch:
    """What one device processes in one layer for one pass (after TP, CP and EP splits).

    ``tokens`` are the new tokens (GEMM rows; every TP rank holds all of them),
    ``residual_tokens`` those on which the residual stream's elementwise work runs (tokens/tp
    with sequence parallelism), ``pairs`` the (query, key) pairs attended, ``kv_tokens`` the
    keys and values the attention kernel reads, ``cached`` how many of them come from the KV
    cache (context written by earlier passes). ``attended``: those amounts are already the
    average over the model's layer kinds (:mod:`simulator.perf.local_attention`), as the
    serving engine passes them.
    """

    phase: Phase
    tokens: float
    residual_tokens: float
    sequences: int
    pairs: float
    kv_tokens: float
    cached: float
    materialized: bool = False  # attention scores written to HBM (no FlashAttention)
    attended: bool = False  # pairs and keys are layer averages over local/full layers


@dataclass(frozen=True, kw_only=True)
class Gemm:
    """``groups`` independent (m x k) @ (k x n) products whose right operand is a weight,
    launched as one batched (heads) or grouped (experts) kernel."""

    name: str
    m: float
    k: float
    n: float
    groups: float = 1.0
    frozen: bool = False  # LoRA base weights: no weight gradient

    @property
    def flops(self) -> float:
        """2·m·k·n per group."""
        return 2.0 * self.groups * self.m * self.k * self.n

    @property
    def size(self) -> float:
        """Size of the kernel for the efficiency curve: 2·max(m, tile)·k·n per group, the
        groups of a batched or grouped GEMM (heads, experts) running in one launch."""
        return 2.0 * self.groups * max(self.m, TILE_ROWS) * self.k * self.n

    def _op(self, name: str, flops: float, bytes_: float, p: Prec,
            kind: OpKind = OpKind.GEMM) -> ComputeOp:
        return ComputeOp(name=name, kind=kind, flops=flops, bytes=bytes_,
                         precision=p.compute, gemm_flops_each=self.size)

    def forward(self, p: Prec) -> list[ComputeOp]:
        """The product: reads the weight and the input, writes the output."""
        g, m, k, n = self.groups, self.m, self.k, self.n
        return [self._op(self.name, self.flops, g * (k * n * p.wb + m * (k + n) * p.ab), p)]

    def backward(self, p: Prec) -> list[ComputeOp]:
        """The input gradient and, for a trained weight, the weight gradient (accumulated
        into an fp32 main gradient)."""
        g, m, k, n = self.groups, self.m, self.k, self.n
        ops = [self._op(f"{self.name}.dgrad", self.flops,
                        g * (k * n * p.wb + m * (k + n) * p.ab), p, OpKind.GEMM_DGRAD)]
        if not self.frozen:
            ops.append(self._op(f"{self.name}.wgrad", self.flops,
                                g * (m * (k + n) * p.ab + k * n * GRAD_ACCUMULATE_BYTES), p))
        return ops


@dataclass(frozen=True, kw_only=True)
class Core:
    """A fused attention core: reads Q, K, V (and softmax statistics) and writes O once.

    ``query_rows`` are the query rows that share one K/V head of one sequence (the GEMMs'
    m): with fewer than a tile the kernel is judged, like a skinny GEMM, at tile size.
    ``kernels`` splits the core into that many equal kernels (ring attention runs one per
    context-parallel step), each judged at its own size and paying its own launch.
    """

    name: str
    flops: float
    q_bytes: float
    kv_bytes: float
    o_bytes: float
    stats_bytes: float = 0.0
    query_rows: float = TILE_ROWS
    fused: bool = True  # False: the score and value matmuls are plain batched GEMMs
    kernels: int = 1
    head_dims: tuple[float, float] | None = None  # (score, value) widths of its matmuls

    def _op(self, name: str, flops: float, bytes_: float, p: Prec,
            kind: OpKind = OpKind.ATTENTION) -> ComputeOp:
        size = flops / self.kernels * max(1.0, TILE_ROWS / self.query_rows)
        return ComputeOp(name=name, kind=kind if self.fused else OpKind.GEMM, flops=flops,
                         bytes=bytes_, precision=p.attention or p.other,
                         count=self.kernels, gemm_flops_each=size,
                         head_dims=self.head_dims if self.fused else None)

    def forward(self, p: Prec) -> list[ComputeOp]:
        """One fused kernel: Q, K, V and the statistics in, O out."""
        bytes_ = self.q_bytes + self.kv_bytes + self.o_bytes + self.stats_bytes
        return [self._op(self.name, self.flops, bytes_, p)]

    def backward(self, p: Prec) -> list[ComputeOp]:
        """FlashAttention-2's backward: 2.5x the forward FLOPs."""
        # reads Q, K, V, O, dO and the statistics; writes dQ, dK, dV
        bytes_ = 2 * (self.q_bytes + self.kv_bytes + self.o_bytes) + self.stats_bytes
        return [self._op(f"{self.name}.backward", ATTENTION_BACKWARD_FACTOR * self.flops,
                         bytes_, p, OpKind.ATTENTION_BACKWARD)]


@dataclass(frozen=True, kw_only=True)
class Elem:
    """A memory-bound pass over ``bytes`` of HBM (norm, activation, RoPE, gather...), run as
    ``kernels`` kernels (each pays its launch)."""

    name: str
    flops: float
    bytes: float
    kind: OpKind = OpKind.ELEMENTWISE
    backward_factor: float = ELEMENTWISE_BACKWARD_FACTOR  # 0: nothing to do in backward
    kernels: int = 1

    def forward(self, p: Prec) -> list[ComputeOp]:
        """The pass itself."""
        return [ComputeOp(name=self.name, kind=self.kind, flops=self.flops, bytes=self.bytes,
                          precision=p.other, count=self.kernels)]

    def backward(self, p: Prec) -> list[ComputeOp]:
        """Its gradient: ``backward_factor`` times the work (none at 0)."""
        if not self.backward_factor:
            return []
        f = self.backward_factor
        return [ComputeOp(name=f"{self.name}.backward", kind=self.kind, flops=f * self.flops,
                          bytes=f * self.bytes, precision=p.other, count=self.kernels)]


@dataclass(frozen=True, kw_only=True)
class Comm:
    """A collective in forward (or none) and the collectives its backward issues instead.

    Megatron's TP pairs are conjugate: an all-reduce in forward has one in backward, an
    all-gather becomes a reduce-scatter and vice versa; the buffer is the same size.
    """

    name: str
    forward_collective: Collective | None
    bytes: float
    group: Group
    backward_collectives: tuple[Collective, ...] = ()

    def forward(self, p: Prec) -> list[CommOp]:
        """The forward collective (none in a group of one)."""
        if self.forward_collective is None or self.group.size <= 1:
            return []
        return [CommOp(name=self.name, collective=self.forward_collective, bytes=self.bytes,
                       group=self.group)]

    def backward(self, p: Prec) -> list[CommOp]:
        """The collectives the gradient needs, on the same buffer."""
        if self.group.size <= 1:
            return []
        return [CommOp(name=f"{self.name}.backward.{c.value}", collective=c, bytes=self.bytes,
                       group=self.group) for c in self.backward_collectives]


@dataclass(frozen=True, kw_only=True)
class Grad:
    """Backward-only work on a trainable weight that is not a GEMM (embedding scatter-add)."""

    name: str
    kind: OpKind
    flops: float
    bytes: float

    def forward(self, p: Prec) -> list[ComputeOp]:
        """Nothing: the work is backward only."""
        return []

    def backward(self, p: Prec) -> list[ComputeOp]:
        """The gradient work."""
        return [ComputeOp(name=self.name, kind=self.kind, flops=self.flops, bytes=self.bytes,
                          precision=p.other)]


def tp_entry(prefix: str, batch: Batch, hidden: int, p: Prec, layout: Layout) -> list[Comm]:
    """Sequence parallelism all-gathers the block input (reduce-scatter in backward)."""
    if not layout.sequence_parallel:
        return []
    size = batch.tokens * hidden * p.eb
    return [Comm(name=f"{prefix}.sp_all_gather", forward_collective=Collective.ALL_GATHER,
                 bytes=size, group=layout.tp_group,
                 backward_collectives=(Collective.REDUCE_SCATTER,))]


def tp_exit(prefix: str, batch: Batch, hidden: int, p: Prec, layout: Layout) -> list[Comm]:
    """The row-parallel output is summed over TP: all-reduce, or reduce-scatter with SP."""
    size = batch.tokens * hidden * p.eb
    if layout.sequence_parallel:
        return [Comm(name=f"{prefix}.sp_reduce_scatter",
                     forward_collective=Collective.REDUCE_SCATTER, bytes=size,
                     group=layout.tp_group, backward_collectives=(Collective.ALL_GATHER,))]
    return [Comm(name=f"{prefix}.tp_all_reduce", forward_collective=Collective.ALL_REDUCE,
                 bytes=size, group=layout.tp_group, backward_collectives=(Collective.ALL_REDUCE,))]


def norm(name: str, tokens: float, width: float, layernorm: bool, p: Prec,
         add: bool = False) -> Elem:
    """RMSNorm (~4 FLOPs per element) or LayerNorm (~7), reading and writing the activations.

    With ``add`` the preceding residual add is fused in, as vLLM's fused_add_rms_norm and
    Megatron/TE's fused kernels do: read the stream and the block output, write the new
    stream and its normalized copy.
    """
    elements = tokens * width
    flops = (7.0 if layernorm else 4.0) * elements + (elements if add else 0.0)
    return Elem(name=name, flops=flops, bytes=(4 if add else 2) * elements * p.eb + width * p.wb)


OpT = TypeVar("OpT", ComputeOp, CommOp)


def repeat(op: OpT, times: int) -> OpT:
    """The same op run ``times`` times (e.g. once per layer of a stage)."""
    if isinstance(op, CommOp):
        return replace(op, count=op.count * times)
    return replace(op, flops=op.flops * times, bytes=op.bytes * times, count=op.count * times)


def forward_ops(specs: list, p: Prec, times: int = 1) -> list[ComputeOp | CommOp]:
    """Forward ops of ``specs``, each repeated ``times`` (layers of one kind)."""
    if times <= 0:
        return []
    return [repeat(op, times) for spec in specs for op in spec.forward(p)]


def backward_ops(specs: list, p: Prec, times: int = 1) -> list[ComputeOp | CommOp]:
    """Backward ops of ``specs``, in reverse order of the forward."""
    if times <= 0:
        return []
    return [repeat(op, times) for spec in reversed(specs) for op in spec.backward(p)]
