"""analytics.growth.fitters: WSB fits, checks, baselines (estimator contract)."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.growth import (
    FLAG_NAMES,
    DampedTrend,
    LastValue,
    LinearTrend,
    WSBFitter,
    WSBOrLastValue,
    detect_jumps,
    wsb_curve,
)

T = 30
TT = np.arange(T) + 1.0


def _poisson_series(params, rng, T=T):
    lam, mu, sig = np.asarray(params, float).T
    C = wsb_curve(np.arange(T)[None, :] + 1.0, lam[:, None], mu[:, None], sig[:, None])
    inc = np.diff(np.concatenate([np.zeros((len(lam), 1)), C], axis=1), axis=1)
    return np.cumsum(rng.poisson(np.maximum(inc, 0)), axis=1).astype(float)


# --------------------------------------------------------------------------- fitting
def test_recovers_known_parameters_with_noise():
    rng = np.random.default_rng(1)
    truth = np.array(
        [[3.0, 1.5, 0.8], [2.0, 2.2, 0.6], [4.5, 0.8, 1.2], [1.2, 1.0, 0.5], [5.0, 2.5, 1.0]]
    )
    Y = np.round(
        wsb_curve(TT[None, :], *[truth[:, [k]] for k in range(3)])
        * np.exp(rng.normal(0, 0.01, (len(truth), T)))
    )
    est = WSBFitter().fit(Y)
    assert est.converged_.all() and est.ok_.all()
    np.testing.assert_allclose(est.lambda_, truth[:, 0], rtol=0.05)
    np.testing.assert_allclose(est.mu_, truth[:, 1], atol=0.05)
    np.testing.assert_allclose(est.sigma_, truth[:, 2], rtol=0.06)
    np.testing.assert_allclose(est.c_inf_, 100 * np.expm1(est.lambda_), rtol=1e-10)
    assert (est.r2_ > 0.998).all()


def test_poisson_batch_recovers_parameters_on_average():
    rng = np.random.default_rng(2)
    n = 300
    truth = np.column_stack(
        [rng.uniform(2, 4.5, n), rng.uniform(0.8, 2.5, n), rng.uniform(0.4, 1.2, n)]
    )
    Y = _poisson_series(truth, rng)
    est = WSBFitter().fit(Y)
    assert est.converged_.mean() > 0.99
    assert est.ok_.mean() > 0.95
    assert np.median(np.abs(est.lambda_ - truth[:, 0])) < 0.1
    assert np.median(np.abs(est.mu_ - truth[:, 1])) < 0.1
    assert np.median(np.abs(est.sigma_ - truth[:, 2])) < 0.1


def test_edge_cases_flat_one_point_step_huge_nan_zero():
    big = np.round(wsb_curve(TT, 5.7, 1.0, 1.0))  # ~30k derivatives
    assert big[-1] > 25_000
    step = np.r_[np.full(12, 2.0), np.full(T - 12, 80.0)]
    nan_tail = np.r_[np.round(wsb_curve(TT[:14], 2.5, 1.2, 0.7)), np.full(T - 14, np.nan)]
    Y = np.vstack(
        [np.full(T, 5.0), np.r_[7.0, np.full(T - 1, np.nan)], step, big, nan_tail, np.zeros(T)]
    )
    est = WSBFitter().fit(Y)
    fl = est.flags_
    flat, one, stp, huge, tail, zero = range(6)
    # flat: fits exactly (all growth before month 1) but mu/sigma are unidentified -> flagged
    assert est.fitted_[flat] and fl.flat[flat] and not est.ok_[flat] and est.r2_[flat] == 1.0
    assert fl.flat.sum() == 1
    np.testing.assert_allclose(est.predict_ahead(6)[flat], 5.0, rtol=1e-3)
    # one point: not fitted, too short, NaN forecast
    assert fl.not_fitted[one] and fl.too_short[one] and not est.ok_[one]
    assert np.isnan(est.predict_ahead(6)[one]) and np.isnan(est.lambda_[one])
    # step jump is flagged
    assert fl.jump[stp] and not est.ok_[stp]
    # huge counts fit fine
    assert est.ok_[huge] and est.r2_[huge] > 0.999
    np.testing.assert_allclose(est.lambda_[huge], 5.7, rtol=1e-3)
    # NaN tail: uses only observed months
    assert est.n_obs_[tail] == 14 and est.last_t_[tail] == 14 and est.ok_[tail]
    np.testing.assert_allclose([est.mu_[tail], est.sigma_[tail]], [1.2, 0.7], atol=0.05)
    # all zero: no derivatives -> c_inf 0, forecast 0, not ok
    assert est.c_inf_[zero] == 0 and est.predict_ahead(12)[zero] == 0 and not est.ok_[zero]
    assert set(fl.columns) == set(FLAG_NAMES)


def test_jump_detection_not_triggered_by_smooth_curves():
    rng = np.random.default_rng(5)
    truth = np.column_stack(
        [rng.uniform(1, 5, 200), rng.uniform(0, 3, 200), rng.uniform(0.3, 2, 200)]
    )
    Y = np.round(wsb_curve(TT[None, :], truth[:, [0]], truth[:, [1]], truth[:, [2]]))
    assert detect_jumps(Y).mean() < 0.02
    assert detect_jumps(np.array([[0, 1, 2, 3, 4, 50, 51, 52.0]])).all()


def test_forecast_interval_and_summary():
    rng = np.random.default_rng(6)
    Y = _poisson_series(np.array([[3.0, 2.5, 0.8], [2.0, 1.0, 0.6]]), rng)
    est = WSBFitter().fit(Y)
    p, lo, hi = est.predict_interval(6, level=0.8)
    assert np.all(lo <= p) and np.all(p <= hi) and np.all(hi > lo)
    np.testing.assert_allclose(p, est.predict_ahead(6))
    truth6 = wsb_curve(T + 6, 3.0, 2.5, 0.8)
    assert abs(p[0] - truth6) / truth6 < 0.1
    s = est.summary(horizons=(6, 12))
    for c in (
        "model",
        "lambda",
        "mu",
        "sigma",
        "c_inf",
        "ok",
        "r2",
        "rmsle",
        "flags",
        "pred_6m",
        "pred_6m_low",
        "pred_6m_high",
        "pred_12m",
    ):
        assert c in s.columns
    assert (s["pred_12m"] >= s["pred_6m"]).all()


def test_c_inf_cap_flags_a_still_accelerating_series():
    t = np.arange(12) + 1.0
    Y = np.round(np.exp(0.45 * t))[None, :]  # pure exponential: no asymptote in sight
    capped = WSBFitter().fit(Y)
    free = WSBFitter(c_inf_max_ratio=None).fit(Y)
    assert capped.flags_["c_inf_cap"].iloc[0] and not capped.ok_[0]
    assert capped.c_inf_[0] <= 100 * Y.max() * 1.001
    assert free.c_inf_[0] > capped.c_inf_[0] and not free.flags_["c_inf_cap"].iloc[0]
    assert "c∞ reached its cap" in capped.failed_checks()[0]


@pytest.mark.parametrize(
    "cls, bad",
    [
        (WSBFitter, {"c_inf_max_ratio": 0.5}),
        (WSBFitter, {"loss": "l1"}),
        (WSBFitter, {"mu_bounds": (3.0, 1.0)}),
        (DampedTrend, {"damping": 1.5}),
        (DampedTrend, {"window": 0}),
    ],
)
def test_estimators_store_in_init_and_validate_in_fit(cls, bad):
    import inspect

    est = cls(**bad)  # the estimator contract: __init__ only stores ...
    for name in inspect.signature(cls.__init__).parameters:
        if name != "self":
            assert hasattr(est, name), f"{cls.__name__}.{name} not stored under its own name"
    for k, v in bad.items():
        assert getattr(est, k) == v
    with pytest.raises(ValueError):  # ... and fit validates
        est.fit(np.array([[1.0, 2.0, 4.0, 7.0, 9.0, 12.0]]))


def test_wsb_min_points_flags_short_series_without_renaming():
    Y = np.array([[1.0, 3, 6, 10, np.nan, np.nan, np.nan, np.nan], [1.0, 3, 6, 10, 14, 17, 19, 20]])
    est = WSBFitter(min_points=6).fit(Y)
    assert est.min_points == 6
    assert est.flags_["too_short"].tolist() == [True, False]
    assert est.fitted_.all()  # fitted from 3 points on, flagged below min_points
    assert est.failed_checks()[0].startswith("4 monthly points < 6")


def test_failed_checks_give_the_value_against_the_threshold():
    rng = np.random.default_rng(11)
    smooth = _poisson_series(np.array([[3.0, 2.0, 0.7]]), rng)
    few = np.r_[np.zeros(10), np.full(T - 10, 3.0)][None, :]
    step = np.r_[np.full(12, 2.0), np.full(T - 12, 80.0)][None, :]
    est = WSBFitter().fit(np.vstack([smooth, few, step]))
    checks = est.failed_checks()
    assert est.ok_[0] and checks[0] == ""
    assert "3 derivatives < 5" in checks[1]
    # the step fits the raw counts well (R² >= 0.9) but not their logs: only RMSLE is named
    assert est.flags_["bad_fit"].iloc[2] and est.r2_[2] >= 0.9
    assert f"RMSLE {est.rmsle_[2]:.3f} > 0.5" in checks[2] and "R²" not in checks[2]
    assert "month 12 alone added" in checks[2]


def test_predict_rows_matches_full_predict():
    rng = np.random.default_rng(12)
    est = WSBFitter().fit(_poisson_series(rng.uniform([2, 1, 0.5], [4, 2, 1], (6, 3)), rng))
    full = est.predict(np.arange(1.0, 20.0))
    np.testing.assert_allclose(est.predict(np.arange(1.0, 20.0), rows=[4, 1]), full[[4, 1]])
    p, lo, hi = est.predict_interval(6)
    p2, lo2, hi2 = est.predict_interval(6, rows=[2])
    np.testing.assert_allclose([p2[0], lo2[0], hi2[0]], [p[2], lo[2], hi[2]])


def test_baselines_last_linear_damped_and_wsb_or_last():
    Y = np.array([[1.0, 2, 3, 4, 5, 6], [0, 0, 0, 2, 2, 2], [5, 5, 5, 5, 5, 5]])
    np.testing.assert_array_equal(LastValue().fit(Y).predict_ahead(3), [6, 2, 5])
    np.testing.assert_allclose(LinearTrend(window=6).fit(Y).predict_ahead(3)[0], 9.0)
    d = DampedTrend(window=3, damping=0.5).fit(Y)
    # slopes 1 and 2/3 per month; 0.5 + 0.25 + 0.125 months' worth over 3 months
    np.testing.assert_allclose(d.predict_ahead(3), [6.875, 2 + 2 / 3 * 0.875, 5.0])
    np.testing.assert_allclose(DampedTrend(window=3, damping=1.0).fit(Y).predict_ahead(3)[0], 9.0)
    wl = WSBOrLastValue().fit(Y)
    assert (wl.predict_ahead(6)[~wl.wsb_.ok_] == Y[~wl.wsb_.ok_, -1]).all()
