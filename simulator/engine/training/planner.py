"""From a training scenario to the plan of one step: pass costs, schedule, DP buckets.

Data-parallel traffic follows Megatron-LM's distributed data parallel (Narayanan et al.
2021; Megatron-core ``DistributedDataParallel`` and ``DistributedOptimizer``). What each
collective carries and over which ranks is :mod:`simulator.perf.data_parallel`, which the
roofline view reads too; here each is split into buckets:

- gradients are reduced in fp32 (Megatron-LM's default with bf16, as in Llama 3) in
  buckets of ``workload.ddp_bucket_params``, by default megatron-core's max(40M, 1M x dp)
  with dp without context parallelism: an all-reduce with ZeRO 0, a reduce-scatter
  with ZeRO >= 1; expert gradients over the expert-data-parallel group (dp·cp/ep ranks);
- ZeRO 1/2 all-gather the updated bf16 parameters once per step, ZeRO 3 before every pass;
- LoRA reduces only the adapters' gradients and gathers nothing (the frozen base is
  replicated, as the footprint assumes);
- after them, the first and the last stage all-reduce the gradient of a word embedding they
  share (tied output layer, or MTP modules: :mod:`simulator.perf.embedding_grads`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from simulator.engine.training.costs import PassCosts
from simulator.engine.training.optimizer_host import (
    exposed_host_s,
    optimizer_launches,
    shard_fragments,
)
from simulator.engine.training.plan import Bucket, Chunk, GatherMode, Stage, StepPlan
from simulator.engine.training.schedule import schedule
from simulator.perf.collectives import collective_time
from simulator.perf.data_parallel import (
    DpCollective,
    dp_groups,
    grad_collectives,
    param_collectives,
    zero_stage,
)
from simulator.perf.embedding_grads import NAME as EMBEDDING_GRADS
from simulator.perf.embedding_grads import embedding_grads_cost
from simulator.perf.footprint import resolved_memory_options
from simulator.perf.layouts import training_layout, training_stage_layers
from simulator.perf.model_flops import model_flops_per_token
from simulator.perf.mtp_training import trained_mtp_layers
from simulator.perf.ops import Collective, Group
from simulator.perf.training_chunks import ChunkParams, chunk_params, chunk_shapes
from simulator.profiles.hardware import HardwareProfile
from simulator.profiles.params import count_params
from simulator.profiles.scenario import Scenario
from simulator.profiles.training import TrainingWorkload

ACTIVATION_BYTES = 2.0  # activations and their gradients cross stages in bf16
# Adam over one parameter of the shard, memory-bound: read the fp32 master weight, m and v
# (12 B) and the fp32 main gradient (4 B), write master, m and v (12 B) and the bf16 weight
# (2 B); the gradient norm reads the main gradient once more (4 B) and clipping scales it in
# place (8 B): 42 bytes (physics_facts §5: 28 B for Adam alone; Megatron-LM's optimizer
# timers show the copy, clip and inner-step phases as separate passes). Gradients reduced
# in bf16 are first copied to fp32 main gradients (megatron-core 0.14.0,
# ``_copy_model_grads_to_main_grads``: ``shard_model_grad.float()``; a no-op for fp32):
# read 2 B, write 4 B, 48 bytes in all.
ADAM_STATE_BYTES = 26.0
MAIN_GRAD_BYTES = 4.0  # the optimizer's gradients are fp32 whatever the reduction's dtype
GRAD_PASSES = 4.0  # Adam's read, the norm's read, the clip's read and write
GRAD_NORM_BYTES = 4.0  # the fp32 squared-norm partial each rank all-reduces
BUCKET_PARAMS = 40e6  # Megatron-LM DDP bucket size: max(40M, 1M x dp) parameters
MAX_BUCKETS = 32  # per chunk and kind; bigger buckets beyond that (keeps events few)


@dataclass(frozen=True, kw_only=True)
class TrainingPlan:
    """A step plan and the figures needed to turn its time into MFU and HFU."""

    step: StepPlan
    model_flops_per_step: float
    executed_flops_ratio: float  # executed FLOPs with recomputation / without


def _fabrics(fabric: str) -> tuple[str, ...]:
    """The fabrics a collective priced on ``fabric`` occupies."""
    if fabric in ("scale_up", "scale_out"):
        return (fabric,)
    if fabric == "local":
        return ()
    return ("scale_up", "scale_out")  # hierarchical (or mixed): both fabrics


def bucket_params(w: TrainingWorkload) -> float:
    """Parameters per DDP bucket: ``workload.ddp_bucket_params``, else megatron-core's
    default max(40M, 1M x dp), one size for every buffer (dense and expert), dp the
    data-parallel size without context parallelism (distributed_data_parallel.py,
    0.14.0: ``get_data_parallel_world_size()``, whose ``with_context_parallel`` is False)."""
    if w.ddp_bucket_params is not None:
        return float(w.ddp_bucket_params)
    return max(BUCKET_PARAMS, 1e6 * (w.parallelism.dp or 1))


def _buckets(hw: HardwareProfile, collective: DpCollective, size: float) -> tuple[Bucket, ...]:
    """One collective of a chunk split into DDP buckets of ``size`` parameters, each priced
    as one collective over its group."""
    op = collective.op
    n = max(1, min(MAX_BUCKETS, math.ceil(collective.params / size)))
    cost = collective_time(hw, op.collective, op.bytes / n, op.group, library=True)
    if cost.fabric == "local":
        return ()
    return tuple(Bucket(f"{op.name} {k + 1}/{n}", cost.time_s, _fabrics(cost.fabric))
                 for k in range(n))


class _DataParallel:
    """The data-parallel groups of a layout and the buckets of one chunk."""

    def __init__(self, hw: HardwareProfile, w: TrainingWorkload):
        self.hw = hw
        self.workload = w
        self.grad_bytes = w.grad_bytes
        self.dense, self.expert = dp_groups(w)
        self.zero = zero_stage(w)
        self.fp8_params = w.fp8_param_gather
        self.bucket_params = bucket_params(w)

    @property
    def gather(self) -> GatherMode:
        """When parameters are gathered: never (ZeRO 0, LoRA), once a step, every pass."""
        if self.zero == 0:
            return GatherMode.NONE
        return GatherMode.PASS if self.zero == 3 else GatherMode.STEP

    def grads(self, p: ChunkParams) -> tuple[Bucket, ...]:
        """The gradient buckets of a chunk: dense over the DP group, expert over the
        expert-data-parallel one."""
        return tuple(bucket for c in grad_collectives(self.workload, p)
                     for bucket in _buckets(self.hw, c, self.bucket_params))

    def params(self, p: ChunkParams) -> tuple[Bucket, ...]:
        """The parameter-gather buckets of a chunk (ZeRO 1-3; none with ZeRO 0)."""
        return tuple(bucket for c in param_collectives(self.workload, p)
                     for bucket in _buckets(self.hw, c, self.bucket_params))

    @property
    def optimizer_bytes_per_param(self) -> float:
        """HBM bytes the optimizer step moves per parameter of the shard."""
        return ADAM_STATE_BYTES + GRAD_PASSES * MAIN_GRAD_BYTES + self.main_grad_copy_bytes

    @property
    def main_grad_copy_bytes(self) -> float:
        """HBM bytes per parameter of the shard's copy to fp32 main gradients (none when
        the gradients are already fp32)."""
        g = self.grad_bytes
        return g + MAIN_GRAD_BYTES if g < MAIN_GRAD_BYTES else 0.0

    def optimizer_params(self, params: list[ChunkParams]) -> float:
        """Parameters this device updates (its ZeRO shard of the trainable ones)."""
        return self._per_device(params, sharded=self.zero >= 1)

    def _per_device(self, params: list[ChunkParams], *, sharded: bool) -> float:
        """The trainable parameters of ``params`` one device holds: all of them, or when
        ``sharded`` its share over the data-parallel groups (dense over dp·cp, expert over
        the expert-data-parallel group)."""
        dense_shard = self.dense.size if sharded else 1
        expert_shard = self.expert.size if sharded else 1
        return sum(p.trainable_dense / dense_shard + p.trainable_expert / expert_shard
                   for p in params)

    def grad_buffer_bytes(self, params: list[ChunkParams]) -> float:
        """Bytes of gradient buffer zeroed at the start of every step, on a framework that
        launches kernels eagerly (Megatron-core's ``zero_grad_buffer``, called each
        iteration outside any CUDA graph: ``grad_data.zero_()`` over each whole buffer,
        distributed_data_parallel.py and param_and_grad_buffer.py, 0.14.0). The wgrad
        GEMMs accumulate into it (their bytes read and write it), so it starts at zero.
        ZeRO 2/3 hold their shard of the gradients; XLA (no eager launch figure) writes
        fresh gradients and zeroes nothing."""
        if self.hw.efficiency.host_launch is None:
            return 0.0
        return self.grad_bytes * self._per_device(params, sharded=self.zero >= 2)

    def host_tail_s(self, params: list[ChunkParams], *, device_after_sync_s: float) -> float:
        """What the distributed optimizer's eager launches after the gradient norm add to
        its device work (:mod:`.optimizer_host`); nothing for ZeRO 0 and 3, LoRA, or a
        profile without an eager launch figure."""
        launch = self.hw.efficiency.host_launch
        if self.zero not in (1, 2) or launch is None:
            return 0.0
        size = self.bucket_params
        fragments = sum(shard_fragments(p.trainable_dense, size)
                        + shard_fragments(p.trainable_expert, size) for p in params)
        launches = optimizer_launches(fragments, elements=self.optimizer_params(params),
                                      fp8_params=self.fp8_params)
        return exposed_host_s(launches=launches, host_launch_s=launch.value,
                              device_after_sync_s=device_after_sync_s)


class _PipelineSends(NamedTuple):
    """What one pipeline send costs: its transfer, its fabrics, and the all-gather that
    rebuilds it on arrival (0 with sequence parallelism, or TP 1)."""

    seconds: float
    fabrics: tuple[str, ...]
    gather_s: float


def _p2p(scenario: Scenario) -> _PipelineSends:
    """The time of one pipeline send (an activation or its gradient), its fabrics, and the
    all-gather it needs on arrival."""
    w, hw = scenario.workload, scenario.hardware
    assert isinstance(w, TrainingWorkload)
    layout = training_layout(w)
    if layout.pp == 1:
        return _PipelineSends(0.0, (), 0.0)
    # with SP the activations are already split over TP; without it Megatron-LM sends one
    # TP shard and all-gathers it on arrival (scatter-gather optimisation, Narayanan et al.
    # 2021 sec. 4.1): an all-gather of the whole tensor over the TP group, in the NVLink
    # domain, before the receiving pass can start
    whole = (w.micro_batch_size * w.seq_len / layout.cp * scenario.model.hidden_size
             * ACTIVATION_BYTES)
    cost = collective_time(hw, Collective.SEND_RECV, whole / layout.tp, layout.pp_peer,
                           library=True)
    gather_s = 0.0
    if layout.tp > 1 and not layout.sequence_parallel:
        gather_s = collective_time(hw, Collective.ALL_GATHER, whole, layout.tp_group,
                                   library=True).time_s
    return _PipelineSends(cost.time_s, _fabrics(cost.fabric), gather_s)


def chunk_prices(scenario: Scenario) -> PassCosts:
    """The pricer of ``scenario``'s chunks; scenarios that differ only in their pipeline
    split (vpp, end-stage layers, schedule) may share one (a chunk is priced by its layer
    count and whether it holds the embedding or the head, not by where it sits)."""
    scenario = resolved_memory_options(scenario)
    w = scenario.workload
    assert isinstance(w, TrainingWorkload)
    return PassCosts(hw=scenario.hardware, model=scenario.model, layout=training_layout(w),
                     workload=w)


def _stages(scenario: Scenario, dp: _DataParallel, prices: PassCosts,
            mtp: int) -> tuple[list[Stage], float, float]:
    """Every stage's chunks (priced passes and DP buckets; ``mtp`` trained MTP modules on
    the last) and optimizer step, and the FLOPs a step executes, and of them recomputes."""
    w, hw, model = scenario.workload, scenario.hardware, scenario.model
    assert isinstance(w, TrainingWorkload)
    counts = count_params(model)
    built: dict[ChunkParams, Chunk] = {}  # chunks of equal shape share their buckets
    stages, executed, recomputed = [], 0.0, 0.0
    norm_s = _grad_norm_s(scenario)
    bandwidth = hw.hbm_bandwidth * hw.efficiency.hbm.value
    transposes = hw.compute.fp8_transposed_copies
    for row in chunk_shapes(w, training_stage_layers(w, model.layers), mtp=mtp):
        chunks, params = [], []
        step_s = step_bytes = 0.0
        for shape in row:
            forward, backward = prices(shape)
            work = prices.step_work(shape)
            # fp8 params: the optimizer quantizes its updated shard, which is then gathered
            # (on Hopper each device still writes the transposed copies of all its weights)
            share = 1.0 / dp.dense.size if dp.fp8_params and not transposes else 1.0
            step_s += work.time_s * share
            step_bytes += work.hbm_bytes * share
            p = chunk_params(model, w, shape, counts)
            params.append(p)
            if p not in built:
                built[p] = Chunk(forward=forward, backward=backward,
                                 grad_buckets=dp.grads(p), param_buckets=dp.params(p))
            chunk = built[p]
            if chunk.forward != forward or chunk.backward != backward:
                chunk = Chunk(forward=forward, backward=backward,
                              grad_buckets=chunk.grad_buckets, param_buckets=chunk.param_buckets)
            chunks.append(chunk)
            executed += forward.flops + backward.flops
            recomputed += forward.recompute_flops + backward.recompute_flops
        opt_s, opt_bytes = _optimizer_step(dp, params, step_s=step_s, step_bytes=step_bytes,
                                           norm_s=norm_s, bandwidth=bandwidth)
        stages.append(Stage(tuple(chunks), opt_s, opt_bytes))
    return stages, executed, recomputed


def _optimizer_step(dp: _DataParallel, params: list[ChunkParams], *, step_s: float,
                    step_bytes: float, norm_s: float, bandwidth: float) -> tuple[float, float]:
    """A stage's seconds and HBM bytes after the barrier: the optimizer over its shard
    (memory-bound at ``bandwidth``) with the gradient norm's all-reduce ``norm_s`` and the
    chunks' own step work (``step_s``, ``step_bytes``), what the host's launches after the
    norm's sync leave exposed, and the next step's gradient zeroing, in series before its
    forward."""
    shard = dp.optimizer_params(params)
    moved = shard * dp.optimizer_bytes_per_param
    seconds, before_sync = step_s, 0.0
    if shard:
        seconds = moved / bandwidth + (norm_s + step_s)
        # the main-gradient copy, the norm's read and its all-reduce precede the sync
        before_sync = shard * (dp.main_grad_copy_bytes + MAIN_GRAD_BYTES) / bandwidth + norm_s
    seconds += dp.host_tail_s(params, device_after_sync_s=seconds - before_sync)
    zeroed = dp.grad_buffer_bytes(params)
    return seconds + zeroed / bandwidth, moved + step_bytes + zeroed


def _sm_share(hw: HardwareProfile) -> float:
    """The share of the SMs a running data-parallel collective holds (0 where the profile
    says nothing: dedicated collective engines, or not measured)."""
    share = hw.efficiency.collective_sm_share
    return share.value if share is not None else 0.0


def _grad_norm_s(scenario: Scenario) -> float:
    """The gradient norm's all-reduce of one fp32 partial over every rank: latency only,
    but on the step's critical path (clipping waits for it)."""
    n = scenario.cluster.accelerators
    if n <= 1:
        return 0.0
    return collective_time(scenario.hardware, Collective.ALL_REDUCE, GRAD_NORM_BYTES,
                           Group(n, 1), library=True).time_s


