"""The terminal view of a training job sharing the serving fleet: what it trained, what the
resizes cost it, how it compares with a static split and with the whole fleet, and the
fleet's cost split between the two tenants."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from simulator.results.shared_training import SharedTrainingMetrics, TrainingBaseline
from simulator.units import format_si, format_time

HOUR = 3600.0


def _baseline(b: TrainingBaseline) -> str:
    if not b.data_parallel:
        return "no usable width on the accelerators left"
    return f"dp {b.data_parallel}: {b.steps:,} steps, {format_si(b.tokens, 'tokens')}"


def shared_training_rows(st: SharedTrainingMetrics) -> list[tuple[str, str]]:
    """(label, text) rows of the shared training job."""
    widths = ", ".join(f"dp {w.data_parallel}: {format_time(w.step_time_s)}"
                       for w in st.widths) or "none (it never ran)"
    rows = [
        ("training job", st.scenario),
        ("trained", f"{st.steps:,} steps, {st.samples:,} sequences, "
                    f"{format_si(st.tokens, 'tokens')}"),
        ("accelerators held", f"mean dp {st.mean_data_parallel:.1f} of blocks of {st.block}; "
                              f"{st.accelerator_seconds / HOUR:,.1f} accelerator-hours"),
        ("step time", widths),
        ("resizes", f"{st.resizes:,} ({st.preemptions:,} preemptions by serving); "
                    f"{format_time(st.restart_s)} restarting"),
        ("work lost", f"{format_time(st.lost_work_s)} of running work "
                      f"({st.lost_steps:,} steps), "
                      f"{st.lost_accelerator_seconds / HOUR:,.1f} accelerator-hours"),
        ("vs a static split", f"{st.gained_vs_static_steps:+,} steps (static split, "
                              f"{_baseline(st.static)})"),
        ("vs the whole fleet", f"{-st.lost_vs_whole_fleet_steps:+,} steps (whole fleet, "
                               f"{_baseline(st.whole_fleet)})"),
    ]
    if st.training_cost_usd is not None:
        rows.append(("fleet cost split", f"serving {st.serving_cost_usd:,.2f}, training "
                                         f"{st.training_cost_usd:,.2f}, idle "
                                         f"{st.idle_cost_usd:,.2f} USD (by accelerator-"
                                         f"seconds)"))
    if st.serving_cost_per_million_tokens_usd is not None:
        trained = st.training_cost_per_million_tokens_usd
        rows.append(("per million tokens", f"served {st.serving_cost_per_million_tokens_usd:,.4f}"
                     f" USD, trained " + (f"{trained:,.4f} USD" if trained is not None
                                          else "-")))
    return rows


def render_shared_training(console: Console, st: SharedTrainingMetrics) -> None:
    """Print the shared training job's table."""
    table = Table(show_header=False, box=None, pad_edge=False, title="Training in the troughs",
                  title_justify="left", title_style="bold")
    table.add_column(style="cyan", no_wrap=True)
    table.add_column(overflow="fold")
    for label, text in shared_training_rows(st):
        table.add_row(label, text)
    console.print(table, markup=False)
