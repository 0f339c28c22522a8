"""Every page of the app through Streamlit's AppTest, against a copy of the mini graph."""
from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from app_pages.common import md_text
from graph import queries as q
from tests.page_elements import charts, graphs

APP = str(Path(__file__).resolve().parent.parent / "app.py")
REPO = Path(APP).parent
PHI2 = "microsoft/phi-2"
SDXL = "stabilityai/stable-diffusion-xl-base-1.0"


@pytest.fixture
def graph_env(mini_graph_copy, monkeypatch):
    monkeypatch.setenv("HUBATLAS_DB", str(mini_graph_copy))
    monkeypatch.delenv("HUBATLAS_SNAPSHOT", raising=False)
    st.cache_data.clear()
    st.cache_resource.clear()
    yield mini_graph_copy
    st.cache_data.clear()
    st.cache_resource.clear()  # releases (closes) the cached store


def _app(page: str | None = None, **params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    if page:
        at.switch_page(page)
    for k, v in params.items():
        at.query_params[k] = v
    return at.run()


def _open_tab(at: AppTest, label: str) -> AppTest:
    """Open one of the page's lazy tabs (only the open tab's content runs)."""
    at.session_state["lineage_tab"] = label
    return at.run()


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _frame(at: AppTest, *columns: str, without: tuple[str, ...] = ()):
    """The first dataframe shown with all of `columns` and none of `without` (st.dataframe
    without selection has no key to find it by)."""
    for d in at.dataframe:
        cols = set(d.value.columns)
        if set(columns) <= cols and not cols & set(without):
            return d.value
    raise KeyError(columns)


DESC = ("parent", "likes", "pipelineTag")
NO_DRIFT = ("drift",)


def _texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


# -- overview --------------------------------------------------------------------------
def test_overview(graph_env):
    at = _app()
    _ok(at)
    assert at.title[0].value.startswith("Hub Atlas")
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["Models"].replace(",", "")) > 400
    # uploads, top base models, licence mix (publishers by account type is a table)
    assert len(charts(at)) == 3
    # node counts, relation counts, account groups, ingest runs: static tables (no data grid)
    assert len(at.table) == 4
    assert len(at.dataframe) == 0
    groups = at.table[2].value  # no account type asked of a snapshot: all unknown
    assert groups["group"].tolist() == ["unknown: not asked yet"]
    assert metrics["Accounts"] == f"{groups['accounts'].iat[0]:,}"
    runs = at.table[3].value
    assert len(runs) == 1 and runs.iloc[0]["status"] == "ok"
    # the uploads chart can be split by library instead of task
    at.segmented_control(key="uploads_by").set_value("library").run()
    _ok(at)
    assert len(charts(at)) == 3


# -- lineage ---------------------------------------------------------------------------
def test_lineage_deep_link(graph_env):
    at = _app("app_pages/lineage.py", model=PHI2)
    _ok(at)
    assert at.text_input(key="lineage_model_text").value == PHI2
    assert at.subheader[0].value == md_text(PHI2)  # the id as text, not Markdown
    assert "Finetunes **41**" in _texts(at.markdown)
    assert len(graphs(at)) == 1  # the neo4j-viz lineage graph
    # the other tabs are lazy: their tables and the timeline chart are not built yet
    assert not charts(at) and not at.dataframe
    assert at.slider(key="depth").value == 2
    assert "53 descendants within 2" in _texts(at.caption)
    _open_tab(at, "Timeline")
    _ok(at)
    assert len(charts(at)) == 1 and not graphs(at)
    _open_tab(at, "Descendants")
    desc = _frame(at, *DESC, without=NO_DRIFT)
    assert len(desc) == 53
    assert desc["downloads"].fillna(-1).is_monotonic_decreasing  # default sort
    assert at.query_params["model"] in (PHI2, [PHI2])
    at.slider(key="depth").set_value(5).run()
    assert len(_frame(at, *DESC, without=NO_DRIFT)) == 56


