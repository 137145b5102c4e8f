"""Memory footprint per device: weights, gradients, optimizer state, activations, KV cache.

Training follows the mixed-precision Adam accounting of Rajbhandari et al. (ZeRO, 2020),
with fp32 gradients as Megatron-LM keeps them for bf16: 2 bytes of bf16/fp16 weights, 4 of
gradients, 12 of optimizer state (fp32 master copy, first and second moments) per
parameter; ZeRO stage 1 shards the optimizer state over the
data-parallel ranks, stage 2 also the gradients, stage 3 also the weights. Activations follow
Korthikanti et al. (2022) and are kept for as many microbatches as the pipeline schedule
holds in flight. Inference holds weights, the KV cache and a workspace for one iteration.

Every function returns bytes per device of the most loaded pipeline stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from simulator.perf.mtp_training import mtp_stage_params
from simulator.profiles.hardware import HardwareProfile
from simulator.profiles.model import AttentionKind, ModelProfile
from simulator.profiles.params import attention_params, count_params, ffn_params
from simulator.profiles.precision import Precision
from simulator.profiles.recompute_modules import DEFAULT_MODULES
from simulator.units import format_si

# CUDA/ROCm context, communication buffers and allocator fragmentation: a fixed part plus a
# share of capacity. Serving frameworks reserve similar amounts (vLLM's default
# gpu_memory_utilization of 0.9 leaves 10%); this is an assumption, documented in
# docs/modelling.md.
RUNTIME_RESERVE_FIXED_BYTES = 2 * 2**30
RUNTIME_RESERVE_FRACTION = 0.05

BYTES_WEIGHT_TRAIN = 2.0  # bf16/fp16 working copy (also with fp8 compute: TE keeps bf16)
# Gradients take workload.grad_reduce_dtype's bytes (fp32 by default: Megatron-LM's
# --accumulate-allreduce-grads-in-fp32 with bf16, as in the Llama 3 run; bf16 with
# --grad-reduce-in-bf16); the training engine reduces the same bytes per parameter.
BYTES_GRAD = 4.0  # the default (fp32)
BYTES_OPTIMIZER = 12.0  # fp32 master weights + Adam m and v


@dataclass(frozen=True)
class Footprint:
    """Bytes per device by consumer, and the verdict against the device's capacity."""

    parts: dict[str, float]
    capacity: float
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def total(self) -> float:
        """Bytes in all."""
        return sum(self.parts.values())

    @property
    def fits(self) -> bool:
        """Whether the device holds it all."""
        return self.total <= self.capacity

    @property
    def headroom(self) -> float:
        """Free bytes (negative when it does not fit)."""
        return self.capacity - self.total

    @property
    def biggest(self) -> str:
        """The consumer of the most bytes."""
        return max(self.parts, key=lambda name: self.parts[name])

    def verdict(self) -> str:
        """One line for users: fits with how much free, or short by how much and why."""
        need, have = format_si(self.total, "B"), format_si(self.capacity, "B")
        biggest = f"{self.biggest} {format_si(self.parts[self.biggest], 'B')}"
        if self.fits:
            return f"fits: {need} of {have} per device ({format_si(self.headroom, 'B')} free)"
        return (f"does not fit: needs {need} per device, has {have} (short by "
                f"{format_si(-self.headroom, 'B')}); biggest consumer: {biggest}")


def runtime_reserve(hardware: HardwareProfile) -> float:
    """Bytes the runtime keeps for itself (CUDA context, allocator slack, workspaces)."""
    return RUNTIME_RESERVE_FIXED_BYTES + RUNTIME_RESERVE_FRACTION * hardware.hbm_capacity


# ---- parameters per device ------------------------------------------------------------------
@dataclass(frozen=True)
class StageParams:
    """Parameters held by one device of the most loaded pipeline stage."""

    dense: float  # sharded by TP only (attention, dense FFN, norms, embeddings)
    expert: float  # sharded by EP x ETP

    @property
    def total(self) -> float:
        """Parameters in all."""
        return self.dense + self.expert


def even_stage_layers(layers: int, pp: int) -> list[int]:
    """Layers per stage when they split as evenly as possible."""
    return [round((s + 1) * layers / pp) - round(s * layers / pp) for s in range(pp)]


