"""The physical parameters ``xpusim calibrate`` may fit, with their priors and bounds.

Only numbers that describe the machine or the serving software are fitted: kernel
efficiencies, collective efficiencies, fixed per-kernel and per-iteration costs. There is no
per-scenario factor. Each parameter is fitted in log space around its profile value (the
prior) with a prior spread that says how far real stacks are seen to differ from the
profile's figure, and is held inside physical bounds (an efficiency cannot exceed 1 of peak;
a collective's bus-bandwidth ratio can, with in-network reduction, but not by much).

Prior spreads (natural-log standard deviations): 0.25 for GEMM and attention fractions (the
measured shape-to-best spread of a GEMM fraction across transformer shapes and software
versions, docs/profiles.md, is within about 25%); 0.15 for HBM (copy kernels reach 86-99%
of peak on every part measured); 0.3 for collective and all-to-all ratios (NCCL/RCCL
versions and topologies move them by a third); 0.7 (a factor of two) for fixed per-kernel
costs; 1.0 (a factor of e) for a serving stack's per-iteration host costs, which the stacks'
own sources mostly estimate, and for the GEMM size curve's half point (fitted size sweeps of
one part and another differ by factors of a few).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

_FRACTION_SD, _HBM_SD, _RATIO_SD, _KERNEL_SD, _HOST_SD, _SIZE_SD = 0.25, 0.15, 0.3, 0.7, 1.0, 1.0


@dataclass(frozen=True, kw_only=True)
class Knob:
    """One fittable parameter: where it lives, its prior, its bounds and its unit."""

    name: str
    label: str
    target: Literal["hardware", "stack"]
    field: str  # dotted path inside the profile (hardware) or stack, ending at the Sourced
    prior: float  # the profile's value, SI
    lower: float
    upper: float
    prior_sd: float  # natural-log standard deviation
    unit: str  # "" for fractions, "s" for times
    stack: str | None = None  # the stack id, for stack knobs

    @property
    def override_path(self) -> str:
        """The scenario path an override of this knob writes (``.value`` of the Sourced)."""
        root = "hardware" if self.target == "hardware" else "workload.engine"
        return f"{root}.{self.field}.value"


def _get(tree: dict[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node or node[part] is None:
            return None
        node = node[part]
    return node


def _knob(tree: dict[str, Any], *, name: str, label: str, field: str, bounds: tuple[float, float],
          sd: float, unit: str = "", target: Literal["hardware", "stack"] = "hardware",
          stack: str | None = None) -> Knob | None:
    """A knob at ``field`` of ``tree`` (a profile's JSON dump), if the profile has a positive
    value there (a zero cost has no log and nothing to scale)."""
    sourced = _get(tree, field)
    value = sourced.get("value") if isinstance(sourced, dict) else None
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        return None
    lower, upper = bounds
    return Knob(name=name, label=label, target=target, field=field, prior=float(value),
                lower=min(lower, value), upper=max(upper, value), prior_sd=sd, unit=unit,
                stack=stack)


def hardware_knobs(profile: dict[str, Any]) -> list[Knob]:
    """The fittable parameters of a hardware profile (its ``model_dump(mode="json")``)."""
    knobs: list[Knob | None] = []
    for precision in sorted(_get(profile, "efficiency.gemm.large") or {}):
        knobs.append(_knob(profile, name=f"gemm.{precision}",
                           label=f"large-GEMM fraction of peak, {precision}",
                           field=f"efficiency.gemm.large.{precision}", bounds=(0.02, 1.0),
                           sd=_FRACTION_SD))
    knobs.append(_knob(profile, name="gemm.half_size", label="GEMM size (FLOPs) reaching half "
                       "the large-GEMM fraction", field="efficiency.gemm.half_size_flops",
                       bounds=(1e6, 1e13), sd=_SIZE_SD))
    for part in ("forward", "backward"):
        knobs.append(_knob(profile, name=f"attention.{part}",
                           label=f"fused-attention fraction of peak, {part}",
                           field=f"efficiency.attention.{part}", bounds=(0.02, 1.0),
                           sd=_FRACTION_SD))
    knobs += [
        _knob(profile, name="hbm", label="achieved fraction of HBM bandwidth",
              field="efficiency.hbm", bounds=(0.2, 1.0), sd=_HBM_SD),
        _knob(profile, name="gemm.stream", label="fraction of HBM bandwidth a memory-bound "
              "GEMM reaches", field="efficiency.gemm.stream", bounds=(0.2, 1.0), sd=_HBM_SD),
        _knob(profile, name="scale_up_collective", label="scale-up collective bus-bandwidth "
              "ratio", field="efficiency.scale_up_collective", bounds=(0.05, 2.0), sd=_RATIO_SD),
        _knob(profile, name="scale_out_collective", label="scale-out collective bus-bandwidth "
              "ratio", field="efficiency.scale_out_collective", bounds=(0.05, 2.0),
              sd=_RATIO_SD),
        _knob(profile, name="all_to_all.scale_up", label="expert all-to-all ratio, scale-up",
              field="efficiency.all_to_all.scale_up", bounds=(0.05, 2.0), sd=_RATIO_SD),
        _knob(profile, name="all_to_all.scale_out", label="expert all-to-all ratio, "
              "scale-out", field="efficiency.all_to_all.scale_out", bounds=(0.05, 2.0),
              sd=_RATIO_SD),
        _knob(profile, name="kernel_overhead", label="fixed device time per kernel",
              field="efficiency.kernel_overhead", bounds=(1e-7, 2e-4), sd=_KERNEL_SD, unit="s"),
        _knob(profile, name="host_launch", label="host time per eager kernel launch",
              field="efficiency.host_launch", bounds=(1e-7, 2e-4), sd=_KERNEL_SD, unit="s"),
    ]
    return [k for k in knobs if k is not None]


def stack_knobs(stack: dict[str, Any]) -> list[Knob]:
    """The fittable host costs of a serving stack (its JSON dump), named after its id."""
    sid = stack["id"]
    specs = [("schedule_fixed", "host.schedule.fixed", "scheduling time per iteration"),
             ("schedule_per_sequence", "host.schedule.per_sequence",
              "scheduling time per sequence"),
             ("output_fixed", "host.output.fixed", "output processing per iteration"),
             ("output_per_sequence", "host.output.per_sequence",
              "output processing per sequence"),
             ("frontend_fixed", "host.frontend.fixed", "API server time per iteration"),
             ("frontend_per_sequence", "host.frontend.per_sequence",
              "API server time per sequence")]
    knobs = [_knob(stack, name=f"stack.{sid}.{name}", label=f"{sid}: {label}", field=field,
                   bounds=(1e-7, 0.1), sd=_HOST_SD, unit="s", target="stack", stack=sid)
             for name, field, label in specs]
    return [k for k in knobs if k is not None]


def log_bounds(knob: Knob) -> tuple[float, float]:
    """The knob's bounds in the log space the fit works in."""
    return math.log(knob.lower), math.log(knob.upper)
