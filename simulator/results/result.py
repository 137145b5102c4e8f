"""The result of one scenario. Every field is a plain number in SI units (or a string).

Field names are a contract with users' scripts: add, never rename. See docs/results.md.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MemoryReport(BaseModel):
    """Per-device memory of the most loaded device, by consumer."""

    model_config = ConfigDict(frozen=True)

    parts_bytes: dict[str, float]
    total_bytes: float
    capacity_bytes: float
    fits: bool
    biggest: str
    verdict: str
    notes: list[str] = Field(default_factory=list)


class PeakReport(BaseModel):
    """Peak figures of the fleet at the workload's precision (no efficiency applied)."""

    model_config = ConfigDict(frozen=True)

    flops_per_accelerator: float
    flops_cluster: float
    hbm_bandwidth_per_accelerator: float
    model_flops_per_token: float = Field(
        description="6·N_active per trained token (training) or 2·N_active per generated "
                    "token (inference), without the attention term")
    ideal_tokens_per_s: float = Field(
        description="cluster peak / model FLOPs per token: an upper bound no real run reaches")


class Result(BaseModel):
    model_config = ConfigDict(frozen=True)

    scenario: str
    hardware: str
    model: str
    accelerators: int
    kind: str
    precision: str
    seed: int
    time_s: float | None = Field(
        None, description="simulated wall time (training: to train; inference: duration); "
                          "null until the engine for this workload kind exists")
    memory: MemoryReport
    peak: PeakReport
    warnings: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
