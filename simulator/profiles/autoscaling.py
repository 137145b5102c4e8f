"""`workload.autoscaling`: replicas that follow the load, between a floor and the pool.

``workload.replicas`` is the most the deployment may run (the accelerators it may take);
``min_replicas`` serve from the start. Every ``interval_s`` the autoscaler sets a desired
count from its ``policy`` (:class:`ScalePolicy`), within [``min_replicas``, ``replicas``]:

- ``queue_length``: the requests in the system (waiting and running) over ``target``, rounded
  up: the concurrency target of Knative's autoscaler (``autoscaling.knative.dev/target``),
  the queue-length policy of a Kubernetes HPA on a custom metric (vLLM production-stack
  scales on ``num_requests_waiting`` / ``num_requests_running``);
- ``kv_utilization`` / ``batch_utilization``: the serving replicas' KV-cache occupancy
  (vLLM's ``gpu_cache_usage_perc``) or batch-slot occupancy (``num_requests_running`` over
  ``max_batch_size``), averaged over the last interval: the HPA's target-utilisation rule
  ``ceil(replicas x measured / target)``. Busy time is not used: under continuous batching
  a replica with one sequence is as busy as one with 256 (docs/serving.md);
- ``slo_attainment``: the share of the requests finished in the last ``window_s`` that met
  every ``workload.slo`` target (requests still waiting past the TTFT target count as
  misses). Below ``target`` it scales up in proportion to the misses over the allowed
  share, at most the HPA's default scale-up step (double, or 4 more, per decision); with the
  miss budget at most half used and no more requests waiting for admission than replicas
  serving, it asks for one fewer.

``tolerance`` is the HPA's (``--horizontal-pod-autoscaler-tolerance``, default 0.1): a
measured load within 10% of the target changes nothing. The shorthand
``target_outstanding: N`` is ``policy: {metric: queue_length, target: N, tolerance: 0}``,
the policy before there were others (its results are unchanged).

A replica started serves after ``provision_s`` (a node and its container starting) plus the
time to read its weights at ``storage_bandwidth``. Scaling down waits until the desired
count has stayed lower for ``scale_down_delay_s`` (the HPA's stabilization window); a replica
leaving takes no new requests and is released when its last one ends (it drains).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from annotated_types import Ge, Lt
from pydantic import BaseModel, Field, model_validator

from simulator.profiles.numbers import SPEC_CONFIG, NotBool, PositiveFloat, PositiveInt
from simulator.profiles.quantities import Bandwidth, NonNegativeSeconds, Seconds

# Kubernetes HPA defaults (kubernetes.io, "Horizontal Pod Autoscaling"): the controller
# decides every 15 s (--horizontal-pod-autoscaler-sync-period), ignores a metric within 10%
# of its target (--horizontal-pod-autoscaler-tolerance) and scales down after a 300 s
# stabilization window (behavior.scaleDown.stabilizationWindowSeconds).
HPA_SYNC_PERIOD_S = 15.0
HPA_TOLERANCE = 0.1
HPA_DOWNSCALE_WINDOW_S = 300.0
# Knative's autoscaler averages its metrics over a 60 s stable window (config-autoscaler
# stable-window): the SLO policy judges the requests finished in the last minute.
KNATIVE_STABLE_WINDOW_S = 60.0
# One PCIe Gen4 NVMe data-centre SSD's sequential read (Samsung PM9A3 datasheet: 6.9 GB/s),
# estimate: a replica reading its weights from local NVMe; network storage is slower.
NVME_READ_BYTES_PER_S = 6.9e9

Tolerance = Annotated[float, NotBool, Ge(0), Lt(1)]


class ScaleMetric(StrEnum):
    """What the autoscaler measures."""

    QUEUE_LENGTH = "queue_length"
    KV_UTILIZATION = "kv_utilization"
    BATCH_UTILIZATION = "batch_utilization"
    SLO_ATTAINMENT = "slo_attainment"


class ScalePolicy(BaseModel):
    """The metric the autoscaler follows and the value it aims at."""

    model_config = SPEC_CONFIG

    metric: ScaleMetric = Field(description="queue_length: requests in the system per "
                                "replica; kv_utilization / batch_utilization: the share of "
                                "the KV cache / batch slots in use; slo_attainment: the "
                                "share of recent requests meeting workload.slo")
    target: PositiveFloat = Field(
        description="requests per replica (queue_length); a share in (0, 1] "
                    "(kv_utilization, batch_utilization); a share in (0, 1) (slo_attainment)")
    tolerance: Tolerance = Field(HPA_TOLERANCE, description="a measured load within this "
                                 "share of the target changes nothing (default 0.1, the "
                                 "Kubernetes HPA tolerance)")
    window_s: Seconds = Field(KNATIVE_STABLE_WINDOW_S, description="slo_attainment: the "
                              "requests finished in this last span are judged (default 60 s, "
                              "Knative's stable window)")

    @model_validator(mode="after")
    def _target_fits(self) -> ScalePolicy:
        if self.metric is ScaleMetric.SLO_ATTAINMENT and self.target >= 1:
            raise ValueError(f"target ({self.target:g}) of slo_attainment must be a share "
                             f"below 1 (e.g. 0.99): at 1 no miss is allowed and it never "
                             f"scales down")
        if self.metric in (ScaleMetric.KV_UTILIZATION, ScaleMetric.BATCH_UTILIZATION) \
                and self.target > 1:
            raise ValueError(f"target ({self.target:g}) of {self.metric.value} must be a "
                             f"share in (0, 1]")
        return self


class Autoscaling(BaseModel):
    """The autoscaling policy of a serving pool (docs/serving.md, autoscaling)."""

    model_config = SPEC_CONFIG

    min_replicas: PositiveInt = Field(1, description="replicas always serving (and at t = 0)")
    policy: ScalePolicy | None = Field(None, description="the metric and its target (or "
                                       "target_outstanding, the queue-length shorthand)")
    target_outstanding: PositiveFloat | None = Field(
        None, description="shorthand of policy {metric: queue_length, target: this, "
                          "tolerance: 0}: requests in the system (waiting and running) per "
                          "serving replica")
    interval_s: Seconds = Field(HPA_SYNC_PERIOD_S, description="how often it decides "
                                "(default 15 s, the Kubernetes HPA sync period)")
    provision_s: NonNegativeSeconds = Field(
        0.0, description="from the decision to the replica loading its weights: a node and "
                         "container starting (default 0: a warm node)")
    storage_bandwidth: Bandwidth = Field(
        NVME_READ_BYTES_PER_S, description="bytes/s one replica reads its weights at "
                                           "(default 6.9 GB/s, one Gen4 NVMe SSD; estimate)")
    scale_down_delay_s: NonNegativeSeconds = Field(
        HPA_DOWNSCALE_WINDOW_S, description="how long the desired count must stay lower "
                                            "before replicas leave (default 300 s, the HPA's "
                                            "stabilization window)")
    report_bin_s: Seconds | None = Field(
        None, description="the width of the cost-over-time bins (default: the roundest of "
                          "1, 5, 15, 30 min, 1, 2, 3, 6, 12 h, 1 d giving at most 36 bins)")

    @model_validator(mode="after")
    def _one_policy(self) -> Autoscaling:
        if self.policy is None and self.target_outstanding is None:
            raise ValueError("autoscaling needs a policy ({metric: queue_length | "
                             "kv_utilization | batch_utilization | slo_attainment, target: "
                             "...}) or target_outstanding")
        if self.policy is not None and self.target_outstanding is not None:
            raise ValueError("autoscaling takes policy or target_outstanding (its "
                             "queue-length shorthand), not both")
        return self

    @property
    def rule(self) -> ScalePolicy:
        """The policy, the shorthand spelled out."""
        if self.policy is not None:
            return self.policy
        assert self.target_outstanding is not None
        return ScalePolicy(metric=ScaleMetric.QUEUE_LENGTH, target=self.target_outstanding,
                           tolerance=0.0)
