"""analytics.growth.curves: the WSB evaluator and the batched Levenberg-Marquardt solver."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.optimize import curve_fit
from scipy.special import ndtr

from analytics.growth import WSBFitter, wsb_curve, wsb_lambda
from analytics.growth.curves import _wsb_eval

T = 30
TT = np.arange(T) + 1.0


def _poisson_series(params, rng, T=T):
    lam, mu, sig = np.asarray(params, float).T
    C = wsb_curve(np.arange(T)[None, :] + 1.0, lam[:, None], mu[:, None], sig[:, None])
    inc = np.diff(np.concatenate([np.zeros((len(lam), 1)), C], axis=1), axis=1)
    return np.cumsum(rng.poisson(np.maximum(inc, 0)), axis=1).astype(float)


def test_analytic_jacobian_matches_finite_differences():
    rng = np.random.default_rng(3)
    th = np.column_stack(
        [np.log(rng.uniform(5, 5000, 6)), rng.uniform(-1, 3, 6), np.log(rng.uniform(0.2, 2, 6))]
    )
    t = TT[None, :]
    for log in (True, False):
        f, J = _wsb_eval(th, t, True, log, 100.0)
        for k in range(3):
            h = 1e-6
            tp, tm = th.copy(), th.copy()
            tp[:, k] += h
            tm[:, k] -= h
            fd = (
                _wsb_eval(tp, t, False, log, 100.0)[0] - _wsb_eval(tm, t, False, log, 100.0)[0]
            ) / (2 * h)
            np.testing.assert_allclose(J[:, k], fd, rtol=1e-5, atol=1e-7 * (1 + np.abs(fd).max()))


@pytest.mark.parametrize("loss", ["log", "linear"])
def test_batched_lm_matches_scipy_curve_fit(loss):
    """Same optimum as a slow per-series scipy reference with the same objective."""
    rng = np.random.default_rng(4)
    truth = np.array([[3.0, 1.5, 0.8], [1.5, 2.0, 0.5], [4.0, 0.5, 1.5], [2.5, 2.8, 0.7]])
    Y = _poisson_series(truth, rng)
    est = WSBFitter(loss=loss).fit(Y)

    def fn(t, lam, mu, sig):
        c = 100 * np.expm1(lam * ndtr((np.log(t) - mu) / sig))
        return np.log1p(c) if loss == "log" else c

    for i, y in enumerate(Y):
        yy = np.log1p(y) if loss == "log" else y
        best = None
        for p0 in (truth[i], [0.5, 2.0, 0.5], [2.0, 1.0, 1.0]):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    p, _ = curve_fit(
                        fn,
                        TT,
                        yy,
                        p0=p0,
                        bounds=([1e-4, -4, 0.05], [18, 8, 8]),
                        ftol=1e-13,
                        xtol=1e-13,
                        gtol=1e-13,
                        max_nfev=20000,
                    )
                except RuntimeError:
                    continue
            cost = 0.5 * np.sum((fn(TT, *p) - yy) ** 2)
            if best is None or cost < best[0]:
                best = (cost, p)
        assert est.cost_[i] <= best[0] * (1 + 1e-7) + 1e-12
        np.testing.assert_allclose(
            [est.lambda_[i], est.mu_[i], est.sigma_[i]], best[1], rtol=1e-4, atol=1e-5
        )


def test_wsb_lambda_c_inf_relation():
    assert wsb_lambda(100 * np.expm1(2.5)) == pytest.approx(2.5)
