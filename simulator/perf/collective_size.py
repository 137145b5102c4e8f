"""Which collectives pay the library's size curve (``efficiency.collective_size_curve``).

Training frameworks (Megatron, NeMo, DeepSpeed, torch DDP/FSDP) run their data-parallel,
tensor-, context- and pipeline-parallel collectives through NCCL or RCCL, whose protocol
choice makes a mid-size buffer reach a lower fraction of the link than a large one. The
curve was measured on ring and NVLS all-reduces inside one scale-up domain, so it applies to
the collectives that run on those kernels and protocols (all-reduce, reduce-scatter,
all-gather) on the scale-up fabric. Left as they were:

- serving's all-reduce: TensorRT-LLM and vLLM all-reduce small tensor-parallel messages
  with their own one-shot / two-shot kernels (peers' buffers read straight over NVLink), not
  NCCL rings. They have no such kernels for the all-gather and reduce-scatter (the logits'
  all-gather, the attention-DP MoE exchange's token all-gather and output reduce-scatter):
  those run in NCCL (TensorRT-LLM's allgather / reducescatter ops, vLLM's pynccl), so
  serving prices them as library collectives (:func:`serving_library`);
- all-to-all (dedicated expert kernels, or NCCL's grouped send/recv) and send/recv: not
  the measured kernels, no sweep;
- the scale-out fabric: the sweeps are single-node; no multi-node size sweep in the facts.
"""

from __future__ import annotations

import numpy as np

from simulator.perf.ops import Collective
from simulator.profiles.collective_size_curve import CollectiveSizeCurve
from simulator.profiles.hardware import HardwareProfile

# the collectives NCCL runs on its ring / NVLS kernels with the LL, LL128 and Simple protocols
SIZED_COLLECTIVES = frozenset({Collective.ALL_REDUCE, Collective.REDUCE_SCATTER,
                               Collective.ALL_GATHER})


# the sized collectives serving engines also leave to the library (no kernels of their own)
NCCL_IN_SERVING = frozenset({Collective.REDUCE_SCATTER, Collective.ALL_GATHER})


def serving_library(collective: Collective) -> bool:
    """Whether a serving engine runs ``collective`` in NCCL/RCCL (the all-gathers and
    reduce-scatters) rather than on kernels of its own (the all-reduce)."""
    return collective in NCCL_IN_SERVING


def _curve(hw: HardwareProfile, collective: Collective,
           library: bool) -> CollectiveSizeCurve | None:
    """The profile's size curve where it applies: a ``library`` collective of a sized kind."""
    curve = hw.efficiency.collective_size_curve
    if not library or curve is None or collective not in SIZED_COLLECTIVES:
        return None
    return curve


def scale_up_size_factors(hw: HardwareProfile, collective: Collective, nbytes: np.ndarray,
                          library: bool) -> np.ndarray | None:
    """:func:`scale_up_size_factor` elementwise over many buffer sizes; None where the
    curve does not apply (every factor 1)."""
    curve = _curve(hw, collective, library)
    return None if curve is None else np.asarray(curve.factor(nbytes), dtype=float)


def scale_up_size_factor(hw: HardwareProfile, collective: Collective, nbytes: float,
                         library: bool) -> float:
    """The fraction of the scale-up large-message bus bandwidth a collective of ``nbytes``
    (nccl-tests buffer) reaches: the profile's size curve for a ``library`` (training)
    collective of a sized kind, else 1 (today's behaviour)."""
    curve = _curve(hw, collective, library)
    return 1.0 if curve is None else float(curve.factor(nbytes))
