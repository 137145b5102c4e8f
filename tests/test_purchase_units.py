"""Whole servers and racks (issue 17 items 3, 4, 10): purchase units, whole-unit billing, the
billing warnings, `cluster.accelerators: auto`, sweeps that bill what a point uses, and
`compare` at each profile's best within the SLO. Through the CLI where a user would go."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml

from simulator.cli import main as cli_main
from simulator.economics.fleet import Billing, units_for_jobs
from simulator.loading import load_scenario
from simulator.profiles.catalog import load_hardware
from simulator.simulate import simulate
from simulator.studies.capacity import arrival_window_s, at_rate, judged_rate
from tests.conftest import ROOT

SERVING_8B = ROOT / "scenarios" / "llama3.1-8b-h100-serving.yaml"
SERVING_70B = ROOT / "scenarios" / "llama3.1-70b-h100-serving.yaml"
TRAINING_8B = ROOT / "scenarios" / "llama3.1-8b-h100-training.yaml"
GB200_TRAINING = ROOT / "scenarios" / "gpt3-175b-gb200-training.yaml"
H100_PRICE, MI300X_PRICE, GB200_PRICE = 2.99, 1.85, 4.54  # the profiles' USD per device-hour


def xpusim(capsys, *args: str) -> tuple[int, str, str]:
    """The real `xpusim` entry point, in process."""
    code = cli_main.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_json(capsys, *args: str) -> dict:
    code, out, err = xpusim(capsys, "run", *args, "--format", "json")
    assert code == 0, err
    return json.loads(out)


# ---- the profiles ---------------------------------------------------------------------------
UNITS = {"a100-sxm": [8], "b200": [8], "h100-sxm": [8], "h200-sxm": [8], "h800-sxm": [8],
         "gb200-nvl72": [72], "gb300-nvl72": [72], "mi300x": [8], "mi325x": [8],
         "mi355x": [8], "gaudi2": [8], "gaudi3": [8], "trainium2": [16],
         "tpu-v5e": [1, 4, 8, 16, 32, 64, 128, 256], "tpu-v6e": [1, 4, 8, 16, 32, 64, 128, 256],
         "tpu-v5p": [4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 6144],
         "custom-asic-example": [8]}


@pytest.mark.parametrize("path", sorted((ROOT / "hardware_profiles").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_every_shipped_profile_states_its_unit_with_a_source(path):
    hw = load_hardware(str(path))
    unit = hw.purchase_unit
    assert unit is not None, f"{hw.id} states no purchase_unit"
    assert unit.sizes.value == UNITS[hw.id]
    assert len(unit.sizes.source) > 10 and len(unit.rented_whole.source) > 10


def test_whole_units_by_hand():
    h100, v5e = load_hardware("h100-sxm").unit, load_hardware("tpu-v5e").unit
    gb200 = load_hardware("gb200-nvl72").unit
    assert units_for_jobs(h100, [(2, 1)]) == (8, 1)  # one TP2 replica: one server
    assert units_for_jobs(h100, [(2, 5)]) == (16, 2)  # 4 per server: ceil(5/4) = 2 servers
    assert units_for_jobs(h100, [(16, 3)]) == (48, 6)  # a 16-GPU replica spans 2 servers
    assert units_for_jobs(h100, [(12, 1)]) == (16, 2)  # a 12-GPU run: ceil(12/8) servers
    # 16,384 / 72 = 227.6 racks -> 228 racks = 16,416 GPUs
    assert units_for_jobs(gb200, [(16384, 1)]) == (16416, 228)
    # ten TP2 replicas on v5e: 4-chip slices hold 2 -> 5 x 4 = 20 chips; 8-chip slices
    # would take ceil(10/4) = 3 x 8 = 24
    assert units_for_jobs(v5e, [(2, 10)]) == (20, 5)
    assert units_for_jobs(v5e, [(1, 10)]) == (10, 10)  # single-chip slices
    assert units_for_jobs(v5e, [(40, 1)]) == (64, 1)  # one run: the smallest slice >= 40
    assert units_for_jobs(v5e, [(300, 1)]) == (512, 2)  # beyond 256: whole 256-chip slices
    assert units_for_jobs(h100, [(8, 2), (4, 3)]) == (16 + 16, 4)  # pools billed apart


def test_a_bad_purchase_unit_is_one_line_and_exit_2(capsys, tmp_path):
    raw = yaml.safe_load((ROOT / "hardware_profiles" / "custom-asic-example.yaml").read_text())
    raw["purchase_unit"]["sizes"]["value"] = [8, 4]
    bad = tmp_path / "chip.yaml"
    bad.write_text(yaml.safe_dump(raw))
    code, out, err = xpusim(capsys, "run", str(SERVING_8B), "--set", f"hardware={bad}")
    assert code == 2 and out == "" and "Traceback" not in err
    assert "purchase_unit" in err and "strictly ascending" in err
    raw["purchase_unit"]["sizes"]["value"] = []
    bad.write_text(yaml.safe_dump(raw))
    code, _, err = xpusim(capsys, "run", str(SERVING_8B), "--set", f"hardware={bad}")
    assert code == 2 and "at least one size" in err


# ---- `run`: the declared fleet, whole units only where the part is rented whole -------------
SMALL = ["--set", "workload.arrivals.requests=60"]


def test_run_bills_a_part_rented_per_device_as_declared_and_warns(capsys):
    r = run_json(capsys, str(SERVING_8B), *SMALL, "--set", "cluster.accelerators=12")
    assert r["cost"]["billed_accelerators"] == 12 and r["cost"]["billing"] == "fleet"
    assert r["cost_usd"] == pytest.approx(12 * H100_PRICE * r["time_s"] / 3600)
    assert ("12 h100-sxm is 1.5 8-GPU HGX H100 servers, billed per accelerator as 12 (the "
            "price rents single accelerators), whole units would be 2 8-GPU HGX H100 servers "
            "(16 accelerators)") in r["warnings"]


def test_run_bills_whole_units_where_the_cloud_rents_only_whole_units(capsys):
    args = [str(SERVING_8B), *SMALL, "--set", "hardware=mi300x", "--set",
            "cluster.accelerators=10"]
    r = run_json(capsys, *args)
    # 10 MI300X = 1.25 platforms -> 2 platforms = 16 GPUs at $1.85
    assert (r["cost"]["billed_accelerators"], r["cost"]["purchase_units"]) == (16, 2)
    assert r["cost_usd"] == pytest.approx(16 * MI300X_PRICE * r["time_s"] / 3600)
    assert r["cost"]["usd_per_accelerator_hour"] == pytest.approx(MI300X_PRICE)
    assert ("10 mi300x is 1.25 8-GPU MI300X platforms, billed as 2 8-GPU MI300X platforms "
            "(16 accelerators)") in r["warnings"]
    owned = run_json(capsys, *args, "--set", "cost.mode=owned")  # capital is a device share
    assert owned["cost"]["billed_accelerators"] == 10
    assert any("billed per accelerator as 10" in w for w in owned["warnings"])
    whole = run_json(capsys, str(SERVING_8B), *SMALL, "--set", "hardware=mi300x",
                     "--set", "cluster.accelerators=16")
    assert not any("platform" in w for w in whole["warnings"])


def test_gb200_at_16384_is_227_6_racks_billed_as_228_in_compare(capsys):
    args = ["--set", "cluster.accelerators=16384", "--set", "workload.global_batch_size=4096"]
    run = run_json(capsys, str(GB200_TRAINING), *args)
    assert run["cost"]["billed_accelerators"] == 16384  # Spheron rents superchips
    assert any(w.startswith("16,384 gb200-nvl72 is 227.6 NVL72 racks") for w in run["warnings"])
    code, out, err = xpusim(capsys, "compare", str(GB200_TRAINING), "--hardware",
                            "gb200-nvl72", *args, "--format", "json", "--quiet")
    assert code == 0, err
    row = json.loads(out)["rows"][0]
    assert ("the layout uses 16,384 gb200-nvl72 (227.6 NVL72 racks), billed as 228 NVL72 "
            "racks (16,416 accelerators, 32 of them unused)") in row["notes"]
    # the same run on 16,416 billed GPUs instead of 16,384
    assert row["metrics"]["cost_usd"] == pytest.approx(run["cost_usd"] * 16416 / 16384)


# ---- cluster.accelerators: auto ------------------------------------------------------------
def test_auto_is_the_layouts_product(capsys):
    r = run_json(capsys, str(SERVING_70B), *SMALL, "--set", "cluster.accelerators=auto",
                 "--set", "workload.replicas=3", "--set", "workload.parallelism.tp=2")
    assert r["accelerators"] == 3 * 2 * 1  # replicas x tp x pp
    assert not any("not used" in w for w in r["warnings"])
    t = load_scenario(TRAINING_8B, ["cluster.accelerators=auto", "workload.parallelism.tp=2",
                                    "workload.parallelism.pp=2", "workload.parallelism.dp=2",
                                    "workload.global_batch_size=64"])
    assert t.cluster.accelerators == 2 * 2 * 1 * 2  # tp x pp x cp x dp
    d = load_scenario(ROOT / "scenarios" / "llama3.1-70b-h100-disaggregated.yaml",
                      ["cluster.accelerators=auto",
                       "workload.disaggregation.decode_replicas=2"])
    assert d.cluster.accelerators == 1 * 8 + 2 * 8  # prefill 1 x tp8 + decode 2 x tp8


def test_auto_without_the_layouts_size_names_what_to_set(capsys, tmp_path):
    code, out, err = xpusim(capsys, "run", str(SERVING_70B), "--set",
                            "cluster.accelerators=auto")
    assert code == 2 and out == "" and "Traceback" not in err
    assert "cluster.accelerators" in err and "set workload.replicas" in err
    code, _, err = xpusim(capsys, "run", str(SERVING_70B), "--set",
                          "cluster.accelerators=Auto")
    assert code == 2 and "must be a whole number of accelerators or auto, got 'Auto'" in err
    raw = yaml.safe_load(TRAINING_8B.read_text())
    raw["cluster"]["accelerators"] = "auto"
    path = tmp_path / "auto.yaml"
    path.write_text(yaml.safe_dump(raw))
    code, _, err = xpusim(capsys, "run", str(path))
    assert code == 2 and str(path) in err and "set workload.parallelism.dp" in err


# ---- sweeps bill what each point uses ------------------------------------------------------
def test_sweep_points_bill_their_own_whole_servers(capsys, tmp_path):
    out = tmp_path / "points.csv"
    code, text, err = xpusim(capsys, "sweep", str(SERVING_70B), "--set",
                             "cluster.accelerators=32", "--set", "workload.arrivals.requests=40",
                             "--grid", "workload.replicas=1,2", "--grid",
                             "workload.parallelism.tp=2,8", "--out", str(out), "--jobs", "1",
                             "--quiet")
    assert code == 0, err
    rows = list(csv.DictReader(out.open()))
    for row in rows:
        used = int(row["workload.replicas"]) * int(row["workload.parallelism.tp"])
        billed = math.ceil(used / 8) * 8  # whole 8-GPU servers
        assert (int(row["used_accelerators"]), int(row["billed_accelerators"])) == (used, billed)
        assert float(row["usd_per_hour"]) == pytest.approx(billed * H100_PRICE)
        assert "rather than cluster.accelerators (32)" in row["warnings"]
    # (replicas, tp) = (1,2), (1,8), (2,2) fit one server; (2,8) takes two
    assert [float(r["usd_per_hour"]) for r in rows] == pytest.approx(
        [8 * H100_PRICE, 8 * H100_PRICE, 8 * H100_PRICE, 16 * H100_PRICE])
    assert ("warning: workload.replicas=1, workload.parallelism.tp=2: 30 of 32 accelerators "
            "are not used by any replica") in text
    assert ("the layout uses 2 h100-sxm (0.25 8-GPU HGX H100 servers), billed as 1 8-GPU HGX "
            "H100 server (8 accelerators, 6 of them unused)") in text


def test_sweep_prints_a_warning_shared_by_points_once(capsys):
    code, out, err = xpusim(capsys, "sweep", str(SERVING_8B), "--set",
                            "workload.arrivals.requests=40", "--grid",
                            "workload.arrivals.rate_per_s=4,8", "--jobs", "1", "--quiet")
    assert code == 0, err
    # one H100 is 1/8 = 0.125 of a server, billed whole at both rates: one line, not two
    assert ("warning: 2 points (workload.arrivals.rate_per_s=4, ...): the layout uses 1 "
            "h100-sxm (0.125 8-GPU HGX H100 servers), billed as 1 8-GPU HGX H100 server "
            "(8 accelerators, 7 of them unused)") in out
    assert out.count("the layout uses 1 h100-sxm") == 1


def test_sweep_with_auto_follows_the_layout(capsys):
    code, out, err = xpusim(capsys, "sweep", str(SERVING_70B), "--set",
                            "cluster.accelerators=auto", "--set",
                            "workload.arrivals.requests=40", "--grid", "workload.replicas=1,3",
                            "--set", "workload.parallelism.tp=4", "--format", "json",
                            "--jobs", "1", "--quiet")
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert [r["accelerators"] for r in rows] == [4, 12]
    assert [r["billed_accelerators"] for r in rows] == [8, 16]
    assert not any("not used by any replica" in r["warnings"] for r in rows)


# ---- compare at each profile's best within the SLO -----------------------------------------
@pytest.fixture(scope="module")
def best():
    from simulator.studies.compare import compare

    return compare(SERVING_8B, ["h100-sxm", "mi300x"],
                   overrides=["workload.arrivals.requests=120"])


def test_compare_defaults_to_the_best_within_the_slo(best):
    assert best.mode == "best" and best.load_per_s == 8
    for row, price, unit in zip(best.rows, (H100_PRICE, MI300X_PRICE), (8, 8), strict=True):
        m = row.metrics
        assert row.status == "ok"
        assert m["billed_accelerators"] % unit == 0
        assert m["billed_accelerators"] >= row.accelerators > m["billed_accelerators"] - unit
        assert m["usd_per_hour"] == pytest.approx(m["billed_accelerators"] * price)
        assert row.parallelism["replicas"] == m["replicas"]
        assert all(t.met for t in row.result.inference.slo.values())  # carries the load
        assert any("meets the SLO up to" in n for n in row.notes)
    base, other = best.rows
    key = "cost_per_million_tokens_at_slo_usd"
    assert other.ratios[key] == pytest.approx(other.metrics[key] / base.metrics[key])


def test_best_goodput_is_one_replica_at_its_sustainable_rate(best):
    row = best.rows[0]
    rate = row.metrics["sustainable_rate_per_replica_per_s"]
    devices = row.parallelism["tp"] * row.parallelism["pp"]
    one = load_scenario(SERVING_8B, ["workload.arrivals.requests=120", "workload.replicas=1",
                                     f"workload.parallelism.tp={row.parallelism['tp']}",
                                     f"cluster.accelerators={devices}"])
    # the figures are the run the search judged the rate on: the scenario's window, or a
    # longer one where its backlog still grew over that
    judged = judged_rate(one, simulate, rate)
    assert judged.meets and judged.window_s is not None
    stretch = judged.window_s / arrival_window_s(one)
    probe = simulate(at_rate(one, rate, stretch=stretch), billing=Billing.EXACT)
    assert row.metrics["goodput_tokens_per_s_per_accelerator"] == pytest.approx(
        probe.inference.output_tokens_per_s / devices)
    assert row.metrics["cost_per_million_tokens_at_slo_usd"] == pytest.approx(
        probe.cost_per_million_tokens_usd)


def test_best_fleet_is_the_fewest_replicas(best):
    for row in best.rows:
        replicas = row.parallelism["replicas"]
        if replicas == 1:
            continue
        fewer = load_scenario(SERVING_8B, [
            "workload.arrivals.requests=120", f"hardware={row.hardware}",
            f"workload.replicas={replicas - 1}", "cluster.accelerators=auto",
            f"workload.parallelism.tp={row.parallelism['tp']}"])
        result = simulate(fewer)
        assert not all(t.met for t in result.inference.slo.values())


def test_fixed_load_is_an_option_that_says_so(capsys):
    code, out, err = xpusim(capsys, "compare", str(SERVING_8B), "--hardware", "h100-sxm,b200",
                            "--set", "workload.arrivals.requests=60", "--fixed-load", "--quiet")
    assert code == 0, err
    assert "fixed-load view: every profile at the scenario's 8 req/s offered load" in out
    code, _, err = xpusim(capsys, "compare", str(SERVING_8B), "--hardware", "h100-sxm,b200",
                          "--match", "power", "--quiet")
    assert code == 2 and "--fixed-load" in err


def test_without_an_slo_compare_falls_back_to_the_fixed_load_and_says_why(capsys, tmp_path):
    raw = yaml.safe_load(SERVING_8B.read_text())
    del raw["workload"]["slo"]
    path = Path(tmp_path / "no-slo.yaml")
    path.write_text(yaml.safe_dump(raw))
    code, out, err = xpusim(capsys, "compare", str(path), "--hardware", "h100-sxm",
                            "--set", "workload.arrivals.requests=60", "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["mode"] == "fixed_load"
    assert any("compared at the scenario's fixed load" in n and "slo" in n
               for n in data["notes"])


def test_best_tries_twice_the_tp_and_keeps_the_higher_goodput(best):
    import re

    for row in best.rows:
        tried = [n for n in row.notes if n.startswith("one replica (")]
        assert len(tried) == 2, row.notes  # the chosen layout, then twice its TP
        goodputs = [float(re.search(r"req/s, ([\d,.]+) output tokens/s", n)
                          .group(1).replace(",", "")) for n in tried]
        assert row.metrics["goodput_tokens_per_s_per_accelerator"] == pytest.approx(
            max(goodputs), rel=1e-3)  # the notes print 4 significant digits
        assert any(n.startswith(f"best: tp{row.parallelism['tp']} ") for n in row.notes)


def test_the_html_report_says_how_fleets_were_sized(best, tmp_path):
    from simulator.report.outputs import write_compare_outputs

    write_compare_outputs(tmp_path, best.as_dict(), [(r.hardware, r.result) for r in best.rows])
    page = (tmp_path / "report.html").read_text()
    assert "each at its best within the SLO" in page and "8 req/s" in page


def test_compare_takes_an_auto_cluster(capsys):
    code, out, err = xpusim(capsys, "compare", str(SERVING_70B), "--hardware", "h100-sxm",
                            "--set", "cluster.accelerators=auto", "--set", "workload.replicas=2",
                            "--set", "workload.parallelism.tp=4", "--set",
                            "workload.arrivals.requests=40", "--fixed-load", "--format", "json")
    assert code == 0, err
    row = json.loads(out)["rows"][0]
    assert row["accelerators"] == 2 * 4 and row["metrics"]["cost_usd"] > 0
