"""A mixed fleet's cost: each pool billed and powered as a fleet of its own hardware.

Pools of different hardware share no purchase unit and no price, so each pool is billed
for its own whole units (:func:`~simulator.economics.fleet.fleet_of` on the pool's view of
the scenario) and powered by its own activity; the fleet's cost, energy, power and carbon
are the pools' sums. (A homogeneous fleet is priced as before, in ``simulate``.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from simulator.economics.cost import CostReport, billed_cost, price_warnings, summed
from simulator.economics.fleet import Billing, Fleet, fleet_of, fleet_warnings
from simulator.profiles.scenario import Scenario


class PoolActivity(Protocol):
    """What pricing needs of a pool's run (a result's pool summary has it)."""

    @property
    def accelerators(self) -> int:
        """Devices the pool's replicas run on."""
        ...

    @property
    def busy(self) -> float:
        """Fraction of the pool's device time running kernels."""
        ...

    @property
    def memory_bandwidth(self) -> float:
        """HBM bandwidth utilization of the pool's devices."""
        ...


@dataclass(frozen=True, kw_only=True)
class PoolsCost:
    """The fleet's cost (the pools' sums) and each pool's fleet and cost."""

    total: CostReport
    fleets: list[Fleet]
    costs: list[CostReport]

    @property
    def billed(self) -> int:
        """Accelerators billed over all pools."""
        return sum(f.billed for f in self.fleets)


def pools_cost(scenario: Scenario, pools: Sequence[PoolActivity], time_s: float,
               billing: Billing, scale: tuple[float, float] = (1.0, 1.0)) -> PoolsCost:
    """Each pool of ``scenario`` billed under ``billing`` and powered by its activity over
    ``time_s`` (its busy and HBM fractions, times ``scale``: a window's fleet fraction over
    the run's, for the steady window), summed."""
    fleets, costs = [], []
    for part, pool in zip(scenario.pools(), pools, strict=True):
        fleet = fleet_of(part, billing)
        fleets.append(fleet)
        costs.append(billed_cost(part.hardware, part.cost, billed=fleet.billed,
                                 used=pool.accelerators, time_s=time_s,
                                 busy=pool.busy * scale[0],
                                 memory_bandwidth=pool.memory_bandwidth * scale[1]))
    total = summed(costs)
    return PoolsCost(total=total, fleets=fleets, costs=costs)


def pools_warnings(scenario: Scenario, cost: PoolsCost) -> list[str]:
    """Each pool's billing and price warnings (each once)."""
    out: list[str] = []
    for part, fleet in zip(scenario.pools(), cost.fleets, strict=True):
        out += fleet_warnings(part, fleet) + price_warnings(part.hardware, part.cost)
    return list(dict.fromkeys(out))
