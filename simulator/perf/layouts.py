"""From a scenario's parallelism fields to the cost models' :class:`Layout`."""

from __future__ import annotations

from simulator.perf.memory import even_stage_layers
from simulator.perf.ops import Layout
from simulator.profiles.inference import InferenceParallelism
from simulator.profiles.moe_routing import Dispatcher
from simulator.profiles.training import TrainingWorkload


def training_layout(workload: TrainingWorkload) -> Layout:
    """The layout of a training job (DP 1 where the scenario does not set it)."""
    par = workload.parallelism
    moe = workload.moe
    return Layout(tp=par.tp, pp=par.pp, cp=par.cp, ep=par.ep, dp=par.dp or 1,
                  sequence_parallel=bool(par.sequence_parallel), etp=par.etp,
                  ep_dedup=moe.dispatcher is Dispatcher.DEEPEP,
                  ep_max_domains=moe.max_domains_per_token or 0)


def training_stage_layers(workload: TrainingWorkload, layers: int) -> list[int]:
    """Layers per pipeline stage (uneven ends as configured, else as even as possible)."""
    par = workload.parallelism
    return par.stage_layers(layers) or even_stage_layers(layers, par.pp)


def inference_layout(parallelism: InferenceParallelism) -> Layout:
    """One serving replica: TP (and PP) within it; no data parallelism inside a replica.

    Sequence parallelism is off: serving frameworks all-reduce the activations.
    """
    return Layout(tp=parallelism.tp, pp=parallelism.pp, cp=1, ep=parallelism.ep, dp=1,
                  sequence_parallel=False)
