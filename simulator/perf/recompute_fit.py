"""``recompute_layers: fit``: the fewest fully recomputed layers that fit the device memory.

Recomputation buys memory with time, so a tuned recipe recomputes as few layers as its
memory allows: MLPerf's Llama 2 70B LoRA submissions set ``--recompute-num-layers`` (ACL)
per system, 21 of 80 layers on a 256 GB MI325X, and NeMo's recipes do the same per GPU.
Where a published recipe does not print its setting, ``fit`` states that rule instead of
guessing every layer or none. Memory falls monotonically as more layers of each chunk are
recomputed, so a bisection over the count finds the fewest in a handful of footprints.
"""

from __future__ import annotations

import math

from simulator.perf.footprint import training_footprint
from simulator.perf.memory import even_stage_layers
from simulator.profiles.scenario import Scenario
from simulator.profiles.training import Recompute, TrainingWorkload


def with_count(w: TrainingWorkload, count: int, chunk_layers: int) -> TrainingWorkload:
    """``w`` recomputing the first ``count`` layers of each chunk: 0 is no recomputation at
    all, ``chunk_layers`` or more is every layer (full recomputation)."""
    if count <= 0:
        return w.model_copy(update={"recompute": Recompute.NONE, "recompute_layers": None})
    if count >= chunk_layers:
        return w.model_copy(update={"recompute": Recompute.FULL, "recompute_layers": None})
    return w.model_copy(update={"recompute": Recompute.FULL, "recompute_layers": count})


def fitted_recompute(scenario: Scenario) -> TrainingWorkload:
    """The scenario's workload with ``recompute_layers: fit`` replaced by the fewest layers
    per model chunk whose footprint fits; every layer when even that does not fit (the
    memory check then says by how much)."""
    w = scenario.workload
    assert isinstance(w, TrainingWorkload)
    par = w.parallelism
    layers = par.stage_layers(scenario.model.layers) or even_stage_layers(
        scenario.model.layers, par.pp)
    chunk_layers = math.ceil(max(layers) / par.vpp)  # the most loaded stage's chunks

    def fits(count: int) -> bool:
        """Whether recomputing ``count`` layers of each chunk fits the device."""
        trial = scenario.model_copy(update={"workload": with_count(w, count, chunk_layers)})
        return training_footprint(trial).fits

    low, high = 0, chunk_layers  # the answer lies in [low, high]; high is the fallback
    while low < high:
        mid = (low + high) // 2
        if fits(mid):
            high = mid
        else:
            low = mid + 1
    return with_count(w, low, chunk_layers)
