"""The `workload` of a serving scenario (kind: inference). Field names are a contract."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from annotated_types import Gt, Lt
from pydantic import (
    BaseModel,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from simulator.errors import UnknownProfile
from simulator.profiles.arrivals import ArrivalProcess as ArrivalProcess
from simulator.profiles.arrivals import Arrivals
from simulator.profiles.autoscaling import Autoscaling, ScaleMetric
from simulator.profiles.catalog import load_stack
from simulator.profiles.fleet_pools import InferenceParallelism, ServingPool
from simulator.profiles.moe_routing import MoeRouting
from simulator.profiles.numbers import (
    MAX_EMPIRICAL_VALUES,
    MAX_LOGNORMAL_CV,
    SPEC_CONFIG,
    EmpiricalWeight,
    MeanTokens,
    NonNegativeRequests,
    NotBool,
    PositiveInt,
    StdTokens,
    TokenLength,
)
from simulator.profiles.precision import Precision
from simulator.profiles.prefix_sharing import Sessions, SharedPrefix, prefix_problem
from simulator.profiles.quantities import Seconds
from simulator.profiles.serving_stack import Frontend, ServingStack
from simulator.profiles.shared_training import SharedTraining
from simulator.profiles.speculative import Speculative

DEFAULT_ENGINE = "trtllm"  # docs/serving.md says why


class DistKind(StrEnum):
    """The shape of a token-length distribution."""

    FIXED = "fixed"
    UNIFORM = "uniform"
    NORMAL = "normal"
    LOGNORMAL = "lognormal"
    EMPIRICAL = "empirical"


class TokenDistribution(BaseModel):
    """Lengths in tokens. Samples are rounded and clamped to [min, max]."""

    model_config = SPEC_CONFIG

    dist: DistKind
    value: TokenLength | None = Field(None, description="fixed: the length")
    low: TokenLength | None = Field(None, description="uniform: smallest length")
    high: TokenLength | None = Field(None, description="uniform: largest length")
    mean: MeanTokens | None = Field(None, description="normal/lognormal: mean length")
    std: StdTokens | None = Field(None, description="normal/lognormal: standard deviation")
    values: tuple[TokenLength, ...] | None = Field(
        None, min_length=1, max_length=MAX_EMPIRICAL_VALUES, description="empirical: lengths")
    weights: tuple[EmpiricalWeight, ...] | None = Field(None, description="empirical: weights")
    min: TokenLength = 1
    max: TokenLength | None = None

    @model_validator(mode="after")
    def _parameters(self) -> TokenDistribution:
        needed = {
            DistKind.FIXED: ("value",),
            DistKind.UNIFORM: ("low", "high"),
            DistKind.NORMAL: ("mean", "std"),
            DistKind.LOGNORMAL: ("mean", "std"),
            DistKind.EMPIRICAL: ("values",),
        }[self.dist]
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(f"dist: {self.dist.value} needs {', '.join(missing)}")
        if self.dist is DistKind.UNIFORM and self.low > self.high:  # type: ignore[operator]
            raise ValueError("uniform needs low <= high")
        if self.weights is not None and len(self.weights) != len(self.values or ()):
            raise ValueError("weights must have one entry per value")
        if self.max is not None and self.max < self.min:
            raise ValueError("max must be >= min")
        if (self.dist is DistKind.LOGNORMAL and self.std is not None and self.mean is not None
                and self.std > MAX_LOGNORMAL_CV * self.mean):
            raise ValueError(f"lognormal std ({self.std:g}) may be at most {MAX_LOGNORMAL_CV:g} "
                             f"times the mean ({self.mean:g}): wider draws overflow")
        return self


    @property
    def nominal_mean(self) -> float:
        """The distribution's mean before clamping to [min, max] (what sizing uses)."""
        if self.value is not None:
            return float(self.value)
        if self.low is not None and self.high is not None:
            return (self.low + self.high) / 2
        if self.mean is not None:
            return self.mean
        assert self.values is not None
        weights = self.weights or (1.0,) * len(self.values)
        return sum(v * w for v, w in zip(self.values, weights, strict=True)) / sum(weights)


def mean_tokens(count: int | TokenDistribution) -> float:
    """Mean length of a token count: the number itself, or the distribution's mean."""
    return count.nominal_mean if isinstance(count, TokenDistribution) else float(count)


