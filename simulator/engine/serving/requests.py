"""The requests of a serving run: what a request *is* in the engine, defined once.

A request is its number ``r``: its position in arrival order (``0 <= r < len(requests)``,
fewer than 2^40 of them, since :mod:`~simulator.engine.serving.decoding` packs ``r`` into
its heap keys; with multi-turn sessions the numbering goes session by session and turn by
turn, :mod:`~simulator.engine.serving.prefixes`). Everything about it is a column of
:class:`Requests`, indexed by ``r`` (a struct of arrays: a summary over 10^6 requests is a
few vector operations, and the hot loops do not allocate an object per request).

**Records** (numpy columns; times in seconds from the start of the run, NaN until reached):

============== ====================================================================
arrival_s       when it arrives (closed loop: ``inf`` until its client sends it)
prompt_tokens   prompt length
output_tokens   answer length
replica         the replica of the first pool it was routed to (-1: dropped)
decode_replica  the decode replica it was handed to (disaggregated; else -1)
admitted_s      its first admission into a batch (a preempted request keeps it)
first_token_s   the end of the iteration that produced its first token
finish_s        the end of the iteration that produced its last token
transfer_s      its KV-cache transfer to the decode replica (disaggregated)
preemptions     times it was preempted by recompute
cached_tokens   prompt tokens found in the prefix cache at its first admission (not computed)
status          :data:`PENDING`, :data:`COMPLETED` or :data:`DROPPED`
============== ====================================================================

**Scheduler state** (Python lists of ints, which a scalar read or write costs less than a
numpy element; shared by the replicas, since a request moves between pools):

============== ====================================================================
prompt_len      ``prompt_tokens`` as a list
output_len      ``output_tokens`` as a list
generated       output tokens produced so far
target          tokens to prefill at its next admission: the prompt, or after a preemption
                prompt + generated (recompute); **0 means its KV cache arrived with it**
                (a hand-off to a decode replica): it joins the decoding batch at once
done            tokens of ``target`` prefilled so far (its prompt in progress)
admission       the number of its latest admission on the replica that admitted it
                (1, 2, ... per replica; 0 = never admitted): preemption takes the
                running request admitted last
credited        prompt tokens prefilled at least once: a recomputation after a preemption
                prefills them again, but they are produced (and counted) only the first time
============== ====================================================================
"""

from __future__ import annotations

import numpy as np

from simulator.engine.serving.arrivals import Workload
from simulator.results.inference import RequestRecords

PENDING, COMPLETED, DROPPED = 0, 1, 2  # values of ``Requests.status``
STATUS_NAMES = ("unfinished", "completed", "dropped")  # by status value, as the records say


class Requests:
    """The columns of every request of a run (see the module docstring for each one)."""

    __slots__ = ("admission", "admitted_s", "arrival_s", "cached_tokens", "credited",
                 "decode_replica", "done", "finish_s", "first_token_s", "generated",
                 "output_len", "output_tokens", "preemptions", "prompt_len", "prompt_tokens",
                 "replica", "status", "target", "transfer_s")

    def __init__(self, workload: Workload):
        n = len(workload)
        self.arrival_s = workload.arrival_s
        self.prompt_tokens = workload.prompt_tokens
        self.output_tokens = workload.output_tokens
        self.replica = np.full(n, -1, dtype=np.int32)
        self.decode_replica = np.full(n, -1, dtype=np.int32)
        self.admitted_s = np.full(n, np.nan)
        self.first_token_s = np.full(n, np.nan)
        self.finish_s = np.full(n, np.nan)
        self.transfer_s = np.full(n, np.nan)
        self.preemptions = np.zeros(n, dtype=np.int32)
        self.cached_tokens = np.zeros(n, dtype=np.int64)
        self.status = np.zeros(n, dtype=np.int8)
        self.prompt_len: list[int] = self.prompt_tokens.tolist()
        self.output_len: list[int] = self.output_tokens.tolist()
        self.generated = [0] * n
        self.target = list(self.prompt_len)
        self.done = [0] * n
        self.admission = [0] * n
        self.credited = [0] * n

    def __len__(self) -> int:
        return len(self.arrival_s)

    def records(self) -> RequestRecords:
        """The per-request records users get (the run is over: the columns become
        read-only, not copied)."""
        many = self.output_tokens > 1
        tpot = np.full(len(self), np.nan)
        tpot[many] = ((self.finish_s[many] - self.first_token_s[many])
                      / (self.output_tokens[many] - 1))
        return RequestRecords(
            request=np.arange(len(self)), status=np.array(STATUS_NAMES)[self.status],
            arrival_s=self.arrival_s, prompt_tokens=self.prompt_tokens,
            output_tokens=self.output_tokens, replica=self.replica,
            decode_replica=self.decode_replica, queue_s=self.admitted_s - self.arrival_s,
            ttft_s=self.first_token_s - self.arrival_s, tpot_s=tpot,
            e2e_s=self.finish_s - self.arrival_s, transfer_s=self.transfer_s,
            first_token_s=self.first_token_s, finish_s=self.finish_s,
            preemptions=self.preemptions, cached_tokens=self.cached_tokens)
