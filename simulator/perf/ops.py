"""The vocabulary of the cost models: operations, collectives, device groups and layouts.

An operation is what one device does (FLOPs it computes, bytes it moves to and from HBM);
a collective is what a group of devices exchanges. Both are plain frozen data so that the
engines can cache their costs by shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from simulator.profiles.precision import Precision


class OpKind(StrEnum):
    """What kind of kernel an op is: it decides which efficiency its compute runs at."""

    GEMM = "gemm"  # matrix multiply: efficiency depends on its size
    # a GEMM's input gradient, dX = dY @ W^T: the K/N-swapped product, whose quantized
    # (fp8, fp4) kernels run slower than the forward's (efficiency.gemm.quantized_dgrad)
    GEMM_DGRAD = "gemm_dgrad"
    ATTENTION = "attention"  # fused attention core (FlashAttention-style), forward
    ATTENTION_BACKWARD = "attention_backward"  # its backward (five matmuls, dQ/dK/dV)
    ELEMENTWISE = "elementwise"  # norms, activations, residual adds, RoPE, softmax: memory-bound
    EMBEDDING = "embedding"  # gather of embedding rows
    QUANTIZE = "quantize"  # amax, cast and transpose of a tensor to fp8/fp4: memory-bound


@dataclass(frozen=True, kw_only=True)
class ComputeOp:
    """Work one device does for one operation (already divided by TP/CP/EP shards).

    ``count`` identical kernels are launched (e.g. one per layer when a stage's layers are
    summed); ``flops`` and ``bytes`` are totals over all of them.
    """

    name: str
    kind: OpKind
    flops: float
    bytes: float
    precision: Precision
    count: int = 1
    gemm_flops_each: float | None = None  # size of one GEMM (for the size-efficiency curve)
    # an attention core's (score, value) head dims: the widths of its matmuls, which a
    # profile's compute.matrix_unit_width scales its efficiency by (perf/matrix_fill.py)
    head_dims: tuple[float, float] | None = None

    @property
    def intensity(self) -> float:
        """Arithmetic intensity, FLOPs per byte of HBM traffic."""
        return self.flops / self.bytes if self.bytes else float("inf")


GEMM_KINDS = (OpKind.GEMM, OpKind.GEMM_DGRAD)
"""Kinds that are GEMMs with a weight operand: they stream it at ``gemm.stream`` and
hide tensor-parallel collectives."""

MATMUL_KINDS = (*GEMM_KINDS, OpKind.ATTENTION, OpKind.ATTENTION_BACKWARD)
"""Kinds whose compute runs at a size-dependent matrix-unit efficiency."""


class Collective(StrEnum):
    """The collectives the network model prices."""

    ALL_REDUCE = "all_reduce"
    REDUCE_SCATTER = "reduce_scatter"
    ALL_GATHER = "all_gather"
    ALL_TO_ALL = "all_to_all"
    SEND_RECV = "send_recv"


@dataclass(frozen=True)
class Group:
    """A communicator: ``size`` ranks whose global ranks are ``stride`` apart.

    Ranks are numbered so that consecutive ranks share a scale-up domain (TP innermost, as
    Megatron places them). A TP group has stride 1; a DP group has stride tp·cp·pp (or
    whatever the layout's order gives). From the stride and the hardware's domain size the
    collective model works out how many members share a domain.
    """

    size: int
    stride: int = 1
    # An expert all-to-all whose buffer holds ``copies`` copies of each token (one per chosen
    # expert) and whose kernel sends a token once to each remote domain it goes to, then
    # forwards it inside that domain (DeepEP's internode kernels, DeepSeek-V3 sec. 3.2.2);
    # ``max_domains``: routing sends a token to at most that many domains (0: no limit).
    # copies = 0: every copy is sent on its own (NCCL all-to-all).
    copies: int = 0
    max_domains: int = 0

    def members_per_domain(self, domain_size: int) -> int:
        """How many of the group's members sit in one scale-up domain."""
        if self.stride >= domain_size:
            return 1
        return max(1, min(self.size, domain_size // self.stride))


@dataclass(frozen=True, kw_only=True)
class CommOp:
    """A collective issued by every member of ``group``; ``bytes`` is each member's buffer.

    Buffer conventions (as in nccl-tests): all-reduce - the full buffer each rank holds;
    reduce-scatter - the input (full) buffer; all-gather - the output (full) buffer;
    all-to-all - the bytes each rank sends in total; send/recv - the message.
    """

    name: str
    collective: Collective
    bytes: float
    group: Group
    count: int = 1


@dataclass(frozen=True, kw_only=True)
class Layout:
    """How one model replica is split: the shard sizes the cost models divide work by.

    Global rank order (innermost first): tp, cp, ep-within-dp, dp, pp — so TP groups are
    contiguous (stride 1), CP groups have stride tp, DP groups stride tp·cp, and PP
    neighbours are tp·cp·dp apart.
    """

    tp: int = 1
    pp: int = 1
    cp: int = 1
    ep: int = 1
    dp: int = 1
    sequence_parallel: bool = False
    etp: int | None = None  # expert tensor parallelism; None: equal to tp
    ep_dedup: bool = False  # the dispatch sends a token once per remote domain (DeepEP)
    ep_max_domains: int = 0  # node-limited routing: domains a token may go to (0: any)

    @property
    def expert_tp(self) -> int:
        """The experts' tensor-parallel size (Megatron ``--expert-tensor-parallel-size``)."""
        return self.tp if self.etp is None else self.etp

    @property
    def tp_group(self) -> Group:
        """The tensor-parallel group: consecutive ranks."""
        return Group(self.tp, 1)

    @property
    def cp_group(self) -> Group:
        """The context-parallel group: ranks ``tp`` apart."""
        return Group(self.cp, self.tp)

    @property
    def dp_group(self) -> Group:
        """The data-parallel group: ranks ``tp·cp`` apart."""
        return Group(self.dp, self.tp * self.cp)

    @property
    def ep_group(self) -> Group:
        """The expert-parallel group: ``ep`` ranks ``etp`` apart.

        Megatron Core's MoE parallel folding numbers the expert ranks etp-ep-edp-pp, innermost
        first, inside the same tp·cp·dp ranks the attention uses: an EP group is ``ep``
        ranks ``etp`` apart, and with etp < tp it spans attention's TP (and CP) ranks. With
        etp == tp (the default) it is ``ep`` ranks of the data-parallel (x CP) dimension.
        """
        return Group(self.ep, self.expert_tp)

    @property
    def etp_group(self) -> Group:
        """The expert-tensor-parallel group: consecutive ranks sharing each expert's columns."""
        return Group(self.expert_tp, 1)

    @property
    def pp_peer(self) -> Group:
        """A pipeline neighbour pair: send/recv between stages."""
        return Group(2, self.tp * self.cp * self.dp)
