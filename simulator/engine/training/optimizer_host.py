"""The distributed optimizer's host work after the gradient norm's synchronisation.

Megatron-core clips gradients by their global norm and reads that norm back to the host
(``get_grad_norm_fp32`` ends in ``total_norm.item()``; megatron-core 0.14.0,
``optimizer/clip_grads.py``), so the host waits there until the device has finished the
step's passes and gradient reduction. A full-iteration CUDA graph does not help: it captures
``forward_backward_func`` only (``FullCudaGraphWrapper``, ``full_cuda_graph.py``), and the
optimizer runs eagerly every step. Whatever the host launches after the norm therefore runs
on an idle device, and the device waits for each launch when its kernel is shorter than
the launch: the tail lasts the longer of the host's launches and the device's own work.

What the distributed optimizer (ZeRO 1/2) launches after the norm, read from the code:

- the clip (one multi-tensor scale) and Adam (multi-tensor launches, one at least);
- the updated shard written into the parameter buffer one tensor fragment at a time:
  ``_copy_main_params_to_model_params`` (``distrib_optimizer.py``) runs a ``copy_`` per
  fragment; with fp8 parameters Transformer Engine 2.7's
  ``_cast_master_weights_to_fp8_current_scaling`` (``pytorch/tensor/utils.py``) runs a
  ``compute_amax`` and an ``update_quantized`` per fragment, and one amax all-reduce and
  one multi-tensor scale update for all of them.

A rank owns 1/dp of every DDP bucket and a bucket holds whole tensors, so a rank holds at
least one fragment per bucket (more where its slice straddles two tensors: not counted, a
lower bound, as are the per-parameter views and Python the loops also run). ZeRO 0 copies
with one multi-tensor launch and ZeRO 3 (FSDP) gathers on its own schedule: neither is
priced here.
"""

from __future__ import annotations

import math

STEP_LAUNCHES = 2  # the clip's multi-tensor scale and Adam's multi-tensor launch
FP8_STEP_LAUNCHES = 2  # the amax all-reduce and the multi-tensor scale update
FP8_FRAGMENT_LAUNCHES = 2  # compute_amax and update_quantized per fragment
COPY_FRAGMENT_LAUNCHES = 1  # copy_ per fragment


def shard_fragments(params: float, bucket_params: float) -> int:
    """The fewest tensor fragments a rank's shard of ``params`` parameters spans: one per
    DDP bucket of ``bucket_params`` (each bucket is sharded over the data-parallel ranks)."""
    if params <= 0:
        return 0
    if bucket_params <= 0:
        raise ValueError(f"bucket_params must be positive, got {bucket_params}")
    return math.ceil(params / bucket_params)


def optimizer_launches(fragments: int, *, fp8_params: bool) -> int:
    """Kernels the host launches after the gradient norm for a shard of ``fragments``."""
    if fragments <= 0:
        return 0
    if fp8_params:
        return STEP_LAUNCHES + FP8_STEP_LAUNCHES + FP8_FRAGMENT_LAUNCHES * fragments
    return STEP_LAUNCHES + COPY_FRAGMENT_LAUNCHES * fragments


def exposed_host_s(*, launches: int, host_launch_s: float, device_after_sync_s: float) -> float:
    """Seconds the optimizer tail lasts beyond its device work: the host's launches when
    they take longer than the kernels they launch, else nothing."""
    return max(0.0, launches * host_launch_s - device_after_sync_s)
