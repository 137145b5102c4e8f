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

**Serving, by default, compares each profile at its best within the SLO** (``mode:
best``, :mod:`simulator.studies.compare_best`): one replica's highest sustainable rate and
its goodput and cost per token there, and the cheapest whole-unit fleet that carries the
scenario's load. The sizing above is the *fixed-load* view (``fixed_load=True``, ``xpusim
compare --fixed-load``): every profile at the scenario's offered load, where a fast part
idles; it is also what a serving scenario without an SLO or a rate of arrivals gets (a note
says so). Training compares the same job on each profile (``mode: fixed_work``). Every
row is billed for the whole purchase units its layout uses (:mod:`simulator.economics.
fleet`).

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

from simulator.economics.fleet import Billing
from simulator.errors import DoesNotFit, InputError, XpusimError
from simulator.loading import overridden_name
from simulator.profiles.catalog import load_hardware, looks_like_path
from simulator.profiles.hardware import HardwareProfile
from simulator.profiles.inference import InferenceWorkload
from simulator.profiles.overrides import apply_overrides
from simulator.profiles.scenario import Scenario
from simulator.profiles.yaml_source import YamlDocument, read_yaml
from simulator.results import Result
from simulator.simulate import simulate
from simulator.studies.capacity import check_searchable
from simulator.studies.compare_best import SLO_NOT_MET, best_fleet
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
from simulator.studies.compare_metrics import (
    BEST,
    FIXED_LOAD,
    FIXED_WORK,
    Metric,
    metrics_for,
)
from simulator.studies.rows import DOES_NOT_FIT, INFEASIBLE, OK

MATCHES = ("count", "power", "cost")
__all__ = [
    "BEST",
    "DOES_NOT_FIT",
    "FIXED_LOAD",
    "FIXED_WORK",
    "INFEASIBLE",
    "MATCHES",
    "OK",
    "SLO_NOT_MET",
    "Comparison",
    "Metric",
    "ProfileRow",
    "compare",
    "metrics_for",
]


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
    mode: str = FIXED_LOAD  # best (serving default), fixed_load, fixed_work (training)
    load_per_s: float | None = None  # the scenario's arrival rate (serving)

    @property
    def baseline(self) -> ProfileRow:
        """The first profile's row, which every ratio divides by."""
        return self.rows[0]

    def as_dict(self) -> dict[str, Any]:
        """The comparison as JSON-ready data (``xpusim compare --format json``, comparison.json)."""
        return {"scenario": self.scenario, "kind": self.kind, "match": self.match,
                "mode": self.mode, "load_per_s": self.load_per_s,
                "baseline": self.baseline.hardware, "budget": self.budget,
                "metrics": [m.__dict__ for m in self.metrics],
                "rows": [r.as_dict() for r in self.rows], "notes": self.notes}


