"""What an autoscaled serving run reports: its replicas over time, what they were billed
for, and the requests that arrived while the pool was growing."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ScaleBin(BaseModel):
    """One bin of an autoscaled run's cost over time (``inference.autoscaling.bins``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start_s: float = Field(description="the bin's start (simulated time)")
    end_s: float = Field(description="its end (the last bin ends with the run)")
    replicas: float = Field(description="replicas billed, averaged over the bin")
    replica_seconds: float = Field(description="replicas billed, integrated over the bin")
    device_busy_s: float = Field(description="device-seconds running iterations in the bin")
    prompt_tokens: int = Field(description="prompt tokens of the requests completed in the "
                                           "bin (as the run's throughput counts them)")
    output_tokens: int = Field(description="output tokens of the requests completed in it")
    arrived: int = Field(description="requests arriving in the bin")
    completed: int = Field(description="of those, the ones that completed")
    cost_usd: float | None = Field(None, description="the run's cost spent in the bin: "
                                   "rent by its replica-seconds; capital and facility by its "
                                   "time; electricity by its idle time and busy time. The "
                                   "bins sum to the run's cost")
    usd_per_million_tokens: float | None = Field(
        None, description="cost_usd per million tokens completed in the bin (input tokens "
                          "weighted as the run's; null without tokens)")
    slo_attainment: float | None = Field(
        None, description="of the requests arriving in the bin that completed, the share "
                          "meeting every SLO target (null without slo or completions)")
    slo_missed: int | None = Field(None, description="of them, the ones missing a target")
    arrived_during_scale_up: int = Field(
        description="requests arriving in the bin while a started replica was not serving")
    slo_missed_during_scale_up: int | None = Field(
        None, description="of those, the ones missing an SLO target (null without slo)")

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
    bin_s: float | None = Field(None, description="the width of the bins (autoscaling."
                                                  "report_bin_s, or chosen for the run)")
    bins: list[ScaleBin] = Field(default_factory=list, description="the run's cost, tokens "
                                 "and SLO over time, bin by bin")

