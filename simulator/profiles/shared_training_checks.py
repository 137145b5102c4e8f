"""`workload.shared_training` against the serving fleet it shares: what keeps the training
job from running on the accelerators the autoscaled pool leaves."""

from __future__ import annotations

from simulator.profiles.hardware import HardwareProfile
from simulator.profiles.inference import InferenceWorkload
from simulator.profiles.layout_checks import Problem

FIELD = ("workload", "shared_training")


def shared_training_problems(w: InferenceWorkload, hardware: HardwareProfile,
                             accelerators: int) -> list[Problem]:
    """What keeps a serving workload's training job from sharing its fleet: no autoscaling
    (nothing ever frees accelerators), another hardware, or a model-parallel block (or the
    narrowest width) larger than the fleet."""
    shared = w.shared_training
    if shared is None:
        return []
    if w.autoscaling is None:
        return [Problem(FIELD, "needs workload.autoscaling: the training job runs on the "
                               "accelerators the autoscaled pool leaves, and a fixed pool "
                               "leaves a fixed share (run it as its own training scenario)")]
    training = shared.training
    if training.hardware != hardware:
        other = (f"another profile named {hardware.id} (its fields differ)"
                 if training.hardware.id == hardware.id else training.hardware.id)
        return [Problem((*FIELD, "scenario"),
                        f"the training scenario runs on {other} and the serving cluster on "
                        f"{hardware.id}: they share one fleet, so the hardware profile must "
                        f"be the same (shared_training.set: [hardware=...] names it)")]
    par = shared.workload.parallelism
    if shared.block > accelerators:
        return [Problem((*FIELD, "scenario"),
                        f"the training job's model-parallel block tp*pp*cp = {par.tp}*{par.pp}"
                        f"*{par.cp} = {shared.block} is larger than the fleet "
                        f"(cluster.accelerators = {accelerators})")]
    if shared.min_data_parallel * shared.block > accelerators:
        return [Problem((*FIELD, "min_data_parallel"),
                        f"min_data_parallel ({shared.min_data_parallel}) x the block "
                        f"({shared.block}) is more than the fleet ({accelerators} "
                        f"accelerators)")]
    return []
