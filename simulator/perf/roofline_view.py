"""The roofline of one training step or one serving iteration, op by op, for users.

For training: one microbatch's forward and backward on the most loaded pipeline stage,
then the step's pipeline sends and that stage's data-parallel collectives (the rule the
engine buckets, :mod:`simulator.perf.data_parallel`, and the shared word embedding's
all-reduce). For serving: one
prefill iteration filling the token budget with mean-length prompts, and one decode step
at the batch limit with mean context. Times are per op, one after another, without
overlap; the engines decide what overlaps.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from simulator.perf.data_parallel import grad_collectives, param_collectives, zero_stage
from simulator.perf.embedding_grads import NAME as EMBEDDING_GRADS
from simulator.perf.embedding_grads import (
    embedding_grad_bytes,
    embedding_group,
    shares_word_embedding,
)
from simulator.perf.footprint import resolved_memory_options
from simulator.perf.layouts import inference_layout, training_layout, training_stage_layers
from simulator.perf.moe_balance import moe_imbalance
from simulator.perf.mtp_training import trained_mtp_layers
from simulator.perf.ops import Collective, CommOp, ComputeOp
from simulator.perf.quantize_ops import training_recipe
from simulator.perf.roofline import op_time, serving_op_time
from simulator.perf.serving_iteration import iteration_model
from simulator.perf.training_chunks import chunk_params, chunk_shapes
from simulator.perf.transformer import StageLayers, training_ops
from simulator.profiles.inference import InferenceWorkload, mean_tokens
from simulator.profiles.moe_routing import LoadBalancer
from simulator.profiles.precision import Precision
from simulator.profiles.scenario import Scenario
from simulator.profiles.training import FinetuneMethod, TrainingWorkload
from simulator.units import format_time


@dataclass(frozen=True, kw_only=True)
class RooflineRow:
    """One op of the view: its work, arithmetic intensity, bound and time."""

    phase: str
    name: str
    count: int
    flops: float
    bytes: float
    intensity: float
    bound: str
    time_s: float

    def as_dict(self) -> dict:
        """The row as JSON-ready fields."""
        return self.__dict__.copy()


@dataclass(frozen=True)
class RooflineView:
    """The rows of one training step or serving iteration, and what they add up to."""

    title: str
    rows: list[RooflineRow]
    ridge_point: float  # FLOPs per byte where compute and memory time are equal

    def total(self, phase: str | None = None) -> float:
        """Seconds of the ops of ``phase`` (all phases by default), one after another."""
        return sum(r.time_s for r in self.rows if phase is None or r.phase == phase)

    def by_bound(self, phase: str | None = None) -> dict[str, float]:
        """Those seconds by what bounds each op (compute, memory, network)."""
        out: dict[str, float] = {}
        for r in self.rows:
            if phase is None or r.phase == phase:
                out[r.bound] = out.get(r.bound, 0.0) + r.time_s
        return out

    def verdicts(self) -> list[str]:
        """One line per phase: its time, the shares of each bound, the largest op."""
        phases = list(dict.fromkeys(r.phase for r in self.rows))
        lines = []
        for phase in phases:
            total = self.total(phase)
            shares = sorted(self.by_bound(phase).items(), key=lambda kv: -kv[1])
            top = max((r for r in self.rows if r.phase == phase), key=lambda r: r.time_s)
            parts = ", ".join(f"{bound} {t / total:.0%}" for bound, t in shares)
            lines.append(f"{phase}: {format_time(total)}; {parts} of the time; the largest op "
                         f"is {top.name} ({top.bound}-bound, {top.time_s / total:.0%})")
        return lines

    def as_dict(self) -> dict:
        """The view as JSON-ready fields."""
        return {"title": self.title, "ridge_point_flops_per_byte": self.ridge_point,
                "rows": [r.as_dict() for r in self.rows],
                "total_s": {p: self.total(p) for p in dict.fromkeys(r.phase for r in self.rows)},
                "verdicts": self.verdicts()}


def _rows(scenario: Scenario, phase: str, ops: list) -> list[RooflineRow]:
    rows = []
    for op in ops:
        # training's collectives run in NCCL/RCCL (the size curve); serving's all-reduce
        # does not, its all-gathers and reduce-scatters do (as the serving engine prices them)
        t = (op_time(scenario.hardware, op, library=True)
             if isinstance(scenario.workload, TrainingWorkload)
             else serving_op_time(scenario.hardware, op))
        if isinstance(op, ComputeOp):
            rows.append(RooflineRow(phase=phase, name=op.name, count=op.count, flops=op.flops,
                                    bytes=op.bytes, intensity=op.intensity, bound=t.bound,
                                    time_s=t.time_s))
        else:
            rows.append(RooflineRow(phase=phase,
                                    name=f"{op.name} ({op.collective.value}, "
                                         f"{op.group.size} ranks)",
                                    count=op.count, flops=0.0, bytes=op.bytes * op.count,
                                    intensity=0.0, bound=t.bound, time_s=t.time_s))
    return rows


def _training(scenario: Scenario) -> RooflineView:
    scenario = resolved_memory_options(scenario)
    w = scenario.workload
    assert isinstance(w, TrainingWorkload)
    model, hw = scenario.model, scenario.hardware
    layout = training_layout(w)
    stage_layers = training_stage_layers(w, model.layers)
    index = max(range(len(stage_layers)), key=lambda i: stage_layers[i])
    lora = ((w.finetune.rank, w.finetune.targets)
            if w.finetune.method is FinetuneMethod.LORA else None)
    stage = StageLayers.of(stage_layers, index)
    if stage.lm_head:  # the MTP modules run beside the head
        stage = replace(stage, mtp=trained_mtp_layers(model, w))
    ops = training_ops(model, layout, w.seq_len, w.micro_batch_size, w.precision,
                       w.recompute.value, lora, stage=stage,
                       flash_attention=w.flash_attention,
                       recompute_layers=w.recomputed_layers,
                       fp8_attention=w.fp8_attention,
                       recompute_modules=w.recompute_modules,
                       attention_block=w.attention_block,
                       quantization=training_recipe(w.precision, w.fp8_recipe.value,
                                                    hw.compute.fp8_transposed_copies))
    rows = _rows(scenario, "forward (one microbatch)", ops.forward)
    rows += _rows(scenario, "backward (one microbatch)", ops.backward)
    step: list = list(ops.step)
    if layout.pp > 1:
        act = 2.0 * w.seq_len * w.micro_batch_size * model.hidden_size / layout.tp
        step.append(CommOp(name="pp.activations", collective=Collective.SEND_RECV, bytes=act,
                           group=layout.pp_peer))
        if layout.tp > 1 and not layout.sequence_parallel:  # scatter-gather: rebuilt on arrival
            step.append(CommOp(name="pp.activations_all_gather",
                               collective=Collective.ALL_GATHER, bytes=act * layout.tp,
                               group=layout.tp_group))
    microbatches = w.global_batch_size // (layout.dp * w.micro_batch_size)
    step += _data_parallel_ops(scenario, stage_layers, index, microbatches)
    rows += _rows(scenario, "per step", step)
    title = (f"{model.name} training on {hw.name}: stage {index} of {layout.pp} "
             f"({stage_layers[index]} layers), one of {microbatches} microbatches per step")
    return RooflineView(title, rows, _ridge(scenario, w.precision))


def _data_parallel_ops(scenario: Scenario, stage_layers: list[int], index: int,
                       microbatches: int) -> list[CommOp]:
    """Stage ``index``'s data-parallel collectives, each kind whole where the engine splits it
    into DDP buckets (:mod:`simulator.perf.data_parallel`): the gradient reduction once a
    step and the ZeRO 1/2 parameter gather once, or with ZeRO 3 a gather before every pass
    and a reduction after every backward; then, on the first or last stage, the all-reduce of
    a word embedding they share (:mod:`simulator.perf.embedding_grads`)."""
    w, model, hw = scenario.workload, scenario.model, scenario.hardware
    assert isinstance(w, TrainingWorkload)
    mtp = trained_mtp_layers(model, w)
    params = [chunk_params(model, w, shape)
              for shape in chunk_shapes(w, stage_layers, mtp=mtp)[index]]
    per_pass = zero_stage(w) == 3
    ops: list[CommOp] = []
    for collectives, count in ((grad_collectives, microbatches if per_pass else 1),
                               (param_collectives, 2 * microbatches if per_pass else 1)):
        merged: dict[str, CommOp] = {}
        for chunk in params:
            for c in collectives(w, chunk):
                seen = merged.get(c.op.name)
                merged[c.op.name] = (c.op if seen is None
                                     else replace(seen, bytes=seen.bytes + c.op.bytes))
        ops += [replace(op, count=count) for op in merged.values()]
    if index in (0, len(stage_layers) - 1) and shares_word_embedding(model, w, mtp):
        group = embedding_group(w, hw.scale_up.domain_size.value)
        ops.append(CommOp(name=EMBEDDING_GRADS, collective=Collective.ALL_REDUCE,
                          bytes=embedding_grad_bytes(model, w), group=group))
    return ops


def _inference(scenario: Scenario) -> RooflineView:
    """The serving engine's own iteration model (:mod:`simulator.perf.serving_iteration`),
    so that the view shows what a run prices, expert-parallel layers and the router's load
    imbalance included."""
    w = scenario.workload
    assert isinstance(w, InferenceWorkload)
    model, hw = scenario.model, scenario.hardware
    par = w.parallelism
    layout = inference_layout(par, w.moe)
    kv = w.kv_cache_precision or Precision.BF16
    imbalance = moe_imbalance(w.moe, model, par.ep, LoadBalancer.NONE)
    slots = (model.moe.experts + w.moe.redundant_experts
             if model.moe is not None and par.attention_dp > 1 else 0)
    iteration = iteration_model(model, layout, w.precision, kv, imbalance, slots=slots,
                                head_16bit=w.engine.head_16bit,
                                moe_gather=w.engine.gathers_moe_tokens(hw))
    prompt = max(1, round(mean_tokens(w.prompt_tokens)))
    output = max(1, round(mean_tokens(w.output_tokens)))
    prompts = max(1, min(w.batching.max_batch_size, w.batching.max_tokens_per_step // prompt))
    prefill = iteration.ops([(min(prompt, w.batching.max_tokens_per_step), 0)] * prompts, [])
    batch = w.batching.max_batch_size
    decode = iteration.ops([], [prompt + output // 2] * batch)
    rows = _rows(scenario, f"prefill ({prompts} prompts x {prompt} tokens)", prefill)
    rows += _rows(scenario, f"decode (batch {batch}, context {prompt + output // 2})", decode)
    title = (f"{model.name} serving on {hw.name}, one replica of tp={layout.tp} "
             f"pp={layout.pp}" + (f" attention_dp={par.attention_dp} ep={par.ep} (one DP "
                                  f"rank's batch, every rank as loaded)"
                                  if par.attention_dp > 1 else ""))
    return RooflineView(title, rows, _ridge(scenario, w.precision))


def _ridge(scenario: Scenario, precision: Precision) -> float:
    hw = scenario.hardware
    return hw.peak(precision) / hw.hbm_bandwidth


def roofline(scenario: Scenario) -> RooflineView:
    """The view of a training or a serving scenario (``xpusim roofline``)."""
    if isinstance(scenario.workload, TrainingWorkload):
        return _training(scenario)
    return _inference(scenario)

