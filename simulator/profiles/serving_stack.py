"""Serving-stack profile: the serving software's own cost per iteration, every number sourced.

A stack (vLLM, SGLang, TensorRT-LLM, TGI, JetStream, Neuron, ...) spends host (CPU) time on
every iteration besides the accelerator's kernels: scheduling and preparing the inputs
before the step can launch, and turning its outputs into text afterwards (sampling
bookkeeping, detokenisation, stop checks, streaming). Each part costs ``fixed +
per_sequence x sequences + per_new_token x new tokens`` and either runs alongside the
accelerator (an overlap scheduler, asynchronous output processing) or in series with it.
A stack also decides how kernels are launched (CUDA/HPU graphs captured at some batch sizes,
to which a decode batch is padded; eager launches beyond) and how batches are formed
(continuous, or static: a whole batch admitted at once and run until its last member ends).
The physics is in :mod:`simulator.engine.serving.stack_cost`; docs/serving.md explains it.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field, model_validator

from simulator.profiles.hardware import HardwareProfile
from simulator.profiles.kv_memory import KvCacheMemory, SamplerMemory
from simulator.profiles.numbers import SPEC_CONFIG, PositiveInt
from simulator.profiles.quantities import NonNegativeSeconds, Sourced


class HostWork(BaseModel):
    """One part of an iteration's host work: its cost and whether it overlaps the device."""

    model_config = SPEC_CONFIG

    fixed: Sourced[NonNegativeSeconds] = Field(description="per iteration")
    per_sequence: Sourced[NonNegativeSeconds] = Field(
        description="per sequence in the iteration (prompt chunks and decodes)")
    per_new_token: Sourced[NonNegativeSeconds] = Field(
        description="per new token the iteration feeds (prompt tokens and one per decode)")
    overlapped: Sourced[bool] = Field(
        description="true: runs while the device computes another iteration (overlap "
                    "scheduler, asynchronous output processing); false: in series with it")

    def seconds(self, sequences: int, tokens: int) -> float:
        """Host seconds of this part for an iteration of ``sequences`` and ``tokens``."""
        return (self.fixed.value + self.per_sequence.value * sequences
                + self.per_new_token.value * tokens)


class Host(BaseModel):
    """The host (CPU) work of one iteration, in two parts, and multi-step scheduling."""

    model_config = SPEC_CONFIG

    schedule: HostWork = Field(
        description="scheduling and input preparation, before the iteration's kernels launch")
    output: HostWork = Field(
        description="the engine's output processing: sampler bookkeeping, detokenisation, "
                    "stop checks, handing results to the front end")
    frontend: HostWork | None = Field(
        None, description="the HTTP API server: request parsing, response building and "
                          "streaming to clients. Paid only when the workload is served over "
                          "HTTP (workload.frontend: http); absent: none")
    scheduler_steps: Sourced[PositiveInt] = Field(
        description="decode iterations scheduled at once (vLLM's multi-step scheduling): the "
                    "schedule part of a decode-only iteration is paid once per this many")
    launch: Sourced[NonNegativeSeconds] = Field(
        description="host time to launch one kernel eagerly: outside graphs an iteration "
                    "takes at least kernels x this")


class Graphs(BaseModel):
    """Decode iterations replayed as captured graphs (CUDA graphs, HPU graphs, compiled
    shapes): a decode batch is padded up to the next captured size; larger ones run eager."""

    model_config = SPEC_CONFIG

    batch_sizes: Sourced[tuple[PositiveInt, ...]] | None = Field(
        None, description="captured decode batch sizes (ascending)")
    full_batch: Sourced[bool] | None = Field(
        None, description="true: every decode iteration is padded to the workload's "
                          "max_batch_size (fixed decode slots, one compiled shape)")
    padding: Sourced[bool] | None = Field(
        None, description="false: a batch that is not a captured size runs eagerly instead "
                          "of padded (TensorRT-LLM's enable_padding); default true")
    capped_at_max_batch: Sourced[bool] | None = Field(
        None, description="true: sizes above the workload's max_batch_size are not captured "
                          "and, with padding, max_batch_size itself is (TensorRT-LLM filters "
                          "its capture list so); default false: the list as given")

    @model_validator(mode="after")
    def _one_kind(self) -> Graphs:
        if (self.batch_sizes is None) == (self.full_batch is None or not self.full_batch.value):
            raise ValueError("give batch_sizes (captured sizes) or full_batch: true, not both")
        sizes = self.batch_sizes.value if self.batch_sizes is not None else ()
        if list(sizes) != sorted(set(sizes)) or (self.batch_sizes is not None and not sizes):
            raise ValueError("batch_sizes must be distinct and ascending")
        return self


