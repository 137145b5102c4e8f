"""The layouts a training plan searches: every dimension, its default values, and ``--fix``.

A plan searches the data-parallel shape (TP, PP, CP, EP), the pipeline's model chunks per
stage (``vpp``) and end-stage layer counts (:mod:`simulator.perf.stage_split`), the
micro-batch size, recomputation and the ZeRO stage. The scenario's own value of each is one
candidate among the defaults, never the only one, unless the user pins it with ``fix``
(``xpusim plan --fix workload.parallelism.vpp``) or gives a list.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from simulator.errors import InputError
from simulator.perf.mtp_training import trained_mtp_layers
from simulator.perf.stage_split import (
    EndStageWeights,
    PipelineOption,
    end_stage_weights,
    pipeline_options,
)
from simulator.profiles.scenario import Scenario
from simulator.profiles.training import TrainingWorkload
from simulator.studies.plan import default_tps

RECOMPUTE_ORDER = ("none", "selective", "full")  # least work first
LAYOUT_COLUMNS = ["accelerators", "tp", "pp", "vpp", "dp", "cp", "ep", "first_stage_layers",
                  "last_stage_layers", "micro_batch_size", "recompute", "zero"]
_PAR = "workload.parallelism"
# the dimensions --fix may pin: field path -> (the plan_training argument, its CLI flag)
FIXABLE = {f"{_PAR}.tp": ("tps", "--tp"), f"{_PAR}.pp": ("pps", "--pp"),
           f"{_PAR}.cp": ("cps", "--cp"), f"{_PAR}.ep": ("eps", "--ep"),
           f"{_PAR}.vpp": ("vpps", "--vpp"), f"{_PAR}.zero": ("zeros", "--zero"),
           f"{_PAR}.first_stage_layers": ("split", ""),
           f"{_PAR}.last_stage_layers": ("split", ""),
           "workload.micro_batch_size": ("micro_batches", "--micro-batch"),
           "workload.recompute": ("recomputes", "--recompute")}


@dataclass(frozen=True, kw_only=True)
class LayoutCandidate:
    """One training layout a plan considers on ``accelerators`` devices (dp is what is
    left). ``vpp``, ``first_stage_layers`` and ``last_stage_layers`` are None until the
    pipeline options are expanded (a layout pruned before that has none). Not
    :class:`simulator.perf.layouts.Layout`, the resolved layout ops are priced with."""

    accelerators: int
    tp: int
    pp: int
    cp: int
    ep: int
    micro_batch_size: int
    recompute: str
    zero: int
    vpp: int | None = None
    first_stage_layers: int | None = None
    last_stage_layers: int | None = None

    @property
    def dp(self) -> int:
        """Data-parallel replicas: the accelerators the model-parallel group leaves."""
        return self.accelerators // (self.tp * self.pp * self.cp)

    def labels(self) -> dict[str, Any]:
        """The layout's columns in a plan's tables (``dp`` included), in table order."""
        values = {**asdict(self), "dp": self.dp}
        return {name: values[name] for name in LAYOUT_COLUMNS}

    def with_pipeline(self, option: PipelineOption) -> LayoutCandidate:
        """This layout with ``option``'s chunks per stage and end-stage layer counts."""
        return LayoutCandidate(**{**asdict(self), "vpp": option.vpp,
                                  "first_stage_layers": option.first,
                                  "last_stage_layers": option.last})

    def with_recompute(self, recompute: str) -> LayoutCandidate:
        """This layout with another recompute setting."""
        return LayoutCandidate(**{**asdict(self), "recompute": recompute})


