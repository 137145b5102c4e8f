"""The steady window of a serving run: where it lies, what it counts, and what it costs.

The figures over the window leave the warm-up (an empty fleet filling up) and the drain
(after the last arrival) out, so that they do not depend on how many requests were
simulated (issue 17, item 1).
"""

from __future__ import annotations

import numpy as np
import pytest

from simulator.engine.serving.window import MIN_BINS, Window, balanced, find_window
from simulator.loading import load_scenario, scenario_from_dict
from simulator.simulate import simulate
from simulator.studies.rows import result_metrics
from tests.conftest import ROOT

ISSUE = ["hardware=mi300x", "workload.parallelism.tp=1", "cluster.accelerators=10",
         "workload.replicas=10", "workload.arrivals.rate_per_s=20"]


def issue_run(requests: int, *more: str):
    """The reproducer of issue 17 item 1: 10 MI300X replicas at 20 requests/s (above what
    they sustain, so the whole-run figures grow with the run's length)."""
    return simulate(load_scenario(ROOT / "scenarios/llama3.1-70b-h100-serving.yaml",
                                  [*ISSUE, f"workload.arrivals.requests={requests}", *more]))


@pytest.fixture(scope="module")
def short():
    return issue_run(1000)


@pytest.fixture(scope="module")
def long():
    return issue_run(6000)


def small(arrivals: dict, **workload):
    return simulate(scenario_from_dict({
        "name": "steady", "hardware": "h100-sxm", "cluster": {"accelerators": 1},
        "model": "llama3.1-8b", "seed": 4,
        "workload": {"kind": "inference", "arrivals": arrivals, "prompt_tokens": 500,
                     "output_tokens": 100, **workload}}))


# ---- the issue's test ----------------------------------------------------------------------
def test_steady_cost_per_token_does_not_depend_on_the_run_length(short, long):
    # whole run: $0.33 vs $0.20 per million tokens (the drain and warm-up are inside)
    whole = short.cost_per_million_tokens_usd / long.cost_per_million_tokens_usd
    assert whole > 1.5
    a, b = short.steady, long.steady
    assert a.found and b.found
    assert a.cost_per_million_tokens_usd == pytest.approx(b.cost_per_million_tokens_usd,
                                                          rel=0.05)
    # the fleet is saturated in the window of either: it runs all the time
    assert a.utilization.busy > 0.95 and b.utilization.busy > 0.95
    assert a.requests_per_s == pytest.approx(b.requests_per_s, rel=0.05)


def test_cloud_cost_of_the_window_is_the_fleet_rate_times_its_length(long):
    s = long.steady
    # 10 MI300X, rented as two whole 8-GPU platforms (16 billed), at the profile's cloud
    # rate, per hour: the same whatever the window
    assert long.cost.billed_accelerators == 16
    rate = long.cost.usd_per_accelerator_hour * 16
    assert s.usd_per_hour == pytest.approx(rate)
    assert s.cost_usd == pytest.approx(rate * s.duration_s / 3600)
    # cost per million tokens: the window's cost over the tokens produced in it (blended)
    tokens = s.prompt_tokens + s.output_tokens
    assert s.cost_per_million_tokens_usd == pytest.approx(s.cost_usd / tokens * 1e6)


# ---- where the window lies -------------------------------------------------------------------
def test_window_runs_from_flow_balance_to_the_last_arrival(long):
    s, rec = long.steady, long.requests
    ts = long.inference.time_series
    last = float(np.max(rec.arrival_s))
    # the end is the start of the bin holding the last arrival; the start a bin's start
    assert s.end_s == pytest.approx(int(last / ts.bin_s) * ts.bin_s)
    assert s.start_s / ts.bin_s == pytest.approx(round(s.start_s / ts.bin_s))
    assert s.duration_s == pytest.approx(s.end_s - s.start_s)
    # before the start no request had completed at the steady rate yet: the first ones
    # leave only after the fleet filled up
    first_done = float(np.nanmin(rec.finish_s))
    assert s.start_s >= first_done
    assert "last arrival" in s.basis and "flow balance" in s.basis


def test_window_rule_on_a_hand_made_ramp():
    width = 1.0
    # occupancy ramps 0, 25, 50, 75 then holds 100; completions start at bin 5 and hold 10
    occupancy = np.array([0, 25, 50, 75] + [100] * 36, dtype=float)
    completions = np.array([0] * 5 + [10] * 35, dtype=float)
    w = find_window(occupancy, completions, width, first_arrival=0.0, last_arrival=30.5)
    # occupancy reaches 90 (90% of its median 100) at bin 4, completions 9 at bin 5: the
    # later of the two; the end is the start of bin 30, which holds the last arrival
    assert w.found and (w.first, w.stop) == (5, 30)
    assert (w.start_s, w.end_s) == (5.0, 30.0)


