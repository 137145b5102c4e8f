"""Hardware profile: one accelerator system, every number with its unit and source.

A profile describes one device (its peak FLOP/s, memory, power, price), how devices are
joined (a scale-up domain such as an NVLink switch, an xGMI mesh or a TPU ICI torus, and a
scale-out fabric between domains) and the fractions of peak that real kernels achieve.
Link bandwidths are stored per direction (one-way), whatever the YAML said, because
collective-time models need the one-way figure; ``direction`` says what the YAML meant.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field, model_validator

from simulator.profiles.calibration_record import CalibrationRecord
from simulator.profiles.collective_size_curve import CollectiveSizeCurve
from simulator.profiles.gemm_efficiency import GemmEfficiency
from simulator.profiles.interconnect import ScaleOut, ScaleUp
from simulator.profiles.numbers import SPEC_CONFIG, PositiveInt
from simulator.profiles.precision import Precision
from simulator.profiles.purchase_unit import PER_ACCELERATOR, PurchaseUnit
from simulator.profiles.quantities import (
    Bandwidth,
    Bytes,
    FlopRate,
    Fraction,
    NonNegativePower,
    NonNegativeSeconds,
    PositiveRatio,
    Power,
    Seconds,
    Share,
    Sourced,
    Usd,
    UsdPerHour,
)


class DeviceKind(StrEnum):
    """What kind of accelerator a profile describes."""

    GPU = "gpu"
    TPU = "tpu"
    ASIC = "asic"


class Compute(BaseModel):
    """The device's peak arithmetic, per precision."""

    model_config = SPEC_CONFIG

    peak_flops: dict[Precision, Sourced[FlopRate]] = Field(
        description="dense peak FLOP/s (or OP/s for integers) per precision, per device"
    )
    fp8_transposed_copies: bool = Field(
        False, description="the tensor cores read 8-bit operands only row-wise, so training "
                           "writes a transposed copy of each quantized tensor for the "
                           "gradient GEMMs (Hopper); false where one copy serves both "
                           "(Blackwell)")
    matrix_unit_width: Sourced[PositiveInt] | None = Field(
        None, description="width of the systolic matrix unit (a TPU MXU's columns): an "
                          "attention core whose head dim is narrower fills only head_dim/"
                          "width of it, so its efficiency is scaled by min(1, head_dim / "
                          "width); absent (GPUs, whose tensor cores issue small fixed "
                          "tiles): no scaling")

    @model_validator(mode="after")
    def _has_a_training_precision(self) -> Compute:
        if not self.peak_flops:
            raise ValueError("peak_flops must list at least one precision (e.g. bf16)")
        return self


class Memory(BaseModel):
    """The device's HBM (capacity, bandwidth) and on-chip SRAM."""

    model_config = SPEC_CONFIG

    capacity: Sourced[Bytes] = Field(description="usable HBM capacity per device")
    bandwidth: Sourced[Bandwidth] = Field(description="peak HBM bandwidth per device")
    on_chip_sram: Sourced[Bytes] = Field(description="on-chip SRAM / last-level cache")


class PowerSpec(BaseModel):
    """What one device draws: at full load, idle, and its share of the rest of the system."""

    model_config = SPEC_CONFIG

    tdp: Sourced[Power] = Field(description="device thermal design / board power")
    idle: Sourced[NonNegativePower] = Field(description="device power when idle")
    system_per_device: Sourced[NonNegativePower] = Field(
        description="the device's share of host CPUs, NICs, switches and fans at load"
    )

    @model_validator(mode="after")
    def _idle_below_tdp(self) -> PowerSpec:
        if self.idle.value >= self.tdp.value:
            raise ValueError(f"idle power {self.idle.value:g} W must be below the TDP "
                             f"{self.tdp.value:g} W")
        return self


class CloudPrice(Sourced[UsdPerHour]):
    """An on-demand cloud price per device-hour, with who quoted it and when."""

    provider: str
    date: str = Field(description="when the price was quoted, e.g. 2026-05")


