"""`workload.shared_training`: a training job on the accelerators an autoscaled pool leaves.

A serving fleet sized for its peak idles in the troughs. Declaring a training scenario here
runs that job on the accelerators the serving replicas do not hold (starting, serving and
draining replicas all hold theirs), at the widest data-parallel width that fits; serving
always has priority (docs/serving.md, training in the troughs). The training scenario is
read when the serving scenario is validated, so the workload carries it resolved
(:attr:`SharedTraining.training`); its hardware must be the serving cluster's.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from simulator.errors import InputError
from simulator.profiles.input_files import not_a_readable_file
from simulator.profiles.numbers import SPEC_CONFIG, PositiveInt
from simulator.profiles.overrides import apply_overrides
from simulator.profiles.quantities import NonNegativeSeconds, Seconds
from simulator.profiles.training import TrainingWorkload

if TYPE_CHECKING:
    from simulator.profiles.scenario import Scenario


class SharedTraining(BaseModel):
    """A training job filling the fleet's troughs (docs/serving.md, training in the
    troughs)."""

    model_config = SPEC_CONFIG

    scenario: str = Field(description="the training scenario (kind: training), a path "
                                      "relative to this file; its layout but dp, its batch "
                                      "and its checkpoint storage are used, its cluster size "
                                      "is not")
    set: tuple[str, ...] = Field((), description="PATH=VALUE overrides applied to the "
                                                 "training scenario, as with --set")
    checkpoint_interval_s: Seconds | None = Field(
        None, description="training seconds between checkpoints (taken at the first step "
                          "boundary after it); default the training scenario's "
                          "checkpoint.interval_s (which must then be a number, not auto)")
    restart_s: NonNegativeSeconds | None = Field(
        None, description="what each resize costs: stop, restart at the new width and "
                          "reload the checkpoint; default the training scenario's "
                          "failures.restart_s")
    grow_delay_s: NonNegativeSeconds = Field(
        0.0, description="how long accelerators must stay free before the job grows onto "
                         "them (shrinking is immediate: serving has priority); default 0")
    min_data_parallel: PositiveInt = Field(
        1, description="the narrowest data-parallel width the job runs at; below it the job "
                       "stops until more accelerators are free")

    _training: Any = PrivateAttr(None)

    @field_validator("scenario")
    @classmethod
    def _resolve_path(cls, value: str, info: ValidationInfo) -> str:
        """A relative path is relative to the serving scenario's directory."""
        path = Path(value).expanduser()
        base = (info.context or {}).get("base_dir")
        if not path.is_absolute() and base:
            path = Path(base) / path
        problem = not_a_readable_file(path)
        if problem is not None:
            raise ValueError(f"training scenario {path}: {problem}")
        return str(path.resolve())

    @model_validator(mode="after")
    def _load(self, info: ValidationInfo) -> SharedTraining:
        """Read, override and validate the training scenario (its own errors name its file
        and line); it must be a training scenario with a checkpoint cadence."""
        if (info.context or {}).get("shared_training"):
            raise ValueError("this scenario is itself named as another's shared training "
                             "job: shared_training must name a training scenario")
        from simulator.profiles.scenario import Scenario
        from simulator.profiles.validation import validate
        from simulator.profiles.yaml_source import read_yaml

        path = Path(self.scenario)
        doc = read_yaml(path)
        if not isinstance(doc.data, dict):
            raise InputError("a scenario must be a mapping of fields", file=str(path))
        training = validate(Scenario, apply_overrides(doc.data, self.set), doc,
                            context={"base_dir": path.parent, "shared_training": True})
        if training.kind != "training":
            raise ValueError(f"scenario: {path.name} has workload.kind {training.kind}; "
                             f"shared_training runs a training scenario")
        w = training.workload
        assert isinstance(w, TrainingWorkload)
        if self.checkpoint_interval_s is None and not isinstance(w.checkpoint.interval_s, float):
            raise ValueError(f"checkpoint_interval_s: needed, since {path.name} leaves "
                             f"checkpoint.interval_s at auto (its optimum is for failures, "
                             f"not for preemption by serving)")
        self._training = training
        return self

    @property
    def training(self) -> Scenario:
        """The training scenario, resolved and validated."""
        assert self._training is not None
        return self._training

    @property
    def workload(self) -> TrainingWorkload:
        """The training scenario's workload."""
        w = self.training.workload
        assert isinstance(w, TrainingWorkload)
        return w

    @property
    def interval_s(self) -> float:
        """Training seconds between checkpoints."""
        if self.checkpoint_interval_s is not None:
            return self.checkpoint_interval_s
        interval = self.workload.checkpoint.interval_s
        assert isinstance(interval, float)
        return interval

    @property
    def resize_s(self) -> float:
        """Seconds each resize costs."""
        return self.restart_s if self.restart_s is not None else self.workload.failures.restart_s

    @property
    def block(self) -> int:
        """Accelerators of one data-parallel rank: its model-parallel block tp*pp*cp."""
        par = self.workload.parallelism
        return par.tp * par.pp * par.cp
