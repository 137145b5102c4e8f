"""`--out DIR` reports: every file written, parseable, self-contained, rendered by a real
browser, and never half-written."""

from __future__ import annotations

import csv
import io
import json
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from simulator.loading import load_scenario
from simulator.report import files as report_files
from simulator.report import plots
from simulator.report.outputs import write_compare_outputs, write_run_outputs
from simulator.simulate import simulate
from simulator.studies.compare import compare
from tests.conftest import ROOT, run_cli
from tests.test_compare import xpusim

SERVING = ROOT / "scenarios" / "llama3.1-8b-h100-serving.yaml"
TRAINING = ROOT / "scenarios" / "llama3.1-8b-h100-training.yaml"
CHROMIUM = Path("/usr/bin/chromium")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def serving_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("serving")
    result = run_cli("run", str(SERVING), "--set", "workload.arrivals.requests=300",
                     "--out", str(out))
    assert result.code == 0, result.err
    return out


@pytest.fixture(scope="module")
def training_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("training")
    result = run_cli("run", str(TRAINING), "--out", str(out))
    assert result.code == 0, result.err
    return out


@pytest.fixture(scope="module")
def compare_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("compare")
    c = compare(ROOT / "scenarios" / "llama3.1-70b-h100-serving.yaml",
                ["h100-sxm", "mi300x", "tpu-v5e"], overrides=["workload.arrivals.requests=150"],
                fixed_load=True)  # tpu-v5e does not fit the scenario's 8 chips
    write_compare_outputs(out, c.as_dict(), [(r.hardware, r.result) for r in c.rows])
    return out


# ---- helpers ---------------------------------------------------------------------------------
def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (after checking the signature)."""
    assert data[:8] == PNG_SIGNATURE, "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def check_png(path: Path) -> None:
    data = path.read_bytes()
    width, height = png_size(data)
    assert width >= 400 and height >= 200, (path.name, width, height)
    assert len(data) > 10_000, f"{path.name} is suspiciously small ({len(data)} bytes)"


class _Refs(HTMLParser):
    """Every src/href attribute and every tag of a page."""

    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "poster", "data", "action"):
                self.refs.append((tag, name, value or ""))


def check_self_contained(path: Path) -> list[str]:
    """The page references only embedded content; returns the embedded PNGs' data URIs."""
    text = path.read_text()
    parser = _Refs()
    parser.feed(text)
    assert "script" not in parser.tags and "link" not in parser.tags and "iframe" not in parser.tags
    assert "url(" not in text and "@import" not in text
    images = []
    for tag, name, value in parser.refs:
        assert not value.lower().startswith(("http:", "https:", "//", "file:")), value[:80]
        assert value.startswith("data:"), f"<{tag} {name}> refers to a file: {value[:80]}"
        if tag == "img":
            assert value.startswith("data:image/png;base64,")
            images.append(value)
    return images


# ---- each file is written and parseable --------------------------------------------------------
SERVING_FILES = ("result.json", "requests.csv", "time_series.csv", "latency_cdf.png",
                 "throughput.png", "queue.png", "kv_cache.png", "batch_size.png", "report.html")
TRAINING_FILES = ("result.json", "step_breakdown.csv", "step_breakdown.png",
                  "pipeline_timeline.png", "failures.png", "report.html")


def test_serving_report_files(serving_dir):
    names = {p.name for p in serving_dir.iterdir()}
    assert set(SERVING_FILES) <= names
    assert not [n for n in names if n.startswith(".")], "no temporary files left behind"
    data = json.loads((serving_dir / "result.json").read_text())
    assert data["kind"] == "inference"
    requests = list(csv.DictReader(io.StringIO((serving_dir / "requests.csv").read_text())))
    assert len(requests) == data["inference"]["arrived"]
    series = list(csv.DictReader(io.StringIO((serving_dir / "time_series.csv").read_text())))
    assert series and "kv_cache_utilization" in series[0]
    for png in serving_dir.glob("*.png"):
        check_png(png)


def test_training_report_files(training_dir):
    names = {p.name for p in training_dir.iterdir()}
    assert set(TRAINING_FILES) <= names
    data = json.loads((training_dir / "result.json").read_text())
    assert data["kind"] == "training" and "run_timeline" not in data["training"]
    rows = list(csv.DictReader(io.StringIO((training_dir / "step_breakdown.csv").read_text())))
    assert sum(float(r["share"]) for r in rows) == pytest.approx(1.0, rel=1e-6)
    for png in training_dir.glob("*.png"):
        check_png(png)


