"""The serving engine's fast pricing gives the roofline's numbers bit for bit.

:class:`Pricer` (constants looked up once, collectives memoized and vectorized) against
:func:`op_time` summed op by op; :class:`AffineOps` (op groups recovered as exact lines,
priced one size or a grid at a time) against building the ops; the plain-Python and numpy
runs of decode steps against :class:`AffineTimer`'s kernel. Equality here is ``==``, not approx.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from simulator import load_hardware, load_model
from simulator.engine.serving.decode_steps import numpy_run, price_run, python_run
from simulator.engine.serving.iteration_cost import IterationCost
from simulator.perf.affine_ops import AffineOps
from simulator.perf.collective_size import serving_library
from simulator.perf.collectives import collective_time
from simulator.perf.ops import Collective, Group, Layout
from simulator.perf.pricer import Cost, Pricer
from simulator.perf.serving_iteration import iteration_model
from simulator.profiles.catalog import hardware_ids
from tests.perf.oracles import op_by_op

CASES = [  # model, hardware, tp, ep, weight precision, kv precision
    ("llama3.1-8b", "h100-sxm", 1, 1, "bf16", "bf16"),
    ("llama3.1-70b", "h100-sxm", 8, 1, "bf16", "bf16"),
    ("llama3.1-70b", "mi300x", 2, 1, "fp8", "fp8"),
    ("llama3.1-405b", "h200-sxm", 8, 1, "fp8", "fp8"),
    ("llama2-70b", "gaudi3", 4, 1, "bf16", "bf16"),
    ("llama3.1-70b", "tpu-v5p", 4, 1, "bf16", "bf16"),
    ("deepseek-v3", "gb200-nvl72", 8, 8, "fp8", "fp8"),
    ("mixtral-8x7b", "gaudi3", 4, 1, "bf16", "bf16"),
]
IDS = [f"{c[0]}-{c[1]}-tp{c[2]}" for c in CASES]


@cache
def case(i: int):
    name, hw, tp, ep, w, kv = CASES[i]
    hardware = load_hardware(hw)
    return hardware, iteration_model(load_model(name), Layout(tp=tp, ep=ep), w, kv)


SIZES = [1, 2, 7, 64, 127, 128, 129, 500, 1000, 4097, 8192, 16384, 100_000]


@pytest.mark.parametrize("i", range(len(CASES)), ids=IDS)
def test_the_pricer_sums_op_times_exactly(i):
    hw, im = case(i)
    pricer = Pricer(hw)
    for n in (1, 37, 900, 8192):
        for ops in (im.body(n), im.head(n), im.prefill_extra(n, 3 * n, n * n / 2.0, 1),
                    im.decode_extra(n, 700 * n)):
            assert pricer.cost(ops) == op_by_op(hw, ops)


@pytest.mark.parametrize("i", range(len(CASES)), ids=IDS)
def test_fitted_body_and_head_are_the_built_ops(i):
    hw, im = case(i)
    pricer = Pricer(hw)
    for build in (im.body, im.head):
        fits = [f for f in (AffineOps(build, 1, 127), AffineOps(build, 128, 1 << 24)) if f.ok]
        for f in fits:
            xs = [x for x in SIZES if f.covers(x)]
            grid = f.grid(pricer, np.array(xs)).tolist()
            for x, row in zip(xs, grid, strict=True):
                assert f.ops(x) == build(x)
                assert f.cost(pricer, x) == op_by_op(hw, build(x)) == Cost.of_row(row)


def test_dense_bodies_are_fitted_and_moe_bodies_are_not():
    _, dense = case(1)
    assert AffineOps(dense.body, 128, 1 << 24).ok and AffineOps(dense.body, 1, 127).ok
    _, moe = case(6)  # experts touched grow nonlinearly with the tokens
    assert not AffineOps(moe.body, 128, 1 << 24).ok


@pytest.mark.parametrize("i", range(len(CASES)), ids=IDS)
def test_prompt_attention_is_priced_as_built(i):
    hw, im = case(i)
    cost = IterationCost(hw, im)
    rng = np.random.default_rng(i)
    for _ in range(60):
        sequences = int(rng.integers(1, 5))
        tokens = int(rng.integers(sequences, 9000))
        cached = int(rng.choice([0, rng.integers(0, 60_000)]))
        pairs = int(rng.integers(tokens, tokens * cached + tokens * (tokens + 1) // 2 + 2))
        got = cost.prefill(tokens, cached, pairs, sequences)
        assert got == op_by_op(hw, im.prefill_extra(tokens, cached, float(pairs), sequences))


@pytest.mark.parametrize("i", range(len(CASES)), ids=IDS)
def test_fresh_prompt_chunks_priced_in_blocks_are_priced_as_built(i):
    """A fresh chunk's attention is priced 512 lengths at a time from the fitted lines
    (``_fresh_prefill``): each length of a block, its edges and the lengths below one GEMM
    tile (not fitted) included, costs what its built ops do."""
    hw, im = case(i)
    cost = IterationCost(hw, im)
    for tokens in (1, 100, 127, 128, 129, 511, 512, 513, 1000, 1023, 1024, 5000, 8191):
        pairs = tokens * (tokens + 1) // 2
        got = cost._fresh_prefill(tokens, pairs)
        assert got == op_by_op(hw, im.prefill_extra(tokens, 0, float(pairs), 1)), tokens
    blocks = {lo: rows for (group, lo), rows in cost._blocks.items() if group == "fresh"}
    assert sum(map(len, blocks.values())) > 13  # whole blocks, not only the lengths asked for
    for lo, rows in blocks.items():
        for tokens in range(lo, lo + len(rows), 37):
            pairs = tokens * (tokens + 1) // 2
            want = op_by_op(hw, im.prefill_extra(tokens, 0, float(pairs), 1))
            assert Cost.of_row(rows[tokens - lo]) == want, tokens


@pytest.mark.parametrize("hw_id", hardware_ids())
def test_collectives_priced_many_at_once_are_priced_one_at_a_time(hw_id):
    hw = load_hardware(hw_id)
    pricer = Pricer(hw)
    sizes = np.array([0.0, 1.0, 2048.0, 81920.0, 3.5e6, 1.2e9])
    domain = hw.scale_up.domain_size.value
    for collective in Collective:
        for group in (Group(2, 1), Group(min(8, domain), 1), Group(4, domain), Group(2, 4),
                      Group(2 * domain, 1), Group(1, 1)):
            if collective is Collective.SEND_RECV and group.size > 2:
                continue
            got = pricer.collective_times(collective, sizes, group, 3).tolist()
            library = serving_library(collective)  # the serving pricer's: NCCL AG/RS
            want = [collective_time(hw, collective, s, group, library=library).time_s * 3
                    for s in sizes]
            assert got == want


@pytest.mark.parametrize("i", range(len(CASES)), ids=IDS)
def test_decode_runs_in_python_and_numpy_are_the_roofline(i):
    """Each way of pricing a run (memory-bound throughout, step by step, numpy) gives every
    step the kernel's time of its context-dependent ops added to the constant part."""
    hw, im = case(i)
    cost = IterationCost(hw, im)
    for batch, per_seq in ((1, 1), (1, 50), (16, 3), (16, 3000), (128, 700)):
        context, steps = batch * per_seq, 200
        step = cost.decode_step(batch)
        const = step.const.time_s
        want, bound = [], []
        for k in range(steps):
            x, total, cb = context + batch * k, const, 0.0
            for t in step.timers:
                op = t.time(x)
                total = total + op.time_s
                cb += op.time_s if op.compute_bound else 0.0
            want.append(total)
            bound.append(cb)
        for run in (python_run, numpy_run, price_run):
            got = run(step, const, context, batch, steps)
            assert got.time_s == want, run.__name__
            assert (got.compute_bound_s or [0.0] * steps) == bound, run.__name__
        assert cost.run_price(batch, context, 40).time_s == want[:40]
        if step.memory is not None and context >= step.memory.start:
            assert [const + step.memory.time(context + batch * k) for k in range(steps)] == want
