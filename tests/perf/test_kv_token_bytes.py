"""The KV cache a token of context takes on a device, by the one rule the serving engine and
the layout search of ``xpusim compare`` share (simulator/perf/kv_token_bytes.py)."""

from __future__ import annotations

import pytest
import yaml

from simulator.engine.serving.kv_cache import kv_capacity
from simulator.loading import load_scenario
from simulator.perf.footprint import inference_footprint
from simulator.perf.kv_token_bytes import kv_bytes_per_context_token, kv_tokens_held
from simulator.profiles.catalog import load_hardware
from simulator.profiles.overrides import apply_overrides
from simulator.studies.compare_layout import inference_layout
from tests.conftest import ROOT

SERVING_70B = ROOT / "scenarios" / "llama3.1-70b-h100-serving.yaml"
SPECULATIVE = ROOT / "scenarios" / "llama3.1-70b-h100-speculative.yaml"
# a request of 19,000 prompt and 2,000 output tokens holds 19,000 + 2,000 / 2 = 20,000 tokens
# on average over its life: the context the engine takes the layer average kept at
LIFE_20K = ["workload.prompt_tokens=19000", "workload.output_tokens=2000",
            "workload.precision=bf16", "workload.parallelism.tp=1"]


def test_a_llama4_scout_sequence_keeps_its_whole_context_on_every_layer():
    """Llama 4 Scout, 48 layers of 8 KV heads of 128, bf16: K and V of a token are
    2 x 8 x 128 x 2 B = 4,096 B a layer, 196,608 B over the 48. Its 12 full layers keep all
    20,000 tokens, and so do its 36 chunked layers: no chunk is freed (vLLM 0.9.2 gives a
    chunked layer a FullAttentionSpec, simulator/perf/local_attention.py), so 20,000 x
    196,608 = 3,932,160,000 B. A cache that kept only the current 8,192-token chunk would
    hold (12 x 20,000 + 36 x 8,192) x 4,096 = 2,190,999,552 B; the engine does not."""
    scout = load_scenario(SERVING_70B, ["model=llama4-scout", *LIFE_20K])
    per_token = kv_bytes_per_context_token(scout, tp=1, pp=1)
    assert per_token == 196_608
    assert 20_000 * per_token == 3_932_160_000
    assert kv_bytes_per_context_token(scout, tp=4, pp=1) == 196_608 / 4  # 2 KV heads a device


def test_a_gpt_oss_sequence_keeps_the_window_on_its_sliding_layers():
    """gpt-oss-120b, 36 layers of 8 KV heads of 64, bf16: 2 x 8 x 64 x 2 B = 2,048 B a layer
    and token. Its 18 full layers keep all 20,000 tokens, its 18 sliding layers the last 128:
    (18 x 20,000 + 18 x 128) x 2,048 = 362,304 x 2,048 = 741,998,592 B, against
    36 x 20,000 x 2,048 = 1,474,560,000 B at full context."""
    oss = load_scenario(SERVING_70B, ["model=gpt-oss-120b", *LIFE_20K])
    per_token = kv_bytes_per_context_token(oss, tp=1, pp=1)
    assert 20_000 * per_token == pytest.approx(741_998_592)
    assert kv_tokens_held(oss, 741_998_592 * 3, tp=1, pp=1) == pytest.approx(60_000)
    assert kv_tokens_held(oss, -1.0, tp=1, pp=1) == 0.0  # no room is no tokens
    assert kv_tokens_held(oss, 741_998_592, tp=1, pp=1, attention_dp=4) == pytest.approx(80_000)


@pytest.mark.parametrize("path,overrides", [
    (SERVING_70B, ["model=gpt-oss-120b", "workload.parallelism.tp=4"]),
    (SPECULATIVE, []),  # a drafter's K and V on every cached token
])
def test_the_serving_engine_sizes_its_cache_by_the_shared_rule(path, overrides):
    scenario = load_scenario(path, overrides)
    par = scenario.workload.parallelism
    capacity = kv_capacity(scenario, par)
    assert capacity.bytes_per_token == kv_bytes_per_context_token(scenario, tp=par.tp, pp=par.pp)
    headroom = inference_footprint(scenario, tp=par.tp, pp=par.pp).headroom
    tokens = kv_tokens_held(scenario, headroom, tp=par.tp, pp=par.pp)
    assert capacity.blocks == int(tokens // capacity.block_tokens)


def test_the_layout_search_counts_gpt_oss_tokens_as_the_engine_does():
    """gpt-oss-120b in bf16 on 8 x H100, a batch of 512 requests of about 2,000 + 300
    tokens: 512 x 2,300 = 1,177,600 tokens. At tp4 a device keeps 2 KV heads, 18,432 B a
    token at full context, and a mean request over its life (2,000 + 300 / 2 = 2,150 tokens)
    keeps (18 x 2,150 + 18 x 128) / (36 x 2,150) = 2,278 / 4,300 of it: 9,764.7 B. The
    device's ~15.2 GB of headroom holds ~1.56 M tokens, a full batch, so tp4 is the smallest
    layout; counted at full context it held ~0.82 M and the search took tp8."""
    overrides = ["model=gpt-oss-120b", "workload.parallelism.tp=4",
                 "workload.batching.max_batch_size=512"]
    data = apply_overrides(yaml.safe_load(SERVING_70B.read_text()), overrides)
    hw = load_hardware("h100-sxm")
    chosen, notes = inference_layout(data, SERVING_70B.parent, hw, 8, "count", 8)
    par = chosen["workload"]["parallelism"]
    assert (par["tp"], par["pp"], chosen["workload"]["replicas"]) == (4, 1, 2)
    probe = load_scenario(SERVING_70B, overrides)
    per_token = 2 * 2 * 64 * 36 * 2 * 2278 / 4300
    assert kv_bytes_per_context_token(probe, tp=4, pp=1) == pytest.approx(per_token)
    headroom = inference_footprint(probe, tp=4, pp=1).headroom
    assert f"KV cache ({headroom / per_token:,.0f} tokens) holds a full batch" in notes[0]
    assert headroom / per_token > 512 * 2300 > headroom / (per_token * 4300 / 2278)


@pytest.mark.parametrize("path,overrides", [
    (SERVING_70B, ["model=gpt-oss-120b", "workload.parallelism.tp=4"]),  # sliding layers
    (SPECULATIVE, []),  # a drafter's K and V
])
def test_the_footprint_note_states_the_engines_room(path, overrides):
    """``xpusim footprint``'s "room for N tokens" is the engine's count before whole blocks:
    the same rule (kv_tokens_held), not a copy of it, so the two cannot drift apart."""
    scenario = load_scenario(path, overrides)
    par = scenario.workload.parallelism
    footprint = inference_footprint(scenario, tp=par.tp, pp=par.pp)
    tokens = kv_tokens_held(scenario, footprint.headroom, tp=par.tp, pp=par.pp)
    capacity = kv_capacity(scenario, par)
    assert capacity.blocks == int(tokens // capacity.block_tokens)
    assert f"room for {tokens:,.0f} tokens of KV cache per replica" in footprint.notes
