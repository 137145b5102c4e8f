"""What a simulated step records for its timeline, and the timeline it hands over.

The step records as it goes, one row per interval, send and pass run, in the field order of
:class:`Slice`, :class:`Transfer` and :class:`PassRun` (:mod:`simulator.results.training`);
the stages append pass runs and intervals, :class:`.p2p.PointToPoint` transfers and
:class:`.data_parallel.DataParallelStream` its buckets. Turning them into named, drawable
slices is left to :meth:`StepTimeline.slices`, which few runs ever call.
"""

from __future__ import annotations

from simulator.engine.training.plan import PassCost, StepPlan
from simulator.results.training import (
    PassRunRow,
    PassTimes,
    SliceRow,
    StepTimeline,
    TransferRow,
)


class StepRecords:
    """The timeline records of one step, in the order they happened (per kind)."""

    def __init__(self) -> None:
        self.intervals: list[SliceRow] = []
        self.transfers: list[TransferRow] = []
        self.passes: list[PassRunRow] = []

    def interval(self, stage: int, stream: str, name: str, kind: str, start: float,
                 duration: float) -> None:
        """A wait, a data-parallel bucket or the optimizer (nothing if it lasts no time)."""
        if duration > 0:
            self.intervals.append((stage, stream, name, kind, start, duration))

    def timeline(self, plan: StepPlan, step_time_s: float) -> StepTimeline:
        """The step's timeline: these records and what each pass of each stage costs."""
        times = tuple(tuple((_times(c.forward), _times(c.backward)) for c in stage.chunks)
                      for stage in plan.stages)
        return StepTimeline(stages=plan.pp, step_time_s=step_time_s, title=plan.title,
                            interval_rows=tuple(self.intervals),
                            transfer_rows=tuple(self.transfers),
                            pass_rows=tuple(self.passes), pass_times=times)


def _times(cost: PassCost) -> PassTimes:
    """What the timeline needs of a pass's cost."""
    return PassTimes(compute_s=cost.compute_s, tp_s=cost.tp_s, ep_s=cost.ep_s,
                     cp_s=cost.cp_s)
