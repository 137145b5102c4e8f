"""``requests.csv``: a serving run's per-request records, one row per request.

The columns are those of :class:`~simulator.results.inference.RequestRecords`, in its order;
rows in arrival order. Numbers are written as Python writes them (``repr``: a float reads
back to the same bits). **A cell is empty where the request never got there** (the NaN of
the records: a dropped request has no first token, a request that was not handed off no
``transfer_s``), which spreadsheets and CSV readers (pandas included) read as missing.
"""

from __future__ import annotations

import csv
import io

import numpy as np

from simulator.results.inference import RequestRecords


def _cells(column: np.ndarray) -> list:
    """A column's cells: floats with NaN as empty, the rest as they are."""
    values = column.tolist()
    if column.dtype.kind == "f":
        return ["" if v != v else v for v in values]  # (v != v: NaN)
    return values


def requests_csv(records: RequestRecords) -> str:
    """The CSV text of ``records`` (header row, then one row per request)."""
    columns = records.columns()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(zip(*(_cells(c) for c in columns.values()), strict=True))
    return buffer.getvalue()