@dataclass(frozen=True, kw_only=True)
class TrainingSpace:
    """The layout choices a training plan crosses at every cluster size; ``vpps`` None
    searches every valid one, ``split`` None the end-stage options of the model's weights."""

    tps: Sequence[int]
    pps: Sequence[int]
    cps: Sequence[int]
    eps: Sequence[int]
    micro_batches: Sequence[int]
    recomputes: Sequence[str]
    zeros: Sequence[int]
    layers: int
    weights: EndStageWeights
    vpps: Sequence[int] | None = None
    split: tuple[int | None, int | None] | None = None

    def layouts(self, accelerators: int) -> Iterator[LayoutCandidate]:
        """Every combination of the shape choices (pipeline options not yet expanded), in a
        fixed order."""
        for tp, pp, cp, ep, mb, rc, zero in itertools.product(
                self.tps, self.pps, self.cps, self.eps, self.micro_batches, self.recomputes,
                self.zeros):
            yield LayoutCandidate(accelerators=accelerators, tp=int(tp), pp=int(pp), cp=int(cp),
                                  ep=int(ep), micro_batch_size=int(mb), recompute=str(rc),
                                  zero=int(zero))

    def pipelines(self, pp: int) -> list[PipelineOption]:
        """The pipeline options for ``pp`` stages (see :mod:`simulator.perf.stage_split`)."""
        return pipeline_options(self.layers, pp, self.weights, vpps=self.vpps,
                                fixed_split=self.split)


def scenario_layout(scenario: Scenario) -> LayoutCandidate:
    """The scenario's own layout, as a candidate (the plan's reference)."""
    w = scenario.workload
    assert isinstance(w, TrainingWorkload)
    par, layers = w.parallelism, scenario.model.layers
    counts = par.stage_layers(layers) or [layers]
    return LayoutCandidate(accelerators=scenario.cluster.accelerators, tp=par.tp, pp=par.pp,
                           cp=par.cp, ep=par.ep, micro_batch_size=w.micro_batch_size,
                           recompute=w.recompute.value, zero=par.zero, vpp=par.vpp,
                           first_stage_layers=counts[0], last_stage_layers=counts[-1])


def check_fixed(fix: Sequence[str], given: dict[str, Any]) -> None:
    """Reject a ``fix`` that names no searched dimension, or one also given a list."""
    for path in fix:
        if path not in FIXABLE:
            raise InputError(f"--fix {path!r} is not a dimension the training plan searches; "
                             f"use one of: {', '.join(FIXABLE)}")
        argument, flag = FIXABLE[path]
        if flag and given.get(argument):
            raise InputError(f"--fix {path} keeps the scenario's value, and {flag} gives a "
                             f"list for the same dimension: use one or the other")


def _with(values: Sequence[Any] | None, default: Sequence[Any]) -> list[Any]:
    """The values given, or the default ones (in order, once each)."""
    return list(dict.fromkeys(values or default))


def training_space(scenario: Scenario, *, fix: Sequence[str] = (),
                   **given: Sequence[Any] | None) -> TrainingSpace:
    """The given choices, the scenario's value where fixed, and defaults for the rest: the
    scenario's value joins each default list, so its own layout is always a candidate."""
    w = scenario.workload
    assert isinstance(w, TrainingWorkload)
    check_fixed(fix, given)
    par, model = w.parallelism, scenario.model
    own: dict[str, list[Any]] = {"tps": [par.tp], "pps": [par.pp], "cps": [par.cp], "eps": [par.ep],
           "vpps": [par.vpp], "zeros": [par.zero], "micro_batches": [w.micro_batch_size],
           "recomputes": [w.recompute.value]}
    defaults: dict[str, list[Any]] = {"tps": [*default_tps(scenario.hardware, model), par.tp],
                "pps": [*(pp for pp in (1, 2, 4, 8, 16) if pp <= model.layers), par.pp],
                "cps": [par.cp], "eps": [par.ep],
                "micro_batches": [1, 2, 4, 8, w.micro_batch_size],
                "recomputes": list(RECOMPUTE_ORDER), "zeros": [1, 3, par.zero]}
    fixed = {FIXABLE[path][0] for path in fix}
    chosen: dict[str, Any] = {name: own[name] if name in fixed else _with(given.get(name), values)
              for name, values in defaults.items()}
    vpps = own["vpps"] if "vpps" in fixed else given.get("vpps") or None
    split = (par.first_stage_layers, par.last_stage_layers) if "split" in fixed else None
    weights = end_stage_weights(model, w.seq_len, trained_mtp_layers(model, w))
    return TrainingSpace(**chosen, layers=model.layers, weights=weights, vpps=vpps, split=split)
