"""The word embedding's gradient all-reduce between a pipeline's first and last stage.

With pipeline parallelism a model whose output layer shares the input embedding's weight
(tied embeddings: GPT-2/3, Megatron's GPT models) holds two copies of the V x h table: the
first stage's embedding and the last stage's output layer. A model that trains
multi-token-prediction modules holds one too, whether or not its output layer is tied: the
last stage builds its own word embedding for the modules' lookups. Megatron keeps the copies
equal by summing their gradients every step, read in megatron-core 0.14.0,
``distributed/finalize_model_grads.py``:

- ``finalize_model_grads`` first finishes the data-parallel gradient reduction
  (``finish_grad_sync``), then the TP layer-norm all-reduce, then
  ``_allreduce_word_embedding_grads``: a blocking ``torch.distributed.all_reduce`` of the
  weight's whole ``main_grad`` over the embedding group. Nothing overlaps it; the optimizer
  (and its gradient norm, which needs every rank) waits for it.
- ``_get_shared_word_embedding_weight``: reduced when
  ``share_embeddings_and_output_weights`` or ``mtp_num_layers``; otherwise nothing.
- The tensor is the rank's vocabulary-parallel shard, V/tp x h, in the gradient buffer's
  dtype (``main_grad``: fp32 with ``grad_reduce_in_fp32``, else the parameter's 16-bit
  dtype; ``distributed_data_parallel.py``). With the distributed optimizer the whole shard
  is still reduced (the data-parallel reduce-scatter left only a slice of it current, but
  the all-reduce takes the tensor). Megatron FSDP reduces its local shard only
  (``orig_grad._local_tensor``): 1/(dp·cp) of it.
- The embedding group is the first and last rank of each pipeline
  (``parallel_state.default_embedding_ranks``): two ranks, one group per TP/CP/DP
  coordinate, all reducing at once. With one stage it is a group of one and nothing runs.
  The position-embedding group is the first stage alone
  (``default_position_embedding_ranks``), so learned positions are never reduced.
- A frozen embedding has no gradient and is skipped (LoRA).

Megatron-LM of 2021-22 did the same in ``train_step`` after its gradient all-reduce
(``backward-embedding-all-reduce``; recalled, not re-read), over the same groups (read in
megatron-core 0.2.0, ``parallel_state.initialize_model_parallel``: embedding ranks
``[ranks[0], ranks[-1]]`` "to exchange gradients between first and last stages", position
embedding ranks ``[ranks[0]]`` without an encoder-decoder split). The table is priced at the model
profile's vocabulary, as everywhere else in xpusim (Megatron pads it to a multiple of
128·tp: under 2% more bytes for GPT-3).
"""

from __future__ import annotations

from simulator.perf.collectives import CollectiveCost, collective_time
from simulator.perf.ops import Collective, Group
from simulator.profiles.hardware import HardwareProfile
from simulator.profiles.model import ModelProfile
from simulator.profiles.training import FinetuneMethod, TrainingWorkload

NAME = "embedding grads all_reduce"  # the timeline's name for it


def shares_word_embedding(model: ModelProfile, workload: TrainingWorkload, mtp: int) -> bool:
    """Whether two pipeline stages hold trained copies of the word embedding: a pipelined
    run whose output layer is tied to it, or that trains ``mtp`` > 0 modules, and that
    trains the embedding (not LoRA)."""
    if workload.parallelism.pp <= 1 or workload.finetune.method is FinetuneMethod.LORA:
        return False
    return model.tied_embeddings or mtp > 0


def embedding_grad_bytes(model: ModelProfile, workload: TrainingWorkload) -> float:
    """Bytes each rank of the embedding group all-reduces: its V/tp x h shard of the
    gradient in the buffer's dtype, 1/(dp·cp) of that under ZeRO 3 (Megatron FSDP)."""
    par = workload.parallelism
    shard = model.vocab_size * model.hidden_size / par.tp * workload.grad_bytes
    if par.zero == 3:
        shard /= (par.dp or 1) * par.cp
    return shard


def embedding_group(workload: TrainingWorkload, domain_size: int) -> Group:
    """The first and the last rank of one pipeline, ``stage_ranks`` = tp·cp·dp apart from
    one stage to the next (PP is the outermost rank dimension). They share a scale-up domain
    when the whole pipeline of that coordinate fits in one (pp·stage_ranks <= the domain);
    otherwise some pair, and so the step, crosses the scale-out network."""
    par = workload.parallelism
    stage_ranks = par.tp * par.cp * (par.dp or 1)
    if par.pp * stage_ranks <= domain_size:
        return Group(2, stage_ranks)
    return Group(2, max(domain_size, (par.pp - 1) * stage_ranks))


def embedding_grads_cost(hw: HardwareProfile, model: ModelProfile,
                         workload: TrainingWorkload, mtp: int) -> CollectiveCost | None:
    """The all-reduce the first and last stage run after their gradient reduction, priced
    by the library's collective model on the fabric the pair sits on; None where there is
    no shared copy."""
    if not shares_word_embedding(model, workload, mtp):
        return None
    group = embedding_group(workload, hw.scale_up.domain_size.value)
    cost = collective_time(hw, Collective.ALL_REDUCE, embedding_grad_bytes(model, workload),
                           group, library=True)
    return None if cost.fabric == "local" else cost
