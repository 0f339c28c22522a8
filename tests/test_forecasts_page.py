"""The Forecasts page (app_pages/forecasts.py) through AppTest on the mini graph: it reads the stored
forecasts table, says in words what each forecast is, and fits nothing when a table is stored."""
from __future__ import annotations

from pathlib import Path

import pytest

from analytics import forecasts as F
from app_pages.common import md_text
from tests.page_elements import charts

OK_MODEL = "mistralai/Mistral-7B-v0.1"
FLAGGED_MODEL = "distilbert/distilbert-base-uncased"
NO_DERIVATIVES = "KappaNeuro/mike-mignola-style"  # in the mini graph, no derivative
PAGE = str(Path(__file__).resolve().parents[1] / "app_pages" / "forecasts.py")


def _page(monkeypatch, root, models: str | None = None):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("HUBATLAS_DB", str(root))
    at = AppTest.from_file(PAGE, default_timeout=120)
    if models is not None:
        at.query_params["model"] = models
    return at.run()


def _texts(at, kind):
    return [str(e.value) for e in getattr(at, kind)]


def _store_table(root: Path) -> F.ForecastTable:
    """The table the scheduled job stored for the graph's current generation."""
    from analytics.pipeline import FORECASTS
    from analytics.results import Results
    from graph.generations import Generations
    from graph.store import Generation

    name = Generations(root).current_name()
    results = Results(Generation("embedded", name, root / name))
    assert results.ready(FORECASTS)
    return F.ForecastTable.load(results.folder(FORECASTS))


def _drop_stored_table(root: Path) -> None:
    import shutil

    from graph.generations import Generations

    name = Generations(root).current_name()
    shutil.rmtree(root / name / "results")


def _trace_names(at) -> list[str]:
    spec = charts(at)[0]
    return [t.get("name", "") for t in spec["data"]]


def test_page_reads_the_stored_table_and_fits_nothing(monkeypatch, mini_graph_copy):
    table = _store_table(mini_graph_copy)

    def no_fitting(*a, **k):
        raise AssertionError("the page fitted although a stored table exists")

    monkeypatch.setattr(F, "build_forecasts", no_fitting)
    monkeypatch.setattr(F, "forecast_series", no_fitting)
    at = _page(monkeypatch, mini_graph_copy, OK_MODEL)
    assert not at.exception
    assert not any("Computed on this request" in c for c in _texts(at, "caption"))
    sentences = [m for m in _texts(at, "markdown") if m.startswith(md_text(OK_MODEL))]
    assert sentences == [F.describe(table, OK_MODEL, name=md_text(OK_MODEL))]
    params, rank = at.dataframe[0].value, at.dataframe[1].value
    assert list(params["model"]) == [OK_MODEL]
    r = table.models.set_index("model").loc[OK_MODEL]
    assert int(params["forecast_12m"].iloc[0]) == int(r["forecast_12m"])
    # ranked by predicted growth, 12 months by default
    g = rank["forecast_growth_12m"].astype(float).tolist()
    assert g == sorted(g, reverse=True)
    at.radio(key="fc_rank_by").set_value("3 months").run()
    g3 = at.dataframe[1].value["forecast_growth_3m"].astype(float).tolist()
    assert g3 == sorted(g3, reverse=True)


def test_page_without_a_stored_table_says_so_and_fits_nothing(monkeypatch, mini_graph_copy):
    _drop_stored_table(mini_graph_copy)

    def no_fitting(*a, **k):
        raise AssertionError("the page fitted on a request")

    monkeypatch.setattr(F, "build_forecasts", no_fitting)
    at = _page(monkeypatch, mini_graph_copy, OK_MODEL)
    assert not at.exception
    assert any("not computed yet" in i for i in _texts(at, "info"))
    assert not charts(at)


def test_page_chart_controls(monkeypatch, mini_graph_copy):
    at = _page(monkeypatch, mini_graph_copy, OK_MODEL)
    assert not at.exception
    assert len(charts(at)) == 1
    at.slider(key="fc_horizon").set_value(6)
    at.checkbox(key="fc_log").check()
    at.run()
    assert not at.exception


def test_page_explains_flagged_unknown_and_no_derivatives(monkeypatch, mini_graph_copy):
    table = _store_table(mini_graph_copy)
    at = _page(monkeypatch, mini_graph_copy, f"nobody/nothing,{NO_DERIVATIVES},{FLAGGED_MODEL}")
    assert not at.exception
    warnings, infos, captions = _texts(at, "warning"), _texts(at, "info"), _texts(at, "caption")
    assert any("Unknown model" in w and "nobody/nothing" in w for w in warnings)
    assert any(NO_DERIVATIVES in i and "no dated derivatives" in i for i in infos)
    failed = table.models.set_index("model").at[FLAGGED_MODEL, "growth_fit_failed"]
    assert any(FLAGGED_MODEL in c and failed in c for c in captions)
    params = at.dataframe[0].value
    assert list(params["model"]) == [FLAGGED_MODEL] and params["growth_lambda"].isna().all()


def test_no_flat_line_is_drawn_as_a_forecast(monkeypatch, mini_graph_copy):
    table = _store_table(mini_graph_copy)
    m = table.models
    flat = m[(m["forecast_12m_high"] == m["derivatives"])]["model"].tolist()
    rising = m[m["forecast_growth_12m"] > 0]["model"].tolist()
    if not flat or not rising:
        pytest.skip("the mini graph has no flat or no rising forecast to compare")
    at = _page(monkeypatch, mini_graph_copy, f"{flat[0]},{rising[0]}")
    assert not at.exception
    names = _trace_names(at)
    assert f"{rising[0]}: forecast (median)" in names
    assert not any(n.startswith(f"{flat[0]}: forecast") or n.startswith(f"{flat[0]}: 80%")
                   for n in names)
    assert any(t.startswith(md_text(flat[0])) and "most likely no new derivative" in t
               for t in _texts(at, "markdown"))


def test_page_author_picker(monkeypatch, mini_graph_copy):
    _store_table(mini_graph_copy)
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
    assert not charts(at) and not at.dataframe
    assert any("no graph" in t.lower() for t in _texts(at, "info") + _texts(at, "warning"))


def test_forecasts_and_lineage_pages_reconcile_the_derivative_count(monkeypatch,
                                                                    mini_graph_copy):
    """The Forecasts page gives the Lineage page's count beside the one it models, and the
    Lineage page the forecast's, each with the difference in words."""
    from streamlit.testing.v1 import AppTest

    table = _store_table(mini_graph_copy)
    m = table.models
    mid = m.loc[m["derivatives_total"] != m["derivatives"], "model"].iloc[0]
    counts = F.derivative_counts(table, mid)
    at = _page(monkeypatch, mini_graph_copy, mid)
    assert not at.exception
    assert f"{md_text(mid)}: {counts.sentence()}" in _texts(at, "caption")
    params = at.dataframe[0].value
    assert int(params["derivatives_total"].iloc[0]) == counts.total
    assert int(params["derivatives"].iloc[0]) == counts.modelled < counts.total
    lineage = AppTest.from_file(str(Path(PAGE).with_name("lineage.py")), default_timeout=120)
    lineage.query_params["model"] = mid
    lineage.run()
    assert not lineage.exception
    tree = next(t for t in _texts(lineage, "markdown") if t.startswith("**Model tree**"))
    assert sum(int(n.replace(",", "")) for n in tree.split("**")[3::2]) == counts.total
    assert any(c.endswith(counts.sentence()) and "Forecasts" in c
               for c in _texts(lineage, "caption"))
