"""Checks that join a workload's layout to the model and the cluster.

Each problem names the fields involved, e.g. ``workload.parallelism.tp: 16 does not divide
attention_heads (64) ...``. All problems are collected, not just the first.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.profiles.hardware import HardwareProfile
from simulator.profiles.inference import InferenceParallelism, InferenceWorkload, mean_tokens
from simulator.profiles.model import AttentionKind, ModelProfile
from simulator.profiles.recompute_modules import recompute_module_problems
from simulator.profiles.speculative import speculative_problems
from simulator.profiles.training import TrainingParallelism, TrainingWorkload


@dataclass(frozen=True)
class Problem:
    """A layout problem: the fields involved (a path into the scenario) and what is wrong."""

    path: tuple[str | int, ...]  # (an int indexes a list: workload.pools[1])
    message: str


def _precision(workload, hardware: HardwareProfile) -> list[Problem]:
    if hardware.supports(workload.precision):
        return []
    have = ", ".join(p.value for p in hardware.compute.peak_flops)
    message = f"{hardware.id} has no peak for {workload.precision.value}; it supports {have}"
    return [Problem(("workload", "precision"), message)]


def _tp_divides_heads(tp: int, path: tuple[str, ...], model: ModelProfile) -> list[Problem]:
    problems = []
    if model.attention_heads % tp:
        problems.append(Problem(path, f"tp={tp} does not divide the model's attention_heads "
                                      f"({model.attention_heads})"))
    kv = model.kv_heads_resolved
    if model.attention is not AttentionKind.MLA and tp > kv and tp % kv:
        problems.append(Problem(path, f"tp={tp} is neither a divisor nor a multiple of "
                                      f"kv_heads ({kv})"))
    return problems


def _ep_fits_experts(ep: int, path: tuple[str, ...], model: ModelProfile) -> list[Problem]:
    if ep == 1:
        return []
    if model.moe is None:
        return [Problem(path, f"ep={ep} but {model.id} is a dense model (no experts); use ep=1")]
    if model.moe.experts % ep:
        return [Problem(path, f"ep={ep} does not divide the model's {model.moe.experts} experts")]
    return []


def _expert_folding(par: TrainingParallelism, dp: int, model: ModelProfile) -> list[Problem]:
    """Megatron Core's MoE parallel folding: the experts' etp x ep group is a sub-group of
    the tp x cp x dp ranks the attention runs on (physics_facts sec. 6)."""
    base = ("workload", "parallelism")
    etp = par.expert_tp
    problems = []
    if par.etp is not None and par.etp > 1 and model.moe is None:
        problems.append(Problem((*base, "etp"), f"etp={par.etp} but {model.id} is a dense "
                                                f"model (no experts); leave etp unset"))
    if (par.ep > 1 or par.etp is not None) and (par.tp * par.cp * dp) % (par.ep * etp):
        problems.append(Problem((*base, "ep"),
                                f"ep*etp = {par.ep}*{etp} = {par.ep * etp} must divide "
                                f"tp*cp*dp = {par.tp}*{par.cp}*{dp} = {par.tp * par.cp * dp} "
                                f"(the experts' ranks fold into the attention's)"))
    if par.etp is not None and model.moe is not None and model.moe.expert_ffn_size % etp:
        problems.append(Problem((*base, "etp"),
                                f"etp={etp} does not divide the experts' FFN size "
                                f"({model.moe.expert_ffn_size})"))
    if etp != par.tp and par.tp > 1 and par.sequence_parallel is False:
        problems.append(Problem((*base, "etp"),
                                f"etp={etp} different from tp={par.tp} needs "
                                f"sequence_parallel (each TP rank routes its own tokens)"))
    return problems


def _vpp_needs_stages(par: TrainingParallelism, path: tuple[str, ...]) -> list[Problem]:
    """megatron-core runs no pipeline schedule at pp 1 (``forward_backward_no_pipelining``,
    read in 0.14.0 ``pipeline_parallel/schedules.get_forward_backward_func``), so virtual
    stages there interleave nothing."""
    if par.vpp > 1 and par.pp < 2:
        return [Problem(path, f"vpp {par.vpp} needs pp >= 2: one pipeline stage has nothing "
                              f"to interleave (use vpp 1, or pp >= 2)")]
    return []


def resolve_dp(workload: TrainingWorkload, accelerators: int) -> int | None:
    """The data-parallel size: given, or accelerators / (tp*pp*cp) when that divides."""
    par = workload.parallelism
    if par.dp is not None:
        return par.dp
    model_parallel = par.tp * par.pp * par.cp
    if accelerators % model_parallel:
        return None
    return accelerators // model_parallel


def check_training(w: TrainingWorkload, model: ModelProfile, hardware: HardwareProfile,
                   accelerators: int) -> list[Problem]:
    """Every problem joining a training workload to the model, the hardware and the cluster size."""
    par = w.parallelism
    base = ("workload", "parallelism")
    problems = _precision(w, hardware)
    problems += _tp_divides_heads(par.tp, (*base, "tp"), model)
    problems += _ep_fits_experts(par.ep, (*base, "ep"), model)
    problems += _vpp_needs_stages(par, (*base, "vpp"))
    problems += [Problem(("workload", "recompute_modules"), text)
                 for text in recompute_module_problems(w.recompute_modules or (), model)]
    if w.moe.redundant_experts:
        problems.append(Problem(("workload", "moe", "redundant_experts"),
                                "redundant expert slots are a serving placement (EPLB); "
                                "training places none: leave redundant_experts at 0"))
    if w.seq_len > model.max_seq_len and not w.beyond_context:
        problems.append(Problem(("workload", "seq_len"),
                                f"seq_len ({w.seq_len}) exceeds the context of {model.id} "
                                f"(max_seq_len {model.max_seq_len}); set "
                                f"workload.beyond_context: true if training extends it"))
    dp = resolve_dp(w, accelerators)
    shape = f"tp*pp*cp = {par.tp}*{par.pp}*{par.cp} = {par.tp * par.pp * par.cp}"
    if dp is None:
        problems.append(Problem(base, f"{shape} does not divide cluster.accelerators "
                                      f"({accelerators}), so dp cannot be derived"))
        return problems
    total = par.tp * par.pp * dp * par.cp
    if total != accelerators:
        problems.append(Problem((*base, "dp"),
                                f"tp*pp*dp*cp = {par.tp}*{par.pp}*{dp}*{par.cp} = {total} must "
                                f"equal cluster.accelerators ({accelerators})"))
    if par.stage_layers(model.layers) is None:
        stages = par.pp * par.vpp
        uneven = par.first_stage_layers is not None or par.last_stage_layers is not None
        detail = ("after first_stage_layers/last_stage_layers, the remaining layers do not "
                  "split evenly over the other stages" if uneven else
                  f"they do not split evenly over pp*vpp = {par.pp}*{par.vpp} = {stages} "
                  f"stages (first_stage_layers/last_stage_layers allow lighter end stages)")
        problems.append(Problem((*base, "pp"), f"the model's {model.layers} layers: {detail}"))
    problems += _expert_folding(par, dp, model)
    if par.cp > 1 and w.seq_len % (2 * par.cp):
        problems.append(Problem((*base, "cp"),
                                f"seq_len ({w.seq_len}) must split into 2*cp = {2 * par.cp} "
                                f"equal chunks for load-balanced context parallelism"))
    per_step = dp * w.micro_batch_size
    if w.global_batch_size % per_step:
        problems.append(Problem(("workload", "global_batch_size"),
                                f"global_batch_size ({w.global_batch_size}) must be a multiple "
                                f"of dp*micro_batch_size = {dp}*{w.micro_batch_size} = {per_step}"))
    elif w.pipeline_schedule.value == "interleaved" and (w.global_batch_size // per_step) % par.pp:
        microbatches = w.global_batch_size // per_step
        problems.append(Problem(("workload", "global_batch_size"),
                                f"the interleaved schedule runs microbatches in groups of pp: "
                                f"global_batch_size / (dp*micro_batch_size) = {microbatches} "
                                f"microbatches must be a multiple of pp ({par.pp})"))
    return problems


def check_inference(w: InferenceWorkload, model: ModelProfile, hardware: HardwareProfile,
                    accelerators: int) -> tuple[list[Problem], list[str]]:
    """Problems (errors) and warnings (e.g. accelerators left idle)."""
    problems = _precision(w, hardware)
    warnings: list[str] = []
    layouts: list[tuple[tuple[str, ...], InferenceParallelism]] = [
        (("workload", "parallelism"), w.parallelism)]
    if w.disaggregation is not None:
        d = w.disaggregation
        layouts.append((("workload", "disaggregation", "prefill_parallelism"),
                        d.prefill_parallelism or w.parallelism))
        layouts.append((("workload", "disaggregation", "decode_parallelism"),
                        d.decode_parallelism or w.parallelism))
    for path, par in layouts:
        problems += _tp_divides_heads(par.tp, (*path, "tp"), model)
        if par.attention_dp == 1:
            problems += _ep_fits_experts(par.ep, (*path, "ep"), model)
        problems += wide_ep_problems(par, path, model, w.moe.redundant_experts)
        if model.layers % par.pp:
            problems.append(Problem((*path, "pp"), f"the model's {model.layers} layers do not "
                                                   f"split evenly over pp={par.pp}"))
    if w.moe.redundant_experts and all(par.attention_dp == 1 for _, par in layouts):
        problems.append(Problem(("workload", "moe", "redundant_experts"),
                                "redundant expert slots need a layout with attention_dp > 1 "
                                "(wide expert parallelism); leave redundant_experts at 0"))
    problems += _lengths_fit_context(w, model)
    problems += _not_with_attention_dp(w, [par for _, par in layouts])
    if w.speculative is not None:
        problems += [Problem(path, message) for path, message in speculative_problems(
            w.speculative, model, [par.tp for _, par in layouts])]
    used = used_accelerators(w, accelerators)
    if used > accelerators:
        problems.append(Problem(("workload", "replicas"),
                                f"the replicas need {used} accelerators but cluster.accelerators "
                                f"is {accelerators}"))
    elif used == 0:
        problems.append(Problem(("workload", "parallelism"),
                                f"one replica needs {w.parallelism.devices} accelerators but "
                                f"cluster.accelerators is {accelerators}"))
    elif used < accelerators:
        warnings.append(f"{accelerators - used} of {accelerators} accelerators are not used by "
                        f"any replica and are reported idle")
    return problems, warnings


def _not_with_attention_dp(w: InferenceWorkload,
                           layouts: list[InferenceParallelism]) -> list[Problem]:
    """Speculative decoding and prefix caching are priced per replica of one scheduler; an
    attention-DP replica's ranks would each draft, verify and cache on their own, which is
    not modelled, so the combinations are refused rather than priced wrongly."""
    dp = max(par.attention_dp for par in layouts)
    if dp == 1:
        return []
    problems = []
    if w.speculative is not None:
        problems.append(Problem(("workload", "speculative"),
                                f"speculative decoding with attention_dp={dp} is not modelled "
                                f"(each DP rank would draft and verify its own batch); use "
                                f"attention_dp: 1 or leave speculative out"))
    if w.batching.prefix_caching:
        problems.append(Problem(("workload", "batching", "prefix_caching"),
                                f"prefix caching with attention_dp={dp} is not modelled (each "
                                f"DP rank keeps its own cache); use attention_dp: 1 or "
                                f"prefix_caching: false"))
    return problems


def wide_ep_problems(par: InferenceParallelism, path: tuple[str, ...], model: ModelProfile,
                     redundant: int) -> list[Problem]:
    """A serving replica's experts span its stage's attention_dp x tp devices: ep divides
    them, and with attention DP the expert slots (experts + redundant) divide over ep, each
    expert's FFN over the etp = attention_dp*tp/ep devices of its group."""
    dp, stage, ep = par.attention_dp, par.stage_devices, par.ep
    if dp > 1 and model.moe is None:
        return [Problem((*path, "attention_dp"),
                        f"attention_dp={dp} needs a MoE model; {model.id} is dense, and its "
                        f"DP ranks would be separate replicas (use workload.replicas)")]
    problems = []
    if dp > 1 and par.pp > 1:
        problems.append(Problem((*path, "pp"), f"attention_dp={dp} runs with pp=1 (wide-EP "
                                               f"replicas are not pipelined in xpusim)"))
    if stage % ep and dp == 1:
        problems.append(Problem((*path, "ep"),
                                f"ep={ep} must divide tp={par.tp}: a replica spreads each "
                                f"pipeline stage's experts over that stage's tp devices (with "
                                f"attention_dp ranks, over attention_dp*tp devices)"))
    elif stage % ep:
        problems.append(Problem((*path, "ep"),
                                f"ep={ep} must divide attention_dp*tp = {dp}*{par.tp} = {stage}: "
                                f"a replica spreads each pipeline stage's experts over that "
                                f"stage's devices"))
    elif dp > 1 and model.moe is not None:
        slots = model.moe.experts + redundant
        if slots % ep:
            problems.append(Problem((*path, "ep"),
                                    f"ep={ep} does not divide the {slots} expert slots (the "
                                    f"model's {model.moe.experts} experts + "
                                    f"workload.moe.redundant_experts {redundant}); "
                                    f"redundant_experts: {redundant + -slots % ep} would give "
                                    f"{slots + -slots % ep} = {ep} x "
                                    f"{(slots + -slots % ep) // ep}"))
        etp = stage // ep
        if model.moe.expert_ffn_size % etp:
            problems.append(Problem((*path, "ep"),
                                    f"each expert is split over attention_dp*tp/ep = {etp} "
                                    f"devices, which does not divide the experts' FFN size "
                                    f"({model.moe.expert_ffn_size})"))
    return problems


