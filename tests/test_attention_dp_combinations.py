"""Speculative decoding and prefix caching are refused with attention DP: each DP rank would
draft, verify and cache on its own, which the engine does not model (one scheduler per
replica), so the combination is an input error, not a silently wrong price."""

from __future__ import annotations

from tests.conftest import assert_clean_error, run_cli

WIDE_EP = "scenarios/deepseek-v3-gb200-nvl72-wide-ep.yaml"


def test_prefix_caching_with_attention_dp_is_refused():
    assert_clean_error(run_cli("run", WIDE_EP, "--set", "workload.batching.prefix_caching=true"),
                       "workload.batching.prefix_caching",
                       "prefix caching with attention_dp=", "is not modelled")


def test_speculative_decoding_with_attention_dp_is_refused():
    assert_clean_error(run_cli("run", WIDE_EP, "--set",
                               "workload.speculative={method: mtp, draft_tokens: 1}"),
                       "workload.speculative",
                       "speculative decoding with attention_dp=", "is not modelled")
