"""The serving engine: requests, routers and continuously batching replicas in SimPy.

``run_serving(scenario)`` simulates an inference scenario and returns a
:class:`ServingOutcome`; ``write_requests_csv`` writes its per-request records.
"""

from simulator.engine.serving.run import ServingOutcome, run_serving, write_requests_csv

__all__ = ["ServingOutcome", "run_serving", "write_requests_csv"]
