"""A maximum-a-posteriori fit of log-parameters to log-measurements (Levenberg-Marquardt).

Every parameter x_j = log(theta_j) has a Gaussian prior N(mu_j, tau_j^2) (the profile's value
and how far real stacks are seen to stray from it) and bounds; every measured figure
y_i = log(m_i) is matched by the simulator's log-prediction f_i(x) with a relative noise
sigma. The fit minimises

    sum_i ((f_i(x) - y_i) / sigma)^2 + sum_j ((x_j - mu_j) / tau_j)^2,

so a parameter the runs say nothing about stays at its prior, and one they pin down moves as
far as they ask. Derivatives are forward differences (each a simulation of every run), taken
for all parameters at once so the caller can run them in parallel. The posterior covariance
is the inverse of the Gauss-Newton Hessian at the solution; its diagonal, against the
prior's, says how much the data taught about each parameter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# Predict log-figures for a batch of log-parameter vectors: (points, params) -> (points, obs).
BatchPredict = Callable[[np.ndarray], np.ndarray]

STEP = 0.05  # log-step of the forward differences: 5%, well above a simulation's rounding
MAX_ITERATIONS = 8
TOLERANCE = 1e-3  # relative decrease of the objective that ends the search


@dataclass(frozen=True)
class Problem:
    """What is fitted: measurements, noise, priors and bounds, all in log space."""

    y: np.ndarray
    sigma: float
    mu: np.ndarray
    tau: np.ndarray
    lower: np.ndarray
    upper: np.ndarray

    def residuals(self, f: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Data residuals then prior residuals, each in units of its spread."""
        return np.concatenate([(f - self.y) / self.sigma, (x - self.mu) / self.tau])

    def jacobian(self, sensitivity: np.ndarray) -> np.ndarray:
        """The residuals' Jacobian from the predictions' (data rows, then prior rows)."""
        return np.vstack([sensitivity / self.sigma, np.diag(1.0 / self.tau)])


@dataclass(frozen=True)
class Fit:
    """The solution: parameters, predictions and sensitivities there, and the posterior."""

    x: np.ndarray
    f: np.ndarray
    sensitivity: np.ndarray  # d f_i / d x_j at x
    covariance: np.ndarray
    iterations: int
    converged: bool

    @property
    def sd(self) -> np.ndarray:
        """Posterior standard deviation of each log-parameter (~ relative uncertainty)."""
        return np.sqrt(np.diag(self.covariance))


def sensitivities(predict: BatchPredict, x: np.ndarray, problem: Problem,
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Predictions at ``x`` and their forward-difference derivatives, in one batch. A step
    that would cross the upper bound is taken downwards."""
    steps = np.where(x + STEP <= problem.upper, STEP, -STEP)
    points = np.vstack([x, x + np.diag(steps)])
    out = predict(points)
    f = out[0]
    return f, (out[1:] - f).T / steps


def objective(problem: Problem, f: np.ndarray, x: np.ndarray) -> float:
    """Half the sum of squared residuals (the negative log posterior up to a constant)."""
    r = problem.residuals(f, x)
    return 0.5 * float(r @ r)


def solve(predict: BatchPredict, problem: Problem, x0: np.ndarray) -> Fit:
    """Levenberg-Marquardt from ``x0`` within the bounds."""
    x = np.clip(x0, problem.lower, problem.upper)
    f, s = sensitivities(predict, x, problem)
    cost, damping = objective(problem, f, x), 1e-3
    iterations, converged = 0, False
    while iterations < MAX_ITERATIONS and not converged:
        iterations += 1
        trial, damping = _damped_step(predict, problem, x, f, s, cost, damping)
        if trial is None:  # no step lowers the objective: a minimum (within the bounds)
            converged = True
            break
        x, damping = trial, max(damping / 10, 1e-7)
        f, s = sensitivities(predict, x, problem)
        new_cost = objective(problem, f, x)
        converged = (cost - new_cost) / max(cost, 1e-12) < TOLERANCE
        cost = new_cost
    j = problem.jacobian(s)
    return Fit(x=x, f=f, sensitivity=s, covariance=np.linalg.inv(j.T @ j),
               iterations=iterations, converged=converged)


def _damped_step(predict: BatchPredict, problem: Problem, x: np.ndarray, f: np.ndarray,
                 s: np.ndarray, cost: float, damping: float) -> tuple[np.ndarray | None, float]:
    """The first damped Gauss-Newton step that lowers the objective (None if none does),
    with the damping that found it."""
    j = problem.jacobian(s)
    hessian, gradient = j.T @ j, j.T @ problem.residuals(f, x)
    while damping < 1e6:
        step = np.linalg.solve(hessian + damping * np.diag(np.diag(hessian)), -gradient)
        trial = np.clip(x + step, problem.lower, problem.upper)
        if objective(problem, predict(trial[None, :])[0], trial) < cost:
            return trial, damping
        damping *= 10
    return None, damping


def leave_one_out(fit: Fit, problem: Problem, groups: list[list[int]]) -> np.ndarray:
    """Each group's figures predicted by the fit without that group: one Gauss-Newton step
    from the full fit with the group's rows removed (exact when the predictions are linear
    in the log-parameters, and no simulation needed)."""
    predicted = fit.f.copy()
    for rows in groups:
        keep = np.ones(len(problem.y), dtype=bool)
        keep[rows] = False
        s = fit.sensitivity[keep]
        j = np.vstack([s / problem.sigma, np.diag(1.0 / problem.tau)])
        r = np.concatenate([(fit.f[keep] - problem.y[keep]) / problem.sigma,
                            (fit.x - problem.mu) / problem.tau])
        step = np.linalg.solve(j.T @ j, -j.T @ r)
        step = np.clip(fit.x + step, problem.lower, problem.upper) - fit.x
        predicted[rows] = fit.f[rows] + fit.sensitivity[rows] @ step
    return predicted
