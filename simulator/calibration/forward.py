"""The simulator as a function of the calibrated parameters: log-figures of every run.

Each run's scenario is read once, its ``set`` overrides applied, the calibrated profile put in
place of its hardware, and profile and serving stack inlined (as the sensitivity study does),
so a parameter vector becomes plain ``hardware.<field>.value`` and
``workload.engine.<field>.value`` overrides. The simulations of one batch of parameter
vectors are independent study points and run on any executor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simulator.calibration.measurements import Measurement
from simulator.calibration.parameters import Knob, hardware_knobs, stack_knobs
from simulator.errors import InputError, InputErrors, XpusimError
from simulator.loading import scenario_from_dict
from simulator.profiles.inference import InferenceWorkload
from simulator.profiles.overrides import anchor_paths, apply_overrides
from simulator.profiles.scenario import Scenario
from simulator.profiles.yaml_source import read_yaml
from simulator.studies.executors import Executor, InProcessExecutor
from simulator.studies.rows import Base, run_point
from simulator.studies.sensitivity import yaml_float
from simulator.validation.runner import MetricMissing, read_metric

PER_DEVICE = "training.tokens_per_s_per_device"  # torchtitan's figure: not a result path


@dataclass(frozen=True)
class Figure:
    """One measured figure: its run, its result path and the measured value (SI)."""

    run: int
    metric: str
    measured: float


@dataclass(frozen=True)
class Forward:
    """Every run ready to simulate, the knobs that apply and the figures compared."""

    runs: tuple[Base, ...]
    names: tuple[str, ...]
    scenarios: tuple[Scenario, ...]
    knobs: tuple[Knob, ...]
    figures: tuple[Figure, ...]
    relevant: tuple[Knob, ...]  # the knobs some run could depend on: fitted by default
    hardware: dict[str, Any]  # the calibrated profile's JSON dump (the prior)
    hardware_file: Path | None  # its YAML, when it came from a file (the output keeps its form)
    stacks: dict[str, dict[str, Any]]  # the serving stacks' JSON dumps, by id

    def knob_applies(self, knob: Knob, run: int) -> bool:
        """Hardware knobs touch every run, a stack's only the runs that use that stack."""
        workload = self.scenarios[run].workload
        return knob.target == "hardware" or (isinstance(workload, InferenceWorkload)
                                             and workload.engine.id == knob.stack)


def build(measurements: Sequence[Measurement], hardware: str | None,
          hardware_base: Path | None) -> Forward:
    """Read every run's scenario with the profile under calibration in place."""
    datas, scenarios = [], []
    for m in measurements:
        doc = read_yaml(m.scenario_file)
        if not isinstance(doc.data, dict):
            raise InputError("a scenario must be a mapping of fields", file=doc.file)
        data = apply_overrides(doc.data, m.overrides)
        if hardware is not None:
            # a path given on the command line or in the measurements file, made absolute
            data["hardware"] = anchor_paths(("hardware",), hardware, hardware_base)
        try:
            scenario = scenario_from_dict(data, base_dir=m.scenario_file.parent,
                                          overrides=m.overrides)
        except InputErrors as exc:
            raise InputError(f"run {m.id}: {exc.errors[0].render()}") from None
        datas.append(data)
        scenarios.append(scenario)
    ids = sorted({s.hardware.id for s in scenarios})
    if len(ids) > 1:
        raise InputError(f"the runs use different hardware ({', '.join(ids)}); calibrate one "
                         f"profile at a time, or name it with 'hardware' / --hardware")
    profile = scenarios[0].hardware.model_dump(mode="json")
    stacks = {s.workload.engine.id: s.workload.engine.model_dump(mode="json")
              for s in scenarios if isinstance(s.workload, InferenceWorkload)}
    runs = tuple(_inlined(data, scenario, profile, m.scenario_file)
                 for data, scenario, m in zip(datas, scenarios, measurements, strict=True))
    knobs = [*hardware_knobs(profile), *(k for s in stacks.values() for k in stack_knobs(s))]
    figures = tuple(Figure(i, metric, value) for i, m in enumerate(measurements)
                    for metric, value in sorted(m.figures.items()))
    first = datas[0]["hardware"]
    return Forward(runs=runs, names=tuple(m.id for m in measurements),
                   scenarios=tuple(scenarios), knobs=tuple(knobs), figures=figures,
                   relevant=tuple(k for k in knobs if _relevant(k, scenarios)),
                   hardware=profile, stacks=stacks,
                   hardware_file=_profile_file(first, measurements[0].scenario_file.parent))


