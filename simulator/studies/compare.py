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

The first profile is the baseline: every row carries its metrics and their ratios to the
baseline's (value / baseline). A profile that cannot run the workload (the model does not
fit, the precision is unsupported, the budget buys too few devices) is a row with a status
and a reason, not an error. Deterministic: every row uses the scenario's seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.economics.cost import run_cost
from simulator.economics.power import Activity, power_model
from simulator.errors import DoesNotFit, InputError, InputErrors, XpusimError
from simulator.loading import scenario_from_dict
from simulator.perf.footprint import inference_footprint
from simulator.perf.memory import kv_bytes_per_token
from simulator.profiles.catalog import load_hardware, load_model, looks_like_path
from simulator.profiles.hardware import HardwareProfile
from simulator.profiles.inference import InferenceWorkload, TokenDistribution
from simulator.profiles.model import AttentionKind, ModelProfile
from simulator.profiles.overrides import apply_overrides
from simulator.profiles.scenario import Scenario
from simulator.profiles.validation import validate
from simulator.profiles.yaml_source import YamlDocument, read_yaml
from simulator.results import Result
from simulator.simulate import simulate

MATCHES = ("count", "power", "cost")
OK, DOES_NOT_FIT, INFEASIBLE = "ok", "does_not_fit", "infeasible"
_PRICE_FIELDS = ("cloud_usd_per_hour", "purchase_usd_per_accelerator")


@dataclass(frozen=True)
class Metric:
    """A compared figure: its key in rows, a label and unit for tables, which way is better
    (``higher``, ``lower`` or ``neither``), and whether the ratio plot shows it."""

    key: str
    label: str
    unit: str
    better: str
    headline: bool = True


INFERENCE_METRICS = (
    Metric("output_tokens_per_s", "throughput", "output tokens/s", "higher"),
    Metric("output_tokens_per_s_per_accelerator", "throughput per accelerator",
           "output tokens/s", "higher"),
    Metric("requests_per_s", "requests", "req/s", "higher", False),
    Metric("ttft_p50_s", "TTFT p50", "s", "lower", False),
    Metric("ttft_p99_s", "TTFT p99", "s", "lower"),
    Metric("tpot_p50_s", "TPOT p50", "s", "lower"),
    Metric("tpot_p99_s", "TPOT p99", "s", "lower"),
    Metric("slo_attainment", "SLO attainment", "fraction", "higher", False),
    Metric("utilization", "compute utilization", "fraction", "higher"),
    Metric("cost_per_million_tokens_usd", "cost per million tokens", "USD", "lower"),
    Metric("energy_per_token_j", "energy per token", "J", "lower"),
    Metric("average_power_w", "facility power", "W", "neither", False),
    Metric("cost_usd", "cost of the run", "USD", "lower"),
)
TRAINING_METRICS = (
    Metric("tokens_per_s", "throughput", "tokens/s", "higher"),
    Metric("tokens_per_s_per_accelerator", "throughput per accelerator", "tokens/s",
           "higher"),
    Metric("step_time_s", "step time", "s", "lower"),
    Metric("mfu", "MFU", "fraction", "higher"),
    Metric("utilization", "compute utilization", "fraction", "higher", False),
    Metric("cost_per_million_tokens_usd", "cost per million tokens", "USD", "lower"),
    Metric("energy_per_token_j", "energy per token", "J", "lower"),
    Metric("average_power_w", "facility power", "W", "neither", False),
    Metric("wall_time_s", "time to train (with failures)", "s", "lower"),
    Metric("cost_usd", "cost of the run", "USD", "lower"),
)


def metrics_for(kind: str) -> tuple[Metric, ...]:
    return TRAINING_METRICS if kind == "training" else INFERENCE_METRICS


@dataclass
class Row:
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
        return {k: v for k, v in self.__dict__.items() if k != "result"}


@dataclass
class Comparison:
    """Rows in the order the profiles were given; the first is the baseline."""

    scenario: str
    kind: str
    match: str
    metrics: tuple[Metric, ...]
    rows: list[Row]
    budget: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def baseline(self) -> Row:
        return self.rows[0]

    def as_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "kind": self.kind, "match": self.match,
                "baseline": self.baseline.hardware, "budget": self.budget,
                "metrics": [m.__dict__ for m in self.metrics],
                "rows": [r.as_dict() for r in self.rows], "notes": self.notes}