def _ascending(sizes: tuple[int, ...], name: str) -> None:
    if not sizes or list(sizes) != sorted(set(sizes)):
        raise ValueError(f"{name} must be distinct and ascending")


class ActivationQuant(BaseModel):
    """Whether the stack quantizes a low-precision GEMM's input inside the kernel that
    produces it (norm, activation, attention) or in a kernel of its own.

    W8A8 and W4A4 GEMMs read quantized activations, but the norms, the activation function
    and the attention write 16-bit ones: something must quantize every GEMM input at every
    iteration. A per-tensor scale (fp8 or int8 checkpoints with calibrated input scales) is
    an elementwise multiply and cast that a graph compiler folds into the producer; a
    per-token scale needs only its own row. Block scales (NVFP4: one per 16 elements, MXFP4:
    per 32) need a reduction per block, which takes a dedicated fused kernel. Where not fused,
    a separate kernel reads the 16-bit tensor and writes the quantized one
    (:mod:`simulator.perf.serving_quantize`)."""

    model_config = SPEC_CONFIG

    scaled_fused: Sourced[bool] = Field(
        description="fp8/int8/fp6 GEMM inputs (per-tensor or per-token scales) are quantized "
                    "by the kernel that produces them; false: a separate kernel each")
    block_scaled_fused: Sourced[bool] = Field(
        description="fp4 GEMM inputs (NVFP4/MXFP4 block scales) are quantized by the kernel "
                    "that produces them; false: a separate kernel each")


class Frontend(StrEnum):
    """How requests reach the engine: through its HTTP API server, or from a harness that
    calls the engine in its own process (MLPerf's LoadGen, an offline ``LLM.generate``),
    where the API server's work does not exist, or from a harness in its own process that
    consumes every request's output as a stream, step by step (an MLPerf Server harness,
    which reports each query's first token as it comes): the engine hands every running
    request its step's output as it would hand it to its API server, and the harness takes
    each one, so the stack's ``frontend`` part is paid, where that part says it runs."""

    HTTP = "http"
    IN_PROCESS = "in_process"
    IN_PROCESS_STREAMING = "in_process_streaming"


class Admission(StrEnum):
    """How batches are formed."""

    CONTINUOUS = "continuous"  # requests join and leave at every iteration boundary
    STATIC = "static"  # a batch is admitted whole when the last one has ended


class KvReservation(StrEnum):
    """When a request's KV blocks are taken."""

    ON_DEMAND = "on_demand"  # as its context grows; preempt by recompute when out (vLLM)
    FULL_SEQUENCE = "full_sequence"  # prompt + max output promised at admission; no eviction


class MoeExchange(StrEnum):
    """How an attention-DP replica's MoE layers move tokens to their experts and back."""

    ALL_TO_ALL = "all_to_all"  # dispatch and combine kernels (DeepEP, NVLink all-to-all)
    ALL_GATHER = "all_gather"  # every device gathers all tokens, reduce-scatters the output
    ALL_TO_ALL_ON_MNNVL = "all_to_all_on_mnnvl"  # all-to-all only where the NVLink domain
    # spans nodes (GB200 NVL72), all-gather elsewhere (TensorRT-LLM)


