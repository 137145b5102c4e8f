"""``cluster.accelerators: auto``: the cluster is as large as the workload's layout.

A serving layout of ``replicas`` replicas of ``tp x pp`` accelerators needs replicas x tp x pp
(a disaggregated one, prefill_replicas x its size + decode_replicas x its size); a training
layout needs tp x pp x cp x dp (expert parallelism folds into those ranks). Writing the
product by hand is a chance to get it wrong and, in a sweep over replicas or tp, a
cluster that does not follow the layout leaves accelerators idle. ``auto`` is resolved on
the raw scenario before validation (:func:`resolve_auto`), so everything downstream sees a
count. Where the layout does not fix the size (no ``workload.replicas``, no
``parallelism.dp``) the field reports what to set.
"""

from __future__ import annotations

from typing import Any

from simulator.profiles.fleet_pools import pools_size

AUTO = "auto"


class Unresolved:
    """``auto`` that could not be resolved, and why: the field's validator reports it at
    ``cluster.accelerators``."""

    def __init__(self, reason: str):
        self.reason = reason

    def __repr__(self) -> str:
        return "'auto'"


def check_resolved(value: Any) -> Any:
    """The field validator of ``cluster.accelerators``: an unresolved ``auto`` is an error
    that says what the layout is missing."""
    if isinstance(value, Unresolved):
        raise ValueError(value.reason)
    if value == AUTO:
        raise ValueError("auto is resolved from the scenario's workload; it is not allowed "
                         "here")
    if isinstance(value, str) and not value.strip().isdigit():
        shown = value if len(value) <= 30 else value[:27] + "..."
        raise ValueError(f"must be a whole number of accelerators or auto, got {shown!r}")
    return value


def _count(value: Any, default: int | None = 1) -> int | None:
    """A positive whole number as the YAML or a --set gave it, else None (the workload's
    own validation reports it)."""
    if value is None:
        return default
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value > 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value) or None
    return None


def _product(par: Any, *names: str) -> int | None:
    """The product of the named sizes of a parallelism mapping (absent ones are 1)."""
    par = par if isinstance(par, dict) else {}
    total = 1
    for name in names:
        size = _count(par.get(name))
        if size is None:
            return None
        total *= size
    return total


def _serving_size(workload: dict[str, Any]) -> int | str:
    """replicas x tp x pp, or the reason it cannot be known."""
    if "pools" in workload:
        return pools_size(workload["pools"])
    par = workload.get("parallelism")
    d = workload.get("disaggregation")
    if isinstance(d, dict):
        total = 0
        for pool in ("prefill", "decode"):
            size = _product(d.get(f"{pool}_parallelism") or par, "tp", "pp")
            replicas = _count(d.get(f"{pool}_replicas"), None)
            if size is None or replicas is None:
                return (f"auto needs workload.disaggregation.{pool}_replicas and a valid "
                        f"layout to size the cluster")
            total += replicas * size
        return total
    replicas = _count(workload.get("replicas"), None)
    size = _product(par, "tp", "pp")
    if replicas is None or size is None:
        return ("auto sizes the cluster as workload.replicas x tp x pp: set "
                "workload.replicas (a positive count)")
    return replicas * size


def _training_size(workload: dict[str, Any]) -> int | str:
    """tp x pp x cp x dp, or the reason it cannot be known."""
    par = workload.get("parallelism")
    dp = _count(par.get("dp") if isinstance(par, dict) else None, None)
    size = _product(par, "tp", "pp", "cp")
    if dp is None or size is None:
        return ("auto sizes the cluster as tp x pp x cp x dp: set "
                "workload.parallelism.dp (a positive count)")
    return dp * size


def resolve_auto(data: Any) -> Any:
    """``data`` (a raw scenario mapping) with ``cluster.accelerators: auto`` replaced by the
    layout's accelerator count, or by an :class:`Unresolved` saying what is missing."""
    if not isinstance(data, dict):
        return data
    cluster = data.get("cluster")
    if not isinstance(cluster, dict) or cluster.get("accelerators") != AUTO:
        return data
    workload = data.get("workload")
    workload = workload if isinstance(workload, dict) else {}
    size = (_training_size(workload) if workload.get("kind") == "training"
            else _serving_size(workload))
    value: Any = size if isinstance(size, int) else Unresolved(size)
    return {**data, "cluster": {**cluster, "accelerators": value}}
