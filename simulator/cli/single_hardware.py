"""The commands that search or perturb one hardware profile refuse a mixed fleet."""

from __future__ import annotations

from typing import Any

from simulator.errors import InputError


def refuse_pools(data: dict[str, Any], command: str) -> None:
    """Raise unless the raw scenario ``data`` is one hardware's (no ``workload.pools``):
    ``command`` searches or perturbs one hardware profile's layouts, which a mixed fleet
    does not have, so its answer would be empty or silently about one pool."""
    workload = data.get("workload")
    if isinstance(workload, dict) and workload.get("pools") is not None:
        raise InputError(f"xpusim {command} works on one hardware profile; this scenario is a "
                         f"mixed fleet (workload.pools): run it with `xpusim run`, or vary its "
                         f"pools in separate scenario files", path="workload.pools")
