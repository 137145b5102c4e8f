"""The sustainable-rate search (simulator.studies.capacity): brackets, bisects, and finds
rates that are known by hand."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from simulator.errors import InputError
from simulator.loading import scenario_from_dict
from simulator.simulate import simulate
from simulator.studies.capacity import (
    DEFAULT_TOLERANCE,
    SUSTAIN_S,
    _longer,
    at_rate,
    judged_rate,
    max_sustainable_rate,
    scenario_capacity,
)


def _threshold(limit: float):
    calls: list[float] = []

    def meets(rate: float) -> bool:
        calls.append(rate)
        return rate <= limit

    return meets, calls


@pytest.mark.parametrize("start", [0.5, 10.0, 37.3, 100.0, 5000.0])
def test_the_search_brackets_the_threshold_within_the_tolerance(start):
    meets, calls = _threshold(37.3)
    found = max_sustainable_rate(meets, start=start)
    assert found.rate_per_s is not None and found.missed_at_per_s is not None
    assert found.rate_per_s <= 37.3 < found.missed_at_per_s
    assert found.missed_at_per_s / found.rate_per_s <= 1 + DEFAULT_TOLERANCE
    assert len(found.probes) == len(calls)
    # bracketing by 2x takes at most log2(5000/37.3) + 1 = 8.1 probes from the farthest
    # start, then bisection of a factor 2 down to 2%: log2(ln 2 / ln 1.02) = 5.1 -> 6
    assert len(calls) <= 9 + 6


def test_the_search_is_deterministic():
    first = max_sustainable_rate(_threshold(3.3)[0], start=1.0)
    again = max_sustainable_rate(_threshold(3.3)[0], start=1.0)
    assert first == again


def test_a_slo_missed_at_every_rate_and_one_never_missed():
    never = max_sustainable_rate(lambda rate: False, start=8.0)
    assert never.rate_per_s is None and never.missed_at_per_s == pytest.approx(8.0 / 2**12)
    always = max_sustainable_rate(lambda rate: True, start=8.0)
    assert always.missed_at_per_s is None and always.rate_per_s == pytest.approx(8.0 * 2**12)


def test_bad_search_arguments_are_rejected():
    with pytest.raises(ValueError, match="positive rate"):
        max_sustainable_rate(lambda rate: True, start=0.0)
    with pytest.raises(ValueError, match="rel_tolerance"):
        max_sustainable_rate(lambda rate: True, start=1.0, rel_tolerance=0.0)


# ---- on a scenario -------------------------------------------------------------------------
def _scenario(**workload) -> dict:
    base = {"kind": "inference", "precision": "fp8", "replicas": 1,
            "arrivals": {"process": "poisson", "rate_per_s": 4.0, "requests": 400},
            "prompt_tokens": 512, "output_tokens": 64, "warmup_requests": 100,
            "slo": {"ttft_s": 0.5, "tpot_s": 0.05}}
    base.update(workload)
    return {"name": "capacity test", "hardware": "h100-sxm", "cluster": {"accelerators": 1},
            "model": "llama3.1-8b", "workload": base, "seed": 7}


def test_a_probe_keeps_the_arrival_window_and_the_seed():
    scenario = scenario_from_dict(_scenario())
    faster = at_rate(scenario, 10.0)
    # 400 requests at 4/s is a 100 s window; at 10/s it holds 1,000, warm-up 100 -> 250
    assert faster.workload.arrivals.rate_per_s == 10.0
    assert faster.workload.arrivals.requests == 1000
    assert faster.workload.warmup_requests == 250
    assert faster.seed == scenario.seed and faster.workload.slo == scenario.workload.slo


def _whole(t: np.ndarray) -> SimpleNamespace:
    """A steady window over every bin of ``t``: a D/D/1 queue has no batch to fill."""
    return SimpleNamespace(found=True, start_s=float(t[0]), end_s=float(t[-1]) + 1e-9)


def _deterministic_result(*, rate: float, n: int, warmup: int, service_s: float,
                          slo_s: float) -> SimpleNamespace:
    """A D/D/1 run as a fake result: one server, constant arrivals at ``rate``, every request
    served alone in ``service_s``. Request k arrives at k/r and starts at max(k/r, k·S), so
    its TTFT is S + k·max(0, S - 1/r): no request waits while r <= 1/S. The requests in the
    system at t are those arrived, floor(t·r) + 1, less those done, floor(t / S) once the
    server is saturated (every request is done S after it starts)."""
    k = np.arange(warmup, n)
    ttft = service_s + k * max(0.0, service_s - 1.0 / rate)
    p99 = float(np.percentile(ttft, 99))
    last = (n - 1) / rate
    t = np.arange(0.0, last, last / 64)  # 64 bins over the arrivals, sampled at their start
    start = np.maximum(np.arange(n) / rate, np.arange(n) * service_s)
    done = np.searchsorted(np.sort(start + service_s), t, side="right")
    arrived = np.minimum(np.floor(t * rate) + 1, n)
    series = SimpleNamespace(t_s=list(t), in_system=list(arrived - done),
                             arrivals_per_s=[rate] * len(t))
    target = SimpleNamespace(met=p99 <= slo_s, value_s=p99, target_s=slo_s, percentile=99)
    return SimpleNamespace(inference=SimpleNamespace(slo={"ttft_s": target},
                                                     time_series=series),
                           steady=_whole(t), time_s=last + service_s)


def _deterministic_queue(service_s: float, runs: list[tuple[float, float]] | None = None):
    """A fake simulate of the D/D/1 queue above; ``runs`` collects (rate, window) of each."""

    def run(scenario):
        w = scenario.workload
        rate, n = w.arrivals.rate_per_s, w.arrivals.requests
        if runs is not None:
            runs.append((rate, n / rate))
        return _deterministic_result(rate=rate, n=n, warmup=w.warmup_requests,
                                     service_s=service_s, slo_s=w.slo.ttft_s)

    return run


def test_the_search_finds_the_saturation_rate_of_a_deterministic_queue():
    """Service 0.1 s, TTFT target 0.1001 s: any queueing at all breaks the target, so the
    highest sustainable rate is the server's saturation rate 1 / 0.1 s = 10 requests/s."""
    scenario = scenario_from_dict(_scenario(
        arrivals={"process": "constant", "rate_per_s": 4.0, "requests": 400},
        slo={"ttft_s": 0.1001}))
    found = scenario_capacity(scenario, _deterministic_queue(0.1))
    assert found.rate_per_s is not None and found.missed_at_per_s is not None
    assert found.rate_per_s <= 10.0 < found.missed_at_per_s
    assert found.missed_at_per_s / found.rate_per_s <= 1.02


