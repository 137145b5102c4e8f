"""Roadmap speed (issue 20): the shipped example, scenarios/roadmaps/llama3.1-70b-2027.yaml,
answered in under a minute on one core, the same as

    xpusim roadmap scenarios/roadmaps/llama3.1-70b-2027.yaml

It times the command in a fresh process, start-up included: the whole answer (each
profile's capacity search, the exact plan and its sensitivity, and each month's peak
simulated on the plan's fleet), and the same without the last step (``--no-verify``) to
show what the verification adds. This is a benchmark, not a test: it is not collected by
pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from common import ROOT, machine, one_core, result

EXAMPLE = ROOT / "scenarios" / "roadmaps" / "llama3.1-70b-2027.yaml"
TARGET_S = 60.0


def timed(*flags: str) -> tuple[float, dict]:
    """Wall seconds of ``xpusim roadmap EXAMPLE --format json`` in a fresh process (pinned
    to this one's CPU), and its answer."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "simulator.cli.main", "roadmap", str(EXAMPLE),
                           "--quiet", "--format", "json", *flags], capture_output=True,
                          text=True, check=True, env=env)
    return time.perf_counter() - start, json.loads(done.stdout)


def main(argv: list[str] | None = None) -> int:
    """Time the example with and without the simulated SLO attainment."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args(argv)
    cpu = one_core()
    print(f"machine: {machine()}; pinned to CPU {cpu}")
    plain_s, _ = timed("--no-verify")
    whole_s, data = timed()
    print(f"  without verification: {plain_s:.2f} s; the verification's "
          f"{data['verify_simulations']} simulations add {whole_s - plain_s:.2f} s")
    result("roadmap example, 12 months, verified, one core", f"{whole_s:.2f} s",
           f"<= {TARGET_S:g} s", whole_s <= TARGET_S)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
