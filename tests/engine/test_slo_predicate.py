"""The one definition of "this request met its SLO" (``latency.slo_checks`` / ``slo_met``),
shared by the run's attainment (``latency.latencies``) and the autoscaler
(``scale_policy.slo_missed``): by hand, the one-token case, and each caller's behaviour as it
was before the two shared it."""

from __future__ import annotations

import numpy as np

from simulator.engine.serving.arrivals import Workload
from simulator.engine.serving.latency import latencies, slo_checks, slo_met
from simulator.engine.serving.requests import COMPLETED, DROPPED, PENDING, Requests
from simulator.engine.serving.scale_policy import slo_missed
from simulator.profiles.inference import SLO

NAN = np.nan
SLO_ALL = SLO(ttft_s=1.0, tpot_s=0.05, e2e_s=10.0)


def test_a_latency_at_its_target_meets_it_over_it_misses_and_nan_is_no_miss():
    """Per target: at most the target meets it (1.0 <= 1.0), over it misses, an infinite
    latency misses, a latency never measured (NaN) does not."""
    checks = slo_checks(SLO_ALL, ttft=np.array([0.5, 1.0, 1.5, NAN, np.inf]),
                        tpot=np.array([0.05, 0.06, NAN, 0.01, 0.01]),
                        e2e=np.array([10.0, 9.0, 9.0, NAN, 10.5]))
    assert list(checks) == ["ttft_s", "tpot_s", "e2e_s"]
    assert checks["ttft_s"].tolist() == [True, True, False, True, False]
    assert checks["tpot_s"].tolist() == [True, False, True, True, True]
    assert checks["e2e_s"].tolist() == [True, True, True, True, False]
    met = slo_met(SLO_ALL, ttft=np.array([0.5, 1.0, 1.5, NAN, np.inf]),
                  tpot=np.array([0.05, 0.06, NAN, 0.01, 0.01]),
                  e2e=np.array([10.0, 9.0, 9.0, NAN, 10.5]))
    assert met.tolist() == [True, False, False, True, False]


def test_only_the_targets_the_slo_sets_are_checked():
    """An SLO of TTFT alone: a TPOT of 10 s and an end-to-end of an hour are no miss."""
    slo = SLO(ttft_s=1.0)
    args = dict(ttft=np.array([0.5, 2.0]), tpot=np.array([10.0, 10.0]),
                e2e=np.array([3600.0, 3600.0]))
    assert list(slo_checks(slo, **args)) == ["ttft_s"]
    assert slo_met(slo, **args).tolist() == [True, False]


def _run(rows: list[tuple[float, float, float, int, int]]) -> Requests:
    """Requests of (arrival, first token, finish, output tokens, status), admitted on
    arrival."""
    arrival, first, finish, out, status = (np.array(c) for c in zip(*rows, strict=True))
    reqs = Requests(Workload(arrival.astype(float), np.full(len(rows), 100),
                             out.astype(np.int64)))
    reqs.first_token_s, reqs.finish_s = first.astype(float), finish.astype(float)
    reqs.admitted_s = arrival.astype(float)
    reqs.status = status.astype(np.int8)
    return reqs


# arrival, first token, finish, output tokens, status
ONE_TOKEN_RUN = [
    (0.0, 0.5, 0.5, 1, COMPLETED),     # one token: no TPOT, TTFT 0.5 s: met
    (1.0, 3.0, 3.0, 1, COMPLETED),     # one token, TTFT 2 s: missed (on TTFT)
    (2.0, 2.5, 7.5, 101, COMPLETED),   # TPOT 5 s / 100 = 50 ms: met (at the target)
    (3.0, 3.5, 9.5, 101, COMPLETED),   # TPOT 6 s / 100 = 60 ms: missed
    (4.0, NAN, NAN, 101, DROPPED),     # dropped: no latencies
    (5.0, 5.2, NAN, 101, PENDING),     # still running at the end: no finish
]


def test_a_one_token_request_meets_the_tpot_target_vacuously_in_the_run():
    """The run's attainment over the 4 completed + 1 dropped requests (the running one is
    not measured): met are rows 0 and 2, so 2 / 5; TPOT alone: rows 0, 1 (one token each,
    vacuously), 2, so 3 / 5, and its p99 is over the multi-token outputs only
    (50 and 60 ms: 50 + 0.99 x 10 = 59.9 ms); TTFT: rows 0, 2, 3, so 3 / 5."""
    reqs = _run(ONE_TOKEN_RUN)
    records = reqs.records()
    assert np.isnan(records.tpot_s[[0, 1, 4]]).all()  # no TPOT for one token or a drop
    measured = reqs.status != PENDING
    stats = latencies(reqs, records, measured, SLO_ALL, duration=10.0)
    assert stats["slo_attainment"] == 2 / 5
    assert stats["slo"]["tpot_s"].attainment == 3 / 5
    assert abs(stats["slo"]["tpot_s"].value_s - 0.0599) < 1e-12
    assert stats["slo"]["ttft_s"].attainment == 3 / 5
    assert stats["goodput_requests_per_s"] == 2 / 10.0


