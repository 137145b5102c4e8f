"""JSON that any strict parser reads: an undefined figure is ``null``, with a note saying so.

Python's ``json`` writes infinities and NaNs as ``Infinity`` and ``NaN``, which are not JSON:
strict parsers (``jq``, JavaScript's ``JSON.parse``, most databases) refuse the whole
document. A figure can be undefined for a real reason (the cost per million tokens of a run
that served none), so such a value becomes ``null`` and the top-level ``notes`` list says
which field it was and why, rather than the output failing or lying with a zero.
"""

from __future__ import annotations

import json
import math
from typing import Any


def _finite(value: Any, path: str, notes: list[str]) -> Any:
    """``value`` with every non-finite float replaced by None (noted by its path)."""
    if isinstance(value, float) and not math.isfinite(value):
        what = "not a number" if math.isnan(value) else "infinite"
        notes.append(f"{path or 'the value'} is undefined ({what}); written as null")
        return None
    if isinstance(value, dict):
        return {k: _finite(v, f"{path}.{k}" if path else str(k), notes) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v, f"{path}[{i}]", notes) for i, v in enumerate(value)]
    return value


def strict_json(data: Any, *, indent: int | None = 2) -> str:
    """``data`` as strict JSON text. Non-finite numbers become ``null``; when ``data`` is a
    mapping, each is named in its ``notes`` list (created if absent)."""
    notes: list[str] = []
    clean = _finite(data, "", notes)
    if notes and isinstance(clean, dict):
        clean["notes"] = [*(clean.get("notes") or []), *notes]
    return json.dumps(clean, indent=indent, allow_nan=False)