def _lengths_fit_context(w: InferenceWorkload, model: ModelProfile) -> list[Problem]:
    """A request whose prompt and answer (on average) exceed the model's context could never
    be served: every such request would be dropped, and the run would measure nothing."""
    length = mean_tokens(w.prompt_tokens) + mean_tokens(w.output_tokens)
    shared = w.shared_prefix.tokens * w.shared_prefix.share if w.shared_prefix else 0.0
    if length + shared <= model.max_seq_len:
        return []
    what = "shared_prefix + " if shared else ""
    return [Problem(("workload", "prompt_tokens"),
                    f"{what}prompt_tokens + output_tokens = {length + shared:,.0f} on average, "
                    f"beyond the context of {model.id} (max_seq_len {model.max_seq_len:,})")]


def used_accelerators(w: InferenceWorkload, accelerators: int) -> int:
    """Accelerators the replicas (or the disaggregated pools, or a mixed fleet's pools)
    occupy; the rest are idle."""
    if w.pools is not None:
        return sum(p.replicas * p.parallelism.devices for p in w.pools)
    if w.disaggregation is not None:
        d = w.disaggregation
        pre = (d.prefill_parallelism or w.parallelism).devices
        dec = (d.decode_parallelism or w.parallelism).devices
        return d.prefill_replicas * pre + d.decode_replicas * dec
    replicas = w.replicas if w.replicas is not None else accelerators // w.parallelism.devices
    return replicas * w.parallelism.devices
