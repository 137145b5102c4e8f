"""The cheapest month-by-month fleet covering a demand timeline: an exact dynamic program.

The model (every assumption the answer rests on):

- **Blocks.** Each hardware option comes in blocks: the smallest purchase unit holding
  whole replicas (a block carries ``capacity_per_s`` requests/s at the SLO and costs
  ``usd_per_month`` for every month it is in service). Blocks are whole: no fractions.
- **Flexible options** (cloud rent) are rented by the hour, at most ``max_blocks`` at a time.
- **The day's shape.** Within a month, hour ``h`` of the period (a day or a week) needs
  ``required_per_s x day_shape[h]``; every hour of the period recurs equally often over the
  month. Committed blocks and the owned fleet serve every hour; flexible blocks are rented
  for the hours the rest falls short of that hour's need, so a flexible block rented for a
  share ``w`` of the hours costs ``w x usd_per_month``. Without a shape (``(1.0,)``) every
  hour is the peak and a flexible block is rented for the whole month.
- **Committed options** (lease, buy) stay in service, and are paid for, from the month they
  arrive to the end of the horizon: their count never falls. A purchase is depreciated
  month by month (the capital recovery factor), so the months in service are what the
  horizon pays for; the book value left at the end is not counted. A block with a minimum
  term (``min_term_months``, a lease) is paid for at least that long: one arriving in month
  ``t`` of ``H`` costs ``max(H - t, term)`` months, the months past the horizon included.
- **Availability.** No block of an option is in service before ``first_month`` (its earliest
  availability, and no earlier than its lead time after month 0, when the plan is made).
- **Cover.** In each hour the fleet's capacity (the fleet already owned plus the blocks
  chosen) must reach the hour's need. Where no choice can (every option at its maximum),
  the hour is covered as far as it can be and the rest is reported as a shortfall.

Why the program is exact. The total cost is a sum over months of a cost that depends only
on that month's committed vector ``v_t`` (blocks per committed option) and its flexible
blocks. Flexible blocks are free to change hour to hour, so for a given ``v_t`` each hour's
best flexible choice is the cheapest integer cover of what ``v_t`` leaves of that hour's
need, found by enumerating every count of every flexible option but the last (the last
takes the ceiling of what remains): exact. The month's flexible cost is the sum of those
covers over the period's hours, each weighted by its share of the month's hours (hours of
equal need are priced once, with their shares added): a function of ``v_t`` alone again,
since the hours of a month share its committed fleet and nothing else. The months are
coupled only by ``v_t <= v_{t+1}`` (componentwise).
A term's months past the horizon, ``e_t = max(0, t + term - H)`` per block arriving in
``t``, sum by parts to ``sum_t v_t (e_t - e_{t+1})`` (with ``e_H = 0``): a price per block
in service in each month again, so every month's cost is still a function of ``v_t`` alone.
So ``V_t(v) = cost_t(v) + min_{v' >= v} V_{t+1}(v')`` over every vector in the box
``0 <= v_o <= N_o`` is Bellman's recursion over all feasible plans; the inner minimum is a
suffix minimum along each axis (exact, no search). The box loses nothing: ``N_o`` is the
count with which option ``o`` alone covers every hour's remainder (or its maximum), and
any plan with more can be cut to ``min(v_o, N_o)``, which stays monotone, still covers every
hour of every month and costs no more. Ties go to the fewest blocks (the first index in C order).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product

import numpy as np

MAX_CELLS = 4_000_000  # committed vectors x months held in memory (3 arrays: ~100 MB)
MAX_FLEXIBLE_COMBINATIONS = 100_000  # counts of flexible options enumerated per month
COVER_SLACK = 1e-9  # relative: a capacity this close to the requirement covers it


class TooLarge(ValueError):
    """The problem's state space is beyond what the exact program solves quickly."""


@dataclass(frozen=True, kw_only=True)
class Option:
    """One way to add capacity, in blocks (see the module docstring)."""

    key: str
    capacity_per_s: float
    usd_per_month: float
    committed: bool
    first_month: int = 0
    max_blocks: int | None = None
    min_term_months: int = 0

    def month_price(self, month: int, months: int) -> float:
        """What a block in service in ``month`` (of ``months``) adds to the total: its
        monthly price, plus the change in its term's months past the horizon (docstring)."""
        if not self.committed or not self.min_term_months:
            return self.usd_per_month

        def tail(t: int) -> int:
            """Months past the horizon a block arriving in ``t`` is paid for."""
            return max(0, t + self.min_term_months - months) if t < months else 0

        return self.usd_per_month * (1 + tail(month) - tail(month + 1))


@dataclass(frozen=True, kw_only=True)
class Problem:
    """What to cover each month, what is already there, and the options."""

    required_per_s: tuple[float, ...]  # at each month's peak hour
    existing_per_s: tuple[float, ...]
    options: tuple[Option, ...]
    day_shape: tuple[float, ...] = (1.0,)  # each hour's need over the peak's, in [0, 1]

    def hours(self) -> tuple[np.ndarray, np.ndarray]:
        """The distinct fractions of the day's shape (ascending) and the share of the
        period's hours at each."""
        values, counts = np.unique(np.asarray(self.day_shape, dtype=float),
                                   return_counts=True)
        return values, counts / len(self.day_shape)


