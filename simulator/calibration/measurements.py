"""The measurements file of ``xpusim calibrate``: the user's runs and what each measured.

A YAML (or JSON) file lists runs; each names the scenario that reproduces it (a path
relative to the measurements file), optional ``set`` overrides (the knobs that differ
between runs of one scenario), and its figures: typed in ``measured`` under xpusim's result
paths (``inference.ttft_s.mean: 0.31``, SI units), read from a benchmark report
(``report: {format: vllm-bench, file: run1.json}``), or both (typed figures win)::

    hardware: h100-sxm          # the profile to calibrate (default: the scenarios' own)
    runs:
      - id: rate-8
        scenario: llama70b-serving.yaml
        set: {workload.arrivals.rate_per_s: 8}
        report: {format: vllm-bench, file: bench/rate8.json}

A CSV with columns ``run,scenario,metric,value`` (and optionally ``set``, assignments
``PATH=VALUE`` separated by ``;``) says the same for typed figures, one row per figure.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from annotated_types import Gt, Interval
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from simulator.calibration.serving_reports import (
    MAX_REPORT_BYTES,
    MeasuredReport,
    read_serving_json,
    read_trtllm_report,
)
from simulator.calibration.step_logs import read_step_log
from simulator.errors import InputError
from simulator.profiles.input_files import read_bounded_text
from simulator.profiles.overrides import anchor_paths
from simulator.profiles.validation import validate
from simulator.profiles.yaml_source import parse_yaml_value, read_yaml

_STRICT = ConfigDict(extra="forbid", frozen=True)
RunId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
MetricPath = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]*(\.[a-z0-9_]+)+$")]
ReportFormat = Literal["vllm-bench", "sglang-bench", "trtllm-bench", "megatron-log",
                       "nemo-log", "torchtitan-log"]
REPORT_FORMATS: tuple[str, ...] = ReportFormat.__args__  # type: ignore[attr-defined]


class ReportRef(BaseModel):
    """A benchmark report or training log to read the run's figures from."""

    model_config = _STRICT

    format: ReportFormat = Field(description="which tool wrote the file")
    file: str = Field(description="path to the report, relative to the measurements file")
    line: Annotated[int, Gt(0)] | None = Field(
        None, description="which run of a JSON-lines file (SGLang appends one per run)")
    skip_steps: Annotated[int, Interval(ge=0)] | None = Field(
        None, description="training logs: warm-up steps left out (default: the first tenth)")
    metrics: tuple[MetricPath, ...] | None = Field(
        None, description="keep only these of the report's figures (default: all it has)")


class MeasuredRun(BaseModel):
    """One run of the user's: the scenario that reproduces it and its measured figures."""

    model_config = _STRICT

    id: RunId
    scenario: str = Field(description="scenario file, relative to the measurements file")
    set: dict[str, Any] = Field(
        default_factory=dict, description="overrides of the scenario (dotted path: value)")
    measured: dict[MetricPath, Annotated[float, Gt(0)]] = Field(
        default_factory=dict, description="figures by result path, SI units")
    report: ReportRef | None = None

    @model_validator(mode="after")
    def _has_figures(self) -> MeasuredRun:
        if not self.measured and self.report is None:
            raise ValueError("a run needs 'measured' figures or a 'report' to read them from")
        return self


