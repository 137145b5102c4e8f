"""How each profile of a comparison gets its cluster and layout (see :mod:`.compare`).

Sizing (``count``, ``power``, ``cost``): the baseline's budget, each profile's count, rounded
to whole replicas or model-parallel groups and, where that costs little, whole scale-up
domains. Layout: training keeps tp/pp/cp/ep and lets dp (and if it must, the global batch)
follow; serving takes the smallest layout whose KV cache holds a full batch, its tokens
counted as the serving engine counts them (:mod:`simulator.perf.kv_token_bytes`: sliding-window
layers keep their window, a drafter adds its K and V). A profile that
cannot be set up raises :class:`Unfit` with a status and a one-line reason.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from simulator.economics.cost import run_cost
from simulator.economics.power import Activity, power_model
from simulator.errors import InputError, InputErrors, XpusimError
from simulator.loading import scenario_from_dict
from simulator.perf.footprint import inference_footprint
from simulator.perf.kv_token_bytes import kv_tokens_held
from simulator.profiles.cost import CostAssumptions
from simulator.profiles.hardware import HardwareProfile
from simulator.profiles.inference import InferenceWorkload, TokenDistribution
from simulator.profiles.model import AttentionKind, ModelProfile
from simulator.profiles.scenario import Scenario
from simulator.profiles.validation import validate
from simulator.profiles.yaml_source import YamlDocument
from simulator.studies.rows import DOES_NOT_FIT, INFEASIBLE

PRICE_FIELDS = ("cloud_usd_per_hour", "purchase_usd_per_accelerator")
DOMAIN_SLACK = 0.02  # whole scale-up domains unless they cost more than this share of a budget


class Unfit(Exception):
    """A profile that cannot run the workload: (status, reason)."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


# ---- budgets: how many accelerators a profile gets -----------------------------------------
def cost_data(data: dict[str, Any], hw_id: str, own: str | None) -> tuple[dict, list[str]]:
    """The scenario's cost block for ``hw_id``: a price the scenario sets is its own
    hardware's, so other profiles use their profile price."""
    cost = dict(data.get("cost") or {})
    notes = []
    if hw_id != own:
        for key in PRICE_FIELDS:
            if cost.pop(key, None) is not None:
                notes.append(f"cost.{key} is the scenario's price for {own}; {hw_id} uses "
                             f"its profile's price")
    return cost, notes


def _per_device(match: str, hw: HardwareProfile, cost: dict[str, Any]) -> float:
    """Facility watts at full power, or USD per hour at full power, of one accelerator."""
    assumptions = validate(CostAssumptions, cost)
    if match == "power":
        return power_model(hw, assumptions.pue).facility_w(Activity(1.0, 1.0, 0.0))
    return run_cost(hw, assumptions, 1, Activity(3600.0, 1.0, 0.0)).cost_usd


def budget_of(match: str, data: dict[str, Any], hw: HardwareProfile, ref: str, n0: int,
              own: str | None) -> tuple[float, str]:
    """The baseline's budget (facility W or USD/h; the count for ``count``) and its text."""
    if match == "count":
        return float(n0), f"{n0} accelerators each"
    cost, _ = cost_data(data, hw.id, own)
    try:
        each = _per_device(match, hw, cost)
    except XpusimError as exc:
        raise InputError(f"the baseline {ref} has no {match} figure: {error_line(exc)}") from None
    total = each * n0
    text = (f"facility power of {n0} x {hw.id} at full load: {total / 1e3:,.1f} kW"
            if match == "power" else
            f"spend of {n0} x {hw.id}: {total:,.2f} USD/h")
    return total, text