def test_compare_report_files(compare_dir):
    names = {p.name for p in compare_dir.iterdir()}
    assert {"comparison.json", "comparison.csv", "compare_ratios.png", "cost_vs_latency.png",
            "latency_cdf.png", "report.html", "h100-sxm", "mi300x"} <= names
    assert "tpu-v5e" not in names, "a profile that did not run has no folder"
    data = json.loads((compare_dir / "comparison.json").read_text())
    assert [r["status"] for r in data["rows"]] == ["ok", "ok", "does_not_fit"]
    rows = list(csv.DictReader(io.StringIO((compare_dir / "comparison.csv").read_text())))
    assert float(rows[0]["cost_usd_ratio"]) == 1.0 and rows[2]["cost_usd"] == ""
    for hw in ("h100-sxm", "mi300x"):
        json.loads((compare_dir / hw / "result.json").read_text())
        assert (compare_dir / hw / "requests.csv").stat().st_size > 0
    for png in compare_dir.glob("*.png"):
        check_png(png)


@pytest.mark.parametrize("which", ["serving_dir", "training_dir", "compare_dir"])
def test_html_references_only_embedded_content(which, request):
    folder = request.getfixturevalue(which)
    images = check_self_contained(folder / "report.html")
    pngs = sorted(folder.glob("*.png"))
    assert len(images) == len(pngs), "every plot is embedded in the page"
    import base64

    for uri in images:
        png_size(base64.b64decode(uri.split(",", 1)[1]))


def test_compare_out_through_the_command(capsys, tmp_path):
    code, _, err = xpusim(capsys, "compare", str(TRAINING), "--hardware", "h100-sxm,b200",
                          "--out", str(tmp_path / "c"), "--quiet")
    assert code == 0, err
    assert (tmp_path / "c" / "cost_vs_time.png").exists()
    check_self_contained(tmp_path / "c" / "report.html")


# ---- the page in a real browser --------------------------------------------------------------
def screenshot(page: Path, tmp_path: Path) -> tuple[np.ndarray, str]:
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (.ci/install-chromium)")
    shot = tmp_path / "shot.png"
    profile = tmp_path / "profile"
    proc = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", f"--screenshot={shot}",
         "--window-size=1200,2000", "--enable-logging=stderr", "--v=0",
         page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120)
    log = proc.stdout + proc.stderr
    assert shot.exists(), f"chromium wrote no screenshot (exit {proc.returncode}):\n{log[-2000:]}"
    from matplotlib.image import imread

    return imread(str(shot)), log


@pytest.mark.parametrize("which", ["serving_dir", "training_dir", "compare_dir"])
def test_report_renders_in_headless_chromium(which, request, tmp_path):
    folder = request.getfixturevalue(which)
    pixels, log = screenshot(folder / "report.html", tmp_path)
    errors = [line for line in log.splitlines() if "Uncaught" in line or "ERROR:CONSOLE" in line]
    assert not errors, errors
    assert pixels.shape[:2] == (2000, 1200)
    rgb = pixels[..., :3]
    not_white = (rgb < 0.95).any(axis=2).mean()
    coloured = (rgb.max(axis=2) - rgb.min(axis=2) > 0.25).mean()
    assert not_white > 0.02, "the page is blank"
    assert coloured > 0.002, "no coloured pixels: the plots did not render"


# ---- nothing half-written ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def training_result():
    return simulate(load_scenario(TRAINING))


def test_a_failure_while_plotting_writes_nothing(training_result, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("plotting failed")

    monkeypatch.setattr(plots, "failure_timeline", broken)
    with pytest.raises(RuntimeError):
        write_run_outputs(tmp_path / "out", training_result)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_a_failed_write_leaves_no_partial_or_temporary_file(training_result, tmp_path,
                                                            monkeypatch):
    calls = []
    real_replace = report_files.os.replace

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(report_files.os, "replace", replace)
    with pytest.raises(OSError):
        write_run_outputs(tmp_path, training_result)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["result.json"], names  # the first file complete, the second absent
    json.loads((tmp_path / "result.json").read_text())


def test_an_existing_report_survives_a_failed_rewrite(training_result, tmp_path, monkeypatch):
    write_run_outputs(tmp_path, training_result)
    before = (tmp_path / "report.html").read_bytes()
    monkeypatch.setattr(plots, "step_breakdown", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        write_run_outputs(tmp_path, training_result)
    assert (tmp_path / "report.html").read_bytes() == before


def test_a_run_that_fails_writes_no_folder(tmp_path):
    out = tmp_path / "never"
    result = run_cli("run", str(SERVING), "--set", "model=llama3.1-405b", "--out", str(out))
    assert result.code == 2
    assert not out.exists()
    shutil.rmtree(out, ignore_errors=True)
