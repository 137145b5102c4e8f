"""The terminal view of one run's result: headline figures, then the details that explain them."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from simulator.profiles.scenario import Scenario
from simulator.report.confidence_text import confidence_rows
from simulator.report.cost_table import cost_over_time_table
from simulator.report.shared_training_text import render_shared_training
from simulator.results import Result
from simulator.results.autoscaling import AutoscalingMetrics, ScaleBin
from simulator.results.inference import InferenceMetrics
from simulator.results.training import TrainingResult
from simulator.units import format_si, format_time


def _pairs(title: str | None = None) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False, title=title,
                  title_justify="left", title_style="bold")
    table.add_column(style="cyan")
    table.add_column(justify="right")
    return table


def render_result(console: Console, scenario: Scenario, result: Result) -> None:
    """Print one run's result: headline figures by kind, cost and energy, memory, then warnings
    and notes."""
    console.print(result.scenario, style="bold")
    fleet = " + ".join(f"{p.cluster.accelerators} x {p.hardware.name}"
                       for p in scenario.pools())
    console.print(f"{result.kind} of {scenario.model.name} on {fleet}, {result.precision}")
    if result.training is not None:
        _training(console, result.training)
    view = result.steady_view()
    if result.inference is not None and view.inference is not None:
        _window(console, result)
        _inference(console, view.inference, result.inference)
        if result.inference.pools:
            _pools(console, result.inference)
    _economics(console, view)
    _confidence(console, result)
    _memory(console, result)
    for warning in result.warnings:
        console.print(Text("warning:", style="yellow"), warning)
    for note in result.notes:
        console.print(f"note: {note}", markup=False)


def _training(console: Console, t: TrainingResult) -> None:
    """The training headline figures, then the step breakdown."""
    head = _pairs("Training")
    head.add_row("step time", format_time(t.step_time_s))
    head.add_row("throughput", f"{t.tokens_per_s:,.0f} tokens/s")
    head.add_row("MFU / HFU", f"{t.mfu:.1%} / {t.hfu:.1%}")
    head.add_row("pipeline bubble", f"{t.bubble_fraction:.1%}")
    head.add_row("steps", f"{t.steps:,}")
    head.add_row("time to train (no failures)", format_time(t.time_to_train_s))
    head.add_row("wall time with failures", format_time(t.wall_time_s))
    head.add_row("goodput", f"{t.goodput:.1%}")
    f = t.failures
    if f.enabled:
        head.add_row("interruptions (expected / sampled)",
                     f"{f.expected_interruptions:,.1f} / {f.sampled_interruptions:,}")
        head.add_row("hours lost to failures", f"{f.lost_hours:,.1f}")
        if f.checkpoint_interval_s:
            head.add_row("checkpoint every", format_time(f.checkpoint_interval_s))
    head.add_row("accelerator-hours", f"{t.accelerator_hours:,.0f}")
    console.print(head)
    _step_breakdown(console, t)


def _step_breakdown(console: Console, t: TrainingResult) -> None:
    """Where the step's time goes on the stage that finishes last and, when another stage
    is busier, on that one too: the difference in their bubbles is stage imbalance."""
    breakdown = Table(title="Step breakdown", title_justify="left")
    breakdown.add_column("part", style="cyan")
    breakdown.add_column("time", justify="right")
    breakdown.add_column("share", justify="right")
    busiest = (t.busiest_stage_breakdown_s if t.busiest_stage != t.critical_stage
               else None)
    if busiest is not None:
        breakdown.title = f"Step breakdown (stage {t.critical_stage}, last to finish)"
        breakdown.add_column(f"stage {t.busiest_stage} (busiest)", justify="right")
    for name, value in t.breakdown_s.model_dump().items():
        theirs = getattr(busiest, name) if busiest is not None else 0.0
        if value > 0 or theirs > 0:
            row = [name, format_time(value), f"{value / t.step_time_s:.1%}"]
            if busiest is not None:
                row.append(f"{format_time(theirs)} ({theirs / t.step_time_s:.1%})")
            breakdown.add_row(*row)
    console.print(breakdown)
    if busiest is not None:
        imbalance = t.breakdown_s.bubble - busiest.bubble
        console.print(f"stage {t.busiest_stage} is busy {format_time(imbalance)} longer than "
                      f"stage {t.critical_stage}: that much of stage {t.critical_stage}'s "
                      f"{format_time(t.breakdown_s.bubble)} bubble is stage imbalance, the "
                      f"rest pipeline fill and drain")


def _percentile_row(table: Table, name: str, p) -> None:
    table.add_row(name, *(format_time(getattr(p, k)) if getattr(p, k) is not None else "-"
                          for k in ("mean", "p50", "p90", "p99")))


def window_line(result: Result) -> str:
    """Where the steady window lies (or why there is none), for a serving result."""
    s = result.steady
    if s is None:
        return ""
    if not s.found:
        return f"Whole-run figures: {s.basis}."
    return (f"Steady window {format_time(s.start_s)} to {format_time(s.end_s)} "
            f"({format_time(s.duration_s)} of a {format_time(result.time_s)} run; "
            f"{s.basis}): the figures below are over it, warm-up and drain left out.")


def _window(console: Console, result: Result) -> None:
    """The steady window, then its headline figures next to the whole run's."""
    s, m = result.steady, result.inference
    assert s is not None and m is not None
    console.print(window_line(result), markup=False)
    if not s.found:
        return
    table = Table(title="Steady window and whole run", title_justify="left")
    table.add_column("figure", style="cyan")
    table.add_column("steady", justify="right")
    table.add_column("whole run", justify="right")
    table.add_row("output tokens/s", f"{s.output_tokens_per_s:,.0f}",
                  f"{m.output_tokens_per_s:,.0f}")
    table.add_row("requests/s", f"{s.requests_per_s:,.2f}", f"{m.requests_per_s:,.2f}")
    table.add_row("USD per million tokens", f"{s.cost_per_million_tokens_usd:,.4f}",
                  f"{result.cost_per_million_tokens_usd:,.4f}")
    table.add_row("busy (fraction)", f"{s.utilization.busy:.2f}",
                  f"{result.utilization.busy:.2f}")
    table.add_row("energy (kWh)", f"{s.energy_kwh:,.4g}", f"{result.energy_kwh:,.4g}")
    console.print(table)


