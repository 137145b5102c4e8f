"""Sensitivity: the signs are right (more bandwidth or FLOP/s never hurts, more latency never
helps), the ranking follows the elasticities, perturbed profiles are valid profiles."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from simulator.errors import InputError
from simulator.profiles.overrides import apply_overrides
from simulator.studies.rows import Base
from simulator.studies.sensitivity import SensitivityResult, run_sensitivity, yaml_float

ROOT = Path(__file__).resolve().parent.parent
TRAINING = ROOT / "scenarios" / "llama3.1-70b-h100-training.yaml"
OFFLINE = ROOT / "scenarios" / "llama2-70b-h100-offline.yaml"
FASTER = ("peak_flops", "hbm_bandwidth", "scale_up_bandwidth", "scale_out_bandwidth")
SLOWER = ("scale_up_latency", "scale_out_latency")


def _base(path: Path, overrides: list[str] = ()) -> Base:
    base = Base.from_file(path)
    return Base(apply_overrides(base.data, overrides), base.base_dir, base.file)


def _effects(result: SensitivityResult) -> dict:
    return {e.parameter.name: e for e in result.effects}


@pytest.fixture(scope="module")
def training():
    return run_sensitivity(_base(TRAINING, ["workload.failures.enabled=false"]))


@pytest.fixture(scope="module")
def serving():
    # Offline (every request at t=0): with Poisson arrivals the p99 of a short run is not
    # monotone in the hardware (a faster part changes which requests batch together).
    return run_sensitivity(_base(OFFLINE, ["workload.arrivals.requests=300"]),
                           only=[*FASTER, *SLOWER], seeds=1)


def test_training_signs(training):
    base = training.baseline["step_time_s"]
    effects = _effects(training)
    for name in FASTER:
        low, high = effects[name].low["step_time_s"], effects[name].high["step_time_s"]
        assert high <= base <= low, name
    for name in SLOWER:
        low, high = effects[name].low["step_time_s"], effects[name].high["step_time_s"]
        assert low <= base <= high, name
    assert effects["peak_flops"].elasticity["step_time_s"] < -0.3  # a dense 70B is GEMM-bound
    assert effects["power"].elasticity["step_time_s"] == 0.0  # power costs, it does not slow


def test_serving_signs(serving):
    effects = _effects(serving)
    assert serving.metric == "output_tokens_per_s"
    base = serving.baseline["output_tokens_per_s"]
    for name in FASTER:
        e = effects[name]
        assert e.low["output_tokens_per_s"] <= base <= e.high["output_tokens_per_s"], name
        for metric in ("ttft_p99_s", "tpot_p99_s"):
            lower_is_better = serving.baseline[metric]
            assert e.high[metric] <= lower_is_better <= e.low[metric], (name, metric)
    for name in SLOWER:
        e = effects[name]
        assert e.low["output_tokens_per_s"] >= base >= e.high["output_tokens_per_s"], name
    assert effects["hbm_bandwidth"].elasticity["output_tokens_per_s"] > 0.3  # decode-bound


def test_ranking_follows_the_elasticity(training):
    magnitudes = [abs(e.elasticity[training.metric] or 0.0) for e in training.effects]
    assert magnitudes == sorted(magnitudes, reverse=True)
    assert training.metric == "step_time_s"


def test_a_smaller_hbm_that_no_longer_fits_is_reported_not_raised():
    result = run_sensitivity(_base(ROOT / "scenarios" / "llama3.1-8b-h100-training.yaml"),
                             delta=0.2, only=["hbm_capacity"])
    (effect,) = result.effects
    assert effect.low["status"] == "does_not_fit"
    assert effect.high["status"] == "ok"
    assert effect.elasticity["step_time_s"] == 0.0  # one-sided: the larger HBM changes nothing


def test_bad_arguments():
    with pytest.raises(InputError, match="--delta"):
        run_sensitivity(_base(TRAINING), delta=1.5)
    with pytest.raises(InputError, match="unknown parameter"):
        run_sensitivity(_base(TRAINING), only=["warp_drive"])
    with pytest.raises(InputError, match="--seeds must be a whole number from 1"):
        run_sensitivity(_base(TRAINING), seeds=0)


@pytest.mark.parametrize("value", [1e-06, 3e-06, 3.35e12, 2.5, 1e16, 700.0])
def test_yaml_float_reads_back_as_the_same_float(value):
    assert yaml.safe_load(yaml_float(value)) == value


def test_cli_sensitivity_json():
    module = "simulator.cli.main"
    env = {**os.environ, "COLUMNS": "100", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", module, "sensitivity", str(TRAINING),
                           "--only", "hbm_bandwidth", "--delta", "0.2", "--jobs", "1",
                           "--format", "json"], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert [e["parameter"] for e in report["effects"]] == ["hbm_bandwidth"]
    assert report["effects"][0]["elasticity"]["step_time_s"] < 0
    # training is deterministic: one seed, and the interval is exactly zero, not unknown
    assert report["seeds"] == [1] and report["deterministic"] is True
    assert report["effects"][0]["elasticity_ci95"]["step_time_s"] == 0.0
    assert report["effects"][0]["verdict"]["step_time_s"] == "real"