def test_lineage_depth_sort_and_filter(graph_env):
    at = _open_tab(_app("app_pages/lineage.py", model=PHI2), "Descendants")
    at.slider(key="depth").set_value(1).run()
    _ok(at)
    assert len(_frame(at, *DESC, without=NO_DRIFT)) == 41
    at.selectbox(key="desc_sort").set_value("created (oldest)").run()
    created = _frame(at, *DESC, without=NO_DRIFT)["createdAt"].dropna()
    assert created.is_monotonic_increasing
    at.selectbox(key="desc_sort").set_value("likes").run()
    likes = _frame(at, *DESC, without=NO_DRIFT)["likes"].dropna()
    assert likes.is_monotonic_decreasing


def test_lineage_ancestors_and_roots(graph_env):
    at = _open_tab(_app("app_pages/lineage.py", model="BramVanroy/fietje-2-chat"), "Ancestors")
    _ok(at)
    anc = _frame(at, "is_root")
    assert list(anc["depth"]) == [1, 2, 3]
    assert anc.loc[anc["is_root"], "id"].tolist() == [PHI2]
    assert "Root(s): `microsoft/phi-2`" in _texts(at.caption)


def test_lineage_large_family_is_capped(graph_env):
    at = _open_tab(_app("app_pages/lineage.py", model=SDXL), "Licence drift")
    _ok(at)
    assert "licence" in _texts(at.warning)  # SDXL has licence drift in the mini graph
    assert len(_frame(at, "drift")) > 0


def test_lineage_type_ahead(graph_env):
    at = _app("app_pages/lineage.py")
    _ok(at)
    assert "Type part of a model id" in _texts(at.info)
    at.text_input(key="lineage_model_text").input("phi-").run()
    _ok(at)
    box = at.selectbox(key="lineage_model_choice")
    assert PHI2 in box.options and box.options[0] == PHI2  # most downloaded prefix match first
    box.set_value(PHI2).run()
    _ok(at)
    assert at.text_input(key="lineage_model_text").value == PHI2
    assert at.subheader[0].value == md_text(PHI2)  # the id as text, not Markdown


@pytest.mark.parametrize("typed", ["phi-2", "MICROSOFT/PHI-2"])
def test_lineage_picker_resolves_a_legacy_name_or_case(graph_env, typed):
    at = _app("app_pages/lineage.py")
    at.text_input(key="lineage_model_text").input(typed).run()
    _ok(at)
    assert at.subheader[0].value == md_text(PHI2)  # microsoft/phi-2 dominates its copies


def test_lineage_stub_says_what_it_is(graph_env):
    from graph.store import open_store

    store = open_store(read_only=True, root=graph_env)
    stub = store.rows(f"MATCH (c:Model)-[:{q.LINEAGE_TYPES}]->(m:Model) WHERE m.stub = true "
                      "RETURN m.id AS id ORDER BY id LIMIT 1")[0]["id"]
    store.close()
    at = _app("app_pages/lineage.py", model=stub)
    _ok(at)
    text = _texts(at.warning)
    assert "is named as a base by" in text and "not found on the Hub as of" in text
    assert "open on the Hub" not in _texts(at.caption)


def test_lineage_unknown_id(graph_env):
    at = _app("app_pages/lineage.py", model="no-such-org/no-such-model")
    _ok(at)
    assert "No model id contains" in _texts(at.warning)
    assert not graphs(at)


def test_lineage_model_without_lineage(graph_env):
    at = _app("app_pages/lineage.py", model="selfish/model")
    _ok(at)
    assert "has no lineage" in _texts(at.info)


# -- console ---------------------------------------------------------------------------
def test_console_runs_a_read_query(graph_env):
    at = _app("app_pages/console.py")
    _ok(at)
    at.text_area(key="console_query").input(
        "MATCH (m:Model) RETURN m.id AS id, m.likes AS likes ORDER BY likes DESC LIMIT 7").run()
    at.button(key="console_run").click().run()
    _ok(at)
    assert len(at.dataframe[-1].value) == 7
    assert "7 rows" in _texts(at.success)
    assert len(at.get("download_button")) == 1