def stage_params(model: ModelProfile, tp: int, pp: int, ep: int = 1,
                 stage_layers: list[int] | None = None, *, etp: int | None = None) -> StageParams:
    """Largest per-device parameter share over the pipeline stages."""
    return max(all_stage_params(model, tp, pp, ep, stage_layers, etp=etp),
               key=lambda p: p.total)


def all_stage_params(model: ModelProfile, tp: int, pp: int, ep: int = 1,
                     stage_layers: list[int] | None = None, *,
                     etp: int | None = None, mtp_layers: int = 0) -> list[StageParams]:
    """Per-device parameters of each pipeline stage.

    The first stage also holds the embedding, the last the LM head (Megatron's layout; with
    tied embeddings both hold a copy) and the ``mtp_layers`` multi-token-prediction modules
    with a copy of the embedding (:func:`simulator.perf.mtp_training.mtp_stage_params`).
    Routed experts are split over ``ep`` ranks and each
    expert's columns over ``etp`` (expert tensor parallelism, default ``tp``); the rest,
    shared experts and router included, over ``tp``.
    """
    counts = count_params(model)
    stage_layers = stage_layers or even_stage_layers(model.layers, pp)
    per_norm = counts.norms / (2 * model.layers + 1)
    result = []
    start = 0
    for stage in range(pp):
        first, last = stage == 0, stage == pp - 1
        end = start + stage_layers[stage]
        dense = expert = 0.0
        for index in range(start, end):
            dense += attention_params(model) + 2 * per_norm
            if model.is_moe_layer(index):
                assert model.moe is not None
                m = model.moe
                expert_one = ffn_params(model, m.expert_ffn_size)
                expert += m.experts * expert_one
                dense += m.shared_experts * expert_one + model.hidden_size * m.experts
            else:
                dense += counts.dense_ffn_per_layer
        if first:
            dense += counts.embedding
        if last:
            dense += (counts.lm_head or counts.embedding if model.tied_embeddings and pp > 1
                      else counts.lm_head) + per_norm
            mtp_dense, mtp_expert = mtp_stage_params(model, mtp_layers, holds_embedding=first)
            dense, expert = dense + mtp_dense, expert + mtp_expert
        result.append(StageParams(dense / tp, expert / (ep * (tp if etp is None else etp))))
        start = end
    return result


# ---- KV cache -----------------------------------------------------------------------------
def kv_bytes_per_token(model: ModelProfile, kv_precision: Precision | str, tp: int = 1,
                       pp: int = 1) -> float:
    """KV-cache bytes one token occupies on one device of a TP x PP replica.

    GQA/MHA: 2 (K and V) x kv_heads x head_dim per layer, heads split over TP (a head is
    replicated when tp > kv_heads). MLA: the compressed latent (kv_lora_rank) plus the
    decoupled RoPE key (qk_rope_head_dim) per layer, replicated on every TP rank.
    """
    element = Precision(kv_precision).bytes_per_element
    layers = model.layers / pp
    per_layer: float
    if model.attention is AttentionKind.MLA:
        assert model.mla is not None
        per_layer = model.mla.kv_lora_rank + model.mla.qk_rope_head_dim
    else:
        kv_heads_per_device = max(1.0, model.kv_heads_resolved / tp)
        per_layer = 2 * kv_heads_per_device * model.head_dim_resolved
    return per_layer * layers * element


