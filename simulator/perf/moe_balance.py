"""How unevenly a MoE router loads the EP ranks: the busiest rank's share over the mean.

Every MoE layer waits for its busiest EP rank: its experts run the most rows and its
all-to-all receives (and returns) the most bytes. The imbalance ``max/mean`` of the
assignments per rank follows from how unevenly the experts are loaded and how many experts
a rank pools. A token picks each expert or not, so an expert's share of the tokens (mean
k/E) can vary across experts with a coefficient of variation (std/mean) of at most
``sqrt(E/k - 1)``; a router reaches a fraction ``rho`` of that. With ``E/ep`` experts per
rank a rank's load varies by ``cv·sqrt(ep/E)`` (sums of independent loads), and the busiest
of ``ep`` ranks sits ``z(ep)`` standard deviations above the mean, ``z`` the expected
maximum of ``ep`` standard normals (Blom's approximation, within ~0.03 for 2-256 draws):

    imbalance = min(1 + z(ep)·rho·sqrt(E/k - 1)·sqrt(ep/E), ep, E/k)

1 at ep = 1 (one rank holds every expert); the caps are all tokens on one rank, and every
token's k copies on the busiest rank.

``rho`` per load balancer is a property of the model's router and the data, so it lives in
the model profile (``moe.load_spread``, ``moe.eplb_load_spread``, each with its source). The
defaults come from TensorRT-LLM's EP study (physics_facts sec. 3; DeepSeek-R1, 256 experts
top-8, decode on 32 GB200s, EP32, 8 experts per rank, machine-translation data): without a
balancer the rank-level (max-mean)/mean averages 1.564, so
``rho = 1.564/(z(32)·sqrt(31)·sqrt(32/256)) = 0.384``; with EPLB (9 slots per rank, hot
experts replicated) 0.109, so ``rho = 0.027``. "forced" routing (Megatron-Bridge's
benchmark tables) is perfectly balanced. The study's rank loads are heavier-tailed than
normal (std 0.48 of the mean at EP32); matching the mean maximum, as here, is what the
layer time needs. SGLang's prefill on 4 x 8 H100 (EP32) ran only 15% slower unbalanced than
with a perfect EPLB, which suggests less imbalance on its data than this study's.
"""

from __future__ import annotations

import math
from statistics import NormalDist

from simulator.profiles.model import ModelProfile, MoE
from simulator.profiles.moe_routing import LoadBalancer, MoeRouting


def expected_max_normal(n: int) -> float:
    """Expected maximum of ``n`` standard normal draws (Blom 1958): 0 for one draw."""
    if n <= 1:
        return 0.0
    return NormalDist().inv_cdf((n - 0.375) / (n + 0.25))


def load_spread(moe: MoE, balancer: LoadBalancer) -> float:
    """The fraction of the largest possible expert-load spread the router reaches under
    ``balancer``: the model profile's measured ``rho`` (forced routing: 0, balanced)."""
    if balancer is LoadBalancer.FORCED:
        return 0.0
    spread = moe.eplb_load_spread if balancer is LoadBalancer.EPLB else moe.load_spread
    return spread.value


def rank_imbalance(spread: float, experts: int, top_k: int, ep: int) -> float:
    """max/mean token-expert assignments over ``ep`` ranks holding ``experts/ep`` each, for
    a router reaching ``spread`` (rho) of the largest possible spread."""
    if ep <= 1:
        return 1.0
    cv = spread * math.sqrt(max(0.0, experts / top_k - 1.0))
    imbalance = 1.0 + expected_max_normal(ep) * cv * math.sqrt(ep / experts)
    return min(imbalance, float(ep), experts / top_k)


def moe_imbalance(routing: MoeRouting, model: ModelProfile, ep: int,
                  default: LoadBalancer) -> float:
    """The imbalance a workload runs at: its explicit ``imbalance``, else its (or the
    workload kind's ``default``) load balancer's at this EP size; 1 for dense models."""
    if model.moe is None:
        return 1.0
    if routing.imbalance is not None:
        return routing.imbalance
    moe = model.moe
    spread = load_spread(moe, routing.load_balancer or default)
    return rank_imbalance(spread, moe.experts, moe.active_experts, ep)
