"""model profiles' ``local_attention``: the shipped profiles' layer kinds, and bad input as one
line naming the file and field path, exit 2."""

from __future__ import annotations

import pytest

from simulator import load_model
from tests.conftest import ROOT, assert_clean_error, run_cli

GPT_OSS = (ROOT / "model_profiles" / "gpt-oss-20b.yaml").read_text()


def test_gpt_oss_alternates_sliding_and_full_layers():
    model = load_model("gpt-oss-20b")
    local = model.local_attention
    assert local is not None and local.kind == "sliding" and local.window == 128
    assert [local.is_local(i) for i in range(4)] == [True, False, True, False]
    assert model.local_layers == 12  # of 24
    assert load_model("gpt-oss-120b").local_layers == 18  # of 36


@pytest.mark.parametrize("name", ["llama4-scout", "llama4-maverick"])
def test_llama4_is_chunked_on_three_of_four_layers(name):
    model = load_model(name)
    local = model.local_attention
    assert local is not None and local.kind == "chunked" and local.window == 8192
    # every 4th layer (3, 7, ..., 47) is global, without RoPE
    assert [i for i in range(model.layers) if not local.is_local(i)] == list(range(3, 48, 4))
    assert model.local_layers == 36


def test_models_without_the_field_keep_full_attention():
    assert load_model("llama3.1-8b").local_attention is None
    assert load_model("llama3.1-8b").local_layers == 0


@pytest.mark.parametrize(("old", "new", "fragments"), [
    ("pattern: [local, full]", "pattern: [full, full]",
     ("local_attention.pattern", "has no 'local' layer")),
    ("pattern: [local, full]", "pattern: [local, sliding]",
     ("local_attention.pattern[1]", "must be one of 'local' or 'full'", "'sliding'")),
    ("kind: sliding", "kind: window",
     ("local_attention.kind", "must be one of 'sliding' or 'chunked'")),
    ("window: 128", "window: 0", ("local_attention.window", "greater than 0")),
    ("window: 128", "window: 128 tokens", ("local_attention.window",)),
    ("pattern: [local, full]", "pattern: []", ("local_attention.pattern",)),
    ("pattern: [local, full]", "pattern: [" + ", ".join(["local"] * 25) + "]",
     ("local_attention.pattern has 25 entries, more than the 24 layers",)),
    ("  pattern: [local, full]\n", "  pattern: [local, full]\n  windows: 3\n",
     ("local_attention", "windows")),
])
def test_bad_local_attention_is_one_clean_line(tmp_path, old, new, fragments):
    assert old in GPT_OSS
    path = tmp_path / "m.yaml"
    path.write_text(GPT_OSS.replace(old, new, 1))
    assert_clean_error(run_cli("validate", str(path)), str(path), *fragments)


def test_a_missing_source_is_refused(tmp_path):
    path = tmp_path / "m.yaml"
    lines = [ln for ln in GPT_OSS.splitlines(keepends=True)
             if not ln.startswith('  source: "https://huggingface.co/openai/gpt-oss-20b/blob')]
    path.write_text("".join(lines))
    assert_clean_error(run_cli("validate", str(path)), str(path), "local_attention.source")
