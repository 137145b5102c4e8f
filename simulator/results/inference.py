"""The result of a serving scenario: JSON key ``inference``, plus ``time_s`` and ``utilization``;
and its per-request records (:class:`RequestRecords`, not part of the JSON).

Every number is in SI units (seconds, tokens, fractions). Latency statistics cover the
completed requests after the first ``warmup_requests``; throughputs cover the whole run.
Definitions, with formulas, are in docs/serving.md; field names are a contract with users'
scripts: add, never rename.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from simulator.results.autoscaling import AutoscalingMetrics
from simulator.results.pools import PoolSummary
from simulator.results.shared_training import SharedTrainingMetrics
from simulator.results.utilization import Utilization

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class Percentiles(BaseModel):
    """Mean and percentiles (linear interpolation between order statistics); null when no
    request contributes."""

    model_config = _FROZEN

    mean: float | None
    p50: float | None
    p90: float | None
    p99: float | None


class MeanMax(BaseModel):
    """A mean (time- or iteration-weighted, as the field says) and the largest value."""

    model_config = _FROZEN

    mean: float
    max: float


class ActivityFractions(BaseModel):
    """Fractions of the run the accelerators spend in kernels, averaged over the cluster:
    ``busy`` running iterations' kernels and collectives (not waiting on the serving
    stack's host work within them), ``compute_bound`` and
    ``memory_bound`` in kernels limited by compute and by HBM (the inputs of the power
    model)."""

    model_config = _FROZEN

    busy: float
    compute_bound: float
    memory_bound: float


class SLOTarget(BaseModel):
    """One latency target: the value at the SLO's percentile among completed requests, and
    whether it is met: at least ``percentile`` % of requests (dropped ones failing) are
    within the target."""

    model_config = _FROZEN

    target_s: float
    percentile: float
    value_s: float | None
    met: bool
    attainment: float = Field(description="fraction of requests within the target")


class LittleLaw(BaseModel):
    """L (time-average requests in the system, from the engine's events) against λ·W (arrival
    rate x mean time in system, from the per-request records)."""

    model_config = _FROZEN

    mean_in_system: float
    arrival_rate_x_mean_time: float
    relative_error: float


class ReplicaSummary(BaseModel):
    """One replica's share of the run."""

    model_config = _FROZEN

    index: int
    role: str = Field(description="mixed, prefill or decode")
    hardware: str = Field("", description="the replica's hardware profile id (a mixed fleet's "
                                          "pools differ)")
    devices: int
    requests: int = Field(description="requests that finished here (or were handed off, "
                                      "for a prefill replica)")
    output_tokens: int
    prompt_tokens: int = Field(description="prompt tokens prefilled (recomputation included)")
    iterations: int
    busy: float = Field(description="fraction of the run spent in iterations")
    batch_size: MeanMax
    kv_cache_utilization: MeanMax
    kv_cache_tokens: int = Field(description="KV-cache capacity of the replica, tokens")
    preemptions: int


class TimeSeries(BaseModel):
    """The run in ``bin_s``-wide bins starting at t = 0 (``t_s`` is each bin's start)."""

    model_config = _FROZEN

    bin_s: float
    t_s: list[float]
    requests_per_s: list[float] = Field(description="completions per second")
    arrivals_per_s: list[float] = Field(
        default_factory=list, description="requests arriving per second, dropped ones "
                                          "included: the offered load")
    output_tokens_per_s: list[float]
    prompt_tokens_per_s: list[float] = Field(
        default_factory=list, description="prompt tokens prefilled for the first time "
                                          "(recomputation after a preemption not counted)")
    queue_length: list[float] = Field(description="time-average requests waiting for their "
                                                  "first admission")
    in_system: list[float] = Field(description="time-average requests arrived and not "
                                               "finished")
    kv_cache_utilization: list[float] = Field(description="time-average, over replicas")
    batch_size: list[float] = Field(description="time-average sequences per iteration, over "
                                                "busy replicas")


