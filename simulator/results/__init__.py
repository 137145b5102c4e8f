"""Result models: what a simulation returns, as plain numbers in SI units."""

from simulator.results.result import MemoryReport, PeakReport, Result
from simulator.results.utilization import Utilization

__all__ = ["MemoryReport", "PeakReport", "Result", "Utilization"]
