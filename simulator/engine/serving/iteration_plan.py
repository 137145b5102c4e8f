"""What the scheduler decides for the next iteration (:class:`Plan`) and what an iteration
ended (:class:`IterationOutcome`): the records passed between the scheduler, which fills
them, and the replica, which prices and waits out the iteration."""

from __future__ import annotations


class Plan:
    """The next iteration, as :meth:`Scheduler.plan` fills it in: prompt chunks
    (``(request, new tokens)`` pairs), the decode batch (its size and total context), the
    sequences preempted to make room, and the KV blocks in use while it runs.

    ``prompt_tokens``, ``prompt_cached`` and ``prompt_pairs`` are the chunks in aggregate,
    what pricing needs: new tokens, tokens already in the cache, and the (new, earlier)
    token pairs their attention covers (the sum of ``q·c + q(q+1)/2`` over chunks of ``q``
    new tokens after ``c`` cached ones). ``prompt_produced`` is the part of ``prompt_tokens``
    prefilled for the first time (not a recomputation after a preemption): the prompt
    tokens the iteration serves, which the steady window counts when they are produced.
    """

    __slots__ = ("blocks", "chunks", "decode_batch", "decode_context", "preempted",
                 "prompt_cached", "prompt_pairs", "prompt_produced", "prompt_tokens")

    def __init__(self) -> None:
        # (empty, filled in field by field: a constructor of eight keyword arguments costs
        # twice this, ~2% of a run, as the scheduler plans about twice per request)
        self.chunks: list[tuple[int, int]] = []
        self.decode_batch = self.decode_context = self.preempted = self.blocks = 0
        self.prompt_tokens = self.prompt_cached = self.prompt_pairs = 0
        self.prompt_produced = 0

    @property
    def sequences(self) -> int:
        """Sequences in the iteration: prompt chunks and decodes."""
        return len(self.chunks) + self.decode_batch


class IterationOutcome:
    """What an iteration (or a run of decode-only iterations) ended: the output tokens it
    produced, requests that finished, and requests whose prompt is done on a prefill
    replica (to hand off)."""

    __slots__ = ("finished", "handoff", "output_tokens")

    def __init__(self, output_tokens: int = 0, finished: list[int] | None = None):
        self.output_tokens = output_tokens
        self.finished = finished if finished is not None else []
        self.handoff: list[int] = []
