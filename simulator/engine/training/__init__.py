"""Training on the discrete-event engine: one pipeline's step in SimPy, then the run.

Entry point: :func:`run_training` (scenario -> :class:`TrainingResult`). The step's
Chrome/Perfetto trace is written by :func:`simulator.report.trace.write_trace`. See
docs/training.md.
"""

from simulator.engine.training.run import run_training

__all__ = ["run_training"]
