"""The steady window of a serving run: JSON key ``steady`` of a serving result.

A serving run starts with an empty fleet (warm-up) and ends emptying it after the last
arrival (drain). Averages over the whole run mix both transients into the figures, so
they depend on how many requests were simulated. The steady figures are the same figures
over a window that leaves both out; docs/serving.md ("The steady window") defines the window
and every figure. The whole-run figures stay where they were (``inference``, and the
top-level cost and energy fields). Plain SI numbers; field names are a contract: add, never
rename.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from simulator.results.inference import ActivityFractions, Percentiles, SLOTarget
from simulator.results.utilization import Utilization

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class WindowRequests(BaseModel):
    """Every request of the run, placed against the window: by when it arrived, and by how
    it ended (completed before, in or after the window, dropped, or unfinished). Each
    group of three adds up to the run's arrivals."""

    model_config = _FROZEN

    arrived_before: int
    arrived_in_window: int
    arrived_after: int
    completed_before: int
    completed_in_window: int
    completed_after: int
    dropped: int = Field(description="rejected on arrival (the whole run)")
    unfinished: int = Field(description="neither completed nor dropped (the whole run)")
    measured: int = Field(description="arrived in the window and completed: the latency "
                                      "sample")


class SteadyWindow(BaseModel):
    """The serving figures over the steady window, as the engine measures them."""

    model_config = _FROZEN

    found: bool = Field(description="false when the run is too short for a steady window: "
                                    "every figure is then the whole run's")
    basis: str = Field(description="how the window was chosen, or why there is none")
    start_s: float = Field(description="window start, seconds from t = 0")
    end_s: float = Field(description="window end, seconds from t = 0")
    duration_s: float = Field(description="end_s - start_s")
    requests: WindowRequests
    output_tokens: float = Field(description="output tokens produced in the window")
    prompt_tokens: float = Field(description="prompt tokens prefilled in the window, for "
                                             "the first time (recomputation not counted)")
    requests_per_s: float = Field(description="requests completed in the window / duration")
    output_tokens_per_s: float = Field(description="output_tokens / duration")
    total_tokens_per_s: float = Field(description="(prompt_tokens + output_tokens) / duration")
    ttft_s: Percentiles = Field(description="requests that arrived in the window")
    tpot_s: Percentiles
    e2e_s: Percentiles
    queue_s: Percentiles
    slo_attainment: float | None = Field(
        description="of the requests that arrived in the window, the fraction meeting every "
                    "SLO target (dropped ones fail)")
    slo: dict[str, SLOTarget] = Field(default_factory=dict,
                                      description="each target at the SLO's percentile, "
                                                  "over the requests that arrived in the "
                                                  "window")
    goodput_requests_per_s: float | None = Field(
        description="requests that arrived in the window and met every target / duration")
    utilization: Utilization
    activity: ActivityFractions


class SteadyState(SteadyWindow):
    """The steady window with its cost and energy: the figures ``plan``, ``compare``,
    ``sweep`` and the headline use."""

    energy_kwh: float = Field(description="facility energy over the window: the integral of "
                                          "the fleet's power from start_s to end_s")
    average_power_w: float = Field(description="energy_kwh / duration_s, in watts")
    cost_usd: float = Field(description="the window's cost under the scenario's cost block")
    usd_per_hour: float = Field(description="cost_usd / duration_s, per hour")
    carbon_kg: float
    cost_per_million_tokens_usd: float = Field(
        description="cost_usd per million tokens produced in the window (input weighted "
                    "by cost.input_token_weight)")
    tokens_per_kwh: float = Field(description="(prompt + output tokens) / energy_kwh")
