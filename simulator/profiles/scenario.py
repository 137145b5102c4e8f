"""A scenario: hardware x cluster x model x workload (+ cost assumptions and a seed).

``hardware`` and ``model`` may be built-in ids, paths (relative to the scenario file) or
inline mappings; they are resolved while validating, so a :class:`Scenario` always holds
the full profiles. Derived values (dp, replicas, sequence parallelism, KV-cache precision)
are filled in, so what you read back is the fully resolved scenario.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from simulator.errors import UnknownProfile, XpusimError
from simulator.profiles.auto_cluster import check_resolved, resolve_auto
from simulator.profiles.catalog import load_hardware, load_model
from simulator.profiles.cost import CostAssumptions
from simulator.profiles.fleet_pools import default_hardware
from simulator.profiles.hardware import HardwareProfile
from simulator.profiles.inference import InferenceWorkload
from simulator.profiles.layout_checks import (
    Problem,
    check_inference,
    check_training,
    resolve_dp,
)
from simulator.profiles.model import ModelProfile
from simulator.profiles.numbers import SPEC_CONFIG, Accelerators, Seed
from simulator.profiles.pool_checks import pool_problems, pool_workload
from simulator.profiles.precision import Precision
from simulator.profiles.shared_training_checks import shared_training_problems
from simulator.profiles.torus_slice import on_slice
from simulator.profiles.training import TrainingWorkload
from simulator.profiles.training_checks import check_training_options

Workload = Annotated[TrainingWorkload | InferenceWorkload, Field(discriminator="kind")]


class LayoutProblems(XpusimError):
    """Problems found by joining the workload to the model and cluster (with field paths)."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(f"{'.'.join(map(str, p.path))}: {p.message}"
                                   for p in problems))


class Cluster(BaseModel):
    """The fleet's size."""

    model_config = SPEC_CONFIG

    accelerators: Annotated[Accelerators, BeforeValidator(check_resolved)] = Field(
        description="total accelerators in the fleet, or `auto`: the layout's product "
                    "(serving: workload.replicas x tp x pp, or each disaggregated pool's "
                    "replicas x size, or the sum over workload.pools; training: tp x pp x "
                    "cp x dp, with workload.parallelism.dp given)")


def _base_dir(info: ValidationInfo) -> Path | None:
    context = info.context or {}
    base = context.get("base_dir")
    return Path(base) if base else None


