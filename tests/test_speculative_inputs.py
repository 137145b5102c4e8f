"""workload.speculative: bad input is one message naming the field, exit 2; the shipped
scenario runs and reports its tokens per step."""

from __future__ import annotations

import json

import pytest

from simulator.errors import InputErrors
from tests.conftest import ROOT, assert_clean_error, run_cli
from tests.engine.test_serving_engine import scenario

SCENARIO = ROOT / "scenarios" / "llama3.1-70b-h100-speculative.yaml"
GOOD = {"method": "draft_model", "draft_model": "llama3.1-8b", "draft_tokens": 4,
        "acceptance": 0.8}


@pytest.mark.parametrize(("change", "model", "fragments"), [
    ({"draft_tokens": 0}, "llama3.1-70b",
     ("workload.speculative.draft_tokens", "at least 1")),
    ({"draft_tokens": 17}, "llama3.1-70b",
     ("workload.speculative.draft_tokens", "at most 16")),
    ({"acceptance": 1.0}, "llama3.1-70b", ("workload.speculative.acceptance", "less than 1")),
    ({"acceptance": -0.1}, "llama3.1-70b",
     ("workload.speculative.acceptance", "at least 0")),
    ({"acceptance": [0.8, 0.7]}, "llama3.1-70b",
     ("workload.speculative", "acceptance lists 2 positions but draft_tokens is 4")),
    ({"acceptance": [0.8, 0.7, 1.5, 0.2]}, "llama3.1-70b", ("workload.speculative.acceptance",)),
    ({"acceptance": True}, "llama3.1-70b", ("workload.speculative.acceptance",)),
    ({"draft_model": "llama3.1-9b"}, "llama3.1-70b",
     ("workload.speculative.draft_model", "unknown model 'llama3.1-9b'", "llama3.1-8b")),
    ({"draft_model": None}, "llama3.1-70b",
     ("workload.speculative", "method draft_model needs draft_model")),
    ({"method": "eagle"}, "llama3.1-70b",
     ("workload.speculative", "draft_model is only for method draft_model")),
    ({"method": "eagle", "draft_model": None, "acceptance": None}, "llama3.1-70b",
     ("workload.speculative", "method eagle needs acceptance")),
    ({"method": "mtp", "draft_model": None}, "llama3.1-70b",
     ("workload.speculative.method", "llama3.1-70b has no multi-token-prediction modules")),
    ({"method": "medusa"}, "llama3.1-70b", ("workload.speculative.method",)),
    ({"draft_model": "llama2-70b"}, "llama3.1-70b",
     ("workload.speculative.draft_model", "vocabulary of 32,000 tokens", "128,256")),
    ({"draft_model": "llama3.1-8b"}, "llama3.1-405b",
     ("workload.speculative.draft_model", "tp=64", "32 attention heads")),
    ({"speed": 2}, "llama3.1-70b", ("workload.speculative.speed",)),
])
def test_a_bad_speculative_block_names_the_field(change, model, fragments):
    spec = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    tp = 64 if model == "llama3.1-405b" else 8
    with pytest.raises(InputErrors) as err:
        scenario({"speculative": spec, "parallelism": {"tp": tp}}, model=model,
                 accelerators=tp)
    text = str(err.value)
    for fragment in fragments:
        assert fragment in text, text


def test_the_cli_refuses_a_bad_acceptance_with_exit_2():
    result = run_cli("run", str(SCENARIO), "--set", "workload.speculative.acceptance=1.2")
    assert_clean_error(result, "workload.speculative.acceptance", "less than 1")


def test_the_shipped_scenario_reports_tokens_per_step():
    result = run_cli("run", str(SCENARIO), "--format", "json")
    assert result.code == 0, result.err
    spec = json.loads(result.out)["inference"]["speculative"]
    assert spec["method"] == "draft_model" and spec["draft_model"] == "llama3.1-8b"
    assert spec["expected_tokens_per_step"] == pytest.approx((1 - 0.8 ** 5) / 0.2)
    assert spec["tokens_per_step"] == pytest.approx(spec["expected_tokens_per_step"], abs=0.1)
