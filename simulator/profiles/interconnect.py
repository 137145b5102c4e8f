"""How devices are joined: the scale-up domain (NVSwitch, xGMI mesh, TPU ICI torus) and the
scale-out fabric between domains, with link bandwidths stored one-way.

Split out of ``hardware.py`` so that the interconnect, which the collective model reads,
is one concept in one module; ``hardware.py`` re-exports its names.
"""

from __future__ import annotations

import math
from enum import StrEnum

from pydantic import BaseModel, Field, model_validator

from simulator.profiles.numbers import SPEC_CONFIG, PositiveInt
from simulator.profiles.quantities import Bandwidth, Seconds, Sourced
from simulator.profiles.torus_slice import check_slices


class Direction(StrEnum):
    """Whether a quoted link bandwidth counts one direction or both added together."""

    UNIDIRECTIONAL = "unidirectional"
    BIDIRECTIONAL = "bidirectional"


class ScaleUpTopology(StrEnum):
    """How the devices of a scale-up domain are wired; it decides how collectives use the links."""

    SWITCH = "switch"  # every device reaches every other at full bandwidth (NVSwitch)
    MESH = "mesh"  # direct links to every peer, bandwidth split across peers (xGMI)
    TORUS = "torus"  # neighbours only, multi-hop (TPU ICI, NeuronLink)


class ScaleOutTopology(StrEnum):
    """The fabric between scale-up domains (recorded for the reader; collectives use the NIC
    bandwidth)."""

    FAT_TREE = "fat_tree"
    RAIL_OPTIMIZED = "rail_optimized"
    CLOS = "clos"
    TORUS = "torus"
    DRAGONFLY = "dragonfly"


class ScaleUp(BaseModel):
    """The fast domain: NVLink/NVSwitch, Infinity Fabric, ICI, NeuronLink, Gaudi RoCE ports."""

    model_config = SPEC_CONFIG

    name: str = Field(description="e.g. 'NVLink 4 via NVSwitch'")
    domain_size: Sourced[PositiveInt] = Field(description="devices in one scale-up domain")
    bandwidth_per_device: Sourced[Bandwidth] = Field(
        description="aggregate link bandwidth of one device into the domain"
    )
    direction: Direction = Field(description="what bandwidth_per_device counts")
    topology: ScaleUpTopology
    torus_dims: tuple[PositiveInt, ...] | None = Field(
        None, description="torus shape (torus only); its product is the domain size"
    )
    slice_shapes: Sourced[tuple[tuple[PositiveInt, ...], ...]] | None = Field(
        None, description="the slices of the torus a run is provisioned as (TPU topologies, "
                          "e.g. [2, 4] for v5e-8), smallest first: a run gets the smallest "
                          "holding its devices, which wraps around only along a dimension "
                          "it spans whole; absent: the run's ranks lie along the whole torus")
    slice_wrap_block: Sourced[tuple[PositiveInt, ...]] | None = Field(
        None, description="a slice whose every dimension is a multiple of this block's (v4 and "
                          "v5p: 4x4x4 cubes, closed into rings by optical switches) wraps "
                          "around along all of them; absent, or any other slice: it wraps only "
                          "along a dimension it spans whole")
    slice: tuple[PositiveInt, ...] | None = Field(
        None, description="the slice shape the run's devices form, one of slice_shapes; set "
                          "by the scenario from cluster.accelerators (profiles.torus_slice)")
    latency: Sourced[Seconds] = Field(description="one-hop latency of a small message")
    in_network_reduction: bool = Field(
        False, description="switch-side reduction (NVLink SHARP) available for all-reduce"
    )
    ranks_per_device: Sourced[PositiveInt] | None = Field(
        None, description="ranks a framework runs on one device (its logical cores, which "
                          "share the device's links): a collective over several devices is "
                          "then also one over this many ranks on each; absent: 1"
    )

    @property
    def bandwidth_one_way(self) -> float:
        """Per-device bandwidth in one direction, bytes/s."""
        bw = self.bandwidth_per_device.value
        return bw / 2 if self.direction is Direction.BIDIRECTIONAL else bw

    @model_validator(mode="after")
    def _torus_shape(self) -> ScaleUp:
        if self.torus_dims is not None:
            if self.topology is not ScaleUpTopology.TORUS:
                raise ValueError("torus_dims is only meaningful with topology: torus")
            if math.prod(self.torus_dims) != self.domain_size.value:
                raise ValueError(
                    f"torus_dims {list(self.torus_dims)} hold {math.prod(self.torus_dims)} "
                    f"devices but domain_size is {self.domain_size.value}"
                )
        check_slices(self)
        return self


class ScaleOut(BaseModel):
    """The network between scale-up domains (InfiniBand, RoCE, EFA, DCN)."""

    model_config = SPEC_CONFIG

    name: str = Field(description="e.g. '8x 400 Gb/s NDR InfiniBand per node'")
    bandwidth_per_device: Sourced[Bandwidth] = Field(description="NIC bandwidth per device")
    direction: Direction
    latency: Sourced[Seconds]
    topology: ScaleOutTopology

    @property
    def bandwidth_one_way(self) -> float:
        """Per-device NIC bandwidth in one direction, bytes/s."""
        bw = self.bandwidth_per_device.value
        return bw / 2 if self.direction is Direction.BIDIRECTIONAL else bw
