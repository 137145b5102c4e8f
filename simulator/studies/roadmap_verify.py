"""The chosen plan's SLO attainment, simulated: each month's peak hour on one replica of
each profile in service.

The plan covers each month's peak with capacity, a replica's sustainable rate within the
SLO; capacity says whether the fleet *can* carry the peak. This measures what share of the
requests would meet every SLO target. The router spreads load in proportion to capacity, so
at the month's peak every replica runs at the same fraction of its sustainable rate: the
peak utilisation ``u = peak / capacity``. One replica of each profile in service is
simulated at ``u`` times its sustainable rate (its best layout, the scenario's seed and
arrival window, as the capacity search's probes are), and its share of requests meeting
every target is the attainment of the options on that profile; the month's is their
average weighted by the requests each carries. A month short of capacity (``u > 1``) runs
its replicas above their sustainable rate, and the share falls. Identical (profile, rate)
pairs are simulated once, and the runs go through an executor (in this process by
default; ``xpusim roadmap --jobs N``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulator.economics.fleet import Billing
from simulator.errors import InputError
from simulator.profiles.scenario import Scenario
from simulator.simulate import simulate
from simulator.studies.capacity import at_rate
from simulator.studies.executors import Executor, InProcessExecutor
from simulator.studies.roadmap import Figures, Replica
from simulator.studies.roadmap_solver import Plan, Problem
from simulator.studies.roadmap_spec import Roadmap


@dataclass(frozen=True, kw_only=True)
class Carrier:
    """Replicas of one profile carrying part of a month's peak: an option, or an owned
    fleet (``key``), its replica, and the requests/s it carries there."""

    key: str
    replica: Replica
    rate_per_s: float


@dataclass(frozen=True, kw_only=True)
class Attainment:
    """A month's simulated SLO attainment: per option (and owned fleet) in service, and the
    fleet's, weighted by the requests each carries (``None``: nothing simulated)."""

    by_carrier: dict[str, float]
    fleet: float | None


def owned_key(spec: Roadmap, index: int) -> str:
    """How an owned fleet is named in the per-option figures."""
    return "owned" if len(spec.owned) == 1 else f"owned[{index}]"


def carriers(spec: Roadmap, figs: Figures, prob: Problem, plan: Plan, month: int,
             peak: float) -> tuple[list[Carrier], float]:
    """The replicas in service at ``month``'s peak hour, each group with its share of the
    peak (in proportion to its capacity), and the peak utilisation."""
    groups: list[tuple[str, Replica, float]] = []
    for i, owned in enumerate(spec.owned):
        replica = figs.owned_replica[i]
        if replica.devices and (owned.until_month is None or month < owned.until_month):
            groups.append((owned_key(spec, i), replica,
                           owned.accelerators // replica.devices * replica.rate_per_s))
    for n, option in zip(plan.blocks[month], prob.options, strict=True):
        if n:
            groups.append((option.key, figs.option_replica[option.key],
                           n * option.capacity_per_s))
    capacity = sum(c for _, _, c in groups)
    use = peak / capacity if capacity else 0.0
    return [Carrier(key=k, replica=r, rate_per_s=c * use) for k, r, c in groups if c > 0], use


def _attainment_at(scenarios: list[Scenario], item: tuple[int, float]) -> float | None:
    """One replica of ``scenarios[index]`` at ``rate``: the share of requests meeting every
    SLO target (an executor task: a pure function of its arguments)."""
    index, rate = item
    try:
        result = simulate(at_rate(scenarios[index], rate), billing=Billing.EXACT)
    except InputError:  # a rate whose arrival window holds more requests than simulated
        return None
    assert result.inference is not None
    return result.inference.slo_attainment


def verify_plan(months: list[list[Carrier]], utilisation: list[float],
                executor: Executor | None = None,
                progress: Callable[[float], None] | None = None,
                ) -> tuple[list[Attainment], int]:
    """Each month's attainment (one list of carriers and the peak utilisation per month),
    and the number of simulations run. A replica without a scenario (it cannot serve) is
    left out."""
    scenarios: list[Scenario] = []
    index_of: dict[int, int] = {}
    items: dict[tuple[int, float], int] = {}
    for groups, use in zip(months, utilisation, strict=True):
        for c in groups:
            if c.replica.scenario is None:
                continue
            if id(c.replica) not in index_of:
                index_of[id(c.replica)] = len(scenarios)
                scenarios.append(c.replica.scenario)
            items.setdefault((index_of[id(c.replica)], c.replica.rate_per_s * use), len(items))
    shares = _run(scenarios, list(items), executor or InProcessExecutor(), progress)
    out = []
    for groups, use in zip(months, utilisation, strict=True):
        by: dict[str, float] = {}
        weight = total = 0.0
        for c in groups:
            key = (index_of.get(id(c.replica), -1), c.replica.rate_per_s * use)
            share = shares[items[key]] if key in items else None
            if share is not None:
                by[c.key] = share
                weight += c.rate_per_s
                total += share * c.rate_per_s
        out.append(Attainment(by_carrier=by, fleet=total / weight if weight else None))
    return out, len(items)


def _run(scenarios: list[Scenario], items: list[tuple[int, float]], executor: Executor,
         progress: Callable[[float], None] | None) -> list[float | None]:
    """Every (scenario, rate) item's attainment, in item order."""
    shares: list[Any] = [None] * len(items)
    for done, (index, share) in enumerate(executor.imap(_attainment_at, scenarios, items)):
        shares[index] = share
        if progress is not None:
            progress((done + 1) / len(items))
    return shares
