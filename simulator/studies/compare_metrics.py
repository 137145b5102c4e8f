"""The figures a comparison shows, by workload kind and mode, and which way is better.

Fixed-load serving and training compare a run's own figures; the default serving mode
(*best within the SLO*, :mod:`simulator.studies.compare_best`) compares goodput and cost per
token at each profile's highest sustainable rate, then the fleet that carries the load.
"""

from __future__ import annotations

from dataclasses import dataclass

BEST, FIXED_LOAD, FIXED_WORK = "best", "fixed_load", "fixed_work"


@dataclass(frozen=True, kw_only=True)
class Metric:
    """A compared figure: its key in rows, a label and unit for tables, which way is better
    (``higher``, ``lower`` or ``neither``), and whether the ratio plot shows it."""

    key: str
    label: str
    unit: str
    better: str
    headline: bool = True


# How far to trust the row's figures (Result.confidence): the median |error| of its regime
# on held-out published measurements; extrapolation goes into the row's notes.
EXPECTED_ERROR = Metric(key="expected_error", label="expected error (throughput, cost)",
                        unit="fraction", better="lower", headline=False)
# The run's economics, shown alike for serving at a fixed load and for training.
COST_PER_MILLION_TOKENS = Metric(key="cost_per_million_tokens_usd",
                                 label="cost per million tokens", unit="USD", better="lower")
ENERGY_PER_TOKEN = Metric(key="energy_per_token_j", label="energy per token", unit="J",
                          better="lower")
FACILITY_POWER = Metric(key="average_power_w", label="facility power", unit="W",
                        better="neither", headline=False)
RUN_COST = Metric(key="cost_usd", label="cost of the run", unit="USD", better="lower")
INFERENCE_METRICS = (
    Metric(key="output_tokens_per_s", label="throughput", unit="output tokens/s", better="higher"),
    Metric(key="output_tokens_per_s_per_accelerator", label="throughput per accelerator",
           unit="output tokens/s", better="higher"),
    Metric(key="requests_per_s", label="requests", unit="req/s", better="higher", headline=False),
    Metric(key="ttft_p50_s", label="TTFT p50", unit="s", better="lower", headline=False),
    Metric(key="ttft_p99_s", label="TTFT p99", unit="s", better="lower"),
    Metric(key="tpot_p50_s", label="TPOT p50", unit="s", better="lower"),
    Metric(key="tpot_p99_s", label="TPOT p99", unit="s", better="lower"),
    Metric(key="slo_attainment", label="SLO attainment",
           unit="fraction", better="higher", headline=False),
    Metric(key="utilization", label="compute utilization", unit="fraction", better="higher"),
    COST_PER_MILLION_TOKENS,
    ENERGY_PER_TOKEN,
    FACILITY_POWER,
    RUN_COST,
    EXPECTED_ERROR,
)
TRAINING_METRICS = (
    Metric(key="tokens_per_s", label="throughput", unit="tokens/s", better="higher"),
    Metric(key="tokens_per_s_per_accelerator", label="throughput per accelerator",
           unit="tokens/s", better="higher"),
    Metric(key="step_time_s", label="step time", unit="s", better="lower"),
    Metric(key="mfu", label="MFU", unit="fraction", better="higher"),
    Metric(key="utilization", label="compute utilization",
           unit="fraction", better="higher", headline=False),
    COST_PER_MILLION_TOKENS,
    ENERGY_PER_TOKEN,
    FACILITY_POWER,
    Metric(key="wall_time_s", label="time to train (with failures)", unit="s", better="lower"),
    RUN_COST,
    EXPECTED_ERROR,
)


BEST_METRICS = (
    Metric(key="goodput_tokens_per_s_per_accelerator", label="goodput per accelerator "
           "within the SLO", unit="output tokens/s", better="higher"),
    Metric(key="sustainable_rate_per_replica_per_s", label="sustainable rate per replica",
           unit="req/s", better="higher", headline=False),
    Metric(key="cost_per_million_tokens_at_slo_usd", label="cost per million tokens within "
           "the SLO", unit="USD", better="lower"),
    Metric(key="replicas", label="fleet for the load", unit="replicas", better="neither",
           headline=False),
    Metric(key="billed_accelerators", label="fleet for the load, whole units",
           unit="accelerators billed", better="neither", headline=False),
    Metric(key="usd_per_hour", label="fleet cost per hour", unit="USD", better="lower"),
    Metric(key="ttft_p99_s", label="TTFT p99 at the load", unit="s", better="lower",
           headline=False),
    Metric(key="tpot_p99_s", label="TPOT p99 at the load", unit="s", better="lower",
           headline=False),
    Metric(key="cost_per_million_tokens_usd", label="cost per million tokens at the load",
           unit="USD", better="lower"),
    Metric(key="utilization", label="compute utilization at the load", unit="fraction",
           better="neither", headline=False),
    Metric(key="energy_per_token_j", label="energy per token at the load", unit="J",
           better="lower", headline=False),
    EXPECTED_ERROR,
)


def metrics_for(kind: str, mode: str = FIXED_LOAD) -> tuple[Metric, ...]:
    """The figures a comparison of ``kind`` (training or inference) in ``mode`` shows, in
    table order."""
    if kind == "training":
        return TRAINING_METRICS
    return BEST_METRICS if mode == BEST else INFERENCE_METRICS
