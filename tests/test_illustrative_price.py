"""Issue 17 item 11: the custom-ASIC template's example prices ($2/h, $25,000) are marked
``price.illustrative: true``, and any run priced with them says so."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from simulator.loading import load_scenario
from simulator.simulate import simulate
from tests.conftest import assert_clean_error, run_cli

ROOT = Path(__file__).resolve().parent.parent
SERVING = ROOT / "scenarios" / "llama3.1-8b-h100-serving.yaml"
SMALL = "workload.arrivals.requests=40"
ASIC = "hardware=custom-asic-example"


def _warnings(*overrides: str) -> list[str]:
    return simulate(load_scenario(SERVING, [SMALL, *overrides])).warnings


def _price(warnings: list[str]) -> list[str]:
    return [w for w in warnings if "illustrative price" in w]


def test_cloud_cost_from_the_template_price_warns():
    (warning,) = _price(_warnings(ASIC))
    assert "custom-asic-example's illustrative price $2.00/h per device" in warning
    assert "cost.cloud_usd_per_hour" in warning


def test_owned_cost_from_the_template_purchase_price_warns():
    (warning,) = _price(_warnings(ASIC, "cost.mode=owned"))
    assert "illustrative price $25,000 per device" in warning
    assert "cost.purchase_usd_per_accelerator" in warning


def test_a_price_of_ones_own_silences_it():
    assert _price(_warnings(ASIC, "cost.cloud_usd_per_hour=3.1")) == []
    assert _price(_warnings(ASIC, "cost.mode=owned",
                            "cost.purchase_usd_per_accelerator=30000")) == []


def test_quoted_prices_do_not_warn():
    assert _price(_warnings()) == []  # h100-sxm: a quote with provider and date


def test_the_terminal_shows_it():
    result = run_cli("run", str(SERVING), "--set", ASIC, "--set", SMALL)
    assert result.code == 0, result.err
    assert "warning: cost uses custom-asic-example's illustrative price" in result.out


def test_a_bad_illustrative_flag_is_one_clear_error(tmp_path):
    profile = yaml.safe_load((ROOT / "hardware_profiles" / "custom-asic-example.yaml")
                             .read_text())
    profile["price"]["illustrative"] = "maybe"
    path = tmp_path / "chip.yaml"
    path.write_text(yaml.safe_dump(profile))
    assert_clean_error(run_cli("validate", str(path)), "price.illustrative")


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "hardware_profiles")
                                        .glob("*.yaml")))
def test_only_the_template_is_illustrative(name):
    profile = yaml.safe_load((ROOT / "hardware_profiles" / name).read_text())
    assert profile["price"].get("illustrative", False) is (name == "custom-asic-example.yaml")
