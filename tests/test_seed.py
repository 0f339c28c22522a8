"""ingest/seed.py: a newcomer's first run never opens on an empty shell."""
from __future__ import annotations

import socket

import pytest
from streamlit.testing.v1 import AppTest

from analytics.pipeline import ABOUT
from analytics.results import Results
from graph import queries as q
from graph.store import current_generation, open_store
from ingest import seed
from tests.conftest import MINI_SNAPSHOT, REPO, job_without_search, join_first_run_search


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    monkeypatch.setenv("HUBATLAS_DB", str(tmp_path / "graph"))
    monkeypatch.delenv("HUBATLAS_SNAPSHOT", raising=False)
    return tmp_path / "graph"


def _closed_port() -> str:
    with socket.socket() as s:  # bound, then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _sources() -> list[str]:
    store = open_store(read_only=True)
    try:
        return q.ingest_runs(store)["source"].tolist()
    finally:
        store.close()


def test_unreachable_hub_loads_the_shipped_sample(fresh, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", _closed_port())
    done = seed.seed_first_run(refresh=job_without_search())
    assert done.origin == "sample" and "did not answer" in done.note
    assert _sources() == [seed.SAMPLE_SOURCE_PREFIX + "sample"]
    assert done.report.loaded["model"] > 4000
    results = Results(current_generation())
    about = results.load_json(ABOUT)
    assert about["sample"] is True
    # every derived result of the job is built on the sample (the forecasts' bands, calibrated
    # on a handful of outcomes there, once overflowed the integer columns and failed both)
    failed = {name: st.error for name, st in results.status().items() if not st.ok}
    assert failed == {}
    assert {"growth_properties", "forecasts"} <= set(results.status())
    # a second call changes nothing: the graph exists now
    assert seed.seed_first_run() is None


def test_a_hub_that_accepts_but_never_answers_is_given_up_on(monkeypatch):
    """The probe honours its timeout on a connection that opens and then stays silent (the
    hang a newcomer behind a broken proxy sees), instead of waiting on the socket forever."""
    import threading

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nobody ever reads or answers
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        answer: list = []
        probe = threading.Thread(target=lambda: answer.append(
            seed.hub_reachable(timeout=0.5, endpoint=endpoint)), daemon=True)
        probe.start()
        probe.join(60)  # a bound for a hang, not a speed target: the probe gives up at 0.5 s
        assert not probe.is_alive(), "the Hub probe ignored its timeout"
    assert answer and answer[0] and "did not answer" in answer[0]


def test_reachable_hub_is_used_with_the_seed_limit(fresh, monkeypatch, fake_hub):
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    monkeypatch.setenv("HUBATLAS_SEED_LIMIT", "7")
    done = seed.seed_first_run(refresh=job_without_search())
    assert done.origin == "hub"
    assert done.report.loaded["model"] == 7
    assert _sources()[0].startswith("hub:")
    assert Results(current_generation()).load_json(ABOUT)["sample"] is False


def test_snapshot_setting_wins(fresh, monkeypatch):
    monkeypatch.setenv("HUBATLAS_SNAPSHOT", str(MINI_SNAPSHOT))
    monkeypatch.setenv("HUBATLAS_SEED_LIMIT", "25")
    monkeypatch.setenv("HF_ENDPOINT", _closed_port())
    done = seed.seed_first_run(refresh=job_without_search())
    assert done.origin == "snapshot" and done.report.loaded["model"] <= 25


def test_app_first_run_loads_and_labels_the_sample(fresh, monkeypatch):
    """The app itself, opened on an empty folder with the Hub unreachable: it loads the
    shipped sample (search index in the background) and labels every page."""
    import streamlit as st

    monkeypatch.setenv("HF_ENDPOINT", _closed_port())
    st.cache_resource.clear()
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Sample data" in i.value for i in at.sidebar.info)
    assert current_generation() is not None
    assert {m.label: m.value for m in at.metric}["Models"].replace(",", "") == str(
        Results(current_generation()).load_object("overview").nodes["Model"])
    # the search index follows in the background, into the same generation
    assert join_first_run_search() == 1
    assert Results(current_generation()).ready("search")
    st.cache_resource.clear()
