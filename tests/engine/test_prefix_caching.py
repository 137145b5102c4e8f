"""Prefix caching end to end: shared system prompts, multi-turn sessions, trace block hashes,
cache-aware routing, and what the run reports. Expectations are derived by hand in each
test; the default (no prefix fields) is today's engine, bit for bit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simulator.engine.serving import run_serving
from simulator.engine.serving.iteration_cost import Usage
from simulator.engine.serving.pools import build_pools as _pools
from simulator.errors import InputErrors
from tests.conftest import assert_clean_error, run_cli
from tests.engine.test_serving_engine import _records_equal, scenario

CACHING = {"prefix_caching": True}


def spaced(requests: int, prompt, *, gap: float = 5.0, **workload):
    """Requests one at a time (``gap`` seconds apart, far longer than any of them), so
    each request's TTFT is the time of its own prefill iteration."""
    return scenario({"arrivals": {"process": "constant", "rate_per_s": 1 / gap,
                                  "requests": requests},
                     "prompt_tokens": prompt, "output_tokens": 4, "engine": "ideal",
                     **workload})


def test_identical_prompts_hit_every_cacheable_block_after_the_first():
    """A 1,024-token system prompt and a 1-token message: (1025 - 1) // 16 = 64 blocks are
    looked up per request, all in the system prompt. The first computes them; the other 19
    find all 64: hit rate 19·64 / (20·64) = 95%, 100% after the first."""
    out = run_serving(spaced(20, 1, shared_prefix={"tokens": 1024},
                             batching=CACHING))
    cached = out.requests.cached_tokens
    assert cached[0] == 0 and (cached[1:] == 1024).all()
    m = out.result.inference.prefix_cache
    assert m is not None
    assert (m.lookup_blocks, m.hit_blocks) == (20 * 64, 19 * 64)
    assert m.hit_rate == pytest.approx(19 / 20)
    assert m.token_hit_rate == pytest.approx(19 * 1024 / (20 * 1025))


