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

Decoding sequences are kept by :class:`~simulator.engine.serving.decoding.Decoding` with
``base = context - step``, so a run of decode steps updates nothing per token, and the
blocks, contexts and next finish of a run cost O(1) to find.
"""

from __future__ import annotations

from collections import deque
from enum import StrEnum

from simulator.engine.serving.decoding import Decoding
from simulator.engine.serving.kv_cache import KVCapacity
from simulator.engine.serving.metrics import RequestLog
from simulator.profiles.inference import Batching


class Role(StrEnum):
    MIXED = "mixed"  # prefill and decode (no disaggregation)
    PREFILL = "prefill"  # hands each request off after its first token
    DECODE = "decode"  # receives requests with their KV cache


class Plan:
    """The next iteration: prompt chunks ``(request, new tokens, cached tokens)`` and the
    decode batch (its size and total context)."""

    __slots__ = ("blocks", "chunks", "decode_batch", "decode_context", "preempted",
                 "prompt")

    def __init__(self, chunks: list[tuple[int, int, int]], decode_batch: int,
                 decode_context: int, preempted: int, blocks: int,
                 prompt: tuple[int, int, int] = (0, 0, 0)):
        self.chunks = chunks
        self.decode_batch = decode_batch
        self.decode_context = decode_context
        self.preempted = preempted
        self.blocks = blocks  # KV blocks in use during the iteration
        # the chunks in aggregate: new tokens, cached tokens, and (new, earlier) token pairs
        # their attention covers (sum of q·c + q(q+1)/2)
        self.prompt = prompt

    @property
    def empty(self) -> bool:
        return not self.chunks and self.decode_batch == 0

    @property
    def sequences(self) -> int:
        return len(self.chunks) + self.decode_batch


class Outcome:
    """What an iteration (or a run of decode steps) ended: requests that finished, and
    requests whose prompt is done on a prefill replica (to hand off)."""

    __slots__ = ("finished", "first_tokens", "handoff", "output_tokens")

    def __init__(self, output_tokens: int = 0, finished: list[int] | None = None):
        self.finished = finished if finished is not None else []
        self.handoff: list[int] = []
        self.first_tokens = 0
        self.output_tokens = output_tokens


class Scheduler:
    """One replica's queue, running sequences and KV blocks."""

    __slots__ = ("_admissions", "block", "cap", "capacity", "chunk", "chunked", "dec",
                 "held_blocks", "log", "max_batch", "max_tokens", "prefill_blocks", "prefilling",
                 "role", "step", "waiting")

    def __init__(self, log: RequestLog, capacity: KVCapacity, batching: Batching,
                 role: Role = Role.MIXED):
        self.log = log
        self.capacity = capacity
        self.cap = capacity.blocks
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
        self.dec = Decoding(self.block)
        self._admissions = 0

    # ---- state ----------------------------------------------------------------------------
    @property
    def decoding(self) -> int:
        return self.dec.n

    @property
    def running(self) -> int:
        return self.dec.n + len(self.prefilling)

    @property
    def outstanding(self) -> int:
        return self.running + len(self.waiting)

    def decode_context(self) -> int:
        return self.dec.context(self.step)

    def blocks_needed(self) -> int:
        return self.dec.blocks_at(self.step) + self.prefill_blocks + self.held_blocks

    def free_blocks(self) -> int:
        return self.capacity.blocks - self.blocks_needed()

    def _blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block)

    # ---- planning ---------------------------------------------------------------------------
    def _join(self, r: int, context: int, generated: int) -> None:
        """``r`` decodes from the next step with ``context`` keys, ``generated`` tokens out."""
        log = self.log
        self.dec.join(r, context - self.step, self.step + log.output_len[r] - generated,
                      log.admit_seq[r])

    def _admit_seq(self, r: int, now: float) -> None:
        log = self.log
        if not log.admit_seq[r]:  # first admission (on any replica)
            log.admitted[r] = now
        self._admissions += 1
        log.admit_seq[r] = self._admissions

    def _preempt_one(self) -> None:
        log, dec = self.log, self.dec
        decoder_seq, victim = dec.latest() if dec.n else (-1, -1)
        prefill_seq = log.admit_seq[self.prefilling[-1]] if self.prefilling else -1
        if decoder_seq > prefill_seq:
            r = victim
            _, end, _ = dec.leave(r)
            log.generated[r] = log.output_len[r] - (end - self.step)
        else:
            r = self.prefilling.pop()
            self.prefill_blocks -= self._blocks_for(log.target[r])
        log.target[r] = log.prompt_len[r] + log.generated[r]
        log.done[r] = 0
        log.preemptions[r] += 1
        self.waiting.appendleft(r)

    def admission_blocks(self, r: int) -> int:
        """Blocks ``r`` needs to be admitted: its prompt, or its context if its KV came
        with it."""
        log = self.log
        target = log.target[r]
        if target == 0:
            return -(-(log.prompt_len[r] + log.generated[r]) // self.block)
        return -(-target // self.block)

    def could_admit(self, r: int, free_blocks: int) -> bool:
        """Whether ``r``, at the head of the queue, fits the batch, budget and ``free_blocks``."""
        n = self.dec.n
        return (n + len(self.prefilling) < self.max_batch and self.max_tokens > n
                and self.admission_blocks(r) <= free_blocks)

    def plan(self, now: float) -> Plan:
        """Decide the next iteration at time ``now`` (see the module docstring)."""
        log, cap, dec = self.log, self.capacity.blocks, self.dec
        need = dec.blocks_at(self.step) + self.prefill_blocks + self.held_blocks
        if need <= cap and not self.prefilling and not self.waiting:  # decoding only
            return Plan([], dec.n, dec.base_sum + dec.n * self.step, 0, need)
        preempted = 0
        while need > cap:
            self._preempt_one()
            preempted += 1
            need = self.blocks_needed()
        budget = self.max_tokens - dec.n
        chunks: list[tuple[int, int, int]] = []
        tokens = cached = pairs = 0
        for r in self.prefilling:
            if budget <= 0:
                break
            done = log.done[r]
            q = min(log.target[r] - done, budget, self.chunk)
            chunks.append((r, q, done))
            tokens += q
            cached += done
            pairs += q * done + q * (q + 1) // 2
            budget -= q
        waiting, block = self.waiting, self.block
        while (not preempted and waiting and dec.n + len(self.prefilling) < self.max_batch
               and budget > 0):
            r = waiting[0]
            target = log.target[r]
            # (admission_blocks, inline)
            blocks = (-(-target // block) if target
                      else -(-(log.prompt_len[r] + log.generated[r]) // block))
            if need + blocks > cap:
                break
            if target == 0:  # arrived with its KV cache: decode right away
                waiting.popleft()
                self._admit_seq(r, now)
                g = log.generated[r]
                self._join(r, log.prompt_len[r] + g, g)
                budget -= 1
            else:
                if self.chunked:
                    q = min(target, budget, self.chunk)
                elif target <= budget or (not chunks and dec.n == 0):
                    q = target
                else:
                    break
                waiting.popleft()
                self._admit_seq(r, now)
                self.prefilling.append(r)
                self.prefill_blocks += blocks
                chunks.append((r, q, 0))
                tokens += q
                pairs += q * (q + 1) // 2
                budget -= q
            need += blocks
        return Plan(chunks, dec.n, dec.base_sum + dec.n * self.step, preempted, need,
                    (tokens, cached, pairs))

    def decode_only(self, blocks: int = -1) -> int:
        """The KV blocks in use if the next iteration only decodes (nobody waiting or
        prefilling, some sequence decoding, and the cache holds them), else -1: what
        :meth:`plan` would plan then, without planning. ``blocks``: the blocks in use now,
        if the caller knows them."""
        if self.waiting or self.prefilling or not self.dec.n:
            return -1
        need = (blocks if blocks >= 0
                else self.dec.blocks_at(self.step) + self.prefill_blocks + self.held_blocks)
        return need if need <= self.cap else -1

    def run_limit(self, first: int) -> int:
        """How many decode-only steps can run before a sequence finishes or the cache runs
        out, given the blocks in use at the first of them."""
        dec, step = self.dec, self.step
        extra = self.prefill_blocks + self.held_blocks
        steps = dec.next_end() - step
        cap = self.cap
        # in k steps a sequence crosses at most ceil(k / block) block boundaries
        if (steps <= 1 or first + dec.n * -(-(steps - 1) // self.block) <= cap
                or dec.blocks_at(step + steps - 1) + extra <= cap):
            return steps
        if first > cap:
            return 1
        lo, hi = 0, steps - 1  # blocks fit at step + lo, not at step + hi (they never shrink)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if dec.blocks_at(step + mid) + extra <= cap:
                lo = mid
            else:
                hi = mid
        return hi

    # ---- committing --------------------------------------------------------------------------
    def commit_run(self, steps: int) -> list[int]:
        """``steps`` decode-only steps have run; returns the requests that finished (each
        sequence decoding produced one token a step)."""
        self.step += steps
        return self.dec.finishing(self.step)

    def commit_step(self, plan: Plan, now: float) -> Outcome:
        """The iteration ``plan`` has run and ended at ``now``."""
        log, dec, block = self.log, self.dec, self.block
        step = self.step = self.step + 1
        out = Outcome(plan.decode_batch, dec.finishing(step) if dec.n else None)
        for r, q, _ in plan.chunks:
            done = log.done[r] + q
            log.done[r] = done
            target = log.target[r]
            if done < target:
                continue
            self.prefilling.remove(r)
            self.prefill_blocks -= -(-target // block)
            g = log.generated[r] + 1
            log.generated[r] = g
            out.output_tokens += 1
            if g == 1:  # the request's first token (a preempted one prefills again for more)
                log.first_token[r] = now
                out.first_tokens += 1
            if g >= log.output_len[r]:
                out.finished.append(r)
            elif self.role is Role.PREFILL:
                self.held_blocks += -(-target // block)
                out.handoff.append(r)
            else:  # (_join, inline: from the next step, context prompt + g)
                dec.join(r, log.prompt_len[r] + g - step, step + log.output_len[r] - g,
                         log.admit_seq[r])
        return out

    def enqueue(self, r: int) -> None:
        self.waiting.append(r)

    def release(self, blocks: int) -> None:
        """A handed-off prompt's KV has been sent: its blocks are free."""
        self.held_blocks -= blocks
