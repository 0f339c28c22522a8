"""app_pages.common's warm-up of stored results (and app_pages.loaders), on a copy of the
mini graph: what the app server loads before the first request, and again after an ingest."""
from __future__ import annotations

import gc
import threading
import time

import pytest
import streamlit as st

from analytics.pipeline import FORECASTS, OVERVIEW, SEARCH
from app_pages import common, loaders


@pytest.fixture
def graph_env(mini_graph_copy, monkeypatch):
    monkeypatch.setenv("HUBATLAS_DB", str(mini_graph_copy))
    st.cache_data.clear()
    st.cache_resource.clear()
    yield mini_graph_copy
    st.cache_data.clear()
    st.cache_resource.clear()
    gc.unfreeze()


@pytest.fixture
def counted(monkeypatch):
    """Every loader, still the real one, counting its calls."""
    calls: dict[str, int] = {}

    def counting(name, loader):
        def load(results):
            calls[name] = calls.get(name, 0) + 1
            return loader(results)
        return load

    for name, loader in list(loaders.LOADERS.items()):
        monkeypatch.setitem(loaders.LOADERS, name, counting(name, loader))
    return calls


def test_warm_up_loads_every_stored_result_once(graph_env, counted):
    gen = common.warm_up()
    assert gen == common.generation()
    built = {n for n in loaders.LOADERS if n != SEARCH}  # the mini graph's job skips search
    assert set(counted) == built and all(v == 1 for v in counted.values())
    # what the pages ask for next comes from the cache: no loader runs again
    assert common.stored(OVERVIEW).generation == gen.name
    assert common.require_stored(FORECASTS, "The forecasts") is common.stored(FORECASTS).value
    assert common.stored(SEARCH) is None
    assert all(v == 1 for v in counted.values())


def test_a_result_that_fails_to_load_does_not_stop_the_rest(graph_env, counted, monkeypatch,
                                                            caplog):
    def broken(results):
        raise OSError("truncated file")

    monkeypatch.setitem(loaders.LOADERS, FORECASTS, broken)
    assert common.warm_up() is not None
    assert "forecasts" in caplog.text and "truncated file" in caplog.text
    assert counted.get(OVERVIEW) == 1 and counted.get("trends") == 1


def test_no_graph_warms_nothing(tmp_path, monkeypatch, counted):
    monkeypatch.setenv("HUBATLAS_DB", str(tmp_path / "none"))
    st.cache_resource.clear()
    assert common.warm_up() is None
    assert counted == {}


def test_keep_warm_warms_each_new_generation(graph_env, counted):
    from graph.generations import Generations
    from ingest.run import ingest
    from ingest.sources import SnapshotSource
    from tests.conftest import MINI_SNAPSHOT, job_without_search

    stop = threading.Event()
    thread = threading.Thread(target=common.keep_warm, kwargs={"poll_s": 0.05, "stop": stop},
                              daemon=True)
    thread.start()
    try:
        # warmed, and the loaded results moved out of the full collections
        _wait(lambda: counted.get(OVERVIEW) == 1 and gc.get_freeze_count() > 0)
        ingest(SnapshotSource(MINI_SNAPSHOT), root=graph_env, limit=5,  # an incremental run
               refresh=job_without_search())
        new = Generations(graph_env).current_name()
        _wait(lambda: counted.get("trends") == 2)  # the last loader of the warm-up
        assert common.stored(OVERVIEW).generation == new
        assert counted[OVERVIEW] == 2  # served from the cache the thread filled
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


def _wait(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the warm-up thread did not get there in time"
        time.sleep(0.05)


def test_warm_up_starts_the_search_index_as_a_first_search_would(graph_env):
    from analytics.pipeline import build_now

    assert [s.ok for s in build_now([SEARCH])] == [True]  # the job's search step
    st.cache_resource.clear()
    common.warm_up()
    search, recommender = common.stored(SEARCH).value
    assert "_qenc" in search.__dict__  # the query encoder is loaded and has encoded once
    assert len(search.search("sentiment analysis", k=5)) == 5
