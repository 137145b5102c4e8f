"""The benchmark-report and training-log readers: figures by xpusim's result paths, in SI."""

from __future__ import annotations

import json

import pytest

from simulator.calibration.serving_reports import read_serving_json, read_trtllm_report
from simulator.calibration.step_logs import read_step_log
from simulator.errors import InputError

VLLM = {"backend": "vllm", "num_prompts": 500, "request_rate": 4.0, "max_concurrency": None,
        "duration": 131.2, "completed": 500, "request_throughput": 3.81,
        "output_throughput": 952.4, "total_token_throughput": 4752.0,
        "mean_ttft_ms": 61.5, "median_ttft_ms": 55.0, "p99_ttft_ms": 180.25,
        "mean_tpot_ms": 21.0, "median_tpot_ms": 20.5, "p99_tpot_ms": 33.0,
        "mean_itl_ms": 20.1, "mean_e2el_ms": 5300.0, "ttfts": [0.05, 0.06]}


def test_vllm_json_maps_every_figure_to_its_result_path(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(VLLM))
    report = read_serving_json(path)
    assert report.metrics == pytest.approx({
        "inference.requests_per_s": 3.81, "inference.output_tokens_per_s": 952.4,
        "inference.total_tokens_per_s": 4752.0, "inference.ttft_s.mean": 0.0615,
        "inference.ttft_s.p50": 0.055, "inference.ttft_s.p99": 0.18025,
        "inference.tpot_s.mean": 0.021, "inference.tpot_s.p50": 0.0205,
        "inference.tpot_s.p99": 0.033, "inference.e2e_s.mean": 5.3})
    # ITL is not TPOT (chunk gaps): not read; the run's settings are kept for the report
    assert report.settings["request_rate"] == 4.0 and "max_concurrency" not in report.settings


def test_sglang_json_lines_need_a_line_when_several_runs(tmp_path):
    path = tmp_path / "runs.jsonl"
    first = {"backend": "sglang", "mean_e2e_latency_ms": 900.0, "output_throughput": 100.0}
    second = {**first, "output_throughput": 250.0}
    path.write_text(json.dumps(first) + "\n\n" + json.dumps(second) + "\n")
    with pytest.raises(InputError, match="2 runs in this JSON-lines file"):
        read_serving_json(path)
    report = read_serving_json(path, line=2)
    assert report.metrics == {"inference.output_tokens_per_s": 250.0,
                              "inference.e2e_s.mean": pytest.approx(0.9)}
    with pytest.raises(InputError, match="line 3 asked for, but the file holds 2 runs"):
        read_serving_json(path, line=3)


