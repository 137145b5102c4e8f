"""Property-based fuzzing of the command line: generated ``--set`` values and scenario
mappings must end in exit 0 with strict JSON, or exit 2 with a few ``error:`` lines, never a
traceback (an exception escaping ``main``) and never a hang.

The default profile runs in well under a minute; ``XPUSIM_FUZZ=long`` runs many more
examples (``XPUSIM_FUZZ=long pytest tests/test_hardening_fuzz.py``).
"""

from __future__ import annotations

import json
import math
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.cli.main import main

LONG = os.environ.get("XPUSIM_FUZZ") == "long"
S = "scenarios/llama3.1-8b-h100-serving.yaml"
T = "scenarios/llama3.1-8b-h100-training.yaml"

FIELDS = [
    "seed", "name", "cluster.accelerators", "cluster", "workload.precision",
    "workload.arrivals.rate_per_s", "workload.arrivals.requests", "workload.arrivals.cv",
    "workload.arrivals.process", "workload.arrivals.duration_s", "workload.warmup_requests",
    "workload.prompt_tokens", "workload.output_tokens", "workload.parallelism.tp",
    "workload.batching.max_batch_size", "workload.batching.kv_cache_tokens",
    "workload.batching.chunked_prefill", "workload.slo.percentile", "workload.slo.ttft_s",
    "cost.pue", "cost.mode", "cost.depreciation_years", "cost.reserved_discount",
    "cost.cloud_usd_per_hour", "hardware", "model", "workload.seq_len", "workload.tokens",
    "workload.steps", "workload.parallelism.zero", "workload.checkpoint.interval_s",
    "workload.failures.mtbf_per_accelerator_hours", "workload.failures.mtbf_per_node_hours",
    "workload.kind", "workload",
]


def _yaml_float(x: float) -> str:
    if math.isnan(x):
        return ".nan"
    if math.isinf(x):
        return ".inf" if x > 0 else "-.inf"
    return repr(x)


scalars = st.one_of(
    st.integers(-10**40, 10**40).map(str),
    st.integers(-3, 3000).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(_yaml_float),
    st.sampled_from(["true", "false", "null", "~", "[]", "{}", "auto", "5 GB", "10 ms",
                     "[/bold]", "\x1b[2J", "'", "\"", "[1, 2", "{a: 1", "*x", "&a [*a]",
                     "fp8", "bf16", "poisson", "owned", "h100-sxm", "llama3.1-8b"]),
    st.text(max_size=12),
)
distributions = st.builds(
    lambda kind, a, b: f"{{dist: {kind}, mean: {a}, std: {b}, value: {a}, low: {a}, "
                       f"high: {b}, values: [{a}, {b}]}}",
    st.sampled_from(["fixed", "uniform", "normal", "lognormal", "empirical", "bogus"]),
    scalars, scalars)
values = st.one_of(scalars, distributions)
assignments = st.lists(st.tuples(st.sampled_from(FIELDS), values).map(lambda t: f"{t[0]}={t[1]}"),
                       min_size=1, max_size=3)


def _strict_json(text: str) -> object:
    def refuse(name: str) -> None:
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def _check(code: int, out: str, err: str) -> None:
    if code == 0:
        if not out.startswith("ok: "):  # `validate` says ok; the others print JSON
            _strict_json(out)
        return
    assert code == 2, (code, err)
    lines = err.strip().splitlines()
    assert lines and all(line.startswith("error: ") for line in lines), err
    assert len(lines) <= 20, err
    assert out == ""


def _run(capsys, *args: str) -> None:
    code = main(list(args))
    captured = capsys.readouterr()
    _check(code, captured.out, captured.err)


_SETTINGS = dict(deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow])


@settings(max_examples=1000 if LONG else 120, **_SETTINGS)
@given(scenario=st.sampled_from([S, T]), sets=assignments)
def test_show_with_generated_overrides(capsys, scenario, sets):
    _run(capsys, "show", scenario, *(a for s in sets for a in ("--set", s)))


# Small runs only: the sizes are pinned after the generated values.
_RUN_FIELDS = ["workload.prompt_tokens", "workload.output_tokens", "workload.slo.percentile",
               "workload.batching.max_batch_size", "workload.batching.chunked_prefill",
               "cost.pue", "cost.mode", "cost.depreciation_years", "seed", "name",
               "workload.precision", "workload.warmup_requests"]


@settings(max_examples=150 if LONG else 12, **_SETTINGS)
@given(sets=st.lists(st.tuples(st.sampled_from(_RUN_FIELDS), values)
                     .map(lambda t: f"{t[0]}={t[1]}"), min_size=1, max_size=2))
def test_run_with_generated_overrides(capsys, sets):
    pinned = ["workload.arrivals={process: poisson, rate_per_s: 20, requests: 30}",
              "cluster.accelerators=1"]
    _run(capsys, "run", S, "--quiet", "--format", "json",
         *(a for s in [*sets, *pinned] for a in ("--set", s)))