def _token_count_kind(value: object) -> str:
    return "distribution" if isinstance(value, dict | TokenDistribution) else "tokens"


# A plain number of tokens, or a distribution; tagged so errors name only the relevant form.
TokenCount = Annotated[
    Annotated[TokenLength, Tag("tokens")] | Annotated[TokenDistribution, Tag("distribution")],
    Discriminator(_token_count_kind),
]




class Router(StrEnum):
    """How a request picks a replica (the policy; the engine's routers implement it)."""

    ROUND_ROBIN = "round_robin"
    LEAST_LOADED = "least_loaded"
    CACHE_AWARE = "cache_aware"  # the replica holding the longest prefix (prefix caching)
    LEAST_TIME = "least_time"  # the least expected completion time: load over priced speed


class Batching(BaseModel):
    """The continuous-batching scheduler's limits and the paged KV cache."""

    model_config = SPEC_CONFIG

    max_batch_size: PositiveInt = Field(256, description="sequences per iteration (per "
                                        "attention DP rank)")
    max_tokens_per_step: PositiveInt = Field(8192, description="token budget per iteration "
                                             "(per attention DP rank)")
    chunked_prefill: bool | PositiveInt = Field(
        True, description="split long prompts across iterations (true, or the chunk size)"
    )
    kv_block_tokens: PositiveInt = Field(16, description="tokens per paged KV-cache block")
    kv_cache_tokens: PositiveInt | None = Field(
        None, description="KV cache per replica, tokens (at most what fits; default: all the "
                          "HBM left after weights, workspace and reserve)")
    prefix_caching: bool = Field(
        False, description="keep computed KV blocks (free ones until evicted, least recently "
                           "used first) and prefill only the part of a prompt not cached "
                           "(vLLM automatic prefix caching, SGLang RadixAttention); default off")


class Disaggregation(BaseModel):
    """Separate prefill and decode pools; KV caches move from one to the other."""

    model_config = SPEC_CONFIG

    prefill_replicas: PositiveInt
    decode_replicas: PositiveInt
    prefill_parallelism: InferenceParallelism | None = Field(
        None, description="layout of a prefill replica; default: workload.parallelism")
    decode_parallelism: InferenceParallelism | None = Field(
        None, description="layout of a decode replica; default: workload.parallelism")


class SLO(BaseModel):
    """Latency targets at a percentile; the result reports attainment and whether each is met."""

    model_config = SPEC_CONFIG

    ttft_s: Seconds | None = Field(None, description="time to first token")
    tpot_s: Seconds | None = Field(None, description="time per output token after the first")
    e2e_s: Seconds | None = Field(None, description="end-to-end latency")
    percentile: Annotated[float, NotBool, Gt(0), Lt(100)] = Field(
        99.0, description="the percentile the targets apply to (99 = p99)")


