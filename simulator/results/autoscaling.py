"""What an autoscaled serving run reports: its replicas over time, what they were billed
for, and the requests that arrived while the pool was growing."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class AutoscalingMetrics(BaseModel):
    """The ``inference.autoscaling`` key: null unless ``workload.autoscaling`` is set."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    startup_s: float = Field(description="a started replica's delay before it serves: "
                                         "provision_s + its weights / storage_bandwidth")
    replica_seconds: float = Field(description="replicas billed (starting, serving or "
                                               "draining), integrated over the run")
    mean_replicas: float = Field(description="replica_seconds / the run's duration")
    max_replicas: int = Field(description="the most replicas billed at once")
    scale_ups: int = Field(description="replicas started")
    scale_downs: int = Field(description="replicas sent to drain")
    t_s: list[float] = Field(description="times the count changed (a step function)")
    billed: list[int] = Field(description="replicas billed from each time")
    serving: list[int] = Field(description="replicas taking requests from each time")
    arrived_during_scale_up: int = Field(
        description="requests that arrived while a started replica was not yet serving")
    slo_missed_during_scale_up: int | None = Field(
        None, description="of those, the ones missing an SLO target (null without slo)")
    slo_missed: int | None = Field(None, description="requests missing an SLO target over "
                                                     "the whole run (null without slo)")