def _short_lenient_scenario():
    """20 s of constant arrivals at 10/s (200 requests, 50 warm-up), p99 TTFT 5 s: a target
    a short run of an overloaded D/D/1 queue still meets."""
    return scenario_from_dict(_scenario(
        arrivals={"process": "constant", "rate_per_s": 10.0, "requests": 200},
        warmup_requests=50, slo={"ttft_s": 5.0}))


def test_a_rate_above_capacity_meeting_the_slo_over_a_short_run_is_rejected():
    """Service 0.1 s (capacity 10/s), 11/s offered. Over 20 s (220 requests) the last
    measured request waits k·(S - 1/r) = 218 x (0.1 - 1/11) = 1.98 s, TTFT p99 ~2.1 s < 5 s:
    the SLO alone would pass it. Its backlog grows at r - 1/S = 1 req/s, 9% of the rate
    (> 1%), so the rate is run again over 40 s (TTFT p99 ~ 0.1 + 436 x 0.00909 = 4.1 s,
    still met, still growing) and 80 s (~8.1 s > 5 s): rejected on the SLO."""
    scenario = _short_lenient_scenario()
    short = _deterministic_result(rate=11.0, n=220, warmup=55, service_s=0.1, slo_s=5.0)
    assert short.inference.slo["ttft_s"].met  # what the search used to accept
    runs: list[tuple[float, float]] = []
    probe = judged_rate(scenario, _deterministic_queue(0.1, runs), 11.0)
    assert not probe.meets and "p99 TTFT" in probe.reason
    assert [round(w) for _, w in runs] == [20, 40, 80]
    assert probe.window_s == pytest.approx(80.0)


