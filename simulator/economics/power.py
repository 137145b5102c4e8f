"""Power follows activity: idle power plus the dynamic range scaled by how busy the device is.

    P_device(t) = idle + (TDP - idle) · activity(t)
    activity    = busy - (1 - MEMORY_POWER_WEIGHT) · min(busy, memory)

``busy`` is the fraction of time the device runs kernels and ``memory`` its HBM bandwidth
utilization (achieved bytes/s over peak), as the engines report them (``utilization.busy``
and ``utilization.memory_bandwidth``). A device whose kernels stream memory at full speed
leaves its tensor cores mostly idle and draws ``MEMORY_POWER_WEIGHT`` of the dynamic range; a
device running GEMMs (little bandwidth) draws all of it. Every accelerator
adds ``system_per_device`` (its share of host, NICs, switches, fans) while the fleet is on,
and the facility multiplies IT power by the PUE.

Because power is linear in the two fractions (while memory <= busy), the energy of a run is
exactly ``idle·T + (TDP - idle)·(∫busy - (1-w)·∫memory)``: averages over the run suffice, and
a time series gives the same integral (tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from simulator.profiles.hardware import HardwareProfile

# Memory-bound phases (LLM decode) draw roughly 60% of an H100's dynamic power range compared
# with dense GEMMs; an estimate from public nvidia-smi readings of decode vs. training loads,
# documented in docs/economics.md. Applied to every part for want of per-part measurements.
MEMORY_POWER_WEIGHT = 0.6


@dataclass(frozen=True)
class Activity:
    """How busy the accelerators were, averaged over a span of ``duration_s`` seconds:
    ``compute_busy`` the fraction of time kernels run, ``memory_busy`` the HBM bandwidth
    utilization."""

    duration_s: float
    compute_busy: float = 0.0
    memory_busy: float = 0.0

    def __post_init__(self) -> None:
        if self.duration_s < 0:
            raise ValueError("duration_s must be >= 0")
        for name in ("compute_busy", "memory_busy"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1] (got {value})")

    @property
    def level(self) -> float:
        """The fraction of the dynamic power range drawn: compute-bound time counts fully,
        memory-bound time ``MEMORY_POWER_WEIGHT``."""
        busy = self.compute_busy
        return busy - (1 - MEMORY_POWER_WEIGHT) * min(busy, self.memory_busy)


@dataclass(frozen=True, kw_only=True)
class PowerModel:
    """A device's power as a function of its activity, with its system share and the facility's
    PUE."""

    idle_w: float
    tdp_w: float
    system_w: float  # per device, while on
    pue: float

    def device_w(self, activity: Activity) -> float:
        """The device alone: idle power plus the dynamic range scaled by activity."""
        return self.idle_w + (self.tdp_w - self.idle_w) * activity.level

    def it_w(self, activity: Activity) -> float:
        """Per-device IT power: the device and its share of the system."""
        return self.device_w(activity) + self.system_w

    def facility_w(self, activity: Activity) -> float:
        """Per-device facility power: IT power (device and system share) times the PUE."""
        return self.it_w(activity) * self.pue

    def energy_j(self, spans: Sequence[Activity], devices: float) -> float:
        """Facility energy of ``devices`` accelerators over consecutive spans: ∫P dt."""
        return devices * sum(self.facility_w(s) * s.duration_s for s in spans)


def power_model(hardware: HardwareProfile, pue: float) -> PowerModel:
    """The power model of ``hardware``'s devices in a facility of the given PUE."""
    p = hardware.power
    return PowerModel(idle_w=p.idle.value, tdp_w=p.tdp.value,
                      system_w=p.system_per_device.value, pue=pue)

