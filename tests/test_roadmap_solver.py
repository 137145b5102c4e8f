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


def test_cloud_follows_the_day_and_a_bought_block_carries_the_night_by_hand():
    # Peak 20 req/s for half the hours, 4 req/s (a fifth) the other half; cloud blocks
    # (10 req/s, $100 a month, rented by the hour) or bought blocks (10 req/s, $60 a month,
    # all day). Without the day's shape, two bought blocks (120) beat two rented (200).
    # With it, by committed count v:
    #   v=0: cloud 2 for half the hours, 1 for the other half: 0.5x200 + 0.5x100 = 150
    #   v=1: 60 + cloud 1 for the peak half: 60 + 0.5x100                         = 110 <-
    #   v=2: 120, no cloud                                                          = 120
    flat = solve(Problem(required_per_s=(20,), existing_per_s=(0,), options=(CLOUD, _buy())))
    assert flat.blocks == ((0, 2),) and flat.cost_usd == pytest.approx(120)
    plan = solve(Problem(required_per_s=(20,), existing_per_s=(0,), options=(CLOUD, _buy()),
                         day_shape=(1.0, 0.2)))
    assert plan.blocks == ((1, 1),)  # at the peak hour
    assert plan.hour_blocks == (((0, 1), (1, 1)),)  # the night (0.2) first, then the peak
    assert plan.mean_blocks == ((0.5, 1.0),)  # the cloud block rented half the month
    assert plan.cost_usd == pytest.approx(110)


def test_each_need_is_weighted_by_its_share_of_the_hours():
    # Peak 20 req/s three hours in four, nothing the fourth (cloud $100, buy $60 a month):
    #   v=0: cloud 2 for 3/4 of the hours: 0.75 x 200 = 150
    #   v=1: 60 + cloud 1 for 3/4: 60 + 75            = 135
    #   v=2: 120                                       = 120 <-
    # (weighing the two distinct needs equally would rent instead: 100 < 110 < 120)
    plan = solve(Problem(required_per_s=(20,), existing_per_s=(0,), options=(CLOUD, _buy()),
                         day_shape=(1.0, 1.0, 1.0, 0.0)))
    assert plan.blocks == ((0, 2),) and plan.cost_usd == pytest.approx(120)


def test_rented_block_hours_are_the_hours_short_times_the_price():
    # One owned block of 10 req/s all day; need 30 at the peak, over four hours of shape
    # 1.0, 0.5, 0.5, 0.2: 30, 15, 15, 6 req/s -> short 20, 5, 5, 0 -> 2, 1, 1, 0 cloud
    # blocks, on average (2 + 1 + 1 + 0) / 4 = 1 block: $100 for the month.
    plan = solve(Problem(required_per_s=(30,), existing_per_s=(10,), options=(CLOUD,),
                         day_shape=(1.0, 0.5, 0.5, 0.2)))
    assert plan.hour_blocks == (((0,), (1,), (2,)),)  # fractions 0.2, 0.5, 1.0
    assert plan.mean_blocks == ((1.0,),)
    assert plan.cost_usd == pytest.approx(100)
    assert plan.short_hours == (0.0,)


def test_hours_beyond_a_cap_are_short_and_counted():
    # At most 2 cloud blocks (20 req/s): of four hours needing 30, 30, 15, 6, two are short
    # by 10; the share of hours short is 2/4.
    capped = Option(key="cloud", capacity_per_s=10, usd_per_month=100, committed=False,
                    max_blocks=2)
    plan = solve(Problem(required_per_s=(30,), existing_per_s=(0,), options=(capped,),
                         day_shape=(1.0, 1.0, 0.5, 0.2)))
    assert plan.shortfall_per_s == (pytest.approx(10.0),)
    assert plan.short_hours == (0.5,)
    assert plan.blocks == ((2,),)
    # (1 + 2 + 2 + 2) / 4 blocks on average: 0.2 -> 1 block, 0.5 -> 2, 1.0 -> 2 (capped)
    assert plan.cost_usd == pytest.approx(175)


