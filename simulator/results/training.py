"""The result of a training scenario (JSON key ``training``): one step, the run, failures.

Every number is in SI units (seconds, bytes, fractions). Definitions, with formulas, are in
docs/training.md; field names are a contract with users' scripts: add, never rename.
The step's timeline (for ``--trace``) and the run's failure/checkpoint timeline (for the
plots of ``--out``) ride along but are left out of JSON dumps.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field, SkipValidation

from simulator.results.utilization import Utilization

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class StepBreakdown(BaseModel):
    """Where one step's time goes on the pipeline stage that finishes last; sums to the step.

    ``compute``: kernels running (GEMMs, attention, elementwise, recomputation);
    ``exposed_*_comm``: communication nothing overlaps (tp includes sequence parallelism;
    dp: gradient reduction and ZeRO parameter gathers the stage waits for; pp: waiting for
    an activation or gradient in flight); ``bubble``: idle with nothing to do (pipeline fill
    and drain, imbalance between stages); ``optimizer``: the optimizer step;
    ``other``: exposed context-parallel communication.
    """

    model_config = _FROZEN

    compute: float
    exposed_tp_comm: float
    exposed_dp_comm: float
    exposed_pp_comm: float
    exposed_ep_comm: float
    bubble: float
    optimizer: float
    other: float

    @property
    def total(self) -> float:
        """The parts summed: the step time, for the critical stage's breakdown."""
        return sum(self.model_dump().values())


class FailureSummary(BaseModel):
    """Failures, checkpoints and restarts over the whole run (one seeded sample)."""

    model_config = _FROZEN

    enabled: bool
    mtbf_per_accelerator_hours: float | None = Field(
        description="device causes' MTBF per accelerator; null: none modelled")
    mtbf_per_node_hours: float | None = Field(
        None, description="host causes' MTBF per node; null: none modelled")
    nodes: int = Field(0, description="hosts the job occupies: accelerators / devices_per_node, "
                                      "rounded up")
    fleet_mtbf_hours: float = Field(
        description="the job's mean time between interruptions: 1 / (accelerators / "
                    "mtbf_per_accelerator + nodes / mtbf_per_node)")
    expected_interruptions: float = Field(
        description="expected wall time / fleet_mtbf_hours (closed form)")
    expected_wall_time_s: float = Field(
        description="closed-form expected wall time: Daly 2006 for blocking checkpoints, "
                    "first order for async ones")
    sampled_interruptions: int
    lost_hours: float = Field(description="wall hours lost: work redone since the last "
                                          "checkpoint plus restarts (sampled)")
    lost_work_hours: float
    restart_hours: float
    checkpoint_interval_s: float | None = Field(
        description="seconds of training between checkpoints (null: none are taken)")
    checkpoint_write_s: float = Field(description="checkpoint bytes / storage bandwidth")
    checkpoint_bytes: float
    checkpoint_mode: str
    checkpoints: int = Field(description="checkpoints written (sampled run)")
    checkpoint_hours: float = Field(description="wall hours training stalled for "
                                                "checkpoint writes (sampled)")


class Slice(NamedTuple):
    """One interval on one stage's track of the simulated step, as a trace or plot draws it."""

    stage: int
    stream: str  # "compute", "dp comm", "pp send (activations)", "pp send (gradients)"
    name: str
    kind: str  # forward, backward, tp_comm, ep_comm, cp_comm, dp_comm, pp_comm, wait_*, ...
    start_s: float
    duration_s: float


class Transfer(NamedTuple):
    """A pipeline send: an activation (``forward``) or a gradient on its way to ``destination``,
    produced by the pass (``forward``, ``microbatch``, ``chunk``) of stage ``source``."""

    source: int
    destination: int
    stream: str
    forward: bool
    microbatch: int
    chunk: int
    start_s: float
    duration_s: float


class PassRun(NamedTuple):
    """A pass as a stage ran it: all of it, or the ``fraction`` between two points where
    data-parallel buckets meet it (the pass is then recorded in several runs)."""

    stage: int
    start_s: float
    forward: bool
    microbatch: int
    chunk: int
    fraction: float


# The records as the step keeps them: rows in the field order of the named tuples above (a
# step records thousands while it runs; a named tuple costs ten times a plain one to make).
SliceRow = tuple[int, str, str, str, float, float]
TransferRow = tuple[int, int, str, bool, int, int, float, float]
PassRunRow = tuple[int, float, bool, int, int, float]


class PassTimes(NamedTuple):
    """What a whole pass of one (chunk, direction) spends: compute, then the TP, EP and CP
    communication it leaves exposed, in that order."""

    compute_s: float
    tp_s: float
    ep_s: float
    cp_s: float

    @property
    def duration_s(self) -> float:
        """The pass's length: compute plus exposed communication."""
        return self.compute_s + self.tp_s + self.ep_s + self.cp_s


def pass_label(forward: bool, microbatch: int, chunk: int) -> str:
    """A pass's short name: ``F3`` is the forward of microbatch 3, ``B3.c1`` the backward of
    microbatch 3 through chunk 1."""
    return f"{'F' if forward else 'B'}{microbatch}" + (f".c{chunk}" if chunk else "")


