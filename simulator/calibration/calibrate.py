"""``xpusim calibrate``: fit a profile's physical parameters to the user's own runs.

The steps: simulate every run at the profile's values (the prior) and with each parameter
nudged, to see which parameters the runs can identify at all (a parameter that moves no
measured figure stays at its prior and is reported as not identified); fit the identified
ones (:mod:`simulator.calibration.fit`); then judge the fit: its error on the runs before and
after, the leave-one-run-out error (the honest figure: what the calibrated profile predicts
for a run it was not fitted on), and warnings where the data cannot carry the fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from simulator.calibration.fit import Fit, Problem, leave_one_out, sensitivities, solve
from simulator.calibration.forward import Forward, batch_predictor
from simulator.calibration.parameters import Knob, log_bounds
from simulator.errors import InputError
from simulator.studies.executors import Executor
from simulator.units import format_time

# A parameter is identified when a 1% change of it moves some figure by at least 0.05%.
MIN_ELASTICITY = 0.05
WEAK = 0.7  # posterior/prior spread above this: the data taught little (mostly prior)
FAR = 3.0  # prior spreads moved beyond which a value is flagged as implausible
COLLINEAR = 0.9  # |posterior correlation| beyond which two parameters are confounded

FITTED, WEAK_STATUS, NOT_IDENTIFIED = "fitted", "weakly identified", "not identified"


@dataclass(frozen=True, kw_only=True)
class ParameterFit:
    """One parameter's outcome: prior and fitted value (SI), relative uncertainty, status."""

    knob: Knob
    value: float
    relative_sd: float  # posterior sd in log space, ~ relative (prior sd when not fitted)
    status: str
    at_bound: bool = False


@dataclass(frozen=True, kw_only=True)
class FigureFit:
    """One measured figure: measured, predicted before, after and left out (SI)."""

    run: str
    metric: str
    measured: float
    before: float
    after: float
    left_out: float


@dataclass(kw_only=True)
class CalibrationResult:
    """The whole outcome of a calibration."""

    parameters: list[ParameterFit]
    figures: list[FigureFit]
    noise: float
    iterations: int
    converged: bool
    warnings: list[str] = field(default_factory=list)

    def errors(self, which: str) -> np.ndarray:
        """Relative errors (predicted / measured - 1) of ``before``, ``after`` or ``left_out``."""
        return np.array([getattr(f, which) / f.measured - 1 for f in self.figures])

    def summary(self, which: str) -> dict[str, float]:
        """Median and worst absolute relative error of ``which``."""
        err = np.abs(self.errors(which))
        return {"median": float(np.median(err)), "worst": float(np.max(err))}


def select(forward: Forward, names: Sequence[str] | None) -> list[Knob]:
    """The knobs named (by default those some run could depend on); unknown names are
    refused."""
    if names is None:
        return list(forward.relevant)
    known = {k.name: k for k in forward.knobs}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError(f"unknown parameter(s) {', '.join(unknown)}; this profile and its "
                         f"runs have: {', '.join(known)}", path="parameters")
    return [known[n] for n in names]


def _problem(forward: Forward, knobs: Sequence[Knob], noise: float) -> Problem:
    bounds = np.array([log_bounds(k) for k in knobs]).reshape(len(knobs), 2)
    return Problem(y=np.log([f.measured for f in forward.figures]), sigma=noise,
                   mu=np.log([k.prior for k in knobs]),
                   tau=np.array([k.prior_sd for k in knobs]),
                   lower=bounds[:, 0], upper=bounds[:, 1])