class Price(BaseModel):
    """What a device costs to buy (where it can be bought) and to rent."""

    model_config = SPEC_CONFIG

    purchase_per_device: Sourced[Usd] | None = Field(
        None, description="purchase price per device incl. its share of host, network and rack "
                          "(absent for rent-only parts such as TPUs)"
    )
    cloud_per_device_hour: CloudPrice
    illustrative: bool = Field(
        False, description="true where the prices are stand-ins (a template's example "
                           "figures), not quotes: every run that prices the device with them "
                           "warns so; set false once you enter real prices")


class AttentionEfficiency(BaseModel):
    """Achievable fraction of peak for fused attention kernels (FlashAttention-style).

    Attention cores reach less of peak than GEMMs of the same FLOPs (softmax and rescaling
    between the two matmuls, causal masking, and a backward pass of five matmuls with atomic
    or split reductions), so they get their own large-size fractions; the size curve is the
    GEMM's ``half_size_flops``.
    """

    model_config = SPEC_CONFIG

    forward: Sourced[Fraction] = Field(description="large-size fraction of peak, forward")
    backward: Sourced[Fraction] = Field(description="large-size fraction of peak, backward")
    fp8_forward: Sourced[Fraction] | None = Field(
        None, description="large-size fraction of the fp8 peak that an fp8 attention kernel "
                          "reaches, forward (workload.fp8_attention); absent: no fp8 attention")
    fp8_backward: Sourced[Fraction] | None = Field(
        None, description="the same, backward")


class AllToAllEfficiency(BaseModel):
    """What expert-parallel all-to-all kernels (DeepEP, Hybrid-EP, NVLinkOneSided) reach.

    Dispatch and combine send every token copy straight to its expert's rank, so their
    bandwidth differs from a ring collective's; inside a domain all peers are written at
    once, so a small exchange costs one fixed floor rather than a step per peer. Absent
    fields fall back to the collective efficiencies and to (n-1) link latencies.
    """

    model_config = SPEC_CONFIG

    scale_up: Sourced[PositiveRatio] = Field(
        description="all-to-all bandwidth per device / one-way scale-up link bandwidth")
    scale_out: Sourced[PositiveRatio] | None = Field(
        None, description="all-to-all bandwidth per device across domains / its own NIC's "
                          "one-way bandwidth (all-to-all cannot aggregate several NICs)")
    latency: Sourced[NonNegativeSeconds] | None = Field(
        None, description="time of one small dispatch or combine inside a domain (the "
                          "latency floor); across domains the scale-out latency is added")


class Efficiency(BaseModel):
    """The fractions of peak that real kernels and collectives reach, and the fixed cost per
    kernel."""

    model_config = SPEC_CONFIG

    gemm: GemmEfficiency
    attention: AttentionEfficiency | None = Field(
        None, description="fused attention kernels; absent: they run at the GEMM efficiency")
    hbm: Sourced[Fraction] = Field(description="achievable fraction of peak HBM bandwidth")
    scale_up_collective: Sourced[PositiveRatio] = Field(
        description="bus bandwidth of large ring collectives / one-way link bandwidth")
    scale_out_collective: Sourced[PositiveRatio] = Field(
        description="bus bandwidth of large collectives across domains / one-way NIC bandwidth")
    collective_size_curve: CollectiveSizeCurve | None = Field(
        None, description="how a training library collective's scale-up bus bandwidth grows "
                          "with its buffer size; absent: the large-message value at all sizes")
    kernel_overhead: Sourced[NonNegativeSeconds] = Field(
        description="fixed cost per kernel launch (launch + tail), added to each operation"
    )
    quantize: Sourced[Fraction] | None = Field(
        None, description="fraction of peak HBM bandwidth that low-precision quantization "
                          "kernels (amax, cast, transpose) reach; absent: the hbm fraction")
    host_launch: Sourced[NonNegativeSeconds] | None = Field(
        None, description="host (CPU) time to launch one kernel from an eager framework; a "
                          "pass cannot run faster than its kernels' launches, nor the "
                          "distributed optimizer's eager tail. Absent: the host is never "
                          "the bound and no gradient buffer is zeroed (e.g. XLA-compiled "
                          "TPUs)")
    graph_launch: Sourced[NonNegativeSeconds] | None = Field(
        None, description="host time per kernel when a pass is replayed as a CUDA/HIP graph "
                          "(workload.cuda_graphs); absent: host_launch")
    all_to_all: AllToAllEfficiency | None = Field(
        None, description="expert-parallel all-to-all kernels; absent: the collective "
                          "efficiencies and per-peer latencies")
    collective_sm_share: Sourced[Share] | None = Field(
        None, description="share of the device's compute units (SMs, CUs) that a running "
                          "collective's kernels occupy (NCCL/RCCL: one thread block per "
                          "channel); training compute that overlaps a data-parallel "
                          "collective runs on the rest. Absent: 0 (collectives run on "
                          "dedicated engines, or not modelled)")


