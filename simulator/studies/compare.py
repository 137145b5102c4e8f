"""The same workload on several hardware profiles, side by side.

``compare(scenario, ["h100-sxm", "mi300x"], match="count")`` runs the scenario once per
profile, adapting the cluster and the layout the way a user would:

- **cluster size** (``match``): ``count`` keeps the scenario's accelerator count; ``power``
  buys as many accelerators as the baseline's facility power budget feeds (TDP plus the
  system share, times PUE); ``cost`` as many as the baseline's spend per hour pays for
  (cloud rent, or owned capital + facility + electricity at full power). The count is rounded
  down to whole replicas (serving) or model-parallel groups (training), and to whole
  scale-up domains where the budget covers one.
- **serving layout**: the smallest tensor-parallel size (a power of two dividing the heads,
  within the scale-up domain; pipeline stages added only when no TP fits) whose KV cache
  holds a full batch (``max_batch_size`` requests of mean length); if none does, the layout
  with the most KV cache per accelerator that still holds one longest request. Replicas
  fill the cluster (``accelerators // (tp*pp)``). Disaggregated scenarios keep their pools'
  layouts and scale the replica counts.
- **training layout**: tp, pp, cp, ep and the schedule are kept; dp follows the accelerator
  count, and the global batch moves to the nearest multiple of dp x micro-batch only when
  it must (a row note says so).

(The rules live in :mod:`simulator.studies.compare_layout`.) The first profile is the
baseline: every row carries its metrics and their ratios to the baseline's (value /
baseline). A profile that cannot run the workload (the model does not fit, the precision is
unsupported, the budget buys too few devices) is a row with a status and a reason, not an
error. Deterministic: every row uses the scenario's seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.errors import DoesNotFit, InputError, XpusimError
from simulator.profiles.catalog import load_hardware, looks_like_path
from simulator.profiles.hardware import HardwareProfile
from simulator.profiles.overrides import apply_overrides
from simulator.profiles.yaml_source import YamlDocument, read_yaml
from simulator.results import Result
from simulator.simulate import simulate
from simulator.studies.compare_layout import (
    Unfit,
    budget_of,
    cost_data,
    error_line,
    inference_layout,
    layout_of,
    target_count,
    training_layout,
    validated,
)
from simulator.studies.rows import DOES_NOT_FIT, INFEASIBLE, OK

MATCHES = ("count", "power", "cost")
__all__ = ["DOES_NOT_FIT", "INFEASIBLE", "MATCHES", "OK", "Comparison", "Metric", "ProfileRow",
           "compare", "metrics_for"]


@dataclass(frozen=True, kw_only=True)
class Metric:
    """A compared figure: its key in rows, a label and unit for tables, which way is better
    (``higher``, ``lower`` or ``neither``), and whether the ratio plot shows it."""

    key: str
    label: str
    unit: str
    better: str
    headline: bool = True


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
    Metric(key="cost_per_million_tokens_usd", label="cost per million tokens",
           unit="USD", better="lower"),
    Metric(key="energy_per_token_j", label="energy per token", unit="J", better="lower"),
    Metric(key="average_power_w", label="facility power",
           unit="W", better="neither", headline=False),
    Metric(key="cost_usd", label="cost of the run", unit="USD", better="lower"),
)
TRAINING_METRICS = (
    Metric(key="tokens_per_s", label="throughput", unit="tokens/s", better="higher"),
    Metric(key="tokens_per_s_per_accelerator", label="throughput per accelerator",
           unit="tokens/s", better="higher"),
    Metric(key="step_time_s", label="step time", unit="s", better="lower"),
    Metric(key="mfu", label="MFU", unit="fraction", better="higher"),
    Metric(key="utilization", label="compute utilization",
           unit="fraction", better="higher", headline=False),
    Metric(key="cost_per_million_tokens_usd", label="cost per million tokens",
           unit="USD", better="lower"),
    Metric(key="energy_per_token_j", label="energy per token", unit="J", better="lower"),
    Metric(key="average_power_w", label="facility power",
           unit="W", better="neither", headline=False),
    Metric(key="wall_time_s", label="time to train (with failures)", unit="s", better="lower"),
    Metric(key="cost_usd", label="cost of the run", unit="USD", better="lower"),
)


def metrics_for(kind: str) -> tuple[Metric, ...]:
    """The figures a comparison of ``kind`` (training or inference) shows, in table order."""
    return TRAINING_METRICS if kind == "training" else INFERENCE_METRICS


@dataclass(kw_only=True)
class ProfileRow:
    """One profile's outcome. ``metrics`` and ``ratios`` (value / baseline value) are keyed
    by :class:`Metric` key; None where there is no value (a failed row, no SLO, ...)."""

    hardware: str
    name: str
    status: str
    reason: str | None = None
    accelerators: int | None = None
    layout: str = ""
    parallelism: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, float | None] = field(default_factory=dict)
    ratios: dict[str, float | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    result: Result | None = field(default=None, repr=False)  # the full result (not in JSON)

    def as_dict(self) -> dict[str, Any]:
        """The row as JSON-ready data (the full result is left out)."""
        return {k: v for k, v in self.__dict__.items() if k != "result"}


@dataclass(kw_only=True)
class Comparison:
    """Rows in the order the profiles were given; the first is the baseline."""

    scenario: str
    kind: str
    match: str
    metrics: tuple[Metric, ...]
    rows: list[ProfileRow]
    budget: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def baseline(self) -> ProfileRow:
        """The first profile's row, which every ratio divides by."""
        return self.rows[0]

    def as_dict(self) -> dict[str, Any]:
        """The comparison as JSON-ready data (``xpusim compare --format json``, comparison.json)."""
        return {"scenario": self.scenario, "kind": self.kind, "match": self.match,
                "baseline": self.baseline.hardware, "budget": self.budget,
                "metrics": [m.__dict__ for m in self.metrics],
                "rows": [r.as_dict() for r in self.rows], "notes": self.notes}