def _autoscaling_rows(head: Table, a: AutoscalingMetrics) -> None:
    """The autoscaled pool: its size over the run, its start-up delay and the requests that
    met a pool still growing."""
    head.add_row("replicas (autoscaled)",
                 f"mean {a.mean_replicas:.2f}, at most {a.max_replicas:,}; "
                 f"{a.scale_ups:,} started, {a.scale_downs:,} drained")
    during = f"{a.arrived_during_scale_up:,} requests arrived during scale-ups"
    if a.slo_missed_during_scale_up is not None and a.slo_missed is not None:
        during += (f", {a.slo_missed_during_scale_up:,} of them missed the SLO "
                   f"({a.slo_missed:,} in the run)")
    head.add_row("scale-up delay", f"{format_time(a.startup_s)}; {during}")
    if a.bins:
        head.add_row("cost over time", _cost_spread(a))


def _cost_spread(a: AutoscalingMetrics) -> str:
    """The day's spread: the cheapest and dearest bin per million tokens, and the bin with
    the lowest SLO attainment (``cost_over_time.csv`` has them all)."""
    def span(b: ScaleBin) -> str:
        """The bin's times, as the terminal writes durations."""
        return f"{format_time(b.start_s)}-{format_time(b.end_s)}"

    priced = [b for b in a.bins if b.usd_per_million_tokens is not None]
    text = f"{len(a.bins)} bins"
    if priced:
        low = min(priced, key=lambda b: b.usd_per_million_tokens or 0.0)
        high = max(priced, key=lambda b: b.usd_per_million_tokens or 0.0)
        text += (f"; per million tokens {low.usd_per_million_tokens:,.4g} USD at "
                 f"{span(low)} to {high.usd_per_million_tokens:,.4g} at {span(high)}")
    judged = [b for b in a.bins if b.slo_attainment is not None]
    if judged:
        worst = min(judged, key=lambda b: b.slo_attainment or 0.0)
        lowest = 100 * (worst.slo_attainment or 0.0)
        text += f"; SLO attainment lowest {lowest:.1f}% at {span(worst)}"
    return text


