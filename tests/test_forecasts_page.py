"""Forecasts: the analytics glue (analytics/forecasts.py, the growth.py additions it relies on)
and the Streamlit page (pages/forecasts.py) through AppTest on the mini graph."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics import forecasts as F
from analytics.growth import GrowthSeries, WSBFitter, coverage_end, wsb_curve

OK_MODEL = "mistralai/Mistral-7B-v0.1"          # passes every check on the mini graph
FLAGGED_MODEL = "distilbert/distilbert-base-uncased"  # flagged on the mini graph
NO_DERIVATIVES = "KappaNeuro/mike-mignola-style"  # in the mini graph, no derivative


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def mini_edges(mini_graph_root):
    from graph.queries import derivative_edges
    from graph.store import open_store

    store = open_store(read_only=True, root=mini_graph_root)
    try:
        return derivative_edges(store)
    finally:
        store.close()


@pytest.fixture(scope="module")
def mini_series(mini_edges):
    return F.build_series(mini_edges)


@pytest.fixture(scope="module")
def mini_table(mini_series):
    return F.growth_table(mini_series, horizons=(6, 12), calibration=F.calibrate(mini_series))


def _synthetic(n=120, T=24, seed=0):
    rng = np.random.default_rng(seed)
    lam, mu, sig = rng.uniform(2.5, 4.5, n), rng.uniform(1.0, 2.2, n), rng.uniform(0.5, 1.0, n)
    C = wsb_curve(np.arange(T)[None, :] + 1.0, lam[:, None], mu[:, None], sig[:, None])
    inc = np.diff(np.concatenate([np.zeros((n, 1)), C], axis=1), axis=1)
    Y = np.cumsum(rng.poisson(np.maximum(inc, 0)), axis=1).astype(float)
    return GrowthSeries(ids=np.array([f"org{i % 7}/m{i}" for i in range(n)], dtype=object), counts=Y,
                        n_obs=np.full(n, T))


# --------------------------------------------------------------------------- growth.py additions
def test_coverage_end_ignores_a_sparse_later_crawl():
    dense = pd.date_range("2024-01-01", "2024-07-11 18:00", freq="15min", tz="UTC")
    sparse = pd.date_range("2024-08-01", "2025-04-01", freq="3D", tz="UTC")
    end = coverage_end(pd.Series(dense.append(sparse)))
    assert end == dense[-1]
    assert coverage_end(pd.Series([], dtype="datetime64[ns, UTC]")) is None


def test_head_keeps_first_k_months():
    gs = _synthetic(n=3, T=10)
    h = gs.head(4)
    assert h.counts.shape == (3, 4) and (h.n_obs == 4).all()
    np.testing.assert_array_equal(h.counts, gs.counts[:, :4])
    with pytest.raises(ValueError):
        gs.head(0)


def test_c_inf_cap_flags_a_still_accelerating_series():
    t = np.arange(12) + 1.0
    Y = np.round(np.exp(0.45 * t))[None, :]  # pure exponential: no asymptote in sight
    capped = WSBFitter().fit(Y)
    free = WSBFitter(c_inf_max_ratio=None).fit(Y)
    assert capped.flags_["c_inf_cap"].iloc[0] and not capped.ok_[0]
    assert capped.c_inf_[0] <= 100 * Y.max() * 1.001
    assert free.c_inf_[0] > capped.c_inf_[0] and not free.flags_["c_inf_cap"].iloc[0]
    bad = WSBFitter(c_inf_max_ratio=0.5)  # __init__ only stores (estimator contract) ...
    assert bad.c_inf_max_ratio == 0.5
    with pytest.raises(ValueError):  # ... fit validates
        bad.fit(Y)


def test_predict_rows_matches_full_predict():
    est = WSBFitter().fit(_synthetic(n=6, T=12))
    full = est.predict(np.arange(1.0, 20.0))
    np.testing.assert_allclose(est.predict(np.arange(1.0, 20.0), rows=[4, 1]), full[[4, 1]])
    p, lo, hi = est.predict_interval(6)
    p2, lo2, hi2 = est.predict_interval(6, rows=[2])
    np.testing.assert_allclose([p2[0], lo2[0], hi2[0]], [p[2], lo[2], hi[2]])


# --------------------------------------------------------------------------- glue
def test_build_series_from_graph_edges(mini_series):
    assert len(mini_series) > 20 and mini_series.as_of is not None
    assert OK_MODEL in set(mini_series.ids)
    empty = F.build_series(pd.DataFrame(columns=["parent", "parent_created", "child", "child_created",
                                                 "relation"]))
    assert len(empty) == 0


def test_growth_table_forecasts_and_fallback(mini_table):
    s = mini_table.summary.set_index("model")
    assert {"lambda", "mu", "sigma", "c_inf", "r2", "rmsle", "flags", "ok", "reason", "forecast",
            "pred_6m", "pred_12m_low"} <= set(s.columns)
    ok = s.loc[OK_MODEL]
    assert ok["ok"] and ok["forecast"] == "wsb" and ok["reason"] == ""
    assert ok["last"] <= ok["pred_6m_low"] <= ok["pred_6m"] <= ok["pred_6m_high"]
    assert ok["pred_6m"] <= ok["pred_12m"]
    np.testing.assert_allclose(ok["c_inf"], 100 * np.expm1(ok["lambda"]), rtol=1e-9)
    bad = s.loc[FLAGGED_MODEL]
    assert not bad["ok"] and bad["forecast"] == "last value" and bad["flags"]
    assert bad["pred_6m"] == bad["last"] and np.isnan(bad["pred_6m_high"])
    assert bad["reason"] == F.reason_text(bad["flags"]) != ""
    # every flagged row falls back, every ok row is extrapolated
    flagged = s[~s["ok"]]
    assert (flagged["pred_12m"] == flagged["last"]).all() and flagged["pred_12m_low"].isna().all()


def test_points_used_fits_first_months_and_keeps_truth(mini_series):
    t = F.growth_table(mini_series, horizons=(2,), points_used=6)
    s = t.summary.set_index("model")
    assert (s["months_used"] <= 6).all() and s.loc[OK_MODEL, "n_obs"] > 6
    assert s.loc[OK_MODEL, "observed_2m"] == mini_series.counts[list(mini_series.ids).index(OK_MODEL), 7]
    cv = F.curves(t, [OK_MODEL], months_ahead=3)
    assert (cv["kind"] == "held out").sum() == s.loc[OK_MODEL, "n_obs"] - 6
    with pytest.raises(ValueError):
        F.growth_table(mini_series, points_used=0)


def test_curves_for_ok_flagged_and_unknown(mini_table):
    cv = F.curves(mini_table, [OK_MODEL, FLAGGED_MODEL, "nobody/nothing"], months_ahead=5)
    assert set(cv["model"]) == {OK_MODEL, FLAGGED_MODEL}
    ok, bad = cv[cv["model"] == OK_MODEL], cv[cv["model"] == FLAGGED_MODEL]
    assert {"observed", "fit", "forecast"} <= set(ok["kind"])
    fc = ok[ok["kind"] == "forecast"]
    assert len(fc) == 6 and (fc["low"] <= fc["value"]).all() and (fc["value"] <= fc["high"]).all()
    assert "fit" not in set(bad["kind"]) and "rejected fit" in set(bad["kind"])
    flat = bad[bad["kind"] == "forecast"]["value"]
    assert flat.nunique() == 1 and flat.iloc[0] == mini_table.summary.set_index("model").at[FLAGGED_MODEL, "last"]
    assert ok["date"].notna().all()


def test_ranking_authors_lookup(mini_table):
    r = F.ranking(mini_table)
    assert r["ok"].all() and list(r["rank_6m"]) == sorted(r["rank_6m"])
    assert OK_MODEL in set(r["model"]) and FLAGGED_MODEL not in set(r["model"])
    assert (r["pred_6m"].diff().dropna() <= 1e-9).all()
    r_all = F.ranking(mini_table, ok_only=False)
    assert FLAGGED_MODEL in set(r_all["model"]) and r_all.loc[~r_all["ok"], "rank_fitness"].isna().all()
    au = F.authors(mini_table)
    assert {"author", "base_models", "derivatives", "ok_fits"} <= set(au.columns)
    assert "mistralai" in set(au["author"])
    assert OK_MODEL in F.models_of(mini_table, "mistralai")
    assert F.lookup(mini_table, [OK_MODEL, "x/y"]) == ([OK_MODEL], ["x/y"])
    p = F.parameters(mini_table, [FLAGGED_MODEL, OK_MODEL])
    assert list(p["model"]) == [FLAGGED_MODEL, OK_MODEL]
    assert F.table_csv(p).decode().startswith("model,")


def test_calibrate_widens_the_band():
    gs = _synthetic(n=200, T=24, seed=3)
    cal = F.calibrate(gs, holdout=6)
    assert list(cal["horizon"]) == [1, 2, 3, 4, 5, 6] and (cal["n"] >= 30).all()
    assert (cal["q_low"] <= cal["q_high"]).all()
    raw = F.growth_table(gs, horizons=(6, 12))
    cal_t = F.growth_table(gs, horizons=(6, 12), calibration=cal)
    ok = raw.summary["ok"]
    assert ok.mean() > 0.8
    np.testing.assert_allclose(raw.summary["pred_6m"], cal_t.summary["pred_6m"])
    assert "measured on this graph" in F.band_note(cal_t)
    # too few ok fits (mini graph): no calibration, the fitter's own band, and the note says so
    few = F.calibrate(gs.subset(np.arange(10)), holdout=6)
    assert few["q_low"].isna().all()
    assert "fitter's own" in F.band_note(F.growth_table(gs.subset(np.arange(10)), calibration=few))


def test_reason_text():
    assert F.reason_text("") == ""
    assert F.reason_text("too_short;not_fitted") == F.FLAG_REASONS["not_fitted"]
    assert set(F.FLAG_REASONS) == set(F.FLAG_NAMES)


# --------------------------------------------------------------------------- the page (AppTest)
PAGE = str(__import__("pathlib").Path(__file__).resolve().parents[1] / "pages" / "forecasts.py")


def _page(monkeypatch, root, models: str | None = None):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("HUBATLAS_DB", str(root))
    at = AppTest.from_file(PAGE, default_timeout=60)
    if models is not None:
        at.query_params["model"] = models
    return at.run()


def _texts(at, kind):
    return [str(e.value) for e in getattr(at, kind)]


def test_page_chart_parameters_and_ranking(monkeypatch, mini_graph_copy):
    at = _page(monkeypatch, mini_graph_copy, OK_MODEL)
    assert not at.exception
    assert len(at.get("plotly_chart")) == 1
    params, rank = at.dataframe[0].value, at.dataframe[1].value
    assert list(params["model"]) == [OK_MODEL] and bool(params["ok"].iloc[0])
    assert {"lambda", "mu", "sigma", "c_inf", "r2", "rmsle", "flags", "ok"} <= set(params.columns)
    assert rank["ok"].all() and OK_MODEL in set(rank["model"])
    assert not at.warning
    # controls: horizon, first-k months, log scale, rank by fitness, include flagged
    at.slider(key="fc_horizon").set_value(24)
    at.select_slider(key="fc_points").set_value(6)
    at.checkbox(key="fc_log").check()
    at.radio(key="fc_rank_by").set_value("fitness λ")
    at.checkbox(key="fc_rank_all").check()
    at.run()
    assert not at.exception
    assert int(at.dataframe[0].value["months_used"].iloc[0]) == 6
    rank = at.dataframe[1].value
    assert not rank["ok"].all()  # flagged models now ranked at their last value
    assert list(rank["rank_fitness"].dropna()) == sorted(rank["rank_fitness"].dropna())
    assert at.get("plotly_chart")[0].proto.spec  # the figure travelled


def test_page_unknown_no_derivatives_and_flagged(monkeypatch, mini_graph_copy):
    at = _page(monkeypatch, mini_graph_copy, f"nobody/nothing,{NO_DERIVATIVES},{FLAGGED_MODEL}")
    assert not at.exception
    warnings, infos = _texts(at, "warning"), _texts(at, "info")
    assert any("Unknown model" in w and "nobody/nothing" in w for w in warnings)
    assert any(NO_DERIVATIVES in i and "no dated derivatives" in i for i in infos)
    assert any(f"No WSB forecast for **{FLAGGED_MODEL}**" in w for w in warnings)
    assert len(at.get("plotly_chart")) == 1  # the flagged model's observed data and fallback
    assert list(at.dataframe[0].value["model"]) == [FLAGGED_MODEL]


def test_page_author_picker(monkeypatch, mini_graph_copy):
    at = _page(monkeypatch, mini_graph_copy)
    at.radio(key="fc_mode").set_value("Author / org").run()
    assert not at.exception
    at.selectbox(key="fc_author").set_value("mistralai").run()
    chosen = at.multiselect(key="fc_author_models:mistralai").value
    assert OK_MODEL in chosen
    assert set(at.dataframe[0].value["model"]) == set(chosen)


def test_page_empty_graph(monkeypatch, tmp_path):
    at = _page(monkeypatch, tmp_path / "nothing-here")
    assert not at.exception
    assert not at.get("plotly_chart") and not at.dataframe
    assert any("empty" in t.lower() or "no graph" in t.lower() for t in _texts(at, "info") + _texts(at, "warning"))
