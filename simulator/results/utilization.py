"""How busy the accelerators were: one definition for training, serving and the top level."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Utilization(BaseModel):
    """Time-weighted fractions, averaged over the devices they describe (a training step's
    pipeline, or every accelerator of a serving cluster, idle ones included)."""

    model_config = ConfigDict(frozen=True)

    compute: float = Field(description="FLOPs executed / (peak FLOP/s x time)")
    memory_bandwidth: float = Field(description="HBM bytes moved / (peak bandwidth x time)")
    network: float = Field(description="fraction of the time the links carry traffic")
    busy: float = Field(description="fraction of the time kernels run (drives power)")

    def scaled(self, factor: float) -> Utilization:
        """The same activity spread over a longer span (``factor`` of it working)."""
        return Utilization(compute=self.compute * factor,
                           memory_bandwidth=self.memory_bandwidth * factor,
                           network=self.network * factor, busy=self.busy * factor)
