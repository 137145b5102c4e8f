"""A run's cost spread over its time bins, each component by what drives it, so that the
bins add up to the run's cost exactly:

- ``rent`` (cloud) by the replica-seconds billed in the bin: rent is replicas x hours x rate;
- ``capital`` and ``facility`` (owned) by the bin's time: the fleet is paid for whether it
  runs or not;
- ``electricity`` by the bin's energy: its idle share (idle and system power, times the PUE,
  all the time) by time, the rest (power above idle, linear in how busy the devices are:
  :mod:`~simulator.economics.power`) by the device-seconds busy in the bin, at the run's mix
  of compute- and memory-bound work.
"""

from __future__ import annotations

import numpy as np

from simulator.economics.power import PowerModel


def shares(weights: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """``weights`` as shares of their sum (``fallback``'s shares when they sum to 0)."""
    total = float(np.sum(weights))
    if total > 0:
        return weights / total
    total = float(np.sum(fallback))
    return fallback / total if total > 0 else np.zeros(len(fallback))


def idle_energy_share(power: PowerModel, *, devices: float, time_s: float,
                      energy_kwh: float) -> float:
    """The share of a run's facility energy its ``devices`` would draw idle over
    ``time_s`` (at most 1)."""
    if energy_kwh <= 0:
        return 1.0
    idle_kwh = devices * (power.idle_w + power.system_w) * power.pue * time_s / 3.6e6
    return min(1.0, idle_kwh / energy_kwh)


def spread_cost(breakdown: dict[str, float], *, durations: np.ndarray,
                replica_seconds: np.ndarray, busy_s: np.ndarray,
                idle_share: float) -> np.ndarray:
    """The cost of each bin: every component of ``breakdown`` spread by its driver (an
    unknown one by time)."""
    by_time = shares(durations, durations)
    drivers = {
        "rent": shares(replica_seconds, durations),
        "electricity": idle_share * by_time + (1 - idle_share) * shares(busy_s, durations),
    }
    cost = np.zeros(len(durations))
    for part, usd in breakdown.items():
        cost += usd * drivers.get(part, by_time)
    return cost
