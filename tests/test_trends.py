"""analytics/trends.py: downloads and likes across ingest runs, and trending.

Pure functions on hand-made observations; the builder on the mini graph with synthetic later
runs written through the ingest's own write queries; and two real observations per model
from the two recorded sources (July 2024 listing, 2025 trees) ingested as two runs."""
from __future__ import annotations

import gzip
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pandas as pd
import pytest

from analytics import trends as T
from graph import queries as q
from graph.generations import Generations
from graph.kuzu_store import KuzuStore
from graph.schema import Label, Rel
from graph.store import open_store

PHI2 = "microsoft/phi-2"
GPT2 = "openai-community/gpt2"


def add_run(store, run_id: str, at: str, values: dict[str, tuple[int, int]]) -> None:
    """A synthetic ingest run that observed `values` (id → (downloads, likes)) at `at`."""
    store.write([
        (q.start_run(store), {"id": run_id, "source": "synthetic", "mode": "incremental",
                              "startedAt": at, "since": None, "recordLimit": None}),
        (q.upsert_rels(store, Rel.OBSERVED_IN, Label.MODEL, Label.INGEST_RUN,
                       ["downloads", "likes", "at"]),
         {"rows": [{"src": m, "dst": run_id, "downloads": d, "likes": lk, "at": at}
                   for m, (d, lk) in values.items()]}),
        (q.finish_run(store), {"id": run_id, "status": "ok", "counts": "{}", "rejects": "{}",
                               "endedAt": at, "watermark": None}),
    ])


def _later(days: int) -> str:
    """A time after every real run of the test graphs (they are stamped with the clock)."""
    return (datetime.utcnow().replace(microsecond=0) + timedelta(days=days)).isoformat()


def _obs(rows):
    return pd.DataFrame(rows, columns=["id", "run", "source", "startedAt", "at", "downloads",
                                       "likes"])


# -- pure -------------------------------------------------------------------------------------
def test_trend_table_takes_each_models_last_two_observations():
    t = pd.Timestamp
    obs = _obs([
        ("a", "r3", "s", t("2025-03-01"), t("2025-03-01"), 900, 30),
        ("a", "r1", "s", t("2024-07-01"), t("2024-07-01"), 100, 10),
        ("a", "r2", "s", t("2025-01-01"), None, 300, 20),  # no `at`: the run's start counts
        ("b", "r1", "s", t("2024-07-01"), t("2024-07-01"), 0, 0),
        ("b", "r3", "s", t("2025-03-01"), t("2025-03-01"), 50, 1),
        ("c", "r1", "s", t("2024-07-01"), t("2024-07-01"), 5, 5),  # one observation only
    ])
    tr = T.trend_table(obs).set_index("id")
    assert list(tr.index) == ["a", "b"]
    a = tr.loc["a"]
    assert (a["run_before"], a["run_after"], a["observations"]) == ("r2", "r3", 3)
    assert (a["downloads_before"], a["downloads_after"], a["downloads_change"]) == (300, 900, 600)
    assert a["downloads_relative"] == pytest.approx(2.0) and a["likes_change"] == 10
    assert a["days"] == pytest.approx(59.0)
    assert pd.isna(tr.loc["b", "downloads_relative"])  # no base to be relative to
    series = T.observation_series(obs[obs["id"] == "a"])
    assert series["run"].tolist() == ["r1", "r2", "r3"]
    assert series["downloads_change"].tolist()[1:] == [200, 600]


def test_top_trending_minimum_base_relative_and_falls():
    tr = pd.DataFrame({
        "id": ["big", "small", "mid", "down"],
        "downloads_before": [10_000, 2, 500, 8_000], "downloads_after": [15_000, 400, 2_000, 1_000],
        "likes_before": [1, 1, 1, 1], "likes_after": [1, 1, 1, 1]})
    for m in T.METRICS:
        tr[f"{m}_change"] = tr[f"{m}_after"] - tr[f"{m}_before"]
        tr[f"{m}_relative"] = tr[f"{m}_change"] / tr[f"{m}_before"]
    assert T.top_trending(tr, min_base=100)["id"].tolist() == ["big", "mid"]
    assert T.top_trending(tr, kind="relative", min_base=100)["id"].tolist() == ["mid", "big"]
    assert T.top_trending(tr, kind="relative", min_base=1)["id"].tolist()[0] == "small"
    assert T.top_trending(tr, rising=False, min_base=100)["id"].tolist() == ["down"]
    assert T.top_trending(tr, metric="likes").empty  # nothing changed
    with pytest.raises(ValueError):
        T.top_trending(tr, metric="stars")
    with pytest.raises(ValueError):
        T.top_trending(tr, kind="percent")


def test_empty_inputs():
    assert T.trend_table(_obs([])).empty
    assert T.observation_series(_obs([])).empty
    assert T.run_summary(T.trend_table(_obs([])))["models"] == 0


# -- mini graph with synthetic later runs --------------------------------------------------
@pytest.fixture
def mini_with_runs(mini_graph_copy):
    """The mini graph plus two synthetic later runs (59 days apart) over three models."""
    store = KuzuStore(Generations(mini_graph_copy).current_path(), read_only=False)
    try:
        before = {r["id"]: r["downloads"] for r in store.rows(
            "MATCH (m:Model) WHERE m.id IN $ids RETURN m.id AS id, m.downloads AS downloads",
            {"ids": [PHI2, GPT2, "BramVanroy/fietje-2-chat"]})}
        add_run(store, "synthetic-2", _later(31), {
            PHI2: (1_000_000, 3_400), GPT2: (5_000_000, 2_000),
            "BramVanroy/fietje-2-chat": (100, 5)})
        add_run(store, "synthetic-3", _later(90), {
            PHI2: (1_500_000, 3_500), GPT2: (4_000_000, 2_010)})
    finally:
        store.close()
    return mini_graph_copy, before