def test_console_example_picker(graph_env):
    at = _app("app_pages/console.py")
    at.selectbox(key="console_example").set_value("Models per library").run()
    assert "USES_LIBRARY" in at.text_area(key="console_query").value
    at.button(key="console_run").click().run()
    _ok(at)
    assert len(at.dataframe[-1].value) > 0


@pytest.mark.parametrize("query", [
    "MATCH (m:Model) DETACH DELETE m",
    "MATCH (m:Model) RETURN m; MATCH (m:Model) SET m.likes = 0",
    "CALL show_tables() RETURN *",
    "match (m:Model) /* hidden */ set m.likes = 0",
])
def test_console_refuses_writes_and_graph_is_unchanged(graph_env, query):
    from graph.store import open_store

    at = _app("app_pages/console.py")
    at.text_area(key="console_query").input(query).run()
    at.button(key="console_run").click().run()
    assert not at.exception
    assert "Refused" in _texts(at.error)
    store = open_store(read_only=True, root=graph_env)
    try:
        assert q.count_nodes(store)["Model"] > 400
        assert store.rows("MATCH (m:Model) WHERE m.likes = 0 RETURN count(*) AS n")[0]["n"] < 400
    finally:
        store.close()


def test_console_engine_error(graph_env):
    at = _app("app_pages/console.py")
    at.text_area(key="console_query").input("MATCH (m:NoSuchLabel) RETURN m").run()
    at.button(key="console_run").click().run()
    assert not at.exception
    assert "engine rejected" in _texts(at.error)


# -- error states ----------------------------------------------------------------------
@pytest.mark.parametrize("page", ["app_pages/lineage.py", "app_pages/console.py", "app_pages/overview.py"])
def test_empty_graph_message(tmp_path, monkeypatch, page):
    """A page opened with no graph says how to load one (the app itself seeds first: see
    tests/test_seed.py)."""
    monkeypatch.setenv("HUBATLAS_DB", str(tmp_path / "empty"))
    monkeypatch.delenv("HUBATLAS_SNAPSHOT", raising=False)
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(str(REPO / page), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "No graph loaded yet" in _texts(at.info)


def test_first_run_seeds_from_snapshot(tmp_path, monkeypatch):
    from tests.conftest import MINI_SNAPSHOT, join_first_run_search

    root = tmp_path / "seeded"
    monkeypatch.setenv("HUBATLAS_DB", str(root))
    monkeypatch.setenv("HUBATLAS_SNAPSHOT", str(MINI_SNAPSHOT))
    monkeypatch.setenv("HUBATLAS_SEED_LIMIT", "100")
    st.cache_data.clear()
    st.cache_resource.clear()
    at = _app()
    assert not at.exception, [e.value for e in at.exception]
    assert (root / "CURRENT").exists()
    models = int({m.label: m.value for m in at.metric}["Models"].replace(",", ""))
    assert 0 < models <= 300  # bounded: at most 100 records per kind, plus stub parents
    join_first_run_search()  # the search index it builds in the background
    st.cache_resource.clear()


def test_new_generation_is_picked_up(graph_env):
    """After ingest publishes a new generation, the next run reads it (no restart)."""
    from graph.generations import Generations
    from ingest.run import ingest
    from ingest.sources import SnapshotSource
    from tests.conftest import MINI_SNAPSHOT

    at = _app()
    before = Generations(graph_env).current_name()
    runs_before = len(at.table[-1].value)
    from tests.conftest import job_without_search

    ingest(SnapshotSource(MINI_SNAPSHOT), root=graph_env, limit=5,  # an incremental run
           refresh=job_without_search())
    assert Generations(graph_env).current_name() != before
    at.run()
    _ok(at)
    assert len(at.table[-1].value) == runs_before + 1
