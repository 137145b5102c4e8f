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
from dataclasses import dataclass, field
from typing import Any

from simulator.errors import InputError
from simulator.loading import scenario_from_dict
from simulator.profiles.inference import ArrivalProcess, InferenceWorkload
from simulator.studies.executors import Executor, InProcessExecutor
from simulator.studies.grid import Point
from simulator.studies.rows import OK, Base, evaluate, metric_columns

# result columns that are not figures to rank by
_NOT_METRICS = ("hardware", "precision", "seed", "accelerators", "slo_met")

@dataclass(frozen=True, kw_only=True)
class Parameter:
    """A hardware knob: its name, what it is, its unit and the profile fields it scales."""

    name: str
    label: str
    unit: str
    fields: tuple[str, ...] = ()  # dotted paths under hardware, each ending in .value


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


@dataclass(kw_only=True)
class Effect:
    """One parameter's effect: the rows at -delta and +delta and, per metric, the elasticity
    (None where a side is missing or the baseline is zero)."""

    parameter: Parameter
    baseline_value: float
    low: dict[str, Any]
    high: dict[str, Any]
    elasticity: dict[str, float | None] = field(default_factory=dict)
    change_low: dict[str, float | None] = field(default_factory=dict)
    change_high: dict[str, float | None] = field(default_factory=dict)


@dataclass(kw_only=True)
class SensitivityResult:
    """Effects ranked by ``|elasticity[metric]|`` (ties broken by the next metrics)."""

    kind: str
    delta: float
    metric: str
    metrics: list[str]
    baseline: dict[str, Any]
    effects: list[Effect]

    def as_dict(self) -> dict[str, Any]:
        """The study as JSON-ready data (``xpusim sensitivity --format json``)."""
        return {
            "kind": self.kind, "delta": self.delta, "metric": self.metric,
            "metrics": self.metrics, "baseline": self.baseline,
            "effects": [{"parameter": e.parameter.name, "label": e.parameter.label,
                         "unit": e.parameter.unit, "baseline_value": e.baseline_value,
                         "elasticity": e.elasticity, "change_low": e.change_low,
                         "change_high": e.change_high, "status_low": e.low["status"],
                         "status_high": e.high["status"], "reason_low": e.low["reason"],
                         "reason_high": e.high["reason"]} for e in self.effects],
        }


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


def _points(hardware: dict[str, Any], params: Sequence[Parameter], delta: float) -> list[Point]:
    points = [Point((), (("parameter", "baseline"), ("factor", 1.0)))]
    for param in params:
        for factor in (1 - delta, 1 + delta):
            overrides = tuple(f"hardware.{f}={yaml_float(_get(hardware, f) * factor)}"
                              for f in param.fields)
            points.append(Point(overrides, (("parameter", param.name), ("factor", factor))))
    return points


def _relative(value: Any, base: Any) -> float | None:
    if value is None or base is None or isinstance(value, bool) or base == 0:
        return None
    return (value - base) / base


def _elasticity(low: Any, high: Any, base: Any, delta: float) -> float | None:
    lo, hi = _relative(low, base), _relative(high, base)
    if lo is not None and hi is not None:
        return (hi - lo) / (2 * delta)
    if hi is not None:
        return hi / delta
    if lo is not None:
        return -lo / delta
    return None


def run_sensitivity(base: Base, *, delta: float = 0.1, metric: str | None = None,
                    only: Sequence[str] | None = None,
                    executor: Executor | None = None) -> SensitivityResult:
    """Perturb every hardware parameter of ``base`` by ±``delta`` and rank the effects."""
    if not 0 < delta < 1:
        raise InputError(f"--delta must be a fraction between 0 and 1 (e.g. 0.1), got {delta}")
    scenario = scenario_from_dict(base.data, base_dir=base.base_dir)
    hardware = scenario.hardware.model_dump(mode="json")
    inlined = Base({**base.data, "hardware": hardware}, base.base_dir, base.file)
    params = parameters(hardware, scenario.workload.precision.value)
    if only:
        unknown = sorted(set(only) - {p.name for p in params})
        if unknown:
            raise InputError(f"unknown parameter(s) {', '.join(unknown)}; known: "
                             f"{', '.join(p.name for p in params)}")
        params = [p for p in params if p.name in only]
    w = scenario.workload
    has_slo = isinstance(w, InferenceWorkload) and w.slo is not None
    offline = (isinstance(w, InferenceWorkload)
               and w.arrivals.process is ArrivalProcess.OFFLINE)
    metrics = headline_metrics(scenario.kind, has_slo, offline)
    rankable = [c for c in metric_columns(scenario.kind) if c not in _NOT_METRICS]
    if metric is not None and metric not in rankable:
        raise InputError(f"--metric {metric!r} is not a result column; use one of "
                         f"{', '.join(rankable)}")
    if metric is not None and metric not in metrics:
        metrics.insert(0, metric)
    metric = metric or metrics[0]
    points = _points(hardware, params, delta)
    rows: dict[str, dict[str, Any]] = {}
    for _, row in (executor or InProcessExecutor()).imap(evaluate, inlined, points):
        rows[row["point"]] = row
    ordered = [rows[p.key] for p in points]
    baseline = ordered[0]
    if baseline["status"] != OK:
        raise InputError(f"the unperturbed scenario does not run: {baseline['reason']}",
                         file=base.file)
    effects = []
    for i, param in enumerate(params):
        low, high = ordered[1 + 2 * i], ordered[2 + 2 * i]
        effect = Effect(parameter=param, baseline_value=_get(hardware, param.fields[0]),
                        low=low, high=high)
        for m in metrics:
            lo = low.get(m) if low["status"] == OK else None
            hi = high.get(m) if high["status"] == OK else None
            effect.change_low[m] = _relative(lo, baseline.get(m))
            effect.change_high[m] = _relative(hi, baseline.get(m))
            effect.elasticity[m] = _elasticity(lo, hi, baseline.get(m), delta)
        effects.append(effect)
    order = [metric, *(m for m in metrics if m != metric)]
    effects.sort(key=lambda e: tuple(-abs(e.elasticity[m] or 0.0) for m in order))
    return SensitivityResult(kind=scenario.kind, delta=delta, metric=metric, metrics=order,
                             baseline=baseline, effects=effects)
