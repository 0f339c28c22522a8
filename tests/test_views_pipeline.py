"""The scheduled job's view steps (analytics/pipeline.py): the licence verdicts written into the
graph before the publish, the licence audit, publisher index and trends stored with the
generation, on the real engine, through `ingest` as the cron job runs it."""
from __future__ import annotations

import pandas as pd
import pytest

from analytics import pipeline as P
from analytics.licences import LicenceAudit, build_licence_audit
from analytics.publishers import build_publisher_index
from analytics.results import Results
from analytics.trends import Trends, build_trends
from graph import views_queries as vq
from graph.generations import Generations
from graph.store import Generation, open_store
from ingest.run import ingest
from ingest.sources import SnapshotSource
from tests.conftest import MINI_SNAPSHOT, job_without_search

VIEW_STEPS = (P.LICENCE_VERDICTS, P.LICENCE_AUDIT, P.PUBLISHERS, P.TRENDS)


def _results(root) -> Results:
    folder = Generations(root).current_path().parent
    return Results(Generation("embedded", folder.name, folder))


def _frames_equal(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True),
                                  check_dtype=False)


def test_the_job_stores_every_view_result(mini_graph_root):
    """What the job stored is what the builders compute from the published graph."""
    results = _results(mini_graph_root)
    status = results.status()
    for name in VIEW_STEPS:
        assert status[name].ok, (name, status[name].error)
    assert status[P.LICENCE_VERDICTS].detail["conflicts"] > 50
    store = open_store(read_only=True, root=mini_graph_root)
    try:
        audit = LicenceAudit.load(results.folder(P.LICENCE_AUDIT))
        fresh = build_licence_audit(store)
        for name in LicenceAudit.FILES:
            _frames_equal(getattr(audit, name), getattr(fresh, name))
        assert status[P.LICENCE_AUDIT].detail == {"edges": len(fresh.edges),
                                                  "models": len(fresh.models),
                                                  "families": len(fresh.families)}
        _frames_equal(results.load_frame(P.PUBLISHERS), build_publisher_index(store, fresh))
        trends = Trends.load(results.folder(P.TRENDS))
        again = build_trends(store)
        _frames_equal(trends.runs, again.runs)
        assert len(trends.runs) == 1 and trends.trending.empty  # one run: nothing to compare
    finally:
        store.close()


def test_licence_verdicts_are_queryable_in_cypher(mini_graph_root):
    """The published graph answers `MATCH (m:Model) WHERE m.licenseVerdict = 'conflict' …`
    with exactly the stored audit's verdicts."""
    audit = LicenceAudit.load(_results(mini_graph_root).folder(P.LICENCE_AUDIT))
    store = open_store(read_only=True, root=mini_graph_root)
    try:
        got = vq.stored_licence_verdicts(store).set_index("id").sort_index()
        top = store.rows("MATCH (m:Model) WHERE m.licenseVerdict = 'conflict' "
                         "RETURN m.familyRoot AS family, count(*) AS n ORDER BY n DESC LIMIT 1")
    finally:
        store.close()
    want = audit.models.set_index("id").sort_index()
    assert list(got.index) == list(want.index)
    assert (got["licenseVerdict"] == want["verdict"]).all()
    assert (got["licenseChainVerdict"] == want["chain_verdict"]).all()
    assert (got["familyRoot"] == want["root"]).all()
    assert top[0]["family"] == audit.top_families(1)["root"].iat[0]


def test_refresh_on_a_published_generation_refuses_graph_writes():
    with pytest.raises(ValueError, match="licence_verdicts"):
        P.build_now([P.LICENCE_VERDICTS, P.PUBLISHERS])
    assert P.GRAPH_STEPS == {P.GROWTH_PROPERTIES_STEP, P.LICENCE_VERDICTS}


def test_a_second_ingest_refreshes_trends_and_verdicts(tmp_path):
    """Two runs of the cron job: the new generation gets its own trends (every model seen
    twice) and its own verdicts, written into its staging copy before the publish."""
    root = tmp_path / "graph"
    ingest(SnapshotSource(MINI_SNAPSHOT), root=root, refresh=job_without_search())
    first = _results(root)
    ingest(SnapshotSource(MINI_SNAPSHOT), root=root, full=True, refresh=job_without_search())
    second = _results(root)
    assert second.dir != first.dir
    status = second.status()
    assert all(status[n].ok for n in VIEW_STEPS), {n: status[n].error for n in VIEW_STEPS}
    trends = Trends.load(second.folder(P.TRENDS))
    assert len(trends.runs) == 2
    assert len(trends.trending) == status[P.TRENDS].detail["models"] > 400
    assert (trends.trending["observations"] == 2).all()
    change = trends.trending["downloads_change"]
    assert (change[change.notna()] == 0).all()  # the same snapshot twice
    # poison records without downloads stay unknown (NaN), never a change from 0
    assert trends.trending.loc[change.isna(), "downloads_before"].isna().all()
    store = open_store(read_only=True, root=root)
    try:
        n = store.rows("MATCH (m:Model) WHERE m.licenseVerdict IS NOT NULL "
                       "RETURN count(*) AS n")[0]["n"]
    finally:
        store.close()
    assert n == status[P.LICENCE_VERDICTS].detail["models"] > 300


def test_a_failing_view_step_is_recorded_and_the_others_still_run(tmp_path, monkeypatch):
    def broken(*_a, **_k):
        raise RuntimeError("no trends today")

    monkeypatch.setattr("analytics.trends.build_trends", broken)
    root = tmp_path / "graph"
    ingest(SnapshotSource(MINI_SNAPSHOT), root=root, refresh=job_without_search())
    results = _results(root)
    status = results.status()
    assert not status[P.TRENDS].ok and "no trends today" in status[P.TRENDS].error
    assert all(status[n].ok for n in (P.LICENCE_VERDICTS, P.LICENCE_AUDIT, P.PUBLISHERS))
    assert not results.complete
