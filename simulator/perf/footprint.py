"""The per-device memory footprint of a whole scenario, and its verdict.

Joins the pieces of :mod:`simulator.perf.memory` according to the workload's layout.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from simulator.perf.kv_budget import kv_reserve
from simulator.perf.kv_token_bytes import kv_tokens_held
from simulator.perf.local_attention import kv_held_fraction
from simulator.perf.memory import (
    BYTES_OPTIMIZER,
    BYTES_WEIGHT_TRAIN,
    Footprint,
    StageParams,
    activation_bytes_per_layer,
    all_stage_params,
    even_stage_layers,
    inflight_microbatches,
    kv_bytes_per_token,
    runtime_reserve,
    stage_params,
)
from simulator.perf.mtp_training import mtp_glue_saved_bytes, trained_mtp_layers
from simulator.perf.serving_workspace import iteration_workspace
from simulator.perf.speculative_ops import drafter_memory
from simulator.profiles.inference import InferenceWorkload, mean_tokens
from simulator.profiles.model import ModelProfile
from simulator.profiles.params import count_params
from simulator.profiles.precision import Precision
from simulator.profiles.scenario import Scenario
from simulator.profiles.training import FinetuneMethod, Recompute, TrainingWorkload

_LORA_SHAPES = {  # (in, out) of each LoRA target, in units resolved per model
    "q": ("h", "q"), "k": ("h", "kv"), "v": ("h", "kv"), "o": ("q", "h"),
    "gate": ("h", "f"), "up": ("h", "f"), "down": ("f", "h"),
}


def lora_params_per_layer(model: ModelProfile, rank: int, targets: tuple[str, ...]) -> float:
    """Adapter parameters per layer: rank x (in + out) for each targeted projection."""
    dims = {
        "h": model.hidden_size,
        "q": model.attention_heads * model.head_dim_resolved,
        "kv": model.kv_heads_resolved * model.head_dim_resolved,
        "f": model.ffn_size,
    }
    return float(sum(rank * (dims[_LORA_SHAPES[t][0]] + dims[_LORA_SHAPES[t][1]])
                     for t in targets))


def training_footprint(scenario: Scenario) -> Footprint:
    """Bytes per device of the most loaded pipeline stage of a training scenario."""
    scenario = resolved_memory_options(scenario)
    w = scenario.workload
    assert isinstance(w, TrainingWorkload)
    model = scenario.model
    par = w.parallelism
    stage_layers = par.stage_layers(model.layers) or even_stage_layers(model.layers, par.pp)
    params = all_stage_params(model, par.tp, par.pp, par.ep, stage_layers, etp=par.etp,
                              mtp_layers=trained_mtp_layers(model, w))
    candidates = [_training_stage(scenario, stage, stage_layers, params[stage])
                  for stage in range(par.pp)]
    worst = max(candidates, key=lambda f: f.total)
    if par.pp > 1:
        stage = candidates.index(worst)
        notes = (*worst.notes, f"pipeline stage {stage} of {par.pp} is the most loaded "
                               f"({stage_layers[stage]} layers)")
        worst = Footprint(worst.parts, worst.capacity, notes)
    return worst


def saved_activation_bytes(model: ModelProfile, w: TrainingWorkload, layers: int,
                           chunks: int = 1) -> float:
    """Bytes of one microbatch's activations that ``layers`` layers, in ``chunks`` model
    chunks, keep for backward: with ``recompute_layers`` the first that many of each chunk
    keep only their input (full recomputation), the others everything."""
    count = w.recomputed_layers
    if count is None:
        return _layer_bytes(model, w, w.recompute.value) * layers
    redone = min(layers, count * chunks)
    return (_layer_bytes(model, w, "full") * redone
            + _layer_bytes(model, w, "none") * (layers - redone))


def _layer_bytes(model: ModelProfile, w: TrainingWorkload, recompute: str) -> float:
    """One transformer layer's saved bytes per microbatch under ``recompute``, with the
    workload's parallelism and activation options."""
    par = w.parallelism
    return activation_bytes_per_layer(
        model, w.seq_len, w.micro_batch_size, par.tp, bool(par.sequence_parallel),
        recompute, par.cp, flash_attention=w.flash_attention,
        gemm_input_bytes=w.saved_activation_bytes,
        recompute_modules=w.recompute_modules, etp=par.expert_tp)


