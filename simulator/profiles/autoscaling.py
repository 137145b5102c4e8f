"""`workload.autoscaling`: replicas that follow the load, between a floor and the pool.

``workload.replicas`` is the most the deployment may run (the accelerators it may take);
``min_replicas`` serve from the start. Every ``interval_s`` the autoscaler sets its desired
count to the requests in the system (waiting and running) over ``target_outstanding``,
rounded up, within [``min_replicas``, ``replicas``]: the concurrency target of Knative's
autoscaler, the queue-length policy of a Kubernetes HPA on a custom metric. A replica
started serves after ``provision_s`` (a node and its container starting) plus the time to
read its weights at ``storage_bandwidth``. Scaling down waits until the desired count has
stayed lower for ``scale_down_delay_s`` (the HPA's stabilization window); a replica
leaving takes no new requests and is released when its last one ends (it drains).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from simulator.profiles.numbers import SPEC_CONFIG, PositiveFloat, PositiveInt
from simulator.profiles.quantities import Bandwidth, NonNegativeSeconds, Seconds

# Kubernetes HPA defaults (kubernetes.io, "Horizontal Pod Autoscaling"): the controller
# decides every 15 s (--horizontal-pod-autoscaler-sync-period) and scales down after a
# 300 s stabilization window (behavior.scaleDown.stabilizationWindowSeconds).
HPA_SYNC_PERIOD_S = 15.0
HPA_DOWNSCALE_WINDOW_S = 300.0
# One PCIe Gen4 NVMe data-centre SSD's sequential read (Samsung PM9A3 datasheet: 6.9 GB/s),
# estimate: a replica reading its weights from local NVMe; network storage is slower.
NVME_READ_BYTES_PER_S = 6.9e9


class Autoscaling(BaseModel):
    """The autoscaling policy of a serving pool (docs/serving.md, autoscaling)."""

    model_config = SPEC_CONFIG

    min_replicas: PositiveInt = Field(1, description="replicas always serving (and at t = 0)")
    target_outstanding: PositiveFloat = Field(
        description="requests in the system (waiting and running) per serving replica the "
                    "policy aims at")
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
