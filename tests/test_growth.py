"""Tests for analytics.growth (WSB fits, series building, backtest, CLI)."""
from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import curve_fit
from scipy.special import ndtr

from analytics.growth import (FLAG_NAMES, GrowthDataError, GrowthSeries, WSBFitter, backtest,
                              derivative_series, detect_jumps, rank_models, read_wide_csv, wsb_curve,
                              wsb_lambda)
from analytics.growth.curves import _wsb_eval

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "tests" / "data" / "growth_small.csv"
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
    truth = np.array([[3.0, 1.5, 0.8], [2.0, 2.2, 0.6], [4.5, 0.8, 1.2], [1.2, 1.0, 0.5], [5.0, 2.5, 1.0]])
    Y = np.round(wsb_curve(TT[None, :], *[truth[:, [k]] for k in range(3)])
                 * np.exp(rng.normal(0, 0.01, (len(truth), T))))
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
    truth = np.column_stack([rng.uniform(2, 4.5, n), rng.uniform(0.8, 2.5, n), rng.uniform(0.4, 1.2, n)])
    Y = _poisson_series(truth, rng)
    est = WSBFitter().fit(Y)
    assert est.converged_.mean() > 0.99
    assert est.ok_.mean() > 0.95
    assert np.median(np.abs(est.lambda_ - truth[:, 0])) < 0.1
    assert np.median(np.abs(est.mu_ - truth[:, 1])) < 0.1
    assert np.median(np.abs(est.sigma_ - truth[:, 2])) < 0.1


def test_analytic_jacobian_matches_finite_differences():
    rng = np.random.default_rng(3)
    th = np.column_stack([np.log(rng.uniform(5, 5000, 6)), rng.uniform(-1, 3, 6), np.log(rng.uniform(0.2, 2, 6))])
    t = TT[None, :]
    for log in (True, False):
        f, J = _wsb_eval(th, t, True, log, 100.0)
        for k in range(3):
            h = 1e-6
            tp, tm = th.copy(), th.copy()
            tp[:, k] += h
            tm[:, k] -= h
            fd = (_wsb_eval(tp, t, False, log, 100.0)[0] - _wsb_eval(tm, t, False, log, 100.0)[0]) / (2 * h)
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
                    p, _ = curve_fit(fn, TT, yy, p0=p0, bounds=([1e-4, -4, 0.05], [18, 8, 8]),
                                     ftol=1e-13, xtol=1e-13, gtol=1e-13, max_nfev=20000)
                except RuntimeError:
                    continue
            cost = 0.5 * np.sum((fn(TT, *p) - yy) ** 2)
            if best is None or cost < best[0]:
                best = (cost, p)
        assert est.cost_[i] <= best[0] * (1 + 1e-7) + 1e-12
        np.testing.assert_allclose([est.lambda_[i], est.mu_[i], est.sigma_[i]], best[1], rtol=1e-4, atol=1e-5)


def test_edge_cases_flat_one_point_step_huge_nan_zero():
    big = np.round(wsb_curve(TT, 5.7, 1.0, 1.0))  # ~30k derivatives
    assert big[-1] > 25_000
    step = np.r_[np.full(12, 2.0), np.full(T - 12, 80.0)]
    nan_tail = np.r_[np.round(wsb_curve(TT[:14], 2.5, 1.2, 0.7)), np.full(T - 14, np.nan)]
    Y = np.vstack([np.full(T, 5.0), np.r_[7.0, np.full(T - 1, np.nan)], step, big, nan_tail, np.zeros(T)])
    est = WSBFitter().fit(Y)
    fl = est.flags_
    flat, one, stp, huge, tail, zero = range(6)
    # flat: fits exactly (all growth before month 1) but mu/sigma are unidentified -> flagged, not ok
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
    truth = np.column_stack([rng.uniform(1, 5, 200), rng.uniform(0, 3, 200), rng.uniform(0.3, 2, 200)])
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
    for c in ("model", "lambda", "mu", "sigma", "c_inf", "ok", "r2", "rmsle", "flags",
              "pred_6m", "pred_6m_low", "pred_6m_high", "pred_12m"):
        assert c in s.columns
    assert (s["pred_12m"] >= s["pred_6m"]).all()