def mtp_activation_bytes(model: ModelProfile, w: TrainingWorkload, depth: int) -> float:
    """Bytes one microbatch's ``depth`` MTP modules keep for backward (they run on the last
    virtual stage, each forward followed by its backward: one microbatch at a time, but
    GPipe's). Full recomputation checkpoints them whole unless it runs by blocks
    (``recompute_layers``), which Megatron Core skips for them."""
    if depth <= 0:
        return 0.0
    par = w.parallelism
    residual = w.seq_len / par.cp * w.micro_batch_size / (par.tp if par.sequence_parallel
                                                          else 1)
    whole = w.recompute is Recompute.FULL and w.recomputed_layers is None
    glue = mtp_glue_saved_bytes(model, residual, w.saved_activation_bytes, checkpointed=whole)
    if whole:
        return depth * glue
    mode = "none" if w.recompute is Recompute.FULL else w.recompute.value
    return depth * (_layer_bytes(model, w, mode) + glue)


def _gemm_share(model: ModelProfile) -> float:
    """The share of a model's parameters that are layer GEMM weights (all but the
    embedding, LM head, norms and routers), which fp8_param_gather keeps in fp8."""
    counts = count_params(model)
    rest = counts.embedding + counts.lm_head + counts.norms
    if model.moe is not None:
        rest += model.hidden_size * model.moe.experts * model.moe_layers
    return max(0.0, 1.0 - rest / counts.total) if counts.total else 0.0


