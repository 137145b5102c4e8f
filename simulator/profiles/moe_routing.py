"""The `workload.moe` block: how evenly a mixture-of-experts router loads the EP ranks.

Shared by training and serving workloads; the physics (what a load balancer leaves of the
routing's imbalance, by EP size) is in :mod:`simulator.perf.moe_balance`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from annotated_types import Ge, Le
from pydantic import BaseModel, Field

from simulator.profiles.numbers import SPEC_CONFIG, NotBool

MAX_IMBALANCE = 64.0  # every token on one of 64 ranks; above that is a typo

Imbalance = Annotated[float, NotBool, Ge(1.0), Le(MAX_IMBALANCE)]


class LoadBalancer(StrEnum):
    """What evens out the tokens each EP rank's experts receive."""

    NONE = "none"  # the router's own imbalance (trained with a balancing loss or bias)
    EPLB = "eplb"  # expert-parallel load balancer: hot experts replicated, placement by load
    FORCED = "forced"  # routing forced to perfect balance (benchmark runs)


class MoeRouting(BaseModel):
    """Expert load balance of a MoE workload (ignored for dense models and at ep = 1)."""

    model_config = SPEC_CONFIG

    load_balancer: LoadBalancer | None = Field(
        None, description="none: the router's measured imbalance; eplb: redundant experts "
                          "placed by load; forced: perfectly balanced routing. Default: "
                          "forced for training, none for serving")
    imbalance: Imbalance | None = Field(
        None, description="busiest EP rank's token-expert assignments / the mean (>= 1); "
                    "overrides load_balancer")