def test_window_rule_needs_a_measurement_after_the_ramp():
    occupancy = np.array([0, 50] + [100] * 20, dtype=float)
    completions = np.array([0] * 12 + [5] * 10, dtype=float)
    # balance at bin 12, the last arrival in bin 12 + MIN_BINS - 1: one bin short
    w = find_window(occupancy, completions, 1.0, 0.0, 12 + MIN_BINS - 0.5)
    assert not w.found and "too close to the last arrival" in w.basis
    # arrivals all at once: no span to measure
    w = find_window(occupancy, completions, 1.0, 0.0, 0.0)
    assert not w.found and "all at once" in w.basis
    # no completion before the last arrival: never balanced
    w = find_window(occupancy, np.zeros(22), 1.0, 0.0, 21.0)
    assert not w.found


def test_a_window_still_filling_up_is_refused():
    w = Window(found=True, basis="b", first=2, stop=12, start_s=2.0, end_s=12.0)
    # produced 1,150 tokens while the completed requests carried 1,000: 15%, the limit
    assert balanced(w, 1150.0, 1000.0) is w
    assert balanced(w, 860.0, 1000.0) is w
    refused = balanced(w, 1160.0, 1000.0)
    assert not refused.found and "not steady before the arrivals end" in refused.basis
    assert "116 tokens/s" in refused.basis and "100 tokens/s" in refused.basis
    assert not balanced(w, 500.0, 0.0).found  # nothing completed: nothing is steady


def test_a_run_whose_requests_outlive_its_arrivals_has_no_window():
    # 400 requests at 30/s arrive over 13 s; each lives about 20 s in the fleet: when the
    # arrivals end, the fleet is still filling up with prompts (cheap tokens), and a
    # window there would price a token at a third of its steady cost
    r = simulate(load_scenario(ROOT / "scenarios/llama3.1-70b-h100-serving.yaml", [
        *ISSUE[:4], "workload.arrivals.rate_per_s=30", "workload.arrivals.requests=400",
        "workload.precision=fp8"]))
    assert not r.steady.found and "not steady before the arrivals end" in r.steady.basis
    assert r.steady.cost_per_million_tokens_usd == pytest.approx(
        r.cost_per_million_tokens_usd)
    assert any("not steady before the arrivals end" in w for w in r.warnings)


# ---- what the window counts ------------------------------------------------------------------
def test_every_request_is_accounted_for(short, long):
    for r in (short, long):
        p, m = r.steady.requests, r.inference
        assert p.arrived_before + p.arrived_in_window + p.arrived_after == m.arrived
        assert (p.completed_before + p.completed_in_window + p.completed_after + p.dropped
                + p.unfinished) == m.arrived
        assert p.measured <= p.arrived_in_window
        rec = r.requests
        inside = (rec.arrival_s >= r.steady.start_s) & (rec.arrival_s < r.steady.end_s)
        assert p.arrived_in_window == int(np.sum(inside))
        done = (rec.finish_s >= r.steady.start_s) & (rec.finish_s < r.steady.end_s)
        assert p.completed_in_window == int(np.sum(done))
        assert r.steady.requests_per_s == pytest.approx(p.completed_in_window
                                                        / r.steady.duration_s)


def test_tokens_are_counted_when_produced_in_the_window(long):
    s, ts = long.steady, long.inference.time_series
    t = np.array(ts.t_s)
    inside = (t >= s.start_s - 1e-9) & (t < s.end_s - 1e-9)
    output = float(np.sum(np.array(ts.output_tokens_per_s)[inside])) * ts.bin_s
    prompt = float(np.sum(np.array(ts.prompt_tokens_per_s)[inside])) * ts.bin_s
    assert s.output_tokens == pytest.approx(output)
    assert s.prompt_tokens == pytest.approx(prompt)
    assert s.output_tokens_per_s == pytest.approx(output / s.duration_s)
    assert s.total_tokens_per_s == pytest.approx((output + prompt) / s.duration_s)


def test_prompt_tokens_count_once_despite_recomputation():
    # this run preempts (recompute; vLLM takes blocks as contexts grow, where trtllm
    # reserves whole sequences): the prompts prefilled again are not produced again
    run = issue_run(1000, "workload.engine=vllm-v1")
    rec = run.requests
    assert int(np.sum(rec.preemptions)) > 0
    ts = run.inference.time_series
    produced = float(np.sum(ts.prompt_tokens_per_s)) * ts.bin_s
    assert produced == pytest.approx(float(np.sum(rec.prompt_tokens)))


