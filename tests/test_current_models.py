"""Today's open models (issue 18 item 4): each profile carries its config.json's shapes, its
parameter count is derived here by hand from them and agrees with the count its authors
publish, and DeepSeek-R1 is an alias of DeepSeek-V3's architecture, not a copy."""

from __future__ import annotations

import pytest

from simulator.errors import InputError, InputErrors
from simulator.profiles.catalog import load_model
from simulator.profiles.params import count_params
from tests.conftest import assert_clean_error, run_cli

# config.json values (Hugging Face, the URLs in each profile's `source`)
CONFIGS = {
    "qwen3-235b-a22b": dict(layers=94, hidden_size=4096, attention_heads=64, kv_heads=4,
                            head_dim=128, vocab_size=151936, max_seq_len=40960,
                            experts=128, active_experts=8, expert_ffn_size=1536),
    "qwen3-30b-a3b": dict(layers=48, hidden_size=2048, attention_heads=32, kv_heads=4,
                          head_dim=128, vocab_size=151936, max_seq_len=40960,
                          experts=128, active_experts=8, expert_ffn_size=768),
    "gpt-oss-120b": dict(layers=36, hidden_size=2880, attention_heads=64, kv_heads=8,
                         head_dim=64, vocab_size=201088, max_seq_len=131072,
                         experts=128, active_experts=4, expert_ffn_size=2880),
    "gpt-oss-20b": dict(layers=24, hidden_size=2880, attention_heads=64, kv_heads=8,
                        head_dim=64, vocab_size=201088, max_seq_len=131072,
                        experts=32, active_experts=4, expert_ffn_size=2880),
    "mixtral-8x22b": dict(layers=56, hidden_size=6144, attention_heads=48, kv_heads=8,
                          head_dim=128, vocab_size=32768, max_seq_len=65536,
                          experts=8, active_experts=2, expert_ffn_size=16384),
}
MOE_FIELDS = ("experts", "active_experts", "expert_ffn_size")


def _by_hand(c: dict, *, bias: bool) -> tuple[float, float, float]:
    """(total, active, embedding table) from the shapes: GQA attention h·a·d (Q) + 2·h·k·d (K, V)
    + a·d·h (O); a SwiGLU expert 3·h·f; a router h·E; two RMSNorms a layer and a final one;
    untied embedding and head V·h each. With biases (gpt-oss): a·d + 2·k·d + h on attention,
    2·f + h on an expert."""
    h, a, k, d = c["hidden_size"], c["attention_heads"], c["kv_heads"], c["head_dim"]
    e, f = c["experts"], c["expert_ffn_size"]
    attention = 2 * h * a * d + 2 * h * k * d + ((a * d + 2 * k * d + h) if bias else 0)
    expert = 3 * h * f + ((2 * f + h) if bias else 0)
    layer_all = attention + e * expert + h * e + 2 * h
    layer_active = attention + c["active_experts"] * expert + h * e + 2 * h
    table = c["vocab_size"] * h
    rest = 2 * table + h
    return c["layers"] * layer_all + rest, c["layers"] * layer_active + rest, table


@pytest.mark.parametrize("model_id", sorted(CONFIGS))
def test_profile_holds_the_published_config(model_id):
    m = load_model(model_id)
    c = CONFIGS[model_id]
    for name, value in c.items():
        actual = getattr(m.moe, name) if name in MOE_FIELDS else getattr(m, name)
        assert actual == value, f"{model_id}.{name}"
    assert m.moe is not None and m.moe.shared_experts == 0 and m.dense_layers == 0
    assert m.source.startswith("https://huggingface.co/")


