"""Hostile input through the real CLI: every bad value ends in one clear line and exit 2.

One test per class of bad input (issue 16): numbers without bounds, lenient types, message
quality, markup and terminal escapes in user text, study arguments, output paths.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT, assert_clean_error, edited_h100_profile, run_cli

S = "scenarios/llama3.1-8b-h100-serving.yaml"
T = "scenarios/llama3.1-8b-h100-training.yaml"


def _one_line(result) -> str:
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    return lines[0]


# ---- numbers without bounds ---------------------------------------------------------------
@pytest.mark.parametrize(("scenario", "assignment", "fragment"), [
    (S, "workload.arrivals={process: poisson, rate_per_s: .inf, duration_s: 10}",
     "workload.arrivals.rate_per_s: must be a finite number"),
    (S, "seed=-1", "seed: must be at least 0"),
    (S, "workload.arrivals.requests=1000000000000", "must be at most 1000000"),
    (T, "workload.tokens=.inf", "workload.tokens: must be a finite number"),
    (T, "workload.tokens=1.0e+30", "workload.tokens: must be at most"),
    (S, "cluster.accelerators=1000000000000000000000000000000",
     "cluster.accelerators: must be at most 1000000"),
    (S, "workload.arrivals={process: gamma, rate_per_s: 8, cv: 1.0e-200, requests: 10}",
     "workload.arrivals.cv: must be at least 0.01"),
    (S, "workload.arrivals={process: gamma, rate_per_s: 8, cv: 1.0e+200, requests: 10}",
     "workload.arrivals.cv: must be at most 100"),
    (S, "workload.prompt_tokens={dist: lognormal, mean: 100, std: 1.0e+200}",
     "workload.prompt_tokens.std: must be at most"),
    (S, "workload.prompt_tokens={dist: lognormal, mean: 2, std: 1000}",
     "may be at most 100 times the mean"),
    (S, "workload.prompt_tokens={dist: empirical, values: []}",
     "workload.prompt_tokens.values: must have at least 1 item"),
    (S, "workload.prompt_tokens={dist: empirical, values: [1, 2], weights: [1.0e+308, 1.0e+308]}",
     "weights[0]: must be at most"),
    (S, "workload.prompt_tokens={dist: normal, mean: 1.0e+19, std: 1}",
     "workload.prompt_tokens.mean: must be at most 10000000"),
    (S, "workload.arrivals={process: poisson, rate_per_s: 1000000, duration_s: 1000000}",
     "rate_per_s x duration_s = 1e+12 requests; at most 1,000,000"),
    (S, "cost.pue=.nan", "cost.pue: must be a finite number"),
    (S, "cost.depreciation_years=.inf", "cost.depreciation_years: must be a finite number"),
])
def test_numbers_are_finite_and_bounded(scenario, assignment, fragment):
    result = run_cli("run", scenario, "--quiet", "--set", assignment)
    assert_clean_error(result, fragment)
    assert len(result.err.strip().splitlines()) <= 2


def test_profile_numbers_are_finite(tmp_path):
    bad = edited_h100_profile(tmp_path, "half_size_flops: {value: 3.5e+9,",
                              "half_size_flops: {value: .inf,")
    assert_clean_error(run_cli("validate", str(bad)),
                       "efficiency.gemm.half_size_flops.value: must be a finite number")


def test_ranks_per_device_must_be_a_positive_count(tmp_path):
    profile = (ROOT / "hardware_profiles" / "trainium2.yaml").read_text()
    assert "ranks_per_device: {value: 4," in profile
    bad = tmp_path / "hw.yaml"
    bad.write_text(profile.replace("ranks_per_device: {value: 4,", "ranks_per_device: {value: 0,"))
    assert_clean_error(run_cli("validate", str(bad)),
                       "scale_up.ranks_per_device.value: must be greater than 0")


# ---- lenient acceptance -------------------------------------------------------------------
@pytest.mark.parametrize(("scenario", "assignment", "fragment"), [
    (S, "cluster.accelerators=true", "cluster.accelerators: expected a number, got a boolean"),
    (S, "seed=true", "seed: expected a number, got a boolean"),
    (S, "workload.slo.percentile=true", "got a boolean"),
    (S, "workload.warmup_requests=2000", "warmup_requests (2000) must be fewer than"),
    (T, "workload.seq_len=1000000", "exceeds the context of llama3.1-8b"),
])
def test_lenient_values_are_refused(scenario, assignment, fragment):
    assert_clean_error(run_cli("run", scenario, "--quiet", "--set", assignment), fragment)


def test_longer_context_is_an_explicit_choice():
    result = run_cli("show", T, "--set", "workload.seq_len=262144",
                     "--set", "workload.beyond_context=true")
    assert result.code == 0, result.err
    assert result.json()["workload"]["seq_len"] == 262144


# ---- message quality ----------------------------------------------------------------------
@pytest.mark.parametrize(("scenario", "assignment", "fragment"), [
    (T, "workload.checkpoint.interval_s=5 GB",
     "workload.checkpoint.interval_s: unit 'GB' measures bytes, not time"),
    (T, "workload.parallelism.zero=7", "workload.parallelism.zero: must be 0, 1, 2 or 3"),
    (T, "workload.recompute=abc", "must be one of 'none', 'selective' or 'full'"),
    (T, "workload.parallelism.tp=abc", "workload.parallelism.tp: must be a whole number"),
    (S, "workload=3", "workload: must be a mapping of fields"),
])
def test_messages_are_plain_words(scenario, assignment, fragment):
    result = run_cli("run", scenario, "--quiet", "--set", assignment)
    assert_clean_error(result, fragment)
    line = _one_line(result)
    for internal in ("function-after", "functools", "Input should", "literal[", " at 0x"):
        assert internal not in line


def test_union_alternatives_share_one_line():
    result = run_cli("run", T, "--quiet", "--set", "workload.checkpoint.interval_s=5 GB")
    line = _one_line(result)
    assert "or must be 'auto'" in line and line.count("(got '5 GB')") == 1


def test_a_long_value_is_cut_short():
    result = run_cli("run", S, "--quiet", "--set", "cluster.accelerators=" + "x" * 500)
    assert_clean_error(result, "cluster.accelerators: must be a whole number")
    assert "x" * 100 not in result.err


# ---- markup and terminal escapes in user text ---------------------------------------------
@pytest.mark.parametrize("name", ["[/bold] x", "[bold red]X[/]", "a\x1b]0;X\x07\x1b[2Jb"])
def test_user_text_is_printed_as_text(name):
    result = run_cli("run", S, "--quiet", "--set", f"name={name}",
                     "--set", "workload.arrivals.requests=50")
    assert result.code == 0, result.err
    first = result.out.splitlines()[0]
    assert "\x1b" not in result.out and "\x07" not in result.out
    if "\x1b" in name:
        assert first == "a\\x1b]0;X\\x07\\x1b[2Jb"
    else:
        assert first == name


def test_escapes_in_an_error_are_shown_not_sent():
    result = run_cli("run", S, "--quiet", "--set", "cluster.accelerators=\x1b[2J")
    assert_clean_error(result, "cluster.accelerators")
    assert "\x1b" not in result.err and "\\x1b[2J" in result.err


# ---- arguments of the study commands ------------------------------------------------------
@pytest.mark.parametrize(("args", "fragment"), [
    (("plan", S, "--tp", "0"), "argument --tp: '0' is not a whole number from 1"),
    (("plan", T, "--accelerators", "0"), "argument --accelerators: '0'"),
    (("plan", S, "--rate", "inf"), "argument --rate: 'inf' is not a finite number above 0"),
    (("plan", S, "--rate", "nan"), "argument --rate: 'nan'"),
    (("plan", S, "--rate", "-5"), "argument --rate: '-5'"),
    (("plan", S, "--max-accelerators", "-1"), "argument --max-accelerators: '-1'"),
    (("plan", T, "--recompute", "bogus"), "argument --recompute: 'bogus' is not one of none"),
    (("plan", T, "--zero", "7"), "argument --zero: '7' is not a whole number from 0 to 3"),
    (("plan", T, "--deadline", "-5 d"), "argument --deadline: '-5 d' is not a time above"),
    (("plan", S, "--precisions", "fp9"), "argument --precisions: 'fp9' is not one of"),
    (("sensitivity", S, "--metric", "bogus"), "--metric 'bogus' is not a result column"),
    (("sensitivity", S, "--delta", "nan"), "argument --delta: 'nan'"),
    (("validate-against", "--only", "nope"), "--only 'nope' selects no case"),
    (("sweep", S, "--grid", "seed=1,2", "--jobs", "0"), "argument --jobs: '0'"),
    (("run", S, "--format", "bogus"), "argument --format: invalid choice"),
])
def test_study_arguments_are_checked(args, fragment):
    result = run_cli(*args)
    assert_clean_error(result, fragment)
    _one_line(result)


# ---- output paths -------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "fragment"), [
    (("run", S, "--quiet", "--out", "README.md"), "--out: README.md exists and is not a folder"),
    (("run", T, "--quiet", "--trace", "/nonexistent/t.json"),
     "--trace: the folder /nonexistent does not exist"),
    (("sweep", S, "--grid", "seed=1,2", "--out", "/proc/x/rows.csv"),
     "--out: the folder /proc/x does not exist"),
    (("plan", S, "--plot", "/proc/x/p.png"), "--plot: the folder /proc/x does not exist"),
    (("plan", S, "--plot", "scenarios"), "--plot: scenarios is a folder"),
    (("run", S, "--quiet", "--out", "/dev/null/x"), "--out: /dev/null is not a folder"),
    (("compare", S, "--hardware", "h100-sxm", "--out", "/proc/x"),
     "--out: cannot write in /proc"),
    (("run", S, "--quiet", "--out", "/proc/x"), "--out: cannot write in /proc"),
])
def test_output_paths_are_checked_before_running(args, fragment):
    result = run_cli(*args)
    assert_clean_error(result, fragment)
    _one_line(result)


def test_missing_folders_are_created_only_when_asked(tmp_path):
    target = tmp_path / "a" / "b"
    result = run_cli("run", S, "--quiet", "--set", "workload.arrivals.requests=20",
                     "--format", "json", "--out", str(target))
    assert_clean_error(result, "does not exist (create it, or pass --parents)")
    assert not (tmp_path / "a").exists()
    result = run_cli("run", S, "--quiet", "--set", "workload.arrivals.requests=20",
                     "--format", "json", "--out", str(target), "--parents")
    assert result.code == 0, result.err
    assert json.loads((target / "result.json").read_text())["kind"] == "inference"


def test_a_full_disk_is_one_line(tmp_path):
    import subprocess
    import sys

    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "simulator.cli.main", "profiles", "list",
                               "--format", "json"], stdout=full, stderr=subprocess.PIPE,
                              text=True, cwd=ROOT, timeout=60,
                              env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: cannot write the output: No space left on device"


def test_a_mapping_of_the_wrong_kind_is_a_few_lines():
    result = run_cli("show", S, "--set", "hardware={dist: fixed, mean: 0, std: 0}")
    assert_clean_error(result, "hardware: required fields are missing: id, name, vendor",
                       "hardware: unknown fields 'dist', 'mean', 'std'; allowed: id,")
    assert len(result.err.strip().splitlines()) == 2


# ---- file contents never leak into messages -----------------------------------------------
SECRET = "root:$6$saltsalt$abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ:19000:0:99999:7:::"


@pytest.mark.parametrize("args", [
    ("run", S, "--quiet", "--set", "hardware={file}"),
    ("run", S, "--quiet", "--set", "model={file}"),
    ("profiles", "show", "{file}"),
    ("models", "show", "{file}"),
    ("validate", "{file}"),
    ("run", "{file}"),
])
def test_a_file_of_another_kind_is_named_not_quoted(tmp_path, args):
    secret = tmp_path / "shadow"
    secret.write_text(SECRET + "\n")
    result = run_cli(*(a.replace("{file}", str(secret)) for a in args))
    assert_clean_error(result, str(secret))
    assert "$6$saltsalt$abcdefghijklmnopqrstuvwxyz" not in result.err
    assert len(result.err.strip().splitlines()) <= 2


@pytest.mark.parametrize(("scenario", "assignment", "fragment"), [
    (S, "model=llama3.1-405b", f"error: {S}: llama3.1-405b on h100-sxm: does not fit"),
    (T, "workload.failures.restart_s=1e9", f"error: {T}: workload.failures: failures would "
                                           f"interrupt the run"),
])
def test_engine_refusals_name_the_file_and_field(scenario, assignment, fragment):
    result = run_cli("run", scenario, "--quiet", "--set", assignment)
    assert_clean_error(result, fragment)
    _one_line(result)


@pytest.mark.parametrize(("text", "fragment"), [
    ("name: x\nseed: " + "9" * 5000 + "\n", "a value YAML cannot convert: a number of more than "
                                              "4,300 digits"),
    ("name: 2026-13-45\n", "a value YAML cannot convert: month must be in 1..12"),
])
def test_scalars_yaml_cannot_convert(tmp_path, text, fragment):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    result = run_cli("validate", str(path))
    assert_clean_error(result, fragment)
    _one_line(result)


def test_a_huge_number_on_the_command_line_is_one_line():
    result = run_cli("show", S, "--set", "workload.arrivals.requests=" + "9" * 5000)
    assert_clean_error(result, "workload.arrivals.requests: must be a whole number")
    assert len(_one_line(result)) < 400


def test_a_run_that_would_never_finish_says_so_in_words():
    result = run_cli("run", T, "--quiet", "--set", "workload.checkpoint.mode=async",
                     "--set", "workload.failures.restart_s=1e8")
    assert_clean_error(result, "so often that it would never finish")
    assert "inf" not in result.err.split("(")[0]


TRACE_HEADER = "arrival_s,prompt_tokens,output_tokens\n"


@pytest.mark.parametrize(("body", "extra", "fragment"), [
    ("0,\u00b2,5\n", "", "t.csv:2: prompt_tokens: '\u00b2' is not a positive integer"),
    ('0,"1\n2",5\n', "", "t.csv:2: prompt_tokens"),
    ("0,10,5\n0,10,5\n", ", rate_per_s: 4", "workload.arrivals.rate_per_s: rate_per_s "
                                              "rescales"),
    ("0,10,5,6\n", "", "names column 'output_tokens' 2 times"),
])
def test_trace_files_are_read_strictly_through_the_cli(tmp_path, body, extra, fragment):
    header = TRACE_HEADER if "6\n" not in body else TRACE_HEADER.rstrip("\n") + ",output_tokens\n"
    (tmp_path / "t.csv").write_text(header + body)
    scenario = tmp_path / "s.yaml"
    scenario.write_text(f"""\
