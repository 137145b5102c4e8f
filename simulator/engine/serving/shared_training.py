"""The training tenant: a training job on the accelerators the autoscaled pool leaves.

The fleet is ``cluster.accelerators``. Whenever the autoscaler's billed count changes (a
replica starting, a drained one released), the tenant sees the accelerators serving holds
(starting, serving and draining replicas all hold theirs) and sizes the job to the widest
usable data-parallel width on the rest (:class:`TrainingWidths`):

- *shrink*: at once (serving never waits). A running job is preempted: it loses the work
  since its last durable checkpoint and restarts at the narrower width;
- *grow*: once the accelerators have stayed free ``grow_delay_s``; the job checkpoints at
  its last finished step (the step in progress is lost) and restarts at the wider width;
- every restart holds the new width's accelerators ``restart_s`` before steps run again; a
  change during a restart starts it over. Below ``min_data_parallel`` the job stops.

At t = 0 the job is running at the width the initial pool leaves (a steady state, like the
pool's ``min_replicas``). Its progress inside a running stretch follows from the stretch's
start and the width's cadence (:class:`Cadence`), so no event per step is needed; the
stretches are kept and :meth:`TrainingTenant.metrics` reads them over the run's window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

import simpy
from simpy.events import Timeout

from simulator.engine.serving.autoscaler import Autoscaler
from simulator.engine.serving.training_widths import TrainingWidths
from simulator.profiles.inference import InferenceWorkload
from simulator.profiles.scenario import Scenario


class Phase(IntEnum):
    """What the job is doing over a stretch."""

    STOPPED = 0  # no width fits
    RESTARTING = 1  # holds its width, runs no steps
    RUNNING = 2


@dataclass
class Stretch:
    """A stretch of time at one width and phase; ``end`` None while it lasts.
    ``preempted``: it ended by serving taking accelerators while running."""

    start: float
    width: int
    phase: Phase
    end: float | None = None
    preempted: bool = False


class TrainingTenant:
    """Follows the serving pool's billed count on the SimPy clock and keeps the job's
    stretches and the fleet's split over time."""

    def __init__(self, *, env: simpy.Environment, widths: TrainingWidths, fleet: int,
                 replica_devices: int, restart_s: float, grow_delay_s: float):
        self.env, self.widths, self.fleet = env, widths, fleet
        self.replica_devices = replica_devices
        self.restart_s, self.grow_delay_s = restart_s, grow_delay_s
        self.stretches: list[Stretch] = []
        self.serving_devices = 0
        self._pending: float | None = None  # since when a grow waits
        self.t_s: list[float] = []
        self.serving: list[int] = []
        self.training: list[int] = []
        self.running: list[bool] = []

    @property
    def current(self) -> Stretch:
        """The stretch the job is in now."""
        return self.stretches[-1]

    def start(self, billed: int) -> None:
        """At t = 0: the job runs at the width the initial pool leaves."""
        self.serving_devices = billed * self.replica_devices
        width = self._target()
        self.stretches.append(Stretch(0.0, width, Phase.RUNNING if width else Phase.STOPPED))
        self._record(0.0)

    def _target(self) -> int:
        return self.widths.width_for(self.fleet - self.serving_devices)

    def on_billed(self, t: float, billed: int) -> None:
        """The pool's billed replicas changed to ``billed`` at ``t`` (the first call, at
        t = 0, starts the job)."""
        if not self.stretches:
            self.start(billed)
            return
        self.serving_devices = billed * self.replica_devices
        target, width = self._target(), self.current.width
        if target < width:
            self._pending = None
            self._resize(t, target, preempt=True)
        elif target == width:
            self._pending = None
        elif self.grow_delay_s == 0:
            self._resize(t, target, preempt=False)
        elif self._pending is None:
            self._pending = t
            Timeout(self.env, self.grow_delay_s).callbacks.append(self._grower(t))
        self._record(t)

    def _grower(self, since: float) -> Callable[[simpy.Event], None]:
        def grow(_event: simpy.Event) -> None:
            """The accelerators freed at ``since`` stayed free: grow onto them."""
            if self._pending != since:
                return  # a shrink or a steady spell since cancelled this grow
            self._pending = None
            t, target = self.env.now, self._target()
            if target > self.current.width:
                self._resize(t, target, preempt=False)
                self._record(t)
        return grow

    def _resize(self, t: float, width: int, *, preempt: bool) -> None:
        """End the current stretch at ``t`` and begin the restart at ``width``."""
        now = self.current
        now.end = t
        now.preempted = preempt and now.phase is Phase.RUNNING
        if width == 0:
            self.stretches.append(Stretch(t, 0, Phase.STOPPED))
            return
        phase = Phase.RESTARTING if self.restart_s > 0 else Phase.RUNNING
        stretch = Stretch(t, width, phase)
        self.stretches.append(stretch)
        if phase is Phase.RESTARTING:
            Timeout(self.env, self.restart_s).callbacks.append(self._restarted(stretch))

    def _restarted(self, restart: Stretch) -> Callable[[simpy.Event], None]:
        def ready(_event: simpy.Event) -> None:
            """The restart at ``restart.width`` is done, unless a change started it over."""
            if self.current is not restart:
                return
            t = self.env.now
            restart.end = t
            self.stretches.append(Stretch(t, restart.width, Phase.RUNNING))
            self._record(t)
        return ready

    def _record(self, t: float) -> None:
        """The split from ``t`` (one row per time: a later change at the same time wins)."""
        row = (self.serving_devices, self.current.width * self.widths.block,
               self.current.phase is Phase.RUNNING)
        if self.t_s and self.t_s[-1] == t:
            self.serving[-1], self.training[-1], self.running[-1] = row
            return
        if self.t_s and (self.serving[-1], self.training[-1], self.running[-1]) == row:
            return
        self.t_s.append(t)
        self.serving.append(row[0])
        self.training.append(row[1])
        self.running.append(row[2])


def shared_tenant(env: simpy.Environment, scenario: Scenario,
                  scaler: Autoscaler) -> TrainingTenant | None:
    """The tenant of ``workload.shared_training`` following ``scaler``'s billed count on the
    fleet (``cluster.accelerators``), else None."""
    w = scenario.workload
    assert isinstance(w, InferenceWorkload)
    shared = w.shared_training
    if shared is None:
        return None
    fleet = scenario.cluster.accelerators
    tenant = TrainingTenant(env=env, widths=TrainingWidths(shared, fleet), fleet=fleet,
                            replica_devices=w.parallelism.devices, restart_s=shared.resize_s,
                            grow_delay_s=shared.grow_delay_s)
    scaler.on_billed.append(tenant.on_billed)
    return tenant