def calibrate(forward: Forward, *, names: Sequence[str] | None = None, noise: float = 0.05,
              executor: Executor | None = None) -> CalibrationResult:
    """Fit ``forward``'s knobs (or those ``names``) to its measured figures."""
    candidates = select(forward, names)
    if not candidates:
        raise InputError("no parameter to calibrate: the profile has no positive efficiency "
                         "or overhead figures")
    screen = _problem(forward, candidates, noise)
    f0, s0 = sensitivities(batch_predictor(forward, tuple(candidates), executor), screen.mu,
                           screen)
    identified = [j for j in range(len(candidates))
                  if np.max(np.abs(s0[:, j])) >= MIN_ELASTICITY]
    knobs = tuple(candidates[j] for j in identified)
    figures_before = np.exp(f0)
    if not knobs:
        fit, problem = None, None
        after = left_out = figures_before
    else:
        problem = _problem(forward, knobs, noise)
        predict = batch_predictor(forward, knobs, executor)
        fit = solve(predict, problem, problem.mu)
        groups = [[i for i, f in enumerate(forward.figures) if f.run == r]
                  for r in range(len(forward.runs))]
        after, left_out = np.exp(fit.f), np.exp(leave_one_out(fit, problem, groups))
    result = CalibrationResult(
        parameters=_parameter_fits(candidates, knobs, fit, problem), noise=noise,
        figures=[FigureFit(run=forward.names[f.run], metric=f.metric, measured=f.measured,
                           before=float(b), after=float(a), left_out=float(lo))
                 for f, b, a, lo in zip(forward.figures, figures_before, after, left_out,
                                        strict=True)],
        iterations=fit.iterations if fit else 0, converged=fit.converged if fit else True)
    result.warnings = _warnings(result, fit, knobs)
    return result


def _parameter_fits(candidates: Sequence[Knob], knobs: Sequence[Knob], fit: Fit | None,
                    problem: Problem | None) -> list[ParameterFit]:
    out = []
    for knob in candidates:
        if fit is None or problem is None or knob not in knobs:
            out.append(ParameterFit(knob=knob, value=knob.prior, relative_sd=knob.prior_sd,
                                    status=NOT_IDENTIFIED))
            continue
        j = knobs.index(knob)
        sd = float(fit.sd[j])
        at_bound = bool(fit.x[j] <= problem.lower[j] + 1e-6
                        or fit.x[j] >= problem.upper[j] - 1e-6) and knob.lower != knob.upper
        out.append(ParameterFit(knob=knob, value=float(np.exp(fit.x[j])), relative_sd=sd,
                                status=FITTED if sd < WEAK * knob.prior_sd else WEAK_STATUS,
                                at_bound=at_bound))
    return out


def _warnings(result: CalibrationResult, fit: Fit | None, knobs: Sequence[Knob]) -> list[str]:
    notes = []
    fitted = [p for p in result.parameters if p.status != NOT_IDENTIFIED]
    if len(fitted) > len(result.figures):
        notes.append(f"under-determined: {len(fitted)} parameters from {len(result.figures)} "
                     f"measured figures; the priors decide what the runs cannot (add runs "
                     f"that differ in batch, length or layout, or name fewer parameters)")
    for p in result.parameters:
        if p.at_bound:
            notes.append(f"{p.knob.name} landed at its bound ({show_value(p.value, p.knob.unit)}): "
                         f"the runs ask for more than the physics allows; a mechanism the "
                         f"model lacks is likely (check the scenarios)")
        moved = abs(np.log(p.value / p.knob.prior)) / p.knob.prior_sd
        if moved > FAR:
            before, after = show_value(p.knob.prior, p.knob.unit), show_value(p.value, p.knob.unit)
            notes.append(f"{p.knob.name} moved {moved:.1f} prior spreads, from {before} to "
                         f"{after}: far from what this hardware is measured to do")
    notes += _overhead_warnings(result)
    if fit is not None and len(knobs) > 1:
        sd = fit.sd
        corr = fit.covariance / np.outer(sd, sd)
        for a in range(len(knobs)):
            for b in range(a + 1, len(knobs)):
                if abs(corr[a, b]) > COLLINEAR:
                    notes.append(f"{knobs[a].name} and {knobs[b].name} are confounded "
                                 f"(correlation {corr[a, b]:+.2f}): these runs cannot tell "
                                 f"them apart; only their combined effect is fitted")
    if fit is not None and not fit.converged:
        notes.append(f"the fit did not converge in {fit.iterations} iterations")
    return notes


def _overhead_warnings(result: CalibrationResult) -> list[str]:
    """A per-iteration or per-kernel cost larger than a measured step cannot be physical."""
    steps = [f.measured for f in result.figures
             if f.metric.startswith(("inference.tpot_s", "training.step_time_s"))]
    if not steps:
        return []
    shortest = min(steps)
    return [f"{p.knob.name} is {show_value(p.value, 's')}, more than the shortest measured "
            f"step ({show_value(shortest, 's')})" for p in result.parameters
            if p.knob.unit == "s" and p.value > shortest]


def show_value(value: float, unit: str) -> str:
    """A parameter's value as the report prints it: a time with its unit, a ratio as is."""
    return format_time(value) if unit == "s" else f"{value:.3g}"