# ---- against every plan ---------------------------------------------------------------
def _reach(problem: Problem, month: int) -> float:
    total = 0.0
    for o in problem.options:
        if month >= o.first_month:
            if o.max_blocks is None:
                return math.inf
            total += o.max_blocks * o.capacity_per_s
    return total


def _cheapest_hour(problem: Problem, month: int, have: float, need: float) -> float:
    """The cheapest flexible blocks, counted 0..5 each, raising ``have`` to ``need``."""
    flexible = [o for o in problem.options if not o.committed]
    best = 0.0 if have >= need - 1e-9 else math.inf
    for counts in itertools.product(range(6), repeat=len(flexible)):
        if any(n and (month < o.first_month or (o.max_blocks is not None and n > o.max_blocks))
               for n, o in zip(counts, flexible, strict=True)):
            continue
        cap = have + sum(n * o.capacity_per_s for n, o in zip(counts, flexible, strict=True))
        if cap >= need - 1e-9:
            best = min(best, sum(n * o.usd_per_month
                                 for n, o in zip(counts, flexible, strict=True)))
    return best


def _brute_force(problem: Problem) -> float:
    """The cheapest plan by enumerating every committed count (0..5) of every month
    (non-decreasing) and, for each hour of the day's shape, every flexible count, with each
    hour's need clipped to what the options can reach as the solver does."""
    months = len(problem.required_per_s)
    committed = [o for o in problem.options if o.committed]
    best = math.inf
    per_month = list(itertools.product(range(6), repeat=len(committed)))
    for plan in itertools.product(per_month, repeat=months):
        cost = 0.0
        for t, row in enumerate(plan):
            have = problem.existing_per_s[t]
            for k, (n, o) in enumerate(zip(row, committed, strict=True)):
                if n and (t < o.first_month or (o.max_blocks is not None and n > o.max_blocks)):
                    cost = math.inf
                if t and n < plan[t - 1][k]:
                    cost = math.inf
                have += n * o.capacity_per_s
                cost += n * o.month_price(t, months)
            for fraction in problem.day_shape:  # every hour, each 1/len of the month
                req = problem.required_per_s[t] * fraction
                need = min(req, problem.existing_per_s[t] + _reach(problem, t))
                cost += _cheapest_hour(problem, t, have, need) / len(problem.day_shape)
        best = min(best, cost)
    return best


SHAPES = [(1.0,), (1.0, 0.2), (0.2, 1.0, 0.6, 0.2), (0.5, 1.0, 1.0), (1.0, 1.0, 1.0, 0.0),
          (0.3, 0.3, 0.3, 1.0)]


@pytest.mark.parametrize("seed", range(24))
def test_random_small_problems_match_brute_force(seed):
    rng = random.Random(seed)
    options = (
        Option(key="c", capacity_per_s=rng.choice([4.0, 5.0, 7.0]),
               usd_per_month=rng.choice([90.0, 100.0, 130.0]), committed=False,
               first_month=rng.choice([0, 0, 1]), max_blocks=rng.choice([None, None, 2])),
        Option(key="b", capacity_per_s=rng.choice([6.0, 9.0, 11.0]),
               usd_per_month=rng.choice([60.0, 80.0, 110.0]), committed=True,
               first_month=rng.choice([0, 1, 2]), max_blocks=rng.choice([None, 3]),
               min_term_months=rng.choice([0, 4])),
    )
    required = tuple(float(rng.randint(0, 20)) for _ in range(3))
    existing = tuple(float(rng.choice([0, 0, 5])) for _ in range(3))
    shape = SHAPES[seed % len(SHAPES)]
    problem = Problem(required_per_s=required, existing_per_s=existing, options=options,
                      day_shape=shape)
    plan = solve(problem)
    assert plan.cost_usd == pytest.approx(_brute_force(problem))
    # the plan's own figures agree with its cost: mean blocks x prices
    assert plan.cost_usd == pytest.approx(sum(
        n * o.month_price(t, 3) for t, row in enumerate(plan.mean_blocks)
        for n, o in zip(row, options, strict=True)))
