"""A simulated step as a Chrome/Perfetto trace (open it in ui.perfetto.dev or chrome://tracing).

One process per pipeline stage; in it a ``compute`` track with the forward and backward
passes (their exposed TP, EP and CP communication nested inside as child slices, waits for
transfers and parameters between them, the optimizer at the end), a ``dp comm`` track with
the gradient and parameter buckets, and the stage's outgoing activations and gradients as
async slices (sends can overlap one another). Times are microseconds, as the format wants.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from simulator.report.files import write_atomic
from simulator.results.training import StepTimeline, TrainingResult

_THREADS = {"compute": 0, "dp comm": 1, "pp send (activations)": 2, "pp send (gradients)": 3}
_ASYNC = {"pp send (activations)", "pp send (gradients)"}


def trace_events(timeline: StepTimeline) -> dict[str, Any]:
    """The trace as a JSON-ready mapping (Trace Event Format, ``traceEvents`` + metadata)."""
    events: list[dict[str, Any]] = []
    for stage in range(timeline.stages):
        events.append({"name": "process_name", "ph": "M", "pid": stage,
                       "args": {"name": f"pipeline stage {stage}"}})
        events.append({"name": "process_sort_index", "ph": "M", "pid": stage,
                       "args": {"sort_index": stage}})
        for name, tid in _THREADS.items():
            events.append({"name": "thread_name", "ph": "M", "pid": stage, "tid": tid,
                           "args": {"name": name}})
    slices = sorted(timeline.slices(), key=lambda s: (s.stage, _THREADS.get(s.stream, 9),
                                                      s.start_s, -s.duration_s))
    for n, s in enumerate(slices):
        common = {"name": s.name, "cat": s.kind, "pid": s.stage,
                  "tid": _THREADS.get(s.stream, 9)}
        if s.stream in _ASYNC:  # transfers may overlap: async slices get rows of their own
            events.append({**common, "ph": "b", "id": n, "ts": s.start_s * 1e6})
            events.append({**common, "ph": "e", "id": n, "ts": (s.start_s + s.duration_s) * 1e6})
        else:
            events.append({**common, "ph": "X", "ts": s.start_s * 1e6,
                           "dur": s.duration_s * 1e6})
    return {"traceEvents": events, "displayTimeUnit": "ms",
            "otherData": {"title": timeline.title, "step_time_s": timeline.step_time_s}}


def write_trace(result_or_timeline: TrainingResult | StepTimeline, path: str | Path) -> Path:
    """Write the step's trace to ``path`` (atomically: a half-written trace never stays)."""
    timeline = (result_or_timeline.timeline if isinstance(result_or_timeline, TrainingResult)
                else result_or_timeline)
    if timeline is None:
        raise ValueError("no step timeline to write: the result was built without one")
    path = Path(path)
    write_atomic(path, json.dumps(trace_events(timeline)))
    return path
