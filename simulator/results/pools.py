"""A mixed fleet's pools in a serving result: each pool's share of the work and its cost."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PoolSummary(BaseModel):
    """One pool of a mixed fleet (``workload.pools``): its hardware, what it served, how
    busy its devices were, and what they cost (priced on the pool's own hardware)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int
    hardware: str = Field(description="the pool's hardware profile id")
    replicas: int
    accelerators: int = Field(description="replicas x devices per replica")
    speed_requests_per_s: float = Field(
        description="one replica's priced speed: requests/s at its full batch for the mean "
                    "request (what the least_time router weighs it by)")
    requests: int = Field(description="requests that finished on this pool")
    request_share: float = Field(description="fraction of all finished requests")
    output_tokens: int
    prompt_tokens: int = Field(description="prompt tokens prefilled (recomputation included)")
    busy: float = Field(description="fraction of the pool's device time running kernels")
    compute: float = Field(description="FLOPs done over the pool's peak FLOPs in the run")
    memory_bandwidth: float = Field(description="HBM bytes moved over the pool's peak")
    billed_accelerators: int = Field(0, description="accelerators the pool is billed for")
    cost_usd: float = Field(0.0, description="the pool's cost over the run")
    energy_kwh: float = Field(0.0, description="the pool's facility energy over the run")
