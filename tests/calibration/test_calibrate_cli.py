"""``xpusim calibrate`` end to end: a profile recovered from runs simulated with known
parameters, an unidentifiable parameter reported as such, and bad measurement files."""

from __future__ import annotations

import json

import pytest
import yaml

from simulator.loading import load_scenario
from simulator.simulate import simulate
from simulator.validation.runner import read_metric
from tests.conftest import ROOT, assert_clean_error, run_cli

SCENARIO = {
    "name": "calibration test run", "hardware": "h100-sxm", "cluster": {"accelerators": 1},
    "model": "llama3.1-8b", "seed": 7,
    "workload": {"kind": "inference", "precision": "bf16", "parallelism": {"tp": 1},
                 "arrivals": {"process": "poisson", "rate_per_s": 4, "requests": 80},
                 "prompt_tokens": {"dist": "lognormal", "mean": 1000, "std": 600, "min": 16,
                                   "max": 8192},
                 "output_tokens": {"dist": "lognormal", "mean": 200, "std": 100, "min": 8,
                                   "max": 1024},
                 "batching": {"max_batch_size": 256, "max_tokens_per_step": 8192}},
}
TRUE_STREAM = 0.70  # the profile's gemm.stream says 0.847: the rate decode GEMMs read weights at
METRICS = ("inference.tpot_s.mean", "inference.ttft_s.mean", "inference.output_tokens_per_s")


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """Two runs (light and heavy load) simulated with a profile whose GEMMs stream their
    weights at TRUE_STREAM: the measurements a user with that machine would bring."""
    folder = tmp_path_factory.mktemp("calibration")
    (folder / "serve.yaml").write_text(yaml.safe_dump(SCENARIO))
    truth = yaml.safe_load((ROOT / "hardware_profiles" / "h100-sxm.yaml").read_text())
    truth["id"] = "h100-truth"
    truth["efficiency"]["gemm"]["stream"]["value"] = TRUE_STREAM
    (folder / "truth.yaml").write_text(yaml.safe_dump(truth))
    runs = []
    for rate in (1, 12):
        scenario = load_scenario(folder / "serve.yaml", [
            f"workload.arrivals.rate_per_s={rate}", f"hardware={folder / 'truth.yaml'}"])
        result = simulate(scenario)
        runs.append({"id": f"rate-{rate}", "scenario": "serve.yaml",
                     "set": {"workload.arrivals.rate_per_s": rate},
                     "measured": {m: read_metric(result, m) for m in METRICS}})
    return folder, runs


def _write(folder, name, data):
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_recovers_a_known_gemm_streaming_fraction_within_its_uncertainty(measured):
    folder, runs = measured
    _write(folder, "m.yaml", {"hardware": "h100-sxm", "noise": 0.03,
                              "parameters": ["gemm.stream", "gemm.bf16",
                                             "scale_out_collective"],
                              "runs": runs})
    out = folder / "mine.yaml"
    result = run_cli("calibrate", "m.yaml", "--jobs", "1", "--out", str(out), "--format",
                     "json", cwd=folder)
    assert result.code == 0, result.err
    report = result.json()
    params = {p["name"]: p for p in report["parameters"]}
    stream = params["gemm.stream"]
    assert stream["status"] == "fitted" and stream["prior"] == 0.847
    # within two standard deviations (log space) of the truth, and far tighter than the prior
    assert abs(stream["value"] / TRUE_STREAM - 1) < 2 * stream["relative_sd"] + 0.01
    assert stream["relative_sd"] < 0.15 / 2
    # one device, one node: no figure depends on the scale-out collective
    assert params["scale_out_collective"]["status"] == "not identified"
    assert params["scale_out_collective"]["value"] == params["scale_out_collective"]["prior"]
    assert report["error_after"]["median"] < report["error_before"]["median"]
    written = yaml.safe_load(out.read_text())
    assert written["id"] == "h100-sxm-calibrated"
    assert written["efficiency"]["gemm"]["stream"]["estimate"] is True
    assert "calibrated" in written["efficiency"]["gemm"]["stream"]["source"]
    assert written["calibration"]["runs"] == ["rate-1", "rate-12"]
    # the calibrated profile runs anywhere a profile runs
    run = run_cli("run", "serve.yaml", "--set", f"hardware={out}", "--format", "json",
                  cwd=folder)
    assert run.code == 0, run.err
    assert run.json()["hardware"] == "h100-sxm-calibrated"
    # its results carry the calibration's left-out error, not the suite's generic band
    confidence = run.json()["confidence"]
    bands = {b["family"]: b for b in written["calibration"]["bands"]}
    assert {b["level"] for b in confidence["bands"]} == {"calibration"}
    assert confidence["expected_error"] == pytest.approx(bands["throughput"]["median"])
    assert bands["latency"]["figures"] == 4 and bands["throughput"]["figures"] == 2
    assert confidence["extrapolated"] is False and "calibration" in confidence["source"]
    # a precision the runs did not cover is flagged as extrapolation
    fp8 = run_cli("run", "serve.yaml", "--set", f"hardware={out}", "--set",
                  "workload.precision=fp8", "--format", "json", cwd=folder)
    assert fp8.code == 0, fp8.err
    assert fp8.json()["confidence"]["extrapolation"] == [
        "calibrated on bf16 runs; this run is fp8"]
    # a training run is not what the profile was calibrated on: the suite's bands
    train = run_cli("run", str(ROOT / "scenarios" / "llama3.1-8b-h100-training.yaml"),
                    "--set", f"hardware={out}", "--format", "json", cwd=folder)
    assert train.code == 0, train.err
    assert "covers inference runs, not training" in train.json()["confidence"]["source"]
    assert all(b["level"] != "calibration" for b in train.json()["confidence"]["bands"])


