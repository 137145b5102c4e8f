"""The autoscaler on the serving engine: its response to a step in load (the delay it was
given, an overshoot bounded by the pool), its floor and ceiling, every request accounted
for, and a rented pool billed for the replica-seconds it ran."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.errors import InputErrors
from simulator.loading import scenario_from_dict
from simulator.simulate import simulate

STEP_UP_S, STEP_DOWN_S = 1200.0, 2400.0  # the load is 10x between these times
INTERVAL_S, PROVISION_S, DOWN_DELAY_S = 15.0, 30.0, 300.0
# Llama 3.1 8B in bf16: 8.03e9 parameters x 2 bytes, read at the default 6.9 GB/s
STARTUP_S = PROVISION_S + 8.03e9 * 2 / 6.9e9  # 32.33 s


def step_scenario(**autoscaling):
    """One H100 per replica, up to 8; 4 requests/s, then 40/s from 20 to 40 minutes."""
    step = {"kind": "table", "points": [
        {"at_s": STEP_UP_S - 0.01, "factor": 1}, {"at_s": STEP_UP_S, "factor": 10},
        {"at_s": STEP_DOWN_S - 0.01, "factor": 10}, {"at_s": STEP_DOWN_S, "factor": 1}]}
    policy = {"min_replicas": 1, "target_outstanding": 16, "provision_s": PROVISION_S,
              "interval_s": INTERVAL_S, "scale_down_delay_s": DOWN_DELAY_S, **autoscaling}
    return scenario_from_dict({
        "name": "step", "hardware": "h100-sxm", "cluster": {"accelerators": 8},
        "model": "llama3.1-8b", "seed": 1,
        "workload": {"kind": "inference", "replicas": 8,
                     "arrivals": {"process": "poisson", "rate_per_s": 4, "duration_s": "1 h",
                                  "growth": step},
                     "prompt_tokens": 1000, "output_tokens": 250,
                     "slo": {"ttft_s": 1.0, "tpot_s": 0.05},
                     "autoscaling": policy}})


@pytest.fixture(scope="module")
def stepped():
    return simulate(step_scenario())


def test_a_step_up_is_answered_after_the_configured_delay(stepped):
    a = stepped.inference.autoscaling
    assert a.startup_s == pytest.approx(STARTUP_S, rel=0.01)
    t, billed, serving = (np.asarray(x) for x in (a.t_s, a.billed, a.serving))
    # before the step one replica carries 4/s (about 8 in the system): no scaling
    assert np.all(billed[t < STEP_UP_S] == 1)
    # the first decision after the step is the next tick (a multiple of 15 s) ...
    first = t[billed > 1][0]
    assert first % INTERVAL_S == pytest.approx(0, abs=1e-9)
    assert STEP_UP_S <= first <= STEP_UP_S + 2 * INTERVAL_S
    # ... and the replicas it starts serve exactly the start-up delay later
    joined = t[(serving > 1)][0]
    assert joined - first == pytest.approx(a.startup_s, abs=1e-9)
    # until then every request went to the one serving replica, the first
    arrival = np.asarray(stepped.requests.arrival_s)
    replica = np.asarray(stepped.requests.replica)
    assert set(replica[arrival < joined].tolist()) == {0}
    assert len(set(replica[arrival >= joined].tolist())) > 1


def test_the_overshoot_is_bounded_and_the_pool_settles(stepped):
    a = stepped.inference.autoscaling
    t, serving = np.asarray(a.t_s), np.asarray(a.serving)
    # never past the pool, never under the floor
    assert max(a.billed) <= 8 and min(a.serving) >= 1
    # at 40/s each request lives about 2 s (250 tokens at ~7 ms): ~80 in the system, so
    # ceil(80 / 16) = 5 replicas; the backlog of the first 15 s may overshoot to the pool's
    # 8, but by the end of the high phase the count is within 2 of 5
    at_end_of_high = serving[t <= STEP_DOWN_S][-1]
    assert 4 <= at_end_of_high <= 7


def test_replicas_leave_only_after_the_scale_down_delay(stepped):
    a = stepped.inference.autoscaling
    t, serving = np.asarray(a.t_s), np.asarray(a.serving)
    # the load falls at 2,400 s. The ticks of the high phase wanted ~5 replicas (~80 in the
    # system / 16) and stay in the 300 s window, so the pool cannot shrink to the floor
    # before the window has passed them (the first tick >= 2,700 s, less one interval for
    # the last high tick before 2,400 s) ...
    back_to_one = t[(t > STEP_DOWN_S) & (serving == 1)][0]
    assert back_to_one >= STEP_DOWN_S + DOWN_DELAY_S - INTERVAL_S
    # ... and it does soon after (a tick, then the leaving replicas' last requests, ~2 s)
    assert back_to_one <= STEP_DOWN_S + DOWN_DELAY_S + 2 * INTERVAL_S + 10
    assert serving[-1] == 1 and a.billed[-1] == 1  # the leavers drained and were released


def test_every_request_is_accounted_for_and_scale_up_misses_are_a_subset(stepped):
    m = stepped.inference
    assert m.requests + m.dropped == m.arrived and m.unfinished == 0
    a = m.autoscaling
    arrival = np.asarray(stepped.requests.arrival_s)
    t, billed, serving = (np.asarray(x) for x in (a.t_s, a.billed, a.serving))
    assert np.all(billed >= serving)
    # this run scales up once (every replica started at one decision): the requests that
    # arrived during the scale-up are those between that decision and the replicas serving
    rises = np.flatnonzero(np.diff(billed) > 0) + 1
    assert len(rises) == 1 and a.scale_ups == billed[rises[0]] - billed[rises[0] - 1]
    decided, joined = t[rises[0]], t[rises[0]] + a.startup_s
    assert a.arrived_during_scale_up == np.sum((arrival >= decided) & (arrival < joined))
    assert 0 < a.slo_missed_during_scale_up <= a.arrived_during_scale_up
    assert a.slo_missed_during_scale_up <= a.slo_missed


def test_a_rented_pool_is_billed_for_the_replica_seconds_it_ran(stepped):
    a, m = stepped.inference.autoscaling, stepped.inference
    # one accelerator per replica at the profile's cloud price: rent = replica-hours x rate
    rate = stepped.cost.usd_per_accelerator_hour
    assert stepped.cost_usd == pytest.approx(a.replica_seconds / 3600 * rate, rel=1e-9)
    # the figures the studies rank by (no steady window: the whole run's) bill the same
    assert stepped.steady.cost_usd == pytest.approx(stepped.cost_usd, rel=1e-9)
    assert a.mean_replicas == pytest.approx(a.replica_seconds / m.duration_s)
    # far less than the whole pool of 8 for the run
    assert a.replica_seconds < 0.6 * 8 * m.duration_s
    # the integral of the step function, by hand
    edges = [*a.t_s[1:], m.duration_s]
    by_hand = sum(b * (e - s) for b, s, e in zip(a.billed, a.t_s, edges, strict=True))
    assert a.replica_seconds == pytest.approx(by_hand, rel=1e-6)


def test_a_floor_at_the_pool_never_scales():
    result = simulate(step_scenario(min_replicas=8))
    a = result.inference.autoscaling
    assert a.scale_ups == 0 and a.scale_downs == 0 and set(a.serving) == {8}
    assert math.isclose(a.replica_seconds, 8 * result.inference.duration_s, rel_tol=1e-9)


@pytest.mark.parametrize(("change", "fragment"), [
    ({"router": "round_robin"}, "router: round_robin is not modelled with it"),
    ({"replicas": None}, "autoscaling needs replicas"),
    ({"autoscaling": {"min_replicas": 9, "target_outstanding": 16}},
     "min_replicas (9) is more than replicas (8)"),
    ({"autoscaling": {"target_outstanding": 0}}, "target_outstanding"),
    ({"autoscaling": {"target_outstanding": 4, "interval_s": 0}}, "interval_s"),
    ({"autoscaling": {"target_outstanding": 4, "storage_bandwidth": "fast"}},
     "storage_bandwidth"),
    ({"autoscaling": {"target_outstanding": 4, "max_replicas": 3}}, "max_replicas"),
    ({"autoscaling": {"min_replicas": 1}}, "target_outstanding"),
    ({"disaggregation": {"prefill_replicas": 1, "decode_replicas": 1}, "replicas": None},
     "not modelled with disaggregation"),
])
def test_a_bad_autoscaling_block_names_the_field(change, fragment):
    base = {"kind": "inference", "replicas": 8,
            "arrivals": {"process": "poisson", "rate_per_s": 4, "requests": 100},
            "prompt_tokens": 1000, "output_tokens": 250,
            "autoscaling": {"target_outstanding": 16}}
    workload = {k: v for k, v in {**base, **change}.items() if v is not None}
    with pytest.raises(InputErrors) as err:
        scenario_from_dict({"name": "bad", "hardware": "h100-sxm",
                            "cluster": {"accelerators": 8}, "model": "llama3.1-8b",
                            "workload": workload})
    assert fragment in str(err.value) and "autoscaling" in str(err.value)


def test_the_shipped_scenario_prints_the_pool_and_the_scale_ups():
    from tests.conftest import ROOT, run_cli

    result = run_cli("run", str(ROOT / "scenarios" / "llama3.1-8b-h100-autoscaling.yaml"))
    assert result.code == 0, result.err
    assert "replicas (autoscaled)" in result.out and "7 started" in result.out
    assert "scale-up delay" in result.out and "32.3 s" in result.out
    assert "the offered load varies in time" in result.out


def test_the_run_files_hold_the_replicas_over_time(stepped):
    import csv
    import io

    from simulator.report.outputs import run_files

    files = run_files(stepped)
    rows = list(csv.DictReader(io.StringIO(files["replicas.csv"])))
    a = stepped.inference.autoscaling
    assert [int(r["billed"]) for r in rows] == a.billed
    assert [float(r["t_s"]) for r in rows] == pytest.approx(a.t_s)
    assert files["replicas.png"][:8] == b"\x89PNG\r\n\x1a\n"


def test_the_cli_refuses_a_bad_policy_with_exit_2():
    from tests.conftest import ROOT, assert_clean_error, run_cli

    result = run_cli("run", str(ROOT / "scenarios" / "llama3.1-8b-h100-autoscaling.yaml"),
                     "--set", "workload.autoscaling.min_replicas=12")
    assert_clean_error(result, "workload", "min_replicas (12) is more than replicas (8)")
