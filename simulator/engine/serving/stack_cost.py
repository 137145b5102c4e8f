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
(:class:`~simulator.profiles.serving_stack.HostWork`): scheduling, the engine's output
processing, and the HTTP API server's (the ``frontend`` part, paid when the workload is
served over HTTP or by a harness that streams each step's outputs in process, as an MLPerf
Server harness does; a harness that calls the engine in process for whole results has
none). Multi-step
scheduling pays the
schedule part of a decode-only iteration once per ``scheduler_steps`` iterations (spread
evenly, so that every iteration of a run costs the same and runs can still be jumped).

Decode iterations replay captured graphs where the stack has them: the batch is padded up
to the next captured size (the kernels run on the padded batch; attention over the real
sequences' contexts); a batch larger than every captured size runs eagerly. A stack whose
capture list is capped at the engine's batch limit captures nothing above
``max_batch_size`` (and captures that size itself when it pads). Iterations with prompt
chunks always run eagerly (their shapes vary).
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

from simulator.profiles.serving_stack import Frontend, HostWork, ServingStack

_NONE = (0.0, 0.0, 0.0)


def _parts(work: HostWork | None) -> tuple[float, float, float]:
    if work is None:
        return _NONE
    return work.fixed.value, work.per_sequence.value, work.per_new_token.value


def _frontend(stack: ServingStack, frontend: Frontend) -> tuple[tuple[float, float, float], bool]:
    """The API server's host work and whether it overlaps; none when run in process, unless
    the harness streams every step's outputs (it then does the server's streaming work)."""
    work = stack.host.frontend
    if work is None or frontend is Frontend.IN_PROCESS:
        return _NONE, True
    return _parts(work), work.overlapped.value


def _seconds(part: tuple[float, float, float], sequences: int, tokens: int) -> float:
    fixed, per_sequence, per_token = part
    return fixed + per_sequence * sequences + per_token * tokens


def capped_sizes(sizes: tuple[int, ...], max_batch: int, pads: bool) -> tuple[int, ...]:
    """The captured sizes of an engine that holds at most ``max_batch`` sequences and
    captures no graph it could never replay: sizes above ``max_batch`` are dropped and, when
    it pads, ``max_batch`` itself is captured in their place (TensorRT-LLM's
    ``_filter_cuda_graph_batch_sizes``), so a batch just below it is padded to it rather
    than to the next listed size."""
    kept = tuple(s for s in sizes if s <= max_batch)
    if pads and len(kept) < len(sizes) and (not kept or kept[-1] != max_batch):
        kept += (max_batch,)
    return kept


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
    frontend: tuple[float, float, float] = _NONE  # the API server's (none in process)
    frontend_overlapped: bool = True
    prompt_buckets: tuple[int, ...] = ()  # compiled prompt lengths (empty: none)
    decode_buckets: tuple[int, ...] = ()  # compiled decode context lengths (empty: none)

    @classmethod
    def of(cls, stack: ServingStack, *, kernels: int, max_batch: int,
           frontend: Frontend = Frontend.HTTP) -> StackCost:
        """The costs of ``stack`` on a replica whose iterations launch ``kernels`` kernels
        and hold at most ``max_batch`` sequences, its requests arriving through
        ``frontend``."""
        h, g = stack.host, stack.graphs
        sizes: tuple[int, ...] = ()
        pads = True
        if g is not None:
            sizes = (max_batch,) if g.batch_sizes is None else g.batch_sizes.value
            pads = g.padding is None or g.padding.value
            if g.capped_at_max_batch is not None and g.capped_at_max_batch.value:
                sizes = capped_sizes(sizes, max_batch, pads)
        front, front_overlapped = _frontend(stack, frontend)
        buckets = () if stack.prompt_buckets is None else stack.prompt_buckets.value
        decode = () if stack.decode_buckets is None else stack.decode_buckets.value
        return cls(schedule=_parts(h.schedule), schedule_overlapped=h.schedule.overlapped.value,
                   output=_parts(h.output), output_overlapped=h.output.overlapped.value,
                   scheduler_steps=h.scheduler_steps.value, eager_s=kernels * h.launch.value,
                   graph_sizes=sizes, pads=pads, frontend=front,
                   frontend_overlapped=front_overlapped, prompt_buckets=buckets,
                   decode_buckets=decode)

    @property
    def free(self) -> bool:
        """Whether the stack adds nothing to any iteration (the ``ideal`` stack)."""
        return (not any(self.schedule) and not any(self.output) and not any(self.frontend)
                and not self.eager_s and not self.graph_sizes and not self.prompt_buckets
                and not self.decode_buckets)

    def host(self, sequences: int, tokens: int, decode_only: bool) -> tuple[float, float]:
        """(serial, overlapped) host seconds of an iteration of ``sequences`` sequences
        feeding ``tokens`` new tokens."""
        f, s, t = self.schedule
        schedule = f + s * sequences + t * tokens
        if decode_only:
            schedule /= self.scheduler_steps
        serial = overlapped = 0.0
        for seconds, hidden in ((schedule, self.schedule_overlapped),
                                (_seconds(self.output, sequences, tokens),
                                 self.output_overlapped),
                                (_seconds(self.frontend, sequences, tokens),
                                 self.frontend_overlapped)):
            if hidden:
                overlapped += seconds
            else:
                serial += seconds
        return serial, overlapped

    def pad_prompts(self, lengths: list[int]) -> tuple[int, int]:
        """(tokens, attention pairs) of fresh prompts of ``lengths`` tokens prefilled at
        their compiled lengths: each padded up to the next prompt bucket (one longer than
        every bucket as it is). The padded rows run every GEMM and attend causally like
        real ones; only the real tokens are kept."""
        buckets = self.prompt_buckets
        tokens = pairs = 0
        for n in lengths:
            i = bisect_left(buckets, n)
            b = buckets[i] if i < len(buckets) else n
            tokens += b
            pairs += b * (b + 1) // 2
        return tokens, pairs

    def pad_context(self, context: int, batch: int) -> int:
        """The total context a decode step of ``batch`` sequences attends over when its
        attention runs at a compiled length: ``batch`` x the next decode bucket above the
        mean context (the mean stands for the longest, which picks the bucket; exact for one
        sequence); beyond every bucket, ``context`` as it is."""
        if not batch:
            return context
        buckets = self.decode_buckets
        i = bisect_left(buckets, -(-context // batch))
        return context if i == len(buckets) else batch * buckets[i]

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
