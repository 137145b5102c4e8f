"""The slice of a torus a run's devices form (TPU slices: a v5e-8 host is a 2x4 slice).

A TPU run is provisioned as one of a few published slice shapes (``scale_up.slice_shapes``),
not as a line of chips cut from the pod: eight v5e chips are a 2x4 block, whose rings run
along two short dimensions, where a 1x8 line of the 16x16 pod has one long one. The
scenario picks the smallest shape that holds its accelerators and records it as
``scale_up.slice``; the collective model lays the run's ranks out in it (first dimension
fastest). A slice has wraparound links along a dimension it spans whole (Google's
v5e/v6e pods: only the 16-chip axes of the 16x16 torus wrap), so a 2x4 slice is a mesh.
v4 and v5p slices are wired from 4x4x4 cubes through optical circuit switches, which close
every dimension of a slice made of whole cubes into a ring (``scale_up.slice_wrap_block``):
a v5p 4x4x4 wraps along all three, a 2x4x4 along none (MaxText's per-topology wrap flags).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulator.profiles.hardware import HardwareProfile
    from simulator.profiles.interconnect import ScaleUp


def check_slices(up: ScaleUp) -> None:
    """Raise ValueError unless every slice shape fits the torus and ``slice`` is one of them."""
    shapes = () if up.slice_shapes is None else up.slice_shapes.value
    if shapes and up.torus_dims is None:
        raise ValueError("slice_shapes needs torus_dims (the torus the slices are cut from)")
    for shape in shapes:
        assert up.torus_dims is not None
        if len(shape) != len(up.torus_dims) or any(
                s > d for s, d in zip(shape, up.torus_dims, strict=True)):
            raise ValueError(f"slice shape {list(shape)} does not fit torus_dims "
                             f"{list(up.torus_dims)}")
    if list(map(math.prod, shapes)) != sorted(set(map(math.prod, shapes))):
        raise ValueError("slice_shapes must hold distinct device counts, smallest first")
    if up.slice is not None and up.slice not in shapes:
        raise ValueError(f"slice {list(up.slice)} is not one of slice_shapes")
    block = None if up.slice_wrap_block is None else up.slice_wrap_block.value
    if block is not None and (up.torus_dims is None or len(block) != len(up.torus_dims)):
        raise ValueError("slice_wrap_block needs torus_dims and one entry per torus dimension")


def slice_for(up: ScaleUp, devices: int) -> tuple[int, ...] | None:
    """The smallest published slice holding ``devices`` (None: no shapes, or more devices
    than the largest, whose slices then meet over the scale-out network)."""
    shapes = () if up.slice_shapes is None else up.slice_shapes.value
    return next((s for s in shapes if math.prod(s) >= devices), None)


def on_slice(hw: HardwareProfile, devices: int) -> HardwareProfile:
    """``hw`` with ``scale_up.slice`` set for a run on ``devices`` devices."""
    chosen = slice_for(hw.scale_up, devices)
    if chosen == hw.scale_up.slice:
        return hw
    return hw.model_copy(update={"scale_up": hw.scale_up.model_copy(update={"slice": chosen})})


def slice_wraps(up: ScaleUp) -> tuple[tuple[int, ...], tuple[bool, ...]]:
    """(dimensions, whether each wraps around) of the torus the run's ranks lie on: its
    slice, wrapping along the dimensions it spans whole (or along all, when it is made of
    whole ``slice_wrap_block`` blocks), or the whole torus."""
    dims = up.torus_dims or (up.domain_size.value,)
    if up.slice is None:
        return dims, (True,) * len(dims)
    block = None if up.slice_wrap_block is None else up.slice_wrap_block.value
    if block is not None and all(s % b == 0 for s, b in zip(up.slice, block, strict=True)):
        return up.slice, (True,) * len(up.slice)
    return up.slice, tuple(s == d for s, d in zip(up.slice, dims, strict=True))
