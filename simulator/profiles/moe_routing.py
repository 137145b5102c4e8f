"""The `workload.moe` block: how evenly a mixture-of-experts router loads the EP ranks.

Shared by training and serving workloads; the physics (what a load balancer leaves of the
routing's imbalance, by EP size) is in :mod:`simulator.perf.moe_balance`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from annotated_types import Ge, Le
from pydantic import BaseModel, Field, model_validator

from simulator.profiles.numbers import SPEC_CONFIG, NonNegativeInt, NotBool, PositiveInt

MAX_IMBALANCE = 64.0  # every token on one of 64 ranks; above that is a typo

Imbalance = Annotated[float, NotBool, Ge(1.0), Le(MAX_IMBALANCE)]


class LoadBalancer(StrEnum):
    """What evens out the tokens each EP rank's experts receive."""

    NONE = "none"  # the router's own imbalance (trained with a balancing loss or bias)
    EPLB = "eplb"  # expert-parallel load balancer: hot experts replicated, placement by load
    FORCED = "forced"  # routing forced to perfect balance (benchmark runs)


class Dispatcher(StrEnum):
    """How the expert all-to-all crosses the network between scale-up domains."""

    ALLTOALL = "alltoall"  # every (token, expert) copy sent on its own (NCCL all-to-all)
    DEEPEP = "deepep"  # once per destination domain, then forwarded inside it (DeepEP)


class MoeRouting(BaseModel):
    """Expert load balance of a MoE workload (ignored for dense models and at ep = 1)."""

    model_config = SPEC_CONFIG

    load_balancer: LoadBalancer | None = Field(
        None, description="none: the router's measured imbalance; eplb: redundant experts "
                          "placed by load; forced: perfectly balanced routing. Default: "
                          "forced for training, none for serving")
    dispatcher: Dispatcher = Field(
        Dispatcher.ALLTOALL, description="training: alltoall sends every token copy on its "
        "own; deepep sends a token once to each remote scale-up domain (node) and forwards "
        "it there (DeepSeek-V3 sec. 3.2.2)")
    max_domains_per_token: PositiveInt | None = Field(
        None, description="node-limited routing: scale-up domains (nodes) one token's experts "
                          "may span (DeepSeek-V3: 4); needs dispatcher: deepep")
    redundant_experts: NonNegativeInt = Field(
        0, description="serving: extra expert slots holding replicas of hot experts (EPLB), "
                       "spread over the EP ranks with the experts; experts + "
                       "redundant_experts must divide by ep (DeepSeek-R1 EP72: 32, 288 "
                       "slots)")
    imbalance: Imbalance | None = Field(
        None, description="busiest EP rank's token-expert assignments / the mean (>= 1); "
                    "overrides load_balancer")

    @model_validator(mode="after")
    def _limit_needs_deepep(self) -> MoeRouting:
        if self.max_domains_per_token is not None and self.dispatcher is not Dispatcher.DEEPEP:
            raise ValueError("max_domains_per_token needs dispatcher: deepep (an NCCL "
                             "all-to-all sends every copy on its own)")
        return self
