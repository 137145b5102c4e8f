"""The `workload` of a training scenario (kind: training). Field names are a contract.

Cross-checks that need the model or the cluster (tp divides heads, tp*pp*dp*cp equals the
accelerators, ...) live in :mod:`simulator.profiles.layout_checks`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from annotated_types import Ge, Le
from pydantic import BaseModel, Field, model_validator

from simulator.profiles.moe_routing import MoeRouting
from simulator.profiles.numbers import (
    SPEC_CONFIG,
    NonNegativeInt,
    NotBool,
    PositiveFloat,
    PositiveInt,
    TokenLength,
    TrainingTokens,
)
from simulator.profiles.precision import Precision
from simulator.profiles.quantities import Bandwidth, Seconds
from simulator.profiles.recompute_modules import RecomputeModule


class PipelineSchedule(StrEnum):
    """The order in which pipeline stages run microbatches' forward and backward passes."""

    ONE_F_ONE_B = "1f1b"
    INTERLEAVED = "interleaved"
    GPIPE = "gpipe"


class Recompute(StrEnum):
    """Which activations backward recomputes instead of keeping (memory for compute)."""

    NONE = "none"
    SELECTIVE = "selective"  # recompute the attention core only (Korthikanti et al. 2022)
    FULL = "full"  # keep only each layer's input; recompute the whole layer in backward


class TrainingParallelism(BaseModel):
    """How a training job splits the model and the batch over the accelerators."""

    model_config = SPEC_CONFIG

    tp: PositiveInt = Field(1, description="tensor parallel size")
    pp: PositiveInt = Field(1, description="pipeline parallel size (stages)")
    dp: PositiveInt | None = Field(None, description="data parallel size; derived if omitted")
    cp: PositiveInt = Field(1, description="context parallel size")
    ep: PositiveInt = Field(1, description="expert parallel size: ep*etp ranks of the "
                                           "tp*cp*dp ones share one copy of the experts "
                                           "(Megatron Core MoE parallel folding)")
    etp: PositiveInt | None = Field(
        None, description="expert tensor parallel size (each expert's columns split over "
                          "etp ranks), independent of the attention's tp; default: tp")
    vpp: PositiveInt = Field(1, description="virtual pipeline stages per rank (interleaved)")
    zero: Literal[0, 1, 2, 3] = Field(
        1, description="ZeRO stage: 1 shards optimizer state, 2 also gradients, 3 also weights"
    )
    sequence_parallel: bool | None = Field(
        None, description="Megatron sequence parallelism; defaults to on when tp > 1"
    )
    first_stage_layers: PositiveInt | None = Field(
        None, description="layers on the first pipeline stage when it is lighter (it also "
                          "holds the embedding); the rest split evenly")
    last_stage_layers: PositiveInt | None = Field(
        None, description="layers on the last pipeline stage (it also holds the LM head)")

    @property
    def expert_tp(self) -> int:
        """The experts' tensor-parallel size: ``etp``, or ``tp`` when not given."""
        return self.tp if self.etp is None else self.etp

    def stage_layers(self, layers: int) -> list[int] | None:
        """Layers per pipeline stage, or None if they do not split as asked."""
        first, last = self.first_stage_layers, self.last_stage_layers
        if self.pp == 1:
            return [layers] if first is None and last is None else None
        fixed = [n for n in (first, last) if n is not None]
        middle_stages = self.pp - len(fixed)
        rest = layers - sum(fixed)
        if rest <= 0 and middle_stages > 0:
            return None
        if middle_stages == 0:
            return [first, last] if rest == 0 else None  # type: ignore[list-item]
        if rest % (middle_stages * self.vpp):
            return None
        each = rest // middle_stages
        counts = [each] * self.pp
        if first is not None:
            counts[0] = first
        if last is not None:
            counts[-1] = last
        return counts


class Overlap(BaseModel):
    """Which communication the framework hides behind compute."""

    model_config = SPEC_CONFIG

    dp_comm: bool = Field(True, description="overlap gradient reduction with backward")
    align_dp_comm: bool = Field(
        False, description="with dp_comm, launch a chunk's gradient reduction on every "
        "pipeline stage when the first stage does (Megatron-LM's and Megatron-Bridge's "
        "align_grad_reduce, on by default there); false: each stage launches bucket by "
        "bucket during its own last backward of the chunk (NeMo 2's default)")
    tp_comm: bool = Field(False, description="overlap TP collectives with GEMMs (userbuffers)")
    ep_comm: bool = Field(False, description="overlap expert-parallel all-to-alls with the "
                                             "compute of another microbatch (DualPipe-style)")
    pp_comm: bool = Field(True, description="overlap pipeline sends with compute (Megatron "
                                            "Core's asynchronous p2p); false: each send "
                                            "blocks its stage until it has arrived "
                                            "(Megatron-LM 2021-22)")


