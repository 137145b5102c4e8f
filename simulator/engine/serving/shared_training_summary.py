"""A training tenant's stretches read over the serving run's window: progress kept, work
lost, restarts, the fleet's split, and the two baselines it is judged against (a static
split at serving's peak, and the whole fleet)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from simulator.engine.serving.scale_bins import step_integral
from simulator.engine.serving.shared_training import Phase, Stretch, TrainingTenant
from simulator.engine.serving.training_widths import TrainingWidths
from simulator.results.shared_training import (
    SharedTrainingMetrics,
    TrainingBaseline,
    TrainingWidth,
)
from simulator.results.utilization import Utilization


@dataclass
class _Tally:
    """Sums over the stretches."""

    steps: int = 0
    lost_steps: int = 0
    lost_s: float = 0.0
    lost_acc_s: float = 0.0
    restart_s: float = 0.0
    restart_acc_s: float = 0.0
    held_acc_s: float = 0.0
    width_s: float = 0.0

    def add(self, stretch: Stretch, widths: TrainingWidths, t_end: float) -> None:
        """Book ``stretch`` clipped to [0, t_end]; a stretch still lasting at ``t_end``
        keeps every step it finished (the job goes on after the window)."""
        ended = stretch.end is not None and stretch.end <= t_end
        span = max(0.0, (stretch.end if ended else t_end) - stretch.start)  # type: ignore[operator]
        accelerators = stretch.width * widths.block
        self.held_acc_s += span * accelerators
        self.width_s += span * stretch.width
        if stretch.phase is Phase.RESTARTING:
            self.restart_s += span
            self.restart_acc_s += span * accelerators
        if stretch.phase is not Phase.RUNNING:
            return
        cadence = widths.cadence(stretch.width)
        done = cadence.steps(span)
        if ended and stretch.preempted:
            kept, lost = cadence.checkpointed(span)
            self.lost_steps += done - kept
        else:
            kept, lost = done, cadence.partial_step_s(span) if ended else 0.0
        self.steps += kept
        self.lost_s += lost
        self.lost_acc_s += lost * accelerators


def _baseline(widths: TrainingWidths, free: int, window_s: float,
              tokens_per_step: int) -> TrainingBaseline:
    """The job alone on ``free`` accelerators over the window, never resized."""
    width = widths.width_for(free)
    steps = widths.cadence(width).steps(window_s) if width else 0
    return TrainingBaseline(data_parallel=width, accelerators=width * widths.block,
                            steps=steps, tokens=float(steps * tokens_per_step))


def _fleet_activity(tenant: TrainingTenant, t0: float, t_end: float) -> Utilization:
    """The job's activity over [t0, t_end] (the serving run's span) as fractions of the
    whole fleet's: running stretches at their step's utilization (restarts and checkpoint
    stalls idle), so that it adds to the serving replicas' own."""
    whole = tenant.fleet * (t_end - t0)
    sums = dict.fromkeys(("compute", "memory_bandwidth", "network", "busy"), 0.0)
    for s in tenant.stretches:
        end = t_end if s.end is None else min(s.end, t_end)
        overlap = max(0.0, end - max(s.start, t0))
        if s.phase is not Phase.RUNNING or not overlap or whole <= 0:
            continue
        use = tenant.widths.cadence(s.width).use
        for name in sums:
            sums[name] += overlap * s.width * tenant.widths.block * getattr(use, name)
    return Utilization(**{k: v / whole if whole > 0 else 0.0 for k, v in sums.items()})


def summarize_tenant(tenant: TrainingTenant, *, t_end: float, serving_max_devices: int,
                     t0: float = 0.0) -> SharedTrainingMetrics:
    """The tenant's figures over [0, t_end] (the serving run's window; its activity over the
    serving run's span [t0, t_end], as the serving replicas' is); ``serving_max_devices``:
    what the pool holds at its most, the static split's share."""
    widths = tenant.widths
    inside = [s for s in tenant.stretches if s.start <= t_end]
    tally = _Tally()
    for stretch in inside:
        tally.add(stretch, widths, t_end)
    ran = sorted({s.width for s in inside if s.phase is Phase.RUNNING})
    resizes = sum(1 for a, b in itertools.pairwise(inside) if a.width != b.width)
    fleet = tenant.fleet
    rows = [i for i, t in enumerate(tenant.t_s) if t <= t_end]
    serving_acc_s = float(step_integral(tenant.t_s, tenant.serving, np.array([0.0, t_end]))[0])
    static = _baseline(widths, fleet - serving_max_devices, t_end, widths.tokens_per_step)
    whole = _baseline(widths, fleet, t_end, widths.tokens_per_step)
    return SharedTrainingMetrics(
        scenario=widths.name, window_s=t_end, fleet_accelerators=fleet,
        block=widths.block, steps=tally.steps, samples=tally.steps * widths.global_batch,
        tokens=float(tally.steps * widths.tokens_per_step),
        accelerator_seconds=tally.held_acc_s,
        restart_accelerator_seconds=tally.restart_acc_s,
        lost_accelerator_seconds=tally.lost_acc_s,
        serving_accelerator_seconds=serving_acc_s,
        idle_accelerator_seconds=max(0.0, fleet * t_end - serving_acc_s - tally.held_acc_s),
        mean_data_parallel=tally.width_s / t_end if t_end > 0 else float(inside[0].width),
        resizes=resizes,
        preemptions=sum(1 for s in inside if s.preempted and s.end is not None
                        and s.end <= t_end),
        restart_s=tally.restart_s, lost_work_s=tally.lost_s, lost_steps=tally.lost_steps,
        widths=[_width_row(widths, dp) for dp in ran], static=static, whole_fleet=whole,
        gained_vs_static_steps=tally.steps - static.steps,
        lost_vs_whole_fleet_steps=whole.steps - tally.steps,
        t_s=[tenant.t_s[i] for i in rows], serving_accelerators=[tenant.serving[i] for i in rows],
        training_accelerators=[tenant.training[i] for i in rows],
        training_running=[tenant.running[i] for i in rows],
        fleet_activity=_fleet_activity(tenant, t0, t_end))


def _width_row(widths: TrainingWidths, dp: int) -> TrainingWidth:
    """One width the job ran at, with its simulated pace."""
    cadence = widths.cadence(dp)
    return TrainingWidth(data_parallel=dp, accelerators=dp * widths.block,
                         step_time_s=cadence.step_s, checkpoint_every_steps=cadence.every,
                         checkpoint_write_s=cadence.write_s)
