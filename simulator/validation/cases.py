"""Validation cases: one published measurement, the scenario that reproduces it, and the metric.

A case file (``validation/cases/*.yaml``) holds one case (a mapping) or several (a list of
mappings, e.g. one row per input/output length of a benchmark table; YAML anchors and merge
keys ``<<:`` may share the common parts). Each case names a dotted path into the result JSON
(``training.step_time_s``) and the measured value in SI units; its ``scenario`` is a full
inline scenario, validated exactly as a scenario file would be (schema and layout checks).

Errors name the file, the line and the field path, e.g.
``validation/cases/T07.yaml:31: [1].scenario.workload.parallelism.tp: ...``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from annotated_types import Gt
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from simulator.errors import InputError, InputErrors, XpusimError
from simulator.loading import scenario_from_dict
from simulator.profiles.scenario import Scenario
from simulator.profiles.validation import dotted, to_input_errors
from simulator.profiles.yaml_source import Loc, YamlDocument, read_yaml
from simulator.studies.capacity import check_searchable

_FROZEN = ConfigDict(extra="forbid", frozen=True)

CaseId = Annotated[str, StringConstraints(pattern=r"^[A-Z][0-9]{2}[A-Za-z0-9.-]*$")]
# The metric of a sustainable-rate case: not read from one result but searched for
# (simulator.studies.capacity): the highest arrival rate meeting the scenario's SLO.
CAPACITY_METRIC = "inference.sustainable_rate_per_s"
LATENCY_METRICS = ("inference.ttft_s.", "inference.tpot_s.", "inference.e2e_s.")
MetricPath = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*$")]


class Source(BaseModel):
    """Where the measured figure is published."""

    model_config = _FROZEN

    url: str = Field(description="the paper, result log or documentation page")
    locator: str = Field(description="table, section or file inside the source")


class Case(BaseModel):
    """One compared figure: a published measurement and the scenario that should reproduce it."""

    model_config = _FROZEN

    id: CaseId = Field(description="public case id (T01, I12, ...), with a suffix per row")
    title: str
    source: Source
    confidence: Literal["V", "S", "M"] = Field(
        description="V: read from the primary artefact; S: via a secondary page; M: from the "
                    "paper, not re-read (shared/calibration/public_cases.yaml)")
    vendor: str = Field(description="the hardware profile's vendor (NVIDIA, AMD, Intel, ...)")
    kind: Literal["training", "inference"]
    metric: MetricPath = Field(description="dotted path into the result JSON, e.g. "
                                           "training.step_time_s")
    measured: Annotated[float, Gt(0)] = Field(description="the published figure, SI units")
    derivation: str | None = Field(
        None, description="arithmetic that turns the published figure into `measured`, "
                          "when the compared number is not printed as such")
    tolerance_note: str | None = Field(
        None, description="why this case may legitimately differ (run-to-run spread, "
                          "a metric that mixes effects, ...)")
    assumptions: tuple[str, ...] = Field(
        (), description="where the source is silent, and what the scenario assumes")
    used_for_calibration: bool = Field(
        description="true when the measurement informed a number in a profile (its error "
                    "is then not a test of prediction and is reported apart)")
    calibrated_parameters: str | None = Field(
        None, description="which profile numbers it informed (required when "
                          "used_for_calibration is true)")
    capacity_case: CaseId | None = Field(
        None, description="for a latency measured at a published server rate: the id of the "
                          "case that compares the sustainable rate of the same setup")
    scenario: dict[str, Any] = Field(description="a full inline scenario mapping")

    @model_validator(mode="after")
    def _calibration_named(self) -> Case:
        if self.used_for_calibration and not self.calibrated_parameters:
            raise ValueError("used_for_calibration: true needs calibrated_parameters (which "
                             "profile numbers the measurement informed)")
        if not self.used_for_calibration and self.calibrated_parameters:
            raise ValueError("calibrated_parameters is given but used_for_calibration is "
                             "false")
        if self.capacity_case is not None and not self.metric.startswith(LATENCY_METRICS):
            raise ValueError(f"capacity_case belongs on a latency case (metric "
                             f"{' or '.join(m + '...' for m in LATENCY_METRICS)}), not on "
                             f"{self.metric}")
        return self

    @property
    def is_capacity(self) -> bool:
        """Whether the predicted figure is the searched sustainable rate."""
        return self.metric == CAPACITY_METRIC


@dataclass(frozen=True)
class LoadedCase:
    """A validated case with its validated scenario and the file it came from."""

    case: Case
    scenario: Scenario
    file: str


@dataclass(frozen=True)
class Skipped:
    """A public measurement the suite does not compare, and why."""

    id: str
    reason: str


SKIPPED: tuple[Skipped, ...] = (
    Skipped("I04/I05/I40/I43 server tokens/s", "MLPerf Server tokens/s is the offered load "
                                               "(target QPS x mean output length) whenever "
                                               "the system keeps up, so it does not test the "
                                               "simulator; the Server rate is compared as the "
                                               "highest rate meeting the p99 limits "
                                               "(*-capacity), beside the mean TTFT and TPOT "
                                               "at the published rate."),
    Skipped("I04/I05/I40/I43 latency percentiles", "p50/p99 TTFT and TPOT of one MLPerf Server "
                                                   "run depend on the scheduler's policy in "
                                                   "detail; the means are compared, and the "
                                                   "p99 limits enter the sustainable-rate "
                                                   "search."),
    Skipped("I40/I43 offline samples/s", "the same measurement as the offline tokens/s, "
                                         "divided by the mean output length."),
    Skipped("T24/T30/T33/T40/T41/T43/T45 time-to-train",
            "MLPerf time-to-train includes evaluation, start-up and a convergence-dependent "
            "number of steps; the step time derived from the log timestamps is compared."),
    Skipped("T06-T09, T22, T23, T40-T48, T53 MFU, TFLOP/s and tokens/s per GPU",
            "compared as step time: the published iteration time and MFU (or tokens/s) carry "
            "the same information, and step time does not depend on FLOP-counting "
            "conventions."),
    Skipped("T40/T43/I43 partner systems, T40 MI350X",
            "siblings in public_cases_2 that repeat a compared case's recipe on another "
            "vendor's chassis (block times within 1-5% of it), and MI350X, which has no "
            "hardware profile; the other siblings are cases (T41-gb300, T41-512, "
            "T41-512-gb300, T45-16xmi300x, T45-8xmi325x, T46-gb300-*, I43-h200-offline)."),
    Skipped("I45/I50 derived figures", "arithmetic on the published figures (decode ms per "
                                       "step, a weight-read floor), not measurements."),
    Skipped("I50 overall output tokens/s",
            "LLMPerf divides all output tokens by the whole run's wall time, warm-up stalls "
            "included: with the page's mean TTFT (11.5 s, median 0.81 s) the 50 requests "
            "take 50 x (30.33 - 0.81 + 11.5) s, and 50 x 1,500 tokens over that is the "
            "published 36.6 tokens/s, so it measures the run's warm-up, not the serving "
            "physics; the warm requests' rate is the end-to-end latency's (I50-e2e)."),
    Skipped("I50 speculative decoding", "the tutorial's sibling with a Llama 3.2 1B draft "
                                        "model: xpusim does not model speculative decoding."),
)


def _subdocument(doc: YamlDocument, prefix: Loc) -> YamlDocument:
    """The part of ``doc`` under ``prefix``, with line numbers for its own field paths."""
    n = len(prefix)
    lines = {loc[n:]: line for loc, line in doc.lines.items() if loc[:n] == prefix}
    return YamlDocument(data=None, file=doc.file, lines=lines)


def _prefixed(error: InputError, prefix: Loc) -> InputError:
    inner = "" if error.path in (None, "(top level)") else error.path
    head = dotted(list(prefix))
    path = head if not inner else (f"{head}{inner}" if inner.startswith("[") else
                                   f"{head}.{inner}")
    return InputError(error.message, file=error.file, path=path)


def _located(doc: YamlDocument, loc: Loc, message: str) -> InputError:
    line = doc.line_of(loc)
    where = f"{doc.file}:{line}" if line is not None else doc.file
    return InputError(message, file=where, path=dotted(list(loc)))


def _build_scenario(case: Case, doc: YamlDocument, prefix: Loc, base_dir: Path) -> Scenario:
    where = (*prefix, "scenario")
    try:
        return scenario_from_dict(case.scenario, doc=_subdocument(doc, where), base_dir=base_dir)
    except InputErrors as exc:
        raise InputErrors([_prefixed(e, where) for e in exc.errors]) from None
    except InputError as exc:
        raise InputErrors([_prefixed(exc, where)]) from None
    except XpusimError as exc:
        raise InputErrors([_located(doc, where, str(exc))]) from None


def _consistency(case: Case, scenario: Scenario, doc: YamlDocument,
                 prefix: Loc) -> list[InputError]:
    """The case's own fields must agree with its scenario."""
    problems = []
    if case.kind != scenario.kind:
        problems.append(_located(doc, (*prefix, "kind"),
                                 f"kind is {case.kind!r} but the scenario's workload.kind is "
                                 f"{scenario.kind!r}"))
    if case.vendor != scenario.hardware.vendor:
        problems.append(_located(doc, (*prefix, "vendor"),
                                 f"vendor is {case.vendor!r} but the scenario's hardware "
                                 f"({scenario.hardware.id}) is made by "
                                 f"{scenario.hardware.vendor!r}"))
    if case.is_capacity:
        try:
            check_searchable(scenario)
        except InputError as exc:
            problems.append(_located(doc, (*prefix, "metric"),
                                     f"{CAPACITY_METRIC}: {exc.message}"))
    if case.metric.split(".")[0] != case.kind:
        problems.append(_located(doc, (*prefix, "metric"),
                                 f"metric {case.metric!r} must be a path under the case's "
                                 f"kind, e.g. {case.kind}.step_time_s"))
    return problems


