"""The data-parallel widths a shared training job can run at, and its pace at each.

Elastic training keeps the global batch when its width changes (TorchElastic, Megatron's
elastic restarts): an optimizer step is the same work at any width, so progress is counted
in steps, and a narrower job runs more gradient-accumulation microbatches per rank. A width
``dp`` is usable when the training scenario's layout checks pass at it (the global batch
splits into ``dp x micro_batch_size``, expert folding, ...) and the job fits memory there;
the training engine simulates one step per width used, once (:meth:`TrainingWidths.cadence`).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass

from simulator.engine.training.planner import build_plan
from simulator.engine.training.run import checkpoint_bytes
from simulator.engine.training.step import simulate_step
from simulator.errors import InputError
from simulator.perf.footprint import training_footprint
from simulator.profiles.layout_checks import check_training
from simulator.profiles.scenario import Cluster, Scenario
from simulator.profiles.shared_training import SharedTraining
from simulator.profiles.torus_slice import on_slice
from simulator.profiles.training import CheckpointMode, TrainingWorkload
from simulator.results.utilization import Utilization

_EPS = 1e-9  # a step ending exactly at a time counts as done then, despite rounding


@dataclass(frozen=True)
class Cadence:
    """A running job's steps and checkpoints over its elapsed time: a checkpoint every
    ``every`` steps (the first step boundary after the interval), each stalling it
    ``write_s`` (blocking checkpoints; 0 when they are written asynchronously); ``use``:
    how busy a step keeps its accelerators (what the job adds to the fleet's power)."""

    step_s: float
    every: int
    write_s: float
    use: Utilization

    @property
    def cycle_s(self) -> float:
        """Seconds from one durable checkpoint to the next."""
        return self.every * self.step_s + self.write_s

    def _split(self, elapsed: float) -> tuple[int, float, int]:
        """(whole cycles, seconds into the current one, its steps done)."""
        cycles = math.floor(elapsed / self.cycle_s + _EPS)
        into = max(0.0, elapsed - cycles * self.cycle_s)
        return cycles, into, min(self.every, math.floor(into / self.step_s + _EPS))

    def steps(self, elapsed: float) -> int:
        """Steps completed ``elapsed`` seconds after the job began running."""
        cycles, _, done = self._split(elapsed)
        return cycles * self.every + done

    def checkpointed(self, elapsed: float) -> tuple[int, float]:
        """(steps in the last durable checkpoint, seconds of work since it): what a job
        killed now keeps, and what it loses."""
        cycles, into, _ = self._split(elapsed)
        return cycles * self.every, into

    def partial_step_s(self, elapsed: float) -> float:
        """Seconds into the step in progress (lost when the job stops at a checkpoint it
        writes now: the steps already done are kept)."""
        _, into, done = self._split(elapsed)
        return 0.0 if done >= self.every else into - done * self.step_s


class TrainingWidths:
    """The usable widths of the shared job on a fleet, and its cadence at each."""

    def __init__(self, shared: SharedTraining, fleet: int):
        self.shared, self.training = shared, shared.training
        self.block = shared.block
        w = shared.workload
        self.name, self.global_batch, self.tokens_per_step = (
            self.training.name, w.global_batch_size, w.tokens_per_step)
        self.widths = [dp for dp in range(shared.min_data_parallel, fleet // self.block + 1)
                       if self._usable(dp)]
        if not self.widths:
            raise InputError(
                f"the training job runs at no data-parallel width from "
                f"{shared.min_data_parallel} to {fleet // self.block} on this fleet (its "
                f"global batch must split into dp x micro_batch_size, and it must fit memory)",
                path="workload.shared_training.scenario")
        self._cadences: dict[int, Cadence] = {}

    def at(self, dp: int) -> Scenario:
        """The training scenario at data-parallel width ``dp`` (its global batch kept)."""
        w = self.training.workload
        assert isinstance(w, TrainingWorkload)
        par = w.parallelism.model_copy(update={"dp": dp})
        return self.training.model_copy(update={
            "cluster": Cluster(accelerators=dp * self.block),
            "hardware": on_slice(self.training.hardware, dp * self.block),
            "workload": w.model_copy(update={"parallelism": par})})

    def _usable(self, dp: int) -> bool:
        if self.global_batch % dp:  # (the layout checks say so too; this is the quick no)
            return False
        scenario = self.at(dp)
        w = scenario.workload
        assert isinstance(w, TrainingWorkload)
        if check_training(w, scenario.model, scenario.hardware, dp * self.block):
            return False
        return training_footprint(scenario).fits

    def width_for(self, free: int) -> int:
        """The widest usable width on ``free`` accelerators, or 0 when none fits."""
        i = bisect_right(self.widths, free // self.block)
        return self.widths[i - 1] if i else 0

    def cadence(self, dp: int) -> Cadence:
        """The job's pace at width ``dp``: one step simulated by the training engine (once
        per width), and its checkpoints' cadence and cost."""
        known = self._cadences.get(dp)
        if known is not None:
            return known
        scenario = self.at(dp)
        w = scenario.workload
        assert isinstance(w, TrainingWorkload)
        plan = build_plan(scenario)
        step = simulate_step(plan.step)
        step_s = step.step_time_s
        # the FLOP utilization is the step's hfu, as run_training fills it in
        peak = scenario.cluster.accelerators * scenario.hardware.peak(w.precision) * step_s
        hfu = plan.model_flops_per_step * plan.executed_flops_ratio / peak
        blocking = w.checkpoint.mode is CheckpointMode.BLOCKING
        write_s = checkpoint_bytes(scenario) / w.checkpoint.storage_bandwidth
        cadence = Cadence(step_s=step_s,
                          every=max(1, math.ceil(self.shared.interval_s / step_s - _EPS)),
                          write_s=write_s if blocking else 0.0, use=step.utilization.model_copy(
                              update={"compute": min(1.0, hfu)}))
        self._cadences[dp] = cadence
        return cadence

    def used(self) -> dict[int, Cadence]:
        """The cadences simulated so far, by width."""
        return dict(sorted(self._cadences.items()))
