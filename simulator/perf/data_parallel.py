"""What a training step's data-parallel collectives carry, and over which ranks.

Megatron Core's distributed data parallel (``DistributedDataParallel`` and the
``DistributedOptimizer``, 0.14) reduces each chunk's gradients and, with ZeRO, gathers its
updated parameters:

- dense parameters over the data-parallel ranks with context parallelism folded in, dp·cp
  ranks ``tp`` apart; expert parameters over the expert-data-parallel group of MoE parallel
  folding, dp·cp·tp/(ep·etp) ranks ``etp·ep`` apart;
- gradients in the buffer's dtype (``workload.grad_reduce_dtype``: fp32 by default), an
  all-reduce with ZeRO 0 and a reduce-scatter with ZeRO >= 1;
- parameters gathered in bf16 (ZeRO >= 1), the GEMM weights in fp8 with
  ``fp8_param_gather`` (the experts are all GEMM weights);
- LoRA reduces its adapters' gradients only and gathers nothing (the frozen base is
  replicated).

The training engine splits each collective into DDP buckets; the roofline view shows them
whole.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.perf.ops import Collective, CommOp, Group
from simulator.perf.training_chunks import ChunkParams
from simulator.profiles.training import FinetuneMethod, TrainingWorkload

PARAM_GATHER_BYTES = 2.0  # bf16 parameters
FP8_PARAM_BYTES = 1.0  # a GEMM weight kept and gathered in fp8 (workload.fp8_param_gather)


@dataclass(frozen=True)
class DpCollective:
    """One collective of a chunk and the parameters it carries (DDP buckets are sized in
    parameters, not bytes)."""

    op: CommOp
    params: float


def dp_groups(w: TrainingWorkload) -> tuple[Group, Group]:
    """The dense and the expert data-parallel groups (module docstring)."""
    par = w.parallelism
    replicas = (par.dp or 1) * par.cp
    dense = Group(replicas, par.tp)
    expert = Group(max(1, replicas * par.tp // (par.ep * par.expert_tp)),
                   par.expert_tp * par.ep)
    return dense, expert


def zero_stage(w: TrainingWorkload) -> int:
    """The ZeRO stage the data-parallel traffic follows: 0 for LoRA, which shards nothing."""
    return 0 if w.finetune.method is FinetuneMethod.LORA else w.parallelism.zero


def grad_collectives(w: TrainingWorkload, p: ChunkParams) -> list[DpCollective]:
    """The gradient reductions of a chunk: dense, then expert (none over a group of one)."""
    kind = Collective.ALL_REDUCE if zero_stage(w) == 0 else Collective.REDUCE_SCATTER
    dense, expert = dp_groups(w)
    parts = [(f"grads {kind.value}", p.trainable_dense, dense),
             (f"expert grads {kind.value}", p.trainable_expert, expert)]
    return [DpCollective(CommOp(name=name, collective=kind, bytes=params * w.grad_bytes,
                                group=group), params)
            for name, params, group in parts if params > 0 and group.size > 1]


def param_collectives(w: TrainingWorkload, p: ChunkParams) -> list[DpCollective]:
    """The parameter all-gathers of a chunk under ZeRO >= 1: dense, then expert."""
    if zero_stage(w) == 0:
        return []
    dense_bytes = expert_bytes = PARAM_GATHER_BYTES
    if w.fp8_param_gather:  # GEMM weights in fp8, the rest in bf16
        if p.dense > 0:
            dense_bytes -= (PARAM_GATHER_BYTES - FP8_PARAM_BYTES) * p.gemm_dense / p.dense
        expert_bytes = FP8_PARAM_BYTES
    dense, expert = dp_groups(w)
    ag = Collective.ALL_GATHER
    parts = [("params all_gather", p.dense, dense_bytes, dense),
             ("expert params all_gather", p.expert, expert_bytes, expert)]
    return [DpCollective(CommOp(name=name, collective=ag, bytes=params * per_param,
                                group=group), params)
            for name, params, per_param, group in parts if params > 0 and group.size > 1]