def _load_one(data: Any, doc: YamlDocument, prefix: Loc, base_dir: Path) -> LoadedCase:
    if not isinstance(data, dict):
        raise InputErrors([_located(doc, prefix, "a case must be a mapping of fields (id, "
                                                 "title, source, ..., scenario)")])
    try:
        case = Case.model_validate(data)
    except ValidationError as exc:
        raise to_input_errors(exc, Case, doc, prefix=prefix) from None
    scenario = _build_scenario(case, doc, prefix, base_dir)
    problems = _consistency(case, scenario, doc, prefix)
    if problems:
        raise InputErrors(problems)
    return LoadedCase(case=case, scenario=scenario, file=doc.file)


def load_case_file(path: str | Path) -> list[LoadedCase]:
    """Read one case file (a case, or a list of cases). Raises :class:`InputErrors`."""
    doc = read_yaml(path)
    base_dir = Path(path).parent
    items: list[tuple[Any, Loc]]
    if isinstance(doc.data, list):
        if not doc.data:
            raise InputErrors([InputError("the list of cases is empty", file=doc.file)])
        items = [(item, (i,)) for i, item in enumerate(doc.data)]
    else:
        items = [(doc.data, ())]
    loaded, errors = [], []
    for data, prefix in items:
        try:
            loaded.append(_load_one(data, doc, prefix, base_dir))
        except InputErrors as exc:
            errors.extend(exc.errors)
    if errors:
        raise InputErrors(errors)
    return loaded


