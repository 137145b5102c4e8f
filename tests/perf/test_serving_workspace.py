"""The activation peak a serving engine sizes its KV cache beside (``sampler_memory``),
against hand arithmetic on Llama 3.1 8B (hidden 4,096, FFN 14,336, vocabulary 128,256)."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator import scenario_from_dict
from simulator.perf.footprint import inference_footprint
from simulator.perf.serving_workspace import iteration_workspace
from simulator.profiles.catalog import load_stack, stack_dir
from simulator.profiles.scenario import Scenario
from tests.conftest import assert_clean_error, run_cli

# the forward's largest live set at 8,192 tokens on TP2: 2 B x 8192 x (4 x 4096 + 2 x 14336/2)
FORWARD_8192_TP2 = 2 * 8192 * (4 * 4096 + 14336)  # 503,316,480 B
HELD_8192 = 2 * 8192 * 4096  # the forward's hidden states, kept while it samples
SAMPLER = ("sampler_memory:\n  gathered_logits: {value: GATHER, source: test}\n"
           "  bytes_per_logit: {value: 28, source: test}\n")


def stack_file(tmp_path: Path, block: str | None) -> Path:
    text = (stack_dir() / "trtllm.yaml").read_text()
    assert "sampler_memory" not in text  # the test adds the block itself
    if block is not None:
        text = text.replace("\nsources:\n", f"\n{block}sources:\n", 1)
    path = tmp_path / "stack.yaml"
    path.write_text(text)
    return path


def scenario(tmp_path: Path, block: str | None, *, batch: int = 256,
             tokens: int = 8192) -> Scenario:
    return scenario_from_dict({
        "name": "t", "hardware": "h100-sxm", "cluster": {"accelerators": 2},
        "model": "llama3.1-8b",
        "workload": {"kind": "inference", "precision": "bf16", "parallelism": {"tp": 2},
                     "arrivals": {"process": "offline", "requests": 1},
                     "engine": str(stack_file(tmp_path, block)),
                     "batching": {"max_batch_size": batch, "max_tokens_per_step": tokens},
                     "prompt_tokens": 1000, "output_tokens": 100},
    })


def workspace(s: Scenario) -> float:
    return iteration_workspace(s.model, s.workload, 2)  # type: ignore[arg-type]


def test_without_a_sampler_the_workspace_is_the_earlier_sum(tmp_path):
    # + fp32 logits of each device's half of the vocabulary: 4 x 256 x 128256 / 2
    expected = FORWARD_8192_TP2 + 4 * 256 * 128256 / 2
    s = scenario(tmp_path, None)
    assert workspace(s) == pytest.approx(expected)  # 568,983,552 B
    assert inference_footprint(s).parts["activations"] == pytest.approx(expected)


def test_gathered_logits_sample_the_whole_vocabulary_on_every_device(tmp_path):
    # 256 sequences x 128,256 entries x 28 B = 919,339,008 B, beside 67,108,864 B of hidden
    # states: 986,447,872 B, more than the forward's 503,316,480 B
    s = scenario(tmp_path, SAMPLER.replace("GATHER", "true"))
    assert workspace(s) == pytest.approx(HELD_8192 + 256 * 128256 * 28)
    assert inference_footprint(s).parts["activations"] == pytest.approx(986_447_872)


def test_a_vocabulary_slice_per_device_halves_the_sampler_on_tp2(tmp_path):
    # 256 x 64,128 x 28 = 459,669,504 B + 67,108,864 B = 526,778,368 B > the forward's
    s = scenario(tmp_path, SAMPLER.replace("GATHER", "false"))
    assert workspace(s) == pytest.approx(526_778_368)


def test_the_profiling_run_samples_at_most_one_sequence_per_token(tmp_path):
    # 1,024 sequences but 512 tokens: 512 rows x 128,256 x 28 = 1,838,678,016 B, plus the
    # hidden states of 512 tokens, 2 x 512 x 4096 = 4,194,304 B
    s = scenario(tmp_path, SAMPLER.replace("GATHER", "true"), batch=1024, tokens=512)
    assert workspace(s) == pytest.approx(1_842_872_320)


def test_the_peak_is_the_forward_when_it_outweighs_the_sampler(tmp_path):
    # one sequence: 128,256 x 28 + 67,108,864 = 70,700,032 B < 503,316,480 B
    s = scenario(tmp_path, SAMPLER.replace("GATHER", "true"), batch=1)
    assert workspace(s) == pytest.approx(FORWARD_8192_TP2)


def test_a_larger_sampler_leaves_a_smaller_kv_cache(tmp_path):
    without = inference_footprint(scenario(tmp_path, None))
    with_sampler = inference_footprint(scenario(tmp_path, SAMPLER.replace("GATHER", "true")))
    shift = 986_447_872 - 568_983_552
    assert without.headroom - with_sampler.headroom == pytest.approx(shift)


@pytest.mark.parametrize(("stack", "bytes_per_logit"), [
    ("vllm-v1", 28),  # 16-bit logits 2, fp32 copy 4, sort 4 + int64 index 8, softmax 4,
                      # two masks 1 + 1, scattered output 4
    ("vllm-0.6", 32),  # 2, fp32 copy 4, sort 4 + 8, mask 1, softmax 4 + cumsum 4, mask 1, out 4
    ("vllm-0.5", 28),  # 16-bit throughout: 2, sort 2 + 8, mask 1, softmax 2 + cumsum 2,
                       # mask 1, inverse index 8, gathered output 2
])
def test_the_shipped_vllm_stacks_state_their_sampler(stack, bytes_per_logit):
    sampler = load_stack(stack).sampler_memory
    assert sampler is not None
    assert sampler.gathered_logits.value is True
    assert sampler.bytes_per_logit.value == bytes_per_logit


def test_the_tensorrt_llm_stacks_do_not_state_one():
    assert load_stack("trtllm").sampler_memory is None  # not readable here


@pytest.mark.parametrize(("block", "field"), [
    (SAMPLER.replace("GATHER", "maybe"), "sampler_memory.gathered_logits.value"),
    (SAMPLER.replace("GATHER", "true").replace("28,", "0,"),
     "sampler_memory.bytes_per_logit.value"),
    (SAMPLER.replace("GATHER", "true").replace("28,", "-4,"),
     "sampler_memory.bytes_per_logit.value"),
    (SAMPLER.replace("GATHER", "true").split("  bytes")[0] + "\n",
     "sampler_memory.bytes_per_logit"),
    (SAMPLER.replace("GATHER", "true").replace("28, source: test", "28"),
     "sampler_memory.bytes_per_logit.source"),
])
def test_a_bad_sampler_memory_block_names_the_file_and_field(tmp_path, block, field):
    path = stack_file(tmp_path, block)
    result = run_cli("stacks", "show", str(path))
    assert_clean_error(result, "stack.yaml", field)
    assert len(result.err.strip().splitlines()) == 1