@pytest.mark.parametrize("model_id", sorted(CONFIGS))
def test_parameter_count_is_the_hand_derived_one_and_the_published_one(model_id):
    m = load_model(model_id)
    total, active, table = _by_hand(CONFIGS[model_id], bias=m.linear_bias)
    assert m.params_total == pytest.approx(total, rel=1e-12)
    assert m.params_active == pytest.approx(active, rel=1e-12)
    assert m.published_params is not None and m.published_params.active is not None
    published_active = m.published_params.active.value
    if model_id.startswith("gpt-oss"):
        active -= table  # OpenAI's active count leaves out the embedding table (profile note)
    assert total == pytest.approx(m.published_params.total.value, rel=0.01)
    assert active == pytest.approx(published_active, rel=0.02)


def test_gpt_oss_120b_matches_the_model_card_to_the_published_digits():
    """Model card table 1: 116.83B total, 5.13B active (published with two decimals)."""
    total, active, table = _by_hand(CONFIGS["gpt-oss-120b"], bias=True)
    assert round(total / 1e9, 2) == 116.83
    assert round((active - table) / 1e9, 2) == 5.13


def test_deepseek_r1_is_v3s_architecture_under_its_own_name():
    r1, v3 = load_model("deepseek-r1"), load_model("deepseek-v3")
    identity = {"id", "name", "description", "source", "alias_of", "published_params"}
    assert r1.model_dump(exclude=identity) == v3.model_dump(exclude=identity)
    assert (r1.id, r1.alias_of, v3.alias_of) == ("deepseek-r1", "deepseek-v3", None)
    assert "DeepSeek-R1" in r1.source
    assert r1.params_total == v3.params_total  # 671.0B (test_validation_models checks V3)


def _alias_file(tmp_path, body: str):
    path = tmp_path / "alias.yaml"
    path.write_text("id: my-r1\nname: My R1\nsource: https://example.org/config.json\n" + body)
    return path


def test_alias_refuses_architecture_fields(tmp_path):
    path = _alias_file(tmp_path, "alias_of: deepseek-v3\nlayers: 60\n")
    with pytest.raises(InputErrors, match=r"alias\.yaml:5: layers: unknown field 'layers'; "
                                          r"allowed: id, name, description, source, alias_of"):
        load_model(path)


def test_alias_of_an_unknown_profile_names_the_field(tmp_path):
    path = _alias_file(tmp_path, "alias_of: deepseek-v9\n")
    with pytest.raises(InputError, match=r"alias\.yaml:4: alias_of: unknown model "
                                         r"'deepseek-v9'; did you mean deepseek-v3"):
        load_model(path)


def test_alias_of_an_alias_is_refused(tmp_path):
    path = _alias_file(tmp_path, "alias_of: deepseek-r1\n")
    with pytest.raises(InputError, match="'deepseek-r1' is itself an alias of 'deepseek-v3'"):
        load_model(path)


def test_alias_base_may_be_a_path_next_to_it(tmp_path):
    (tmp_path / "base.yaml").write_text(
        load_model("deepseek-v3").model_dump_json(exclude={"alias_of"}))
    path = _alias_file(tmp_path, "alias_of: base.yaml\n")
    m = load_model(path)
    assert (m.id, m.alias_of, m.layers) == ("my-r1", "deepseek-v3", 61)


def test_models_list_shows_todays_models():
    listed = {m["id"]: m for m in run_cli("models", "list", "--format", "json").json()}
    for model_id in [*CONFIGS, "deepseek-r1"]:
        assert model_id in listed
    assert listed["deepseek-r1"]["alias_of"] == "deepseek-v3"
    table = run_cli("models", "list").out
    assert "gpt-oss-120b" in table and "qwen3-235b-a22b" in table


def test_cli_alias_error_exits_2(tmp_path):
    path = _alias_file(tmp_path, "alias_of: deepseek-v3\nhidden_size: 1\n")
    assert_clean_error(run_cli("models", "show", str(path)), "hidden_size: unknown field")


def test_count_params_embedding_is_the_table():
    """The embedding component the gpt-oss comparison subtracts is V·h."""
    assert count_params(load_model("gpt-oss-20b")).embedding == 201088 * 2880
