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

- the clip (a multi-tensor scale) and Adam (multi-tensor Adam): a multi-tensor launch
  covers at most 320 chunks of 65,536 elements (TE's ``multi_tensor_applier`` chunk is
  2048 x 32; the 320 blocks, and the 64 and 36 tensors a launch of depth 2 and 4 takes,
  are ``multi_tensor_apply.cuh``'s limits, recalled from apex, whose kernels TE carries);
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

MULTI_TENSOR_CHUNK = 2048 * 32  # elements per block of a multi-tensor kernel
MULTI_TENSOR_BLOCKS = 320  # blocks per launch
CLIP_MAX_TENSORS = 64  # multi-tensor scale: depth 2 (gradient in, gradient out)
ADAM_MAX_TENSORS = 36  # multi-tensor Adam: depth 4 (gradient, weight, m, v)
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


def multi_tensor_launches(elements: float, tensors: int, max_tensors: int) -> int:
    """Launches of one multi-tensor kernel over ``tensors`` tensors of ``elements`` in all:
    a launch ends when its blocks or its tensor list fill (lower bound: tensors are not
    rounded up to whole chunks)."""
    if tensors <= 0:
        return 0
    blocks = math.ceil(elements / MULTI_TENSOR_CHUNK)
    return max(math.ceil(blocks / MULTI_TENSOR_BLOCKS), math.ceil(tensors / max_tensors))


def optimizer_launches(fragments: int, *, elements: float, fp8_params: bool) -> int:
    """Kernels the host launches after the gradient norm for a shard of ``fragments``
    holding ``elements`` parameters: the clip, Adam, and the per-fragment writes."""
    if fragments <= 0:
        return 0
    step = (multi_tensor_launches(elements, fragments, CLIP_MAX_TENSORS)
            + multi_tensor_launches(elements, fragments, ADAM_MAX_TENSORS))
    if fp8_params:
        return step + FP8_STEP_LAUNCHES + FP8_FRAGMENT_LAUNCHES * fragments
    return step + COPY_FRAGMENT_LAUNCHES * fragments


def exposed_host_s(*, launches: int, host_launch_s: float, device_after_sync_s: float) -> float:
    """Seconds the optimizer tail lasts beyond its device work: the host's launches when
    they take longer than the kernels they launch, else nothing."""
    return max(0.0, launches * host_launch_s - device_after_sync_s)
