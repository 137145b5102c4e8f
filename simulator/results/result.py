"""The result of one scenario. Every field is a plain number in SI units (or a string).

Field names are a contract with users' scripts: add, never rename. docs/results.md is the
reference, generated from these models.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from simulator.results.confidence import Confidence
from simulator.results.inference import InferenceMetrics, RequestRecords
from simulator.results.training import TrainingResult
from simulator.results.utilization import Utilization


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


class CostSummary(BaseModel):
    """How the cost was reckoned (the totals are top-level fields of the result)."""

    model_config = ConfigDict(frozen=True)

    mode: str
    breakdown_usd: dict[str, float]
    usd_per_accelerator_hour: float = Field(
        description="cost_usd / (billed_accelerators x hours)")
    billing: str = Field("fleet", description="which accelerators are paid for: `fleet` "
                                              "(cluster.accelerators, whole units where the "
                                              "part is sold or rented only so; `xpusim run`) "
                                              "or `used` (the whole units the layout needs; "
                                              "plan, compare, sweep)")
    billed_accelerators: int = Field(0, description="accelerators paid for")
    used_accelerators: int = Field(0, description="accelerators a replica or rank runs on")
    purchase_units: int = Field(0, description="whole purchase units billed (servers, racks, "
                                               "slices); 0 where billed per accelerator")
    purchase_unit: str = Field("", description="the hardware profile's purchase unit, e.g. "
                                               "'NVL72 rack'")


class Result(BaseModel):
    """What ``simulate`` returns for one scenario: the JSON of ``xpusim run --format json``,
    and for a serving run its per-request records (``requests``, left out of the JSON)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    scenario: str = Field(description="the scenario's name")
    hardware: str = Field(description="hardware profile id")
    model: str = Field(description="model profile id")
    accelerators: int = Field(description="cluster.accelerators")
    kind: str = Field(description="training or inference")
    precision: str = Field(description="workload.precision")
    seed: int
    time_s: float = Field(description="simulated wall time: to train (with failures) or the "
                                      "serving run's duration")
    utilization: Utilization
    cost_usd: float = Field(description="the run's cost under the scenario's `cost` block")
    energy_kwh: float = Field(description="facility energy (PUE included)")
    average_power_w: float = Field(description="facility power of the fleet, run average")
    carbon_kg: float = Field(description="energy_kwh x cost.carbon_kg_per_kwh")
    cost_per_million_tokens_usd: float = Field(
        description="training: per million trained tokens; inference: per million tokens, "
                    "input weighted by cost.input_token_weight (1 = blended)")
    tokens_per_kwh: float = Field(description="tokens (trained, or prompt + output) per kWh")
    cost: CostSummary
    memory: MemoryReport
    peak: PeakReport
    training: TrainingResult | None = Field(None, description="training runs only")
    inference: InferenceMetrics | None = Field(None, description="serving runs only")
    requests: RequestRecords | None = Field(
        None, exclude=True, repr=False,
        description="serving runs only: one record per request (not in the JSON; "
                    "requests.csv of --out)")
    confidence: Confidence | None = Field(
        None, description="the expected error of this result's regime on published "
                          "measurements, and whether it extrapolates beyond them")
    warnings: list[str] = Field(default_factory=list, description="e.g. idle accelerators")
    notes: list[str] = Field(default_factory=list)
