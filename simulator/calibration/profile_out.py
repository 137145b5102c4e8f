"""Writing the calibrated profile: the original profile with its fitted numbers replaced.

The output starts from the profile's own YAML (its units and sources kept) when it came from
a file, else from its JSON form. Every fitted number gets a new value, ``estimate: true`` and
a source that says it was calibrated, from which runs, with what uncertainty and what it was
before; the profile gains a ``calibration`` record (:mod:`simulator.profiles.calibration_record`)
and a new id, so it never shadows the original. Serving-stack numbers, when fitted, go to a
stack file of their own beside it.
"""

from __future__ import annotations

import copy
import hashlib
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from simulator.calibration.calibrate import NOT_IDENTIFIED, CalibrationResult, ParameterFit
from simulator.calibration.forward import Forward
from simulator.confidence import metric_family, regime_of
from simulator.confidence.regime import FAMILIES
from simulator.errors import InputError
from simulator.profiles.yaml_source import read_yaml


def _raw(file: Path | None, dump: dict[str, Any]) -> dict[str, Any]:
    if file is not None and file.is_file():
        data = read_yaml(file).data
        if isinstance(data, dict):
            return copy.deepcopy(data)
    return copy.deepcopy(dump)


def _format(value: float, unit: str) -> Any:
    """A fitted value as the profile writes it: times with a unit, fractions as numbers."""
    if unit == "s":
        return f"{value * 1e6:.4g} us"
    return float(f"{value:.4g}")


def _describe(p: ParameterFit, provenance: str) -> str:
    before = _format(p.knob.prior, p.knob.unit)
    return (f"calibrated: {_format(p.value, p.knob.unit)} +/- {p.relative_sd * 100:.0f}% "
            f"(1 sd) {provenance}; before: {before}")


def _set(tree: dict[str, Any], dotted: str, p: ParameterFit, provenance: str) -> None:
    node = tree
    for part in dotted.split("."):
        node = node.setdefault(part, {})
    node.clear()
    node.update({"value": _format(p.value, p.knob.unit), "source": _describe(p, provenance),
                 "estimate": True})


def record(result: CalibrationResult, forward: Forward, *, command: str,
           measurements_file: Path) -> dict[str, Any]:
    """The ``calibration`` record of the output profile (plain data, validated on load)."""
    digest = hashlib.sha256(measurements_file.read_bytes()).hexdigest()[:16]
    return {
        "command": command, "date": date.today().isoformat(),
        "measurements": f"{measurements_file.name} (sha256 {digest}...)",
        "runs": list(forward.names), "figures": len(result.figures), "noise": result.noise,
        "error_before": result.summary("before"), "error_after": result.summary("after"),
        "error_left_out": result.summary("left_out"),
        **_regime_fields(result, forward),
        "parameters": [{"name": p.knob.name,
                        "field": p.knob.field if p.knob.target == "hardware"
                        else f"stack:{p.knob.stack}.{p.knob.field}",
                        "prior": p.knob.prior, "value": p.value,
                        "relative_sd": p.relative_sd, "status": p.status}
                       for p in result.parameters],
    }


def _regime_fields(result: CalibrationResult, forward: Forward) -> dict[str, Any]:
    """What results computed with the profile are judged by: the left-out error per family
    of figures, and the kinds, precisions and largest scale of the runs."""
    bands = []
    for family in FAMILIES:
        errors = [abs(f.left_out / f.measured - 1) for f in result.figures
                  if metric_family(f.metric) == family]
        if errors:
            bands.append({"family": family, "figures": len(errors),
                          "median": float(np.median(errors)),
                          "p90": float(np.percentile(errors, 90)), "worst": max(errors)})
    regimes = [regime_of(s) for s in forward.scenarios]
    return {"bands": bands, "kinds": sorted({r.kind for r in regimes}),
            "precisions": sorted({r.precision for r in regimes}),
            "max_scale": max(r.scale for r in regimes)}


def write_outputs(result: CalibrationResult, forward: Forward, out: Path, *, new_id: str,
                  command: str, measurements_file: Path) -> list[Path]:
    """Write the calibrated profile to ``out`` (and any calibrated stack beside it)."""
    provenance = (f"by `xpusim calibrate` on {date.today().isoformat()} from "
                  f"{measurements_file.name} (runs {', '.join(forward.names)})")
    fitted = [p for p in result.parameters if p.status != NOT_IDENTIFIED]
    profile = _raw(forward.hardware_file, forward.hardware)
    profile["id"] = new_id
    profile["name"] = f"{profile.get('name', new_id)} (calibrated)"
    for p in fitted:
        if p.knob.target == "hardware":
            _set(profile, p.knob.field, p, provenance)
    profile["calibration"] = record(result, forward, command=command,
                                    measurements_file=measurements_file)
    written = [_dump(profile, out)]
    for sid, dump in forward.stacks.items():
        mine = [p for p in fitted if p.knob.stack == sid]
        if not mine:
            continue
        stack = _raw(_stack_file(sid), dump)
        stack["id"] = f"{sid}-calibrated"
        stack["name"] = f"{stack.get('name', sid)} (calibrated)"
        for p in mine:
            _set(stack, p.knob.field, p, provenance)
        written.append(_dump(stack, out.with_name(f"{out.stem}.{sid}-stack.yaml")))
    return written


def _stack_file(sid: str) -> Path | None:
    from simulator.profiles.catalog import stack_path

    try:
        return stack_path(sid)
    except LookupError:
        return None


def _dump(data: dict[str, Any], path: Path) -> Path:
    """Write YAML through a temporary file, so a failure leaves nothing half-written."""
    text = ("# Written by `xpusim calibrate`; see the `calibration` record at the end.\n"
            + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100))
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(f"cannot write the calibrated profile: {exc.strerror}",
                         file=str(path)) from None
    return path
