"""Scenario -> Result. Chooses the engine by workload kind.

The discrete-event engines land with the training and serving issues; until then a run
reports what is already known exactly (memory per device, peak figures) and no timing.
"""

from __future__ import annotations

from simulator.errors import DoesNotFit
from simulator.perf.footprint import scenario_footprint
from simulator.profiles.scenario import Scenario
from simulator.results import MemoryReport, PeakReport, Result


def memory_report(scenario: Scenario) -> MemoryReport:
    fp = scenario_footprint(scenario)
    return MemoryReport(parts_bytes=dict(fp.parts), total_bytes=fp.total,
                        capacity_bytes=fp.capacity, fits=fp.fits, biggest=fp.biggest,
                        verdict=fp.verdict(), notes=list(fp.notes))


def peak_report(scenario: Scenario) -> PeakReport:
    hw, model, w = scenario.hardware, scenario.model, scenario.workload
    per_device = hw.peak(w.precision)
    cluster = per_device * scenario.cluster.accelerators
    factor = 6.0 if w.kind == "training" else 2.0
    flops_per_token = factor * model.params_active
    return PeakReport(flops_per_accelerator=per_device, flops_cluster=cluster,
                      hbm_bandwidth_per_accelerator=hw.hbm_bandwidth,
                      model_flops_per_token=flops_per_token,
                      ideal_tokens_per_s=cluster / flops_per_token)


def simulate(scenario: Scenario, *, require_fit: bool = True) -> Result:
    """Run ``scenario``. Raises :class:`DoesNotFit` when the model does not fit memory."""
    memory = memory_report(scenario)
    if require_fit and not memory.fits:
        raise DoesNotFit(f"{scenario.model.id} on {scenario.hardware.id}: {memory.verdict}")
    return Result(**scenario.summary(), memory=memory, peak=peak_report(scenario),
                  warnings=scenario.warnings,
                  notes=[f"the {scenario.kind} engine is not implemented yet: no timings are "
                         f"reported (time_s is null)"])