# ---- activations (training) ---------------------------------------------------------------
def activation_bytes_per_layer(model: ModelProfile, seq: int, micro_batch: int, tp: int,
                               sequence_parallel: bool, recompute: str, cp: int = 1,
                               flash_attention: bool = True,
                               gemm_input_bytes: float = 2.0,
                               recompute_modules: Sequence[str] | None = None,
                               etp: int | None = None) -> float:
    """Activation bytes one transformer layer keeps for backward, per device.

    Korthikanti et al. 2022 count, for a GPT layer with 16-bit activations and 1-byte
    dropout masks, s·b·h·(34 + 5·a·s/h) bytes; we derive the same terms from the layer's
    actual shapes so that GQA, MLA, gated MLPs, MoE and FFN sizes other than 4h are counted
    right (attention terms in :func:`_attention_bytes`, MLP terms in :func:`_mlp_bytes`):
      attention block  norm input 2h, QKV input h at the GEMM-input width, Q, K and V,
                       output-projection input, dropout mask h (if dropout)
      core attention   5·a·s per token without FlashAttention (scores, softmax, mask)
      MLP block        norm input 2h, FC1 input h, activation input/outputs
                       (2f+2f non-gated, 3·2f gated), dropout mask h (if dropout); an MoE
                       layer's routed FC1 input k·h besides (:func:`_routed_input_bytes`)
    With TP and sequence parallelism every term divides by t; with TP alone the norm inputs,
    masks and the block inputs stay whole. Selective recompute drops the core-attention
    term; full recompute keeps only the layer input (2h, /t with SP). CP divides s.
    ``gemm_input_bytes`` is what each saved GEMM input (QKV, output projection, FC1, FC2)
    takes per element: 1 when fp8 training keeps the quantized copy for backward.
    ``recompute_modules`` (selective only; default core_attn) drops what each recomputed
    submodule would have kept: mla_up_proj MLA's up-projection inputs and Q, K and V,
    layernorm the two norm outputs (the QKV and FC1 inputs), and the MLP terms per
    :func:`_recomputed_mlp_bytes`. ``etp``: the experts' tensor-parallel size (default tp).
    """
    s = seq / cp
    b = micro_batch
    h = model.hidden_size
    a = model.attention_heads
    f = model.ffn_size
    if model.moe is not None:
        f = model.moe.expert_ffn_size * (model.moe.active_experts + model.moe.shared_experts)
    dropout = model.position_embedding.value == "learned"  # GPT-style models train with dropout
    mask = h if dropout else 0
    if recompute == "full":
        return 2 * s * b * h / (tp if sequence_parallel else 1)
    modules = set(recompute_modules or DEFAULT_MODULES) if recompute == "selective" else set()
    g = gemm_input_bytes
    attn_split, attn_replicated = _attention_bytes(model, g, modules)
    mlp = (2 * 2 * f + g * f) if model.activation.gated else (2 * f + g * f)
    split = attn_split + mlp - _recomputed_mlp_bytes(model, modules, mlp, g)
    # terms that split only with SP: norm inputs (2h each), the FC1 input, masks
    fc1_input = 0.0 if "layernorm" in modules else g * h
    replicated = attn_replicated + 2 * h + fc1_input + 2 * mask
    per_token = split / tp + (replicated / tp if sequence_parallel else replicated)
    per_token += _routed_input_bytes(model, modules, g, tp if sequence_parallel else 1,
                                     tp if etp is None else etp)
    core = 0.0
    if not flash_attention and (recompute == "none" or (recompute == "selective"
                                                        and "core_attn" not in modules)):
        core = 5 * a * s / tp  # attention scores, softmax output and dropout per token
    return s * b * (per_token + core)


def _attention_bytes(model: ModelProfile, gemm_input_bytes: float,
                     modules: set[str]) -> tuple[float, float]:
    """Bytes per token the attention block keeps: (split over TP by heads, split only with SP).

    GQA/MHA: Q 2·a·d, K and V 2·2·k·d (16-bit, FlashAttention's saved inputs), the output
    projection's input g·a·d; the QKV GEMM's input g·h and the norm input 2h.
    MLA (Megatron Core 0.14 transformer/multi_latent_attention.py, DeepSeek-V3 config
    names): Q and K take qk_nope + qk_rope per head, V v_head_dim per head (not h/a); the
    sequence-split latents are saved twice, as the q/kv layernorms' 16-bit inputs
    (q_lora_rank, kv_lora_rank, and the rope key qk_rope) and as the up-projections' inputs
    at the GEMM-input width. ``mla_up_proj`` checkpoints the up-projections and the rope
    (CheckpointWithoutOutput on qkv_up_proj_and_rope_apply, whose inputs are the
    pre-norm latents): it frees Q, K, V and the norm outputs, keeps the latents.
    ``layernorm`` frees the QKV/down-projection input (the input norm's output).
    """
    h = model.hidden_size
    a = model.attention_heads
    g = gemm_input_bytes
    qkv_input = 0.0 if "layernorm" in modules else g * h
    if model.attention is not AttentionKind.MLA or model.mla is None:
        d = model.head_dim_resolved
        k = model.kv_heads_resolved
        return 2 * a * d + 4 * k * d + g * a * d, 2 * h + qkv_input
    m = model.mla
    qk_dim = m.qk_nope_head_dim + m.qk_rope_head_dim
    latents = (m.q_lora_rank or 0) + m.kv_lora_rank
    freed = "mla_up_proj" in modules
    qkv = 0.0 if freed else 2 * a * (2 * qk_dim + m.v_head_dim)
    replicated = 2 * h + qkv_input + 2 * (latents + m.qk_rope_head_dim)
    replicated += 0.0 if freed else g * latents
    return qkv + g * a * m.v_head_dim, replicated