@pytest.mark.parametrize("text, message", [
    ("{not json", "line 1 is not JSON"),
    ('{"duration": 3.0}', "no benchmark figures found"),
    ("[1, 2]", "not a benchmark JSON object"),
])
def test_serving_json_errors(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as info:
        read_serving_json(path)
    assert info.value.file == str(path)


TRTLLM = """
===========================================================
= PERFORMANCE OVERVIEW
===========================================================
Request Throughput (req/sec):                     43.2151
Total Output Throughput (tokens/sec):             5,531.53
Total Token Throughput (tokens/sec):              11063.1
Average request latency (ms):                     2210.5
Per GPU Output Throughput (tps/gpu):              1382.9
-- Time to First Token Breakdown (ms) ------------
[TTFT] AVERAGE     : 120.5
[TTFT] P99         : 310.0
[TTFT] MINIMUM     : 20.0
[TPOT] P50 (ms)    : 15.5
"""


def test_trtllm_text_report(tmp_path):
    path = tmp_path / "bench.txt"
    path.write_text(TRTLLM)
    assert read_trtllm_report(path).metrics == pytest.approx({
        "inference.requests_per_s": 43.2151, "inference.output_tokens_per_s": 5531.53,
        "inference.total_tokens_per_s": 11063.1, "inference.e2e_s.mean": 2.2105,
        "inference.ttft_s.mean": 0.1205, "inference.ttft_s.p99": 0.31,
        "inference.tpot_s.p50": 0.0155})


def test_trtllm_report_without_figures(tmp_path):
    path = tmp_path / "bench.txt"
    path.write_text("hello\nworld: 3\n")
    with pytest.raises(InputError, match="no trtllm-bench figures found"):
        read_trtllm_report(path)


def _megatron(ms: float, i: int) -> str:
    return (f" [2024-05-01 10:00:{i:02d}] iteration {i:8d}/  500000 | consumed samples: "
            f"{i * 1536} | elapsed time per iteration (ms): {ms} | learning rate: 1.5E-04 |")


def test_megatron_log_median_after_warmup(tmp_path):
    # 10 steps: the first (warm-up, 90 s) is skipped by default (a tenth), a checkpoint
    # step (30 s) does not move the median of the rest
    steps = [90000.0, 12000.0, 12100.0, 11900.0, 30000.0, 12050.0, 11950.0, 12000.0,
             12020.0, 11980.0]
    path = tmp_path / "train.log"
    path.write_text("\n".join(["startup noise"] + [_megatron(ms, i)
                                                   for i, ms in enumerate(steps, 1)]))
    report = read_step_log(path, "megatron-log")
    kept = sorted(steps[1:])
    assert report.metrics == {"training.step_time_s": pytest.approx(kept[4] / 1000)}
    assert report.settings["steps_skipped"] == 1 and report.settings["steps_used"] == 9
    explicit = read_step_log(path, "megatron-log", skip_steps=0)
    assert explicit.metrics["training.step_time_s"] == pytest.approx(12.01)


def test_nemo_and_torchtitan_logs(tmp_path):
    nemo = tmp_path / "nemo.log"
    nemo.write_text("\n".join(f"Training epoch 0, iteration {i}/99 | lr: 1e-05 | "
                              f"train_step_timing in s: {t} | consumed_samples: {i * 256}"
                              for i, t in enumerate([9.0, 4.7, 4.8, 4.75], 1)))
    assert read_step_log(nemo, "nemo-log").metrics["training.step_time_s"] == pytest.approx(4.75)
    titan = tmp_path / "titan.log"
    titan.write_text("\x1b[31mstep:  1  loss: 12.0  memory: 30GiB(40%)  tps: 1,000\x1b[39m\n"
                     "step:  2  loss: 11.0  memory: 30GiB(40%)  tps: 7,200  mfu: 40%\n"
                     "step:  3  loss: 10.0  memory: 30GiB(40%)  tps: 7,400  mfu: 41%\n")
    report = read_step_log(titan, "torchtitan-log")
    assert report.metrics == {"training.tokens_per_s_per_device": pytest.approx(7300.0)}


def test_step_log_errors(tmp_path):
    path = tmp_path / "empty.log"
    path.write_text("nothing to see\n")
    with pytest.raises(InputError, match="no step lines found; a nemo-log line looks like"):
        read_step_log(path, "nemo-log")
    path.write_text(_megatron(1000.0, 1) + "\n" + _megatron(1000.0, 2))
    with pytest.raises(InputError, match="skip_steps is 2 but the log holds 2 steps"):
        read_step_log(path, "megatron-log", skip_steps=2)


def test_file_paths_in_a_measurements_set_resolve_from_its_folder(tmp_path, monkeypatch):
    from simulator.calibration.measurements import load_measurements

    folder = tmp_path / "runs"
    folder.mkdir()
    (folder / "m.yaml").write_text(
        "runs:\n  - id: a\n    scenario: s.yaml\n"
        "    set: {hardware: ./chip.yaml, workload.arrivals.rate_per_s: 4}\n"
        "    measured: {inference.ttft_s.mean: 0.3}\n")
    monkeypatch.chdir(tmp_path)  # not the file's folder
    _, (run,) = load_measurements(folder / "m.yaml")
    assert run.overrides == (f"hardware={folder / 'chip.yaml'}",
                             "workload.arrivals.rate_per_s=4")
