"""The MAP fit against closed forms: a linear model in log space has an exact answer."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.calibration.fit import Problem, leave_one_out, solve

A = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, -1.0]])
B = np.array([0.1, -0.2, 0.3, 0.0])


def _linear(points: np.ndarray) -> np.ndarray:
    return points @ A.T + B


def _problem(y: np.ndarray, rows: slice | list[int] = slice(None)) -> Problem:
    return Problem(y=y, sigma=0.05, mu=np.array([0.0, 0.0]), tau=np.array([0.3, 0.3]),
                   lower=np.array([-5.0, -5.0]), upper=np.array([5.0, 5.0]))


def _closed_form(a: np.ndarray, b: np.ndarray, y: np.ndarray, p: Problem) -> np.ndarray:
    # minimise |(a x + b - y)/s|^2 + |(x - mu)/tau|^2:
    #   (a'a/s^2 + T^-2) x = a'(y-b)/s^2 + mu/tau^2
    lhs = a.T @ a / p.sigma**2 + np.diag(1 / p.tau**2)
    rhs = a.T @ (y - b) / p.sigma**2 + p.mu / p.tau**2
    return np.linalg.solve(lhs, rhs)


def test_linear_map_solution_and_posterior_match_the_closed_form():
    truth = np.array([0.2, -0.1])
    y = _linear(truth[None, :])[0] + np.array([0.01, -0.02, 0.0, 0.015])
    problem = _problem(y)
    fit = solve(_linear, problem, problem.mu)
    expected = _closed_form(A, B, y, problem)
    assert fit.x == pytest.approx(expected, abs=1e-6)
    # posterior covariance of a linear-Gaussian model: (A'A/s^2 + T^-2)^-1
    cov = np.linalg.inv(A.T @ A / problem.sigma**2 + np.diag(1 / problem.tau**2))
    assert fit.covariance == pytest.approx(cov, rel=1e-6)
    assert fit.converged


def test_a_parameter_no_figure_depends_on_stays_at_its_prior():
    a = np.array([[1.0, 0.0], [2.0, 0.0]])  # the second parameter moves nothing
    problem = Problem(y=np.array([0.1, 0.2]), sigma=0.05, mu=np.array([0.0, 0.4]),
                      tau=np.array([0.3, 0.3]), lower=np.full(2, -5.0), upper=np.full(2, 5.0))
    fit = solve(lambda pts: pts @ a.T, problem, problem.mu)
    assert fit.x[1] == pytest.approx(0.4)
    assert fit.sd[1] == pytest.approx(0.3)  # posterior spread = prior spread: nothing learned


def test_bounds_hold():
    problem = Problem(y=np.array([2.0]), sigma=0.01, mu=np.array([0.0]), tau=np.array([1.0]),
                      lower=np.array([-1.0]), upper=np.array([0.5]))
    fit = solve(lambda pts: pts * 1.0, problem, problem.mu)
    assert fit.x[0] == pytest.approx(0.5)


def test_leave_one_out_equals_refitting_without_the_group_for_a_linear_model():
    y = _linear(np.array([[0.2, -0.1]]))[0] + np.array([0.03, -0.02, 0.01, -0.04])
    problem = _problem(y)
    fit = solve(_linear, problem, problem.mu)
    groups = [[0], [1, 2], [3]]
    loo = leave_one_out(fit, problem, groups)
    for rows in groups:
        keep = [i for i in range(len(y)) if i not in rows]
        x = _closed_form(A[keep], B[keep], y[keep], problem)
        assert loo[rows] == pytest.approx((A[rows] @ x + B[rows]), abs=1e-9)