def _routed_input_bytes(model: ModelProfile, modules: set[str], gemm_input_bytes: float,
                        sequence_split: int, etp: int) -> float:
    """Per token of the layer's sequence shard: the grouped FC1's saved input, k routed
    copies of h at the GEMM-input width (Megatron Core 0.14 transformer/moe/experts.py,
    TEGroupedMLP: TE's GroupedLinear saves its input, quantized under fp8; the permute and
    unpermute of moe_utils.py and the all-to-alls save only index maps, and the router
    probabilities are applied inside the activation, so no expert output is kept). Each
    token's copies sit on one expert-TP group of ``etp`` ranks, each holding all of h: the
    sequence shard's k·h copies times etp over the ``sequence_split`` (tp with sequence
    parallelism). ``moe`` recomputes the whole block and frees them."""
    if model.moe is None or "moe" in modules:
        return 0.0
    k = model.moe.active_experts
    return gemm_input_bytes * k * model.hidden_size * etp / sequence_split


def _recomputed_mlp_bytes(model: ModelProfile, modules: set[str], mlp: float,
                          gemm_input_bytes: float) -> float:
    """Of a layer's ``mlp`` bytes per token (activation input and FC2 input), those the
    recomputed submodules no longer keep: ``mlp`` (dense model) or ``moe`` (MoE model) all
    of them; ``shared_experts`` the shared experts' share; ``moe_act`` the routed experts'
    activation output, which is the FC2 input (k·f_e at the saved GEMM-input width).
    Every layer of an MoE model is priced as an MoE layer, so ``mlp`` frees nothing there
    (its dense first layers are few)."""
    if model.moe is None:
        return mlp if "mlp" in modules else 0.0
    if "moe" in modules:
        return mlp
    m = model.moe
    share = m.shared_experts / (m.active_experts + m.shared_experts)
    freed = mlp * share if "shared_experts" in modules else 0.0
    if "moe_act" in modules:
        freed += gemm_input_bytes * m.expert_ffn_size * m.active_experts
    return freed


def inflight_microbatches(schedule: str, pp: int, vpp: int, microbatches: int,
                          stage: int = 0) -> float:
    """Microbatches whose activations pipeline stage ``stage`` holds at its peak, in units
    of one microbatch through all of the stage's layers.

    1F1B: pp - stage (the warm-up depth plus the first steady forward; stage 0 holds the
    most). GPipe: all microbatches of the step. Interleaved: Megatron-LM's schedule
    (``forward_backward_pipelining_with_interleaving``, group size pp) runs
    2·(pp-stage-1) + (vpp-1)·pp warm-up forwards of one model chunk each, then one more
    before its first backward; all of them (every chunk of every microbatch) when that
    reaches m·vpp or when m = pp (its all-warm-up case, on every stage); each chunk holds
    1/vpp of the stage's layers. Stage 0 thus holds
    pp + (pp-1)/vpp microbatches (Narayanan et al. 2021, Korthikanti et al. 2022), and the
    last stage still (vpp-1)/vpp·pp + 1/vpp: interleaving keeps every stage nearly full.
    """
    if schedule == "gpipe":
        return float(microbatches)
    if schedule == "interleaved" and pp > 1:
        chunks = 2 * (pp - stage - 1) + (vpp - 1) * pp + 1
        if microbatches == pp:
            chunks = microbatches * vpp
        return min(chunks, microbatches * vpp) / vpp
    return float(min(pp - stage, microbatches))
