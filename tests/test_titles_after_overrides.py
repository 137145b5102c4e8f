"""Issue 17 item 11: a report's title does not outlive the overrides that made it untrue.

A file titled "... on 1 x H100 ..." run with ``--set hardware=mi300x`` is reported under its
title *with the overrides appended*, in the terminal, the HTML report and the JSON; a
comparison, which lays each profile out anew, is titled by its profiles, not by the
scenario's layout."""

from __future__ import annotations

import json
from pathlib import Path

from simulator.loading import load_scenario, overridden_name
from simulator.report.html import compare_page, run_page
from simulator.simulate import simulate
from simulator.studies.compare import compare
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parent.parent
SERVING = ROOT / "scenarios" / "llama3.1-8b-h100-serving.yaml"
TITLE = "Llama 3.1 8B chat serving on 1 x H100"
SMALL = "workload.arrivals.requests=50"


def test_the_title_names_the_overrides():
    assert overridden_name("T", []) == "T"
    assert overridden_name("T", ["hardware=mi300x", " seed=3"]) == (
        "T, with --set hardware=mi300x, seed=3")
    assert overridden_name("T", ["seed=3", "name=Mine"]) == "T"  # the file's name is set
    long = "workload.prompt_tokens={dist: lognormal, mean: 1000, std: 400, min: 16, max: 8192}"
    shortened = overridden_name("T", [long])
    assert shortened.endswith("...") and len(shortened) == len("T, with --set ") + 60


def test_no_override_keeps_the_file_title_and_name_sets_it():
    assert load_scenario(SERVING).name == TITLE
    assert load_scenario(SERVING, ["name=My run", "seed=2"]).name == "My run"


def test_run_terminal_and_json_carry_the_overrides():
    out = run_cli("run", str(SERVING), "--set", "hardware=mi300x", "--set", SMALL)
    assert out.code == 0, out.err
    first, second = out.out.splitlines()[:2]
    assert first == f"{TITLE}, with --set hardware=mi300x, {SMALL}"
    assert "1 x AMD Instinct MI300X" in second  # the effective scenario, derived
    data = json.loads(run_cli("run", str(SERVING), "--set", "hardware=mi300x", "--set", SMALL,
                              "--format", "json").out)
    assert data["scenario"] == first


def test_html_run_report_title_carries_the_overrides():
    result = simulate(load_scenario(SERVING, ["hardware=mi300x", SMALL]))
    page = run_page(result, [])
    assert f"<title>{TITLE}, with --set hardware=mi300x, {SMALL}</title>" in page
    assert "1 x mi300x" in page


def test_comparison_is_titled_by_its_profiles_not_the_scenario_layout():
    """The 70B file says TP8; compare lays each profile out anew (TP4, TP2, ...)."""
    comparison = compare(ROOT / "scenarios" / "llama3.1-70b-h100-serving.yaml",
                         ["h100-sxm", "mi300x"], overrides=["workload.arrivals.requests=60"])
    data = comparison.as_dict()
    assert data["scenario"].endswith(", with --set workload.arrivals.requests=60")
    page = compare_page(data, [])
    assert "<title>Comparison: h100-sxm, mi300x</title>" in page
    assert "each profile at the layout and count of its own column" in page
    layouts = {row["layout"] for row in data["rows"]}
    # each profile is laid out anew: not every one keeps the scenario's single TP8 replica
    assert layouts - {"1 x tp8 pp1"}, layouts


def test_compare_terminal_title():
    out = run_cli("compare", str(SERVING), "--hardware", "h100-sxm,h200-sxm", "--set", SMALL)
    assert out.code == 0, out.err
    lines = out.out.splitlines()
    assert lines[0] == "Comparison: h100-sxm, h200-sxm"
    assert lines[1].startswith(f"from the scenario '{TITLE}, with --set {SMALL}'; each profile")