class InferenceWorkload(BaseModel):
    """A serving workload: precision, layout and replicas, traffic, lengths, batching, and
    targets."""

    model_config = SPEC_CONFIG

    kind: Literal["inference"]
    precision: Precision = Field(Precision.BF16, description="weight precision")
    kv_cache_precision: Precision | None = Field(
        None, description="default: fp8 when weights are fp8 or narrower, else bf16")
    replicas: PositiveInt | None = Field(
        None, description="model replicas; default: as many as the accelerators hold")
    parallelism: InferenceParallelism = Field(InferenceParallelism(),
                                              description="layout of one replica")
    arrivals: Arrivals = Field(description="when requests arrive")
    prompt_tokens: TokenCount = Field(description="prompt length: a number or a distribution")
    output_tokens: TokenCount = Field(description="answer length: a number or a distribution")
    router: Router = Field(Router.LEAST_LOADED, description="how requests pick a replica")
    router_balance_requests: NonNegativeRequests = Field(
        32, description="cache_aware: when the most and least loaded replicas differ by more "
                        "than this many outstanding requests, route to the least loaded "
                        "(SGLang router's balance_abs_threshold, default 32)")
    shared_prefix: SharedPrefix | None = Field(
        None, description="a system prompt shared by a share of the requests (docs/serving.md, "
                          "prefix caching)")
    sessions: Sessions | None = Field(
        None, description="multi-turn chat: each arrival starts a session of turns whose "
                          "prompts resend the conversation so far")
    moe: MoeRouting = Field(MoeRouting(), description="expert load balance (MoE models with "
                            "ep > 1); serving defaults to none (the router's own imbalance)")
    batching: Batching = Field(Batching(), description="continuous-batching limits")
    disaggregation: Disaggregation | None = Field(
        None, description="separate prefill and decode pools (replaces replicas)")
    pools: list[ServingPool] | None = Field(
        None, min_length=1, description="a mixed fleet: pools of replicas, each on its own "
        "hardware and layout, behind one router (replaces replicas and parallelism; "
        "docs/serving.md, mixed fleets)")
    slo: SLO | None = Field(None, description="latency targets; attainment is reported")
    autoscaling: Autoscaling | None = Field(
        None, description="replicas that follow the load, from min_replicas up to replicas "
                          "(docs/serving.md, autoscaling)")
    shared_training: SharedTraining | None = Field(
        None, description="a training job on the accelerators the autoscaled pool leaves "
                          "(serving has priority; docs/serving.md, training in the troughs)")
    speculative: Speculative | None = Field(
        None, description="speculative decoding: a drafter proposes draft_tokens per step and "
                          "the target verifies them in one pass (docs/serving.md)")
    warmup_requests: NonNegativeRequests = Field(
        0, description="requests excluded from latency statistics at the start")
    engine: ServingStack = Field(
        DEFAULT_ENGINE, validate_default=True,
        description="the serving software and version: a built-in stack id (`xpusim stacks "
                    "list`: vllm-0.5, vllm-0.6, vllm-v1, sglang, trtllm, tgi, "
                    "optimum-habana, jetstream, neuron, ideal), a path to a stack YAML "
                    "(relative to the scenario file), or an inline mapping; default trtllm "
                    "(docs/serving.md)")
    frontend: Frontend = Field(
        Frontend.HTTP, description="how requests reach the engine: http (through its API "
                                   "server, whose host work the stack's host.frontend prices), "
                                   "in_process (a harness calling the engine directly for "
                                   "whole results, as MLPerf Offline harnesses do: no "
                                   "API-server work) or in_process_streaming (a harness in "
                                   "process taking every request's output step by step, as "
                                   "MLPerf Server harnesses do to report first tokens: it "
                                   "does the API server's streaming, host.frontend as the "
                                   "stack prices it)")

    @field_validator("engine", mode="before")
    @classmethod
    def _resolve_engine(cls, value: object, info: ValidationInfo) -> object:
        """A stack id or path is loaded here, so the workload holds the whole stack."""
        if isinstance(value, str):
            base = (info.context or {}).get("base_dir")
            try:
                return load_stack(value, Path(base) if base else None)
            except UnknownProfile as exc:  # reported against this field
                raise ValueError(exc.message) from None
        return value

    @model_validator(mode="after")
    def _prefix_fields_fit(self) -> InferenceWorkload:
        problem = prefix_problem(self)
        if problem is not None:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _autoscaling_fits(self) -> InferenceWorkload:
        a = self.autoscaling
        if a is None:
            return self
        if self.disaggregation is not None:
            raise ValueError("autoscaling scales one pool; it is not modelled with "
                             "disaggregation")
        if self.router is not Router.LEAST_LOADED:
            raise ValueError(f"autoscaling routes to the least loaded serving replica; "
                             f"router: {self.router.value} is not modelled with it")
        if self.replicas is None:
            raise ValueError("autoscaling needs replicas: the most it may run")
        if a.min_replicas > self.replicas:
            raise ValueError(f"autoscaling.min_replicas ({a.min_replicas}) is more than "
                             f"replicas ({self.replicas}), the most it may run")
        if a.rule.metric is ScaleMetric.SLO_ATTAINMENT and self.slo is None:
            raise ValueError("autoscaling.policy.metric: slo_attainment needs workload.slo, "
                             "the targets it judges requests by")
        return self

    @model_validator(mode="after")
    def _warmup_leaves_requests(self) -> InferenceWorkload:
        expected = self.arrivals.expected_requests
        if expected is not None and self.sessions is not None:
            expected *= self.sessions.turns
        if self.warmup_requests and expected is not None and self.warmup_requests >= expected:
            raise ValueError(f"warmup_requests ({self.warmup_requests}) must be fewer than the "
                             f"requests that arrive ({expected:.0f}): none would be measured")
        return self