# ---- the public function -----------------------------------------------------------------
def compare(scenario: str | Path | dict[str, Any], hardware_ids: Sequence[str],
            match: str = "count", overrides: Sequence[str] = (), *,
            progress: Callable[[float, float], None] | None = None) -> Comparison:
    """Run ``scenario`` (a file or a mapping) on each of ``hardware_ids`` (built-in ids or
    paths); the first is the baseline. ``progress(done, total)`` hears each finished row
    (``done`` rows of ``total``) and, in between, the running row's fraction (``done`` then
    has a fractional part)."""
    if match not in MATCHES:
        raise InputError(f"--match must be one of {', '.join(MATCHES)}, got {match!r}")
    if not hardware_ids:
        raise InputError("--hardware needs at least one profile id (the first is the baseline)")
    data, doc, base_dir = _base(scenario, overrides)
    # The scenario as written must be valid (unknown fields, wrong types, a layout its own
    # hardware rejects are the user's to fix: errors, not rows); fitting memory is not needed.
    validated(data, doc, base_dir)
    refs = [str(Path(h).resolve()) if looks_like_path(h) else h for h in hardware_ids]
    profiles = [load_hardware(ref) for ref in refs]
    kind = "training" if (data.get("workload") or {}).get("kind") == "training" else "inference"
    own = _own_hardware_id(data, base_dir)
    n0 = int((data.get("cluster") or {}).get("accelerators") or 0)
    if n0 <= 0:
        raise InputError("the scenario needs cluster.accelerators (a positive count)",
                         file=doc.file if doc else None, path="cluster.accelerators")
    budget, budget_text = budget_of(match, data, profiles[0], refs[0], n0, own)
    rows = []
    for i, (ref, hw) in enumerate(zip(refs, profiles, strict=True)):
        # the baseline keeps the scenario's count: it defines the budget the others match
        sizing = match if i else "count"
        within = None if progress is None else _within(progress, i, len(refs))
        rows.append(_row(data, doc, base_dir, ref, hw, own, sizing, n0, budget, within))
        if progress is not None:
            progress(i + 1, len(refs))
    metrics = metrics_for(kind)
    _add_ratios(rows, metrics)
    notes = []
    if rows[0].status != OK:
        notes.append(f"the baseline {rows[0].hardware} did not run ({rows[0].reason}); "
                     f"no ratios")
    return Comparison(scenario=str(data.get("name", "")), kind=kind, match=match,
                      metrics=metrics, rows=rows, budget=budget_text, notes=notes)