mappings = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(),
              st.text(max_size=8)),
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.sampled_from(
                                   ["name", "hardware", "cluster", "model", "workload", "kind",
                                    "seed", "accelerators", "arrivals", "dist", "x"]),
                                   children, max_size=4)),
    max_leaves=12)


@settings(max_examples=400 if LONG else 60, **_SETTINGS)
@given(data=st.dictionaries(st.sampled_from(["name", "hardware", "cluster", "model",
                                             "workload", "cost", "seed", "extra"]),
                            mappings, max_size=6))
def test_validate_generated_scenario_mappings(tmp_path_factory, capsys, data):
    path = tmp_path_factory.mktemp("fuzz") / "s.yaml"
    path.write_text(json.dumps(data, allow_nan=False) if _finite(data) else "{}")
    _run(capsys, "validate", str(path))


def _finite(data: object) -> bool:
    try:
        json.dumps(data, allow_nan=False)
    except ValueError:
        return False
    return True


def _leaves(node: object, path: tuple = ()) -> list[tuple]:
    """Every scalar leaf of a parsed YAML mapping, by its key path."""
    if isinstance(node, dict):
        return [leaf for key, value in node.items() for leaf in _leaves(value, (*path, key))]
    if isinstance(node, list):
        return [leaf for i, value in enumerate(node) for leaf in _leaves(value, (*path, i))]
    return [path]


def _profile() -> dict:
    import yaml

    with open("hardware_profiles/h100-sxm.yaml") as handle:
        return yaml.safe_load(handle)


_PROFILE_LEAVES = _leaves(_profile())
leaf_values = st.one_of(st.integers(-10**30, 10**30), st.floats(), st.booleans(), st.none(),
                        st.text(max_size=10), st.sampled_from(["1 TB/s", "5 GB", "-1 W", "0"]))


@settings(max_examples=400 if LONG else 60, **_SETTINGS)
@given(changes=st.lists(st.tuples(st.sampled_from(_PROFILE_LEAVES), leaf_values), min_size=1,
                        max_size=3))
def test_validate_generated_hardware_profiles(tmp_path_factory, capsys, changes):
    profile = _profile()
    for path, value in changes:
        node = profile
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    target = tmp_path_factory.mktemp("fuzz") / "hw.yaml"
    target.write_text(json.dumps(profile) if _finite(profile) else "{}")
    _run(capsys, "profiles", "show", str(target), "--format", "json")


_TRACE_CELLS = st.one_of(
    st.integers(-10**30, 10**30).map(str), st.integers(0, 500).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "\u00b2", "\u0663", "1e3", "0x10", " 7 ", "\"1\n2\"", "#", "a,b",
                     "\"", "\ufeff", "\x00"]),
    st.text(max_size=6))
_TRACE_HEADERS = st.one_of(
    st.just("arrival_s,prompt_tokens,output_tokens"),
    st.permutations(["arrival_s", "prompt_tokens", "output_tokens", "prompt_tokens", "id"])
    .map(",".join),
    st.lists(st.sampled_from(["arrival_s", "prompt_tokens", "output_tokens", "x", ""]),
             max_size=5).map(",".join))


@settings(max_examples=300 if LONG else 25, **_SETTINGS)
@given(header=_TRACE_HEADERS, body=st.lists(st.lists(_TRACE_CELLS, min_size=1, max_size=4)
                                            .map(",".join), max_size=4),
       jsonl=st.booleans(), bom=st.booleans(), rate=st.sampled_from(["", ", rate_per_s: 3"]))
def test_run_generated_trace_files(tmp_path_factory, capsys, header, body, jsonl, bom, rate):
    """A generated trace (CSV, or JSON Lines from the same cells) replays or is refused
    with one line naming its file: never a traceback."""
    folder = tmp_path_factory.mktemp("trace")
    if jsonl:
        names = header.split(",")
        rows = [("{" + ", ".join(f'"{n}": {c}' for n, c in zip(names, row.split(","),
                                                             strict=False)) + "}")
                for row in body]
        name, text = "t.jsonl", "\n".join(rows) + "\n"
    else:
        name, text = "t.csv", "\n".join([header, *body]) + "\n"
    (folder / name).write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8",
                                                                              "surrogatepass"))
    scenario = folder / "s.yaml"
    scenario.write_text(
        "name: fuzz\nhardware: h100-sxm\ncluster: {accelerators: 1}\nmodel: llama3.1-8b\n"
        f"workload:\n  kind: inference\n  arrivals: {{process: trace, path: {name}{rate}}}\n"
        "  prompt_tokens: 100\n  output_tokens: 10\n"
        "  batching: {max_batch_size: 8, kv_cache_tokens: 100000}\n")
    _run(capsys, "run", str(scenario), "--quiet", "--format", "json")
