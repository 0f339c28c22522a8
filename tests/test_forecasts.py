"""analytics.forecasts: the batch builder of the forecasts table and the page-time lookups."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics import forecasts as F
from analytics.growth import derivative_series
from analytics.growth.pooled import PooledRateForecaster
from tests.conftest import shared_data_or_skip

OK_MODEL = "mistralai/Mistral-7B-v0.1"            # WSB fit passes every check on the mini graph
FLAGGED_MODEL = "distilbert/distilbert-base-uncased"  # WSB fit flagged on the mini graph


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
def table(mini_edges):
    return F.build_forecasts(mini_edges, as_of="auto")


def test_one_row_per_base_model_with_documented_columns(table, mini_edges):
    m = table.models
    assert len(m) == m["model"].nunique() > 20
    assert set(m["model"]) <= set(mini_edges["parent"])
    doc = F.__doc__
    for c in m.columns:
        name = c.replace("3m", "{h}m").replace("6m", "{h}m").replace("12m", "{h}m")
        assert name.split("_low")[0].split("_high")[0] in doc or c in doc, f"{c} undocumented"
    props = table.graph_properties()
    assert set(F.GRAPH_PROPERTIES) <= set(props.columns) and props["id"].is_unique
    assert all(c == c.lower() and " " not in c for c in props.columns)


def test_forecasts_are_integer_bands_above_the_last_count(table):
    m = table.models
    for h in F.HORIZONS:
        f, lo, hi = (m[f"forecast_{h}m{s}"].astype(float) for s in ("", "_low", "_high"))
        assert (m["derivatives"] <= lo).all() and (lo <= f).all() and (f <= hi).all()
        assert (f == np.round(f)).all()
        assert (m[f"forecast_growth_{h}m"] == f - m["derivatives"]).all()
    assert (m["forecast_12m"].astype(float) >= m["forecast_3m"].astype(float)).all()
    # the path of the chart ends at the 12-month forecast
    p = table.paths[table.paths["months_ahead"] == 12].set_index("model")["forecast"]
    np.testing.assert_array_equal(p.reindex(m["model"]).to_numpy(), m["forecast_12m"].astype(float))


def test_wsb_parameters_kept_and_failures_explained_with_values(table):
    r = table.models.set_index("model")
    ok, bad = r.loc[OK_MODEL], r.loc[FLAGGED_MODEL]
    assert ok["growth_fit_ok"] and ok["growth_fit_failed"] == ""
    np.testing.assert_allclose(ok["growth_c_inf"], 100 * np.expm1(ok["growth_lambda"]), rtol=1e-9)
    assert not bad["growth_fit_ok"] and bad["growth_fit_flags"]
    # the failed check names its measured value, never a check that passed
    assert any(ch.isdigit() for ch in bad["growth_fit_failed"])
    if bad["growth_r2"] >= 0.9:
        assert "R²" not in bad["growth_fit_failed"]


def test_same_numbers_as_the_forecaster_on_the_same_series(table, mini_edges):
    series = derivative_series(mini_edges, as_of="auto")
    est = PooledRateForecaster().fit(series)
    p, lo, hi = est.predict_interval(6)
    m = table.models
    np.testing.assert_array_equal(m["forecast_6m"].astype(float), p)
    np.testing.assert_array_equal(m["forecast_6m_high"].astype(float), hi)


def test_save_and_load_round_trip(table, tmp_path):
    folder = table.save(tmp_path / "forecasts")
    back = F.ForecastTable.load(folder)
    pd.testing.assert_frame_equal(back.models, table.models)
    pd.testing.assert_frame_equal(back.paths, table.paths)
    assert back.meta["as_of"] == table.meta["as_of"] and back.row == table.row
    (folder / "meta.json").write_text('{"format_version": 0}')
    with pytest.raises(ValueError, match="format"):
        F.ForecastTable.load(folder)
    with pytest.raises(FileNotFoundError):
        F.ForecastTable.load(tmp_path / "nothing")


def test_ranking_by_predicted_growth_not_size(table):
    r = F.ranking(table, horizon=12)
    g = r["forecast_growth_12m"].astype(float)
    assert (np.diff(g) <= 0).all() and list(r["rank"]) == list(range(1, len(r) + 1))
    assert not (np.diff(r["derivatives"].astype(float)) <= 0).all()  # not a size ranking
    assert len(F.ranking(table, horizon=3, top=5)) == 5


def test_sentence_numbers_range_method(table):
    r = table.models.set_index("model").loc[FLAGGED_MODEL]
    text = F.describe(table, FLAGGED_MODEL)
    new = int(r["forecast_12m"]) - int(r["derivatives"])
    assert f"{new:,} new derivative" in text or "no new derivative" in text
    assert "80% range" in text and "pooled rate" in text and "12 months" in text
    assert F.fmt_int(12345.0) == "12,345" and F.fmt_int(None) == "–"


def test_lookups(table):
    assert F.lookup(table, [OK_MODEL, "x/y"]) == ([OK_MODEL], ["x/y"])
    au = F.authors(table)
    assert {"author", "base_models", "derivatives", "forecast_growth"} <= set(au.columns)
    assert OK_MODEL in F.models_of(table, "mistralai")
    p = F.parameters(table, [FLAGGED_MODEL, OK_MODEL])
    assert list(p["model"]) == [FLAGGED_MODEL, OK_MODEL]
    s, paths = F.chart_data(table, [OK_MODEL])
    assert set(s["model"]) == {OK_MODEL} and len(paths) == 12
    assert s["date"].is_monotonic_increasing and paths["date"].min() > s["date"].max()


def test_poison_edges_are_survived(mini_edges):
    bad = pd.DataFrame({
        "parent": ["ghost/a", "ghost/a", "ghost/b", OK_MODEL, "ghost/c"],
        "parent_created": [pd.NaT, pd.NaT, pd.Timestamp("2030-01-01"), pd.NaT, pd.NaT],
        "child": ["c1", "c1", "c2", OK_MODEL, "c3"],
        "child_created": [pd.Timestamp("2024-01-02"), pd.Timestamp("2024-01-02"), pd.NaT,
                          pd.Timestamp("2024-02-01"), pd.Timestamp("1999-01-01")],
        "relation": ["finetune", "finetune", None, "merge", "adapter"]})
    t = F.build_forecasts(pd.concat([mini_edges, bad], ignore_index=True), as_of="auto")
    clean = F.build_forecasts(mini_edges, as_of="auto")
    assert len(t) >= len(clean) - 1 and "ghost/b" not in t.row
    assert F.build_forecasts(mini_edges.iloc[:0], as_of="auto").models.empty


def test_full_snapshot_series_end_at_the_listing_coverage():
    shared_data_or_skip("hub-2024-07")
    from analytics.growth import coverage_end

    dates = pd.Series(pd.date_range("2024-01-01", "2024-07-11 16:00", freq="1h", tz="UTC"))
    late = pd.Series(pd.date_range("2025-01-01", "2025-04-01", freq="7D", tz="UTC"))
    assert coverage_end(pd.concat([dates, late])).date() == pd.Timestamp("2024-07-11").date()


def test_counts_reconcile_with_the_lineage_page(table, mini_graph_root):
    """Every forecast row carries the Lineage page's count (every direct derivative) and the
    parts that the modelled series leaves out; they add up, model by model."""
    from graph import queries as q
    from graph.store import open_store

    store = open_store(read_only=True, root=mini_graph_root)
    try:
        lineage = {m: sum(q.descendant_counts(store, m).values()) for m in table.models["model"]}
    finally:
        store.close()
    m = table.models.set_index("model")
    assert (m["derivatives_total"] == pd.Series(lineage)).all()
    parts = (m["derivatives"] + m["derivatives_undated"] + m["derivatives_after_as_of"]
             + m["derivatives_partial_month"])
    assert (parts == m["derivatives_total"]).all() and (m["derivatives_partial_month"] >= 0).all()
    differ = m[m["derivatives_total"] != m["derivatives"]]
    assert len(differ) > 0  # the mini graph has derivatives created after the as-of date
    mid = differ.index[0]
    c = F.derivative_counts(table, mid)
    assert (c.total, c.modelled) == (lineage[mid], int(m.at[mid, "derivatives"]))
    text = c.sentence()
    assert f"{c.total:,} direct derivatives in the graph (the Lineage page's count)" in text
    assert f"continues the {c.modelled:,} created up to" in text
    same = m[m["derivatives_total"] == m["derivatives"]].index[0]
    assert F.derivative_counts(table, same).sentence().startswith("All ")
    assert F.derivative_counts(table, "nobody/nothing") is None
    assert "derivatives_total" in F.ranking(table).columns
