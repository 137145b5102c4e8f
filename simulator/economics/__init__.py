"""Power, energy, carbon and money: what a simulated run costs.

Engines report how long a run took and how busy the devices were; this package turns that
into watts, kilowatt-hours, kilograms of CO2 and dollars, under the scenario's `cost`
assumptions (defaults from the hardware profile).
"""

from simulator.economics.cost import CostReport, run_cost
from simulator.economics.power import Activity, PowerModel, power_model

__all__ = ["Activity", "CostReport", "PowerModel", "power_model", "run_cost"]
