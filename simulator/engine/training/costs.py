"""What one pass of one microbatch costs on one device, from the cost models in ``perf``.

A pass's operations come from :func:`simulator.perf.transformer.training_ops`; each compute
op is timed by the roofline and each collective by the network model. What the framework
overlaps is then taken off:

- TP/SP collectives (``overlap.tp_comm``, Transformer Engine's userbuffers): an all-gather
  hides behind the GEMM that consumes it, a reduce-scatter or all-reduce behind the GEMM
  that produces it, up to that GEMM's length. Otherwise they are exposed in full.
- CP collectives: ring attention overlaps the K/V exchange with the attention core's
  kernels but its last one, and returns the last dK/dV chunk after that kernel (one hop of
  the backward reduce-scatter exposed, :func:`ring_tail`); the excess is exposed.
- EP all-to-alls (``overlap.ep_comm``, DualPipe-style): hidden behind the compute of
  another microbatch, modelled as up to the pass's own compute. Otherwise exposed.

Passes are cached by shape (layers, MoE layers, whether the chunk holds the embedding or
the LM head): a pipeline of a hundred stages prices a handful of distinct chunks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from simulator.engine.training.plan import PassCost
from simulator.perf.footprint import saved_activation_bytes
from simulator.perf.moe_balance import moe_imbalance
from simulator.perf.ops import GEMM_KINDS, Collective, CommOp, ComputeOp, Layout, OpKind
from simulator.perf.quantize_ops import training_recipe
from simulator.perf.roofline import op_time
from simulator.perf.training_chunks import ChunkShape
from simulator.perf.transformer import RECOMPUTE_PREFIX, StageLayers, training_ops
from simulator.profiles.hardware import HardwareProfile
from simulator.profiles.model import ModelProfile
from simulator.profiles.moe_routing import LoadBalancer
from simulator.profiles.training import FinetuneMethod, TrainingWorkload

_PARTNER_WINDOW = 3  # how far (in ops) a TP collective looks for the GEMM it overlaps


def _comm_class(op: CommOp) -> str:
    """Which exposed-communication class a collective counts in: "tp", "ep" or "cp"."""
    name = op.name.removeprefix(RECOMPUTE_PREFIX)
    if name.startswith("moe.") or op.collective is Collective.ALL_TO_ALL:
        return "ep"
    if ".cp_" in name:
        return "cp"
    return "tp"


def _partner(ops: list, i: int, kinds: tuple[OpKind, ...], forward: bool | None) -> int | None:
    """Index of the compute op of ``kinds`` nearest to op ``i`` (after it, before it, or
    either side when ``forward`` is None), within a few ops."""
    offsets = range(1, _PARTNER_WINDOW + 1)
    directions = (1,) if forward else (-1,) if forward is False else (1, -1)
    for distance in offsets:
        for direction in directions:
            j = i + direction * distance
            if 0 <= j < len(ops) and isinstance(ops[j], ComputeOp) and ops[j].kind in kinds:
                return j
    return None


def pass_cost(hw: HardwareProfile, ops: list, *, overlap_tp: bool,
              overlap_ep: bool, host_launch_s: float = 0.0) -> PassCost:
    """Compute time and exposed communication of one pass's ops on one device.

    The host launches every kernel (``host_launch_s`` each); when that takes longer than
    the pass's kernels and exposed communication, the device waits for it, and the wait
    counts as compute (the pass cannot end before its last launch).
    """
    times = [op_time(hw, op, library=True).time_s for op in ops]  # NCCL/RCCL collectives
    room = [t if isinstance(op, ComputeOp) else 0.0 for op, t in zip(ops, times, strict=True)]
    compute = sum(room)
    exposed = {"tp": 0.0, "ep": 0.0, "cp": 0.0}
    busy = 0.0
    flops = recompute = hbm = 0.0
    for i, (op, t) in enumerate(zip(ops, times, strict=True)):
        if isinstance(op, ComputeOp):
            flops += op.flops
            hbm += op.bytes
            if op.name.startswith(RECOMPUTE_PREFIX):
                recompute += op.flops
            continue
        busy += t
        cls = _comm_class(op)
        j = None
        if cls == "tp" and overlap_tp:
            j = _partner(ops, i, GEMM_KINDS, op.collective is Collective.ALL_GATHER)
        elif cls == "cp":
            j = _partner(ops, i, (OpKind.ATTENTION, OpKind.ATTENTION_BACKWARD), None)
        if j is None:
            exposed[cls] += t
            continue
        tail, spare = (ring_tail(op, t, times[j]) if cls == "cp" else (0.0, 0.0))
        hidden = min(t - tail, max(0.0, room[j] - spare))
        room[j] -= hidden
        exposed[cls] += t - hidden
    if overlap_ep:
        exposed["ep"] = max(0.0, exposed["ep"] - compute)
    host = host_launch_s * sum(op.count for op in ops)
    compute += max(0.0, host - compute - sum(exposed.values()))
    return PassCost(compute_s=compute, tp_s=exposed["tp"], ep_s=exposed["ep"],
                    cp_s=exposed["cp"], flops=flops, recompute_flops=recompute, hbm_bytes=hbm,
                    comm_busy_s=busy)


def ring_tail(op: CommOp, time_s: float, core_s: float) -> tuple[float, float]:
    """What of a ring-attention exchange cannot overlap its attention core, and how much of
    the core no exchange can hide behind: (the collective's exposed floor, the core's
    unusable seconds).

    Ring attention over ``n`` ranks runs ``n`` kernels and moves K/V ``n - 1`` times, each
    hop while the previous step's kernel runs, so the last kernel (1/n of the core) has no
    transfer left to hide. In backward, Transformer Engine passes each chunk's dK/dV along
    the ring with its K/V and returns the last one to its owner after the last kernel (the
    final wait in ``AttnFuncWithCPAndKVP2P.backward``, recalled, not re-read): one of the
    reduce-scatter's ``n - 1`` hops is exposed whatever the core's length.
    """
    n = op.group.size
    if n <= 1:
        return 0.0, 0.0
    tail = time_s / (n - 1) if op.collective is Collective.REDUCE_SCATTER else 0.0
    return tail, core_s / n


def _lora(workload: TrainingWorkload):
    """The LoRA (rank, targets) the ops need, or None for full training."""
    f = workload.finetune
    return (f.rank, f.targets) if f.method is FinetuneMethod.LORA else None


class PassCosts:
    """Forward and backward :class:`PassCost` of each chunk shape, computed once per shape,
    and the chunk's once-per-step work (weight quantization)."""

    def __init__(self, *, hw: HardwareProfile, model: ModelProfile, layout: Layout,
                 workload: TrainingWorkload):
        self.hw, self.model, self.layout, self.workload = hw, model, layout, workload
        self.recipe = training_recipe(workload.precision, workload.fp8_recipe.value,
                                      hw.compute.fp8_transposed_copies)
        self.host_launch_s = host_launch(hw, workload.cuda_graphs)
        self._cache: dict[tuple, tuple[PassCost, PassCost, StepWork]] = {}

    def _key(self, shape: ChunkShape) -> tuple:
        moe = sum(self.model.is_moe_layer(i)
                  for i in range(shape.first_layer, shape.first_layer + shape.layers))
        return (shape.layers, moe, shape.embedding, shape.lm_head, shape.mtp)

    def __call__(self, shape: ChunkShape) -> tuple[PassCost, PassCost]:
        forward, backward, _ = self._priced(shape)
        return forward, backward

    def step_work(self, shape: ChunkShape) -> StepWork:
        """The chunk's work once per optimizer step (its weights' quantization)."""
        return self._priced(shape)[2]

    def _priced(self, shape: ChunkShape) -> tuple[PassCost, PassCost, StepWork]:
        key = self._key(shape)
        if key not in self._cache:
            self._cache[key] = self._price(shape)
        return self._cache[key]

    def _price(self, shape: ChunkShape) -> tuple[PassCost, PassCost, StepWork]:
        """Build and price one chunk shape's forward, backward and per-step ops."""
        w = self.workload
        ops = training_ops(self.model, self.layout, w.seq_len, w.micro_batch_size, w.precision,
                           w.recompute.value, _lora(w),
                           stage=StageLayers(first_layer=shape.first_layer, layers=shape.layers,
                                             embedding=shape.embedding, lm_head=shape.lm_head,
                                             mtp=shape.mtp),
                           flash_attention=w.flash_attention, quantization=self.recipe,
                           recompute_layers=w.recomputed_layers,
                           fp8_attention=w.fp8_attention,
                           recompute_modules=w.recompute_modules,
                           attention_block=w.attention_block,
                           imbalance=moe_imbalance(w.moe, self.model, w.parallelism.ep,
                                                   LoadBalancer.FORCED))
        forward, backward = (pass_cost(self.hw, part, overlap_tp=w.overlap.tp_comm,
                                       overlap_ep=w.overlap.ep_comm,
                                       host_launch_s=self.host_launch_s)
                             for part in (ops.forward, ops.backward))
        copy_s = offload_copy_s(self.hw, self.model, w, shape.layers)
        step = StepWork(time_s=sum(op_time(self.hw, op, library=True).time_s for op in ops.step),
                        hbm_bytes=sum(op.bytes for op in ops.step))
        return with_offload(forward, copy_s), with_offload(backward, copy_s), step


