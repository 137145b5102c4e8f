"""What the requests' prompts have in common: the content key of every KV block.

A prefix cache finds a block by what it holds, and two blocks hold the same K/V only when
the tokens *up to and including* them are the same (attention mixes every earlier token
into each position). So a block is named by the prefix it ends, as vLLM hashes a block
together with its parent's hash. The engine never sees tokens, so the workload says which
prompts share what:

- **a shared system prompt** of ``S`` tokens: the blocks that end within it are the same in
  every request that has it (key: the block's index, the *system* chain);
- **a session** (multi-turn chat): turn ``k + 1``'s prompt begins with turn ``k``'s whole
  context (its prompt and answer), so every block of every turn is named by the session and
  its index (the session's chain). A request that is not part of a session is a session of
  one turn, with a chain of its own;
- **a trace's block hashes** (Mooncake's ``hash_ids``, one per ``hash_block_tokens`` of the
  prompt; equal ids mean an identical prefix): a KV block inside hash block ``j`` is named by
  that hash and its position in it.

Requests of a session are numbered session by session (``r = session x turns + turn``); only
each session's first turn has an arrival time in advance, the next is sent
``think_time_s`` after the previous one ends (``system.ServingSystem``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import chain as chain_ranges
from itertools import repeat

import numpy as np

from simulator.profiles.inference import InferenceWorkload, TokenDistribution

_CHAIN_SHIFT = 40  # key = (chain + 1) << 40 | block index: indices stay below 2^40
BlockKeys = Callable[[int, int, int], Iterable[int]]  # (request, first block, end) -> keys
Sampler = Callable[[int | TokenDistribution, int, np.random.Generator], np.ndarray]


@dataclass(frozen=True, kw_only=True, eq=False)
class PromptPrefixes:
    """Per request: the shared system prompt it starts with (tokens, 0: none) and its chain
    (session); or a trace's block hashes. ``turns`` and ``think_time_s`` describe sessions
    (1 and 0 without them)."""

    system: np.ndarray  # int64 tokens of the shared system prompt at the start of the prompt
    chain: np.ndarray  # int64: the session a request belongs to (its own number if none)
    turns: int = 1
    think_time_s: float = 0.0
    hashes: list[list[int]] | None = None  # a trace's block hashes, per request
    hash_block_tokens: int = 0

    def keys(self, block: int) -> BlockKeys:
        """``keys(r, start, stop)``: the content keys of request ``r``'s KV blocks ``start``
        to ``stop - 1`` (of ``block`` tokens each). Equal keys, equal K/V. The keys of a
        chain are consecutive integers, so they come as ranges, not one call per block."""
        if self.hashes is not None:
            return self._hash_keys(block)
        system, chain = self.system.tolist(), self.chain.tolist()

        def keys(r: int, start: int, stop: int) -> Iterable[int]:
            """System-prompt blocks by index; the rest by the request's chain and index."""
            shared = min(system[r] // block, stop)
            base = (chain[r] + 1) << _CHAIN_SHIFT
            if start >= shared:
                return range(base + start, base + stop)
            return chain_ranges(range(start, shared), range(base + shared, base + stop))
        return keys

    def _hash_keys(self, block: int) -> BlockKeys:
        """Keys from a trace's block hashes; a block past the listed hashes is the request's
        own (negative keys cannot meet the others)."""
        hashes, per = self.hashes, self.hash_block_tokens // block
        assert hashes is not None and per >= 1

        def key(r: int, i: int) -> int:
            """The hash of the trace block holding KV block ``i``, and its place in it."""
            ids = hashes[r]
            j = i // per
            if j < len(ids):
                return -(ids[j] * per + i % per) - 1
            return (r + 1) << _CHAIN_SHIFT | i

        def keys(r: int, start: int, stop: int) -> Iterable[int]:
            """One key a block (trace rows are few next to the blocks they name)."""
            return map(key, repeat(r, stop - start), range(start, stop))
        return keys


def shape_prompts(workload: InferenceWorkload, times: np.ndarray, rng: np.random.Generator,
                  sample: Sampler) -> tuple[np.ndarray, np.ndarray, np.ndarray, PromptPrefixes]:
    """Times, prompt and output lengths, and prefixes of a workload with a shared system
    prompt or sessions; ``times`` are the arrival process's (one per session).

    Draws, after the times: every request's new message (``prompt_tokens``) and answer
    (``output_tokens``), then, when ``share < 1``, which sessions start with the system
    prompt. Turn ``k``'s prompt is the system prompt, the messages and answers of the turns
    before it, and its own message.
    """
    n = len(times)
    sessions = workload.sessions
    turns = sessions.turns if sessions is not None else 1
    messages = sample(workload.prompt_tokens, n * turns, rng).reshape(n, turns)
    outputs = sample(workload.output_tokens, n * turns, rng).reshape(n, turns)
    system = np.zeros(n, dtype=np.int64)
    shared = workload.shared_prefix
    if shared is not None:
        has = rng.random(n) < shared.share if shared.share < 1 else np.ones(n, dtype=bool)
        system[has] = shared.tokens
    exchanged = messages + outputs
    history = np.cumsum(exchanged, axis=1) - exchanged  # tokens of the turns before each
    prompts = system[:, None] + history + messages
    arrival = np.full((n, turns), np.inf)
    arrival[:, 0] = times
    prefixes = PromptPrefixes(
        system=np.repeat(system, turns), chain=np.repeat(np.arange(n, dtype=np.int64), turns),
        turns=turns, think_time_s=sessions.think_time_s if sessions is not None else 0.0)
    return arrival.ravel(), prompts.ravel(), outputs.ravel(), prefixes