# --------------------------------------------------------------------------- series building
def _edges():
    ts = pd.Timestamp
    rows = [
        # parent A created 2023-01-01; children in months 0, 0, 2, and one dated before the parent
        ("A", ts("2023-01-01", tz="UTC"), "a1", ts("2023-01-10", tz="UTC"), "finetune"),
        ("A", ts("2023-01-01", tz="UTC"), "a2", ts("2023-01-20", tz="UTC"), "quantized"),
        ("A", ts("2023-01-01", tz="UTC"), "a3", ts("2023-03-15", tz="UTC"), "finetune"),
        ("A", ts("2023-01-01", tz="UTC"), "a3", ts("2023-03-15", tz="UTC"), "finetune"),  # duplicate edge
        ("A", ts("2023-01-01", tz="UTC"), "a0", ts("2022-12-01", tz="UTC"), "adapter"),
        ("A", ts("2023-01-01", tz="UTC"), "ax", pd.NaT, "merge"),  # undated child
        # parent B: unknown creation -> imputed from first child (2023-02-01)
        ("B", pd.NaT, "b1", ts("2023-02-01", tz="UTC"), "unknown"),
        ("B", pd.NaT, "b2", ts("2023-04-15", tz="UTC"), "unknown"),
        # parent C: too young at as_of
        ("C", ts("2023-05-20", tz="UTC"), "c1", ts("2023-05-25", tz="UTC"), "merge"),
    ]
    return pd.DataFrame(rows, columns=["parent", "parent_created", "child", "child_created", "relation"])


def test_derivative_series_counts_window_and_flags():
    gs = derivative_series(_edges(), as_of="2023-06-05")
    assert list(gs.ids) == ["A", "B"]
    assert gs.dropped["younger_than_one_month"] == 1 and gs.dropped["undated_children"] == 1
    a, b = 0, 1
    # A: 5 complete months by 2023-06-05 (age 155 d = 5.09 months) -> n_obs 5
    assert gs.n_obs[a] == 5
    np.testing.assert_array_equal(gs.counts[a, :5], [3, 3, 4, 4, 4])  # a0 (before parent), a1, a2 in month 0
    assert gs.info.n_before_parent[a] == 1 and gs.info.n_undated_children[a] == 1
    assert not gs.info.parent_date_imputed[a] and gs.info.parent_date_imputed[b]
    # B: created 2023-02-01 (imputed), 4 complete months; b2 at age ~2.4 months -> month 2
    assert gs.n_obs[b] == 4
    np.testing.assert_array_equal(gs.counts[b, :4], [1, 1, 2, 2])
    assert np.isnan(gs.counts[b, 4:]).all()
    # round trip through the wide CSV form
    back = GrowthSeries.from_wide(gs.to_wide())
    np.testing.assert_array_equal(back.n_obs, gs.n_obs)
    np.testing.assert_array_equal(np.nan_to_num(back.counts, nan=-1), np.nan_to_num(gs.counts, nan=-1))


def test_derivative_series_drop_unknown_and_by_relation():
    gs = derivative_series(_edges(), as_of="2023-06-05", unknown_parent="drop")
    assert list(gs.ids) == ["A"] and gs.dropped["unknown_parent_created"] == 1
    gr = derivative_series(_edges(), as_of="2023-06-05", by_relation=True)
    last = gr.counts[np.arange(len(gr)), gr.n_obs - 1]
    rel = dict(zip(zip(gr.ids, gr.relation), last))
    assert rel[("A", "finetune")] == 2 and rel[("A", "quantized")] == 1 and rel[("A", "adapter")] == 1
    assert rel[("B", "unknown")] == 2
    # default as_of = latest child date (2023-05-25): A has 4 complete months, C is too young
    d = derivative_series(_edges())
    assert d.n_obs[0] == 4 and "C" not in set(d.ids)


