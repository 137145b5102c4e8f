"""How a library collective's bus bandwidth grows with its buffer size (NCCL's protocols).

NCCL (and libraries built like it) moves a small buffer with its low-latency protocols (LL,
LL128: a flag travels with every line of data, so only part of each store is payload) and a
large one with the Simple protocol, pipelined through fixed-size staging buffers that a
mid-size message does not fill. So a mid-size message reaches a lower fraction of the link
than a large one, on top of the per-step latency. The curve is measured, like the GEMM
``half_size`` curve: nccl-tests all-reduce sweeps on 8xH100, 8xH200 and 4xGB200 (Azure,
physics_facts §7) reach half their large-message bus bandwidth at about 16 MiB on NVLink 4
and NVLink 5 alike, so the half point is a property of the library's buffers (bytes), not
of the link (seconds). Formulas: docs/modelling_collectives.md.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
from pydantic import BaseModel, Field

from simulator.profiles.numbers import SPEC_CONFIG
from simulator.profiles.quantities import Bytes, Fraction, Sourced

Size = TypeVar("Size", float, np.ndarray)


class CollectiveSizeCurve(BaseModel):
    """factor(S) = floor + (1 - floor) · S / (S + half_size): the fraction of the large-message
    bus bandwidth that a library collective of buffer S reaches (S in the nccl-tests buffer
    convention). Small buffers reach ``floor``, large ones the whole large-message
    efficiency; at S = half_size the rise is half done."""

    model_config = SPEC_CONFIG

    floor: Sourced[Fraction] = Field(
        description="fraction of the large-message bus bandwidth that small buffers reach "
                    "(the low-latency protocols)")
    half_size: Sourced[Bytes] = Field(
        description="buffer size at which the bandwidth has risen half way from floor to "
                    "the large-message value")

    def factor(self, nbytes: Size) -> Size:
        """The fraction of the large-message bus bandwidth a buffer of ``nbytes`` reaches
        (elementwise on arrays); 1 in the limit of large buffers."""
        floor = self.floor.value
        return floor + (1.0 - floor) * nbytes / (nbytes + self.half_size.value)