def _training_stage(scenario: Scenario, stage: int, stage_layers: list[int],
                    params: StageParams) -> Footprint:
    w = scenario.workload
    assert isinstance(w, TrainingWorkload)
    model, hw = scenario.model, scenario.hardware
    par = w.parallelism
    dp = par.dp or 1
    # ZeRO shards over the data-parallel group; the experts' over the expert-data-parallel
    # group, tp*cp*dp / (ep*etp) (Megatron Core's MoE parallel folding)
    dense_group = dp * par.cp
    expert_group = max(1, dense_group * par.tp // (par.ep * par.expert_tp))
    notes: list[str] = []

    def sharded(bytes_per_param: float, zero_stage: int) -> float:
        """Bytes per device of a per-parameter state, sharded by ZeRO from ``zero_stage`` on."""
        if par.zero < zero_stage:
            return bytes_per_param * params.total
        return bytes_per_param * (params.dense / dense_group + params.expert / expert_group)

    parts: dict[str, float] = {}
    if w.finetune.method is FinetuneMethod.LORA:
        parts["weights"] = BYTES_WEIGHT_TRAIN * params.total  # frozen base, not sharded
        adapters = lora_params_per_layer(model, w.finetune.rank, w.finetune.targets)
        adapters *= stage_layers[stage] / par.tp
        parts["gradients"] = w.grad_bytes * adapters
        parts["optimizer"] = BYTES_OPTIMIZER * adapters
        notes.append(f"LoRA rank {w.finetune.rank}: {adapters:.3g} trainable parameters "
                     f"per device")
    else:
        parts["weights"] = sharded(BYTES_WEIGHT_TRAIN, 3)
        if w.fp8_param_gather:  # GEMM weights held in fp8 instead of bf16
            parts["weights"] -= (BYTES_WEIGHT_TRAIN - 1.0) * _gemm_share(model) * sharded(1.0, 3)
            notes.append("fp8_param_gather: GEMM weights held and gathered in fp8")
        parts["gradients"] = sharded(w.grad_bytes, 2)
        parts["optimizer"] = sharded(BYTES_OPTIMIZER, 1)
    microbatches = w.global_batch_size // (dp * w.micro_batch_size)
    inflight = inflight_microbatches(w.pipeline_schedule.value, par.pp, par.vpp, microbatches,
                                     stage)
    saved = saved_activation_bytes(model, w, stage_layers[stage], par.vpp) * inflight
    if w.recompute_layers is not None:
        notes.append(f"full recomputation of the first {w.recompute_layers} layers of each "
                     f"chunk; the other layers keep all their activations")
    offloaded = w.offload.share * saved
    parts["activations"] = saved - offloaded
    if offloaded:
        notes.append(f"{w.offload.share:.0%} of saved activations "
                     f"({offloaded / 1e9:.3g} GB per device) offloaded to host memory")
    # fp32 logits of the LM head on the last stage (vocab-parallel over TP), and of each
    # MTP module's second pass of it; the modules' saved activations (one microbatch's)
    last = stage == par.pp - 1
    mtp = trained_mtp_layers(model, w) if last else 0
    parts["activations"] += mtp_activation_bytes(model, w, mtp) * (
        microbatches if w.pipeline_schedule.value == "gpipe" else 1)
    parts["logits"] = (4.0 * w.seq_len / par.cp * w.micro_batch_size * model.vocab_size / par.tp
                       * (1 + mtp) if last else 0.0)
    parts["runtime_reserve"] = runtime_reserve(hw)
    return Footprint(parts, hw.hbm_capacity, tuple(notes))


def inference_footprint(scenario: Scenario, tp: int | None = None, pp: int | None = None, *,
                        attention_dp: int | None = None) -> Footprint:
    """Weights, a workspace for one iteration and the reserve (and a speculative drafter's
    weights); the rest is KV cache (the drafter's included in the bytes per token).

    With attention DP each rank's ``tp`` devices hold the dense weights (attention, dense
    and shared FFNs, embedding, head: replicated per rank) and every device an equal share
    of the expert slots (experts + ``workload.moe.redundant_experts``, over all
    ``attention_dp x tp`` devices of a stage); each rank keeps the KV cache of its own
    requests, so the replica holds ``attention_dp`` times one device's tokens.

    The KV cache is reported as the bytes needed to hold one full batch of mean-length
    requests (``kv_cache_for_batch``), which tells whether the batching limits make sense.
    """
    w = scenario.workload
    assert isinstance(w, InferenceWorkload)
    model, hw = scenario.model, scenario.hardware
    tp = tp or w.parallelism.tp
    pp = pp or w.parallelism.pp
    dp = attention_dp or w.parallelism.attention_dp
    weight_bytes = Precision(w.precision).bytes_per_element
    params = stage_params(model, tp, pp, dp)
    parts = {"weights": weight_bytes * (params.dense + params.expert * expert_slot_ratio(
        model, w.moe.redundant_experts if dp > 1 else 0))}
    if w.engine.head_16bit:
        parts["weights"] += widened_head_bytes(model, Precision(w.precision), tp, pp)
    # Workspace: the activation peak of one iteration (per DP rank): the forward's or the
    # sampler's, by the stack's sampler_memory (perf.serving_workspace).
    parts["activations"] = iteration_workspace(model, w, tp)
    kv_precision = w.kv_cache_precision or Precision.BF16
    per_token = kv_bytes_per_token(model, kv_precision, tp, pp)
    draft_kv = 0.0
    if w.speculative is not None:  # the drafter's weights and KV cache share the devices
        draft_weights, draft_kv = drafter_memory(w.speculative, model,
                                                 weight_precision=w.precision,
                                                 kv_precision=kv_precision, tp=tp)
        parts["draft_weights"] = draft_weights
    parts |= kv_reserve(w.engine.kv_cache_memory, capacity=hw.hbm_capacity,
                        loaded=sum(parts.values()),
                        weights=parts["weights"] + parts.get("draft_weights", 0.0))
    footprint = Footprint(parts, hw.hbm_capacity)
    notes = _kv_notes(scenario, footprint, per_token, draft_kv, tp=tp, pp=pp, dp=dp)
    return Footprint(parts, hw.hbm_capacity, tuple(notes))


def _kv_notes(scenario: Scenario, footprint: Footprint, per_token: float, draft_kv: float, *,
              tp: int, pp: int, dp: int) -> list[str]:
    """What the KV cache needs for a full batch of mean-length requests, and the room left
    for it. Sliding-window layers keep only their window (perf.local_attention): at the mean
    request's length for the batch; the room is counted by the rule the serving engine sizes
    its cache by (perf.kv_token_bytes), so the note states the engine's tokens (before
    rounding to whole blocks)."""
    w = scenario.workload
    assert isinstance(w, InferenceWorkload)
    context = mean_tokens(w.prompt_tokens) + mean_tokens(w.output_tokens)
    held = kv_held_fraction(scenario.model, context)
    batch_kv = (per_token * held + draft_kv) * context * w.batching.max_batch_size
    notes = [f"KV cache: {(per_token + draft_kv) / 1e3:.4g} kB per token per device"
             + (f" ({held:.3g} of it kept on average: sliding-window layers keep their "
                f"window)" if held < 1 else "") + "; a full batch of "
             f"{w.batching.max_batch_size} mean-length requests needs {batch_kv / 1e9:.3g} GB"]
    if footprint.fits:
        capacity_tokens = kv_tokens_held(scenario, footprint.headroom, tp=tp, pp=pp,
                                         attention_dp=dp)
        notes.append(f"room for {capacity_tokens:,.0f} tokens of KV cache per replica"
                     + (f" ({dp} attention DP ranks)" if dp > 1 else ""))
    return notes


def widened_head_bytes(model: ModelProfile, precision: Precision, tp: int, pp: int) -> float:
    """Bytes per device that a 16-bit embedding and LM head add over ``precision``'s: a
    quantized checkpoint keeps both in 16 bits (ModelOpt leaves ``lm_head`` unquantized; an
    embedding table is no linear layer). Both are vocab-parallel over TP; with pipeline stages
    the heavier end stage holds one of them (a tied head with PP keeps its own copy)."""
    extra = 2.0 - precision.bytes_per_element
    if extra <= 0:
        return 0.0
    counts = count_params(model)
    head = counts.lm_head or (counts.embedding if pp > 1 else 0.0)
    matrices = counts.embedding + head if pp == 1 else max(counts.embedding, head)
    return extra * matrices / tp


def expert_slot_ratio(model: ModelProfile, redundant: int) -> float:
    """Expert slots held over experts: ``(experts + redundant)/experts`` (1 for dense)."""
    if model.moe is None:
        return 1.0
    return (model.moe.experts + redundant) / model.moe.experts


def scenario_footprint(scenario: Scenario) -> Footprint:
    """The footprint of a training or a serving scenario, whichever it is."""
    if isinstance(scenario.workload, TrainingWorkload):
        return training_footprint(scenario)
    return inference_footprint(scenario)


def with_count(w: TrainingWorkload, count: int, chunk_layers: int) -> TrainingWorkload:
    """``w`` recomputing the first ``count`` layers of each chunk: 0 is no recomputation at
    all, ``chunk_layers`` or more is every layer (full recomputation)."""
    if count <= 0:
        return w.model_copy(update={"recompute": Recompute.NONE, "recompute_layers": None})
    if count >= chunk_layers:
        return w.model_copy(update={"recompute": Recompute.FULL, "recompute_layers": None})
    return w.model_copy(update={"recompute": Recompute.FULL, "recompute_layers": count})


def _smallest(fits: Callable[[int], bool], most: int) -> int:
    """The smallest n in [0, most] with ``fits(n)``, for ``fits`` monotone in n (memory
    falls as n grows); ``most`` when none fits (the memory check then says by how much)."""
    low, high = 0, most
    while low < high:
        mid = (low + high) // 2
        if fits(mid):
            high = mid
        else:
            low = mid + 1
    return low


def resolved_memory_options(scenario: Scenario) -> Scenario:
    """``scenario`` with its ``fit`` memory options made numbers, so that everything that
    prices a step or its memory reads the same workload (the planner, the estimate, the
    footprint, the roofline view resolve it first):

    - ``recompute_layers: fit``: the fewest fully recomputed layers per model chunk that fit
      (none at all, ``recompute: none``, when everything fits; every layer when nothing does).
      Recomputation buys memory with time, so a tuned recipe recomputes as few layers as its
      memory allows (MLPerf's Llama 2 70B LoRA: ``--recompute-num-layers`` 21 of 80 on a
      256 GB MI325X); ``fit`` states that rule where a recipe does not print its setting.
    - ``offload.activations: fit``: the smallest share, in hundredths, of the saved
      activations kept in host memory that fits (after the recomputation above): offload's
      copies cost host-link time, so a recipe offloads no more than it must.
    """
    w = scenario.workload
    if not isinstance(w, TrainingWorkload):
        return scenario
    if w.recompute_layers == "fit":
        w = _fitted_recompute(scenario, w)
    if w.offload.activations == "fit":
        w = _fitted_offload(scenario, w)
    return scenario if w is scenario.workload else scenario.model_copy(update={"workload": w})


def _fits(scenario: Scenario, w: TrainingWorkload) -> bool:
    """Whether ``scenario`` with workload ``w`` fits the device."""
    return training_footprint(scenario.model_copy(update={"workload": w})).fits


def _fitted_recompute(scenario: Scenario, w: TrainingWorkload) -> TrainingWorkload:
    """``w`` recomputing the fewest layers per chunk that fit (offload, if ``fit`` too,
    counted as none)."""
    par = w.parallelism
    layers = par.stage_layers(scenario.model.layers) or even_stage_layers(
        scenario.model.layers, par.pp)
    chunk_layers = math.ceil(max(layers) / par.vpp)  # the most loaded stage's chunks
    trial = w if w.offload.activations != "fit" else w.model_copy(
        update={"offload": w.offload.model_copy(update={"activations": 0.0})})
    count = _smallest(lambda n: _fits(scenario, with_count(trial, n, chunk_layers)),
                      chunk_layers)
    return with_count(w, count, chunk_layers)


def _fitted_offload(scenario: Scenario, w: TrainingWorkload) -> TrainingWorkload:
    """``w`` offloading the smallest share, in hundredths, that fits."""
    def offloading(percent: int) -> TrainingWorkload:
        """``w`` with ``percent`` hundredths of its saved activations in host memory."""
        return w.model_copy(update={"offload": w.offload.model_copy(
            update={"activations": percent / 100})})

    return offloading(_smallest(lambda n: _fits(scenario, offloading(n)), 100))