# --------------------------------------------------------------------------- backtest & ranking
def test_backtest_table_shape_and_sanity():
    rng = np.random.default_rng(7)
    n = 120
    truth = np.column_stack([rng.uniform(2, 4, n), rng.uniform(1.5, 2.8, n), rng.uniform(0.5, 1.0, n)])
    Y = _poisson_series(truth, rng)
    Y[: n // 2, 24:] = np.nan  # half the series shorter
    tab = backtest(GrowthSeries(ids=np.arange(n), counts=Y, n_obs=None), holdout=12, horizons=(3, 6, 12))
    assert set(tab.columns) >= {"method", "horizon", "n_series", "mape", "mdape", "rmsle", "coverage"}
    methods = {"wsb", "wsb_anchored", "wsb_or_last", "last_value", "linear", "logistic", "bass"}
    assert set(tab.method) == methods and sorted(tab.horizon.unique()) == [3, 6, 12]
    assert len(tab) == len(methods) * 3 and (tab.n_series == n).all()
    r = tab.set_index(["method", "horizon"])
    # data generated by WSB: WSB must beat "last value" and error must grow with horizon
    for h in (3, 6, 12):
        assert r.loc[("wsb", h), "rmsle"] < r.loc[("last_value", h), "rmsle"]
    assert r.loc[("wsb", 3), "rmsle"] < r.loc[("wsb", 12), "rmsle"]
    assert 0 < r.loc[("wsb", 6), "coverage"] <= 1
    # horizons beyond the holdout are dropped
    assert set(backtest(Y, holdout=6).horizon) == {3, 6}


def test_rank_models():
    rng = np.random.default_rng(8)
    Y = _poisson_series(np.array([[2.0, 1.5, 0.7], [4.0, 2.0, 0.8], [3.0, 2.5, 0.6]]), rng)
    s = WSBFitter().fit(Y).summary(horizons=(6, 12))
    r = rank_models(s, horizons=(6, 12))
    assert list(r["rank_6m"]) == [1, 2, 3]
    assert r.iloc[0]["model"] == 1  # biggest fitness -> most derivatives
    assert (np.diff(r["pred_6m"]) <= 0).all()
    assert set(r["rank_fitness"]) == {1, 2, 3}
    assert {"growth_6m", "growth_12m", "rank_12m"} <= set(r.columns)
    assert len(rank_models(s, top=2)) == 2
    with pytest.raises(ValueError):
        rank_models(s.drop(columns=["pred_12m"]))


# --------------------------------------------------------------------------- CSV + CLI
def _cli(*args):
    return subprocess.run([sys.executable, "-m", "analytics.growth", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_cli_fit_and_backtest(tmp_path):
    out = tmp_path / "fit.csv"
    p = _cli("fit", SMALL, "--out", out)
    assert p.returncode == 0, p.stderr
    df = pd.read_csv(out)
    for c in ("model", "lambda", "mu", "sigma", "c_inf", "ok", "r2", "rmsle", "flags", "pred_6m",
              "pred_6m_low", "pred_6m_high", "pred_12m"):
        assert c in df.columns
    d = df.set_index("model")
    assert d.loc["org/smooth-a", "ok"] and d.loc["org/big", "ok"] and d.loc["org/nan-tail", "ok"]
    assert not d.loc["org/step", "ok"] and "jump" in d.loc["org/step", "flags"]
    assert not d.loc["org/zero", "ok"] and not d.loc["org/short", "ok"] and not d.loc["org/flat", "ok"]
    assert abs(d.loc["org/smooth-a", "lambda"] - 3.0) < 0.05
    p = _cli("backtest", SMALL, "--holdout", "6")
    assert p.returncode == 0, p.stderr
    assert "wsb" in p.stdout and "last_value" in p.stdout and "rmsle" in p.stdout


def test_cli_bad_csvs(tmp_path):
    bad = tmp_path / "nomodel.csv"
    bad.write_text("name,0-month,1-month\nx,1,2\n")
    p = _cli("fit", bad, "--out", tmp_path / "o.csv")
    assert p.returncode != 0 and "missing required column 'model'" in p.stderr
    bad2 = tmp_path / "text.csv"
    bad2.write_text("model,0-month,1-month,2-month\nx,1,two,3\n")
    p = _cli("backtest", bad2)
    assert p.returncode != 0 and "non-numeric value 'two'" in p.stderr and "1-month" in p.stderr
    p = _cli("fit", tmp_path / "missing.csv", "--out", tmp_path / "o.csv")
    assert p.returncode != 0 and "file not found" in p.stderr
    with pytest.raises(GrowthDataError):
        read_wide_csv(bad)


def test_wsb_lambda_c_inf_relation():
    assert wsb_lambda(100 * np.expm1(2.5)) == pytest.approx(2.5)
