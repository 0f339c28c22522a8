"""The licence audit, publishers, compare and trends pages (and the lineage page's family
export) through Streamlit's AppTest, on copies of the mini graph."""
from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from analytics import pipeline as P
from graph.generations import Generations
from graph.kuzu_store import KuzuStore
from tests.page_elements import charts
from tests.test_trends import _later, add_run

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PHI2, GPT2 = "microsoft/phi-2", "openai-community/gpt2"
POISON = "evil/![x](http://evil.example/x.png)"
VIEW_STEPS = (P.LICENCE_VERDICTS, P.LICENCE_AUDIT, P.PUBLISHERS, P.TRENDS)


def _clear() -> None:
    st.cache_data.clear()
    st.cache_resource.clear()


def refresh_views(store) -> None:
    """The scheduled job's view steps again, after a test changed the graph in place (as the
    job does after an ingest): licence verdicts, audit, publisher index, trends."""
    steps = [s for s in P.STEPS if s.name in VIEW_STEPS]
    done = P.Refresh(steps).before_publish(store, store.generation())
    assert [s.name for s in done if s.ok] == [s.name for s in steps], done


def _serve(graph_root, monkeypatch):
    """The app reads `graph_root` (no first-run snapshot), with empty caches before and after."""
    monkeypatch.setenv("HUBATLAS_DB", str(graph_root))
    monkeypatch.delenv("HUBATLAS_SNAPSHOT", raising=False)
    _clear()
    yield graph_root
    _clear()


@pytest.fixture
def graph_env(mini_graph_copy, monkeypatch):
    """A mini graph copy with a second, synthetic run and a model whose id is Markdown, and
    the job's results refreshed for it."""
    store = KuzuStore(Generations(mini_graph_copy).current_path(), read_only=False)
    try:
        store.write([("CREATE (:Model {id: $id, author: 'evil', license: 'mit', stub: false, "
                      "downloads: 5})", {"id": POISON})])
        add_run(store, "synthetic-2", _later(30), {PHI2: (1_000_000, 3_400),
                                                   GPT2: (5_000_000, 2_100), POISON: (9, 0)})
        refresh_views(store)
    finally:
        store.close()
    yield from _serve(mini_graph_copy, monkeypatch)


def _app(page: str, **params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.switch_page(page)
    for k, v in params.items():
        at.query_params[k] = v
    return at.run()


def _tab(at: AppTest, key: str, label: str) -> AppTest:
    """Open one of a page's lazy tabs (only the open tab's content runs)."""
    at.session_state[key] = label
    return at.run()


#: the lazy tabs of the pages, by their key
TABS = {"licence_tab": ("Families", "Publishers", "Licence pairs", "One model", "Rules"),
        "publisher_tab": ("Models", "Derived by others", "Who derives most", "Family growth",
                          "Licence conflicts")}


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def _frame(at: AppTest, *columns: str):
    for d in at.dataframe:
        if set(columns) <= set(d.value.columns):
            return d.value
    raise KeyError(columns)


# -- licence audit -----------------------------------------------------------------------
def test_licence_audit_page(graph_env):
    at = _app("app_pages/licences.py")
    _ok(at)
    assert at.title[0].value == "Licence audit"
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["In conflict"].replace(",", "")) > 50
    families = _frame(at, "root", "conflict_share")
    assert families["root"].iat[0].endswith("model=unsloth/llama-3-8b-bnb-4bit")  # a link
    assert set(_frame(at, "verdict", "meaning")["verdict"]) == {
        "same", "compatible", "unstated", "unknown", "missing", "conflict"}
    assert len(at.get("download_button")) == 1  # lazy tabs: only the open one ran
    with pytest.raises(KeyError):
        _frame(at, "author", "family_conflicts")
    _tab(at, "licence_tab", "Publishers")
    assert len(_frame(at, "author", "family_conflicts")) > 0
    _tab(at, "licence_tab", "Licence pairs")
    at.segmented_control(key="pairs_verdict").set_value("missing").run()
    _ok(at)
    assert (_frame(at, "parent_licence", "edges")["verdict"] == "missing").all()


def test_licence_audit_one_model(graph_env):
    at = _app("app_pages/licences.py", model="BramVanroy/fietje-2-chat")
    _ok(at)
    assert "mit (microsoft/phi-2)" in _texts(at.text)  # the chain, as plain text
    assert {m.label: m.value for m in at.metric}["Verdict"] == "same"
    edges = _frame(at, "parent", "reason")
    assert edges["parent"].tolist() == ["BramVanroy/fietje-2-instruct"]


def test_licence_audit_model_in_conflict(graph_env):
    at = _app("app_pages/licences.py", model="jata77/lora_model")
    _ok(at)
    assert {m.label: m.value for m in at.metric}["Verdict"] == "conflict"
    assert "llama2" in _frame(at, "parent", "reason")["reason"].iat[0]


