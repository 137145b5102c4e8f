"""A training scenario end to end: the steady-state step, then the run with failures."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from simulator.engine.training.failures import (
    RunOutcome,
    RunSpec,
    fleet_mtbf,
    resolve_interval,
    simulate_run,
)
from simulator.engine.training.planner import build_plan
from simulator.engine.training.step import simulate_step
from simulator.perf.footprint import (
    lora_params_per_layer,
    resolved_memory_options,
    training_footprint,
)
from simulator.perf.mtp_training import mtp_module_params, trained_mtp_layers
from simulator.profiles.scenario import Scenario
from simulator.profiles.training import CheckpointMode, FinetuneMethod, TrainingWorkload
from simulator.results.training import FailureSummary, TrainingMemory, TrainingResult

# A checkpoint holds the bf16 weights (2 B) and the fp32 master weights and Adam moments
# (12 B) of every trained parameter (Megatron-LM distributed checkpoints).
CHECKPOINT_BYTES_PER_PARAM = 14.0
HOUR = 3600.0


def checkpoint_bytes(scenario: Scenario) -> float:
    """Bytes of one full checkpoint of the model and the multi-token-prediction modules it
    trains (LoRA: the adapters only). The last stage's copy of the word embedding is saved
    once, tied to the first stage's (megatron-core 0.14.0, ``GPTModel.sharded_state_dict``:
    ``tie_word_embeddings_state_dict`` where ``mtp_process and not pre_process``, read)."""
    w, model = scenario.workload, scenario.model
    assert isinstance(w, TrainingWorkload)
    if w.finetune.method is FinetuneMethod.LORA:
        trained = lora_params_per_layer(model, w.finetune.rank, w.finetune.targets) \
            * model.layers
    else:
        trained = model.params_total + trained_mtp_layers(model, w) * sum(
            mtp_module_params(model))
    return CHECKPOINT_BYTES_PER_PARAM * trained


def run_spec(scenario: Scenario, work_s: float, step_s: float) -> RunSpec:
    """The run-scale failure model of ``scenario`` for ``work_s`` seconds of training."""
    w, hw = scenario.workload, scenario.hardware
    assert isinstance(w, TrainingWorkload)
    per_device, per_node = failure_mtbfs(scenario)
    write_s = checkpoint_bytes(scenario) / w.checkpoint.storage_bandwidth
    blocking = w.checkpoint.mode is CheckpointMode.BLOCKING
    n = scenario.cluster.accelerators
    nodes = math.ceil(n / hw.devices_per_node.value)
    fleet = fleet_mtbf(accelerators=n, mtbf_per_accelerator_s=per_device, nodes=nodes,
                       mtbf_per_node_s=per_node)
    interval = resolve_interval(w.checkpoint.interval_s, write_s, fleet, step_s,
                                enabled=w.failures.enabled, blocking=blocking)
    return RunSpec(work_s=work_s, accelerators=n, mtbf_per_accelerator_s=per_device,
                   nodes=nodes, mtbf_per_node_s=per_node,
                   restart_s=w.failures.restart_s, checkpoint_write_s=write_s,
                   interval_s=interval, blocking=blocking, enabled=w.failures.enabled)


def failure_mtbfs(scenario: Scenario) -> tuple[float, float]:
    """(MTBF per accelerator, MTBF per node) in seconds, inf for causes not modelled. The
    scenario's ``failures`` MTBFs, if it gives either, replace the profile's reliability
    block as a whole (the one it omits fails never), so that setting the per-accelerator
    figure alone means what it meant before host causes were split out."""
    w, rel = scenario.workload, scenario.hardware.reliability
    assert isinstance(w, TrainingWorkload)
    f = w.failures
    if f.mtbf_per_accelerator_hours is not None or f.mtbf_per_node_hours is not None:
        return _seconds(f.mtbf_per_accelerator_hours), _seconds(f.mtbf_per_node_hours)
    node = rel.mtbf_per_node.value if rel.mtbf_per_node is not None else math.inf
    return rel.mtbf_per_accelerator.value, node


def _seconds(hours: float | None) -> float:
    """An MTBF in hours as seconds; None (no such failures) as inf."""
    return hours * HOUR if hours is not None else math.inf


def _hours(seconds: float) -> float | None:
    """An MTBF in seconds as hours for the result; inf (no such failures) as None."""
    return seconds / HOUR if math.isfinite(seconds) else None


def run_training(scenario: Scenario, *, rng: np.random.Generator | None = None,
                 progress: Callable[[float, float], None] | None = None) -> TrainingResult:
    """Simulate ``scenario`` (``kind: training``): one step, then the whole run.

    ``rng`` draws the failures; by default a generator seeded with ``scenario.seed``. The
    result is deterministic for a given seed. ``progress(done, total)``, if given, hears
    the seconds of training done so far out of the run's total (see ``simulate_run``).
    """
    w, hw = scenario.workload, scenario.hardware
    if not isinstance(w, TrainingWorkload):
        raise TypeError(f"run_training needs a training scenario, got kind {w.kind!r}")
    scenario = resolved_memory_options(scenario)  # once, for the plan and the footprint alike
    w = scenario.workload
    assert isinstance(w, TrainingWorkload)
    plan = build_plan(scenario)
    step = simulate_step(plan.step)
    n = scenario.cluster.accelerators
    step_s = step.step_time_s
    mfu = plan.model_flops_per_step / (n * hw.peak(w.precision) * step_s)
    footprint = training_footprint(scenario)
    steps = w.total_steps
    ideal = steps * step_s
    spec = run_spec(scenario, ideal, step_s)
    run = simulate_run(spec, rng if rng is not None else np.random.default_rng(scenario.seed),
                       progress)
    hfu = mfu * plan.executed_flops_ratio
    return TrainingResult(
        step_time_s=step_s,
        tokens_per_s=w.tokens_per_step / step_s,
        mfu=mfu,
        hfu=hfu,
        bubble_fraction=step.bubble_fraction,
        breakdown_s=step.breakdown,
        critical_stage=step.critical_stage,
        busiest_stage=step.busiest_stage,
        busiest_stage_breakdown_s=step.busiest_breakdown,
        memory_per_accelerator_bytes=TrainingMemory(**footprint.parts, total=footprint.total),
        steps=steps,
        time_to_train_s=ideal,
        goodput=ideal / run.wall_time_s if run.wall_time_s else 1.0,
        wall_time_s=run.wall_time_s,
        accelerator_hours=n * run.wall_time_s / HOUR,
        failures=failure_summary(scenario, spec, run),
        utilization=step.utilization.model_copy(update={"compute": min(1.0, hfu)}),
        timeline=step.timeline,
        run_timeline=run.timeline,
    )


def failure_summary(scenario: Scenario, spec: RunSpec, run: RunOutcome) -> FailureSummary:
    """What failures, checkpoints and restarts cost the sampled ``run`` of ``spec``."""
    w = scenario.workload
    assert isinstance(w, TrainingWorkload)
    return FailureSummary(
        enabled=spec.enabled,
        mtbf_per_accelerator_hours=_hours(spec.mtbf_per_accelerator_s),
        mtbf_per_node_hours=_hours(spec.mtbf_per_node_s),
        nodes=spec.nodes,
        fleet_mtbf_hours=spec.fleet_mtbf_s / HOUR,
        expected_interruptions=run.expected_interruptions,
        expected_wall_time_s=run.expected_wall_time_s,
        sampled_interruptions=run.interruptions,
        lost_hours=(run.lost_work_s + run.restart_s) / HOUR,
        lost_work_hours=run.lost_work_s / HOUR,
        restart_hours=run.restart_s / HOUR,
        checkpoint_interval_s=spec.interval_s,
        checkpoint_write_s=spec.checkpoint_write_s,
        checkpoint_bytes=checkpoint_bytes(scenario),
        checkpoint_mode=w.checkpoint.mode.value,
        checkpoints=run.checkpoints,
        checkpoint_hours=run.checkpoint_stall_s / HOUR,
    )
