"""Shared fixtures: a real embedded graph loaded from the checked-in mini snapshot."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.fakehub import fake_hub  # noqa: F401  (fixture re-exported for every test module)

REPO = Path(__file__).resolve().parent.parent
MINI_SNAPSHOT = REPO / "tests" / "data" / "mini_snapshot"
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data_or_skip(*parts: str) -> Path:
    """Path under ../shared/data, or skip the test cleanly when the data is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


@pytest.fixture(scope="session")
def mini_graph_root(tmp_path_factory) -> Path:
    """An embedded graph folder (HUBATLAS_DB layout) holding the mini snapshot, loaded once by
    the scheduled job's path: ingest, then every derived result but the search index."""
    from ingest.run import ingest
    from ingest.sources import SnapshotSource

    root = tmp_path_factory.mktemp("mini_graph")
    neo4j_uri = os.environ.pop("NEO4J_URI", None)  # always the embedded engine, never a user's Neo4j
    try:
        ingest(SnapshotSource(MINI_SNAPSHOT), root=root, refresh=job_without_search())
    finally:
        if neo4j_uri is not None:
            os.environ["NEO4J_URI"] = neo4j_uri
    return root


@pytest.fixture(scope="session")
def full_graph_root(tmp_path_factory) -> Path:
    """The full recorded graph (July 2024 listing + 2025 trees, one run), built once per
    session for the tests that need it (~1-3 min, ~3.3 GB); skipped without ../shared/data."""
    listing = shared_data_or_skip("hub-2024-07")
    trees = shared_data_or_skip("trees-2025")
    from ingest.run import ingest
    from ingest.sources import SnapshotSource

    root = tmp_path_factory.mktemp("full_graph")
    neo4j_uri = os.environ.pop("NEO4J_URI", None)
    try:
        ingest(SnapshotSource(listing, trees), root=root)
    finally:
        if neo4j_uri is not None:
            os.environ["NEO4J_URI"] = neo4j_uri
    return root


def job_without_search():
    """The scheduled job's derived results, minus the (slow to embed) search index."""
    from analytics.pipeline import SEARCH, Refresh

    return Refresh(skip=(SEARCH,))


@pytest.fixture
def mini_graph_copy(mini_graph_root, tmp_path) -> Path:
    """A private copy of the mini graph folder, for tests that write."""
    dst = tmp_path / "graph"
    shutil.copytree(mini_graph_root, dst)
    return dst


@pytest.fixture
def mini_store(mini_graph_root):
    """A read-only store over the mini graph."""
    from graph.store import open_store

    store = open_store(read_only=True, root=mini_graph_root)
    yield store
    store.close()


@pytest.fixture(autouse=True)
def _no_neo4j_unless_asked(monkeypatch, request):
    # The suite runs on the embedded engine; Neo4j tests opt in with the `neo4j` marker.
    if "neo4j" not in request.keywords:
        monkeypatch.delenv("NEO4J_URI", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def join_first_run_search(timeout: float = 900) -> int:
    """Wait for the app's first-run search build (a background thread) to end, so no test
    leaves it running into the next one or into interpreter shutdown (the engine aborts the
    process when a thread is still inside it at exit). Returns how many were joined."""
    import threading

    threads = [t for t in threading.enumerate() if t.name == "first-run-search"]
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), "the first-run search build did not finish"
    return len(threads)


@pytest.fixture(scope="session")
def chromium_binary() -> str:
    """The Chromium the browser tests drive; they skip where none is installed."""
    from bench.pages import find_chromium

    binary = find_chromium()
    if binary is None:
        pytest.skip("no Chromium found (apt-get install -y chromium, or set HUBATLAS_CHROMIUM)")
    return binary