class Fp8Recipe(StrEnum):
    """How fp8 training scales tensors (Transformer Engine recipes). Decides the quantization
    passes before every GEMM; fp4 training always uses NVFP4."""

    DELAYED = "delayed"  # per-tensor scale from the amax history: one read per cast
    CURRENT = "current"  # per-tensor scale from this tensor's amax: two reads per cast
    BLOCK = "block"  # 1x128 / 128x128 blocks (DeepSeek-V3), rowwise and columnwise copies
    MXFP8 = "mxfp8"  # 1x32 blocks with e8m0 scales (Blackwell), rowwise and columnwise


class GradReduceDtype(StrEnum):
    """The precision gradients are accumulated, reduced over data parallelism and kept in."""

    FP32 = "fp32"  # Megatron-LM's --accumulate-allreduce-grads-in-fp32 (Llama 3)
    BF16 = "bf16"  # --grad-reduce-in-bf16 (NeMo recipes)


OffloadShare = Annotated[float, NotBool, Ge(0), Le(1)]


class Offload(BaseModel):
    """Saved activations moved to host memory during forward and back for backward."""

    model_config = SPEC_CONFIG

    activations: OffloadShare | Literal["fit"] = Field(
        0.0, description="share of the saved activations kept in host memory (0-1); priced "
                         "on the hardware profile's host_link, overlapped with the pass; "
                         "`fit`: the smallest share (in hundredths) that fits the device")

    @property
    def share(self) -> float:
        """The share as a number. ``fit`` depends on the device's memory, which the workload
        does not know: whatever prices a step or its memory first resolves it
        (:func:`simulator.perf.footprint.resolved_memory_options`)."""
        if self.activations == "fit":
            raise ValueError("offload.activations: fit is resolved against the device memory "
                             "(perf.footprint.resolved_memory_options) before it is read")
        return self.activations


class FinetuneMethod(StrEnum):
    """Train every weight, or only low-rank adapters."""

    FULL = "full"
    LORA = "lora"


LoraTarget = Literal["q", "k", "v", "o", "gate", "up", "down"]


class Finetune(BaseModel):
    """Full training, or LoRA adapters of a rank on chosen projections."""

    model_config = SPEC_CONFIG

    method: FinetuneMethod = FinetuneMethod.FULL
    rank: PositiveInt = Field(16, description="LoRA rank")
    targets: tuple[LoraTarget, ...] = Field(("q", "k", "v", "o"),
                                            description="projections that get adapters")


class CheckpointMode(StrEnum):
    """Whether writing a checkpoint stops training."""

    BLOCKING = "blocking"
    ASYNC = "async"


class Checkpoint(BaseModel):
    """How often checkpoints are written and how fast storage takes them."""

    model_config = SPEC_CONFIG

    interval_s: Seconds | Literal["auto"] = Field(
        "auto", description="seconds between checkpoints, or auto (Young/Daly optimum)"
    )
    storage_bandwidth: Bandwidth = Field(
        1e12, description="aggregate write bandwidth of the checkpoint storage"
    )
    mode: CheckpointMode = CheckpointMode.BLOCKING


class Failures(BaseModel):
    """Job-interrupting failures at run scale and what each costs."""

    model_config = SPEC_CONFIG

    enabled: bool = True
    mtbf_per_accelerator_hours: PositiveFloat | None = Field(
        None, description="mean time between job-interrupting failures per accelerator, "
                          "hours; this or mtbf_per_node_hours replaces the hardware "
                          "profile's reliability block (the one not given: no such failures)"
    )
    mtbf_per_node_hours: PositiveFloat | None = Field(
        None, description="mean time between job-interrupting failures per node (host), "
                          "hours; see mtbf_per_accelerator_hours")
    restart_s: Seconds = Field(600.0, description="time to detect, restart and reload")


