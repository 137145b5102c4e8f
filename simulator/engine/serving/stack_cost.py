"""What the serving software adds to an iteration: host work, launches and graph padding.

An iteration's device time ``gpu`` (the kernels, priced by :mod:`simulator.perf`) becomes

    time = max(gpu, floor) + serial

- ``serial``: host work in series with the device (a stack without an overlap scheduler
  schedules and prepares the inputs, or processes the outputs, while the device waits);
- ``floor``: what the device cannot finish before: host work that overlaps it (one
  iteration's scheduling runs during the previous one's kernels, so it hides behind them
  unless it takes longer), and, when the host launches kernels eagerly, ``kernels x
  launch`` (it cannot run kernels faster than they are launched).

Host work is ``fixed + per_sequence x sequences + per_new_token x tokens`` per part
(:class:`~simulator.profiles.serving_stack.HostWork`); multi-step scheduling pays the
schedule part of a decode-only iteration once per ``scheduler_steps`` iterations (spread
evenly, so that every iteration of a run costs the same and runs can still be jumped).

Decode iterations replay captured graphs where the stack has them: the batch is padded up
to the next captured size (the kernels run on the padded batch; attention over the real
sequences' contexts); a batch larger than every captured size runs eagerly. Iterations with
prompt chunks always run eagerly (their shapes vary).
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

from simulator.profiles.serving_stack import HostWork, ServingStack


def _parts(work: HostWork) -> tuple[float, float, float]:
    return work.fixed.value, work.per_sequence.value, work.per_new_token.value


@dataclass(frozen=True, slots=True, kw_only=True)
class StackCost:
    """One replica's serving-stack costs, in SI floats, and the rule that adds them."""

    schedule: tuple[float, float, float]  # fixed, per sequence, per new token (seconds)
    schedule_overlapped: bool
    output: tuple[float, float, float]
    output_overlapped: bool
    scheduler_steps: int
    eager_s: float  # kernels x launch: the least time of an eager iteration
    graph_sizes: tuple[int, ...]  # captured decode batch sizes (empty: none)
    pads: bool = True  # a batch between captured sizes is padded up (else it runs eagerly)

    @classmethod
    def of(cls, stack: ServingStack, *, kernels: int, max_batch: int) -> StackCost:
        """The costs of ``stack`` on a replica whose iterations launch ``kernels`` kernels
        and hold at most ``max_batch`` sequences."""
        h, g = stack.host, stack.graphs
        sizes: tuple[int, ...] = ()
        pads = True
        if g is not None:
            sizes = (max_batch,) if g.batch_sizes is None else g.batch_sizes.value
            pads = g.padding is None or g.padding.value
        return cls(schedule=_parts(h.schedule), schedule_overlapped=h.schedule.overlapped.value,
                   output=_parts(h.output), output_overlapped=h.output.overlapped.value,
                   scheduler_steps=h.scheduler_steps.value, eager_s=kernels * h.launch.value,
                   graph_sizes=sizes, pads=pads)

    @property
    def free(self) -> bool:
        """Whether the stack adds nothing to any iteration (the ``ideal`` stack)."""
        return (not any(self.schedule) and not any(self.output) and not self.eager_s
                and not self.graph_sizes)

    def host(self, sequences: int, tokens: int, decode_only: bool) -> tuple[float, float]:
        """(serial, overlapped) host seconds of an iteration of ``sequences`` sequences
        feeding ``tokens`` new tokens."""
        f, s, t = self.schedule
        schedule = f + s * sequences + t * tokens
        if decode_only:
            schedule /= self.scheduler_steps
        f, s, t = self.output
        output = f + s * sequences + t * tokens
        serial = overlapped = 0.0
        if self.schedule_overlapped:
            overlapped += schedule
        else:
            serial += schedule
        if self.output_overlapped:
            overlapped += output
        else:
            serial += output
        return serial, overlapped

    def padded(self, batch: int) -> int | None:
        """The captured size a decode batch of ``batch`` replays at (padded up), or None
        when it runs eagerly (no graphs, larger than every captured size, or between
        captured sizes of a stack that does not pad)."""
        sizes = self.graph_sizes
        i = bisect_left(sizes, batch)
        if i == len(sizes) or (sizes[i] != batch and not self.pads):
            return None
        return sizes[i]

    def decode(self, batch: int) -> tuple[float, float]:
        """(floor, serial) of a decode-only iteration of ``batch`` sequences."""
        serial, overlapped = self.host(batch, batch, True)
        eager = self.eager_s if self.padded(batch) is None else 0.0
        return max(overlapped, eager), serial

    def mixed(self, sequences: int, tokens: int) -> tuple[float, float]:
        """(floor, serial) of an iteration with prompt chunks (launched eagerly)."""
        serial, overlapped = self.host(sequences, tokens, False)
        return max(overlapped, self.eager_s), serial
