"""Iteration-level continuous batching on one replica (the policy of vLLM's scheduler).

At every iteration boundary :meth:`Scheduler.plan` decides the next iteration:

1. **Running sequences first.** Every decoding sequence takes one token of the budget and,
   when its context crosses a block boundary, one more KV block. If the cache cannot hold
   them, the most recently admitted running sequence is **preempted by recompute**: its
   blocks are freed and it goes back to the front of the queue; when readmitted it prefills
   its prompt and the tokens it had generated (producing its next token), then decodes on.
   Preemption repeats until the rest fits; an iteration that preempts admits nobody.
2. **Prompts in progress** continue with their next chunk, in admission order.
3. **Admission, first come first served**: the head of the queue is admitted while the batch
   has room (``max_batch_size`` sequences, prefilling ones included), the token budget
   (``max_tokens_per_step``) has tokens left and the cache has free blocks for its whole
   prompt. A request that cannot be admitted blocks those behind it.

With ``chunked_prefill`` a prompt takes what is left of the budget (at most the chunk size
when one is given) and finishes over several iterations; without it a prompt is prefilled
whole in one iteration and must fit in what is left of the budget, except in an iteration
with nothing else to do. A request that arrives with its KV cache (disaggregated decode)
joins the decoding sequences directly.

Decoding sequences are kept in numpy arrays with ``base = context - step``, so the contexts
at any step are ``base + step`` and a run of decode steps updates nothing per token.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from simulator.engine.serving.kv_cache import KVCapacity, blocks_in_use, blocks_over_run
from simulator.engine.serving.metrics import RequestLog
from simulator.profiles.inference import Batching


class Role(StrEnum):
    MIXED = "mixed"  # prefill and decode (no disaggregation)
    PREFILL = "prefill"  # hands each request off after its first token
    DECODE = "decode"  # receives requests with their KV cache


@dataclass
class Plan:
    """The next iteration: prompt chunks ``(request, new tokens, cached tokens)`` and the
    decode batch (its size and total context)."""

    chunks: list[tuple[int, int, int]] = field(default_factory=list)
    decode_batch: int = 0
    decode_context: int = 0
    preempted: int = 0
    blocks: int = 0  # KV blocks in use during the iteration

    @property
    def empty(self) -> bool:
        return not self.chunks and self.decode_batch == 0

    @property
    def sequences(self) -> int:
        return len(self.chunks) + self.decode_batch


@dataclass
class Outcome:
    """What an iteration (or a run of decode steps) ended: requests that finished, and
    requests whose prompt is done on a prefill replica (to hand off)."""

    finished: list[int] = field(default_factory=list)
    handoff: list[int] = field(default_factory=list)
    first_tokens: int = 0
    output_tokens: int = 0


class Scheduler:
    """One replica's queue, running sequences and KV blocks."""

    def __init__(self, log: RequestLog, capacity: KVCapacity, batching: Batching,
                 role: Role = Role.MIXED):
        self.log = log
        self.capacity = capacity
        self.block = capacity.block_tokens
        self.max_batch = batching.max_batch_size
        self.max_tokens = batching.max_tokens_per_step
        chunk = batching.chunked_prefill
        self.chunked = chunk is not False
        self.chunk = self.max_tokens if chunk is True or chunk is False else int(chunk)
        self.role = role
        self.waiting: deque[int] = deque()
        self.prefilling: list[int] = []
        self.prefill_blocks = 0
        self.held_blocks = 0  # prompts handed off whose KV is still being sent
        self.step = 0  # iterations run so far
        size = self.max_batch
        self._ids = np.zeros(size, dtype=np.int64)
        self._base = np.zeros(size, dtype=np.int64)
        self._end = np.zeros(size, dtype=np.int64)
        self._seq = np.zeros(size, dtype=np.int64)
        self.decoding = 0
        self._base_sum = 0
        self._admissions = 0

    # ---- state ----------------------------------------------------------------------------
    @property
    def running(self) -> int:
        return self.decoding + len(self.prefilling)

    @property
    def outstanding(self) -> int:
        return self.running + len(self.waiting)

    def contexts(self) -> np.ndarray:
        """Context of each decoding sequence at the next step."""
        return self._base[:self.decoding] + self.step

    def decode_context(self) -> int:
        return self._base_sum + self.decoding * self.step

    def blocks_needed(self) -> int:
        return (blocks_in_use(self.contexts(), self.block) + self.prefill_blocks
                + self.held_blocks)

    def free_blocks(self) -> int:
        return self.capacity.blocks - self.blocks_needed()

    # ---- decoding arrays -------------------------------------------------------------------
    def _join(self, r: int, context: int, generated: int) -> None:
        """``r`` decodes from the next step with ``context`` keys, ``generated`` tokens out."""
        i = self.decoding
        self._ids[i] = r
        self._base[i] = context - self.step
        self._end[i] = self.step + int(self.log.output[r]) - generated
        self._seq[i] = self.log.admit_seq[r]
        self._base_sum += int(self._base[i])
        self.decoding += 1

    def _drop_where(self, mask: np.ndarray) -> np.ndarray:
        """Remove the decoding sequences selected by ``mask``; returns their ids."""
        n = self.decoding
        gone = self._ids[:n][mask]
        keep = ~mask
        k = n - len(gone)
        self._base_sum -= int(self._base[:n][mask].sum())
        for arr in (self._ids, self._base, self._end, self._seq):
            arr[:k] = arr[:n][keep]
        self.decoding = k
        return gone

    # ---- planning ---------------------------------------------------------------------------
    def _admit_seq(self, r: int, now: float) -> None:
        log = self.log
        if np.isnan(log.admitted[r]):
            log.admitted[r] = now
        self._admissions += 1
        log.admit_seq[r] = self._admissions

    def _preempt_one(self) -> None:
        n = self.decoding
        last_decoder = int(np.argmax(self._seq[:n])) if n else -1
        decoder_seq = int(self._seq[last_decoder]) if n else -1
        prefill_seq = int(self.log.admit_seq[self.prefilling[-1]]) if self.prefilling else -1
        log = self.log
        if decoder_seq > prefill_seq:
            mask = np.zeros(n, dtype=bool)
            mask[last_decoder] = True
            r = int(self._ids[last_decoder])
            remaining = int(self._end[last_decoder]) - self.step
            self._drop_where(mask)
            log.generated[r] = int(log.output[r]) - remaining
        else:
            r = self.prefilling.pop()
            self.prefill_blocks -= self.capacity.blocks_for(int(log.target[r]))
        log.target[r] = int(log.prompt[r]) + int(log.generated[r])
        log.done[r] = 0
        log.preemptions[r] += 1
        self.waiting.appendleft(r)

    def admission_blocks(self, r: int) -> int:
        """Blocks ``r`` needs to be admitted: its prompt, or its context if its KV came
        with it."""
        log = self.log
        if log.target[r] == 0:
            return self.capacity.blocks_for(int(log.prompt[r]) + int(log.generated[r]))
        return self.capacity.blocks_for(int(log.target[r]))

    def could_admit(self, r: int, free_blocks: int) -> bool:
        """Whether ``r``, at the head of the queue, fits the batch, budget and ``free_blocks``."""
        return (self.running < self.max_batch and self.max_tokens > self.decoding
                and self.admission_blocks(r) <= free_blocks)

    def plan(self, now: float) -> Plan:
        """Decide the next iteration at time ``now`` (see the module docstring)."""
        log, cap = self.log, self.capacity.blocks
        need = self.blocks_needed()
        preempted = 0
        while need > cap:
            self._preempt_one()
            preempted += 1
            need = self.blocks_needed()
        budget = self.max_tokens - self.decoding
        chunks: list[tuple[int, int, int]] = []
        for r in self.prefilling:
            if budget <= 0:
                break
            done = int(log.done[r])
            q = min(int(log.target[r]) - done, budget, self.chunk)
            chunks.append((r, q, done))
            budget -= q
        while (not preempted and self.waiting and self.running < self.max_batch
               and budget > 0):
            r = self.waiting[0]
            blocks = self.admission_blocks(r)
            if need + blocks > cap:
                break
            if log.target[r] == 0:  # arrived with its KV cache: decode right away
                self.waiting.popleft()
                self._admit_seq(r, now)
                self._join(r, int(log.prompt[r]) + int(log.generated[r]), int(log.generated[r]))
                budget -= 1
            else:
                target = int(log.target[r])
                if self.chunked:
                    q = min(target, budget, self.chunk)
                elif target <= budget or (not chunks and self.decoding == 0):
                    q = target
                else:
                    break
                self.waiting.popleft()
                self._admit_seq(r, now)
                self.prefilling.append(r)
                self.prefill_blocks += blocks
                chunks.append((r, q, 0))
                budget -= q
            need += blocks
        return Plan(chunks, self.decoding, self.decode_context(), preempted, need)

    def run_limit(self, steps_cap: int | None = None) -> tuple[int, np.ndarray]:
        """How many decode-only steps can run before a sequence finishes or the cache runs
        out, and the blocks in use at each of them."""
        if steps_cap == 1:
            return 1, np.array([self.blocks_needed()])
        n = self.decoding
        steps = int(self._end[:n].min()) - self.step
        if steps_cap is not None:
            steps = min(steps, steps_cap)
        extra = self.prefill_blocks + self.held_blocks
        blocks = blocks_over_run(self.contexts(), self.block, steps) + extra
        fit = int(np.searchsorted(blocks, self.capacity.blocks, side="right"))
        return max(1, min(steps, fit)), blocks

    # ---- committing --------------------------------------------------------------------------
    def _finish_decodes(self, out: Outcome) -> None:
        if self.decoding:
            mask = self._end[:self.decoding] == self.step
            if mask.any():
                out.finished.extend(sorted(int(r) for r in self._drop_where(mask)))

    def commit_run(self, steps: int) -> Outcome:
        """``steps`` decode-only steps have run."""
        out = Outcome(output_tokens=self.decoding * steps)
        self.step += steps
        self._finish_decodes(out)
        return out

    def commit_step(self, plan: Plan, now: float) -> Outcome:
        """The iteration ``plan`` has run and ended at ``now``."""
        log = self.log
        out = Outcome(output_tokens=plan.decode_batch)
        self.step += 1
        self._finish_decodes(out)
        for r, q, _ in plan.chunks:
            log.done[r] += q
            if log.done[r] < log.target[r]:
                continue
            self.prefilling.remove(r)
            target = int(log.target[r])
            self.prefill_blocks -= self.capacity.blocks_for(target)
            g = int(log.generated[r]) + 1
            log.generated[r] = g
            out.output_tokens += 1
            if np.isnan(log.first_token[r]):
                log.first_token[r] = now
                out.first_tokens += 1
            if g >= log.output[r]:
                out.finished.append(r)
            elif self.role is Role.PREFILL:
                self.held_blocks += self.capacity.blocks_for(target)
                out.handoff.append(r)
            else:
                self._join(r, int(log.prompt[r]) + g, g)
        return out

    def enqueue(self, r: int) -> None:
        self.waiting.append(r)

    def release(self, blocks: int) -> None:
        """A handed-off prompt's KV has been sent: its blocks are free."""
        self.held_blocks -= blocks
