"""Pipeline schedules: the order in which each stage runs its forward and backward passes.

A schedule only orders work; when a pass can start (its input has arrived) is decided by
the simulation, so the bubble emerges from the order rather than from a formula.

- GPipe (Huang et al. 2019): every forward, then every backward.
- 1F1B (PipeDream-Flush, Narayanan et al. 2021): stage ``s`` runs ``pp - s - 1`` warm-up
  forwards, then alternates one forward and one backward, then drains the backwards.
- Interleaved 1F1B (Narayanan et al. 2021, Megatron-LM's order): each rank holds ``vpp``
  model chunks; microbatches go through the chunks in groups of ``pp``; the warm-up is
  ``2(pp - s - 1) + (vpp - 1)pp`` passes (all of them when there are only ``pp``
  microbatches).
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple


class Pass(StrEnum):
    """The direction of a pass: forward (activations) or backward (gradients)."""

    FORWARD = "F"
    BACKWARD = "B"


class Task(NamedTuple):
    """One pass of one microbatch through one model chunk held by a stage.

    A named tuple, not a dataclass: a step of a deep pipeline has a hundred thousand. (Its
    short name, ``F3`` or ``B3.c1``, is :func:`simulator.results.training.pass_label`.)
    """

    kind: Pass
    microbatch: int
    chunk: int = 0


def _one_f_one_b_order(forwards: list[Task], backwards: list[Task], warmup: int) -> list[Task]:
    """``warmup`` forwards, then one forward and one backward in turn, then the backwards
    left: the steady state of 1F1B, flat or interleaved."""
    steady = len(forwards) - warmup
    order = forwards[:warmup]
    for i in range(steady):
        order += [forwards[warmup + i], backwards[i]]
    return order + backwards[steady:]


def gpipe(pp: int, microbatches: int) -> list[list[Task]]:
    """Every stage: every forward, then every backward."""
    forwards = [Task(Pass.FORWARD, i) for i in range(microbatches)]
    backwards = [Task(Pass.BACKWARD, i) for i in range(microbatches)]
    return [forwards + backwards for _ in range(pp)]


def one_f_one_b(pp: int, microbatches: int) -> list[list[Task]]:
    """Stage ``s``: ``pp - s - 1`` warm-up forwards, then one forward and one backward in
    turn, then the backwards left."""
    forwards = [Task(Pass.FORWARD, i) for i in range(microbatches)]
    backwards = [Task(Pass.BACKWARD, i) for i in range(microbatches)]
    return [_one_f_one_b_order(forwards, backwards, min(pp - stage - 1, microbatches))
            for stage in range(pp)]


def _virtual(k: int, pp: int, vpp: int, kind: Pass) -> Task:
    """The k-th pass of a stage in Megatron's interleaved order."""
    chunk = (k // pp) % vpp
    if kind is Pass.BACKWARD:
        chunk = vpp - 1 - chunk
    return Task(kind, (k // (pp * vpp)) * pp + k % pp, chunk)


def interleaved(pp: int, vpp: int, microbatches: int) -> list[list[Task]]:
    """Megatron-LM's interleaved 1F1B: microbatches go through the chunks in groups of
    ``pp``; stage ``s`` warms up with ``2(pp - s - 1) + (vpp - 1)pp`` forwards (all of them
    when there are only ``pp`` microbatches)."""
    if microbatches % pp:
        raise ValueError(f"the interleaved schedule needs the microbatches ({microbatches}) "
                         f"to be a multiple of pp ({pp})")
    total = microbatches * vpp
    # every stage runs the same forwards and backwards; only its warm-up differs
    forwards = [_virtual(k, pp, vpp, Pass.FORWARD) for k in range(total)]
    backwards = [_virtual(k, pp, vpp, Pass.BACKWARD) for k in range(total)]
    orders = []
    for stage in range(pp):
        # with only pp microbatches Megatron-LM runs every forward first
        warmup = total if microbatches == pp else min(2 * (pp - stage - 1) + (vpp - 1) * pp,
                                                      total)
        orders.append(_one_f_one_b_order(forwards, backwards, warmup))
    return orders


def schedule(kind: str, pp: int, microbatches: int, vpp: int = 1) -> list[list[Task]]:
    """Per stage, the ordered passes of one step. ``kind``: 1f1b, interleaved or gpipe."""
    if pp < 1 or microbatches < 1 or vpp < 1:
        raise ValueError(f"pp, microbatches and vpp must be >= 1 (got {pp}, {microbatches}, "
                         f"{vpp})")
    if kind == "gpipe":
        return gpipe(pp, microbatches)
    if kind == "1f1b":
        return one_f_one_b(pp, microbatches)
    if kind == "interleaved":
        return interleaved(pp, vpp, microbatches)
    raise ValueError(f"unknown pipeline schedule {kind!r}; expected 1f1b, interleaved or gpipe")
