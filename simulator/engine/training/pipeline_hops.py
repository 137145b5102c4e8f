"""Where a pass's input comes from and its output goes in the virtual pipeline, and which
of them cross to another stage: the one rule of what a stage receives and sends.

The virtual pipeline is the ``pp * vpp`` chunks in model order: stage 0's chunk 0, stage 1's
chunk 0, ..., stage ``pp - 1``'s chunk 0, stage 0's chunk 1, and so on. A forward pass takes
its input from the virtual stage before it and sends to the one after; a backward pass the
other way. The first virtual stage's forward and the last's backward take no input, the
last's forward and the first's backward send nothing. Only a neighbour on another stage is
a message over the network (and, sent as a TP shard, an all-gather on arrival); with one
stage every neighbour is a chunk of the same stage.

The simulated step routes its messages by this rule (:mod:`.p2p`) and the analytic estimate
counts them by it (:mod:`.estimate`), so the two cannot disagree on what a stage pays.
"""

from __future__ import annotations

from typing import NamedTuple

VirtualStage = tuple[int, int]  # (stage, chunk)


class Neighbours(NamedTuple):
    """The virtual stages one pass receives from and sends to (None: none)."""

    source: VirtualStage | None
    target: VirtualStage | None


class Crossings(NamedTuple):
    """Per microbatch, through all of a stage's chunks and both directions: the inputs it
    receives from another stage and the outputs it sends to another stage."""

    receives: int
    sends: int


def next_virtual(pp: int, vpp: int, stage: int, chunk: int) -> VirtualStage | None:
    """The virtual stage after ``(stage, chunk)``, or None after the last."""
    if stage < pp - 1:
        return stage + 1, chunk
    return (0, chunk + 1) if chunk < vpp - 1 else None


def previous_virtual(pp: int, vpp: int, stage: int, chunk: int) -> VirtualStage | None:
    """The virtual stage before ``(stage, chunk)``, or None before the first."""
    if stage > 0:
        return stage - 1, chunk
    return (pp - 1, chunk - 1) if chunk > 0 else None


def neighbours(pp: int, vpp: int, stage: int, chunk: int, *, forward: bool) -> Neighbours:
    """Where the forward (or backward) pass of ``(stage, chunk)`` gets its input and sends
    its output."""
    before = previous_virtual(pp, vpp, stage, chunk)
    after = next_virtual(pp, vpp, stage, chunk)
    return Neighbours(before, after) if forward else Neighbours(after, before)


def crosses(stage: int, other: VirtualStage | None) -> bool:
    """Whether a message between ``stage`` and the virtual stage ``other`` leaves the
    stage (a message to a chunk of the same stage is a hand-over in memory)."""
    return other is not None and other[0] != stage


def stage_crossings(pp: int, vpp: int, stage: int) -> Crossings:
    """What one microbatch makes ``stage`` receive from and send to other stages.

    A middle stage receives and sends ``2 vpp`` (a forward and a backward per chunk); the
    first stage's first forward and the last stage's last backward receive nothing, and
    the last stage's last forward and the first stage's first backward send nothing."""
    receives = sends = 0
    for chunk in range(vpp):
        for forward in (True, False):
            source, target = neighbours(pp, vpp, stage, chunk, forward=forward)
            receives += crosses(stage, source)
            sends += crosses(stage, target)
    return Crossings(receives, sends)
