"""Markdown reference tables generated from the pydantic schemas, so the docs cannot drift.

``python -m simulator.report.schema_doc`` prints the scenario and profile reference that
``docs/scenarios.md`` embeds between markers; ``python -m simulator.report.schema_doc
results`` prints the result reference of ``docs/results.md``. Tests check that both embedded
copies are current.
"""

from __future__ import annotations

import enum
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from simulator.profiles.cost import CostAssumptions
from simulator.profiles.hardware import HardwareProfile
from simulator.profiles.inference import InferenceWorkload
from simulator.profiles.model import ModelProfile
from simulator.profiles.scenario import Scenario
from simulator.profiles.training import TrainingWorkload

BEGIN = "<!-- BEGIN GENERATED REFERENCE (python -m simulator.report.schema_doc) -->"
END = "<!-- END GENERATED REFERENCE -->"

_UNIT_OF = {
    "parse_bytes": "bytes (e.g. \"80 GB\")",
    "parse_bandwidth": "bytes/s (e.g. \"3.35 TB/s\", \"400 Gb/s\")",
    "parse_flop_rate": "FLOP/s (e.g. \"989 TFLOPS\")",
    "parse_power": "W (e.g. \"700 W\")",
    "parse_time": "s (e.g. \"1.5 us\", \"50700 h\")",
    "parse_usd": "USD",
    "parse_usd_per_hour": "USD/h",
    "parse_usd_per_kwh": "USD/kWh",
    "parse_usd_per_kw_month": "USD/kW/month",
    "parse_carbon_intensity": "kg/kWh",
    "parse_fraction": "fraction (e.g. 0.8 or \"80%\")",
}


def _unit_from_metadata(metadata: list[Any]) -> str | None:
    for m in metadata:
        func = getattr(getattr(m, "func", None), "__name__", "")
        if func in _UNIT_OF:
            return _UNIT_OF[func]
    return None


def _field_type(info) -> str:
    return _unit_from_metadata(info.metadata) or _type_name(info.annotation)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        base, *meta = typing.get_args(tp)
        return _unit_from_metadata(meta) or _type_name(base)
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(dict.fromkeys(names))
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in typing.get_args(tp))
    if origin in (dict,):
        key, value = typing.get_args(tp)
        return f"map of {_type_name(key)} to {_type_name(value)}"
    if origin in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return f"list of {_type_name(args[0])}" if args else "list"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return " \\| ".join(f"`{m.value}`" for m in tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        if tp.__name__.startswith("Sourced"):
            return f"sourced {_field_type(tp.model_fields['value'])}"
        return f"[{tp.__name__}](#{tp.__name__.lower()})"
    return getattr(tp, "__name__", str(tp))


def _default(info) -> str:
    if info.default is PydanticUndefined and info.default_factory is None:
        return "required"
    if info.default_factory is not None:
        factory = info.default_factory
        return "(defaults)" if isinstance(factory, type) and issubclass(factory, BaseModel) \
            else "empty"
    value = info.default
    if value is None:
        return "—"
    if isinstance(value, enum.Enum):
        return f"`{value.value}`"
    if isinstance(value, BaseModel):
        return "(defaults)"
    return f"`{value}`"


def _nested_models(tp: Any, out: list[type[BaseModel]],
                   stop: tuple[type[BaseModel], ...]) -> None:
    origin = typing.get_origin(tp)
    if origin is not None:
        for arg in typing.get_args(tp):
            _nested_models(arg, out, stop)
        return
    if isinstance(tp, type) and issubclass(tp, BaseModel) and tp not in out:
        if tp.__name__.startswith("Sourced") or tp in stop:
            return
        out.append(tp)
        for info in tp.model_fields.values():
            _nested_models(info.annotation, out, stop)


def model_reference(root: type[BaseModel], stop: tuple[type[BaseModel], ...] = ()) -> str:
    """One Markdown section per model reachable from ``root`` (not descending into ``stop``): its
    docstring's first paragraph and a table of its fields."""
    models: list[type[BaseModel]] = []
    _nested_models(root, models, stop)
    sections = []
    for model in models:
        doc = " ".join((model.__doc__ or "").strip().split("\n\n")[0].split())
        lines = [f"### {model.__name__}", ""]
        if doc and not doc.startswith(("!!!", "Usage docs")):
            lines += [doc, ""]
        lines += ["| field | type / unit | default | meaning |", "|---|---|---|---|"]
        for name, info in model.model_fields.items():
            meaning = (info.description or "").replace("|", "\\|")
            lines.append(f"| `{name}` | {_field_type(info)} | {_default(info)} | "
                         f"{meaning} |")
        sections.append("\n".join(lines))
    return "\n\n".join(sections)


def reference() -> str:
    """The reference of docs/scenarios.md: the scenario, both workloads, cost assumptions, and
    the hardware and model profiles."""
    parts = [
        "## Scenario reference",
        model_reference(Scenario, stop=(HardwareProfile, ModelProfile, TrainingWorkload,
                                        InferenceWorkload, CostAssumptions)),
        "## Training workload (`workload.kind: training`)",
        model_reference(TrainingWorkload),
        "## Inference workload (`workload.kind: inference`)",
        model_reference(InferenceWorkload, stop=(HardwareProfile,)),
        "## Cost assumptions (`cost`)",
        model_reference(CostAssumptions),
        "## Hardware profile (`hardware_profiles/*.yaml`)",
        "Every number is a mapping `{value, source, estimate, note}` (\"sourced\").",
        model_reference(HardwareProfile),
        "## Model profile (`model_profiles/*.yaml`)",
        model_reference(ModelProfile),
    ]
    return "\n\n".join(parts)


def results_reference() -> str:
    """The reference of docs/results.md: every field of a run's result."""
    from simulator.results import Result

    return "## Result reference\n\n" + model_reference(Result)


def embedded(text: str) -> str:
    """The generated block between the markers of ``text``."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end].strip()


if __name__ == "__main__":
    import sys

    print(results_reference() if sys.argv[1:] == ["results"] else reference())
