"""The result of a training scenario (JSON key ``training``): one step, the run, failures.

Every number is in SI units (seconds, bytes, fractions). Definitions, with formulas, are in
docs/training.md; field names are a contract with users' scripts: add, never rename.
The step's timeline (for ``--trace``) and the run's failure/checkpoint timeline (for the
plots of ``--out``) ride along but are left out of JSON dumps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property

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
        return sum(self.model_dump().values())


class FailureSummary(BaseModel):
    """Failures, checkpoints and restarts over the whole run (one seeded sample)."""

    model_config = _FROZEN

    enabled: bool
    mtbf_per_accelerator_hours: float
    fleet_mtbf_hours: float = Field(description="mtbf_per_accelerator / accelerators")
    expected_interruptions: float = Field(
        description="accelerators x expected wall time / MTBF per accelerator (closed form)")
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


@dataclass(frozen=True)
class Slice:
    """One interval on one device of the simulated step (for the trace)."""

    stage: int
    stream: str  # "compute", "dp comm", "pp send"
    name: str
    kind: str  # forward, backward, compute, tp_comm, ep_comm, cp_comm, dp_comm, pp_comm, ...
    start_s: float
    duration_s: float


@dataclass(frozen=True, eq=False)
class StepTimeline:
    """Everything that happened in one simulated step, per pipeline stage.

    ``records`` are plain tuples in :class:`Slice` field order (a name may be any object
    whose ``str()`` is the name); ``slices`` builds the objects when a trace is asked for.
    Most runs never read either, so the engine hands over ``build``, which makes the
    records from what it collected on first read: a picklable callable (a ``partial`` of a
    module-level function), so that results still cross process boundaries.
    """

    stages: int
    step_time_s: float
    build: Callable[[], Iterable[tuple]] = field(repr=False)
    title: str = ""

    @cached_property
    def records(self) -> tuple[tuple, ...]:
        return tuple(self.build())

    @cached_property
    def slices(self) -> tuple[Slice, ...]:
        return tuple(Slice(stage, stream, str(name), kind, start, duration)
                     for stage, stream, name, kind, start, duration in self.records)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StepTimeline):
            return NotImplemented
        return ((self.stages, self.step_time_s, self.title, self.records)
                == (other.stages, other.step_time_s, other.title, other.records))

    def __hash__(self) -> int:
        return hash((self.stages, self.step_time_s, self.title, self.records))


@dataclass(frozen=True)
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


class TrainingResult(BaseModel):
    """One training scenario: the steady-state step and the run with failures."""

    model_config = ConfigDict(frozen=True, extra="forbid")

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
    memory_per_accelerator_bytes: dict[str, float] = Field(
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