class BatchHistogram(BaseModel):
    """Iterations run at each batch size (sizes with none are left out)."""

    model_config = _FROZEN

    sizes: list[int]
    iterations: list[int]


class SpeculativeMetrics(BaseModel):
    """Speculative decoding (``workload.speculative``): the setting, and the tokens a verify
    step yields per sequence, expected and as drawn in the run."""

    model_config = _FROZEN

    method: str = Field(description="draft_model, eagle or mtp")
    draft_tokens: int = Field(description="k: drafts proposed per step")
    draft_model: str | None = Field(description="the draft model's id (method draft_model)")
    acceptance: list[float] = Field(description="acceptance of each draft position, given "
                                                "the ones before it were accepted")
    expected_tokens_per_step: float = Field(
        description="E = 1 + sum_i prod_{j<=i} a_j: tokens per sequence a step yields on "
                    "average (the accepted drafts and the target's own token)")
    tokens_per_step: float | None = Field(
        description="decode tokens / verify steps over the requests' drawn step counts (the "
                    "last step of a request is cut at its length, so a little below E)")
    verify_steps: int = Field(description="verify steps the requests drew, summed")
    break_even_batch: int | None = Field(
        description="the smallest decode batch (up to max_batch_size) at which a speculative "
                    "step per expected token takes at least a plain decode step's time, on "
                    "the replicas that decode, every sequence at break_even_context tokens: "
                    "beyond it speculation slows decoding; null if it pays up to the limit")
    break_even_context: int = Field(
        description="context per sequence the break-even is priced at: mean prompt + half "
                    "the mean output")


class PrefixCacheMetrics(BaseModel):
    """What the prefix caches of the replicas that prefill saved (batching.prefix_caching)."""

    model_config = _FROZEN

    hit_rate: float = Field(description="blocks found in the cache / blocks looked up: the full "
                                        "KV blocks of each prefill's first target - 1 tokens "
                                        "(the last prompt token is always computed)")
    token_hit_rate: float = Field(description="prompt tokens taken from the cache / prompt "
                                              "tokens to prefill (recomputations included)")
    cached_tokens: int = Field(description="prompt tokens not computed: their K/V was cached")
    prompt_tokens: int = Field(description="prompt tokens of every prefill (recomputations "
                                           "after a preemption included)")
    lookup_blocks: int
    hit_blocks: int
    evicted_blocks: int = Field(description="free cached blocks evicted (least recently used "
                                            "first) to make room")


