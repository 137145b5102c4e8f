"""A serving profile at its best within the SLO: the buyer's view of :mod:`.compare`.

At a fixed offered load a fast part idles: its throughput equals everyone's and its cost per
token looks high because the fleet is too big for the load. A buyer asks two other
questions, and this module answers them for one profile:

1. **How much does it carry?** The layout is chosen as in the fixed-load view (the smallest
   TP whose KV cache holds a full batch, :func:`.compare_layout.inference_layout`), and
   twice that TP is tried too where the scale-up domain holds it (more TP shortens prefill
   and decode, which a tight TTFT or TPOT target may need); the layout with the higher
   goodput per accelerator is the profile's best. For each, one
   replica's highest arrival rate meeting every SLO target is searched
   (:func:`simulator.studies.capacity.scenario_capacity`, the search of ``plan
   --capacity``); its output tokens/s per accelerator there is the profile's goodput, and
   its cost per million tokens there (billed for exactly the replica's accelerators, its
   share of a fleet) is what a token costs on this part at its best.
2. **What fleet carries the scenario's load?** The fewest replicas meeting the SLO at the
   scenario's own arrival rate, starting from load / per-replica rate and searched as
   ``plan`` does (:func:`simulator.studies.plan_serving.min_replicas`); the fleet is billed
   in whole purchase units (:mod:`simulator.economics.fleet`), so its dollars per hour are
   what one would rent or buy. The fleet's latencies and cost per token at the load follow.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.economics.fleet import Billing
from simulator.errors import XpusimError
from simulator.profiles.hardware import HardwareProfile
from simulator.profiles.inference import InferenceWorkload
from simulator.profiles.numbers import MAX_ACCELERATORS
from simulator.profiles.scenario import Scenario
from simulator.profiles.yaml_source import YamlDocument
from simulator.results import Result
from simulator.simulate import simulate
from simulator.studies.capacity import check_searchable, scenario_capacity, slo_met
from simulator.studies.compare_layout import Unfit, inference_layout, validated
from simulator.studies.plan_serving import min_replicas

SLO_NOT_MET = "slo_not_met"
EXTRA_REPLICAS = 4  # the fleet search looks this far (and at least 2x) above load / rate


@dataclass(kw_only=True)
class BestFleet:
    """One profile at its best: the fleet for the load, its result, the figures compared."""

    scenario: Scenario
    result: Result
    metrics: dict[str, float | None]
    notes: list[str] = field(default_factory=list)


def _with_replicas(data: dict[str, Any], replicas: int, devices: int) -> dict[str, Any]:
    """``data`` with ``replicas`` replicas and a cluster of exactly their accelerators."""
    workload = {**data["workload"], "replicas": replicas}
    return {**data, "workload": workload, "cluster": {"accelerators": replicas * devices}}


def _layout(candidate: dict[str, Any], base_dir: Path, hw: HardwareProfile,
            n0: int) -> tuple[dict[str, Any], int, list[str]]:  # (data, devices, notes)
    """The serving layout for ``hw`` (chosen among layouts up to a scale-up domain or the
    scenario's count, whichever is larger) and the accelerators of one replica."""
    room = max(n0, min(hw.scale_up.domain_size.value, 1024))
    data, notes = inference_layout(candidate, base_dir, hw, room, "count", n0)
    par = data["workload"]["parallelism"]
    devices = int(par["tp"]) * int(par.get("pp", 1))
    return data, devices, [n for n in notes if "accelerators idle" not in n]


@dataclass(kw_only=True)
class ReplicaCapacity:
    """One layout's replica at its highest sustainable rate (``rate`` None: never met)."""

    data: dict[str, Any]
    devices: int
    layout: str
    describe: str
    load: float  # the scenario's own arrival rate
    rate: float | None = None
    result: Result | None = None
    scenario: Scenario | None = None  # one replica of the layout, at the scenario's rate

    @property
    def goodput(self) -> float:
        """Output tokens/s per accelerator at the sustainable rate (0 where none)."""
        if self.result is None or self.result.inference is None:
            return 0.0
        return self.result.inference.output_tokens_per_s / self.devices


def _wider(data: dict[str, Any], hw: HardwareProfile) -> dict[str, Any] | None:
    """The layout with twice the tensor parallelism, if the scale-up domain holds it."""
    par = dict(data["workload"]["parallelism"])
    tp = int(par["tp"])
    if 2 * tp > hw.scale_up.domain_size.value:
        return None
    par["tp"] = 2 * tp
    return {**data, "workload": {**data["workload"], "parallelism": par}}


def _replica_capacity(data: dict[str, Any], doc: YamlDocument | None, base_dir: Path,
                      tick: Callable[[float], None]) -> ReplicaCapacity:
    """One replica of ``data``'s layout: its sustainable rate, searched, and the result
    there (billed for exactly its accelerators)."""
    par = data["workload"]["parallelism"]
    devices = int(par["tp"]) * int(par.get("pp", 1))
    one = validated(_with_replicas(data, 1, devices), doc, base_dir)
    at_rate: dict[float, Result] = {}

    def probe(scenario: Scenario) -> Result:
        """One replica at a rate, billed for exactly its accelerators."""
        result = simulate(scenario, billing=Billing.EXACT)
        w = scenario.workload
        assert isinstance(w, InferenceWorkload) and w.arrivals.rate_per_s is not None
        at_rate[w.arrivals.rate_per_s] = result
        tick(min(0.6, 0.03 * len(at_rate)))
        return result

    load = check_searchable(one).arrivals.rate_per_s
    assert load is not None
    capacity = scenario_capacity(one, probe)
    found = ReplicaCapacity(data=data, devices=devices, describe=capacity.describe(),
                             layout=f"tp{par['tp']} pp{par.get('pp', 1)}", load=load,
                             scenario=one)
    if capacity.rate_per_s is not None:
        found.rate, found.result = capacity.rate_per_s, at_rate[capacity.rate_per_s]
    return found


def best_replica(candidate: dict[str, Any], doc: YamlDocument | None, base_dir: Path,
                 hw: HardwareProfile, n0: int, tick: Callable[[float], None],
                 ) -> tuple[ReplicaCapacity, list[ReplicaCapacity], list[str]]:
    """One replica of ``candidate`` on ``hw`` at its best layout within the SLO (the best,
    every layout tried, the layout's notes); raises :class:`Unfit` where none meets it.
    Also what ``xpusim roadmap`` prices each hardware option by."""
    data, _, notes = _layout(candidate, base_dir, hw, n0)
    tried = [_replica_capacity(data, doc, base_dir, tick)]
    wider = _wider(data, hw)
    if wider is not None:
        with contextlib.suppress(XpusimError):  # twice the TP: not a layout of this model
            tried.append(_replica_capacity(wider, doc, base_dir, tick))
    best = max(tried, key=lambda t: t.goodput)  # the first (narrower) wins ties
    if best.rate is None or best.result is None or best.result.inference is None:
        raise Unfit(SLO_NOT_MET, "one replica misses the SLO at every rate tried: "
                                 + "; ".join(f"{t.layout}: {t.describe}" for t in tried))
    return best, tried, notes


def best_fleet(candidate: dict[str, Any], doc: YamlDocument | None, base_dir: Path,
               hw: HardwareProfile, n0: int,
               progress: Callable[[float], None] | None = None) -> BestFleet:
    """``candidate`` (the scenario mapping on ``hw``) at its best within the SLO (module
    docstring); raises :class:`Unfit` where one replica never meets the SLO.
    ``progress(fraction)`` hears the searches' simulations (a rough fraction)."""
    tick = progress or (lambda _fraction: None)
    best, tried, notes = best_replica(candidate, doc, base_dir, hw, n0, tick)
    assert best.rate is not None and best.result is not None
    scenario, result = _fleet_for_load(best.data, doc, base_dir, best.devices, best.load,
                                       best.rate, tick)
    assert isinstance(scenario.workload, InferenceWorkload)
    replicas = scenario.workload.replicas or 0
    notes += [f"one replica ({t.layout}) meets the SLO up to {t.rate:.4g} req/s, "
              f"{t.goodput:,.4g} output tokens/s per accelerator ({t.describe})"
              if t.rate is not None else f"one replica ({t.layout}) never meets the SLO "
                                         f"({t.describe})" for t in tried]
    notes.append(f"best: {best.layout}, {replicas} replicas carry the scenario's "
                 f"{best.load:g} req/s")
    metrics = {"goodput_tokens_per_s_per_accelerator": best.goodput,
               "sustainable_rate_per_replica_per_s": best.rate,
               "cost_per_million_tokens_at_slo_usd": best.result.cost_per_million_tokens_usd,
               "replicas": float(replicas),
               "billed_accelerators": float(result.cost.billed_accelerators),
               "usd_per_hour": result.cost_usd / (result.time_s / 3600)
               if result.time_s else None}
    return BestFleet(scenario=scenario, result=result, metrics=metrics, notes=notes)


def _fleet_for_load(data: dict[str, Any], doc: YamlDocument | None, base_dir: Path,
                    devices: int, load: float, rate: float,
                    tick: Callable[[float], None]) -> tuple[Scenario, Result]:
    """The fewest replicas meeting the SLO at ``load``, from ``load / rate`` (one replica's
    sustainable rate) up; each fleet billed in whole purchase units."""
    runs: dict[int, tuple[Scenario, Result]] = {}

    def meets(replicas: int) -> bool:
        """Whether ``replicas`` replicas meet the SLO at the scenario's load."""
        scenario = validated(_with_replicas(data, replicas, devices), doc, base_dir)
        runs[replicas] = (scenario, simulate(scenario, billing=Billing.USED))
        tick(min(0.95, 0.6 + 0.1 * len(runs)))
        return slo_met(runs[replicas][1])

    start = max(1, math.ceil(load / rate))
    cap = min(MAX_ACCELERATORS // devices, max(2 * start, start + EXTRA_REPLICAS))
    replicas = min_replicas(meets, start, cap)
    if replicas is None:
        raise Unfit(SLO_NOT_MET, f"no fleet of up to {cap} replicas meets the SLO at the "
                                 f"scenario's {load:g} req/s")
    return runs[replicas]