class _Unfit(Exception):
    """A profile that cannot run the workload: (status, reason)."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


# ---- the public function -----------------------------------------------------------------
def compare(scenario: str | Path | dict[str, Any], hardware_ids: Sequence[str],
            match: str = "count", overrides: Sequence[str] = (), *,
            progress: Callable[[float, float], None] | None = None) -> Comparison:
    """Run ``scenario`` (a file or a mapping) on each of ``hardware_ids`` (built-in ids or
    paths); the first is the baseline. ``progress(done, total)`` hears each finished row."""
    if match not in MATCHES:
        raise InputError(f"--match must be one of {', '.join(MATCHES)}, got {match!r}")
    if not hardware_ids:
        raise InputError("--hardware needs at least one profile id (the first is the baseline)")
    data, doc, base_dir = _base(scenario, overrides)
    refs = [str(Path(h).resolve()) if looks_like_path(h) else h for h in hardware_ids]
    profiles = [load_hardware(ref) for ref in refs]
    kind = "training" if (data.get("workload") or {}).get("kind") == "training" else "inference"
    own = _own_hardware_id(data, base_dir)
    n0 = int((data.get("cluster") or {}).get("accelerators") or 0)
    if n0 <= 0:
        raise InputError("the scenario needs cluster.accelerators (a positive count)",
                         file=doc.file if doc else None, path="cluster.accelerators")
    per_device, budget, budget_text = _budget(match, data, profiles[0], refs[0], n0, base_dir)
    rows = []
    for i, (ref, hw) in enumerate(zip(refs, profiles, strict=True)):
        rows.append(_row(data, doc, base_dir, ref, hw, own, match, n0, budget, per_device))
        if progress is not None:
            progress(i + 1, len(refs))
    metrics = metrics_for(kind)
    _add_ratios(rows, metrics)
    notes = []
    if rows[0].status != OK:
        notes.append(f"the baseline {rows[0].hardware} did not run ({rows[0].reason}); "
                     f"no ratios")
    return Comparison(str(data.get("name", "")), kind, match, metrics, rows, budget_text, notes)


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


# ---- budgets: how many accelerators a profile gets -----------------------------------------
def _cost_data(data: dict[str, Any], hw_id: str, own: str | None) -> tuple[dict, list[str]]:
    """The scenario's cost block for ``hw_id``: a price the scenario sets is its own
    hardware's, so other profiles use their profile price."""
    cost = dict(data.get("cost") or {})
    notes = []
    if hw_id != own:
        for key in _PRICE_FIELDS:
            if cost.pop(key, None) is not None:
                notes.append(f"cost.{key} is the scenario's price for {own}; {hw_id} uses "
                             f"its profile's price")
    return cost, notes


def _per_device(match: str, hw: HardwareProfile, cost: dict[str, Any]) -> float:
    """Facility watts at full power, or USD per hour at full power, of one accelerator."""
    from simulator.profiles.cost import CostAssumptions

    assumptions = validate(CostAssumptions, cost)
    if match == "power":
        return power_model(hw, assumptions.pue).facility_w(Activity(1.0, 1.0, 0.0))
    return run_cost(hw, assumptions, 1, Activity(3600.0, 1.0, 0.0)).cost_usd


def _budget(match: str, data: dict[str, Any], hw: HardwareProfile, ref: str, n0: int,
            base_dir: Path) -> tuple[float, float, str]:
    if match == "count":
        return 0.0, float(n0), f"{n0} accelerators each"
    own = _own_hardware_id(data, base_dir)
    cost, _ = _cost_data(data, hw.id, own)
    try:
        each = _per_device(match, hw, cost)
    except XpusimError as exc:
        raise InputError(f"the baseline {ref} has no {match} figure: {_one_line(exc)}") from None
    total = each * n0
    text = (f"facility power of {n0} x {hw.id} at full load: {total / 1e3:,.1f} kW"
            if match == "power" else
            f"spend of {n0} x {hw.id}: {total:,.2f} USD/h")
    return each, total, text


def _target_count(match: str, hw: HardwareProfile, cost: dict[str, Any], n0: int,
                  budget: float) -> tuple[int, str | None]:
    if match == "count":
        return n0, None
    try:
        each = _per_device(match, hw, cost)
    except XpusimError as exc:
        raise _Unfit(INFEASIBLE, _one_line(exc)) from None
    n = math.floor(budget / each * (1 + 1e-9))
    unit = "W" if match == "power" else "USD/h"
    return n, f"{match} budget buys {n} accelerators at {each:,.4g} {unit} each"


