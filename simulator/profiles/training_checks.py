"""Checks of a training workload's memory and precision options against the hardware.

Kept apart from :mod:`simulator.profiles.layout_checks` (the parallel layout): these say
whether the device can do what the options ask (move activations to host memory),
whether the attention kernel's causal block tiles the sequence, and whether the run can
train the multi-token-prediction modules it names.
"""

from __future__ import annotations

from simulator.profiles.hardware import HardwareProfile
from simulator.profiles.layout_checks import Problem
from simulator.profiles.training import FinetuneMethod, TrainingWorkload


def check_training_options(w: TrainingWorkload, hardware: HardwareProfile) -> list[Problem]:
    """Problems with the workload's offload and precision options on ``hardware``."""
    problems = []
    if w.offload.activations != 0 and hardware.host_link is None:  # a share, or fit
        problems.append(Problem(("workload", "offload", "activations"),
                                f"activation offload needs the host-link bandwidth, and "
                                f"{hardware.id} has no host_link in its profile"))
    attention = hardware.efficiency.attention
    if w.fp8_attention and (attention is None or attention.fp8_forward is None
                            or attention.fp8_backward is None):
        problems.append(Problem(("workload", "fp8_attention"),
                                f"fp8 attention needs the fp8 attention efficiencies "
                                f"(efficiency.attention.fp8_forward, fp8_backward), and "
                                f"{hardware.id} has none in its profile"))
    return problems + _attention_block(w) + _mtp(w)


def _mtp(w: TrainingWorkload) -> list[Problem]:
    """Problems with the workload's multi-token-prediction modules: LoRA adapters train the
    main model only, so a LoRA run trains no MTP module."""
    if w.mtp_layers and w.finetune.method is FinetuneMethod.LORA:
        return [Problem(("workload", "mtp_layers"),
                        f"{w.mtp_layers} with LoRA: adapters train the main model, not its "
                        f"multi-token-prediction modules; use 0 or full training")]
    return []


def _attention_block(w: TrainingWorkload) -> list[Problem]:
    """A causal block only exists in a fused kernel, and it tiles the sequence whole."""
    block, where = w.attention_block, ("workload", "attention_block")
    if block is None:
        return []
    if not w.flash_attention:
        return [Problem(where, "attention_block needs flash_attention: only a fused kernel "
                               "skips the blocks a causal mask empties")]
    if w.seq_len % block:
        return [Problem(where, f"attention_block {block} must divide seq_len {w.seq_len} "
                               "(Splash attention tiles the sequence in whole blocks)")]
    if w.parallelism.cp > 1:
        return [Problem(where, "attention_block is priced without context parallelism "
                               f"(parallelism.cp is {w.parallelism.cp})")]
    return []
