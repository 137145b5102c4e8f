"""Guard (issues 6 and 15): xpusim may not drift further from the published measurements.

Runs every case in ``validation/cases`` through the real :func:`simulator.simulate.simulate`.
The targets of issue 15 are :data:`simulator.validation.guard.TARGETS`: a median absolute
error of at most 7% over all figures, at most 12% for every vendor, no figure beyond 35%
(server-mode latencies at a published rate exempt when their sustainable-rate counterpart
is compared) and no case without a prediction. Until calibration reaches them, the limits
below are a ratchet set just above the figures of the last recorded run (the "Targets"
table of docs/validation.md): a change that makes the simulator less true fails, and each
calibration step lowers them toward the targets.
"""

from __future__ import annotations

import json
import re

import pytest

from simulator.confidence.lookup import BANDS_FILE
from simulator.validation import (
    TARGETS,
    CaseRow,
    Limits,
    ValidationReport,
    guard_figures,
    guard_violations,
    run_cases,
)
from simulator.validation.bands import bands_table
from simulator.validation.cases import Case, Source
from simulator.validation.report import format_error
from tests.conftest import ROOT

CASES_DIR = ROOT / "validation" / "cases"
VALIDATION_DOC = ROOT / "docs" / "validation.md"

# Ratchet, recorded 2026-12-02 (issue 15: new cases, serving stacks, training and MoE physics,
# the recipes' fields in the cases, collectives as NCCL runs them, ring attention, Trainium2's
# ranks per chip, activation quantization in serving). Loosened from 11.6% / NVIDIA 11.2% by
# TensorRT-LLM's whole-sequence KV reservation (kv_reservation): the dense TensorRT-LLM rows
# had matched with preemption by recompute that TensorRT-LLM does not do (docs/validation.md).
# Tightened from 12.9% / NVIDIA 12.5% / worst 89.1% by trtllm-bench's padded CUDA graphs (the
# I12/I14/I44 cases' stack), the 16-bit embedding and LM head of ModelOpt checkpoints and
# TensorRT-LLM's all-gather MoE exchange with attention DP.
# Then by the serving stacks' API-server part (workload.frontend: MLPerf harnesses run
# in process), optimum-habana for I45, TGI's overlapped output, NxDI's context buckets (I50).
# Then by the sustainable-rate search's keep-up check (a rate passes only if the fleet's
# backlog stops growing, on runs up to 600 s: I04, I40 and I43 server capacities).
# Then by the measured weight-streaming fraction of decode GEMMs on Hopper (gemm.stream), the
# MI355X fp8 fraction from CDNA3's measured fp8/bf16 ratio (T40, a calibration case since),
# training's NCCL size curve and the SMs overlapped DP collectives take.
# Then by vLLM's host work in front of NxD Inference (I50's stack) and I50's overall tokens/s
# moving to the figures not compared (it measures the run's warm-up: docs/validation.md).
# Then by GB300's GEMM fractions carried from B300 by the measured board-to-superchip step
# and T46's activation offload (NVIDIA 8.7% -> 8.4%), and I16 on NIM's C++-executor stack.
# Then AMD by MLPerf's 600 s Offline runs (LoadGen's Offline query size, I04/I40 offline)
# and the Server harness's streaming (workload.frontend: in_process_streaming, I04/I40).
# Then by B200 fp4 priced as NVFP4 and I43's published output lengths; keep_up judges only
# runs with a steady window; serving's all-gathers and reduce-scatters on NCCL's size curve.
# And by the LoRA rows whose recipe setting was not read recomputing the fewest layers that
# fit (workload.recompute_layers: fit), T14's vpp 8 and T48's DeepEP routing.
# Then (sixth session) by NVFP4's scale bytes and one NVFP4 derivation for every Blackwell
# part, Llama 4's chunked attention (local_attention), JetStream's padded one-prompt
# prefills on a 2x4 v5e slice, Megatron 2021's blocking pipeline sends, NeMo's optimizer
# tail and DP buckets, AMD's attention and cast fractions, T14 compared as a failure rate,
# MoE/MLA saved activations; T14b (Llama 3 405B throughput) added: 151 figures.
# Then (seventh session) by the CNN/DailyMail prompt length in Llama 3 tokens (I43),
# DeepSeek-V3's MTP module in training (T48 away: +6.0% -> +10.3%), the quantized dgrad
# GEMM share on Blackwell, Splash attention's causal blocks and v6e's 256-wide MXU (T53),
# v5p slices that wrap; MaxText's published v5e/v5p tables added as T90: 163 figures.
MEDIAN_LIMIT = 0.07  # recorded 6.5% (docs/validation.md, "median, all figures"): the target
# recorded: NVIDIA 6.7%, AMD 6.5%, Intel 7.0%, Google 5.5%, AWS 4.4%; a vendor without
# an entry is held to the target (12%)
VENDOR_MEDIAN_LIMITS: dict[str, float] = {"NVIDIA": 0.075, "AMD": 0.075, "Intel": 0.08,
                                          "Google": 0.065, "AWS": 0.054}
