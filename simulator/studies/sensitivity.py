"""``xpusim sensitivity``: what would a faster part buy us?

Each hardware parameter (peak FLOP/s at every precision, HBM bandwidth and capacity,
scale-up and scale-out bandwidth and latency, power) is scaled by 1 - delta and 1 + delta
while everything else stays put, and each variant is simulated. The parameters are ranked
by the elasticity of the headline metric, (m(+delta) - m(-delta)) / (2 delta m(base)): the
relative change of the metric per relative change of the parameter (-1 for a step time that
is all HBM traffic when bandwidth grows).

The variants are ordinary study points: the profile is inlined into the scenario and each
point overrides ``hardware.<field>.value``, so they validate like any scenario (a smaller
HBM may not fit: that side's row says so) and run on any executor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from simulator.errors import InputError
from simulator.loading import scenario_from_dict
from simulator.profiles.inference import ArrivalProcess, InferenceWorkload
from simulator.profiles.numbers import MAX_SEED
from simulator.profiles.scenario import Scenario
from simulator.profiles.training import TrainingWorkload
from simulator.studies.executors import Executor, InProcessExecutor
from simulator.studies.grid import Point
from simulator.studies.paired import elasticity, interval, relative
from simulator.studies.rows import OK, Base, evaluate, metric_columns
from simulator.studies.sensitivity_result import Effect, Parameter, SensitivityResult

# result columns that are not figures to rank by
_NOT_METRICS = ("hardware", "precision", "seed", "accelerators", "slo_met")
DEFAULT_SERVING_SEEDS = 5
MAX_SEEDS = 1000
# a training run's metrics that no failure draw enters: the step and what scales with it
_SEEDLESS_TRAINING = frozenset({"step_time_s", "mfu", "tokens_per_s", "time_to_train_s",
                                "bubble_fraction", "memory_per_device_bytes",
                                "memory_fraction"})
_Runs = list[list[dict[str, Any]]]  # per seed: the rows in point order

def parameters(hardware: dict[str, Any], precision: str = "bf16") -> list[Parameter]:
    """The knobs of a profile (given as its JSON dump); the workload's ``precision`` leads the
    peaks, so that its peak is the one shown as the baseline."""
    names = sorted(hardware["compute"]["peak_flops"], key=lambda p: p != precision)
    peaks = tuple(f"compute.peak_flops.{p}.value" for p in names)
    return [
        Parameter(name="peak_flops", label="peak FLOP/s (every precision)", unit="FLOP/s",
                  fields=peaks),
        Parameter(name="hbm_bandwidth", label="HBM bandwidth", unit="B/s",
                  fields=("memory.bandwidth.value",)),
        Parameter(name="hbm_capacity", label="HBM capacity", unit="B",
                  fields=("memory.capacity.value",)),
        Parameter(name="scale_up_bandwidth", label="scale-up bandwidth per device", unit="B/s",
                  fields=("scale_up.bandwidth_per_device.value",)),
        Parameter(name="scale_out_bandwidth", label="scale-out bandwidth per device",
                  unit="B/s", fields=("scale_out.bandwidth_per_device.value",)),
        Parameter(name="scale_up_latency", label="scale-up latency", unit="s",
                  fields=("scale_up.latency.value",)),
        Parameter(name="scale_out_latency", label="scale-out latency", unit="s",
                  fields=("scale_out.latency.value",)),
        Parameter(name="power", label="power (TDP, idle and system share)", unit="W",
                  fields=("power.tdp.value", "power.idle.value",
                          "power.system_per_device.value")),
    ]


def headline_metrics(kind: str, has_slo: bool, offline: bool) -> list[str]:
    """The metrics reported, the first being the default ranking metric.

    Training: the step time (time to train is proportional to it). Serving at a given
    arrival rate: p99 TTFT, since below saturation throughput and goodput follow the
    arrivals and barely move; offline (all requests at once): output tokens per second.
    """
    if kind == "training":
        return ["step_time_s", "time_to_train_s", "mfu", "cost_usd"]
    metrics = ["ttft_p99_s", "tpot_p99_s", "output_tokens_per_s"]
    if has_slo:
        metrics.append("goodput_requests_per_s")
    metrics.append("cost_per_million_tokens_usd")
    if offline:
        metrics.remove("output_tokens_per_s")
        metrics.insert(0, "output_tokens_per_s")
    return metrics


def yaml_float(value: float) -> str:
    """A float that YAML reads back as a float ('1e-06' is a string to YAML 1.1)."""
    text = repr(float(value))
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent if exponent[0] in '+-' else '+' + exponent}"
    return text


def _get(data: dict[str, Any], dotted: str) -> float:
    node: Any = data
    for part in dotted.split("."):
        node = node[part]
    return float(node)


def default_seeds(kind: str) -> int:
    """Seeds when ``--seeds`` is not given: five for serving (the t interval of five paired
    runs is ±2.8 standard errors, enough to tell a real effect from batching luck at 5x the
    runs); one for training, whose step draws nothing at random."""
    return 1 if kind == "training" else DEFAULT_SERVING_SEEDS


def seedless_metrics(scenario: Scenario) -> frozenset[str]:
    """The metrics no random draw enters: a training step's (the seed only draws failures,
    and nothing at all when failures are off); none of a serving run's (arrivals and
    lengths are drawn from the seed)."""
    w = scenario.workload
    if not isinstance(w, TrainingWorkload):
        return frozenset()
    if not w.failures.enabled:
        return frozenset(metric_columns("training"))
    return _SEEDLESS_TRAINING


def _points(hardware: dict[str, Any], params: Sequence[Parameter], delta: float,
            seed: int) -> list[Point]:
    at_seed = (f"seed={seed}",)
    points = [Point(at_seed, (("parameter", "baseline"), ("factor", 1.0)))]
    for param in params:
        for factor in (1 - delta, 1 + delta):
            overrides = tuple(f"hardware.{f}={yaml_float(_get(hardware, f) * factor)}"
                              for f in param.fields)
            points.append(Point((*overrides, *at_seed),
                                (("parameter", param.name), ("factor", factor))))
    return points


def _metric_value(row: dict[str, Any], metric: str) -> Any:
    return row.get(metric) if row["status"] == OK else None


def _effect(param: Parameter, hardware: dict[str, Any], runs: _Runs, index: int, *,
            metrics: Sequence[str], delta: float, exact: frozenset[str]) -> Effect:
    """The effect of ``param`` (``index`` among the parameters) over every seed's runs."""
    lows = [rows[1 + 2 * index] for rows in runs]
    highs = [rows[2 + 2 * index] for rows in runs]
    effect = Effect(parameter=param, baseline_value=_get(hardware, param.fields[0]),
                    low_rows=lows, high_rows=highs)
    for m in metrics:
        els: list[float] = []
        los: list[float] = []
        his: list[float] = []
        for rows, low, high in zip(runs, lows, highs, strict=True):
            base, lo, hi = rows[0].get(m), _metric_value(low, m), _metric_value(high, m)
            for values, value in ((els, elasticity(lo, hi, base, delta)),
                                  (los, relative(lo, base)), (his, relative(hi, base))):
                if value is not None:
                    values.append(value)
        exact_m = m in exact
        effect.elasticity_interval[m] = interval(els, deterministic=exact_m)
        effect.change_low_interval[m] = interval(los, deterministic=exact_m)
        effect.change_high_interval[m] = interval(his, deterministic=exact_m)
    return effect