class HostLink(BaseModel):
    """The device's link to host memory (PCIe, NVLink-C2C), as a copy engine achieves it:
    what activation offloading moves saved activations over."""

    model_config = SPEC_CONFIG

    bandwidth: Sourced[Bandwidth] = Field(
        description="achieved copy bandwidth per device and direction (device to host and "
                    "host to device), e.g. nvbandwidth or TransferBench")


class Reliability(BaseModel):
    """How often a job is interrupted by failures: causes that come with each accelerator
    (the device, its NIC port and cable, a rank's software) and causes that come with each
    host (CPU, memory, disk, power, unplanned host maintenance), so that a job's failure rate
    follows its accelerators and the nodes it occupies."""

    model_config = SPEC_CONFIG

    mtbf_per_accelerator: Sourced[Seconds] = Field(
        description="mean time between job-interrupting failures of causes that come with "
                    "each accelerator (device hours / interruptions); without "
                    "mtbf_per_node, every cause, host and network included"
    )
    mtbf_per_node: Sourced[Seconds] | None = Field(
        None, description="mean time between job-interrupting failures of causes that come "
                          "with each host of devices_per_node devices (node hours / "
                          "interruptions); absent: none apart from mtbf_per_accelerator")


class HardwareProfile(BaseModel):
    """One accelerator system. Immutable; what-ifs build a new one."""

    model_config = SPEC_CONFIG

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    name: str
    vendor: str
    kind: DeviceKind
    release: str | None = None
    description: str = ""
    devices_per_node: Sourced[PositiveInt] = Field(description="devices per host / server")
    purchase_unit: PurchaseUnit | None = Field(
        None, description="the unit the part is bought or rented in (server, rack, instance, "
                          "TPU slice); plans, comparisons and sweeps bill whole units. "
                          "Absent: single accelerators")
    compute: Compute
    memory: Memory
    scale_up: ScaleUp
    scale_out: ScaleOut
    power: PowerSpec
    price: Price
    efficiency: Efficiency
    reliability: Reliability
    host_link: HostLink | None = Field(
        None, description="link to host memory for activation offload; absent: offload "
                          "cannot be priced and is refused")
    sources: dict[str, str] = Field(
        default_factory=dict, description="source ids used in 'source' fields, with URLs"
    )
    calibration: CalibrationRecord | None = Field(
        None, description="written by `xpusim calibrate`: which numbers were fitted to which "
                          "runs, and the fit's error on them (docs/calibration.md)")

    def peak(self, precision: Precision | str) -> float:
        """Dense peak FLOP/s at ``precision``; raises ``KeyError`` if unsupported."""
        return self.compute.peak_flops[Precision(precision)].value

    def supports(self, precision: Precision | str) -> bool:
        """Whether the profile has a peak for ``precision`` (a workload needs one)."""
        return Precision(precision) in self.compute.peak_flops

    @property
    def unit(self) -> PurchaseUnit:
        """The purchase unit (single accelerators where the profile states none)."""
        return self.purchase_unit or PER_ACCELERATOR

    @property
    def hbm_capacity(self) -> float:
        """HBM capacity per device, bytes."""
        return self.memory.capacity.value

    @property
    def hbm_bandwidth(self) -> float:
        """Peak HBM bandwidth per device, bytes/s."""
        return self.memory.bandwidth.value

    @model_validator(mode="after")
    def _efficiencies_cover_peaks(self) -> HardwareProfile:
        missing = set(self.efficiency.gemm.large) - set(self.compute.peak_flops)
        if missing:
            names = ", ".join(sorted(p.value for p in missing))
            raise ValueError(f"efficiency.gemm.large lists {names} but compute.peak_flops "
                             f"has no peak for it")
        return self