def target_count(match: str, hw: HardwareProfile, cost: dict[str, Any], n0: int,
                 budget: float) -> tuple[int, str | None]:
    """How many accelerators of ``hw`` the baseline's ``budget`` buys (before rounding)."""
    if match == "count":
        return n0, None
    try:
        each = _per_device(match, hw, cost)
    except XpusimError as exc:
        raise Unfit(INFEASIBLE, error_line(exc)) from None
    n = math.floor(budget / each * (1 + 1e-9))
    unit = "W" if match == "power" else "USD/h"
    return n, f"{match} budget buys {n} accelerators at {each:,.4g} {unit} each"


def round_count(n: int, unit: int, domain: int, what: str) -> tuple[int, str]:
    """``n`` rounded down to whole units (``what``: a replica, a model-parallel group), and
    to whole scale-up domains as well unless that gives up more than ``DOMAIN_SLACK``."""
    if n < unit:
        raise Unfit(INFEASIBLE, f"the budget buys {n} accelerators, fewer than {unit} "
                                f"({what})")
    units = n // unit * unit
    both = math.lcm(unit, domain)
    whole = n // both * both
    if whole and whole >= (1 - DOMAIN_SLACK) * units:
        return whole, (f"rounded down to {whole}, a multiple of both the scale-up domain "
                       f"({domain}) and {unit} ({what})")
    note = f"rounded down to {units}, a multiple of {unit} ({what})"
    if domain > unit and units > domain:
        note += f"; whole scale-up domains of {domain} as well would leave {whole}"
    return units, note


def validated(data: dict[str, Any], doc: YamlDocument | None, base_dir: Path) -> Scenario:
    """The scenario mapping validated (paths relative to ``base_dir``, lines from ``doc``)."""
    return scenario_from_dict(data, doc=doc, base_dir=base_dir)


def error_line(exc: Exception) -> str:
    """An error as the one-line reason of a row (field paths kept, file names dropped)."""
    if isinstance(exc, InputErrors):
        return "; ".join(e.message if not e.path else f"{e.path}: {e.message}"
                         for e in exc.errors)
    if isinstance(exc, InputError):
        return exc.message if not exc.path else f"{exc.path}: {exc.message}"
    return " ".join(str(exc).split())


def layout_of(scenario: Scenario) -> tuple[dict[str, int], str]:
    """The layout a row ran with: its numbers, and a short text for tables."""
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
        dp = f" attention-dp{p.attention_dp}" if p.attention_dp > 1 else ""
        return par, f"{w.replicas} x tp{p.tp} pp{p.pp}{dp}{ep}"
    t = w.parallelism
    numbers = {"tp": t.tp, "pp": t.pp, "cp": t.cp, "ep": t.ep, "dp": t.dp or 0,
               "global_batch_size": w.global_batch_size}
    extra = "".join(f" {k}{v}" for k, v in (("cp", t.cp), ("ep", t.ep)) if v > 1)
    return numbers, f"tp{t.tp} pp{t.pp} dp{t.dp}{extra}"


