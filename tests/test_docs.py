"""The generated parts of the docs are current, and the README's commands are the CI's."""

from simulator.report.schema_doc import embedded, reference
from tests.conftest import ROOT


def test_scenario_reference_is_current():
    text = (ROOT / "docs" / "scenarios.md").read_text()
    assert embedded(text) == reference().strip(), \
        "regenerate: python -m simulator.report.schema_doc, paste between the markers"


def test_readme_opens_with_the_two_commands_ci_runs():
    readme = (ROOT / "README.md").read_text().splitlines()
    commands = [line for line in readme[:30] if line.startswith(("python3 -m venv", "pip "))]
    assert len(commands) == 2, commands
    run_command, test_command = commands
    assert "xpusim run scenarios/" in run_command
    assert "pytest" in test_command
    assert test_command in (ROOT / ".ci" / "run").read_text()
    scenario = run_command.split("xpusim run ")[1].split()[0]
    assert (ROOT / scenario).exists()


def test_results_reference_is_current():
    from simulator.report.schema_doc import results_reference

    text = (ROOT / "docs" / "results.md").read_text()
    assert embedded(text) == results_reference().strip(), "regenerate docs/results.md"