@dataclass(frozen=True, kw_only=True)
class Plan:
    """The optimal plan: blocks in service per month and option (in ``Problem.options``
    order) at the month's peak hour, the cost of the blocks chosen (the fleet already owned
    excluded) and each month's uncovered requirement at its peak hour (0 where it is met).
    ``hour_blocks[t][g]`` is the fleet in the hours at ``Problem.hours()``'s ``g``-th
    fraction, ``mean_blocks[t]`` each option's blocks averaged over the month's hours (what
    it is paid for, in block-months), ``short_hours[t]`` the share of the month's hours
    with a shortfall."""

    blocks: tuple[tuple[int, ...], ...]
    cost_usd: float
    shortfall_per_s: tuple[float, ...]
    hour_blocks: tuple[tuple[tuple[int, ...], ...], ...] = ()
    mean_blocks: tuple[tuple[float, ...], ...] = ()
    short_hours: tuple[float, ...] = ()


def _reachable(problem: Problem, month: int) -> float:
    """The most capacity options can add in ``month`` (inf: some option is unbounded)."""
    total = 0.0
    for o in problem.options:
        if month >= o.first_month:
            if o.max_blocks is None:
                return math.inf
            total += o.max_blocks * o.capacity_per_s
    return total


def _targets(problem: Problem) -> tuple[np.ndarray, np.ndarray]:
    """(capacity options must add, month x distinct fraction of the day; shortfall, the
    same shape)."""
    fractions, _ = problem.hours()
    need, short = [], []
    for t, (req, have) in enumerate(zip(problem.required_per_s, problem.existing_per_s,
                                        strict=True)):
        gap = np.maximum(0.0, req * fractions - have)
        reach = _reachable(problem, t)
        need.append(np.minimum(gap, reach))
        short.append(np.maximum(0.0, gap - reach))
    shape = (len(problem.required_per_s), len(fractions))
    return np.array(need).reshape(shape), np.array(short).reshape(shape)


def _bound(option: Option, need: np.ndarray) -> int:
    """``N_o``: the blocks of ``option`` that alone cover every month (or its maximum)."""
    alone = math.ceil(float(need.max(initial=0.0)) * (1 - COVER_SLACK) / option.capacity_per_s)
    return alone if option.max_blocks is None else min(alone, option.max_blocks)