def _round_count(n: int, unit: int, domain: int, what: str) -> tuple[int, str]:
    """``n`` rounded down to whole units (replicas or groups), and to whole scale-up domains
    where the budget covers one."""
    if n < unit:
        raise _Unfit(INFEASIBLE, f"the budget buys {n} accelerators, fewer than one {what} "
                                 f"({unit})")
    both = math.lcm(unit, domain)
    if n >= both:
        return n // both * both, f"rounded down to whole scale-up domains of {domain}"
    return n // unit * unit, f"rounded down to whole {what}s of {unit}"


# ---- one row -------------------------------------------------------------------------------
def _row(data: dict[str, Any], doc: YamlDocument | None, base_dir: Path, ref: str,
         hw: HardwareProfile, own: str | None, match: str, n0: int, budget: float,
         per_device: float) -> Row:
    row = Row(hardware=hw.id, name=hw.name, status=OK)
    try:
        cost, notes = _cost_data(data, hw.id, own)
        row.notes += notes
        n, note = _target_count(match, hw, cost, n0, budget)
        if note:
            row.notes.append(note)
        candidate = {**data, "hardware": ref, "cost": cost}
        if (data.get("workload") or {}).get("kind") == "training":
            candidate, notes = _training_layout(candidate, base_dir, hw, n, match)
        else:
            candidate, notes = _inference_layout(candidate, base_dir, hw, n, match, n0)
        row.notes += notes
        scenario = _validated(candidate, doc, base_dir)
        row.accelerators = scenario.cluster.accelerators
        row.parallelism, row.layout = _layout_of(scenario)
        result = simulate(scenario)
    except _Unfit as exc:
        row.status, row.reason = exc.status, exc.reason
        return row
    except DoesNotFit as exc:
        row.status, row.reason = DOES_NOT_FIT, _one_line(exc)
        return row
    except XpusimError as exc:
        row.status, row.reason = INFEASIBLE, _one_line(exc)
        return row
    row.result = result
    row.metrics = _metrics(result)
    if result.inference is not None and result.inference.dropped:
        row.notes.append(f"{result.inference.dropped} requests dropped (too long for the "
                         f"context or the KV cache)")
    row.notes += result.warnings
    return row


def _validated(data: dict[str, Any], doc: YamlDocument | None, base_dir: Path) -> Scenario:
    return scenario_from_dict(data, doc=doc, base_dir=base_dir)


def _one_line(exc: Exception) -> str:
    if isinstance(exc, InputErrors):
        return "; ".join(e.message if not e.path else f"{e.path}: {e.message}"
                         for e in exc.errors)
    if isinstance(exc, InputError):
        return exc.message if not exc.path else f"{exc.path}: {exc.message}"
    return " ".join(str(exc).split())


def _layout_of(scenario: Scenario) -> tuple[dict[str, int], str]:
    w = scenario.workload
    if isinstance(w, InferenceWorkload):
        if w.disaggregation is not None:
            d = w.disaggregation
            pre, dec = d.prefill_parallelism or w.parallelism, d.decode_parallelism or w.parallelism
            return ({"prefill_replicas": d.prefill_replicas, "prefill_tp": pre.tp,
                     "decode_replicas": d.decode_replicas, "decode_tp": dec.tp},
                    f"{d.prefill_replicas} prefill x tp{pre.tp}pp{pre.pp} + "
                    f"{d.decode_replicas} decode x tp{dec.tp}pp{dec.pp}")
        p = w.parallelism
        par = {"tp": p.tp, "pp": p.pp, "ep": p.ep, "replicas": w.replicas or 0}
        ep = f" ep{p.ep}" if p.ep > 1 else ""
        return par, f"{w.replicas} x tp{p.tp} pp{p.pp}{ep}"
    p = w.parallelism
    par = {"tp": p.tp, "pp": p.pp, "cp": p.cp, "ep": p.ep, "dp": p.dp or 0,
           "global_batch_size": w.global_batch_size}
    extra = "".join(f" {k}{v}" for k, v in (("cp", p.cp), ("ep", p.ep)) if v > 1)
    return par, f"tp{p.tp} pp{p.pp} dp{p.dp}{extra}"


