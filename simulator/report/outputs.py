"""Files a run writes with ``--out DIR``: result.json and CSVs for users' own analysis.

Each file is written to a temporary name and renamed into place, so a run that fails leaves
no half-written file behind.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from simulator.report.files import write_atomic
from simulator.results import Result


def _csv(header: list[str], rows: list[list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write_run_outputs(directory: Path, result: Result) -> list[Path]:
    """Write result.json and the run's CSVs into ``directory``; return the paths written."""
    written = []
    path = directory / "result.json"
    write_atomic(path, json.dumps(result.model_dump(mode="json"), indent=2) + "\n")
    written.append(path)
    if result.training is not None:
        t = result.training
        rows = [[name, value, value / t.step_time_s] for name, value in
                t.breakdown_s.model_dump().items()]
        path = directory / "step_breakdown.csv"
        write_atomic(path, _csv(["part", "seconds", "share"], rows))
        written.append(path)
    requests = result.artifacts.get("requests")
    if requests is not None:
        columns = list(requests)
        rows = [list(values) for values in zip(*(requests[c].tolist() for c in columns),
                                               strict=True)]
        path = directory / "requests.csv"
        write_atomic(path, _csv(columns, rows))
        written.append(path)
    if result.inference is not None:
        series = result.inference.time_series.model_dump()
        columns = [k for k, v in series.items() if isinstance(v, list)]
        rows = [list(values) for values in zip(*(series[c] for c in columns), strict=True)]
        path = directory / "time_series.csv"
        write_atomic(path, _csv(columns, rows))
        written.append(path)
    return written
