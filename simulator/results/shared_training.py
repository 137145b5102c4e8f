"""What a training job sharing an autoscaled serving fleet did: its progress, what the
resizes cost it, and how it compares with a static split and with the whole fleet."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from simulator.results.utilization import Utilization


class TrainingWidth(BaseModel):
    """The job's pace at one data-parallel width it ran at."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_parallel: int = Field(description="data-parallel width")
    accelerators: int = Field(description="accelerators it holds: data_parallel x the block")
    step_time_s: float = Field(description="one optimizer step (the global batch), simulated")
    checkpoint_every_steps: int = Field(description="steps between checkpoints")
    checkpoint_write_s: float = Field(description="each checkpoint's stall (0 when async)")


class TrainingBaseline(BaseModel):
    """The same job over the same time on a fixed set of accelerators, never resized."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_parallel: int = Field(description="its width (0: the job does not fit)")
    accelerators: int = Field(description="accelerators it holds")
    steps: int = Field(description="optimizer steps it completes over the window")
    tokens: float = Field(description="training tokens of those steps")


class SharedTrainingMetrics(BaseModel):
    """The ``inference.shared_training`` key: null unless ``workload.shared_training``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scenario: str = Field(description="the training scenario's name")
    window_s: float = Field(description="the window accounted: from t = 0 to the serving "
                                        "run's end")
    fleet_accelerators: int = Field(description="the fleet: cluster.accelerators")
    block: int = Field(description="accelerators per data-parallel rank (tp*pp*cp)")
    steps: int = Field(description="optimizer steps completed and kept over the window")
    samples: int = Field(description="sequences trained: steps x global_batch_size")
    tokens: float = Field(description="tokens trained: steps x tokens per step")
    accelerator_seconds: float = Field(description="accelerators held by the job (running "
                                                   "or restarting), integrated over time")
    restart_accelerator_seconds: float = Field(description="of those, held while restarting")
    lost_accelerator_seconds: float = Field(description="of those, running work thrown away "
                                                        "(since the last checkpoint when "
                                                        "preempted)")
    serving_accelerator_seconds: float = Field(description="accelerators held by serving "
                                                           "replicas, integrated")
    idle_accelerator_seconds: float = Field(description="accelerators neither held: the "
                                                        "fleet's time less the two")
    mean_data_parallel: float = Field(description="the job's width averaged over the window")
    resizes: int = Field(description="changes of the job's width (stops and starts included)")
    preemptions: int = Field(description="of those, shrinks forced by serving while running")
    restart_s: float = Field(description="seconds spent restarting")
    lost_work_s: float = Field(description="seconds of running work thrown away: since the "
                                           "last checkpoint at a preemption, the step in "
                                           "progress at a grow")
    lost_steps: int = Field(description="completed steps thrown away at preemptions")
    widths: list[TrainingWidth] = Field(description="each width it ran at, with its pace")
    static: TrainingBaseline = Field(description="a static split: the job alone on the "
                                                 "accelerators serving leaves at its max "
                                                 "replicas")
    whole_fleet: TrainingBaseline = Field(description="the job alone on the whole fleet")
    gained_vs_static_steps: int = Field(description="steps - static.steps")
    lost_vs_whole_fleet_steps: int = Field(description="whole_fleet.steps - steps")
    t_s: list[float] = Field(description="times the split changed (a step function)")
    serving_accelerators: list[int] = Field(description="accelerators serving holds from "
                                                        "each time")
    training_accelerators: list[int] = Field(description="accelerators the job holds from "
                                                         "each time")
    training_running: list[bool] = Field(description="whether the job runs steps from each "
                                                     "time (false: restarting or stopped)")
    fleet_activity: Utilization = Field(
        description="the job's utilization as fractions of the whole fleet over the serving "
                    "run's span (its running stretches at their step's utilization): what it "
                    "adds to the run's utilization, and so to its power")
    serving_cost_usd: float | None = Field(
        None, description="the fleet's cost times serving's share of its accelerator-seconds")
    training_cost_usd: float | None = Field(
        None, description="the fleet's cost times the job's share")
    idle_cost_usd: float | None = Field(None, description="the fleet's cost times the idle "
                                                          "share")
    serving_cost_per_million_tokens_usd: float | None = Field(
        None, description="serving's share of the cost per million tokens served (weighted "
                          "as cost_per_million_tokens_usd)")
    training_cost_per_million_tokens_usd: float | None = Field(
        None, description="the job's share of the cost per million tokens trained (null when "
                          "it trained none)")

    def fleet_utilization(self, serving: Utilization) -> Utilization:
        """The fleet's utilization: the serving replicas' (over the whole fleet) plus the
        job's, each fraction capped at 1."""
        job = self.fleet_activity
        return Utilization(**{name: min(1.0, getattr(serving, name) + getattr(job, name))
                              for name in ("compute", "memory_bandwidth", "network", "busy")})

    def priced(self, fleet_cost_usd: float) -> SharedTrainingMetrics:
        """A copy with the fleet's cost (paid once) split by accelerator-seconds."""
        whole = self.fleet_accelerators * self.window_s
        share = (lambda a: fleet_cost_usd * a / whole) if whole > 0 else (lambda a: 0.0)
        return self.model_copy(update={
            "serving_cost_usd": share(self.serving_accelerator_seconds),
            "training_cost_usd": share(self.accelerator_seconds),
            "idle_cost_usd": share(self.idle_accelerator_seconds)})
