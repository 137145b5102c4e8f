"""A plain, non-editable install finds the built-in profiles from any folder."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    pytest.importorskip("hatchling", reason="the packaging test builds with hatchling "
                                            "(installed by the test extra)")
    target = tmp_path_factory.mktemp("site")
    build = tmp_path_factory.mktemp("build")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(ROOT)],
        check=True, cwd=build, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        timeout=300,
    )
    return target


def _run(target, code: str, cwd):
    env = {**os.environ, "PYTHONPATH": str(target)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def test_installed_package_is_not_the_source_tree(installed, tmp_path):
    result = _run(installed, "import simulator; print(simulator.__file__)", tmp_path)
    assert result.returncode == 0, result.stderr
    assert str(installed) in result.stdout
    assert str(ROOT / "simulator") not in result.stdout


def test_installed_package_ships_every_profile(installed, tmp_path):
    code = ("from simulator import hardware_ids, model_ids, load_hardware, load_model;"
            "print(len(hardware_ids()), len(model_ids()));"
            "print(load_hardware('gb200-nvl72').scale_up.domain_size.value);"
            "print(round(load_model('deepseek-v3').params_total / 1e9))")
    result = _run(installed, code, tmp_path)
    assert result.returncode == 0, result.stderr
    counts, domain, params = result.stdout.split("\n")[:3]
    hw_count, model_count = map(int, counts.split())
    assert hw_count == len(list((ROOT / "hardware_profiles").glob("*.yaml")))
    assert model_count == len(list((ROOT / "model_profiles").glob("*.yaml")))
    assert domain == "72" and params == "671"


def test_installed_console_script_runs_a_scenario(installed, tmp_path):
    script = installed / "bin" / "xpusim"
    assert script.exists()
    scenario = tmp_path / "s.yaml"
    scenario.write_text((ROOT / "scenarios" / "llama3.1-8b-h100-serving.yaml").read_text())
    env = {**os.environ, "PYTHONPATH": str(installed)}
    result = subprocess.run([sys.executable, str(script), "run", str(scenario), "--format",
                             "json"], capture_output=True, text=True, cwd=tmp_path, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert '"hardware": "h100-sxm"' in result.stdout
