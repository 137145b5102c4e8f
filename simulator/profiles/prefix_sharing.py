"""Prompts that share a beginning: a shared system prompt, and multi-turn chat sessions.

Real chat traffic repeats itself. Most requests of an application start with the same
system prompt, and every turn of a conversation resends the whole conversation so far. A
serving engine with prefix caching (vLLM's automatic prefix caching, SGLang's RadixAttention,
TensorRT-LLM's KV-cache reuse) keeps the KV blocks it computed and prefills only what it has
not seen. These fields describe how much the prompts share; ``batching.prefix_caching``
says whether the engine reuses it (without it, shared prompts are prefilled every time,
which is the baseline a cache is measured against).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from simulator.profiles.numbers import MAX_REQUESTS, SPEC_CONFIG, PositiveInt, TokenLength
from simulator.profiles.quantities import Fraction, NonNegativeSeconds

MAX_TURNS = 10_000  # turns of one session; its context grows with every turn


class SharedPrefix(BaseModel):
    """A system prompt that begins the prompts of a share of the requests (of the sessions,
    with ``sessions``): those prompts are the system prompt followed by ``prompt_tokens``."""

    model_config = SPEC_CONFIG

    tokens: TokenLength = Field(description="length of the shared system prompt, tokens")
    share: Fraction = Field(1.0, description="fraction of requests (of sessions, with "
                                             "sessions) whose prompt starts with it (0-1]")


class Sessions(BaseModel):
    """Multi-turn chat: each arrival of the arrival process starts a session of ``turns``
    requests. A turn's prompt is the whole conversation so far (the system prompt, every
    earlier prompt message and answer) followed by a new message of ``prompt_tokens``; the
    next turn is sent ``think_time_s`` after the answer ends."""

    model_config = SPEC_CONFIG

    turns: PositiveInt = Field(description="requests per session (1 = single-turn)",
                               le=MAX_TURNS)
    think_time_s: NonNegativeSeconds = Field(
        0.0, description="pause between a turn's last token and the next turn's arrival "
                         "(the user reading and typing)")


def prefix_problem(workload: Any) -> str | None:
    """What is wrong with a serving workload's prefix fields together (None: nothing).

    ``shared_prefix`` and ``sessions`` shape synthetic prompts, so they need a drawn arrival
    process (a trace brings its own prompts; closed-loop clients send one request at a time,
    which sessions would contradict); ``cache_aware`` routing needs a cache to be aware of.
    """
    process = workload.arrivals.process.value
    if workload.sessions is not None and process in ("trace", "closed"):
        return (f"sessions: each arrival of the arrival process starts a session, which "
                f"process: {process} does not draw; use poisson, gamma, constant or offline")
    if workload.shared_prefix is not None and process == "trace":
        return ("shared_prefix: a trace brings its own prompts; add the system prompt to the "
                "trace's prompt lengths instead")
    if workload.router.value == "cache_aware" and not workload.batching.prefix_caching:
        return ("router: cache_aware sends a request to the replica caching its prefix: set "
                "batching.prefix_caching: true")
    block, hashed = workload.batching.kv_block_tokens, workload.arrivals.hash_block_tokens
    if process == "trace" and workload.batching.prefix_caching and hashed % block:
        return (f"arrivals.hash_block_tokens ({hashed}) must be a multiple of "
                f"batching.kv_block_tokens ({block}): a trace's block ids name whole KV blocks")
    requests = workload.arrivals.expected_requests
    turns = workload.sessions.turns if workload.sessions is not None else 1
    if requests is not None and requests * turns > MAX_REQUESTS:
        return (f"sessions: {requests:.0f} sessions of {turns} turns are {requests * turns:.3g} "
                f"requests; at most {MAX_REQUESTS:,} are simulated")
    return None