# -- publishers --------------------------------------------------------------------------
def test_publishers_index_and_profile(graph_env):
    at = _app("app_pages/publishers.py")
    _ok(at)
    index = _frame(at, "author", "derived_by_others")
    assert index["author"].iat[0].endswith("author=meta-llama")
    at = _app("app_pages/publishers.py", author="meta-llama")
    _ok(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Models"] == "2" and int(metrics["Derived by others"]) > 50
    assert not charts(at)  # lazy tabs: the charts' tabs are not open yet
    assert "meta-llama" in _texts(at.text)
    _tab(at, "publisher_tab", "Derived by others")
    assert len(charts(at)) == 2  # by relation, by month
    _tab(at, "publisher_tab", "Family growth")
    assert len(charts(at)) == 1
    _tab(at, "publisher_tab", "Who derives most")
    assert len(_frame(at, "author", "relations")) > 0
    assert at.query_params["author"] in ("meta-llama", ["meta-llama"])


def test_publishers_type_ahead_and_unknown(graph_env):
    at = _app("app_pages/publishers.py")
    at.text_input(key="author_text").input("llama").run()
    _ok(at)
    box = at.selectbox(key="author_choice")
    assert "meta-llama" in box.options
    box.set_value("meta-llama").run()
    _ok(at)
    assert {m.label for m in at.metric} >= {"Models", "Family size"}
    at = _app("app_pages/publishers.py", author="![x](http://evil.example/x.png)")
    _ok(at)
    assert "No author of that name" in _texts(at.warning)


@pytest.fixture
def typed_env(mini_graph_copy, monkeypatch):
    """A mini graph copy whose account types were asked of the fake Hub for the five most
    downloaded accounts (two organisations, a user, two without a page), then the overview
    and the publisher index refreshed, as the scheduled job does after an ingest."""
    from ingest.accounts import AccountLookup
    from ingest.hub import HubSource
    from tests.fakehub import FakeHub

    store = KuzuStore(Generations(mini_graph_copy).current_path(), read_only=False)
    try:
        with FakeHub(accounts={"meta-llama": "org", "microsoft": "org",
                               "stabilityai": "user"}) as hub:
            report = AccountLookup(HubSource(endpoint=hub.url, token=None), limit=5).run(store)
        assert (report.organization, report.user, report.not_found) == (2, 1, 2), report
        steps = [s for s in P.STEPS if s.name in (*VIEW_STEPS, P.OVERVIEW)]
        P.Refresh(steps).before_publish(store, store.generation())
    finally:
        store.close()
    yield from _serve(mini_graph_copy, monkeypatch)


def test_publishers_show_account_types_from_the_hub(typed_env):
    at = _app("app_pages/publishers.py")
    _ok(at)
    kinds = at.segmented_control(key="account_kind")
    assert kinds.options[:2] == ["organisations (2)", "users (1)"], kinds.options
    kinds.set_value("organisations").run()
    _ok(at)
    shown = _frame(at, "author", "account_type")
    assert set(shown["account_type"]) == {"organization"} and len(shown) == 2
    at = _app("app_pages/publishers.py", author="meta-llama")
    _ok(at)
    assert "**organisation** (as its account page on the Hub says)" in _texts(at.caption)
    at = _app("app_pages/publishers.py", author="BramVanroy")
    _ok(at)
    assert "account type unknown: not asked yet" in _texts(at.caption)


def test_overview_shows_the_unknown_accounts_honestly(typed_env):
    at = _app("app_pages/overview.py")
    _ok(at)
    groups = next(t.value for t in at.table if "share of models" in t.value.columns)  # static
    assert groups["group"].tolist() == ["organisations", "users", "unknown: not asked yet",
                                        "unknown: not on the Hub"]
    assert groups["accounts"].tolist()[:2] == [2, 1] and groups["accounts"].iat[3] == 2
    shares = groups["share of models"].str.rstrip("%").astype(float) / 100  # "12.3%"
    assert groups["accounts"].sum() == 430 and shares.sum() == pytest.approx(1, abs=0.003)
    assert "never guessed" in _texts(at.caption)


# -- trends ------------------------------------------------------------------------------
def test_trends_page(graph_env):
    at = _app("app_pages/trends.py", model=PHI2)
    _ok(at)
    top = _frame(at, "downloads_before", "downloads_change")
    assert top["id"].iat[0].endswith(f"model={PHI2}")  # 885,255 → 1,000,000
    assert len(charts(at)) == 1
    runs = _frame(at, "run", "downloads_change")
    assert runs["run"].tolist()[-1] == "synthetic-2"
    at.segmented_control(key="trend_direction").set_value("falling").run()
    _ok(at)
    assert _frame(at, "downloads_before", "downloads_change")["id"].iat[0].endswith(GPT2)


def test_trends_page_with_one_run(mini_graph_copy, monkeypatch):
    monkeypatch.setenv("HUBATLAS_DB", str(mini_graph_copy))
    _clear()
    try:
        at = _app("app_pages/trends.py")
        _ok(at)
        assert "need two ingest runs" in _texts(at.info)
    finally:
        _clear()


def test_ids_render_as_text_not_markdown(graph_env):
    """A model id that is Markdown is shown as those characters; only fixed labels link."""
    at = _app("app_pages/trends.py", model=POISON)
    _ok(at)
    assert POISON in [t.value for t in at.text]
    links = [m.value for m in at.markdown if "[Hub]" in m.value]
    assert links and all("![x]" not in v and "(http://evil" not in v for v in links)
    assert "evil/%21%5Bx%5D%28http%3A//evil.example/x.png%29" in links[0]


# -- compare -----------------------------------------------------------------------------
def test_compare_page(graph_env):
    at = _app("app_pages/compare.py", models=f"{PHI2},{GPT2}")
    _ok(at)
    ov = _frame(at, "descendants", "generations")
    assert ov["id"].tolist() == [PHI2, GPT2]
    drawn = charts(at)
    assert len(drawn) == 3  # family (by relation | by generation), growth, licence mix
    family = drawn[0]["data"]
    assert {t["type"] for t in family} == {"bar", "scatter"}
    assert {t["name"] for t in family if t["type"] == "scatter"} == {PHI2, GPT2}
    assert at.multiselect(key="compare_models").value == [PHI2, GPT2]
    at.selectbox(key="compare_top_of").set_value(GPT2).run()
    _ok(at)
    assert (_frame(at, "model", "depth", "license")["model"] == GPT2).all()


def test_compare_needs_two(graph_env):
    at = _app("app_pages/compare.py", models=f"{PHI2},no-such/model")
    _ok(at)
    assert "Not in the graph: no-such/model" in _texts(at.warning)
    assert "Pick two to five" in _texts(at.info)


# -- lineage page: the family export beside the CSV ---------------------------------------
def test_lineage_offers_the_family_as_graphml_and_json(graph_env):
    at = _app("app_pages/lineage.py", model=PHI2)
    at.session_state["lineage_tab"] = "Descendants"  # a lazy tab: it runs once opened
    at.run()
    _ok(at)
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Download family (GraphML)" in labels and "Download family (JSON)" in labels


# -- pages only read what the scheduled job stored ----------------------------------------
def _refuse(*_a, **_k):
    raise AssertionError("a page built a whole-graph result on a request")


def test_pages_read_stored_results_and_never_build(graph_env, monkeypatch):
    """With every batch builder and whole-graph query broken, the pages still show everything:
    they read the stored results, plus per-id look-ups."""
    from analytics import licences, publishers, trends
    from graph import queries, views_queries

    for module, name in ((licences, "build_licence_audit"), (licences, "audit_edges"),
                         (publishers, "build_publisher_index"), (trends, "build_trending"),
                         (trends, "build_trends"), (trends, "trend_table"),
                         (views_queries, "lineage_edges_with_models"),
                         (views_queries, "author_totals"), (views_queries, "repeated_observations"),
                         (views_queries, "observation_runs"), (queries, "top_base_models"),
                         (queries, "derivative_edges")):
        monkeypatch.setattr(module, name, _refuse)
    from analytics import forecasts

    monkeypatch.setattr(forecasts, "build_forecasts", _refuse)
    for page, params in (("app_pages/licences.py", {}),
                         ("app_pages/licences.py", {"model": "jata77/lora_model"}),
                         ("app_pages/publishers.py", {}),
                         ("app_pages/publishers.py", {"author": "meta-llama"}),
                         ("app_pages/trends.py", {"model": PHI2}),
                         ("app_pages/compare.py", {"models": f"{PHI2},{GPT2}"})):
        at = _app(page, **params)
        key = next((k for k in TABS if k in at.session_state), None)
        for label in TABS[key] if key else ("",):  # every tab of a page with lazy tabs
            if key:
                _tab(at, key, label)
            _ok(at)
            assert not at.info or "not computed yet" not in _texts(at.info), (page, params, label)
    # the compare chart's curves are the stored forecasts (observed, WSB curve, forecast)
    at = _app("app_pages/compare.py", models=f"{PHI2},{GPT2}")
    names = {trace.get("name") for c in charts(at) for trace in c["data"]}
    assert {f"{PHI2}: observed", f"{GPT2}: observed", f"{GPT2}: forecast"} <= names


def test_pages_say_when_the_job_has_not_built_a_result(mini_graph_copy, monkeypatch):
    """A result the job has not stored (or failed to) is announced, not built on request."""
    from analytics.results import Results, ResultStatus
    from graph.store import current_generation

    monkeypatch.setenv("HUBATLAS_DB", str(mini_graph_copy))
    results = Results(current_generation())
    for name in VIEW_STEPS:
        results.record(ResultStatus(name, False, "2026-01-01T00:00:00+00:00", 0.0, "broken"))
    monkeypatch.setattr("analytics.licences.build_licence_audit", _refuse)
    _clear()
    try:
        for page, what in (("app_pages/licences.py", "The licence audit"),
                           ("app_pages/publishers.py", "The publisher index"),
                           ("app_pages/trends.py", "The trends")):
            at = _app(page)
            _ok(at)
            assert f"{what}** is not computed yet" in _texts(at.info), page
    finally:
        _clear()