def _prefill_time(s, new: int, cached: int) -> float:
    """One iteration prefilling ``new`` tokens after ``cached`` ones, alone (the formula the
    engine prices: attention over new·cached + new(new+1)/2 pairs)."""
    cost = _pools(s)[0].cost
    return cost.step_time(Usage(), new, cached, new * cached + new * (new + 1) // 2, 1, 0, 0)


@pytest.mark.parametrize("cached", [1024, 2048])
def test_a_cached_prefix_costs_its_attention_reads_by_hand(cached):
    """Llama 3.1 8B (32 layers, 32 query and 8 K/V heads of 128, bf16 KV): prefilling
    q = 1,024 new tokens after c cached ones does the same GEMMs as with none, plus the
    attention of every new token over the c cached keys, 4·L·H·d·q·c FLOPs (QK^T and PV,
    2 FLOPs a multiply-add), and reads their K and V once: 2·L·kv·d·2 bytes a token."""
    cost = _pools(spaced(1, 8))[0].cost
    q = 1024
    fresh = cost.prefill(q, 0, q * (q + 1) // 2, 1)
    after = cost.prefill(q, cached, q * cached + q * (q + 1) // 2, 1)
    assert after.flops - fresh.flops == pytest.approx(4 * 32 * 32 * 128 * q * cached)
    assert after.hbm_bytes - fresh.hbm_bytes == pytest.approx(cached * 2 * 32 * 8 * 128 * 2)


@pytest.mark.parametrize("shared", [0, 512, 2048, 3072])
def test_ttft_is_the_prefill_of_the_uncached_part(shared):
    """Prompts of ``shared`` system tokens + 1,024 own tokens, one at a time. The first
    request prefills all of it; every later one only its 1,024 own tokens, reading the
    ``shared`` cached ones in its attention."""
    s = spaced(4, 1024, shared_prefix={"tokens": shared} if shared else None,
               batching=CACHING)
    ttft = run_serving(s).requests.ttft_s
    assert ttft[0] == pytest.approx(_prefill_time(s, shared + 1024, 0), rel=1e-12)
    assert ttft[1:] == pytest.approx([_prefill_time(s, 1024, shared)] * 3, rel=1e-12)


def test_ttft_falls_as_more_of_a_fixed_prompt_is_cached():
    """A 4,096-token prompt of which 0, 1,024, 2,048 or 3,072 tokens are shared: the cached
    requests' TTFT falls with the shared part; the uncached run's does not change."""
    def later_ttft(shared: int, caching: bool) -> float:
        prefix = {"tokens": shared} if shared else None
        s = spaced(3, 4096 - shared, shared_prefix=prefix,
                   batching={"prefix_caching": caching})
        return float(run_serving(s).requests.ttft_s[2])

    cached = [later_ttft(p, True) for p in (0, 1024, 2048, 3072)]
    assert cached == sorted(cached, reverse=True) and cached[-1] < 0.5 * cached[0]
    plain = [later_ttft(p, False) for p in (0, 1024, 3072)]
    assert plain == pytest.approx([plain[0]] * 3, rel=1e-12)


def sessions(turns: int = 3, *, think: float = 2.0, requests: int = 4, **workload):
    return scenario({"arrivals": {"process": "constant", "rate_per_s": 0.5,
                                  "requests": requests},
                     "prompt_tokens": 100, "output_tokens": 50,
                     "sessions": {"turns": turns, "think_time_s": think}, **workload})


def test_each_turn_resends_the_conversation_and_arrives_after_the_think_time():
    """Message 100, answer 50: turn prompts 100, 100 + 50 + 100 = 250, 250 + 50 + 100 = 400;
    requests are numbered session by session; turn k + 1 arrives 2 s after turn k ends."""
    r = run_serving(sessions(requests=4)).requests
    assert r.prompt_tokens.tolist() == [100, 250, 400] * 4
    assert (r.status == "completed").all()
    turn = np.arange(12) % 3
    np.testing.assert_allclose(r.arrival_s[turn > 0] - r.finish_s[turn < 2], 2.0, atol=1e-9)
    np.testing.assert_allclose(r.arrival_s[turn == 0], [0, 2, 4, 6])


def test_a_turn_finds_the_conversation_before_it_cached():
    """Turn 1 leaves 100 + 50 - 1 = 149 computed tokens (the last answer token's K/V is
    never computed): 9 full blocks, 144 tokens, which turn 2 finds. Turn 2 leaves
    250 + 49 = 299: 18 blocks, 288 tokens for turn 3."""
    r = run_serving(sessions(batching=CACHING)).requests
    assert r.cached_tokens.tolist() == [0, 144, 288] * 4


def test_with_a_system_prompt_a_sessions_turns_share_it_across_sessions():
    """A 160-token system prompt (10 blocks): the first turn of every later session finds
    it; turn 2 finds 160 + 149 = 309 -> 19 blocks = 304 tokens."""
    r = run_serving(sessions(batching=CACHING, shared_prefix={"tokens": 160})).requests
    assert r.prompt_tokens.tolist()[:3] == [260, 410, 560]
    assert r.cached_tokens.tolist() == [0, 304, 448] + [160, 304, 448] * 3


def test_a_dropped_turn_ends_its_session():
    """Turns grow by 150 tokens; Llama 3.1 8B takes 131,072. With a 130,900-token system
    prompt, turn 1 (131,000 + 50) fits and turn 2 (131,150) does not: it and turn 3 are
    dropped, and every request is accounted for."""
    out = run_serving(sessions(requests=1, shared_prefix={"tokens": 130_900}))
    assert out.requests.status.tolist() == ["completed", "dropped", "dropped"]
    assert out.result.inference.dropped == 2


def test_cache_aware_routing_keeps_a_sessions_turns_on_one_replica():
    """Four replicas, 12 sessions of 4 turns: cache-aware routing sends every turn where
    the conversation is cached; least-loaded routing scatters them."""
    def replicas_per_session(router: str) -> list[int]:
        s = scenario({"arrivals": {"process": "poisson", "rate_per_s": 4, "requests": 12},
                      "prompt_tokens": 300, "output_tokens": 40, "router": router,
                      "sessions": {"turns": 4, "think_time_s": 0.5}, "batching": CACHING},
                     accelerators=4)
        replica = run_serving(s).requests.replica.reshape(12, 4)
        return [len(set(row.tolist())) for row in replica]

    assert replicas_per_session("cache_aware") == [1] * 12
    assert max(replicas_per_session("least_loaded")) > 1


def test_cache_aware_routing_balances_when_loads_drift_apart():
    """Every request shares one system prompt, so the longest match is always the first
    replica that cached it; with a balance bound of 0 requests any load difference sends
    the request to the least loaded instead, and all 4 replicas serve."""
    s = scenario({"arrivals": {"process": "poisson", "rate_per_s": 40, "requests": 200},
                  "shared_prefix": {"tokens": 2048}, "router": "cache_aware",
                  "router_balance_requests": 0, "batching": CACHING}, accelerators=4)
    assert sorted(set(run_serving(s).requests.replica.tolist())) == [0, 1, 2, 3]


def test_unique_prompts_with_caching_on_run_as_before():
    """Nothing shared and the cache never short of room: caching changes no time."""
    plain = scenario({"arrivals": {"process": "poisson", "rate_per_s": 10, "requests": 200}})
    cached = scenario({"arrivals": {"process": "poisson", "rate_per_s": 10, "requests": 200},
                       "batching": CACHING})
    a, b = run_serving(plain), run_serving(cached)
    assert _records_equal(a.requests, b.requests) == []
    assert a.result.inference.prefix_cache is None
    assert b.result.inference.prefix_cache is not None
    assert b.result.inference.prefix_cache.hit_blocks == 0


@pytest.mark.parametrize("workload", [
    {"shared_prefix": {"tokens": 1500, "share": 0.7}, "batching": {
        **CACHING, "kv_cache_tokens": 14_000, "max_tokens_per_step": 1024}},
    {"sessions": {"turns": 3, "think_time_s": 0.2}, "shared_prefix": {"tokens": 500},
     "arrivals": {"process": "poisson", "rate_per_s": 10, "requests": 80},
     "batching": {**CACHING, "kv_cache_tokens": 20_000}},
], ids=["tight cache", "sessions"])
def test_jumping_agrees_with_single_stepping_with_caching(workload):
    """Preemptions and evictions included (a tight cache): same records either way."""
    s = scenario(workload)
    jumped, stepped = run_serving(s), run_serving(s, jump=False)
    assert _records_equal(jumped.requests, stepped.requests) == []
    m = jumped.result.inference
    assert m.prefix_cache == stepped.result.inference.prefix_cache
    assert m.prefix_cache is not None and m.prefix_cache.evicted_blocks > 0
    assert m.requests + m.dropped == m.arrived


def test_share_of_requests_with_the_system_prompt():
    """share 0.25 of 2,000 requests: about 500 (binomial sd ~19) start with it."""
    s = scenario({"arrivals": {"process": "offline", "requests": 2000},
                  "prompt_tokens": 10, "output_tokens": 1,
                  "shared_prefix": {"tokens": 1000, "share": 0.25}})
    prompts = run_serving(s).requests.prompt_tokens
    assert set(prompts.tolist()) == {10, 1010}
    assert abs(int((prompts == 1010).sum()) - 500) < 80


def test_a_traces_block_hashes_drive_the_cache(tmp_path):
    """Three rows whose 1,024-token prompts have the same two 512-token hash blocks, one row
    with another first block: rows 2 and 3 find (1024 - 1) // 16 = 63 blocks (1,008
    tokens); row 4 shares nothing."""
    path = tmp_path / "hashed.jsonl"
    rows = [(0.0, [7, 8]), (5.0, [7, 8]), (10.0, [7, 8]), (15.0, [9, 8])]
    path.write_text("".join(json.dumps({"arrival_s": t, "prompt_tokens": 1024,
                                        "output_tokens": 3, "hash_ids": ids}) + "\n"
                            for t, ids in rows))
    s = scenario({"arrivals": {"process": "trace", "path": str(path)}, "batching": CACHING})
    assert run_serving(s).requests.cached_tokens.tolist() == [0, 1008, 1008, 0]


def _error(workload: dict, fragment: str) -> None:
    with pytest.raises(InputErrors, match=fragment):
        scenario(workload)


@pytest.mark.parametrize(("workload", "fragment"), [
    ({"router": "cache_aware"}, "router: cache_aware .* set batching.prefix_caching: true"),
    ({"sessions": {"turns": 2}, "arrivals": {"process": "closed", "concurrency": 2,
                                             "requests": 10}},
     "process: closed does not draw"),
    ({"shared_prefix": {"tokens": 10, "share": 0}}, r"share: must be greater than 0"),
    ({"shared_prefix": {"tokens": 10, "share": 1.5}}, r"share: must be at most 1"),
    ({"shared_prefix": {"tokens": 0}}, r"shared_prefix.tokens: must be greater than 0"),
    ({"sessions": {"turns": 0}}, r"sessions.turns: must be greater than 0"),
    ({"sessions": {"turns": 2, "think_time_s": -1}}, r"sessions.think_time_s"),
    ({"sessions": {"turns": 2, "rounds": 3}}, r"sessions.rounds: unknown field"),
    ({"sessions": {"turns": 10_000},
      "arrivals": {"process": "poisson", "rate_per_s": 1, "requests": 1000}},
     "at most 1,000,000 are simulated"),
], ids=["cache_aware without caching", "sessions closed", "share 0", "share > 1", "tokens 0",
        "turns 0", "negative think", "unknown field", "too many requests"])
def test_bad_prefix_fields_are_refused(workload, fragment):
    _error(workload, fragment)


def test_trace_fields_are_checked(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"arrival_s": 0, "prompt_tokens": 5, "output_tokens": 1}\n')
    trace = {"process": "trace", "path": str(path)}
    _error({"arrivals": trace, "sessions": {"turns": 2}}, "process: trace does not draw")
    _error({"arrivals": trace, "shared_prefix": {"tokens": 10}}, "a trace brings its own")
    _error({"arrivals": {**trace, "hash_block_tokens": 100}, "batching": CACHING},
           r"hash_block_tokens \(100\) must be a multiple of batching.kv_block_tokens \(16\)")


def test_bad_hash_ids_name_the_line(tmp_path):
    from simulator.errors import InputError
    path = tmp_path / "t.jsonl"
    path.write_text('{"arrival_s": 0, "prompt_tokens": 5, "output_tokens": 1, '
                    '"hash_ids": [1, -2]}\n')
    s = scenario({"arrivals": {"process": "trace", "path": str(path)}})
    with pytest.raises(InputError, match=r"t\.jsonl:1: hash_ids: \[1, -2\] is not a list"):
        run_serving(s)


def test_cli_refuses_a_bad_prefix_field_with_exit_2():
    result = run_cli("run", "scenarios/llama3.1-8b-h100-serving.yaml", "--set",
                     "workload.router=cache_aware")
    assert_clean_error(result, "set batching.prefix_caching: true")


def test_the_chat_scenario_shows_what_the_cache_saves():
    """docs/serving.md quotes it: 92% of prompt tokens cached, mean TTFT 53 ms -> 14 ms."""
    from simulator.loading import load_scenario
    from tests.conftest import ROOT
    path = ROOT / "scenarios" / "llama3.1-8b-h100-chat-sessions.yaml"
    cached = run_serving(load_scenario(path)).result.inference
    plain = run_serving(load_scenario(path, ["workload.batching.prefix_caching=false",
                                             "workload.router=least_loaded"])).result.inference
    assert cached.prefix_cache is not None and plain.prefix_cache is None
    assert cached.prefix_cache.token_hit_rate == pytest.approx(0.92, abs=0.01)
    assert cached.ttft_s.mean == pytest.approx(0.014, abs=0.001)
    assert plain.ttft_s.mean == pytest.approx(0.053, abs=0.001)


def test_disaggregated_prefill_pool_caches_and_hands_off():
    """One prefill and one decode replica (tp 1 each): the prefill replica caches the
    1,024-token system prompt; each request still hands its whole KV cache to the decode
    replica; single-stepping agrees."""
    s = scenario({"arrivals": {"process": "poisson", "rate_per_s": 4, "requests": 60},
                  "shared_prefix": {"tokens": 1024}, "batching": CACHING,
                  "disaggregation": {"prefill_replicas": 1, "decode_replicas": 1}},
                 accelerators=2)
    jumped, stepped = run_serving(s), run_serving(s, jump=False)
    assert _records_equal(jumped.requests, stepped.requests) == []
    r = jumped.requests
    assert (r.status == "completed").all() and (r.decode_replica == 1).all()
    assert (r.cached_tokens[1:] == 1024).mean() > 0.9


def test_warmup_may_count_every_turn_of_the_sessions():
    """4 sessions of 3 turns are 12 requests: a warm-up of 10 leaves 2 to measure."""
    s = sessions(requests=4, warmup_requests=10)
    assert run_serving(s).result.inference.requests == 12
    with pytest.raises(InputErrors, match="must be fewer than the requests that arrive"):
        sessions(requests=4, warmup_requests=12)


def test_the_mooncake_excerpt_is_read_as_published_and_its_hashes_shared():
    """Mooncake rows: timestamp in ms, input/output lengths, hash ids of 512-token blocks.
    Every row's first block is id 0: once a row has finished its prefill, the later rows
    find that block, (512 / 16) = 32 KV blocks = 512 tokens, and nothing more (the other
    ids differ). Six rows arrive at t = 0. The first iteration's 8,192-token budget takes
    row 0 whole (6,758) and row 1's first 1,434 tokens: neither finds anything. Row 0's
    blocks are published when that iteration ends, so row 2, admitted in the second, and
    every row after it find the 512 tokens."""
    from tests.conftest import ROOT
    path = ROOT / "scenarios" / "traces" / "mooncake-conversation-head.jsonl"
    s = scenario({"arrivals": {"process": "trace", "path": str(path)}, "batching": CACHING})
    r = run_serving(s).requests
    assert r.arrival_s.tolist()[6:] == [3.0, 3.0, 3.0, 5.999, 5.999, 9.0]
    assert r.prompt_tokens.tolist()[:2] == [6758, 7322]
    assert r.cached_tokens.tolist() == [0, 0] + [512] * 10


def test_a_bad_mooncake_timestamp_names_its_field(tmp_path):
    from simulator.errors import InputError
    path = tmp_path / "m.jsonl"
    path.write_text('{"timestamp": "soon", "input_length": 5, "output_length": 1}\n')
    s = scenario({"arrivals": {"process": "trace", "path": str(path)}})
    with pytest.raises(InputError, match=r"m\.jsonl:1: timestamp: 'soon' is not a number "
                                         r"of milliseconds"):
        run_serving(s)


def test_a_system_prompt_beyond_the_context_is_refused():
    """Llama 3.1 8B: 131,072 tokens. 0.5 x 262,000 + 600 + 120 on average is beyond."""
    _error({"shared_prefix": {"tokens": 262_000, "share": 0.5}},
           r"shared_prefix \+ prompt_tokens \+ output_tokens = 131,\d+ on average, beyond")