def test_list_shows_the_parameters(measured):
    folder, runs = measured
    _write(folder, "m.yaml", {"runs": runs})
    result = run_cli("calibrate", "m.yaml", "--list", cwd=folder)
    assert result.code == 0, result.err
    assert "hbm" in result.out and "gemm.bf16" in result.out


@pytest.mark.parametrize("data, fragments", [
    ({"runz": []}, ["m.yaml", "not a measurements file"]),
    ({"runz": [], "runs": [{"id": "a", "scenario": "serve.yaml",
                            "measured": {"inference.ttft_s.mean": 1}}]}, ["m.yaml", "runz"]),
    ({"runs": []}, ["m.yaml", "runs"]),
    ({"runs": [{"id": "a", "scenario": "serve.yaml"}]}, ["needs 'measured' figures"]),
    ({"runs": [{"id": "a", "scenario": "serve.yaml", "measured": {"inference.ttft_s.mean": 1}},
               {"id": "a", "scenario": "serve.yaml", "measured": {"inference.ttft_s.mean": 1}}]},
     ["run id 'a' is used twice"]),
    ({"runs": [{"id": "a", "scenario": "serve.yaml",
                "report": {"format": "locust", "file": "x.json"}}]},
     ["runs[0].report.format", "vllm-bench"]),
    ({"runs": [{"id": "a", "scenario": "serve.yaml",
                "report": {"format": "vllm-bench", "file": "missing.json"}}]},
     ["missing.json", "file not found"]),
    ({"runs": [{"id": "a", "scenario": "nope.yaml", "measured": {"inference.ttft_s.mean": 1}}]},
     ["nope.yaml"]),
    ({"parameters": ["hbm", "flux"], "runs": [
        {"id": "a", "scenario": "serve.yaml", "measured": {"inference.ttft_s.mean": 1}}]},
     ["unknown parameter(s) flux"]),
    ({"runs": [{"id": "a", "scenario": "serve.yaml", "measured": {"inference.ttft_s.mean": -1}}]},
     ["runs[0].measured", "greater than 0"]),
])
def test_bad_measurement_files(measured, data, fragments):
    folder, _ = measured
    _write(folder, "m.yaml", data)
    assert_clean_error(run_cli("calibrate", "m.yaml", "--jobs", "1", cwd=folder), *fragments)
    assert not (folder / "h100-sxm-calibrated.yaml").exists()


def test_csv_measurements_and_errors(measured):
    folder, runs = measured
    rows = ["run,scenario,metric,value,set"]
    for run in runs:
        rate = run["set"]["workload.arrivals.rate_per_s"]
        rows += [f"{run['id']},serve.yaml,{m},{v},workload.arrivals.rate_per_s={rate}"
                 for m, v in run["measured"].items()]
    (folder / "m.csv").write_text("\n".join(rows) + "\n")
    result = run_cli("calibrate", "m.csv", "--list", cwd=folder)
    assert result.code == 0, result.err
    (folder / "bad.csv").write_text("run,metric,value\na,x.y,1\n")
    assert_clean_error(run_cli("calibrate", "bad.csv", cwd=folder),
                       "bad.csv", "needs the columns metric, run, scenario, value")
    (folder / "bad.csv").write_text("run,scenario,metric,value\na,serve.yaml,x.y,fast\n")
    assert_clean_error(run_cli("calibrate", "bad.csv", cwd=folder),
                       "line 2: value 'fast' is not a number")


def test_missing_file_and_a_metric_the_result_lacks(measured):
    folder, _ = measured
    assert_clean_error(run_cli("calibrate", "absent.yaml", cwd=folder), "absent.yaml",
                       "file not found")
    _write(folder, "m.yaml", {"parameters": ["hbm"], "runs": [
        {"id": "a", "scenario": "serve.yaml", "measured": {"training.step_time_s": 1.0}}]})
    assert_clean_error(run_cli("calibrate", "m.yaml", "--jobs", "1", cwd=folder),
                       "run a does not simulate", "training")


def test_json_output_is_parseable(measured):
    folder, runs = measured
    _write(folder, "m.yaml", {"parameters": ["hbm"], "runs": runs[:1]})
    result = run_cli("calibrate", "m.yaml", "--jobs", "1", "--format", "json", "--out",
                     str(folder / "one.yaml"), cwd=folder)
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["figures"] == len(METRICS) and data["runs"] == ["rate-1"]
