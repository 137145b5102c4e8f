"""The terminal view of one run's result."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from simulator.profiles.scenario import Scenario
from simulator.results import Result
from simulator.units import format_si, format_time


def render_result(console: Console, scenario: Scenario, result: Result) -> None:
    w = scenario.workload
    console.print(f"[bold]{result.scenario}[/bold]")
    console.print(f"{result.kind} of {scenario.model.name} on {result.accelerators} x "
                  f"{scenario.hardware.name}, {result.precision}")
    head = Table(show_header=False, box=None, pad_edge=False)
    head.add_column(style="cyan")
    head.add_column(justify="right")
    if result.time_s is not None:
        head.add_row("simulated time", format_time(result.time_s))
    peak = result.peak
    head.add_row("peak per device", format_si(peak.flops_per_accelerator, "FLOP/s"))
    head.add_row("peak of the cluster", format_si(peak.flops_cluster, "FLOP/s"))
    head.add_row("HBM bandwidth per device", format_si(peak.hbm_bandwidth_per_accelerator, "B/s"))
    unit = "trained" if w.kind == "training" else "generated"
    head.add_row(f"model FLOPs per {unit} token", format_si(peak.model_flops_per_token, "FLOP"))
    head.add_row("upper bound on tokens/s (at peak)", f"{peak.ideal_tokens_per_s:,.0f}")
    console.print(head)

    memory = Table(title="Memory per device", title_justify="left")
    memory.add_column("consumer", style="cyan")
    memory.add_column("bytes", justify="right")
    memory.add_column("share", justify="right")
    for name, value in result.memory.parts_bytes.items():
        memory.add_row(name, format_si(value, "B"), f"{value / result.memory.total_bytes:.0%}")
    memory.add_row("total", format_si(result.memory.total_bytes, "B"),
                   f"{result.memory.total_bytes / result.memory.capacity_bytes:.0%} of capacity",
                   style="bold")
    console.print(memory)
    console.print(result.memory.verdict)
    for note in result.memory.notes:
        console.print(f"  {note}", markup=False)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    for note in result.notes:
        console.print(f"note: {note}", markup=False)
