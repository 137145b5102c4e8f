"""Every shipped hardware and model profile loads, carries its sources and is self-consistent."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from simulator import hardware_ids, load_hardware, load_model, model_ids
from simulator.profiles.catalog import hardware_dir, model_dir
from simulator.profiles.precision import Precision

REQUIRED_HARDWARE = {
    "a100-sxm", "h100-sxm", "h800-sxm", "h200-sxm", "b200", "gb200-nvl72", "gb300-nvl72",
    "mi300x", "mi325x", "mi355x", "gaudi2", "gaudi3", "tpu-v5e", "tpu-v5p", "tpu-v6e",
    "trainium2", "custom-asic-example",
}
REQUIRED_MODELS = {
    "llama2-70b", "llama3.1-8b", "llama3.1-70b", "llama3.1-405b", "mixtral-8x7b",
    "deepseek-v3", "gpt3-175b", "nemotron4-340b", "megatron-1.7b", "megatron-18b",
    "megatron-22b", "megatron-145b", "megatron-530b", "megatron-1t",
}
# Keys whose values are plain structure, not measured numbers.
STRUCTURAL_NUMBERS = {"torus_dims"}


def test_every_required_profile_ships():
    assert set(hardware_ids()) >= REQUIRED_HARDWARE
    assert set(model_ids()) >= REQUIRED_MODELS


@pytest.mark.parametrize("hw_id", sorted(REQUIRED_HARDWARE))
def test_hardware_profile_is_consistent(hw_id):
    hw = load_hardware(hw_id)
    assert hw.id == hw_id
    assert Precision.BF16 in hw.compute.peak_flops
    if hw.supports("fp8"):
        assert hw.peak("fp8") >= hw.peak("bf16")
    if hw.supports("fp4"):
        assert hw.peak("fp4") >= hw.peak("fp8")
    assert 0 <= hw.power.idle.value < hw.power.tdp.value
    assert set(hw.efficiency.gemm.large) == set(hw.compute.peak_flops)
    for eff in hw.efficiency.gemm.large.values():
        assert 0 < eff.value <= 1
    assert hw.scale_up.bandwidth_one_way <= hw.scale_up.bandwidth_per_device.value
    assert hw.scale_up.bandwidth_one_way > hw.scale_out.bandwidth_one_way, \
        "the scale-up fabric should be faster than scale-out"
    assert hw.memory.capacity.value > 1e9
    assert hw.price.cloud_per_device_hour.provider


def _numbers_without_source(node, path=()):
    """Numeric leaves of a raw profile that are not the `value` of a sourced mapping."""
    if isinstance(node, dict):
        if "value" in node:
            return [] if node.get("source") else [".".join(map(str, path))]
        found = []
        for key, item in node.items():
            if key in STRUCTURAL_NUMBERS or key == "sources":
                continue
            found += _numbers_without_source(item, (*path, key))
        return found
    if isinstance(node, int | float) and not isinstance(node, bool):
        return [".".join(map(str, path))]
    return []


@pytest.mark.parametrize("hw_id", sorted(REQUIRED_HARDWARE))
def test_every_hardware_number_has_a_source(hw_id):
    raw = yaml.safe_load((hardware_dir() / f"{hw_id}.yaml").read_text())
    assert _numbers_without_source(raw) == []


def _sourced(node):
    if isinstance(node, dict):
        if "value" in node and "source" in node:
            yield node
        else:
            for item in node.values():
                yield from _sourced(item)


CITATION = re.compile(r"^([A-Z][A-Za-z0-9-]*(?:/[A-Z][A-Za-z0-9-]*)*)(?: via [A-Z][A-Za-z0-9]*)?:")


@pytest.mark.parametrize("hw_id", sorted(REQUIRED_HARDWARE))
def test_cited_source_ids_resolve_to_urls(hw_id):
    """A source written as 'N2/M1: ...' cites ids that the profile's `sources` map lists."""
    raw = yaml.safe_load((hardware_dir() / f"{hw_id}.yaml").read_text())
    sources = raw.get("sources") or {}
    unresolved = []
    for number in _sourced(raw):
        match = CITATION.match(str(number["source"]))
        if match:
            unresolved += [c for c in match.group(1).split("/") if c not in sources]
    assert unresolved == []
    # a source is a public URL, or a measurement of ours committed in this repository
    repo = Path(__file__).resolve().parents[1]
    assert all(str(url).startswith("http") or (repo / str(url)).is_file()
               for url in sources.values())


def test_published_facts_are_carried_exactly():
    """Spot checks against ../shared/data/hardware_facts.md."""
    h100, h200, h800 = (load_hardware(i) for i in ("h100-sxm", "h200-sxm", "h800-sxm"))
    assert h100.peak("bf16") == pytest.approx(989.4e12)
    assert h100.hbm_bandwidth == pytest.approx(3.35e12)
    assert h200.hbm_capacity == pytest.approx(141e9)
    assert h200.hbm_bandwidth == pytest.approx(4.8e12)
    assert h800.scale_up.bandwidth_one_way < h100.scale_up.bandwidth_one_way
    mi300x = load_hardware("mi300x")
    assert mi300x.hbm_capacity == pytest.approx(192e9)
    assert mi300x.hbm_bandwidth == pytest.approx(5.3e12)
    assert mi300x.scale_up.topology.value == "mesh"
    gb200 = load_hardware("gb200-nvl72")
    assert gb200.scale_up.domain_size.value == 72
    assert load_hardware("tpu-v5p").scale_up.topology.value == "torus"
    assert not load_hardware("gb300-nvl72").supports("int8")
    assert not load_hardware("a100-sxm").supports("fp8")


@pytest.mark.parametrize("model_id", sorted(REQUIRED_MODELS))
def test_parameter_count_matches_publication(model_id):
    model = load_model(model_id)
    assert model.id == model_id
    published = model.published_params
    assert published is not None, "every built-in model records its published size"
    assert model.params_total == pytest.approx(published.total.value, rel=0.02)
    if published.active is not None:
        assert model.params_active == pytest.approx(published.active.value, rel=0.02)


def test_hand_counted_parameters():
    """Llama 3.1 8B by hand: embeddings, GQA attention, SwiGLU FFN, RMSNorms."""
    h, layers, heads, kv, d, f, vocab = 4096, 32, 32, 8, 128, 14336, 128256
    attention = h * heads * d + 2 * h * kv * d + heads * d * h
    ffn = 3 * h * f
    norms = (2 * layers + 1) * h
    expected = 2 * vocab * h + layers * (attention + ffn) + norms
    assert load_model("llama3.1-8b").params_total == expected


def test_moe_active_parameters_use_routed_and_shared_experts():
    m = load_model("deepseek-v3")
    assert m.moe_layers == 58 and m.dense_layers == 3
    assert m.params_active < m.params_total / 10
    mixtral = load_model("mixtral-8x7b")
    expert = 3 * 4096 * 14336
    assert mixtral.params_total - mixtral.params_active == pytest.approx(32 * 6 * expert)


@pytest.mark.parametrize("model_id", sorted(REQUIRED_MODELS))
def test_model_files_are_named_by_id(model_id):
    raw = yaml.safe_load((model_dir() / f"{model_id}.yaml").read_text())
    assert raw["id"] == model_id
