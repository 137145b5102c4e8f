"""Tables and JSON views of the built-in hardware, model and serving-stack profiles."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from simulator.profiles.hardware import HardwareProfile
from simulator.profiles.model import ModelProfile
from simulator.profiles.serving_stack import HostWork, ServingStack
from simulator.units import format_si

_TABLE_PRECISIONS = ("bf16", "fp8", "fp4", "int8")


def _peak(hw: HardwareProfile, precision: str) -> str:
    return f"{hw.peak(precision) / 1e12:,.0f}" if hw.supports(precision) else "-"


def hardware_table(profiles: list[HardwareProfile]) -> Table:
    """The built-in hardware profiles, one row each: peaks, memory, scale-up, power and price."""
    table = Table(title="Hardware profiles (dense peak per device)", title_justify="left")
    table.add_column("id", style="bold cyan", no_wrap=True, overflow="fold")
    table.add_column("name", overflow="fold")
    for precision in _TABLE_PRECISIONS:
        table.add_column(f"{precision} TFLOP/s", justify="right")
    table.add_column("HBM", justify="right")
    table.add_column("HBM BW", justify="right")
    table.add_column("scale-up", justify="right")
    table.add_column("TDP", justify="right")
    table.add_column("USD/h", justify="right")
    for hw in profiles:
        up = hw.scale_up
        table.add_row(
            hw.id, hw.name, *(_peak(hw, p) for p in _TABLE_PRECISIONS),
            format_si(hw.hbm_capacity, "B"), format_si(hw.hbm_bandwidth, "B/s"),
            f"{up.domain_size.value} x {format_si(up.bandwidth_one_way, 'B/s')} "
            f"{up.topology.value}",
            f"{hw.power.tdp.value:,.0f} W", f"{hw.price.cloud_per_device_hour.value:.2f}",
        )
    return table


def model_table(models: list[ModelProfile]) -> Table:
    """The built-in model profiles, one row each: sizes, attention, FFN and experts."""
    table = Table(title="Model profiles", title_justify="left")
    table.add_column("id", style="bold cyan", no_wrap=True, overflow="fold")
    table.add_column("name", overflow="fold")
    table.add_column("params", justify="right")
    table.add_column("active", justify="right")
    table.add_column("layers", justify="right")
    table.add_column("hidden", justify="right")
    table.add_column("attention", justify="right")
    table.add_column("FFN", justify="right")
    table.add_column("experts", justify="right")
    for m in models:
        attention = f"{m.attention.value} {m.attention_heads}/{m.kv_heads_resolved}"
        experts = "-"
        if m.moe:
            experts = f"{m.moe.active_experts}/{m.moe.experts}+{m.moe.shared_experts}"
        table.add_row(m.id, m.name, f"{m.params_total / 1e9:,.1f} B",
                      f"{m.params_active / 1e9:,.1f} B", str(m.layers), str(m.hidden_size),
                      attention, f"{m.ffn_size} {m.activation.value}", experts)
    return table


def _work(w: HostWork) -> str:
    """A host part in one cell: fixed ms + us per sequence, and how it runs."""
    how = "overlapped" if w.overlapped.value else "in series"
    return (f"{w.fixed.value * 1e3:g} ms + {w.per_sequence.value * 1e6:g} us/seq "
            f"+ {w.per_new_token.value * 1e6:g} us/token, {how}")


def _graphs(stack: ServingStack) -> str:
    g = stack.graphs
    if g is None:
        return "eager"
    if g.batch_sizes is None:
        return "padded to max_batch_size"
    sizes = g.batch_sizes.value
    pads = "padded" if g.padding is None or g.padding.value else "unpadded"
    return f"{len(sizes)} sizes up to {sizes[-1]}, {pads}"


def stack_table(stacks: list[ServingStack]) -> Table:
    """The built-in serving stacks, one row each: host work per iteration, graphs, batching."""
    table = Table(title="Serving stacks (host work per iteration)", title_justify="left")
    table.add_column("id", style="bold cyan", no_wrap=True, overflow="fold")
    table.add_column("name", overflow="fold")
    table.add_column("schedule + input prep", overflow="fold")
    table.add_column("output processing", overflow="fold")
    table.add_column("API server (over HTTP)", overflow="fold")
    table.add_column("steps", justify="right")
    table.add_column("decode graphs", overflow="fold")
    table.add_column("batching")
    for st in stacks:
        h = st.host
        front = "none" if h.frontend is None else _work(h.frontend)
        table.add_row(st.id, st.name, _work(h.schedule), _work(h.output), front,
                      str(h.scheduler_steps.value), _graphs(st), st.admission.value.value)
    return table


def _rows(prefix: str, value: Any, out: list[tuple[str, str, str]]) -> None:
    """Flatten a profile dump into (field, value, source) rows."""
    if isinstance(value, dict) and "value" in value and "source" in value:
        shown = value["value"]
        mark = " (estimate)" if value.get("estimate") else ""
        out.append((prefix, f"{shown:,.6g}" if isinstance(shown, float) else str(shown),
                    f"{value['source']}{mark}"))
    elif isinstance(value, dict):
        for key, item in value.items():
            _rows(f"{prefix}.{key}" if prefix else str(key), item, out)
    elif isinstance(value, list | tuple):
        out.append((prefix, ", ".join(map(str, value)), ""))
    else:
        out.append((prefix, str(value), ""))


def detail_table(profile: HardwareProfile | ModelProfile | ServingStack) -> Table:
    """Every field of a profile with its value (SI units) and source."""
    table = Table(title=f"{profile.id}: {profile.name}", title_justify="left")
    table.add_column("field", style="cyan", no_wrap=True)
    table.add_column("value (SI)", justify="right")
    table.add_column("source", overflow="fold")
    rows: list[tuple[str, str, str]] = []
    _rows("", profile.model_dump(mode="json", exclude={"description"}), rows)
    for row in rows:
        table.add_row(*row)
    if isinstance(profile, ModelProfile):
        table.add_row("params_total (computed)", f"{profile.params_total:,.0f}", "")
        table.add_row("params_active (computed)", f"{profile.params_active:,.0f}", "")
    return table


def hardware_json(hw: HardwareProfile) -> dict[str, Any]:
    """A hardware profile as JSON-ready data (every field with its source)."""
    return hw.model_dump(mode="json")


def model_json(m: ModelProfile) -> dict[str, Any]:
    """A model profile as JSON-ready data, with its computed parameter counts."""
    data = m.model_dump(mode="json")
    data["params_total"] = m.params_total
    data["params_active"] = m.params_active
    return data
