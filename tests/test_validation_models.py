"""The model profiles the validation cases use agree with the architectures the published
cases list (shared/calibration/public_cases_2.yaml ``models:``) and with the published sizes."""

from __future__ import annotations

import pytest
import yaml

from simulator.profiles.catalog import load_model
from tests.conftest import ROOT

PUBLIC_CASES_2 = ROOT.parent / "shared" / "calibration" / "public_cases_2.yaml"
# public_cases_2 model key -> built-in profile
PROFILES = {"llama3_8b": "llama3.1-8b", "llama3_70b": "llama3.1-70b",
            "llama2_70b": "llama2-70b", "deepseek_v3": "deepseek-v3",
            "mixtral_8x7b": "mixtral-8x7b", "llama4_maverick": "llama4-maverick",
            "llama4_scout": "llama4-scout"}


def _published_models() -> dict:
    return yaml.safe_load(PUBLIC_CASES_2.read_text())["models"]


def _expected(spec: dict) -> dict:
    """The architecture fields of a public_cases_2 model, in profile terms."""
    moe = spec.get("moe") or {}
    out = {"layers": spec["layers"], "hidden_size": spec["hidden"],
           "attention_heads": spec["heads"], "vocab_size": spec["vocab"]}
    if "kv_heads" in spec:
        out["kv_heads"] = spec["kv_heads"]
    if "head_dim" in spec:
        out["head_dim"] = spec["head_dim"]
    ffn = spec.get("ffn") or spec.get("dense_ffn")
    if ffn:
        out["ffn_size"] = ffn
    if moe:
        out.update({"moe.experts": moe["routed_experts"],
                    "moe.shared_experts": moe["shared_experts"],
                    "moe.active_experts": moe["active_routed"],
                    "moe.expert_ffn_size": moe["expert_ffn"]})
    return out


def _actual(model, key: str):
    node = model
    for part in key.split("."):
        node = getattr(node, part)
    return node


@pytest.mark.skipif(not PUBLIC_CASES_2.exists(), reason="shared/calibration is not checked out")
@pytest.mark.parametrize("key", sorted(PROFILES))
def test_profile_matches_the_published_architecture_and_size(key):
    spec = _published_models()[key]
    model = load_model(PROFILES[key])
    for field, value in _expected(spec).items():
        assert _actual(model, field) == value, f"{PROFILES[key]}.{field}"
    total = spec.get("params_total", spec.get("params"))
    assert model.params_total == pytest.approx(total, rel=0.02)
    if "params_active" in spec:
        assert model.params_active == pytest.approx(spec["params_active"], rel=0.02)


def test_maverick_alternates_dense_and_moe_layers_as_published():
    """interleave_moe_layer_step 2: layers 1, 3, ..., 47 have experts (Hugging Face's
    ``range(step - 1, layers, step)``), the even ones a dense FFN of 16,384."""
    m = load_model("llama4-maverick")
    assert [i for i in range(m.layers) if m.is_moe_layer(i)] == list(range(1, 48, 2))
    h = 5120
    attention = h * 40 * 128 * 2 + 2 * h * 8 * 128
    expert, dense = 3 * h * 8192, 3 * h * 16384
    embeddings = 2 * 202048 * h
    norms = (2 * 48 + 1) * h
    moe_layer = 129 * expert + h * 128  # routed + shared experts, and the router
    total = embeddings + 48 * attention + 24 * dense + 24 * moe_layer + norms
    active = embeddings + 48 * attention + 24 * dense + 24 * (2 * expert + h * 128) + norms
    assert m.params_total == pytest.approx(total)
    assert m.params_active == pytest.approx(active)


def test_scout_is_moe_on_every_layer():
    m = load_model("llama4-scout")
    assert m.moe_layers == 48 and m.dense_layers == 0


# MaxText's synthetic TPU benchmark models (validation cases T90): configs/base.yml's dims
# (emb 2,048, 16 query and 16 KV heads, MLP 7,168, 16 layers; read in maxtext 0.2.5) scaled by
# powers of two from configs/types.py:get_individual_scales(scale): log2(scale) = 3q + r,
# heads and MLP scale by 2^(q + (r > 0)), embedding by 2^(q + (r > 1)), layers by 2^q.
#   16 = 2^4: q 1, r 1 -> emb 2x, heads/MLP 4x, layers 2x
#   32 = 2^5: q 1, r 2 -> emb 4x, heads/MLP 4x, layers 2x
#   64 = 2^6: q 2, r 0 -> emb 4x, heads/MLP 4x, layers 4x
#  128 = 2^7: q 2, r 1 -> emb 4x, heads/MLP 8x, layers 4x
#  256 = 2^8: q 2, r 2 -> emb 8x, heads/MLP 8x, layers 4x
#  512 = 2^9: q 3, r 0 -> emb 8x, heads/MLP 8x, layers 8x
# 1024 = 2^10: q 3, r 1 -> emb 8x, heads/MLP 16x, layers 8x
MAXTEXT_BASE = {  # scale: (layers, hidden, heads, mlp)
    16: (32, 4096, 64, 28672),
    32: (32, 8192, 64, 28672),
    64: (64, 8192, 64, 28672),
    128: (64, 8192, 128, 57344),
    256: (64, 16384, 128, 57344),
    512: (128, 16384, 128, 57344),
    1024: (128, 16384, 256, 114688),
}


@pytest.mark.parametrize("scale", sorted(MAXTEXT_BASE))
def test_maxtext_base_models_are_base_yml_times_the_global_parameter_scale(scale):
    layers, hidden, heads, mlp = MAXTEXT_BASE[scale]
    m = load_model(f"maxtext-base-{scale}b")
    assert (m.layers, m.hidden_size, m.attention_heads, m.kv_heads, m.head_dim, m.ffn_size,
            m.vocab_size) == (layers, hidden, heads, heads, 128, mlp, 32000)
    assert not m.tied_embeddings  # logits_via_embedding: false
    attention = 4 * hidden * heads * 128  # Q, K, V and output, MHA
    norms = (2 * layers + 1) * hidden
    expected = 2 * 32000 * hidden + layers * (attention + 3 * hidden * mlp) + norms
    assert m.params_total == expected
    # the scale's label is the size within 3% (125.1B for "128B", 997.5B for "1024B")
    assert m.params_total == pytest.approx(scale * 1e9, rel=0.03)