CASE_LIMIT = 0.59  # recorded 58.6% (I44-scout-gb200-1000-1000, see the docs)
# Cases known not to produce a prediction, with the reason; a new failure, or a known one
# that starts working, fails the guard so that this list stays true.
KNOWN_FAILURES: dict[str, str] = {}
RATCHET = Limits(median=MEDIAN_LIMIT, vendor_median=VENDOR_MEDIAN_LIMITS,
                 default_vendor_median=TARGETS.for_vendor(""), case=CASE_LIMIT,
                 known_failures=KNOWN_FAILURES)
# How far above the recorded run a limit may sit: a ratchet, not a loose bound.
MEDIAN_SLACK, CASE_SLACK = 0.01, 0.05


@pytest.fixture(scope="module")
def report():
    return run_cases(CASES_DIR)


def test_the_shipped_cases_pass_the_guard(report):
    problems = guard_violations(report, RATCHET)
    assert not problems, "\n".join(problems)


def test_the_recorded_run_in_the_docs_is_this_run(report):
    """docs/validation.md shows what the code predicts today (regenerate it with
    ``xpusim validate-against validation/ --markdown docs/validation.md``)."""
    figures = guard_figures(report)
    recorded = _recorded_targets()
    assert _recorded_case_count() == len(report.rows)
    assert recorded["median, all figures"] == format_error(figures.median, signed=False)
    for vendor, median in figures.vendor_medians.items():
        assert recorded[f"median, vendor {vendor}"] == format_error(median, signed=False)
    worst = next(v for k, v in recorded.items() if k.startswith("worst figure"))
    assert worst == f"{format_error(figures.worst, signed=False)} ({figures.worst_case})"


def test_the_committed_error_bands_are_this_run(report):
    """Every result's confidence is read from simulator/confidence/error_bands.json: it must
    hold the bands of what the code predicts today (same run as the guard, not a second)."""
    committed = json.loads(BANDS_FILE.read_text())
    fresh = bands_table(report)
    stale = [key for key in fresh if committed.get(key) != fresh[key]]
    assert not stale, (f"{BANDS_FILE.relative_to(ROOT)} is stale ({', '.join(stale)} differ); "
                       f"regenerate it with: xpusim validate-against validation/ --bands "
                       f"{BANDS_FILE.relative_to(ROOT)}")


def test_the_limits_are_ratchets_just_above_the_recorded_run():
    """A limit below the recorded run would fail the shipped cases; one far above it would
    let the simulator drift back unnoticed: calibration that improves the recorded figures
    must tighten the limits too. A limit never needs to sit above the target."""
    recorded = _recorded_targets()
    median = _fraction(recorded["median, all figures"])
    worst = _fraction(next(v for k, v in recorded.items() if k.startswith("worst figure")))
    assert median <= MEDIAN_LIMIT <= max(median + MEDIAN_SLACK, TARGETS.median)
    assert worst <= CASE_LIMIT <= max(worst + CASE_SLACK, TARGETS.case)
    vendors = {k.removeprefix("median, vendor "): _fraction(v) for k, v in recorded.items()
               if k.startswith("median, vendor ")}
    for vendor, value in vendors.items():
        limit = RATCHET.for_vendor(vendor)
        assert value <= limit <= max(value + MEDIAN_SLACK, TARGETS.for_vendor(vendor)), vendor


# ---- the guard itself fails when it should ------------------------------------------------
def _row(case_id: str, error: float | None, failure: str | None = None, *,
         vendor: str = "NVIDIA", capacity_case: str | None = None) -> CaseRow:
    metric = "inference.ttft_s.p99" if capacity_case else "training.step_time_s"
    case = Case(id=case_id, title="synthetic", source=Source(url="u", locator="l"),
                confidence="V", vendor=vendor, kind=metric.split(".")[0], metric=metric,
                measured=2.0, used_for_calibration=False, capacity_case=capacity_case,
                scenario={})
    predicted = None if error is None else 2.0 * (1 + error)
    return CaseRow(case=case, file="synthetic.yaml", predicted=predicted, failure=failure,
                   seconds=0.0)


def _report(*rows: CaseRow) -> ValidationReport:
    return ValidationReport(rows=rows, directory="synthetic")


