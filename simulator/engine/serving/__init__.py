"""The serving engine: requests, routers and continuously batching replicas in SimPy.

``run_serving(scenario)`` simulates an inference scenario and returns a
:class:`ServingOutcome`: the summary and the per-request records
(:mod:`simulator.report.requests_csv` writes those as CSV).
"""

from simulator.engine.serving.run import ServingOutcome, run_serving

__all__ = ["ServingOutcome", "run_serving"]