@dataclass(frozen=True, slots=True, kw_only=True)
class StepTimeline:
    """Everything that happened in one simulated step, per pipeline stage, as plain records.

    Three kinds of record, each in the order it happened: intervals (waits, data-parallel
    buckets, the optimizer), transfers (pipeline sends) and pass runs.
    ``pass_times[stage][chunk][backward]`` is what a whole pass of the stage costs. Most runs never
    look at the timeline, so passes and sends become named, drawable :class:`Slice` s only
    when :meth:`slices` is called (by the trace writer and the plots).
    """

    stages: int
    step_time_s: float
    title: str = ""
    interval_rows: tuple[SliceRow, ...] = ()
    transfer_rows: tuple[TransferRow, ...] = ()
    pass_rows: tuple[PassRunRow, ...] = ()
    pass_times: tuple[tuple[tuple[PassTimes, PassTimes], ...], ...] = ()

    def intervals(self) -> Iterator[Slice]:
        """The waits, data-parallel buckets and optimizer steps."""
        return map(Slice._make, self.interval_rows)

    def transfers(self) -> Iterator[Transfer]:
        """The pipeline sends."""
        return map(Transfer._make, self.transfer_rows)

    def passes(self) -> Iterator[PassRun]:
        """The pass runs."""
        return map(PassRun._make, self.pass_rows)

    def slices(self) -> tuple[Slice, ...]:
        """Every record as a slice: the intervals, each send (named after its pass and
        destination), then each pass as its compute and the communication it exposes."""
        out = list(self.intervals())
        for t in self.transfers():
            name = f"{pass_label(t.forward, t.microbatch, t.chunk)} -> stage {t.destination}"
            out.append(Slice(stage=t.source, stream=t.stream, name=name, kind="pp_comm",
                             start_s=t.start_s, duration_s=t.duration_s))
        for run in self.passes():
            out.extend(self._pass_slices(run))
        return tuple(out)

    def _pass_slices(self, run: PassRun) -> list[Slice]:
        """A pass's compute slice, then its exposed TP, EP and CP communication after it."""
        times = self.pass_times[run.stage][run.chunk][not run.forward]
        fraction = run.fraction
        out = [Slice(stage=run.stage, stream="compute",
                     name=pass_label(run.forward, run.microbatch, run.chunk),
                     kind="forward" if run.forward else "backward", start_s=run.start_s,
                     duration_s=times.duration_s * fraction)]
        t = run.start_s + times.compute_s * fraction
        for name, seconds in (("tp", times.tp_s), ("ep", times.ep_s), ("cp", times.cp_s)):
            if seconds > 0:
                out.append(Slice(stage=run.stage, stream="compute", name=f"{name} comm",
                                 kind=f"{name}_comm", start_s=t, duration_s=seconds * fraction))
                t += seconds * fraction
        return out


@dataclass(frozen=True, kw_only=True)
class RunTimeline:
    """When things happened in the sampled run (for the failure/checkpoint plot), seconds of
    wall time from the start: each failure, each restart span (start, end), and each
    checkpoint write's start (``checkpoint_write_s`` long; a blocking one stalls training).
    Very long runs keep only the first events of each list and set ``truncated``."""

    wall_time_s: float
    failures_s: tuple[float, ...]
    restarts_s: tuple[tuple[float, float], ...]
    checkpoints_s: tuple[float, ...]
    checkpoint_write_s: float
    blocking: bool
    truncated: bool = False


class TrainingMemory(BaseModel):
    """Bytes held by the most loaded device during a step, by part, and their total."""

    model_config = _FROZEN

    weights: float
    gradients: float
    optimizer: float
    activations: float
    logits: float
    runtime_reserve: float
    total: float


class TrainingResult(BaseModel):
    """One training scenario: the steady-state step and the run with failures."""

    model_config = _FROZEN

    step_time_s: float
    tokens_per_s: float
    mfu: float = Field(description="model FLOPs per step / (accelerators x peak at the "
                                   "precision x step time); model FLOPs exclude recompute")
    hfu: float = Field(description="as mfu, counting the recomputed FLOPs too")
    bubble_fraction: float = Field(description="breakdown_s.bubble / step_time_s")
    breakdown_s: StepBreakdown
    critical_stage: int = Field(0, description="the pipeline stage that finishes last, whose "
                                               "breakdown breakdown_s is")
    busiest_stage: int = Field(0, description="the stage busy longest (compute and exposed "
                                              "communication): the pipeline's bottleneck")
    busiest_stage_breakdown_s: StepBreakdown | None = Field(
        None, description="the busiest stage's breakdown (its wait at the end of the step "
                          "counted as bubble). Where it is not the critical stage, the "
                          "critical stage's bubble is mostly waiting for it: stage "
                          "imbalance, not pipeline fill")
    memory_per_accelerator_bytes: TrainingMemory = Field(
        description="the footprint's parts on the most loaded device, and their total")
    steps: int
    time_to_train_s: float = Field(description="ideal: steps x step time, no failures")
    goodput: float = Field(description="time_to_train_s / wall_time_s")
    wall_time_s: float = Field(description="with failures, restarts and checkpoints")
    accelerator_hours: float
    failures: FailureSummary
    utilization: Utilization
    timeline: SkipValidation[StepTimeline | None] = Field(None, exclude=True, repr=False)
    run_timeline: SkipValidation[RunTimeline | None] = Field(None, exclude=True, repr=False)
