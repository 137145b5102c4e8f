"""Readers for the serving benchmark reports users already have.

Each reader turns one report into measured figures keyed by xpusim's result paths
(``inference.ttft_s.mean``, in SI units), so a calibration compares like with like, plus the
run's own settings (request rate, concurrency, prompt count) for the report to show beside
the scenario that is meant to reproduce them.

- ``vllm-bench`` / ``sglang-bench``: the JSON that ``vllm bench serve`` (and the older
  ``benchmarks/benchmark_serving.py --save-result``) writes, and the JSON lines SGLang's
  ``bench_serving`` appends (one line per run; ``line`` picks one). Latencies are in ms.
- ``trtllm-bench``: the text report ``trtllm-bench throughput`` prints (the PERFORMANCE
  OVERVIEW block and its ``[TTFT]``/``[TPOT]``/``[Latency]`` percentile lines).

Inter-token latency (ITL) is not read: vLLM's ITL is the mean gap between chunks, which
streaming and speculative decoding make differ from TPOT, xpusim's per-request figure.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.errors import InputError
from simulator.profiles.input_files import read_bounded_text

MAX_REPORT_BYTES = 64 * 2**20  # a report with every request's latencies stays far below

_MS = 1e-3
_STAT = {"mean": "mean", "median": "p50", "p50": "p50", "p90": "p90", "p99": "p99"}
# benchmark JSON key stems -> xpusim latency families
_LATENCY_STEMS = {"ttft": "ttft_s", "tpot": "tpot_s", "e2el": "e2e_s", "e2e_latency": "e2e_s"}
_THROUGHPUTS = {"request_throughput": "inference.requests_per_s",
                "output_throughput": "inference.output_tokens_per_s",
                "total_token_throughput": "inference.total_tokens_per_s"}
_SETTINGS = ("backend", "model_id", "num_prompts", "completed", "request_rate",
             "max_concurrency", "random_input_len", "random_output_len", "duration")


@dataclass(frozen=True)
class MeasuredReport:
    """What one report measured (xpusim result path -> SI value) and how it was run."""

    metrics: dict[str, float]
    settings: dict[str, Any] = field(default_factory=dict)


def read_serving_json(path: Path, *, line: int | None = None) -> MeasuredReport:
    """A vLLM or SGLang benchmark JSON (or one line of a JSON-lines file)."""
    text = read_bounded_text(path, str(path), limit=MAX_REPORT_BYTES,
                             expected="a vLLM/SGLang benchmark JSON")
    record = _pick_record(text, path, line)
    metrics: dict[str, float] = {}
    for key, value in record.items():
        target = _json_metric(key)
        if target is None or not _is_number(value):
            continue
        name, scale = target
        metrics[name] = float(value) * scale
    if not metrics:
        raise InputError("no benchmark figures found (expected keys such as "
                         "'output_throughput', 'mean_ttft_ms', 'p99_tpot_ms')", file=str(path))
    settings = {k: record[k] for k in _SETTINGS if k in record and record[k] is not None}
    return MeasuredReport(metrics, settings)


def _pick_record(text: str, path: Path, line: int | None) -> dict[str, Any]:
    """The report's one JSON object, or line ``line`` (1-based) of a JSON-lines file."""
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict):
        if line not in (None, 1):
            raise InputError(f"line {line} asked for, but the file holds one JSON object",
                             file=str(path))
        return whole
    records = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            records.append((number, json.loads(raw)))
        except (json.JSONDecodeError, RecursionError, ValueError):
            raise InputError(f"line {number} is not JSON", file=str(path)) from None
    objects = [(n, r) for n, r in records if isinstance(r, dict)]
    if not objects:
        raise InputError("not a benchmark JSON object or JSON-lines file", file=str(path))
    if line is None:
        if len(objects) > 1:
            raise InputError(f"{len(objects)} runs in this JSON-lines file; say which with "
                             f"'line' (1 to {len(objects)})", file=str(path))
        return objects[0][1]
    if not 1 <= line <= len(objects):
        raise InputError(f"line {line} asked for, but the file holds {len(objects)} runs",
                         file=str(path))
    return objects[line - 1][1]


def _json_metric(key: str) -> tuple[str, float] | None:
    """``mean_ttft_ms`` -> (``inference.ttft_s.mean``, 1e-3); throughputs as they are."""
    if key in _THROUGHPUTS:
        return _THROUGHPUTS[key], 1.0
    match = re.fullmatch(r"(mean|median|p50|p90|p99)_([a-z0-9_]+)_ms", key)
    if match is None or match.group(2) not in _LATENCY_STEMS:
        return None
    stat, stem = match.groups()
    return f"inference.{_LATENCY_STEMS[stem]}.{_STAT[stat]}", _MS


def _is_number(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


# trtllm-bench text report: "Label (unit):   value" and "[TTFT] P50   : value" lines
_TRT_LABELS = {
    "request throughput (req/sec)": ("inference.requests_per_s", 1.0),
    "total output throughput (tokens/sec)": ("inference.output_tokens_per_s", 1.0),
    "total token throughput (tokens/sec)": ("inference.total_tokens_per_s", 1.0),
    "average request latency (ms)": ("inference.e2e_s.mean", _MS),
    "average time-to-first-token [ttft] (ms)": ("inference.ttft_s.mean", _MS),
    "average time-per-output-token [tpot] (ms)": ("inference.tpot_s.mean", _MS),
}
_TRT_BRACKETS = {"ttft": "ttft_s", "tpot": "tpot_s", "latency": "e2e_s"}
_TRT_STATS = {"average": "mean", "p50": "p50", "p90": "p90", "p99": "p99"}
_NUMBER = r"([-+]?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?)"


def read_trtllm_report(path: Path) -> MeasuredReport:
    """The text ``trtllm-bench throughput`` prints (copied to a file)."""
    text = read_bounded_text(path, str(path), limit=MAX_REPORT_BYTES,
                             expected="a trtllm-bench text report")
    metrics: dict[str, float] = {}
    for raw in text.splitlines():
        found = _trtllm_line(raw.strip())
        if found is not None:
            metrics.setdefault(found[0], found[1])
    if not metrics:
        raise InputError("no trtllm-bench figures found (expected lines such as "
                         "'Total Output Throughput (tokens/sec): 5530.1' or "
                         "'[TTFT] P99 : 812.3')", file=str(path))
    return MeasuredReport(metrics)


def _trtllm_line(line: str) -> tuple[str, float] | None:
    bracket = re.fullmatch(r"\[(\w+)\]\s+(\w+)\s*(?:\(ms\))?\s*:\s*" + _NUMBER, line)
    if bracket:
        family = _TRT_BRACKETS.get(bracket.group(1).lower())
        stat = _TRT_STATS.get(bracket.group(2).lower())
        if family and stat:
            return f"inference.{family}.{stat}", _number(bracket.group(3)) * _MS
        return None
    labelled = re.fullmatch(r"(.+?)\s*:\s*" + _NUMBER, line)
    if labelled:
        target = _TRT_LABELS.get(" ".join(labelled.group(1).lower().split()))
        if target:
            return target[0], _number(labelled.group(2)) * target[1]
    return None


def _number(text: str) -> float:
    return float(text.replace(",", ""))
