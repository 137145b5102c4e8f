"""Readers for training step-time logs: Megatron-LM, NeMo and torchtitan.

A training log prints one line per logged step. The reader keeps the steps after a warm-up
(the first steps build caches, compile and allocate: they are slow for reasons a steady-state
model does not describe) and takes their median, which a stray slow step (a checkpoint, a
straggler) does not move. The spread of the kept steps is reported too, as the measurement's
own noise.

- ``megatron-log``: ``elapsed time per iteration (ms): 1234.5`` -> ``training.step_time_s``.
- ``nemo-log``: ``train_step_timing in s: 4.77`` (NeMo 2 / Lightning) ->
  ``training.step_time_s``.
- ``torchtitan-log``: ``tps: 7,234`` (tokens per second per device) ->
  ``training.tokens_per_s_per_device``, which the calibration compares with the result's
  ``training.tokens_per_s`` divided by the accelerator count.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable
from pathlib import Path

from simulator.calibration.serving_reports import MAX_REPORT_BYTES, MeasuredReport
from simulator.errors import InputError
from simulator.profiles.input_files import read_bounded_text

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_NUMBER = r"(\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?)"


def _megatron(line: str) -> float | None:
    match = re.search(r"elapsed time per iteration \(ms\):\s*" + _NUMBER, line)
    return _value(match.group(1)) * 1e-3 if match else None


def _nemo(line: str) -> float | None:
    match = re.search(r"train_step_timing(?: in s)?\s*[:=]\s*" + _NUMBER, line)
    return _value(match.group(1)) if match else None


def _torchtitan(line: str) -> float | None:
    if not re.search(r"\bstep:\s*\d+", line):
        return None
    match = re.search(r"\btps:\s*" + _NUMBER, line)
    return _value(match.group(1)) if match else None


# format -> (per-line reader, the metric it measures, what the line looks like)
LOG_FORMATS: dict[str, tuple[Callable[[str], float | None], str, str]] = {
    "megatron-log": (_megatron, "training.step_time_s",
                     "'elapsed time per iteration (ms): 1234.5'"),
    "nemo-log": (_nemo, "training.step_time_s", "'train_step_timing in s: 4.77'"),
    "torchtitan-log": (_torchtitan, "training.tokens_per_s_per_device",
                       "'step: 10 ... tps: 7,234'"),
}


def read_step_log(path: Path, fmt: str, *, skip_steps: int | None = None) -> MeasuredReport:
    """The median of the logged steps after ``skip_steps`` (default: the first tenth)."""
    reader, metric, looks_like = LOG_FORMATS[fmt]
    text = read_bounded_text(path, str(path), limit=MAX_REPORT_BYTES,
                             expected=f"a {fmt} training log")
    values = [v for line in text.splitlines()
              if (v := reader(_ANSI.sub("", line))) is not None]
    if not values:
        raise InputError(f"no step lines found; a {fmt} line looks like {looks_like}",
                         file=str(path))
    skip = math.ceil(len(values) / 10) if skip_steps is None else skip_steps
    if skip >= len(values):
        raise InputError(f"skip_steps is {skip} but the log holds {len(values)} steps",
                         file=str(path))
    kept = values[skip:]
    median = statistics.median(kept)
    if median <= 0:
        raise InputError(f"the median {metric} of the log is {median}, not a positive figure",
                         file=str(path))
    spread = _relative_spread(kept, median)
    settings = {"steps_logged": len(values), "steps_skipped": skip, "steps_used": len(kept),
                "relative_spread": spread}
    return MeasuredReport({metric: median}, settings)


def _relative_spread(values: list[float], median: float) -> float:
    """Half the interquartile range over the median (0 with fewer than four steps)."""
    if len(values) < 4:
        return 0.0
    q1, _, q3 = statistics.quantiles(values, n=4)
    return (q3 - q1) / 2 / median


def _value(text: str) -> float:
    return float(text.replace(",", ""))