def _base(scenario: str | Path | dict[str, Any], overrides: Sequence[str],
          ) -> tuple[dict[str, Any], YamlDocument | None, Path]:
    if isinstance(scenario, dict):
        return apply_overrides(scenario, list(overrides)), None, Path.cwd()
    doc = read_yaml(scenario)
    if not isinstance(doc.data, dict):
        raise InputError("a scenario must be a mapping of fields", file=doc.file)
    return apply_overrides(doc.data, list(overrides)), doc, Path(scenario).resolve().parent


def _own_hardware_id(data: dict[str, Any], base_dir: Path) -> str | None:
    hw = data.get("hardware")
    if isinstance(hw, str):
        try:
            return load_hardware(hw, base_dir).id
        except XpusimError:
            return None
    return hw.get("id") if isinstance(hw, dict) else None


# ---- one row -------------------------------------------------------------------------------
def _within(progress: Callable[[float, float], None], i: int,
            total: int) -> Callable[[float, float], None]:
    """The engine's progress inside row ``i`` as a fraction of the whole comparison."""
    return lambda done, of: progress(i + (min(done / of, 1.0) if of else 0.0), total)


def _row(data: dict[str, Any], doc: YamlDocument | None, base_dir: Path, ref: str,
         hw: HardwareProfile, own: str | None, match: str, n0: int, budget: float,
         progress: Callable[[float, float], None] | None = None) -> ProfileRow:
    row = ProfileRow(hardware=hw.id, name=hw.name, status=OK)
    try:
        cost, notes = cost_data(data, hw.id, own)
        row.notes += notes
        n, note = target_count(match, hw, cost, n0, budget)
        if note:
            row.notes.append(note)
        candidate = {**data, "hardware": ref, "cost": cost}
        if (data.get("workload") or {}).get("kind") == "training":
            candidate, notes = training_layout(candidate, hw, n, match)
        else:
            candidate, notes = inference_layout(candidate, base_dir, hw, n, match, n0)
        row.notes += notes
        scenario = validated(candidate, doc, base_dir)
        row.accelerators = scenario.cluster.accelerators
        row.parallelism, row.layout = layout_of(scenario)
        result = simulate(scenario, progress=progress)
    except Unfit as exc:
        row.status, row.reason = exc.status, exc.reason
        return row
    except DoesNotFit as exc:
        row.status, row.reason = DOES_NOT_FIT, error_line(exc)
        return row
    except XpusimError as exc:
        row.status, row.reason = INFEASIBLE, error_line(exc)
        return row
    row.result = result
    row.metrics = _metrics(result)
    if result.inference is not None and result.inference.dropped:
        row.notes.append(f"{result.inference.dropped} requests dropped (too long for the "
                         f"context or the KV cache)")
    row.notes += result.warnings
    return row


def _metrics(result: Result) -> dict[str, float | None]:
    """The compared figures of one result (keys of the Metric tables): a serving run's
    steady figures."""
    result = result.steady_view()
    n = result.accelerators
    common = {
        "utilization": result.utilization.compute,
        "cost_per_million_tokens_usd": result.cost_per_million_tokens_usd,
        "energy_per_token_j": 3.6e6 / result.tokens_per_kwh if result.tokens_per_kwh else None,
        "average_power_w": result.average_power_w,
        "cost_usd": result.cost_usd,
    }
    if result.training is not None:
        t = result.training
        return {"tokens_per_s": t.tokens_per_s, "tokens_per_s_per_accelerator":
                t.tokens_per_s / n, "step_time_s": t.step_time_s, "mfu": t.mfu,
                "wall_time_s": t.wall_time_s, **common}
    m = result.inference
    assert m is not None
    return {"output_tokens_per_s": m.output_tokens_per_s,
            "output_tokens_per_s_per_accelerator": m.output_tokens_per_s / n,
            "requests_per_s": m.requests_per_s,
            "ttft_p50_s": m.ttft_s.p50, "ttft_p99_s": m.ttft_s.p99,
            "tpot_p50_s": m.tpot_s.p50, "tpot_p99_s": m.tpot_s.p99,
            "slo_attainment": m.slo_attainment, **common}


def _add_ratios(rows: list[ProfileRow], metrics: Sequence[Metric]) -> None:
    base = rows[0].metrics
    for row in rows:
        row.ratios = {}
        for m in metrics:
            value, ref = row.metrics.get(m.key), base.get(m.key)
            row.ratios[m.key] = value / ref if value is not None and ref else None
