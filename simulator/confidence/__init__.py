"""Confidence with every answer: the regime a scenario belongs to, the per-regime error
statistics of the validation suite, and the lookup that attaches them to a result.

- :mod:`~simulator.confidence.regime`: a scenario's regime (vendor, kind, precision, MoE,
  scale) and a validation metric's family (throughput or latency);
- :mod:`~simulator.confidence.table`: per-regime statistics from compared cases (what
  ``xpusim validate-against --bands`` writes);
- :mod:`~simulator.confidence.lookup`: the committed table, and the band and extrapolation
  flags of a regime (:func:`confidence_of`).
"""

from simulator.confidence.lookup import confidence_for, confidence_of, load_bands
from simulator.confidence.regime import Regime, metric_family, regime_of
from simulator.confidence.table import BandCase, build_table

__all__ = ["BandCase", "Regime", "build_table", "confidence_for", "confidence_of",
           "load_bands", "metric_family", "regime_of"]