# ---- the public function -----------------------------------------------------------------
def compare(scenario: str | Path | dict[str, Any], hardware_ids: Sequence[str],
            match: str = "count", overrides: Sequence[str] = (), *,
            progress: Callable[[float, float], None] | None = None,
            fixed_load: bool = False) -> Comparison:
    """Run ``scenario`` (a file or a mapping) on each of ``hardware_ids`` (built-in ids or
    paths); the first is the baseline. A serving scenario compares each profile at its best
    within the SLO unless ``fixed_load`` (module docstring). ``progress(done, total)`` hears
    each finished row (``done`` rows of ``total``) and, in between, the running row's
    fraction (``done`` then has a fractional part)."""
    if match not in MATCHES:
        raise InputError(f"--match must be one of {', '.join(MATCHES)}, got {match!r}")
    if not hardware_ids:
        raise InputError("--hardware needs at least one profile id (the first is the baseline)")
    data, doc, base_dir = _base(scenario, overrides)
    # The scenario as written must be valid (unknown fields, wrong types, a layout its own
    # hardware rejects are the user's to fix: errors, not rows); fitting memory is not needed.
    written = validated(data, doc, base_dir)
    n0 = written.cluster.accelerators  # `auto` resolved
    data = {**data, "cluster": {**(data.get("cluster") or {}), "accelerators": n0}}
    refs = [str(Path(h).resolve()) if looks_like_path(h) else h for h in hardware_ids]
    profiles = [load_hardware(ref) for ref in refs]
    kind = written.kind
    mode, notes = _mode(written, fixed_load, match)
    own = _own_hardware_id(data, base_dir)
    budget, budget_text = budget_of(match, data, profiles[0], refs[0], n0, own)
    rows = []
    for i, (ref, hw) in enumerate(zip(refs, profiles, strict=True)):
        # the baseline keeps the scenario's count: it defines the budget the others match
        sizing = match if i else "count"
        within = None if progress is None else _within(progress, i, len(refs))
        rows.append(_row(data, doc, base_dir, ref, hw, own, sizing, n0, budget, within,
                         best=mode == BEST))
        if progress is not None:
            progress(i + 1, len(refs))
    metrics = metrics_for(kind, mode)
    _add_ratios(rows, metrics)
    if rows[0].status != OK:
        notes.append(f"the baseline {rows[0].hardware} did not run ({rows[0].reason}); "
                     f"no ratios")
    w = written.workload
    load = w.arrivals.rate_per_s if isinstance(w, InferenceWorkload) else None
    name = overridden_name(str(data.get("name", "")), overrides)
    return Comparison(scenario=name, kind=kind, match=match,
                      metrics=metrics, rows=rows, budget=budget_text, notes=notes,
                      mode=mode, load_per_s=load)


def _mode(scenario: Scenario, fixed_load: bool, match: str) -> tuple[str, list[str]]:
    """Which comparison ``scenario`` gets, and a note where a serving scenario cannot have
    the default (no SLO, no rate of arrivals, disaggregated pools)."""
    w = scenario.workload
    if not isinstance(w, InferenceWorkload):
        return FIXED_WORK, []
    if fixed_load:
        return FIXED_LOAD, []
    why = ""
    try:
        check_searchable(scenario)
    except InputError as exc:
        why = exc.message
    if w.disaggregation is not None:
        why = "disaggregated pools are compared as written"
    if why:
        return FIXED_LOAD, [f"compared at the scenario's fixed load: {why}; the default "
                            f"comparison (each profile at its best within the SLO) needs "
                            f"a rate of arrivals, a request count and SLO targets"]
    if match != "count":
        raise InputError(f"--match {match} sizes fleets to the baseline's budget at the "
                         f"scenario's fixed load: add --fixed-load (by default each fleet "
                         f"is sized to carry the load within the SLO)")
    return BEST, []


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
         progress: Callable[[float, float], None] | None = None, *,
         best: bool = False) -> ProfileRow:
    row = ProfileRow(hardware=hw.id, name=hw.name, status=OK)
    try:
        cost, notes = cost_data(data, hw.id, own)
        row.notes += notes
        if best:
            return _best_row(row, {**data, "hardware": ref, "cost": cost}, doc, base_dir,
                             hw, n0, progress)
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
        result = simulate(scenario, progress=progress, billing=Billing.USED)
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
    if result.confidence is not None:
        row.notes += [f"extrapolation: {r}" for r in result.confidence.extrapolation]
    return row


def _best_row(row: ProfileRow, candidate: dict[str, Any], doc: YamlDocument | None,
              base_dir: Path, hw: HardwareProfile, n0: int,
              progress: Callable[[float, float], None] | None) -> ProfileRow:
    """``row`` filled with the profile at its best within the SLO (:mod:`.compare_best`);
    the caller turns its failures into the row's status."""
    tick = None if progress is None else (lambda fraction: progress(fraction, 1.0))
    best = best_fleet(candidate, doc, base_dir, hw, n0, tick)
    row.notes += best.notes
    row.accelerators = best.scenario.cluster.accelerators
    row.parallelism, row.layout = layout_of(best.scenario)
    row.result = best.result
    row.metrics = {**_metrics(best.result), **best.metrics}
    row.notes += best.result.warnings
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
        "expected_error": result.confidence.expected_error if result.confidence else None,
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