class MeasurementsFile(BaseModel):
    """The whole measurements file."""

    model_config = _STRICT

    hardware: str | None = Field(
        None, description="the profile to calibrate: a built-in id or a path (relative to "
                          "this file); default the scenarios' own, which must agree")
    noise: Annotated[float, Interval(gt=0, lt=1)] = Field(
        0.05, description="relative disagreement expected between a measurement and a "
                          "perfect model of it (run-to-run spread and what no parameter "
                          "describes); weighs the data against the priors")
    parameters: tuple[str, ...] | None = Field(
        None, description="calibrate only these parameters (`xpusim calibrate --list`)")
    runs: Annotated[list[MeasuredRun], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique_ids(self) -> MeasurementsFile:
        seen: set[str] = set()
        for run in self.runs:
            if run.id in seen:
                raise ValueError(f"run id {run.id!r} is used twice")
            seen.add(run.id)
        return self


@dataclass(frozen=True)
class Measurement:
    """A run ready to simulate: its scenario file, overrides, figures and report settings."""

    id: str
    scenario_file: Path
    overrides: tuple[str, ...]
    figures: dict[str, float]
    settings: dict[str, Any]


def load_measurements(path: str | Path) -> tuple[MeasurementsFile, list[Measurement]]:
    """Read and check a measurements file (YAML, JSON or CSV); reports are read here."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        data: Any = _csv_runs(path)
        doc = None
    else:
        doc = read_yaml(path)
        data = doc.data
    if not isinstance(data, dict):
        raise InputError("a measurements file must be a mapping with 'runs'", file=str(path))
    spec = validate(MeasurementsFile, data, doc)
    return spec, [_measurement(run, i, path.parent, str(path))
                  for i, run in enumerate(spec.runs)]


def _measurement(run: MeasuredRun, index: int, base: Path, file: str) -> Measurement:
    figures: dict[str, float] = {}
    settings: dict[str, Any] = {}
    if run.report is not None:
        report = read_report(run.report, base)
        wanted = run.report.metrics
        if wanted is not None:
            missing = sorted(set(wanted) - set(report.metrics))
            if missing:
                raise InputError(f"the report has no {', '.join(missing)}; it has "
                                 f"{', '.join(sorted(report.metrics))}",
                                 file=file, path=f"runs[{index}].report.metrics")
            report = MeasuredReport({m: report.metrics[m] for m in wanted}, report.settings)
        figures.update(report.metrics)
        settings = dict(report.settings)
    figures.update(run.measured)
    # file paths in the file's `set` resolve from its folder, as a scenario's from its own
    overrides = tuple(f"{key}={_yaml_text(anchor_paths(tuple(key.split('.')), value, base))}"
                      for key, value in run.set.items())
    return Measurement(id=run.id, scenario_file=(base / run.scenario).resolve(),
                       overrides=overrides, figures=figures, settings=settings)


def read_report(ref: ReportRef, base: Path) -> MeasuredReport:
    """The figures of one report file, by its format."""
    path = base / ref.file
    if ref.format in ("vllm-bench", "sglang-bench"):
        return read_serving_json(path, line=ref.line)
    if ref.format == "trtllm-bench":
        return read_trtllm_report(path)
    return read_step_log(path, ref.format, skip_steps=ref.skip_steps)


def _yaml_text(value: Any) -> str:
    """A ``set`` value written back as the YAML text an override assignment parses."""
    return json.dumps(value) if not isinstance(value, str) else value


def _csv_runs(path: Path) -> dict[str, Any]:
    """``run,scenario,metric,value[,set]`` rows as the mapping a YAML file would hold."""
    text = read_bounded_text(path, str(path), limit=MAX_REPORT_BYTES,
                             expected="a measurements CSV")
    reader = csv.DictReader(io.StringIO(text))
    required = {"run", "scenario", "metric", "value"}
    columns = set(reader.fieldnames or ())
    if not required <= columns:
        raise InputError(f"the CSV needs the columns {', '.join(sorted(required))}; it has "
                         f"{', '.join(sorted(columns)) or 'none'}", file=str(path))
    runs: dict[str, dict[str, Any]] = {}
    for number, row in enumerate(reader, start=2):
        run_id = (row["run"] or "").strip()
        run = runs.setdefault(run_id, {"id": run_id, "scenario": row["scenario"].strip(),
                                       "measured": {}, "set": _csv_set(row.get("set"))})
        if run["scenario"] != row["scenario"].strip():
            raise InputError(f"line {number}: run {run_id!r} names two scenarios",
                             file=str(path))
        try:
            value = float(row["value"])
        except (TypeError, ValueError):
            raise InputError(f"line {number}: value {str(row['value'])[:24]!r} is not a "
                             f"number", file=str(path)) from None
        run["measured"][(row["metric"] or "").strip()] = value
    return {"runs": list(runs.values())}


def _csv_set(text: str | None) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for part in (text or "").split(";"):
        if part.strip():
            key, _, value = part.partition("=")
            result[key.strip()] = parse_yaml_value(value)
    return result
