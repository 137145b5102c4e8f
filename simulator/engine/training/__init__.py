"""Training on the discrete-event engine: one pipeline's step in SimPy, then the run.

Entry points: :func:`run_training` (scenario -> :class:`TrainingResult`) and
:func:`write_trace` (a step's Chrome/Perfetto trace). See docs/training.md.
"""

from simulator.engine.training.run import run_training
from simulator.engine.training.trace import write_trace

__all__ = ["run_training", "write_trace"]
