"""How a service's replicas are laid out: one replica's layout (``InferenceParallelism``)
and mixed fleets (``workload.pools``), one service on replicas of different hardware.

A pool is ``replicas`` replicas of one layout on one hardware profile (default: the
scenario's ``hardware``). All pools serve every request behind one router; each is priced
with its own hardware (iteration costs, KV capacity, power, price). Pools replace
``workload.replicas`` and ``workload.parallelism`` and exclude disaggregation; the cluster
is the pools' accelerators exactly (``cluster.accelerators: auto`` or their sum), since
idle accelerators of an unnamed kind could not be priced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from simulator.errors import UnknownProfile
from simulator.profiles.catalog import load_hardware
from simulator.profiles.hardware import HardwareProfile
from simulator.profiles.numbers import SPEC_CONFIG, PositiveInt


class InferenceParallelism(BaseModel):
    """The layout of one model replica."""

    model_config = SPEC_CONFIG

    tp: PositiveInt = Field(1, description="tensor parallel size of the attention (of each "
                                           "attention DP rank)")
    pp: PositiveInt = 1
    ep: PositiveInt = Field(1, description="expert parallel size within a replica: divides "
                                           "the attention_dp x tp devices of a stage, each "
                                           "expert split over attention_dp*tp/ep of them")
    attention_dp: PositiveInt = Field(
        1, description="attention data-parallel ranks per replica (MoE models): each runs "
                       "the attention for its own requests, with its own KV cache and batch "
                       "on tp devices; the MoE layers run EP over all of them "
                       "(docs/serving.md, wide expert parallelism)")

    @property
    def devices(self) -> int:
        """Accelerators one replica occupies (attention_dp x tp x pp; experts are spread
        within it)."""
        return self.attention_dp * self.tp * self.pp

    @property
    def stage_devices(self) -> int:
        """Devices of one pipeline stage: the attention DP ranks' TP groups, which the EP
        group of that stage's experts spans."""
        return self.attention_dp * self.tp


class ServingPool(BaseModel):
    """Replicas of one layout on one hardware profile, in a mixed fleet."""

    model_config = SPEC_CONFIG

    hardware: HardwareProfile | None = Field(
        None, description="built-in profile id, a path (relative to the scenario file) or an "
                          "inline mapping; default: the scenario's hardware")
    replicas: PositiveInt = Field(description="model replicas in this pool")
    parallelism: InferenceParallelism = Field(
        InferenceParallelism(), description="layout of one replica of this pool")

    @field_validator("hardware", mode="before")
    @classmethod
    def _resolve_hardware(cls, value: Any, info: ValidationInfo) -> Any:
        """A profile id or path is loaded here, so the pool holds the whole profile."""
        if isinstance(value, str):
            base = (info.context or {}).get("base_dir")
            try:
                return load_hardware(value, Path(base) if base else None)
            except UnknownProfile as exc:
                raise ValueError(exc.message) from None
        return value


def pool_devices(pool: dict[str, Any]) -> int | None:
    """Accelerators of a raw pool mapping (replicas x attention_dp x tp x pp), or None when a
    count is missing or not a positive integer (validation reports it)."""
    par = pool.get("parallelism") or {}
    if not isinstance(par, dict):
        return None
    total = pool.get("replicas")
    for value in (par.get(k, 1) for k in ("attention_dp", "tp", "pp")):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            return None
        total = total * value if isinstance(total, int) else None
    if not isinstance(total, int) or isinstance(pool.get("replicas"), bool) or total < 1:
        return None
    return total


def pools_size(pools: Any) -> int | str:
    """The accelerators of raw ``workload.pools``, or why they cannot be counted."""
    if not isinstance(pools, list) or not pools:
        return "auto needs workload.pools to be a non-empty list of pools"
    total = 0
    for i, pool in enumerate(pools):
        size = pool_devices(pool) if isinstance(pool, dict) else None
        if size is None:
            return (f"auto needs workload.pools[{i}].replicas (a positive count) and a valid "
                    f"layout to size the cluster")
        total += size
    return total


def default_hardware(data: Any) -> Any:
    """A raw scenario without ``hardware`` whose first pool names one takes it as the
    scenario's (the fleet's first kind): a mixed fleet need not name its hardware twice."""
    if not isinstance(data, dict) or "hardware" in data:
        return data
    workload = data.get("workload")
    pools = workload.get("pools") if isinstance(workload, dict) else None
    if isinstance(pools, list) and pools and isinstance(pools[0], dict) \
            and pools[0].get("hardware") is not None:
        return {**data, "hardware": pools[0]["hardware"]}
    return data
