"""Checks of a mixed fleet (``workload.pools``) against the model, its hardware and the
cluster: each pool is checked like a homogeneous fleet on its own hardware, with its
problems reported under ``workload.pools[i]``."""

from __future__ import annotations

from simulator.profiles.hardware import HardwareProfile
from simulator.profiles.inference import InferenceWorkload, Router
from simulator.profiles.layout_checks import Problem, check_inference
from simulator.profiles.model import ModelProfile

_POOL_FIELDS = {"parallelism", "replicas"}


def pool_workload(w: InferenceWorkload, index: int) -> InferenceWorkload:
    """The workload as if pool ``index`` were the whole fleet (its replicas and layout)."""
    assert w.pools is not None
    pool = w.pools[index]
    return w.model_copy(update={"pools": None, "replicas": pool.replicas,
                                "parallelism": pool.parallelism})


def _exclusive(w: InferenceWorkload) -> list[Problem]:
    """Pools replace replicas, parallelism and disaggregation: a value given for those too
    would be silently ignored, so it is refused."""
    given = [name for name in ("replicas", "parallelism", "disaggregation")
             if name in w.model_fields_set and getattr(w, name) is not None]
    return [Problem(("workload", name),
                    f"{name} cannot be given with workload.pools (each pool has its own "
                    f"replicas and parallelism; disaggregated pools are not mixed fleets)")
            for name in given]


def _moved(problem: Problem, index: int) -> Problem:
    """A pool's problem at its path under ``workload.pools[index]``."""
    path = problem.path
    if len(path) > 1 and path[0] == "workload" and path[1] in _POOL_FIELDS:
        return Problem(("workload", "pools", index, *path[1:]), problem.message)
    return problem


def pool_problems(w: InferenceWorkload, model: ModelProfile, default: HardwareProfile,
                  accelerators: int) -> list[Problem]:
    """Every pool checked on its hardware, the cluster against the pools' sum, and the
    fields pools exclude; shared problems (lengths, precision) are reported once."""
    assert w.pools is not None
    problems = _exclusive(w)
    seen: set[Problem] = set(problems)
    used = 0
    for i, pool in enumerate(w.pools):
        size = pool.replicas * pool.parallelism.devices
        used += size
        found, _ = check_inference(pool_workload(w, i), model, pool.hardware or default, size)
        for problem in (_moved(p, i) for p in found):
            if problem not in seen:
                seen.add(problem)
                problems.append(problem)
    if used != accelerators:
        problems.append(Problem(("cluster", "accelerators"),
                                f"the pools use {used} accelerators but cluster.accelerators is "
                                f"{accelerators}; a mixed fleet is its pools exactly (use "
                                f"auto)"))
    if w.router is Router.CACHE_AWARE and len(w.pools) > 1:
        problems.append(Problem(("workload", "router"),
                                "cache_aware routing ignores the pools' speeds; on a mixed "
                                "fleet use least_time (or least_loaded, round_robin)"))
    return problems
