"""What the step simulation needs to know, as plain numbers: the plan of one step.

:mod:`simulator.engine.training.costs` fills a plan from the cost models; tests and
what-if studies may build one by hand (equal stage times, no communication, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from simulator.engine.training.schedule import Task


@dataclass(frozen=True, kw_only=True)
class PassCost:
    """One forward or backward pass of one microbatch through one chunk, on one device.

    ``compute_s`` are the kernels (launch overheads included); the ``*_s`` communication
    times are what is left exposed after the overlap the framework achieves. ``comm_busy_s``
    is all the pass's communication, hidden or not (for utilization).
    """

    compute_s: float
    tp_s: float = 0.0
    ep_s: float = 0.0
    cp_s: float = 0.0
    flops: float = 0.0
    recompute_flops: float = 0.0
    hbm_bytes: float = 0.0
    comm_busy_s: float = 0.0

    @property
    def duration_s(self) -> float:
        """The pass's length on its stage: compute plus the communication left exposed."""
        return self.compute_s + self.tp_s + self.ep_s + self.cp_s


@dataclass(frozen=True)
class Bucket:
    """One data-parallel collective (a gradient bucket or a parameter gather).

    ``fabrics`` are the links it occupies ("scale_up", "scale_out"): transfers on the same
    fabric of the same device run one after another.
    """

    name: str
    time_s: float
    fabrics: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Chunk:
    """A model chunk held by a stage (one of ``vpp``): its passes and its DP traffic."""

    forward: PassCost
    backward: PassCost
    grad_buckets: tuple[Bucket, ...] = ()
    param_buckets: tuple[Bucket, ...] = ()


@dataclass(frozen=True)
class Stage:
    """One pipeline stage's share of the model: its chunks, and its optimizer step (time
    and HBM bytes, for its ZeRO shard of the parameters)."""

    chunks: tuple[Chunk, ...]
    optimizer_s: float = 0.0
    optimizer_bytes: float = 0.0


class GatherMode(StrEnum):
    """When parameters are all-gathered over the data-parallel group (ZeRO)."""

    NONE = "none"  # ZeRO 0: every rank holds the weights
    STEP = "step"  # ZeRO 1/2: after the optimizer, once per step
    PASS = "pass"  # ZeRO 3: before every pass


@dataclass(frozen=True, kw_only=True)
class StepPlan:
    """One pipeline's step: stages, their pass order, and the communication around it.

    ``p2p_s`` is the time of one activation (or gradient) transfer between neighbouring
    stages, on ``p2p_fabrics``; ``p2p_gather_s`` the all-gather over TP that rebuilds a
    received activation (or gradient) from the 1/tp shard that crossed (Megatron-LM's
    scatter-gather, without sequence parallelism), on the receiver's compute stream.
    ``p2p_blocking``: a stage waits for its send to arrive before it goes on (Megatron-LM
    2021-22); otherwise sends overlap its next passes. ``dp_overlap``: gradient reduction
    runs bucket by bucket behind the last backward, and (ZeRO 1/2) the parameter gather
    behind the first forwards; otherwise both wait until the compute is done. Gradients are
    reduced after the last microbatch's backward of each chunk (after every backward with
    ZeRO 3).
    """

    stages: tuple[Stage, ...]
    order: tuple[tuple[Task, ...], ...]
    p2p_s: float = 0.0
    p2p_fabrics: tuple[str, ...] = ("scale_out",)
    p2p_gather_s: float = 0.0
    p2p_blocking: bool = False
    dp_overlap: bool = True
    gather: GatherMode = GatherMode.NONE
    title: str = ""
    peak_hbm_bandwidth: float = 0.0  # bytes/s, for utilization
    # share of a device's SMs a running data-parallel collective occupies: compute that
    # overlaps it runs on the rest (:mod:`.shared_compute`)
    collective_sm_share: float = 0.0
    # Megatron's align_grad_reduce (:mod:`.stage_process`, ``_aligned_issues``): a stage
    # launches a chunk's gradient reduction when the pipeline's first stage does, not
    # during its own last backward of the chunk
    align_grad_reduce: bool = False
    # the shared word embedding's gradient all-reduce between the first and the last stage,
    # after their gradient reduction and before the optimizer (:mod:`.embedding_grads`);
    # None: no stage shares it
    embedding_grads: Bucket | None = None

    def __post_init__(self) -> None:
        if self.embedding_grads is not None and len(self.stages) < 2:
            raise ValueError("embedding_grads needs two pipeline stages or more: with one, "
                             "the embedding and the output layer are one copy")

    @property
    def pp(self) -> int:
        """Pipeline stages."""
        return len(self.stages)

    @property
    def vpp(self) -> int:
        """Model chunks per stage (virtual pipeline stages)."""
        return len(self.stages[0].chunks)

    @property
    def microbatches(self) -> int:
        """Microbatches per step: a stage runs each forward and backward through each of its
        chunks."""
        return len(self.order[0]) // (2 * self.vpp)

    def embedding_grads_s(self, stage: int) -> float:
        """Seconds ``stage`` spends in the embedding gradient all-reduce: the first and the
        last stage, when they share the word embedding."""
        if self.embedding_grads is None or stage not in (0, self.pp - 1):
            return 0.0
        return self.embedding_grads.time_s