def _relevant(knob: Knob, scenarios: Sequence[Scenario]) -> bool:
    """Whether some run could depend on ``knob`` at all; the screening simulations decide the
    rest. It saves simulating GEMM precisions no run uses, collectives on one device, expert
    all-to-alls without experts and backward attention without training."""
    name = knob.name
    if name in ("gemm.stream", "gemm.half_size"):  # every run has GEMMs, of every size
        return True
    if name.startswith("gemm."):
        used = {s.workload.precision.value for s in scenarios} | {"bf16"}
        return name.removeprefix("gemm.") in used
    if name == "attention.backward":
        return any(s.kind == "training" for s in scenarios)
    if name.startswith("all_to_all.") and not any(s.model.moe for s in scenarios):
        return False
    if "scale_out" in name:
        return any(s.cluster.accelerators > s.hardware.devices_per_node.value for s in scenarios)
    if "scale_up" in name:
        return any(s.cluster.accelerators > 1 for s in scenarios)
    return True


def _profile_file(ref: Any, base: Path) -> Path | None:
    """The YAML file a hardware reference names (None for an inline mapping)."""
    from simulator.profiles.catalog import hardware_path

    return hardware_path(ref, base) if isinstance(ref, str) else None


def _inlined(data: dict[str, Any], scenario: Scenario, profile: dict[str, Any],
             file: Path) -> Base:
    inlined = {**data, "hardware": profile}
    if isinstance(scenario.workload, InferenceWorkload):
        engine = scenario.workload.engine.model_dump(mode="json")
        inlined["workload"] = {**data["workload"], "engine": engine}
    return Base(inlined, str(file.parent), str(file))


def predict_run(context: tuple[Forward, tuple[Knob, ...]], item: tuple[int, tuple[float, ...]],
                ) -> list[float] | str:
    """The predicted figures of run ``item[0]`` with the knobs at ``item[1]`` (SI values);
    a message when the run fails (the task the executors run)."""
    forward, knobs = context
    run, values = item
    overrides = tuple(f"{k.override_path}={yaml_float(v)}" for k, v in zip(knobs, values,
                                                                            strict=True)
                      if forward.knob_applies(k, run))
    status, reason, result = run_point(forward.runs[run], overrides)
    if result is None:
        return f"{status}: {reason}"
    predicted = []
    for figure in forward.figures:
        if figure.run != run:
            continue
        try:
            predicted.append(_read(result, figure.metric, forward.scenarios[run]))
        except (MetricMissing, XpusimError) as exc:
            return str(exc)
    return predicted


def _read(result: Any, metric: str, scenario: Scenario) -> float:
    if metric == PER_DEVICE:
        return read_metric(result, "training.tokens_per_s") / scenario.cluster.accelerators
    return read_metric(result, metric)


class RunFailed(XpusimError):
    """A run cannot be simulated at some parameter values (named with the reason)."""


def batch_predictor(forward: Forward, knobs: tuple[Knob, ...],
                    executor: Executor | None = None):
    """A function from log-parameter vectors (points x knobs) to log-figures (points x
    figures), running every (point, run) simulation as one batch on ``executor``."""
    pool = executor or InProcessExecutor()

    def predict(points: np.ndarray) -> np.ndarray:
        """Log-figures of every run for each row of log-parameters."""
        items = [(run, tuple(math.exp(v) for v in row)) for row in points
                 for run in range(len(forward.runs))]
        out: dict[int, list[float] | str] = dict(pool.imap(predict_run, (forward, knobs),
                                                           items))
        rows = []
        for p in range(len(points)):
            row: list[float] = []
            for run in range(len(forward.runs)):
                got = out[p * len(forward.runs) + run]
                if isinstance(got, str):
                    raise RunFailed(f"run {forward.names[run]} does not simulate: {got}")
                row.extend(got)
            rows.append(row)
        return np.log(np.maximum(np.array(rows, dtype=float), 1e-300))

    return predict
