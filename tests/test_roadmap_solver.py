"""The roadmap's exact program (:mod:`simulator.studies.roadmap_solver`): hand-solved cases,
and every small random problem against a brute-force enumeration of all plans."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from simulator.studies.roadmap import first_month, scaled_growth
from simulator.studies.roadmap_solver import Option, Problem, TooLarge, solve

CLOUD = Option(key="cloud", capacity_per_s=10, usd_per_month=100, committed=False)


def _buy(first: int = 0, max_blocks: int | None = None, term: int = 0) -> Option:
    return Option(key="buy", capacity_per_s=10, usd_per_month=60, committed=True,
                  first_month=first, max_blocks=max_blocks, min_term_months=term)


def test_buying_one_block_and_renting_the_rest_is_optimal_by_hand():
    # Demand 40 then 10 req/s; cloud blocks 10 req/s for $100/month; bought blocks 10 req/s
    # for $60/month, kept to the end once bought. Bought v0 <= v1, cloud covers the rest:
    #   v0=0: 4x100 + month 1 min(1x100, 1x60)          = 400 + 60  = 460
    #   v0=1: 60 + 3x100 + month 1 (v1>=1) 60           = 360 + 60  = 420  <- optimum
    #   v0=2: 120 + 200 + 120 = 440;  v0=3: 180 + 100 + 180 = 460;  v0=4: 240 + 240 = 480
    plan = solve(Problem(required_per_s=(40, 10), existing_per_s=(0, 0),
                         options=(CLOUD, _buy())))
    assert plan.blocks == ((3, 1), (0, 1))
    assert plan.cost_usd == pytest.approx(420)


def test_nothing_arrives_before_its_first_month():
    # Buying is cheaper, but it arrives in month 2: months 0-1 rent (100 + 200), then the
    # bought fleet covers 30 and 40 (3x60 + 4x60 = 420): 720.
    plan = solve(Problem(required_per_s=(10, 20, 30, 40), existing_per_s=(0,) * 4,
                         options=(CLOUD, _buy(first=2))))
    assert [b[1] for b in plan.blocks] == [0, 0, 3, 4]
    assert plan.cost_usd == pytest.approx(720)


def test_the_owned_fleet_covers_until_it_leaves():
    # 25 req/s owned in months 0-1 (a lease that ends), 30 needed throughout: one cloud
    # block while it lasts, then three (bought blocks not offered).
    plan = solve(Problem(required_per_s=(30, 30, 30), existing_per_s=(25, 25, 0),
                         options=(CLOUD,)))
    assert plan.blocks == ((1,), (1,), (3,))
    assert plan.cost_usd == pytest.approx(500)


def test_a_lease_term_past_the_horizon_is_paid():
    # One block needed in the last of 3 months: a lease without a term costs 60, with a
    # 3-month term 3 x 60 = 180 > 100, so the cloud wins.
    need = Problem(required_per_s=(0, 0, 10), existing_per_s=(0, 0, 0),
                   options=(CLOUD, _buy(term=0)))
    assert solve(need).blocks[-1] == (0, 1)
    termed = Problem(required_per_s=(0, 0, 10), existing_per_s=(0, 0, 0),
                     options=(CLOUD, _buy(term=3)))
    plan = solve(termed)
    assert plan.blocks[-1] == (1, 0) and plan.cost_usd == pytest.approx(100)


def test_a_cap_leaves_a_shortfall_and_the_rest_covered():
    capped = Option(key="cloud", capacity_per_s=10, usd_per_month=100, committed=False,
                    max_blocks=2)
    plan = solve(Problem(required_per_s=(15, 35), existing_per_s=(0, 0), options=(capped,)))
    assert plan.blocks == ((2,), (2,))
    assert plan.shortfall_per_s == (0.0, pytest.approx(15.0))


def test_too_large_a_problem_is_refused():
    tiny = [Option(key=f"b{i}", capacity_per_s=1e-3, usd_per_month=1, committed=True)
            for i in range(3)]
    with pytest.raises(TooLarge, match="max_units"):
        solve(Problem(required_per_s=(100.0,), existing_per_s=(0.0,), options=tuple(tiny)))


def test_first_month_from_lead_time_and_availability():
    # 12 weeks = 84 days = 2.76 months -> month 3; 14 weeks = 98 days = 3.2 -> month 4
    assert first_month(0, 12) == 3
    assert first_month(0, 14) == 4
    assert first_month(5, 12) == 5
    assert first_month(0, 0) == 0


def test_scaled_growth_scales_the_rise_over_month_zero():
    # 100, 200, 400 at 0.5x: 100 + 0.5 x (0, 100, 300) = 100, 150, 250
    assert scaled_growth([100, 200, 400], 0.5) == [100, 150, 250]
    assert scaled_growth([100, 200, 400], 0.0) == [100, 100, 100]


# ---- against every plan ---------------------------------------------------------------
def _brute_force(problem: Problem) -> float:
    """The cheapest plan by enumerating every block count of every option in every month
    (committed counts non-decreasing), with the requirement clipped as the solver does."""
    months = len(problem.required_per_s)
    best = math.inf
    ranges = [range(0, 6)] * len(problem.options)
    per_month = list(itertools.product(*ranges))
    for plan in itertools.product(per_month, repeat=months):
        cost, ok = 0.0, True
        for t, row in enumerate(plan):
            cap = problem.existing_per_s[t]
            for k, (n, o) in enumerate(zip(row, problem.options, strict=True)):
                if n and (t < o.first_month or (o.max_blocks is not None and n > o.max_blocks)):
                    ok = False
                if o.committed and t and n < plan[t - 1][k]:
                    ok = False
                cap += n * o.capacity_per_s
                cost += n * o.month_price(t, months)
            if cap < problem.required_per_s[t] - 1e-9:
                ok = False
        if ok:
            best = min(best, cost)
    return best


@pytest.mark.parametrize("seed", range(12))
def test_random_small_problems_match_brute_force(seed):
    rng = random.Random(seed)
    options = (
        Option(key="c", capacity_per_s=rng.choice([4.0, 5.0, 7.0]),
               usd_per_month=rng.choice([90.0, 100.0, 130.0]), committed=False,
               first_month=rng.choice([0, 0, 1])),
        Option(key="b", capacity_per_s=rng.choice([6.0, 9.0, 11.0]),
               usd_per_month=rng.choice([60.0, 80.0, 110.0]), committed=True,
               first_month=rng.choice([0, 1, 2]), max_blocks=rng.choice([None, 3]),
               min_term_months=rng.choice([0, 4])),
    )
    required = tuple(float(rng.randint(0, 20)) for _ in range(3))
    existing = tuple(float(rng.choice([0, 0, 5])) for _ in range(3))
    problem = Problem(required_per_s=required, existing_per_s=existing, options=options)
    plan = solve(problem)
    # a month no option can reach is covered as far as it can be: compare on that
    clipped = tuple(r - s for r, s in zip(required, plan.shortfall_per_s, strict=True))
    reachable = Problem(required_per_s=clipped, existing_per_s=existing, options=options)
    assert plan.cost_usd == pytest.approx(_brute_force(reachable))