def _rank_key(effect: Effect, order: Sequence[str]) -> tuple:
    """Real (or unjudged) effects first, strongest first; within noise after them."""
    return (effect.within_noise(order[0]),
            *(-abs(effect.elasticity[m] or 0.0) for m in order))


def _metrics(scenario: Scenario, metric: str | None) -> list[str]:
    """The reported metrics, the ranking one first; an unknown ``metric`` is an InputError."""
    w = scenario.workload
    has_slo = isinstance(w, InferenceWorkload) and w.slo is not None
    offline = (isinstance(w, InferenceWorkload)
               and w.arrivals.process is ArrivalProcess.OFFLINE)
    metrics = headline_metrics(scenario.kind, has_slo, offline)
    rankable = [c for c in metric_columns(scenario.kind) if c not in _NOT_METRICS]
    if metric is not None and metric not in rankable:
        raise InputError(f"--metric {metric!r} is not a result column; use one of "
                         f"{', '.join(rankable)}")
    if metric is not None:
        metrics = [metric, *(m for m in metrics if m != metric)]
    return metrics


def _selected(params: list[Parameter], only: Sequence[str] | None) -> list[Parameter]:
    if not only:
        return params
    unknown = sorted(set(only) - {p.name for p in params})
    if unknown:
        raise InputError(f"unknown parameter(s) {', '.join(unknown)}; known: "
                         f"{', '.join(p.name for p in params)}")
    return [p for p in params if p.name in only]