def _flexible_cover(options: list[Option], bounds: list[int], month: int,
                    remainder: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cheapest cover of each ``remainder`` by the flexible options available in
    ``month``: (cost, index of the count combination in ``product`` order; -1 none)."""
    best = np.where(remainder <= 0, 0.0, np.inf)
    pick = np.full(remainder.shape, -1)
    usable = [(o, b if month >= o.first_month else 0) for o, b in zip(options, bounds,
                                                                      strict=True)]
    if not usable:
        return best, pick
    *head, (last, last_bound) = usable
    for index, counts in enumerate(product(*(range(b + 1) for _, b in head))):
        left = remainder - sum(c * o.capacity_per_s for c, (o, _) in zip(counts, head,
                                                                         strict=True))
        n_last = np.ceil(np.maximum(left, 0.0) * (1 - COVER_SLACK) / last.capacity_per_s)
        cost = (sum(c * o.usd_per_month for c, (o, _) in zip(counts, head, strict=True))
                + n_last * last.usd_per_month)
        cost = np.where(n_last <= last_bound, cost, np.inf)
        better = cost < best
        best, pick = np.where(better, cost, best), np.where(better, index, pick)
    return best, pick


def _flexible_counts(options: list[Option], bounds: list[int], month: int,
                     remainder: float, index: int) -> list[int]:
    """The counts of combination ``index`` for ``remainder`` (see :func:`_flexible_cover`)."""
    if index < 0:
        return [0] * len(options)
    head = [b if month >= o.first_month else 0 for o, b in zip(options[:-1], bounds[:-1],
                                                               strict=True)]
    counts = list(next(c for i, c in enumerate(product(*(range(b + 1) for b in head)))
                       if i == index))
    left = remainder - sum(c * o.capacity_per_s for c, o in zip(counts, options, strict=False))
    last = options[-1]
    counts.append(math.ceil(max(left, 0.0) * (1 - COVER_SLACK) / last.capacity_per_s))
    return counts


def _check_size(committed_bounds: list[int], flexible_bounds: list[int], months: int) -> None:
    """Refuse a problem the exact program would take too long or too much memory for."""
    states = math.prod(b + 1 for b in committed_bounds)
    combos = math.prod(b + 1 for b in flexible_bounds[:-1])
    if states * months > MAX_CELLS or combos > MAX_FLEXIBLE_COMBINATIONS:
        raise TooLarge(f"the exact plan would weigh {states:,} committed fleets over "
                       f"{months} months and {combos:,} rented mixes per month (at most "
                       f"{MAX_CELLS:,} fleet-months and {MAX_FLEXIBLE_COMBINATIONS:,} mixes); "
                       f"set max_units on the options, offer fewer options, or shorten the "
                       f"horizon")


def _suffix_min(values: np.ndarray) -> np.ndarray:
    """``out[v] = min over v' >= v (componentwise) of values[v']``."""
    out = values
    for axis in range(values.ndim):
        out = np.flip(np.minimum.accumulate(np.flip(out, axis), axis=axis), axis)
    return out


def solve(problem: Problem) -> Plan:
    """The cheapest plan for ``problem`` under the model of the module docstring."""
    months = len(problem.required_per_s)
    need, short = _targets(problem)
    committed = [o for o in problem.options if o.committed]
    flexible = [o for o in problem.options if not o.committed]
    c_bounds = [_bound(o, need) for o in committed]
    f_bounds = [_bound(o, need) for o in flexible]
    _check_size(c_bounds, f_bounds, months)
    dims = tuple(b + 1 for b in c_bounds)
    grid = np.indices(dims) if dims else np.zeros((0,), dtype=int)
    capacity = np.zeros(dims)
    for axis, o in enumerate(committed):
        capacity = capacity + grid[axis] * o.capacity_per_s
    _, weights = problem.hours()
    value = [np.zeros(dims)] * (months + 1)
    for t in reversed(range(months)):
        cost = sum((grid[axis] * o.month_price(t, months)
                    for axis, o in enumerate(committed)), np.zeros(dims))
        for g, weight in enumerate(weights):
            flex, _ = _flexible_cover(flexible, f_bounds, t, need[t, g] - capacity)
            cost = cost + weight * flex
        for axis, o in enumerate(committed):
            if t < o.first_month:
                cost = np.where(grid[axis] > 0, np.inf, cost)
        ahead = _suffix_min(value[t + 1]) if t + 1 < months else np.zeros(dims)
        value[t] = cost + ahead
    return _trace(problem, committed, flexible, f_bounds, value, need, short)


def _hour_fleets(problem: Problem, committed: list[Option], flexible: list[Option],
                 f_bounds: list[int], month: int, at: tuple[int, ...],
                 need: np.ndarray) -> list[tuple[int, ...]]:
    """The fleet (blocks per option, in ``problem.options`` order) in each distinct hour of
    ``month`` with the committed vector ``at``: the cheapest flexible cover of each hour."""
    rows = []
    base = sum(c * o.capacity_per_s for c, o in zip(at, committed, strict=True))
    for hour_need in need:
        remainder = float(hour_need - base)
        flex: list[int] = []
        if flexible:
            _, pick = _flexible_cover(flexible, f_bounds, month, np.array([remainder]))
            flex = _flexible_counts(flexible, f_bounds, month, remainder, int(pick[0]))
        chosen = dict(zip((o.key for o in committed), at, strict=True))
        chosen.update(zip((o.key for o in flexible), flex, strict=True))
        rows.append(tuple(chosen[o.key] for o in problem.options))
    return rows


def _trace(problem: Problem, committed: list[Option], flexible: list[Option],
           f_bounds: list[int], value: list[np.ndarray], need: np.ndarray,
           short: np.ndarray) -> Plan:
    """Walk the optimal plan forward: each month the cheapest vector at or above the last,
    then each hour's cheapest flexible cover of what it leaves."""
    months = len(need)
    dims = value[0].shape
    grid = np.indices(dims) if dims else np.zeros((0,), dtype=int)
    _, weights = problem.hours()
    floor = [0] * len(committed)
    peaks, hours, means = [], [], []
    total = 0.0
    for t in range(months):
        allowed = np.ones(dims, dtype=bool)
        for axis, low in enumerate(floor):
            allowed &= grid[axis] >= low
        masked = np.where(allowed, value[t], np.inf)
        at = tuple(int(i) for i in np.unravel_index(int(np.argmin(masked)), dims))
        if not math.isfinite(float(masked[at])):
            raise AssertionError("the clipped requirement is always reachable")
        floor = list(at)
        rows = _hour_fleets(problem, committed, flexible, f_bounds, t, at, need[t])
        mean = tuple(float(at_peak) if o.committed
                     else float(sum(w * row[k] for w, row in zip(weights, rows, strict=True)))
                     for k, (o, at_peak) in enumerate(zip(problem.options, rows[-1],
                                                          strict=True)))
        total += sum(n * o.month_price(t, months)
                     for n, o in zip(mean, problem.options, strict=True))
        peaks.append(rows[-1])
        hours.append(tuple(rows))
        means.append(mean)
    return Plan(blocks=tuple(peaks), cost_usd=total,
                shortfall_per_s=tuple(float(s[-1]) for s in short),
                hour_blocks=tuple(hours), mean_blocks=tuple(means),
                short_hours=tuple(float(weights[s > 0].sum()) for s in short))