# ---- training: keep the model-parallel layout, let dp follow the count --------------------
def training_layout(data: dict[str, Any], hw: HardwareProfile, n: int,
                    match: str) -> tuple[dict[str, Any], list[str]]:
    """``data`` for ``n`` accelerators of ``hw``: dp derived, the batch kept divisible."""
    workload = dict(data["workload"])
    par = dict(workload.get("parallelism") or {})
    tp, pp, cp, ep = (int(par.get(k, 1)) for k in ("tp", "pp", "cp", "ep"))
    group = tp * pp * cp
    unit = group * (ep // math.gcd(ep, cp))  # dp*cp must stay a multiple of ep
    notes: list[str] = []
    if n < 1:
        raise Unfit(INFEASIBLE, "the budget buys no accelerator")
    if match != "count":
        what = "one model-parallel group" if unit == group else \
            f"{unit // group} model-parallel groups, so that ep divides dp*cp"
        n, note = round_count(n, unit, hw.scale_up.domain_size.value, what)
        notes.append(note)
    if n % group:
        raise Unfit(INFEASIBLE, f"{n} accelerators do not split into tp*pp*cp = {group}")
    dp = n // group
    par.pop("dp", None)
    mbs = int(workload.get("micro_batch_size", 1))
    batch_unit = dp * mbs * (pp if workload.get("pipeline_schedule") == "interleaved" else 1)
    batch = int(workload.get("global_batch_size", batch_unit))
    if batch % batch_unit:
        new = max(batch_unit, round(batch / batch_unit) * batch_unit)
        notes.append(f"global_batch_size {batch} -> {new}: it must stay a multiple of "
                     f"dp x micro_batch_size = {dp} x {mbs}"
                     + (f" x pp {pp} (interleaved)" if batch_unit != dp * mbs else ""))
        workload["global_batch_size"] = new
    workload["parallelism"] = par
    return {**data, "workload": workload, "cluster": {**data.get("cluster", {}),
                                                       "accelerators": n}}, notes


# ---- serving: the smallest layout that holds a full batch ------------------------------------
def _tp_choices(model: ModelProfile, limit: int) -> list[int]:
    """Powers of two up to ``limit`` that divide the heads (and fit the KV heads)."""
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
    mean = d.nominal_mean
    if d.value is not None:
        longest = float(d.value)
    elif d.high is not None:
        longest = float(d.high)
    elif d.values:
        longest = float(d.max or max(d.values))
    else:
        longest = float(d.max or 4 * mean)
    return mean, longest


def inference_layout(data: dict[str, Any], base_dir: Path, hw: HardwareProfile, n: int,
                     match: str, n0: int) -> tuple[dict[str, Any], list[str]]:
    """``data`` for ``n`` accelerators of ``hw``: the layout chosen, replicas filling it."""
    workload = dict(data["workload"])
    if n < 1:
        raise Unfit(INFEASIBLE, "the budget buys no accelerator")
    if workload.get("disaggregation"):
        return _disaggregated(data, workload, n, n0)
    par = dict(workload.get("parallelism") or {})
    pp0, ep0 = int(par.get("pp", 1)), int(par.get("ep", 1))
    if int(par.get("attention_dp", 1)) > 1:  # a wide-EP replica: its layout is the point
        tp, pp = int(par.get("tp", 1)), pp0
        notes = ["attention DP: the replica's layout is kept as written"]
        devices = int(par["attention_dp"]) * tp * pp
        workload.update(replicas=max(1, n // devices))
        return {**data, "workload": workload, "cluster": {"accelerators": n}}, notes
    tp, pp, notes = _choose_layout(data, workload, base_dir, hw, n, pp0)
    tp0 = int(par.get("tp", 1))
    if (tp, pp) != (tp0, pp0):
        notes[-1] += f" (the scenario has tp{tp0} pp{pp0})"
    par.update(tp=tp, pp=pp, ep=math.gcd(ep0, tp))
    if par["ep"] != ep0:
        notes.append(f"ep {ep0} -> {par['ep']}: ep must divide tp")
    devices = tp * pp
    if match != "count":
        n, note = round_count(n, devices, hw.scale_up.domain_size.value, "one replica")
        notes.append(note)
    workload.update(parallelism=par, replicas=n // devices)
    if n % devices:
        notes.append(f"{n % devices} accelerators idle: {n} is not a multiple of tp*pp = "
                     f"{devices}")
    return {**data, "workload": workload, "cluster": {"accelerators": n}}, notes


def _choose_layout(data: dict[str, Any], workload: dict[str, Any], base_dir: Path,
                   hw: HardwareProfile, n: int, pp0: int) -> tuple[int, int, list[str]]:
    """The serving layout for ``n`` accelerators of ``hw`` (see the module docstring)."""
    probe = validated({**data, "cluster": {"accelerators": n},
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
            tokens = kv_tokens_held(probe, footprint.headroom, tp=tp, pp=pp)
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
        raise Unfit(DOES_NOT_FIT, f"{model.id} ({w.precision.value}) on {n} x {hw.id}: {why}")
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