name: trace
hardware: h100-sxm
cluster: {{accelerators: 1}}
model: llama3.1-8b
workload:
  kind: inference
  arrivals: {{process: trace, path: t.csv{extra}}}
  prompt_tokens: 100
  output_tokens: 10
""")
    result = run_cli("run", str(scenario), "--quiet")
    assert_clean_error(result, fragment)
    _one_line(result)


def test_a_trace_with_a_byte_order_mark_runs(tmp_path):
    (tmp_path / "t.csv").write_bytes(b"\xef\xbb\xbf" + (TRACE_HEADER + "0,10,5\n").encode())
    scenario = tmp_path / "s.yaml"
    scenario.write_text("name: bom\nhardware: h100-sxm\ncluster: {accelerators: 1}\n"
                        "model: llama3.1-8b\nworkload:\n  kind: inference\n"
                        "  arrivals: {process: trace, path: t.csv}\n"
                        "  prompt_tokens: 100\n  output_tokens: 10\n")
    result = run_cli("run", str(scenario), "--quiet", "--format", "json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["inference"]["requests"] == 1


@pytest.mark.parametrize("path", ["0", "workload.0", "workload.parallelism.7"])
def test_a_digit_field_name_in_set_is_an_unknown_field(path):
    result = run_cli("show", S, "--set", f"{path}=1")
    assert_clean_error(result, f"{path}: unknown field '{path.split('.')[-1]}'; allowed:")
    assert "Keys should be strings" not in result.err
    _one_line(result)


def test_a_path_on_the_command_line_is_relative_to_the_current_directory(tmp_path):
    """``--set hardware=./my-chip.yaml`` reads the file in the current directory (as
    ``compare --hardware`` does), while a path written in the scenario file stays relative
    to that file."""
    chip = (ROOT / "hardware_profiles" / "h100-sxm.yaml").read_text()
    chip = chip.replace("id: h100-sxm", "id: my-chip", 1)
    (tmp_path / "my-chip.yaml").write_text(chip)
    scenario = str(ROOT / "scenarios" / "llama3.1-8b-h100-serving.yaml")
    for ref in ("./my-chip.yaml", "my-chip.yaml"):
        result = run_cli("show", scenario, "--set", f"hardware={ref}", cwd=tmp_path)
        assert result.code == 0, result.err
        assert json.loads(result.out)["hardware"] == "my-chip"
    (tmp_path / "t.csv").write_text("arrival_s,prompt_tokens,output_tokens\n0,10,5\n")
    trace = "workload.arrivals={process: trace, path: t.csv}"
    result = run_cli("run", scenario, "--quiet", "--format", "json", "--set", trace,
                     cwd=tmp_path)
    assert result.code == 0, result.err
    assert json.loads(result.out)["inference"]["requests"] == 1
    # a rate trace is a file too: from the current directory when set on the command line
    (tmp_path / "rates.csv").write_text("time_s,rate_per_s\n0,4\n10,8\n")
    rates = ("workload.arrivals={process: poisson, rate_trace: rates.csv, duration_s: 20, "
             "requests: 40}")
    result = run_cli("show", scenario, "--set", rates, cwd=tmp_path)
    assert result.code == 0, result.err
    assert json.loads(result.out)["workload"]["arrivals"]["rate_trace"] == str(
        tmp_path / "rates.csv")
    # the same relative name written in a scenario file is looked up beside that file
    (tmp_path / "sub").mkdir()
    inner = tmp_path / "sub" / "s.yaml"
    inner.write_text((ROOT / "scenarios" / "llama3.1-8b-h100-serving.yaml").read_text()
                     .replace("hardware: h100-sxm", "hardware: ./my-chip.yaml", 1))
    assert_clean_error(run_cli("show", str(inner), cwd=tmp_path), str(tmp_path / "sub"))