def test_latencies_are_those_of_the_requests_that_arrived_in_the_window(long):
    s, rec = long.steady, long.requests
    inside = (rec.arrival_s >= s.start_s) & (rec.arrival_s < s.end_s) & \
        (rec.status == "completed")
    assert s.requests.measured == int(np.sum(inside))
    assert s.ttft_s.p99 == pytest.approx(np.percentile(rec.ttft_s[inside], 99))
    assert s.e2e_s.mean == pytest.approx(np.mean(rec.e2e_s[inside]))


def test_utilization_is_a_fraction(short, long):
    for r in (short, long):
        for value in [*r.steady.utilization.model_dump().values(),
                      *r.steady.activity.model_dump().values()]:
            assert 0.0 <= value <= 1.0


def test_window_energy_is_the_integral_of_power_over_it(long):
    s = long.steady
    # P = n (idle + (tdp - idle) level + system) PUE, with the profile's watts, over the
    # window's duration (not the run's)
    scenario = load_scenario(ROOT / "scenarios/llama3.1-70b-h100-serving.yaml", ISSUE)
    hw = scenario.hardware
    idle, tdp = hw.power.idle.value, hw.power.tdp.value
    system, pue = hw.power.system_per_device.value, scenario.cost.pue
    assert pue == 1.2  # the default cost block
    busy, mem = s.utilization.busy, s.utilization.memory_bandwidth
    level = busy - 0.4 * min(busy, mem)  # memory-bound time draws 60% of the dynamic range
    # 16 billed (two whole 8-GPU platforms): all draw idle and system power, the 10 that
    # run replicas add the dynamic part
    watts = (16 * (idle + system) + 10 * (tdp - idle) * level) * pue
    assert s.average_power_w == pytest.approx(watts)
    assert s.energy_kwh == pytest.approx(watts * s.duration_s / 3.6e6)
    assert s.tokens_per_kwh == pytest.approx((s.prompt_tokens + s.output_tokens) / s.energy_kwh)


# ---- no window -------------------------------------------------------------------------------
def test_offline_run_has_no_window_and_says_the_figures_are_the_whole_runs():
    r = small({"process": "offline", "requests": 64})
    s = r.steady
    assert not s.found and "all at once" in s.basis
    assert s.output_tokens_per_s == r.inference.output_tokens_per_s
    assert s.cost_per_million_tokens_usd == pytest.approx(r.cost_per_million_tokens_usd)
    assert s.energy_kwh == pytest.approx(r.energy_kwh)
    assert any("no steady window" in n for n in r.notes)
    assert not any("steady" in w for w in r.warnings)  # (a whole-unit warning may remain)


def test_too_short_a_run_warns_and_falls_back_to_the_whole_run():
    r = small({"process": "poisson", "rate_per_s": 20, "requests": 12})
    s = r.steady
    assert not s.found
    assert s.requests_per_s == r.inference.requests_per_s
    assert s.requests.completed_in_window == r.inference.requests
    assert any("no steady window" in w and "more requests" in w for w in r.warnings)


# ---- who reads the steady figures --------------------------------------------------------------
def test_studies_read_the_steady_figures(short):
    row = result_metrics(short, "inference")
    s = short.steady
    assert row["cost_per_million_tokens_usd"] == s.cost_per_million_tokens_usd
    assert row["output_tokens_per_s"] == s.output_tokens_per_s
    assert row["ttft_p99_s"] == s.ttft_s.p99
    assert row["time_s"] == s.duration_s
    assert row["usd_per_hour"] == pytest.approx(s.usd_per_hour)
    assert row["steady_window_s"] == s.duration_s
    offline = small({"process": "offline", "requests": 16})
    assert result_metrics(offline, "inference")["steady_window_s"] is None


def test_steady_view_keeps_a_training_result_as_it_is():
    r = simulate(load_scenario(ROOT / "scenarios/llama3.1-8b-h100-training.yaml"))
    assert r.steady is None and r.steady_view() is r


def test_json_and_terminal_state_the_window(cli):
    args = ["run", "scenarios/llama3.1-70b-h100-serving.yaml",
            "--set", "workload.arrivals.requests=400"]
    data = cli(*args, "--format", "json").json()
    s = data["steady"]
    assert s["found"] and s["end_s"] > s["start_s"] >= 0
    assert {"cost_per_million_tokens_usd", "output_tokens_per_s", "energy_kwh",
            "usd_per_hour", "requests"} <= set(s)
    out = cli(*args).out
    assert "Steady window" in out and "whole run" in out
