"""KV blocks reserved for whole sequences at admission (``kv_reservation: full_sequence``,
TensorRT-LLM's GUARANTEED_NO_EVICT) against blocks taken as contexts grow (vLLM), on
hand-built requests and through a whole run."""

from __future__ import annotations

import numpy as np

from simulator.engine.serving import run_serving
from simulator.engine.serving.arrivals import Workload
from simulator.engine.serving.kv_cache import KVCapacity
from simulator.engine.serving.kv_reservation import Reservations
from simulator.engine.serving.requests import Requests
from simulator.engine.serving.scheduler import Role, Scheduler
from simulator.profiles.inference import Batching
from tests.engine.test_serving_engine import _records_equal
from tests.engine.test_serving_stacks import _host, scenario

BLOCK = 16


def _requests(prompts: list[int], outputs: list[int]) -> Requests:
    n = len(prompts)
    return Requests(Workload(np.zeros(n), np.array(prompts), np.array(outputs)))


def _scheduler(reserve: bool, blocks: int = 20, n: int = 3) -> Scheduler:
    """``n`` requests of 64 prompt and 96 output tokens: 160 tokens, ceil(160/16) = 10
    blocks each when whole, ceil(64/16) = 4 for the prompt; ``blocks`` in the cache."""
    sched = Scheduler(requests=_requests([64] * n, [96] * n),
                      capacity=KVCapacity(blocks, BLOCK, 1.0),
                      batching=Batching(max_tokens_per_step=8192), reserve=reserve)
    sched.waiting.extend(range(n))
    return sched


def _drain(sched: Scheduler) -> tuple[list[list[int]], int]:
    """Run every iteration to the end: the requests admitted at each admission, and the
    preemptions."""
    admitted: list[list[int]] = []
    preempted, t = 0, 0.0
    while sched.waiting or sched.prefilling or sched.dec.n:
        plan = sched.plan(t)
        preempted += plan.preempted
        fresh = [r for r, _ in plan.chunks if sched.requests.done[r] == 0]
        if fresh:
            admitted.append(fresh)
        t += 1.0
        sched.commit(plan, t)
    return admitted, preempted


def test_whole_sequences_are_promised_so_two_run_and_none_is_preempted():
    """20 blocks hold two whole sequences (2 x 10), not three: requests 0 and 1 run first,
    2 waits until they have finished, and nobody is ever preempted."""
    admitted, preempted = _drain(_scheduler(reserve=True))
    assert admitted == [[0, 1], [2]]
    assert preempted == 0


def test_blocks_taken_as_contexts_grow_admit_all_three_and_then_preempt():
    """Without reservation the three prompts (3 x 4 = 12 blocks of 20) are admitted at
    once; at full length they would need 30 blocks, so some are preempted and recomputed."""
    admitted, preempted = _drain(_scheduler(reserve=False))
    assert admitted[0] == [0, 1, 2]
    assert preempted > 0


def test_an_empty_replica_admits_a_sequence_longer_than_the_cache():
    """A 10-block sequence in an 8-block cache cannot be promised, but refusing it forever
    would stall the replica: alone, it is admitted (its blocks then grow on demand)."""
    sched = _scheduler(reserve=True, blocks=8, n=1)
    plan = sched.plan(0.0)
    assert plan.chunks == [(0, 64)]
    assert sched.reservations.total == 10


def test_a_promise_is_kept_until_the_request_leaves_and_is_not_counted_twice():
    """Three whole sequences of ceil(160/16) = 10 blocks in a cache of 20."""
    res = Reservations(requests=_requests([64, 100, 64], [96, 60, 96]), block_tokens=BLOCK,
                       capacity=20, enabled=True)
    res.hold(0)
    res.hold(0)  # readmitted after a preemption: promised once
    assert res.total == 10
    assert res.admits(1)  # 10 + 10 <= 20
    res.hold(1)
    assert res.total == 20 and not res.admits(2)  # 20 + 10 > 20
    res.release([0, 7])  # 7 holds nothing
    assert res.total == 10 and res.admits(2)
    off = Reservations(requests=_requests([64], [96]), block_tokens=BLOCK, capacity=1,
                       enabled=False)
    off.hold(0)
    assert off.total == 0 and off.admits(0)


def test_a_prefill_replica_promises_the_prompt_only():
    """A prefill replica hands a request off after its first token: it is promised
    ceil(64/16) = 4 blocks, not the whole sequence's 10."""
    res = Reservations(requests=_requests([64], [96]), block_tokens=BLOCK, capacity=20,
                       enabled=True, prefill=True)
    assert res.whole_blocks(0) == 4
    sched = Scheduler(requests=_requests([64], [96]), capacity=KVCapacity(20, BLOCK, 1.0),
                      batching=Batching(), role=Role.PREFILL, reserve=True)
    assert sched.reservations.prefill


def _stack(reservation: str | None) -> dict:
    stack = {"id": "res", "name": "res", "host": _host(),
             "admission": {"value": "continuous", "source": "test"}}
    if reservation is not None:
        stack["kv_reservation"] = {"value": reservation, "source": "test"}
    return stack


def test_a_run_with_reservation_never_preempts_and_batches_whole_sequences(tmp_path):
    """400 requests of 4,000 prompt and 4,000 output tokens at t = 0 on one H100 with
    Llama 3.1 8B: their 3.2M tokens outgrow the cache. Growing on demand admits more than
    the cache holds at full length and preempts; reserving runs at most
    kv_tokens // 8,000 at once (whole sequences of 500 blocks of 16) and preempts none."""
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n" + "0,4000,4000\n" * 400)
    w = {"arrivals": {"process": "trace", "path": str(trace)},
         "batching": {"max_batch_size": 1024, "max_tokens_per_step": 16384}}
    grown = run_serving(scenario(w, _stack(None))).result.inference.per_replica[0]
    kept = run_serving(scenario(w, _stack("full_sequence"))).result.inference.per_replica[0]
    assert grown.preemptions > 0
    assert kept.preemptions == 0
    whole = kept.kv_cache_tokens // 8000
    assert whole < 400  # the cache binds
    assert kept.batch_size.max == whole
    assert grown.batch_size.max > whole
    on_demand = run_serving(scenario(w, _stack("on_demand"))).result.inference.per_replica[0]
    assert on_demand.preemptions == grown.preemptions  # absent means on_demand


def test_jumping_through_decode_runs_keeps_the_promises_of_single_stepping():
    """Poisson arrivals into a tight cache with whole sequences reserved: jumping through
    decode-only runs gives the same records as pricing every iteration."""
    w = {"batching": {"kv_cache_tokens": 12_000, "max_tokens_per_step": 1024}}
    s = scenario(w, _stack("full_sequence"))
    jumped, stepped = run_serving(s), run_serving(s, jump=False)
    assert _records_equal(jumped.requests, stepped.requests) == []
    assert jumped.result.inference.preemptions == 0
