"""The autoscaling policies beside queue length: the HPA's proportional rule, the KV and
batch occupancy averaged over an interval (by hand on a tiny case), the SLO attainment of
recent requests (by hand), each policy's response to a step in load, and their errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.engine.serving.metrics import ReplicaStats
from simulator.engine.serving.requests import COMPLETED, PENDING
from simulator.engine.serving.scale_policy import Occupancy, SloAttainment, proportional
from simulator.errors import InputErrors
from simulator.loading import scenario_from_dict
from simulator.profiles.autoscaling import ScalePolicy
from simulator.profiles.inference import SLO
from simulator.simulate import simulate
from tests.engine.test_autoscaling import INTERVAL_S, STEP_DOWN_S, STEP_UP_S, step_scenario


def test_the_proportional_rule_rounds_up_outside_the_tolerance():
    # 4 replicas' worth of load measured with 4 active: within any tolerance, keep 4
    assert proportional(4.0, 4, 0.1) == 4
    # 4.3 is 7.5% above 4: within the HPA's 10%, keep 4; without tolerance, ceil -> 5
    assert proportional(4.3, 4, 0.1) == 4 and proportional(4.3, 4, 0.0) == 5
    # 4.5 is 12.5% above: ceil(4.5) = 5; 2.9 is 27.5% below: ceil(2.9) = 3
    assert proportional(4.5, 4, 0.1) == 5 and proportional(2.9, 4, 0.1) == 3
    # a load of exactly 3 summed in floating point (0.1 x 30) asks for 3, not 4
    assert proportional(sum([0.1] * 30), 1, 0.1) == 3


def _stats(kv_blocks: int, max_batch: int) -> ReplicaStats:
    return ReplicaStats(index=0, role="both", devices=1, kv_blocks=kv_blocks,
                        kv_block_tokens=16, max_batch=max_batch)


@pytest.mark.parametrize(("metric", "expected"), [
    # KV: replica a held 400 blocks of 1,000 for 15 s -> 0.4; b 100 of 500 for 7.5 s of the
    # 15 -> 0.1; 0.5 replicas' worth over a target of 0.2 -> 2.5 -> 3
    ("kv_utilization", (0.5, 3)),
    # batch: a ran 8 sequences of 16 slots for 15 s -> 0.5; b 4 of 8 for 7.5 s -> 0.25;
    # 0.75 over 0.2 -> 3.75 -> 4
    ("batch_utilization", (0.75, 4)),
])
def test_occupancy_is_averaged_over_the_interval_by_hand(metric, expected):
    a, b = _stats(1000, 16), _stats(500, 8)
    policy = Occupancy([a, b], ScalePolicy(metric=metric, target=0.2))
    assert policy.measured(0.0) == 0.0  # the first decision, at t = 0: nothing ran yet
    # what the replicas record as their iterations end: (iterations, batch, busy s,
    # block-seconds, blocks at the last)
    a.record(100, 8, 15.0, 400 * 15.0, 400)
    b.record(50, 4, 7.5, 100 * 7.5, 100)
    assert a.batch_s == 8 * 15.0 and b.batch_s == 4 * 7.5
    load, count = expected
    assert policy.measured(15.0) == pytest.approx(load)
    # the next interval ran nothing: the average over it is 0, and so is the count asked
    # (the autoscaler raises it to min_replicas)
    assert policy.desired(30.0, 1) == 0
    a.record(10, 8, 15.0, 400 * 15.0, 400)
    b.record(5, 4, 7.5, 100 * 7.5, 100)
    assert policy.desired(45.0, 1) == count


class _Requests:
    """The columns SloAttainment reads, for a hand-made case."""

    def __init__(self, rows):
        columns = list(zip(*rows, strict=True))
        self.arrival_s, self.first_token_s, self.finish_s, self.admitted_s = (
            np.array(c, dtype=float) for c in columns[:4])
        self.output_tokens = np.array(columns[4])
        self.status = np.array(columns[5], dtype=np.int8)

    def __len__(self):
        return len(self.arrival_s)


NAN = math.nan
# arrival, first token, finish, admitted, output tokens, status; judged at t = 100 over 60 s
CASE = [
    (10.0, 10.2, 30.0, 10.0, 101, COMPLETED),   # finished before the window (40 s): not judged
    (50.0, 50.5, 60.0, 50.0, 101, COMPLETED),   # TPOT 9.5 s / 100 = 95 ms > 50 ms: missed
    (70.0, 70.2, 72.0, 70.0, 101, COMPLETED),   # TTFT 0.2 s, TPOT 18 ms: met
    (95.0, 95.3, NAN, 95.0, 101, PENDING),      # running, had its first token: not judged
    (97.0, NAN, NAN, NAN, 101, PENDING),        # waiting 3 s > 1 s TTFT: missed already
    (99.5, NAN, NAN, NAN, 101, PENDING),        # waiting 0.5 s: not judged yet
    (150.0, NAN, NAN, NAN, 101, PENDING),       # not arrived yet
]


def test_slo_attainment_judges_recent_and_overdue_requests_by_hand():
    slo = SLO(ttft_s=1.0, tpot_s=0.05)
    policy = SloAttainment(_Requests(CASE), slo,
                           ScalePolicy(metric="slo_attainment", target=0.9))
    # judged: rows 1, 2, 4; missed: 1 and 4; waiting for admission: rows 4 and 5
    assert policy.judge(100.0) == (3, 2, 2)
    # 2/3 missed against 10% allowed: 2 x 6.67 = 13.3 -> 14, capped at the HPA step
    # max(2 x 2, 2 + 4) = 6
    assert policy.desired(100.0, 2) == 6
    # with 20 active the step allows 40: ceil(20 x 6.67) = 134 -> 40
    assert policy.desired(100.0, 20) == 40


def test_slo_attainment_scales_down_by_one_only_when_comfortable():
    slo = SLO(ttft_s=1.0, tpot_s=0.05)
    met = (70.0, 70.2, 72.0, 70.0, 101, COMPLETED)
    rule = ScalePolicy(metric="slo_attainment", target=0.9)
    # 20 met, none missed, nothing waiting: one fewer
    assert SloAttainment(_Requests([met] * 20), slo, rule).desired(100.0, 3) == 2
    # 1 of 22 missed (4.5%, under half the 10% budget) and 1 waiting with 3 active: one
    # fewer; 1 of 19 (5.3%, over half): keep
    slow = (50.0, 50.5, 60.0, 50.0, 101, COMPLETED)
    fresh = (99.8, NAN, NAN, NAN, 101, PENDING)
    assert SloAttainment(_Requests([slow, *[met] * 21, fresh]), slo, rule).desired(
        100.0, 3) == 2
    assert SloAttainment(_Requests([slow, *[met] * 18, fresh]), slo, rule).desired(
        100.0, 3) == 3
    # 2 of 20 (10%, more than half the budget, not over it): keep
    assert SloAttainment(_Requests([slow, slow, *[met] * 18]), slo, rule).desired(
        100.0, 3) == 3
    # 4 waiting for admission with 3 active: the queue is not small, keep
    assert SloAttainment(_Requests([*[met] * 20, *[fresh] * 4]), slo, rule).desired(
        100.0, 3) == 3
    # nothing finished in the window and nothing overdue: no evidence, keep
    assert SloAttainment(_Requests([CASE[0]]), slo, rule).desired(100.0, 3) == 3


def _response(policy: dict):
    result = simulate(step_scenario(target_outstanding=None, policy=policy))
    a = result.inference.autoscaling
    return result, a, np.asarray(a.t_s), np.asarray(a.billed), np.asarray(a.serving)


def _first_step_up(a, t, billed, serving):
    """The step in load is answered at a tick after it, and served a start-up later."""
    assert np.all(billed[t < STEP_UP_S] == 1)
    first = t[billed > 1][0]
    assert first % INTERVAL_S == pytest.approx(0, abs=1e-9)
    assert STEP_UP_S <= first <= STEP_UP_S + 2 * INTERVAL_S
    joined = t[serving > 1][0]
    assert joined - first == pytest.approx(a.startup_s, abs=1e-9)
    assert max(a.billed) <= 8 and min(a.serving) >= 1


@pytest.mark.parametrize(("policy", "settled"), [
    # 40/s x ~2 s in the system: ~80 sequences running. 256 slots x 0.1 = 25.6 per replica:
    # 80 / 25.6 = 3.1 -> 4 (before the step, 8 / 25.6 -> 1)
    ({"metric": "batch_utilization", "target": 0.1}, (3, 6)),
    # 80 sequences of ~1,125 tokens (1,000 + half of 250) in 16-token blocks: ~5,600 blocks
    # of the 27,142 one H100 holds (434,284 tokens / 16) -> 0.21 of a cache; over 0.05 ->
    # 4.1 -> 5 (before the step, 0.021 / 0.05 -> 1)
    ({"metric": "kv_utilization", "target": 0.05}, (4, 7)),
])
def test_an_occupancy_policy_answers_a_step_and_settles(policy, settled):
    result, a, t, billed, serving = _response(policy)
    _first_step_up(a, t, billed, serving)
    low, high = settled
    assert low <= serving[t <= STEP_DOWN_S][-1] <= high
    # the load falls at 2,400 s: back to the floor after the scale-down delay, drained
    assert serving[-1] == 1 and billed[-1] == 1
    assert t[(t > STEP_DOWN_S) & (serving == 1)][0] >= STEP_DOWN_S + 300 - INTERVAL_S
    m = result.inference
    assert m.requests + m.dropped == m.arrived and m.unfinished == 0


def test_the_slo_policy_scales_up_when_misses_start_and_down_one_at_a_time():
    result, a, t, billed, serving = _response({"metric": "slo_attainment", "target": 0.95})
    # one replica meets the SLO at 4/s: no scaling before the step; misses start with the
    # step (one replica cannot prefill 40 x 1,000 tokens/s), seen at the next tick
    _first_step_up(a, t, billed, serving)
    # after the step down, it sheds one replica per scale-down delay (each decision wants
    # one fewer; the 300 s window holds the last count until then)
    falls = t[1:][np.diff(serving) < 0]
    late = falls[falls > STEP_DOWN_S]
    assert len(late) >= 2
    assert np.all(np.diff(late) >= 300 - INTERVAL_S - 5)
    assert serving[-1] == 1
    assert a.slo_missed_during_scale_up > 0
    # the scale-ups (decided 1,215-1,230 s, serving 32 s later) fall in the 1,200-1,500 s
    # bin: its misses during scale-ups are the run's
    rise = next(b for b in result.inference.autoscaling.bins if b.start_s == 1200)
    assert rise.slo_missed_during_scale_up == a.slo_missed_during_scale_up


def test_the_shorthand_is_the_queue_policy_without_tolerance():
    shorthand = simulate(step_scenario()).inference.autoscaling
    spelled = simulate(step_scenario(target_outstanding=None, policy={
        "metric": "queue_length", "target": 16, "tolerance": 0})).inference.autoscaling
    assert spelled.t_s == shorthand.t_s and spelled.billed == shorthand.billed


BASE = {"kind": "inference", "replicas": 8,
        "arrivals": {"process": "poisson", "rate_per_s": 4, "requests": 100},
        "prompt_tokens": 1000, "output_tokens": 250}


@pytest.mark.parametrize(("autoscaling", "fragment"), [
    ({"policy": {"metric": "slo_attainment", "target": 0.99}},
     "slo_attainment needs workload.slo"),
    ({"policy": {"metric": "queue_length", "target": 8}, "target_outstanding": 8},
     "not both"),
    ({}, "needs a policy"),
    ({"policy": {"metric": "cpu", "target": 0.5}}, "metric"),
    ({"policy": {"metric": "kv_utilization", "target": 1.5}}, "must be a share in (0, 1]"),
    ({"policy": {"metric": "batch_utilization", "target": 0}}, "target"),
    ({"policy": {"metric": "queue_length", "target": 8, "tolerance": 1}}, "tolerance"),
    ({"policy": {"metric": "queue_length", "target": 8, "window_s": 0}}, "window_s"),
    ({"target_outstanding": 8, "report_bin_s": "-1 h"}, "report_bin_s"),
])
def test_a_bad_policy_names_the_field(autoscaling, fragment):
    with pytest.raises(InputErrors) as err:
        scenario_from_dict({"name": "bad", "hardware": "h100-sxm",
                            "cluster": {"accelerators": 8}, "model": "llama3.1-8b",
                            "workload": {**BASE, "autoscaling": autoscaling}})
    assert fragment in str(err.value) and "autoscaling" in str(err.value)


def test_an_slo_target_of_one_is_refused():
    with pytest.raises(InputErrors) as err:
        scenario_from_dict({"name": "bad", "hardware": "h100-sxm",
                            "cluster": {"accelerators": 8}, "model": "llama3.1-8b",
                            "workload": {**BASE, "slo": {"ttft_s": 1},
                                         "autoscaling": {"policy": {
                                             "metric": "slo_attainment", "target": 1}}}})
    assert "a share below 1" in str(err.value) and "policy" in str(err.value)


def test_the_cli_refuses_the_slo_policy_without_an_slo():
    from tests.conftest import ROOT, assert_clean_error, run_cli

    result = run_cli("run", str(ROOT / "scenarios" / "llama3.1-8b-h100-autoscaling.yaml"),
                     "--set", "workload.slo=null",
                     "--set", "workload.autoscaling.target_outstanding=null",
                     "--set", "workload.autoscaling.policy.metric=slo_attainment",
                     "--set", "workload.autoscaling.policy.target=0.99")
    assert_clean_error(result, "workload", "slo_attainment needs workload.slo")