# ---- training: keep the model-parallel layout, let dp follow the count --------------------
def _training_layout(data: dict[str, Any], base_dir: Path, hw: HardwareProfile, n: int,
                     match: str) -> tuple[dict[str, Any], list[str]]:
    workload = dict(data["workload"])
    par = dict(workload.get("parallelism") or {})
    tp, pp, cp, ep = (int(par.get(k, 1)) for k in ("tp", "pp", "cp", "ep"))
    group = tp * pp * cp
    unit = group * (ep // math.gcd(ep, cp))  # dp*cp must stay a multiple of ep
    notes: list[str] = []
    if n < 1:
        raise _Unfit(INFEASIBLE, "the budget buys no accelerator")
    if match != "count":
        n, note = _round_count(n, unit, hw.scale_up.domain_size.value, "model-parallel group")
        notes.append(note)
    if n % group:
        raise _Unfit(INFEASIBLE, f"{n} accelerators do not split into tp*pp*cp = {group}")
    dp = n // group
    par.pop("dp", None)
    mbs = int(workload.get("micro_batch_size", 1))
    step = dp * mbs * (pp if workload.get("pipeline_schedule") == "interleaved" else 1)
    batch = int(workload.get("global_batch_size", step))
    if batch % step:
        new = max(step, round(batch / step) * step)
        notes.append(f"global_batch_size {batch} -> {new}: it must stay a multiple of "
                     f"dp x micro_batch_size = {dp} x {mbs}"
                     + (f" x pp {pp} (interleaved)" if step != dp * mbs else ""))
        workload["global_batch_size"] = new
    workload["parallelism"] = par
    return {**data, "workload": workload, "cluster": {**data.get("cluster", {}),
                                                       "accelerators": n}}, notes


# ---- serving: the smallest layout that holds a full batch ------------------------------------
def _model(data: dict[str, Any], base_dir: Path) -> ModelProfile:
    ref = data.get("model")
    if isinstance(ref, str):
        return load_model(ref, base_dir)
    return validate(ModelProfile, ref)


def _tp_choices(model: ModelProfile, limit: int) -> list[int]:
    kv = model.kv_heads_resolved
    tps, tp = [], 1
    while tp <= limit:
        heads_ok = model.attention_heads % tp == 0
        kv_ok = (model.attention is AttentionKind.MLA or (kv % tp == 0 if tp <= kv
                                                           else tp % kv == 0))
        if heads_ok and kv_ok:
            tps.append(tp)
        tp *= 2
    return tps


def _lengths(count: Any) -> tuple[float, float]:
    """Mean and longest length of a token count (a number or a distribution mapping)."""
    if isinstance(count, int | float):
        return float(count), float(count)
    d = TokenDistribution.model_validate(count)
    if d.value is not None:
        return float(d.value), float(d.value)
    if d.low is not None and d.high is not None:
        return (d.low + d.high) / 2, float(d.high)
    if d.values:
        weights = d.weights or (1.0,) * len(d.values)
        mean = sum(v * w for v, w in zip(d.values, weights, strict=True)) / sum(weights)
        return mean, float(d.max or max(d.values))
    mean = float(d.mean or 1)
    return mean, float(d.max or 4 * mean)


def _inference_layout(data: dict[str, Any], base_dir: Path, hw: HardwareProfile, n: int,
                      match: str, n0: int) -> tuple[dict[str, Any], list[str]]:
    workload = dict(data["workload"])
    if n < 1:
        raise _Unfit(INFEASIBLE, "the budget buys no accelerator")
    if workload.get("disaggregation"):
        return _disaggregated(data, workload, n, n0)
    par = dict(workload.get("parallelism") or {})
    pp0, ep0 = int(par.get("pp", 1)), int(par.get("ep", 1))
    tp, pp, notes = _choose_layout(data, workload, base_dir, hw, n, pp0)
    par.update(tp=tp, pp=pp, ep=math.gcd(ep0, tp))
    if par["ep"] != ep0:
        notes.append(f"ep {ep0} -> {par['ep']}: ep must divide tp")
    devices = tp * pp
    if match != "count":
        n, note = _round_count(n, devices, hw.scale_up.domain_size.value, "replica")
        notes.append(note)
    workload.update(parallelism=par, replicas=n // devices)
    if n % devices:
        notes.append(f"{n % devices} accelerators idle: {n} is not a multiple of tp*pp = "
                     f"{devices}")
    return {**data, "workload": workload, "cluster": {"accelerators": n}}, notes


def _choose_layout(data: dict[str, Any], workload: dict[str, Any], base_dir: Path,
                   hw: HardwareProfile, n: int, pp0: int) -> tuple[int, int, list[str]]:
    """The serving layout for ``n`` accelerators of ``hw`` (see the module docstring)."""
    probe = _validated({**data, "cluster": {"accelerators": n},
                        "workload": {**workload, "parallelism": {}, "replicas": 1}},
                       None, base_dir)
    model, w = probe.model, probe.workload
    assert isinstance(w, InferenceWorkload) and w.kv_cache_precision is not None
    mean_p, max_p = _lengths(workload.get("prompt_tokens", 1))
    mean_o, max_o = _lengths(workload.get("output_tokens", 1))
    batch = w.batching.max_batch_size * (mean_p + mean_o)
    longest = min(max_p + max_o, model.max_seq_len)
    cap = w.batching.kv_cache_tokens
    tps = _tp_choices(model, min(hw.scale_up.domain_size.value, n))
    pps = [p for p in range(pp0, model.layers + 1) if model.layers % p == 0]
    feasible: list[tuple[float, int, int]] = []
    closest: tuple[float, str] | None = None  # (shortfall, why) of the nearest miss
    for pp in pps:
        for tp in (t for t in tps if t * pp <= n):
            footprint = inference_footprint(probe, tp=tp, pp=pp)
            if not footprint.fits:
                miss = (footprint.total / footprint.capacity,
                        f"even as tp{tp} pp{pp} a device needs {footprint.total / 1e9:,.1f} GB "
                        f"of its {footprint.capacity / 1e9:,.0f} GB before any KV cache")
                closest = min(closest or miss, miss)
                continue
            tokens = footprint.headroom / kv_bytes_per_token(model, w.kv_cache_precision, tp, pp)
            if cap is not None and cap <= tokens:
                tokens = cap
            if tokens < longest:
                miss = (longest / max(tokens, 1.0) - 1e9,  # a KV shortfall beats a weight one
                        f"at best (tp{tp} pp{pp}) the KV cache holds {tokens:,.0f} tokens, "
                        f"fewer than the longest request ({longest:,.0f})")
                closest = min(closest or miss, miss)
                continue
            if tokens >= batch:
                return tp, pp, [f"tp{tp} pp{pp}: the smallest layout whose KV cache "
                                f"({tokens:,.0f} tokens) holds a full batch"]
            feasible.append((tokens * (n // (tp * pp)) / n, tp, pp))
    if not feasible:
        why = closest[1] if closest else f"no layout fits in {n} accelerators"
        raise _Unfit(DOES_NOT_FIT, f"{model.id} ({w.precision.value}) on {n} x {hw.id}: {why}")
    _, tp, pp = max(feasible, key=lambda f: (f[0], -f[1] * f[2]))
    return tp, pp, [f"tp{tp} pp{pp}: no layout's KV cache holds a full batch "
                    f"({w.batching.max_batch_size} x {mean_p + mean_o:,.0f} tokens); this one "
                    f"has the most KV cache per accelerator"]


def _disaggregated(data: dict[str, Any], workload: dict[str, Any], n: int,
                   n0: int) -> tuple[dict[str, Any], list[str]]:
    """Keep the pools' layouts; scale their replica counts with the accelerator count."""
    d = dict(workload["disaggregation"])
    notes = ["disaggregated: the pools' layouts are kept as written"]
    if n != n0:
        for key in ("prefill_replicas", "decode_replicas"):
            d[key] = max(1, math.floor(int(d[key]) * n / n0))
        notes.append(f"replicas scaled by {n}/{n0}: {d['prefill_replicas']} prefill, "
                     f"{d['decode_replicas']} decode")
    workload = {**workload, "disaggregation": d}
    return {**data, "workload": workload, "cluster": {"accelerators": n}}, notes


def _metrics(result: Result) -> dict[str, float | None]:
    """The compared figures of one result (keys of the Metric tables)."""
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


def _add_ratios(rows: list[Row], metrics: Sequence[Metric]) -> None:
    base = rows[0].metrics
    for row in rows:
        row.ratios = {}
        for m in metrics:
            value, ref = row.metrics.get(m.key), base.get(m.key)
            row.ratios[m.key] = value / ref if value is not None and ref else None