class ServingStack(BaseModel):
    """A serving software stack and version. Immutable; what-ifs build a new one."""

    model_config = SPEC_CONFIG

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    name: str
    description: str = ""
    host: Host
    graphs: Graphs | None = Field(
        None, description="graph capture of decode iterations; absent: every iteration eager")
    admission: Sourced[Admission] = Field(description="continuous or static batching")
    kv_reservation: Sourced[KvReservation] | None = Field(
        None, description="on_demand: KV blocks taken as contexts grow, the newest running "
                          "request preempted when they run out; full_sequence: a request is "
                          "admitted only when blocks for its prompt and maximum output fit "
                          "beside those promised to the running ones, and none is preempted "
                          "(TensorRT-LLM's GUARANTEED_NO_EVICT); absent: on_demand")
    prompt_buckets: Sourced[tuple[PositiveInt, ...]] | None = Field(
        None, description="prompt lengths compiled for prefill (NxD Inference's context-"
                          "encoding buckets): a prompt is prefilled padded up to the next, "
                          "and one longer than every bucket unpadded; absent: no padding")
    prompts_per_prefill: Sourced[PositiveInt] | None = Field(
        None, description="prompts one prefill call runs (JetStream's prefill thread "
                          "prefills one request per compiled call): an iteration's fresh "
                          "prompts are prefilled this many at a time, one call after "
                          "another, then its decodes step in a program of their own; "
                          "continuous admission only; absent: one call for all of them, "
                          "fused with the decodes")
    decode_buckets: Sourced[tuple[PositiveInt, ...]] | None = Field(
        None, description="context lengths compiled for decode (NxD Inference's token-"
                          "generation buckets): a decode step's attention runs over the next "
                          "bucket above its sequences' context; absent: over the context")
    activation_quant: ActivationQuant | None = Field(
        None, description="where fp8/fp4 GEMM inputs are quantized; absent: inside their "
                          "producers (no separate kernels: the behaviour before this field)")
    quantized_head: Sourced[bool] | None = Field(
        None, description="true: the embedding and LM head take the weight precision like the "
                          "transformer's linear layers; false: they stay 16-bit in fp8/fp4/int8 "
                          "checkpoints (ModelOpt leaves lm_head unquantized, and an embedding "
                          "table is not a linear layer), so they take twice (fp8) or four "
                          "times (fp4) the bytes and the LM head GEMM runs at the 16-bit rate; "
                          "absent: true (the behaviour before this field)")
    moe_exchange: Sourced[MoeExchange] | None = Field(
        None, description="how an attention-DP replica's MoE layers exchange tokens: "
                          "all_to_all (dispatch and combine of each token's copies), "
                          "all_gather (every device all-gathers the replica's tokens and "
                          "reduce-scatters its expert outputs), all_to_all_on_mnnvl "
                          "(all-to-all where the scale-up domain spans nodes, all-gather "
                          "elsewhere); absent: all_to_all")
    kv_cache_memory: KvCacheMemory | None = Field(
        None, description="how the KV cache is sized from device memory: a rule "
                          "(share_of_total, share_of_free, static_share_of_total) and the "
                          "stack's fraction (simulator/profiles/kv_memory.py); absent: "
                          "share_of_total 0.95, xpusim's rule before stacks stated theirs")
    sampler_memory: SamplerMemory | None = Field(
        None, description="what the sampler holds in the run that sizes the KV cache, for "
                          "max_batch_size sequences (at most max_tokens_per_step): whether the "
                          "logits are gathered over TP and the bytes per (sequence, "
                          "vocabulary entry) (simulator/perf/serving_workspace.py); absent: "
                          "fp32 logits of each device's vocabulary slice, added to the forward's "
                          "workspace (the behaviour before this field)")
    sources: dict[str, str] = Field(
        default_factory=dict, description="source ids used in 'source' fields, with URLs")

    @model_validator(mode="after")
    def _buckets_ascend(self) -> ServingStack:
        if self.prompt_buckets is not None:
            _ascending(self.prompt_buckets.value, "prompt_buckets")
        if self.decode_buckets is not None:
            _ascending(self.decode_buckets.value, "decode_buckets")
        if self.prompts_per_prefill is not None and self.admission.value is Admission.STATIC:
            raise ValueError("prompts_per_prefill needs admission: continuous (a static batch "
                             "is prefilled whole)")
        return self

    @property
    def max_prompts(self) -> int | None:
        """Prompts one iteration may prefill (None: as many as the token budget holds)."""
        return None if self.prompts_per_prefill is None else self.prompts_per_prefill.value

    @property
    def head_16bit(self) -> bool:
        """Whether the embedding and LM head stay 16-bit whatever the weight precision."""
        return self.quantized_head is not None and not self.quantized_head.value

    def gathers_moe_tokens(self, hardware: HardwareProfile) -> bool:
        """Whether attention-DP MoE layers all-gather instead of an all-to-all on
        ``hardware``: its scale-up domain spans nodes (multi-node NVLink, MNNVL) when it
        holds more devices than one node."""
        mode = MoeExchange.ALL_TO_ALL if self.moe_exchange is None else self.moe_exchange.value
        multinode = hardware.scale_up.domain_size.value > hardware.devices_per_node.value
        return mode is MoeExchange.ALL_GATHER or (
            mode is MoeExchange.ALL_TO_ALL_ON_MNNVL and not multinode)

    @property
    def reserves_full_sequence(self) -> bool:
        """Whether admission promises each request the KV blocks of its whole sequence."""
        return (self.kv_reservation is not None
                and self.kv_reservation.value is KvReservation.FULL_SEQUENCE)
