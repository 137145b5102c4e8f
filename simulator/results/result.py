"""The result of one scenario. Every field is a plain number in SI units (or a string).

Field names are a contract with users' scripts: add, never rename. docs/results.md is the
reference, generated from these models.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from simulator.results.confidence import Confidence
from simulator.results.inference import InferenceMetrics, RequestRecords
from simulator.results.steady import SteadyState
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
        description="training: the model FLOPs of one trained token, as the MFU counts "
                    "them (6 per active parameter in a matrix multiply, the attention "
                    "scores, any trained MTP modules); inference: 2·N_active per generated "
                    "token, without the attention term")
    ideal_tokens_per_s: float = Field(
        description="cluster peak / model FLOPs per token: an upper bound no real run "
                    "reaches (training: tokens/s = this x mfu)")


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
    steady: SteadyState | None = Field(
        None, description="serving runs only: the figures over the steady window (warm-up "
                          "and drain left out), which plan, compare, sweep and the headline "
                          "use")
    requests: RequestRecords | None = Field(
        None, exclude=True, repr=False,
        description="serving runs only: one record per request (not in the JSON; "
                    "requests.csv of --out)")
    confidence: Confidence | None = Field(
        None, description="the expected error of this result's regime on published "
                          "measurements, and whether it extrapolates beyond them")
    warnings: list[str] = Field(default_factory=list, description="e.g. idle accelerators")
    notes: list[str] = Field(default_factory=list)

    def steady_view(self) -> Result:
        """This result with its steady figures in place of the whole run's, under the same
        names (a serving run; any other result is returned as it is): what ``plan``,
        ``compare``, ``sweep`` and the headline read. ``time_s`` becomes the window's
        duration, the cost, energy, utilization, throughputs and latencies the window's."""
        s = self.steady
        if s is None or self.inference is None:
            return self
        inference = self.inference.model_copy(update=dict(
            requests=s.requests.completed_in_window, duration_s=s.duration_s,
            requests_per_s=s.requests_per_s, output_tokens_per_s=s.output_tokens_per_s,
            total_tokens_per_s=s.total_tokens_per_s, ttft_s=s.ttft_s, tpot_s=s.tpot_s,
            e2e_s=s.e2e_s, queue_s=s.queue_s, slo_attainment=s.slo_attainment, slo=s.slo,
            goodput_requests_per_s=s.goodput_requests_per_s, activity=s.activity))
        return self.model_copy(update=dict(
            time_s=s.duration_s, utilization=s.utilization, cost_usd=s.cost_usd,
            energy_kwh=s.energy_kwh, average_power_w=s.average_power_w,
            carbon_kg=s.carbon_kg, cost_per_million_tokens_usd=s.cost_per_million_tokens_usd,
            tokens_per_kwh=s.tokens_per_kwh, inference=inference))