LIMITS = Limits(median=0.10, vendor_median={"AMD": 0.20}, default_vendor_median=0.15,
                case=0.40)


def test_the_guard_passes_errors_within_its_limits():
    inside = _report(_row("T01", 0.09), _row("T02", -0.08), _row("T03", 0.39))
    assert guard_violations(inside, LIMITS) == []


def test_the_guard_fails_a_median_beyond_its_limit():
    # five NVIDIA rows at 11%: the overall median (limit 10%) fails, NVIDIA's (15%) does not
    drifted = _report(*(_row(f"T{i:02d}", 0.11) for i in range(1, 6)))
    problems = guard_violations(drifted, LIMITS)
    assert len(problems) == 1 and problems[0].startswith("median |error|")


def test_the_guard_fails_one_vendor_beyond_its_own_median_limit():
    # NVIDIA 0,0,0 and AMD 0.25, 0.25: overall median 0 (fine), AMD's 25% > its 20% limit
    rows = [_row(f"T0{i}", 0.0) for i in range(1, 4)]
    rows += [_row(f"I0{i}", 0.25, vendor="AMD") for i in range(1, 3)]
    problems = guard_violations(_report(*rows), LIMITS)
    assert problems == ["vendor AMD: median |error| 25.0% > 20.0%"]


def test_the_guard_fails_one_case_beyond_its_limit():
    one_far = _report(_row("T01", 0.0), _row("T02", 0.01), _row("I09", -0.42))
    problems = guard_violations(one_far, LIMITS)
    assert len(problems) == 1 and problems[0].startswith("I09: ")


def test_a_server_latency_is_exempt_only_through_its_compared_capacity_case():
    latency = _row("I04-server-ttft", -0.90, capacity_case="I04-server-capacity")
    fine = [_row("T01", 0.0), _row("T02", 0.0), _row("T03", 0.0)]
    # the counterpart is compared: the latency's -90% is exempt, the counterpart's +30% is not
    exempt = _report(*fine, latency, _row("I04-server-capacity", 0.30))
    assert guard_violations(exempt, LIMITS) == []
    assert guard_figures(exempt).exempt == ("I04-server-ttft",)
    assert guard_figures(exempt).worst_case == "I04-server-capacity"
    # the counterpart beyond the limit fails in its own name
    far = _report(*fine, latency, _row("I04-server-capacity", 0.50))
    assert [p.split(":")[0] for p in guard_violations(far, LIMITS)] == ["I04-server-capacity"]
    # no counterpart in the run (or one without a prediction): the latency is held to the limit
    alone = _report(*fine, latency)
    assert [p.split(":")[0] for p in guard_violations(alone, LIMITS)] == ["I04-server-ttft"]
    broken = _report(*fine, latency, _row("I04-server-capacity", None, failure="boom"))
    known = Limits(median=0.10, case=0.40, known_failures={"I04-server-capacity": "boom"})
    assert [p.split(":")[0] for p in guard_violations(broken, known)] == ["I04-server-ttft"]


def test_the_guard_fails_a_new_failure_and_a_known_one_that_works():
    broken = _report(_row("T01", 0.0), _row("T02", None, failure="RuntimeError: boom"))
    assert any("T02" in p for p in guard_violations(broken, LIMITS))
    fixed = _report(_row("T01", 0.0), _row("T02", 0.0))
    assert guard_violations(fixed, Limits(median=0.1, case=0.4,
                                          known_failures={"T02": "was broken"}))


def test_the_targets_are_those_of_issue_15():
    assert (TARGETS.median, TARGETS.for_vendor("anyone"), TARGETS.case) == (0.07, 0.12, 0.35)
    assert not TARGETS.known_failures


def _recorded_targets() -> dict[str, str]:
    """The 'now' column of the Targets table in docs/validation.md, by figure."""
    text = VALIDATION_DOC.read_text()
    section = text.split("### Targets (issue 15)", 1)
    assert len(section) == 2, "docs/validation.md has no Targets table"
    rows = re.findall(r"^\| ([^|]+?) \| [\d.%]+ \| ([^|]+?) \| (?:yes|no) \|$", section[1],
                      flags=re.MULTILINE)
    assert rows, "the Targets table of docs/validation.md is empty"
    return dict(rows)


def _recorded_case_count() -> int:
    match = re.search(r"^\| all \| (\d+) \| \d+ \| \d+ \|", VALIDATION_DOC.read_text(),
                      flags=re.MULTILINE)
    assert match, "docs/validation.md has no summary row for 'all'"
    return int(match[1])


def _fraction(percent: str) -> float:
    return float(percent.split("%")[0]) / 100