class TrainingWorkload(BaseModel):
    """A training or fine-tuning run: batch and sequence, length of the run, layout, schedule,
    recomputation, and what interrupts it."""

    model_config = SPEC_CONFIG

    kind: Literal["training"]
    precision: Precision = Field(Precision.BF16, description="GEMM precision (mixed "
                                 "precision: master weights and optimizer stay fp32); the "
                                 "profile must have a peak for it")
    seq_len: TokenLength = Field(description="tokens per training sequence")
    beyond_context: bool = Field(
        False, description="allow seq_len above the model's max_seq_len (context extended "
                           "in training, e.g. RoPE scaling as in MLPerf's Llama 2 70B LoRA)")
    global_batch_size: PositiveInt = Field(description="sequences per optimizer step")
    micro_batch_size: PositiveInt = Field(1, description="sequences per forward/backward pass")
    tokens: TrainingTokens | None = Field(None, description="tokens to train")
    steps: PositiveInt | None = Field(None, description="optimizer steps (instead of tokens)")
    parallelism: TrainingParallelism = Field(TrainingParallelism(),
                                             description="how the model is split")
    pipeline_schedule: PipelineSchedule = Field(PipelineSchedule.ONE_F_ONE_B,
                                                description="order of microbatch passes")
    recompute: Recompute = Field(Recompute.SELECTIVE, description="activation recomputation: "
                                 "selective recomputes the attention core, full the layer")
    recompute_layers: PositiveInt | Literal["fit"] | None = Field(
        None, description="with recompute: full, only the first this many layers of each "
                          "model chunk are recomputed and the others keep all their "
                          "activations (Megatron-LM --recompute-method block "
                          "--recompute-num-layers); `fit`: the fewest that fit the device "
                          "memory (none at all if everything fits); default: every layer")
    recompute_modules: tuple[RecomputeModule, ...] | None = Field(
        None, min_length=1, description="with recompute: selective, the submodules "
                                        "recomputed (Megatron Core --recompute-modules: "
                                        "core_attn, mla_up_proj, layernorm, mlp, moe, "
                                        "moe_act, shared_experts); default core_attn")
    flash_attention: bool = Field(
        True, description="fused attention (FlashAttention); false for frameworks that "
                          "write the s x s scores to HBM (e.g. Megatron-LM before 2023)")
    attention_block: PositiveInt | None = Field(
        None, description="the fused attention kernel's query/key block: a causal mask skips "
                          "only whole blocks above the diagonal (Splash attention on TPUs; "
                          "MaxText sa_block_q/sa_block_kv); must divide seq_len; default: "
                          "the exact causal half")
    overlap: Overlap = Field(Overlap(), description="which communication the framework hides")
    moe: MoeRouting = Field(MoeRouting(), description="expert load balance (MoE models); "
                            "training defaults to forced (perfectly balanced) routing")
    finetune: Finetune = Field(Finetune(), description="full training or LoRA adapters")
    checkpoint: Checkpoint = Field(Checkpoint(), description="checkpoint cadence and storage")
    failures: Failures = Field(Failures(), description="job-interrupting failures at run scale")
    fp8_recipe: Fp8Recipe = Field(
        Fp8Recipe.DELAYED, description="scaling recipe of fp8 GEMMs (Megatron-LM's "
                                       "--fp8-recipe default: delayed); ignored for bf16")
    cuda_graphs: bool = Field(
        False, description="passes replayed as CUDA graphs: the host launches kernels at the "
                           "profile's graph_launch cost instead of host_launch")
    activation_dtype: Precision | None = Field(
        None, description="precision the saved GEMM inputs are kept in for backward (fp8 "
                          "with fp8 GEMMs: Transformer Engine keeps the quantized copy); "
                          "default bf16")
    grad_reduce_dtype: GradReduceDtype = Field(
        GradReduceDtype.FP32, description="precision of the gradient buffers and their "
                                          "data-parallel reduction")
    offload: Offload = Field(Offload(), description="activation offload to host memory")
    fp8_attention: bool = Field(
        False, description="the fused attention core runs in fp8 (Transformer Engine's "
                           "fp8 dot-product attention, NVTE_FP8_DPA), at the profile's "
                           "efficiency.attention fp8 fractions; needs fp8 or fp4 GEMMs and "
                           "flash_attention")
    ddp_bucket_params: PositiveInt | None = Field(
        None, description="parameters per data-parallel bucket (Megatron-LM --ddp-bucket-size, "
                          "DistributedDataParallelConfig.bucket_size; NeMo 2's "
                          "MegatronCommOverlapCallback sets 134217728 (128 Mi) whenever "
                          "data parallelism is on); default: megatron-core's max(40M, 1M x "
                          "dp), dp without context parallelism")
    mtp_layers: NonNegativeInt | None = Field(
        None, description="multi-token-prediction modules trained with the model, on the last "
                          "pipeline stage (Megatron Core --mtp-num-layers; 0 turns them off); "
                          "default: the model profile's mtp.depth (DeepSeek-V3: 1), none "
                          "with LoRA")
    fp8_param_gather: bool = Field(
        False, description="GEMM weights kept in fp8 and gathered in fp8 by the distributed "
                           "optimizer (Megatron-LM --fp8-param-gather): 1 byte per weight in "
                           "the data-parallel all-gather and in memory; needs fp8 or fp4 "
                           "GEMMs and parallelism.zero >= 1")

    @model_validator(mode="after")
    def _activation_dtype(self) -> TrainingWorkload:
        dtype = self.activation_dtype
        if dtype is None:
            return self
        if dtype not in (Precision.BF16, Precision.FP16, Precision.FP8):
            raise ValueError(f"activation_dtype {dtype.value} is not supported; use bf16, "
                             f"fp16 or fp8")
        if dtype is Precision.FP8 and self.precision.bytes_per_element > 1:
            raise ValueError("activation_dtype fp8 needs fp8 or fp4 GEMMs (precision: "
                             f"{self.precision.value}): only a quantized GEMM input is kept "
                             "in fp8")
        return self

    @model_validator(mode="after")
    def _recompute_layers(self) -> TrainingWorkload:
        if self.recompute_layers is not None and self.recompute is not Recompute.FULL:
            raise ValueError(f"recompute_layers needs recompute: full (got "
                             f"{self.recompute.value}): it says how many layers of each chunk "
                             "are recomputed in full")
        if self.recompute_modules is not None and self.recompute is not Recompute.SELECTIVE:
            raise ValueError(f"recompute_modules needs recompute: selective (got "
                             f"{self.recompute.value}): it names what selective "
                             "recomputation checkpoints")
        return self

    @property
    def recomputed_layers(self) -> int | None:
        """``recompute_layers`` as a count (None: every layer). ``fit`` depends on the
        device's memory, which a workload does not know: whatever prices a step or its
        memory first resolves it (:func:`simulator.perf.footprint.resolved_memory_options`)."""
        if self.recompute_layers == "fit":
            raise ValueError("recompute_layers: fit is resolved against the device memory "
                             "(perf.footprint.resolved_memory_options) before it is read")
        return self.recompute_layers

    @model_validator(mode="after")
    def _fp8_attention(self) -> TrainingWorkload:
        if self.fp8_attention and self.precision.bytes_per_element > 1:
            raise ValueError("fp8_attention needs fp8 or fp4 GEMMs (precision: "
                             f"{self.precision.value}): Transformer Engine runs attention in "
                             "fp8 only inside its fp8 autocast")
        if self.fp8_attention and not self.flash_attention:
            raise ValueError("fp8_attention needs flash_attention: only the fused attention "
                             "kernel runs in fp8")
        return self

    @model_validator(mode="after")
    def _fp8_param_gather(self) -> TrainingWorkload:
        if not self.fp8_param_gather:
            return self
        if self.precision.bytes_per_element > 1:
            raise ValueError("fp8_param_gather needs fp8 or fp4 GEMMs (precision: "
                             f"{self.precision.value}): only weights that feed a quantized "
                             "GEMM are kept in fp8")
        if self.parallelism.zero < 1 or self.finetune.method is FinetuneMethod.LORA:
            raise ValueError("fp8_param_gather needs a distributed optimizer that gathers "
                             "the weights (parallelism.zero >= 1, full training)")
        return self

    @property
    def saved_activation_bytes(self) -> float:
        """Bytes per element of the GEMM inputs saved for backward."""
        return (self.activation_dtype or Precision.BF16).bytes_per_element

    @property
    def grad_bytes(self) -> float:
        """Bytes per gradient element in the buffers and the data-parallel reduction."""
        return 4.0 if self.grad_reduce_dtype is GradReduceDtype.FP32 else 2.0

    @model_validator(mode="after")
    def _tokens_or_steps(self) -> TrainingWorkload:
        if self.tokens is not None and self.steps is not None:
            raise ValueError("give either tokens or steps, not both")
        par = self.parallelism
        if par.vpp > 1 and self.pipeline_schedule is not PipelineSchedule.INTERLEAVED:
            raise ValueError("parallelism.vpp > 1 needs pipeline_schedule: interleaved")
        if self.pipeline_schedule is PipelineSchedule.INTERLEAVED and par.vpp < 2:
            raise ValueError("pipeline_schedule: interleaved needs parallelism.vpp >= 2")
        return self

    @property
    def tokens_per_step(self) -> int:
        """Tokens in one optimizer step (global batch x sequence length)."""
        return self.global_batch_size * self.seq_len

    @property
    def total_steps(self) -> int:
        """Optimizer steps in the run (tokens rounded up to whole steps; one if neither)."""
        if self.steps is not None:
            return self.steps
        if self.tokens is not None:
            return max(1, -(-int(self.tokens) // self.tokens_per_step))
        return 1