def build_plan(scenario: Scenario, *, prices: PassCosts | None = None) -> TrainingPlan:
    """The plan of one steady-state step of ``scenario``'s pipeline (``prices``: a shared
    :func:`chunk_prices` of an equally priced scenario, to price each chunk shape once)."""
    scenario = resolved_memory_options(scenario)
    w, hw, model = scenario.workload, scenario.hardware, scenario.model
    assert isinstance(w, TrainingWorkload)
    par = w.parallelism
    dp = _DataParallel(hw, w)
    mtp = trained_mtp_layers(model, w)
    stages, executed, recomputed = _stages(scenario, dp, prices or chunk_prices(scenario), mtp)
    microbatches = w.global_batch_size // ((par.dp or 1) * w.micro_batch_size)
    order = schedule(w.pipeline_schedule.value, par.pp, microbatches, par.vpp)
    sends = _p2p(scenario)
    shared = embedding_grads_cost(hw, model, w, mtp)
    title = (f"{model.name} on {scenario.cluster.accelerators} x {hw.name}: tp={par.tp} "
             f"pp={par.pp} dp={par.dp} cp={par.cp} ep={par.ep}, {w.pipeline_schedule.value}"
             f"{f' vpp={par.vpp}' if par.vpp > 1 else ''}, {microbatches} microbatches")
    step = StepPlan(stages=tuple(stages), order=tuple(tuple(o) for o in order),
                    p2p_s=sends.seconds, p2p_fabrics=sends.fabrics,
                    p2p_gather_s=sends.gather_s, p2p_blocking=not w.overlap.pp_comm,
                    dp_overlap=w.overlap.dp_comm, gather=dp.gather, title=title,
                    align_grad_reduce=w.overlap.align_dp_comm,
                    peak_hbm_bandwidth=hw.hbm_bandwidth,
                    collective_sm_share=_sm_share(hw),
                    embedding_grads=None if shared is None else Bucket(
                        EMBEDDING_GRADS, shared.time_s, _fabrics(shared.fabric)))
    ratio = executed / (executed - recomputed) if executed > recomputed else 1.0
    return TrainingPlan(step=step,
                        model_flops_per_step=model_flops_per_token(model, w.seq_len, mtp)
                        * w.tokens_per_step,
                        executed_flops_ratio=ratio)