def _inference(console: Console, m: InferenceMetrics, whole: InferenceMetrics) -> None:
    head = _pairs("Serving")
    head.add_row("requests completed", f"{whole.requests:,} of {whole.arrived:,} arrived"
                 + (f" ({whole.dropped:,} dropped)" if whole.dropped else ""))
    head.add_row("simulated duration", format_time(whole.duration_s))
    head.add_row("throughput", f"{m.requests_per_s:,.2f} req/s, "
                                f"{m.output_tokens_per_s:,.0f} output tokens/s, "
                                f"{m.total_tokens_per_s:,.0f} total tokens/s")
    if m.slo_attainment is not None:
        head.add_row("SLO attainment", f"{m.slo_attainment:.1%}")
        if m.goodput_requests_per_s is not None:
            head.add_row("goodput", f"{m.goodput_requests_per_s:,.2f} req/s within SLO")
    head.add_row("batch size (mean / max)", f"{m.batch_size.mean:,.1f} / {m.batch_size.max:,.0f}")
    head.add_row("KV cache use (mean / max)",
                 f"{m.kv_cache_utilization.mean:.0%} / {m.kv_cache_utilization.max:.0%}")
    head.add_row("preemptions", f"{m.preemptions:,}")
    head.add_row("serving-stack overhead", f"{m.cpu_overhead_fraction:.1%} of iteration time "
                                           f"(host work, eager launches)")
    s = m.speculative
    if s is not None:
        drafter = s.draft_model or s.method
        drawn = f"{s.tokens_per_step:.2f}" if s.tokens_per_step is not None else "-"
        head.add_row("speculative decoding",
                     f"{drafter}, k={s.draft_tokens}: {drawn} tokens per step "
                     f"(expected {s.expected_tokens_per_step:.2f}), {s.verify_steps:,} steps")
        head.add_row("speculation break-even",
                     f"batch {s.break_even_batch:,}" if s.break_even_batch is not None
                     else "pays up to the batch limit")
    if whole.autoscaling is not None:
        _autoscaling_rows(head, whole.autoscaling)
    if m.prefix_cache is not None:
        c = m.prefix_cache
        head.add_row("prefix cache", f"{c.hit_rate:.1%} of cacheable blocks hit; "
                                     f"{c.cached_tokens:,} prompt tokens ({c.token_hit_rate:.1%}) "
                                     f"not recomputed; {c.evicted_blocks:,} blocks evicted")
    console.print(head)
    over_time = None if whole.autoscaling is None else cost_over_time_table(whole.autoscaling)
    if over_time is not None:
        console.print(over_time)
    if whole.shared_training is not None:
        render_shared_training(console, whole.shared_training)
    latency = Table(title="Latency", title_justify="left")
    latency.add_column("metric", style="cyan")
    for col in ("mean", "p50", "p90", "p99"):
        latency.add_column(col, justify="right")
    _percentile_row(latency, "TTFT", m.ttft_s)
    _percentile_row(latency, "TPOT", m.tpot_s)
    _percentile_row(latency, "end to end", m.e2e_s)
    _percentile_row(latency, "queueing", m.queue_s)
    console.print(latency)
    for name, target in m.slo.items():
        verdict = Text("met", style="green") if target.met else Text("missed", style="red")
        value = format_time(target.value_s) if target.value_s is not None else "-"
        console.print(Text.assemble(f"SLO {name}: p{target.percentile:g} {value} vs target "
                                    f"{format_time(target.target_s)} -> ", verdict,
                                    f" ({target.attainment:.1%} within)"))


def _pools(console: Console, m: InferenceMetrics) -> None:
    """A mixed fleet's pools: what each served and what it cost (whole run)."""
    table = Table(title="Pools (whole run)", title_justify="left")
    for name in ("pool", "hardware", "replicas", "speed req/s", "requests", "share",
                 "busy", "HBM bw", "cost USD"):
        table.add_column(name, justify="left" if name == "hardware" else "right")
    for p in m.pools:
        table.add_row(str(p.index), p.hardware, f"{p.replicas:,} x {p.accelerators // p.replicas}",
                      f"{p.speed_requests_per_s:,.2f}", f"{p.requests:,}",
                      f"{p.request_share:.1%}", f"{p.busy:.0%}", f"{p.memory_bandwidth:.0%}",
                      f"{p.cost_usd:,.2f}")
    console.print(table)


def _economics(console: Console, r: Result) -> None:
    table = _pairs("Cost and energy")
    table.add_row("cost", f"{r.cost_usd:,.2f} USD ({r.cost.mode}, "
                          f"{r.cost.usd_per_accelerator_hour:.2f} USD per accelerator-hour)")
    table.add_row("per million tokens", f"{r.cost_per_million_tokens_usd:,.4f} USD")
    table.add_row("energy", f"{format_si(r.energy_kwh * 1e3, 'Wh')} (average "
                            f"{format_si(r.average_power_w, 'W')}, PUE included)")
    table.add_row("tokens per kWh", f"{r.tokens_per_kwh:,.0f}")
    table.add_row("carbon", f"{format_si(r.carbon_kg * 1e3, 'g')} CO2")
    u = r.utilization
    table.add_row("utilization", f"compute {u.compute:.0%}, HBM bandwidth "
                                 f"{u.memory_bandwidth:.0%}, network {u.network:.0%}, "
                                 f"busy {u.busy:.0%}")
    console.print(table)


def _confidence(console: Console, result: Result) -> None:
    """How far to trust the figures above: the error bands of the run's regime on published
    measurements, and extrapolation in yellow."""
    if result.confidence is None:
        return
    table = Table(show_header=False, box=None, pad_edge=False, title_justify="left",
                  title="Confidence (error on published measurements)", title_style="bold")
    table.add_column(style="cyan", no_wrap=True)
    table.add_column(overflow="fold")
    risky = "yellow" if result.confidence.extrapolated else ""
    for label, text in confidence_rows(result.confidence):
        is_flag = not label or label == "extrapolation"
        table.add_row(label, Text(text, style=risky if is_flag else ""))
    console.print(table)


def _memory(console: Console, result: Result) -> None:
    memory = Table(title="Memory per device", title_justify="left")
    memory.add_column("consumer", style="cyan")
    memory.add_column("bytes", justify="right")
    memory.add_column("share", justify="right")
    for name, value in result.memory.parts_bytes.items():
        if value:
            memory.add_row(name, format_si(value, "B"), f"{value / result.memory.total_bytes:.0%}")
    memory.add_row("total", format_si(result.memory.total_bytes, "B"),
                   f"{result.memory.total_bytes / result.memory.capacity_bytes:.0%} of capacity",
                   style="bold")
    console.print(memory)
    console.print(result.memory.verdict)
    for note in result.memory.notes:
        console.print(f"  {note}", markup=False)