class Scenario(BaseModel):
    """What to simulate: a hardware profile, a cluster size, a model and a workload, with cost
    assumptions and a seed."""

    model_config = SPEC_CONFIG

    name: str = Field(description="a title for tables and reports")
    description: str = Field("", description="what the scenario models and its assumptions")
    hardware: HardwareProfile = Field(
        description="built-in profile id (`xpusim profiles list`), a path to a profile YAML "
                    "(relative to this file), or an inline mapping; with workload.pools it "
                    "may be left out when the first pool names its hardware")
    cluster: Cluster
    model: ModelProfile = Field(
        description="built-in model id (`xpusim models list`), a path, or an inline mapping")
    workload: Workload = Field(description="what runs: `kind: training` or `kind: inference`")
    cost: CostAssumptions = Field(CostAssumptions(), description="how the fleet is paid for")
    seed: Seed = Field(0, description="seeds every random draw (arrivals, lengths, failures)")

    @model_validator(mode="before")
    @classmethod
    def _auto_cluster(cls, data: Any) -> Any:
        """``cluster.accelerators: auto`` becomes the layout's count (profiles.auto_cluster);
        a mixed fleet without ``hardware`` takes its first pool's (profiles.fleet_pools)."""
        return resolve_auto(default_hardware(data))

    @field_validator("hardware", mode="before")
    @classmethod
    def _resolve_hardware(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            try:
                return load_hardware(value, _base_dir(info))
            except UnknownProfile as exc:  # reported against this field, not as a file error
                raise ValueError(exc.message) from None
        return value

    @field_validator("model", mode="before")
    @classmethod
    def _resolve_model(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            try:
                return load_model(value, _base_dir(info))
            except UnknownProfile as exc:
                raise ValueError(exc.message) from None
        return value

    @model_validator(mode="after")
    def _join(self) -> Scenario:
        w = self.workload
        n = self.cluster.accelerators
        if isinstance(w, TrainingWorkload):
            problems = check_training(w, self.model, self.hardware, n)
            problems += check_training_options(w, self.hardware)
            if problems:
                raise LayoutProblems(problems)
            par = w.parallelism
            resolved = par.model_copy(update={
                "dp": resolve_dp(w, n),
                "sequence_parallel": par.sequence_parallel if par.sequence_parallel is not None
                else par.tp > 1,
            })
            w = w.model_copy(update={"parallelism": resolved})
        else:
            problems = (pool_problems(w, self.model, self.hardware, n) if w.pools is not None
                        else check_inference(w, self.model, self.hardware, n)[0])
            problems += shared_training_problems(w, self.hardware, n)
            if problems:
                raise LayoutProblems(problems)
            update: dict[str, Any] = {}
            if w.pools is not None:  # every pool names its hardware once resolved
                update["pools"] = [p.model_copy(update={"hardware": p.hardware or self.hardware})
                                   for p in w.pools]
            elif w.replicas is None and w.disaggregation is None:
                update["replicas"] = n // w.parallelism.devices
            if w.kv_cache_precision is None:
                narrow = w.precision.bytes_per_element <= 1
                update["kv_cache_precision"] = Precision.FP8 if narrow else Precision.BF16
            w = w.model_copy(update=update)
        # a TPU run is provisioned as a published slice of its torus (profiles.torus_slice)
        return self.model_copy(update={"workload": w, "hardware": on_slice(self.hardware, n)})

    # ---- convenience --------------------------------------------------------------------
    @property
    def kind(self) -> str:
        """``training`` or ``inference``: which engine runs the scenario."""
        return self.workload.kind

    def pools(self) -> list[Scenario]:
        """The fleet as homogeneous scenarios, one per pool of ``workload.pools`` (each on its
        hardware, with its replicas and accelerators): what prices, sizes and bills a pool.
        A scenario without pools is its own one pool."""
        w = self.workload
        if not isinstance(w, InferenceWorkload) or w.pools is None:
            return [self]
        parts = []
        for i, pool in enumerate(w.pools):
            assert pool.hardware is not None
            n = pool.replicas * pool.parallelism.devices
            parts.append(self.model_copy(update={
                "hardware": on_slice(pool.hardware, n), "workload": pool_workload(w, i),
                "cluster": Cluster(accelerators=n)}))
        return parts

    @property
    def hardware_id(self) -> str:
        """The hardware the results name: the profile's id, or a mixed fleet's ids joined
        with '+' in pool order (each once)."""
        w = self.workload
        if not isinstance(w, InferenceWorkload) or w.pools is None:
            return self.hardware.id
        ids = [p.hardware.id if p.hardware else self.hardware.id for p in w.pools]
        return "+".join(dict.fromkeys(ids))

    @property
    def warnings(self) -> list[str]:
        """Things worth telling the user that are not errors (e.g. idle accelerators)."""
        w = self.workload
        if isinstance(w, InferenceWorkload) and w.pools is not None:
            return []  # (a mixed fleet is its pools exactly: no idle accelerators)
        if isinstance(self.workload, InferenceWorkload):
            return check_inference(self.workload, self.model, self.hardware,
                                   self.cluster.accelerators)[1]
        return []

    def summary(self) -> dict[str, Any]:
        """The identifying keys every result carries."""
        return {
            "scenario": self.name,
            "hardware": self.hardware_id,
            "model": self.model.id,
            "accelerators": self.cluster.accelerators,
            "kind": self.kind,
            "precision": self.workload.precision.value,
            "seed": self.seed,
        }