def _run_points(inlined: Base, hardware: dict[str, Any], params: Sequence[Parameter],
                delta: float, seeds: Sequence[int], executor: Executor | None) -> _Runs:
    """Every seed's rows, in point order: [baseline, p1 -delta, p1 +delta, p2 -delta, ...]."""
    per_seed = [_points(hardware, params, delta, s) for s in seeds]
    everything = [p for points in per_seed for p in points]
    rows: dict[str, dict[str, Any]] = {}
    for _, row in (executor or InProcessExecutor()).imap(evaluate, inlined, everything):
        rows[row["point"]] = row
    return [[rows[p.key] for p in points] for points in per_seed]


def run_sensitivity(base: Base, *, delta: float = 0.1, metric: str | None = None,
                    only: Sequence[str] | None = None, seeds: int | None = None,
                    executor: Executor | None = None) -> SensitivityResult:
    """Perturb every hardware parameter of ``base`` by ±``delta`` over ``seeds`` seeds
    (default :func:`default_seeds`; the scenario's seed, +1, ...), the baseline and every
    variant of a seed sharing its random draws, and rank the effects."""
    if not 0 < delta < 1:
        raise InputError(f"--delta must be a fraction between 0 and 1 (e.g. 0.1), got {delta}")
    if seeds is not None and not 1 <= seeds <= MAX_SEEDS:
        raise InputError(f"--seeds must be a whole number from 1 to {MAX_SEEDS}, got {seeds}")
    scenario = scenario_from_dict(base.data, base_dir=base.base_dir)
    hardware = scenario.hardware.model_dump(mode="json")
    inlined = Base({**base.data, "hardware": hardware}, base.base_dir, base.file)
    params = _selected(parameters(hardware, scenario.workload.precision.value), only)
    metrics = _metrics(scenario, metric)
    count = seeds if seeds is not None else default_seeds(scenario.kind)
    seed_list = [(scenario.seed + i) % (MAX_SEED + 1) for i in range(count)]
    runs = _run_points(inlined, hardware, params, delta, seed_list, executor)
    failed = next((rows[0] for rows in runs if rows[0]["status"] != OK), None)
    if failed is not None:
        raise InputError(f"the unperturbed scenario does not run: {failed['reason']}",
                         file=base.file)
    exact = seedless_metrics(scenario)
    effects = [_effect(p, hardware, runs, i, metrics=metrics, delta=delta, exact=exact)
               for i, p in enumerate(params)]
    effects.sort(key=lambda e: _rank_key(e, metrics))
    baseline_interval = {m: interval([v for rows in runs if (v := _number(rows[0].get(m)))
                                      is not None], deterministic=m in exact)
                         for m in metrics}
    return SensitivityResult(kind=scenario.kind, delta=delta, metric=metrics[0],
                             metrics=metrics, seeds=seed_list,
                             deterministic=metrics[0] in exact,
                             baseline_rows=[rows[0] for rows in runs],
                             baseline_interval=baseline_interval, effects=effects)


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    return float(value)