def test_the_autoscaler_counts_a_one_token_request_and_no_unmeasured_latency_as_a_miss():
    """The autoscaler's ``slo_missed`` over every record: rows 1 (TTFT) and 3 (TPOT) miss;
    the one-token row 0 does not; nor do the dropped and the running rows, whose missing
    latencies are NaN (the run's attainment counts the dropped one against it instead)."""
    records = _run(ONE_TOKEN_RUN).records()
    missed = slo_missed(SLO_ALL, records.ttft_s, records.tpot_s, records.e2e_s)
    assert missed.tolist() == [False, True, False, True, False, False]


def _old_slo_missed(slo: SLO, ttft, tpot, e2e) -> np.ndarray:
    """The autoscaler's predicate before it shared the definition (scale_policy, 0d3f697)."""
    missed = np.zeros(len(ttft), dtype=bool)
    for target, values in ((slo.ttft_s, ttft), (slo.tpot_s, tpot), (slo.e2e_s, e2e)):
        if target is not None:
            missed |= np.nan_to_num(np.asarray(values, dtype=float), nan=0.0) > target
    return missed


def _old_run_ok(slo: SLO, ttft, tpot, e2e, many) -> np.ndarray:
    """The run's predicate before (latency._slo, 0d3f697): TPOT masked for one token."""
    ok = np.ones(len(ttft), dtype=bool)
    for target, values, relevant in ((slo.ttft_s, ttft, np.ones(len(ttft), dtype=bool)),
                                     (slo.tpot_s, tpot, many), (slo.e2e_s, e2e,
                                                                np.ones(len(e2e), dtype=bool))):
        if target is not None:
            ok &= ~relevant | (values <= target)
    return ok


def test_each_caller_keeps_its_predicate_on_the_inputs_it_gets():
    """10,000 random requests with latencies around the targets. The autoscaler's inputs
    have NaN anywhere (dropped, unfinished, one token): the shared predicate is its old one
    exactly. The run's inputs are completed requests (TTFT and end-to-end measured, TPOT NaN
    exactly for one-token outputs): the shared predicate is its old mask exactly."""
    rng = np.random.default_rng(7)
    n = 10_000
    ttft, tpot, e2e = rng.uniform(0, 2, n), rng.uniform(0, 0.1, n), rng.uniform(0, 20, n)
    ttft[rng.random(n) < 0.1] = 1.0  # exactly at the target
    for slo in (SLO_ALL, SLO(ttft_s=1.0), SLO(tpot_s=0.05, e2e_s=10.0)):
        gaps = [a.copy() for a in (ttft, tpot, e2e)]
        for a in gaps:
            a[rng.random(n) < 0.2] = NAN
        assert (slo_missed(slo, *gaps) == _old_slo_missed(slo, *gaps)).all()
        many = rng.random(n) < 0.8
        one_token_tpot = np.where(many, tpot, NAN)
        assert (slo_met(slo, ttft=ttft, tpot=one_token_tpot, e2e=e2e)
                == _old_run_ok(slo, ttft, one_token_tpot, e2e, many)).all()


def test_where_the_old_predicates_disagreed_the_shared_one_follows_the_autoscaler():
    """The two old predicates differed only on inputs the run never passes: a measured
    TPOT on a one-token output (the run's mask met it whatever its value), and a NaN
    latency of a completed request (the run counted it a miss). The shared predicate
    judges the value: NaN is no miss, a TPOT over the target misses."""
    many = np.array([False, True])
    ttft, tpot, e2e = np.array([0.5, NAN]), np.array([0.07, 0.01]), np.array([5.0, 5.0])
    assert _old_run_ok(SLO_ALL, ttft, tpot, e2e, many).tolist() == [True, False]
    assert (~_old_slo_missed(SLO_ALL, ttft, tpot, e2e)).tolist() == [False, True]
    assert slo_met(SLO_ALL, ttft=ttft, tpot=tpot, e2e=e2e).tolist() == [False, True]