def test_builder_on_the_mini_graph_with_synthetic_runs(mini_with_runs):
    root, before = mini_with_runs
    store = open_store(read_only=True, root=root)
    try:
        tr = T.build_trending(store).set_index("id")
        assert set(tr.index) == {PHI2, GPT2, "BramVanroy/fietje-2-chat"}
        assert tr.loc[PHI2, "observations"] == 3
        assert (tr.loc[PHI2, "run_before"], tr.loc[PHI2, "run_after"]) == ("synthetic-2",
                                                                          "synthetic-3")
        assert tr.loc[PHI2, "downloads_change"] == 500_000
        assert tr.loc[PHI2, "downloads_relative"] == pytest.approx(0.5)
        assert tr.loc[PHI2, "days"] == pytest.approx(59.0)
        # fietje was seen by the ingest run and synthetic-2 only
        f = tr.loc["BramVanroy/fietje-2-chat"]
        assert f["downloads_before"] == before["BramVanroy/fietje-2-chat"]
        assert f["downloads_after"] == 100
        top = T.top_trending(tr.reset_index(), min_base=10)
        assert top["id"].iat[0] == PHI2 and GPT2 not in top["id"].tolist()
        assert T.top_trending(tr.reset_index(), rising=False)["id"].iat[0] == GPT2
        series = T.model_trend(store, PHI2)
        assert series["run"].tolist()[1:] == ["synthetic-2", "synthetic-3"]
        assert series["downloads"].tolist()[1:] == [1_000_000, 1_500_000]
        assert series["downloads"].iat[0] == before[PHI2]
        assert T.model_trend(store, "no/such-model").empty
    finally:
        store.close()


def test_a_single_run_gives_no_trends(mini_store):
    assert T.build_trending(mini_store).empty
    assert len(T.model_trend(mini_store, PHI2)) == 1


# -- two real observations: the July-2024 listing, then the 2025 trees ---------------------
class _OnlyIds:
    """A snapshot source restricted to some model ids (the listing rows of the tree models)."""

    def __init__(self, source, ids):
        self.source, self.ids = source, ids
        self.name = source.name + ":tree-models"

    def iter_items(self, *, limit=None, since=None):
        for item in self.source.iter_items(limit=limit, since=since):
            if isinstance(item.data, dict) and item.data.get("id") in self.ids:
                yield item


def _tree_models(trees: Path) -> dict[str, dict]:
    from ingest.sources import _tree_row_to_model

    out = {}
    with gzip.open(trees / "trees.jsonl.gz", "rb") as f:
        for line in f:
            m = _tree_row_to_model(orjson.loads(line))
            if isinstance(m, dict) and m.get("id"):
                out[m["id"]] = m
    return out


@pytest.fixture(scope="module")
def two_source_graph(tmp_path_factory):
    from ingest.run import ingest
    from ingest.sources import SnapshotSource
    from tests.conftest import shared_data_or_skip

    listing = shared_data_or_skip("hub-2024-07")
    trees = shared_data_or_skip("trees-2025")
    tree_models = _tree_models(trees)
    root = tmp_path_factory.mktemp("two_sources")
    first = ingest(_OnlyIds(SnapshotSource(listing), set(tree_models)), root=root)
    # full=True: the second run would otherwise skip every tree record whose lastModified is
    # not newer than the listing's watermark (735 of 1,966), losing their second observation
    second = ingest(SnapshotSource(trees), root=root, full=True)
    return root, first, second, tree_models


def test_two_recorded_sources_give_two_real_observations(two_source_graph):
    root, first, second, tree_models = two_source_graph
    store = open_store(read_only=True, root=root)
    try:
        tr = T.build_trending(store).set_index("id")
        # only the tree models that already existed in July 2024 are in both sources
        assert first.loaded["model"] == len(tr) == 778
        assert second.loaded["model"] >= 1900
        row = tr.loc[PHI2]
        assert (row["run_before"], row["run_after"]) == (first.run_id, second.run_id)
        assert row["downloads_before"] == 384_940  # the July-2024 listing
        assert row["downloads_after"] == tree_models[PHI2]["downloads"] == 885_255
        assert (tr["at_after"] > tr["at_before"]).all()
        top = T.top_trending(tr.reset_index(), min_base=1000, limit=4)["id"].tolist()
        assert top == ["Falconsai/nsfw_image_detection",  # 1.28M → 87.0M (30-day downloads)
                       "sentence-transformers/distiluse-base-multilingual-cased-v1",
                       "stabilityai/stable-diffusion-2-1", PHI2]
        falls = T.top_trending(tr.reset_index(), min_base=1000, rising=False)["id"].tolist()
        assert falls[0] == "stabilityai/stable-diffusion-3-medium"  # 2.94M → 16k
        # a synthetic third run moves the comparison to runs 2 → 3
        writable = KuzuStore(Generations(root).current_path(), read_only=False)
    finally:
        store.close()
    try:
        add_run(writable, "synthetic-3", _later(30),
                {PHI2: (900_000, 3_500)})
    finally:
        writable.close()
    store = open_store(read_only=True, root=root)
    try:
        tr = T.build_trending(store).set_index("id")
        assert tr.loc[PHI2, "run_before"] == second.run_id
        assert tr.loc[PHI2, "downloads_change"] == 900_000 - 885_255
        assert len(T.model_trend(store, PHI2)) == 3
    finally:
        store.close()