SUPPORT_FOLDER = "stacks"  # beside the cases: files they name, not cases


def load_cases(directory: str | Path) -> list[LoadedCase]:
    """Every case in the YAML files below ``directory`` (sub-folders included), in path order;
    all problems are reported at once. A sub-folder named ``stacks`` holds the serving-stack
    configurations that cases name by path (a submission's own settings), not cases."""
    root = Path(directory)
    if not root.is_dir():
        raise InputError("not a directory of validation cases", file=str(directory))
    files = sorted(f for f in root.rglob("*.yaml")
                   if SUPPORT_FOLDER not in f.relative_to(root).parts[:-1])
    if not files:
        raise InputError("no case files (*.yaml) in this directory", file=str(directory))
    loaded: list[LoadedCase] = []
    errors: list[InputError] = []
    for file in files:
        try:
            loaded.extend(load_case_file(file))
        except InputErrors as exc:
            errors.extend(exc.errors)
        except InputError as exc:
            errors.append(exc)
    errors += _duplicates(loaded) + _counterparts(loaded)
    if errors:
        raise InputErrors(errors)
    return loaded


def _duplicates(loaded: list[LoadedCase]) -> list[InputError]:
    """One error per id used more than once, naming every file that uses it."""
    files: dict[str, list[str]] = {}
    for item in loaded:
        files.setdefault(item.case.id, []).append(item.file)
    return [InputError(f"duplicate case id {case_id!r} (in {', '.join(where)})",
                       file=where[-1], path="id")
            for case_id, where in files.items() if len(where) > 1]


def _counterparts(loaded: list[LoadedCase]) -> list[InputError]:
    """A latency case's ``capacity_case`` must name a sustainable-rate case of the suite."""
    capacity = {item.case.id for item in loaded if item.case.is_capacity}
    return [InputError(f"capacity_case {item.case.capacity_case!r} is not a case with metric "
                       f"{CAPACITY_METRIC} in this suite", file=item.file, path="capacity_case")
            for item in loaded
            if item.case.capacity_case is not None and item.case.capacity_case not in capacity]
