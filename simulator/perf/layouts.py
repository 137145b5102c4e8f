"""From a scenario's parallelism fields to the cost models' :class:`Layout`."""

from __future__ import annotations

from simulator.perf.memory import even_stage_layers
from simulator.perf.ops import Layout
from simulator.profiles.inference import InferenceParallelism
from simulator.profiles.moe_routing import Dispatcher, MoeRouting
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


def inference_layout(parallelism: InferenceParallelism, moe: MoeRouting | None = None) -> Layout:
    """One serving replica: TP (and PP) within it, and its attention DP ranks.

    Sequence parallelism is off: serving frameworks all-reduce the activations. Without
    attention DP the experts live on each stage's tp devices (``etp = tp/ep``); with it they
    span the stage's ``attention_dp x tp`` devices, ``etp = attention_dp·tp/ep`` each
    (:mod:`simulator.perf.wide_ep`), and ``moe`` (the workload's routing) says whether the
    dispatch deduplicates per domain (DeepEP).
    """
    dp = parallelism.attention_dp
    if dp == 1:
        return Layout(tp=parallelism.tp, pp=parallelism.pp, cp=1, ep=parallelism.ep, dp=1,
                      sequence_parallel=False)
    routing = moe or MoeRouting()
    return Layout(tp=parallelism.tp, pp=parallelism.pp, cp=1, ep=parallelism.ep, dp=dp,
                  sequence_parallel=False, etp=parallelism.stage_devices // parallelism.ep,
                  ep_dedup=routing.dispatcher is Dispatcher.DEEPEP,
                  ep_max_domains=routing.max_domains_per_token or 0)