class InferenceMetrics(BaseModel):
    """The ``inference`` key of a serving result."""

    model_config = _FROZEN

    requests: int = Field(description="requests completed")
    arrived: int
    dropped: int = Field(description="requests rejected on arrival: longer than the model's "
                                     "context or than a replica's whole KV cache")
    unfinished: int = Field(description="arrived, neither completed nor dropped (0 unless the "
                                        "run was cut short)")
    duration_s: float = Field(description="first arrival to last completion")
    requests_per_s: float
    output_tokens_per_s: float
    total_tokens_per_s: float = Field(description="(prompt + output tokens) / duration")
    ttft_s: Percentiles
    tpot_s: Percentiles = Field(description="(last token - first token) / (output - 1), "
                                            "requests with more than one output token")
    e2e_s: Percentiles
    queue_s: Percentiles = Field(description="arrival to first admission")
    slo_attainment: float | None = Field(
        description="fraction of requests meeting every SLO target set (dropped ones fail)")
    slo: dict[str, SLOTarget] = Field(default_factory=dict,
                                      description="each target at the SLO's percentile")
    goodput_requests_per_s: float | None
    kv_cache_utilization: MeanMax = Field(description="blocks in use / capacity: time-weighted "
                                                      "mean over the run, and the peak")
    batch_size: MeanMax = Field(description="sequences per iteration: mean over iterations, "
                                            "and the largest")
    preemptions: int
    iterations: int
    engine_steps: int = Field(description="events the engine priced: iterations with prompt "
                                          "chunks, and runs of decode-only iterations jumped "
                                          "through at once; the simulation's cost "
                                          "(iterations / engine_steps = mean jump)")
    activity: ActivityFractions
    cpu_overhead_fraction: float = Field(
        0.0, description="of the time replicas spend running iterations, the share the "
                         "serving stack adds to the kernels' time: host (CPU) work in series "
                         "with the device, host work longer than the device step it overlaps, "
                         "and eager kernel launches slower than the kernels (workload.engine; "
                         "0 with the ideal stack)")
    autoscaling: AutoscalingMetrics | None = Field(
        None, description="the replicas over time and their billing; null without "
                          "workload.autoscaling")
    shared_training: SharedTrainingMetrics | None = Field(
        None, description="the training job filling the autoscaled fleet's troughs: its "
                          "progress, resizes and losses against a static split; null without "
                          "workload.shared_training")
    prefix_cache: PrefixCacheMetrics | None = Field(
        None, description="prefix caching's hits and evictions; null without "
                          "batching.prefix_caching")
    little_law: LittleLaw
    per_replica: list[ReplicaSummary]
    pools: list[PoolSummary] = Field(
        default_factory=list, description="a mixed fleet's pools (workload.pools), one entry "
                                          "each with its cost; empty for one hardware")
    time_series: TimeSeries
    batch_size_histogram: BatchHistogram
    speculative: SpeculativeMetrics | None = Field(
        None, description="speculative decoding: null when workload.speculative is not set")


class InferenceResult(BaseModel):
    """A serving run: ``inference`` metrics, the simulated ``time_s`` and ``utilization``."""

    model_config = _FROZEN

    inference: InferenceMetrics
    time_s: float = Field(description="simulated duration: first arrival to last completion")
    utilization: Utilization


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class RequestRecords:
    """One record per request of a serving run, as read-only numpy columns in arrival order.

    Too many for the JSON result (a run can have millions); ``--out`` writes them as
    ``requests.csv``. Times are seconds, NaN where the request never got there (a dropped
    request has no first token, a request that is not handed off no transfer). docs/serving.md
    defines each column.
    """

    request: np.ndarray  # its number: 0, 1, ... in arrival order (sessions: turn by turn)
    status: np.ndarray  # "completed", "dropped" or "unfinished"
    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    replica: np.ndarray  # of the first pool; -1 if dropped
    decode_replica: np.ndarray  # disaggregated: the decode replica; else -1
    queue_s: np.ndarray  # arrival to first admission
    ttft_s: np.ndarray  # arrival to first token
    tpot_s: np.ndarray  # (finish - first token) / (output tokens - 1); NaN for one token
    e2e_s: np.ndarray  # arrival to last token
    transfer_s: np.ndarray  # KV-cache transfer (disaggregated)
    first_token_s: np.ndarray  # from the start of the run
    finish_s: np.ndarray  # from the start of the run
    preemptions: np.ndarray
    cached_tokens: np.ndarray  # prompt tokens taken from the prefix cache (first admission)

    def __post_init__(self) -> None:
        n = len(self.request)
        for f in fields(self):
            column = getattr(self, f.name)
            if len(column) != n:
                raise ValueError(f"records: {f.name} has {len(column)} rows, request has {n}")
            column.flags.writeable = False

    def __len__(self) -> int:
        return len(self.request)

    def columns(self) -> dict[str, np.ndarray]:
        """The columns by name, in the order above (that of ``requests.csv``)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RequestRecords):
            return NotImplemented
        return all(np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
                   for a, b in zip(self.columns().values(), other.columns().values(),
                                   strict=True))

    def __reduce__(self) -> tuple[Any, ...]:
        # rebuilt through __init__, so a copy sent to another process is read-only too
        return _rebuild, (self.columns(),)


def _rebuild(columns: dict[str, np.ndarray]) -> RequestRecords:
    return RequestRecords(**columns)