def test_a_rate_below_capacity_is_accepted_on_the_first_run():
    """9/s on the same queue: nobody waits, the system holds 0 or 1 request, the backlog's
    slope is within 1% of the rate: one run of the scenario's 20 s window suffices."""
    runs: list[tuple[float, float]] = []
    probe = judged_rate(_short_lenient_scenario(), _deterministic_queue(0.1, runs), 9.0)
    assert probe.meets and "keeps up" in probe.reason
    assert len(runs) == 1 and probe.window_s == pytest.approx(20.0)


def test_the_search_with_a_lenient_target_finds_capacity_not_the_short_runs_overload():
    """With the 5 s target the short run's SLO passes up to ~11.5/s; keeping up bounds the
    answer by the capacity 10/s plus the 1% growth allowed (10.1/s), and the failure
    reported is the lowest failing rate's."""
    found = scenario_capacity(_short_lenient_scenario(), _deterministic_queue(0.1))
    assert found.rate_per_s is not None and found.missed_at_per_s is not None
    assert 10.0 / 1.02 <= found.rate_per_s <= 10.1
    assert "at " in found.describe() and ("grows" in found.describe()
                                          or "p99 TTFT" in found.describe())


def test_a_longer_window_doubles_up_to_the_sustained_run_and_the_request_cap():
    # twice the window, at most SUSTAIN_S (600 s) ...
    assert _longer(30.0, SUSTAIN_S, 1000.0) == 60.0
    assert _longer(480.0, SUSTAIN_S, 1000.0) == 600.0
    assert _longer(600.0, SUSTAIN_S, 1000.0) is None
    # ... and at most MAX_REQUESTS (1,000,000) requests: 50 s at 20,000/s, none at 40,000/s
    assert _longer(30.0, SUSTAIN_S, 20_000.0) == pytest.approx(50.0)
    assert _longer(30.0, SUSTAIN_S, 40_000.0) is None


def test_a_stretched_probe_keeps_the_warm_up_time():
    scenario = scenario_from_dict(_scenario())
    longer = at_rate(scenario, 10.0, stretch=4.0)
    # 100 s at 10/s x 4 = 4,000 requests; the warm-up is 25 s at any stretch: 250 requests
    assert longer.workload.arrivals.requests == 4000
    assert longer.workload.warmup_requests == 250


def test_the_search_on_the_real_simulator_is_consistent_at_its_bracket():
    """The rate found passes when judged again, and the first rate above it does not."""
    scenario = scenario_from_dict(_scenario())
    found = scenario_capacity(scenario, simulate, rel_tolerance=0.05)
    assert found.rate_per_s is not None and found.missed_at_per_s is not None
    assert judged_rate(scenario, simulate, found.rate_per_s).meets
    assert not judged_rate(scenario, simulate, found.missed_at_per_s).meets
    assert found.missed_at_per_s / found.rate_per_s <= 1.05


@pytest.mark.parametrize(("workload", "message"), [
    ({"arrivals": {"process": "offline", "requests": 400}}, "arrivals.process: offline"),
    ({"slo": None}, "needs workload.slo"),
    ({"arrivals": {"process": "poisson", "rate_per_s": 4.0, "duration_s": 100.0}},
     "needs arrivals.requests"),
    ({"arrivals": {"process": "poisson", "rate_per_s": 4.0, "duration_s": 100.0,
                   "requests": 400, "profile": {"hourly": [1.0] * 24}}},
     "make it vary in time"),
])
def test_scenarios_without_a_rate_to_search_are_refused_with_the_reason(workload, message):
    scenario = scenario_from_dict(_scenario(**workload))
    with pytest.raises(InputError, match=message):
        scenario_capacity(scenario, simulate)


