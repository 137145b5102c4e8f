"""One point of a study -> one flat row: status, reason and the headline metrics.

A row is a plain ``dict`` of strings and numbers, the same on every executor (no wall-clock
times, no process ids). Infeasible points are rows too: ``status`` says what kind of
failure, ``reason`` the message (one line).

Statuses: ``ok``; ``does_not_fit`` (memory); ``infeasible`` (the scenario rejects the point:
a bad layout, a value out of range, a run that cannot progress); ``error`` (a bug in
xpusim: the exception's type and message, so a long sweep is not lost to one corner).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.economics.fleet import Billing
from simulator.errors import DoesNotFit, InputError, InputErrors, XpusimError
from simulator.loading import scenario_from_dict
from simulator.profiles.overrides import apply_overrides
from simulator.profiles.yaml_source import read_yaml
from simulator.results import Result

OK, DOES_NOT_FIT, INFEASIBLE, ERROR = "ok", "does_not_fit", "infeasible", "error"
STATUSES = (OK, DOES_NOT_FIT, INFEASIBLE, ERROR)

# How far to trust the row (Result.confidence): the throughput band's median and p90 |error|,
# the held-out cases behind it and the regime level that matched, and the extrapolation
# reasons ('' when none).
CONFIDENCE = ["expected_error", "expected_error_p90", "error_band_cases", "error_band_level",
              "extrapolation"]
COMMON = ["hardware", "accelerators", "used_accelerators", "billed_accelerators",
          "purchase_units", "precision", "seed", "time_s", "cost_usd", "usd_per_hour",
          "cost_per_million_tokens_usd", "energy_kwh", "memory_per_device_bytes",
          "memory_fraction", *CONFIDENCE]
TRAINING = ["step_time_s", "mfu", "tokens_per_s", "time_to_train_s", "wall_time_s",
            "goodput", "bubble_fraction"]
INFERENCE = ["requests_per_s", "output_tokens_per_s", "ttft_mean_s", "ttft_p50_s",
             "ttft_p99_s", "tpot_p50_s", "tpot_p99_s", "e2e_p50_s", "e2e_p99_s",
             "slo_attainment", "slo_met", "goodput_requests_per_s", "dropped",
             "steady_window_s", "prefix_hit_rate"]
NOT_NUMERIC = ["warnings"]


def metric_columns(kind: str) -> list[str]:
    """The metric columns of a study of ``kind`` (training or inference), in table order."""
    return COMMON + (TRAINING if kind == "training" else INFERENCE) + NOT_NUMERIC


@dataclass(frozen=True)
class Base:
    """The scenario every point starts from, parsed once and shipped once to each worker."""

    data: dict[str, Any]
    base_dir: str | None = None
    file: str | None = None
    kind: str = field(init=False)

    def __post_init__(self) -> None:
        workload = self.data.get("workload")
        kind = workload.get("kind") if isinstance(workload, dict) else None
        object.__setattr__(self, "kind", "training" if kind == "training" else "inference")

    @classmethod
    def from_file(cls, path: str | Path) -> Base:
        """Read the scenario YAML once (validation happens per point, after overrides)."""
        doc = read_yaml(path)
        if not isinstance(doc.data, dict):
            raise InputError("a scenario must be a mapping of fields", file=doc.file)
        return cls(doc.data, str(Path(path).parent), str(path))


def run_point(base: Base, overrides: tuple[str, ...] | list[str]) -> tuple[str, str, Result | None]:
    """Simulate ``base`` with ``overrides``: (status, reason, result or None). A study point
    is billed for the whole purchase units its layout uses (:mod:`simulator.economics.fleet`),
    so points of one grid that use fewer accelerators cost less."""
    from simulator.simulate import simulate

    try:
        data = apply_overrides(base.data, overrides)
        scenario = scenario_from_dict(data, base_dir=base.base_dir, overrides=overrides)
        return OK, "", simulate(scenario, billing=Billing.USED)
    except DoesNotFit as exc:
        return DOES_NOT_FIT, one_line(str(exc)), None
    except InputErrors as exc:
        return INFEASIBLE, one_line("; ".join(e.render() for e in exc.errors)), None
    except XpusimError as exc:
        return INFEASIBLE, one_line(str(exc)), None
    except Exception as exc:  # a bug: keep the sweep going, say what happened in the row
        return ERROR, one_line(f"{type(exc).__name__}: {exc}"), None


def one_line(text: str) -> str:
    """Rows are one physical line each: newlines become '; '."""
    return "; ".join(part.strip() for part in text.splitlines() if part.strip())


def result_metrics(result: Result, kind: str) -> dict[str, Any]:
    """The metric columns of ``kind`` read from ``result`` (None where not applicable): a
    serving run's steady figures (warm-up and drain left out; ``steady_window_s`` is the
    window's length, empty where the run was too short for one and the figures are the
    whole run's)."""
    steady = result.steady
    result = result.steady_view()
    hours = result.time_s / 3600
    row: dict[str, Any] = {
        "hardware": result.hardware, "accelerators": result.accelerators,
        "used_accelerators": result.cost.used_accelerators,
        "billed_accelerators": result.cost.billed_accelerators,
        "purchase_units": result.cost.purchase_units,
        "warnings": "; ".join(result.warnings),
        "precision": result.precision, "seed": result.seed, "time_s": result.time_s,
        "cost_usd": result.cost_usd,
        "usd_per_hour": result.cost_usd / hours if hours else None,
        "cost_per_million_tokens_usd": result.cost_per_million_tokens_usd,
        "energy_kwh": result.energy_kwh,
        "memory_per_device_bytes": result.memory.total_bytes,
        "memory_fraction": result.memory.total_bytes / result.memory.capacity_bytes,
        **confidence_columns(result),
    }
    if kind == "training" and result.training is not None:
        t = result.training
        row.update(step_time_s=t.step_time_s, mfu=t.mfu, tokens_per_s=t.tokens_per_s,
                   time_to_train_s=t.time_to_train_s, wall_time_s=t.wall_time_s,
                   goodput=t.goodput, bubble_fraction=t.bubble_fraction)
    elif kind != "training" and result.inference is not None:
        m = result.inference
        row.update(requests_per_s=m.requests_per_s, output_tokens_per_s=m.output_tokens_per_s,
                   ttft_mean_s=m.ttft_s.mean, ttft_p50_s=m.ttft_s.p50, ttft_p99_s=m.ttft_s.p99,
                   tpot_p50_s=m.tpot_s.p50, tpot_p99_s=m.tpot_s.p99, e2e_p50_s=m.e2e_s.p50,
                   e2e_p99_s=m.e2e_s.p99, slo_attainment=m.slo_attainment,
                   slo_met=all(t.met for t in m.slo.values()) if m.slo else None,
                   goodput_requests_per_s=m.goodput_requests_per_s, dropped=m.dropped,
                   steady_window_s=steady.duration_s if steady and steady.found else None,
                   prefix_hit_rate=m.prefix_cache.hit_rate if m.prefix_cache else None)
    return {name: row.get(name) for name in metric_columns(kind)}


def confidence_columns(result: Result) -> dict[str, Any]:
    """The :data:`CONFIDENCE` columns of ``result`` (None where it has no band)."""
    c = result.confidence
    band = c.band("throughput") if c is not None else None
    return {"expected_error": band.median_abs_error if band else None,
            "expected_error_p90": band.p90_abs_error if band else None,
            "error_band_cases": band.cases if band else None,
            "error_band_level": band.level if band else None,
            "extrapolation": "; ".join(c.extrapolation) if c is not None else None}


def evaluate(base: Base, point) -> dict[str, Any]:
    """The row of one :class:`simulator.studies.grid.Point` (the task the executors run)."""
    status, reason, result = run_point(base, point.overrides)
    row: dict[str, Any] = {"point": point.key, **point.label_dict, "status": status,
                           "reason": reason}
    metrics = (result_metrics(result, base.kind) if result is not None
               else dict.fromkeys(metric_columns(base.kind)))
    row.update((k, v) for k, v in metrics.items() if k not in row)
    return row