@dataclass(frozen=True)
class StepWork:
    """Work a chunk does once per optimizer step, on one device."""

    time_s: float
    hbm_bytes: float


def host_launch(hw: HardwareProfile, cuda_graphs: bool) -> float:
    """Host seconds per kernel launch: the profile's graph figure when passes are replayed
    as graphs (its eager figure if it has none), else the eager one; 0 where absent."""
    eff = hw.efficiency
    figure = (eff.graph_launch or eff.host_launch) if cuda_graphs else eff.host_launch
    return figure.value if figure is not None else 0.0


def offload_copy_s(hw: HardwareProfile, model: ModelProfile, w: TrainingWorkload,
                   layers: int) -> float:
    """Seconds to move one microbatch's offloaded activations of ``layers`` layers over the
    host link, one way (device to host after forward, back before backward)."""
    share = w.offload.share
    if share <= 0 or hw.host_link is None:
        return 0.0
    return share * saved_activation_bytes(model, w, layers) / hw.host_link.bandwidth.value


def with_offload(cost: PassCost, copy_s: float) -> PassCost:
    """A pass whose activation copies run on the copy engine beside its compute (Megatron
    Core's fine-grained offloading overlaps them); what outlasts the compute is exposed and
    counted with the other exposed time (``cp_s``, reported as ``other``)."""
    exposed = max(0.0, copy_s - cost.compute_s)
    if exposed <= 0:
        return cost
    return replace(cost, cp_s=cost.cp_s + exposed)