def _settling_fleet(runs: list[tuple[float, float]]):
    """A fake simulate: the SLO is met below 12/s; above 10/s the backlog grows at half the
    rate however long the run; below 10/s it grows at 5% of the rate over runs shorter than
    80 s and is level over longer ones (a batch that settles slowly)."""

    def run(scenario):
        w = scenario.workload
        rate, n = w.arrivals.rate_per_s, w.arrivals.requests
        window = n / rate
        runs.append((rate, window))
        slope = 0.5 * rate if rate >= 10.0 else (0.05 * rate if window < 80.0 - 1e-9 else 0.0)
        t = np.linspace(0.0, window, 64, endpoint=False)
        series = SimpleNamespace(t_s=list(t), in_system=list(100.0 + slope * t),
                                 arrivals_per_s=[rate] * len(t))
        target = SimpleNamespace(met=rate < 12.0, value_s=1.0, target_s=2.0, percentile=99)
        return SimpleNamespace(inference=SimpleNamespace(slo={"ttft_s": target},
                                                         time_series=series),
                               steady=_whole(t), time_s=window)

    return run


def test_a_rate_starts_its_second_run_at_the_window_a_lower_rate_needed():
    """From 4/s on a 20 s window (80 requests at 4/s): 4/s grows over 20 and 40 s and is
    level over 80 s; 8/s then goes 20 s -> 80 s (not 40 s); 16/s misses the SLO on its
    first, short run. Between 10 and 12/s the backlog grows over every window up to 600 s:
    those rates fail, so the answer is just below 10/s."""
    runs: list[tuple[float, float]] = []
    scenario = scenario_from_dict(_scenario(
        arrivals={"process": "poisson", "rate_per_s": 4.0, "requests": 80}, warmup_requests=0))
    found = scenario_capacity(scenario, _settling_fleet(runs))
    windows = {}
    for rate, window in runs:
        windows.setdefault(rate, []).append(round(window))
    assert windows[4.0] == [20, 40, 80]
    assert windows[8.0] == [20, 80]
    assert windows[16.0] == [20]
    assert [w for r, ws in windows.items() if 10.0 <= r < 12.0 for w in ws][-1] == 600
    assert found.rate_per_s is not None and 10.0 / 1.02 < found.rate_per_s < 10.0
    assert "the backlog grows at" in found.describe()


def _filling_fleet(runs: list[float], steady_from_s: float | None):
    """A fake simulate that meets the SLO with a level backlog at every rate, but finds a
    steady window only on runs of at least ``steady_from_s`` seconds (None: never), as a
    batch that is still filling when a short run's arrivals end."""

    def run(scenario):
        w = scenario.workload
        window = w.arrivals.requests / w.arrivals.rate_per_s
        runs.append(round(window))
        t = np.linspace(0.0, window, 64, endpoint=False)
        series = SimpleNamespace(t_s=list(t), in_system=[100.0] * len(t),
                                 arrivals_per_s=[w.arrivals.rate_per_s] * len(t))
        target = SimpleNamespace(met=True, value_s=1.0, target_s=2.0, percentile=99)
        found = steady_from_s is not None and window >= steady_from_s - 1e-9
        return SimpleNamespace(inference=SimpleNamespace(slo={"ttft_s": target},
                                                         time_series=series),
                               steady=_whole(t) if found else SimpleNamespace(found=False),
                               time_s=window)

    return run


def test_a_run_without_a_steady_window_is_run_again_until_it_has_one():
    """20 s window (the lenient scenario); the fake finds a steady window from 40 s on: the
    20 s run meets the SLO with a level backlog but is no verdict, the 40 s run passes."""
    runs: list[float] = []
    probe = judged_rate(_short_lenient_scenario(), _filling_fleet(runs, 40.0), 9.0)
    assert runs == [20, 40]
    assert probe.meets and probe.window_s == pytest.approx(40.0)
    assert "keeps up" in probe.reason


def test_a_run_never_steady_is_judged_on_its_backlog_over_the_longest_window():
    """No steady window at any length: windows 20, 40, ..., 320, then SUSTAIN_S = 600 s;
    there the level backlog over the arrivals decides, and the rate passes, saying why."""
    runs: list[float] = []
    probe = judged_rate(_short_lenient_scenario(), _filling_fleet(runs, None), 9.0)
    assert runs == [20, 40, 80, 160, 320, 600]
    assert probe.meets and "without a steady window" in probe.reason
