"""Lineage through a real ingest: learnt types, card-text links, resolution by reason, the
Hub's own fields over HTTP, the CLI, and the edge source on the lineage page."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from graph import queries as q
from graph.store import open_store
from ingest.hub import MODEL_EXPAND, HubSource
from ingest.lineage_report import resolution_report
from ingest.run import ingest
from ingest.sources import LiveHubSource, SnapshotSource
from tests.conftest import REPO
from tests.fakehub import FakeHub

TRAINER = ("This model is a fine-tuned version of [a/base](https://huggingface.co/a/base) "
           "on the imdb dataset.")
MODELS = [
    {"id": "a/base", "downloads": 5000, "tags": ["transformers"]},
    {"id": "b/other", "downloads": 10, "tags": ["transformers"]},
    {"id": "u/base-GGUF", "tags": ["gguf", "base_model:a/base"]},                 # inferred
    {"id": "u/typed-lora", "tags": ["peft", "base_model:adapter:a/base"]},       # recorded
    {"id": "u/from-legacy", "tags": ["generated_from_trainer", "base_model:base"]},  # bare name
    {"id": "u/from-url", "tags": ["base_model:https://huggingface.co/b/other"]},
    {"id": "u/local", "tags": ["base_model:./outputs/checkpoint-100"]},
    {"id": "u/deleted", "tags": ["base_model:a/gone"]},
    {"id": "u/nobody", "tags": ["base_model:nobody-org/x"]},
    {"id": "u/merge", "tags": ["mergekit", "merge", "base_model:a/base", "base_model:b/other"]},
    "not a record",  # poison: counted, the rest lands
    {"id": "u/no-id-here has space"},
]
CARD_ROW = {"tree_root": "base", "model_id": "u/card-only", "depth": "1",
            "metadata": {"id": "u/card-only", "tags": ["transformers"], "library_name":
                         "transformers", "created_at": "2025-01-01 00:00:00+00:00"},
            "card": TRAINER, "children": [], "adapters": [], "quantized": [], "merges": []}


@pytest.fixture(scope="module")
def graph_root(tmp_path_factory) -> Path:
    snap = tmp_path_factory.mktemp("snap")
    with open(snap / "models.jsonl", "w") as fh:
        for m in MODELS:
            fh.write(json.dumps(m) + "\n")
    with open(snap / "trees.jsonl", "w") as fh:
        fh.write(json.dumps(CARD_ROW) + "\n")
    root = tmp_path_factory.mktemp("graph")
    report = ingest(SnapshotSource(snap), root=root)
    root.joinpath("report.json").write_text(json.dumps(report.as_dict(), default=str))
    return root


def _edges(root: Path) -> dict:
    store = open_store(read_only=True, root=root)
    try:
        rows = store.rows("MATCH (c:Model)-[e]->(p:Model) RETURN c.id AS c, p.id AS p, "
                          "label(e) AS rel, e.inferred AS inferred, e.source AS source")
    finally:
        store.close()
    return {(r["c"], r["p"]): (r["rel"], r["inferred"], r["source"]) for r in rows}


def test_every_edge_says_where_it_came_from(graph_root):
    e = _edges(graph_root)
    assert e[("u/base-GGUF", "a/base")] == ("QUANTIZED_OF", True, "tag")
    assert e[("u/typed-lora", "a/base")] == ("ADAPTER_OF", False, "typed_tag")
    assert e[("u/merge", "a/base")][0] == e[("u/merge", "b/other")][0] == "MERGE_OF"
    rel, inferred, source = e[("u/card-only", "a/base")]  # read from the card's prose
    assert (inferred, source) == (True, "card_text") and rel == "FINETUNE_OF"


def test_parents_resolve_or_stay_stubs_with_a_reason(graph_root):
    e = _edges(graph_root)
    assert ("u/from-legacy", "a/base") in e   # bare name with one namespaced match
    assert ("u/from-url", "b/other") in e     # the id inside a Hub URL
    report = json.loads(graph_root.joinpath("report.json").read_text())
    lin = report["lineage"]
    assert lin["parents_resolved_by"]["unique_name"] == 1
    assert lin["parents_unresolved_by_reason"] == {"local_path": 1, "deleted_or_renamed": 1,
                                                   "namespace_unknown": 1}
    assert lin["links_by_source"]["card_text (inferred)"] == 1
    assert report["rejects"]["model:not_an_object"] == 1
    store = open_store(read_only=True, root=graph_root)
    try:
        res = resolution_report(store)
    finally:
        store.close()
    reasons = {k: v["parents"] for k, v in res["unresolved_by_reason"].items()}
    assert reasons == {"local_path": 1, "deleted_or_renamed": 1, "namespace_unknown": 1}
    assert res["unresolved_by_reason"]["local_path"]["examples"] == ["./outputs/checkpoint-100"]
    assert res["resolvable_now"] == 0


def test_resolution_and_status_cli(graph_root):
    env = {**os.environ, "HUBATLAS_DB": str(graph_root)}
    env.pop("NEO4J_URI", None)
    out = subprocess.run([sys.executable, "-m", "ingest", "resolution", "--json"], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=300, check=True)
    data = json.loads(out.stdout)
    assert data["stubs"] == 3 and "deleted_or_renamed" in data["unresolved_by_reason"]
    text = subprocess.run([sys.executable, "-m", "ingest", "resolution"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, check=True).stdout
    assert "local_path" in text and "./outputs/checkpoint-100" in text
    status = subprocess.run([sys.executable, "-m", "ingest", "status", "--resolution"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                            check=True).stdout
    assert "stub parents: 3" in status and "namespace_unknown" in status


def test_live_hub_fields_and_typed_parents(tmp_path):
    assert {"baseModels", "childrenModelCount", "downloadsAllTime", "trendingScore"} <= set(
        MODEL_EXPAND)
    models = [
        {"id": "org/base", "downloads": 100, "downloadsAllTime": 90_000, "trendingScore": 12,
         "tags": ["transformers"], "lastModified": "2024-07-01T00:00:00.000Z"},
        # the Hub's own relation wins over what the tags alone would suggest
        {"id": "u/merged-GGUF", "tags": ["gguf", "base_model:org/base"],
         "baseModels": {"relation": "quantized", "models": [{"id": "org/base"}]},
         "lastModified": "2024-07-02T00:00:00.000Z"},
        # typed tags only: the fake derives baseModels as the Hub does
        {"id": "u/lora", "tags": ["base_model:adapter:org/base"],
         "lastModified": "2024-07-03T00:00:00.000Z"},
    ]
    with FakeHub(models=models, datasets=[], spaces=[]) as hub:
        report = ingest(LiveHubSource(HubSource(endpoint=hub.url)), root=tmp_path)
        listing = hub.requests_to("/api/models")[0]
    assert {"baseModels", "childrenModelCount", "downloadsAllTime",
            "trendingScore"} <= set(listing.query["expand"])
    assert report.loaded["model"] == 3
    e = _edges(tmp_path)
    assert e[("u/merged-GGUF", "org/base")] == ("QUANTIZED_OF", False, "api")
    assert e[("u/lora", "org/base")] == ("ADAPTER_OF", False, "api")
    store = open_store(read_only=True, root=tmp_path)
    try:
        row = store.rows("MATCH (m:Model {id: 'org/base'}) RETURN m.downloads AS d, "
                         "m.downloadsAllTime AS all_time, m.trendingScore AS trend, "
                         "m.childrenModelCount AS kids")[0]
    finally:
        store.close()
    assert row == {"d": 100, "all_time": 90_000, "trend": 12.0, "kids": 2}


def test_older_graph_gains_the_new_properties(tmp_path):
    """A generation created before a property was declared is migrated when opened to write."""
    from graph.engine import engine
    from graph.kuzu_store import KuzuStore

    path = tmp_path / "old.kuzu"
    db = engine().module.Database(str(path))  # the configured engine, as the store opens it
    conn = engine().module.Connection(db)
    conn.execute("CREATE NODE TABLE Model(id STRING, downloads INT64, stub BOOLEAN, "
                 "PRIMARY KEY (id))")
    conn.execute("CREATE (:Model {id: 'a/b', downloads: 3, stub: false})")
    conn.close()
    db.close()
    store = KuzuStore(path, read_only=False)
    try:
        row = store.rows("MATCH (m:Model) RETURN m.id AS id, m.downloads AS d, "
                         "m.downloadsAllTime AS all_time")[0]
        assert row == {"id": "a/b", "d": 3, "all_time": None}
        store.write([("MATCH (m:Model {id: 'a/b'}) SET m.downloadsAllTime = 7", {})])
    finally:
        store.close()


def test_lineage_page_shows_the_edge_source(graph_root, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("HUBATLAS_DB", str(graph_root))
    st.cache_data.clear()
    st.cache_resource.clear()
    def page(model: str, tab: str) -> AppTest:
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
        at.switch_page("app_pages/lineage.py")
        at.query_params["model"] = model
        at.session_state["lineage_tab"] = tab  # a lazy tab: only the open one runs
        at.run()
        assert not at.exception and not at.error
        return at

    try:
        at = page("a/base", "Descendants")
        desc = next(d.value for d in at.dataframe if "parent" in d.value.columns
                    and "source" in d.value.columns)
        by_child = dict(zip(desc["id"], desc["source"]))
        assert by_child["u/card-only"] == "card_text"
        assert by_child["u/typed-lora"] == "typed_tag"
        assert bool(desc.set_index("id").loc["u/base-GGUF", "inferred"]) is True
        at = page("u/card-only", "Ancestors")
        anc = next(d.value for d in at.dataframe if "is_root" in d.value.columns)
        assert anc.iloc[0]["source"] == "card_text"
    finally:
        st.cache_data.clear()
        st.cache_resource.clear()


def test_lineage_graph_edges_carry_the_source(graph_root):
    from analytics import family as insights

    store = open_store(read_only=True, root=graph_root)
    try:
        model = q.get_model(store, "a/base")
        g = insights.lineage_graph(model, q.ancestors(store, "a/base"),
                                   q.descendants(store, "a/base", 1))
    finally:
        store.close()
    by_source = {r["source"]: r for r in g.edge_records()}
    assert by_source["u/card-only"]["origin"] == "card_text"
    assert by_source["u/typed-lora"]["origin"] == "typed_tag"
    assert by_source["u/typed-lora"]["inferred"] is False


def test_incremental_batches_see_the_authors_whole_history(graph_root):
    import numpy as np

    from ingest.records import ModelRecord
    from ingest.relation_model import author_habits_for

    new = ModelRecord.from_api({"id": "u/new-GGUF", "tags": ["gguf", "base_model:a/base"]})
    store = open_store(read_only=True, root=graph_root)
    try:
        habits = author_habits_for(store, [new])
    finally:
        store.close()
    # 'u' published 9 models in the graph; with the new one, 10
    assert habits.loc["u", "author_log_models"] == pytest.approx(np.log1p(10))
    assert 0 < habits.loc["u", "author_quant_share"] < 1


def test_incremental_run_types_new_links(graph_root, tmp_path):
    import shutil
    from datetime import datetime, timedelta, timezone

    root = tmp_path / "graph"
    shutil.copytree(graph_root, root)
    snap = tmp_path / "later"
    snap.mkdir()
    # newer than the graph's watermark, but not in the future (future dates are dropped)
    created = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()
    (snap / "models.jsonl").write_text(json.dumps(
        {"id": "u/later-lora", "tags": ["peft", "base_model:a/base"], "library_name": "peft",
         "createdAt": created}) + "\n")
    report = ingest(SnapshotSource(snap), root=root)
    assert report.mode == "incremental" and report.loaded["model"] == 1
    assert _edges(root)[("u/later-lora", "a/base")] == ("ADAPTER_OF", True, "tag")


def test_author_history_remembers_earlier_batches_of_the_run(graph_root):
    import numpy as np

    from ingest.records import ModelRecord
    from ingest.relation_model import AuthorHistory

    first = ModelRecord.from_api({"id": "zz/one-GGUF", "tags": ["gguf", "base_model:a/base"]})
    second = ModelRecord.from_api({"id": "zz/two", "tags": ["base_model:a/base"]})
    store = open_store(read_only=True, root=graph_root)
    try:
        history = AuthorHistory(store)
        assert history.habits([first]).loc["zz", "author_log_models"] == pytest.approx(
            np.log1p(1))
        # 'zz' was fetched (empty) with the first batch; the second still sees that batch
        habits = history.habits([second])
        again = history.habits([second])  # a record seen twice counts once
        with_graph = history.habits([ModelRecord.from_api({"id": "u/new", "tags": []})])
    finally:
        store.close()
    assert habits.loc["zz", "author_log_models"] == pytest.approx(np.log1p(2))
    assert habits.loc["zz", "author_quant_share"] == pytest.approx(0.5)
    assert again.loc["zz", "author_log_models"] == pytest.approx(np.log1p(2))
    assert with_graph.loc["u", "author_log_models"] == pytest.approx(np.log1p(10))


def test_incremental_run_retypes_with_the_whole_runs_habits(graph_root, tmp_path, monkeypatch):
    """Each batch is typed with the habits seen so far; once the run has read every record its
    links are retyped with all of them (what a clean load of the same records would do)."""
    import shutil
    from dataclasses import replace
    from datetime import datetime, timedelta, timezone

    import ingest.run as run

    seen: list[int] = []

    def typer_by_run_size(models, *, habits=None, typer=None):
        # stands in for the learnt typer: its answer depends on how many of the author's
        # models it is shown ('quantized' once it sees both of u2's records)
        n = len(models)
        seen.append(n)
        for m in models:
            m.base_models = tuple(replace(b, relation="quantized" if n > 1 else "finetune")
                                  if b.inferred else b for b in m.base_models)
        return n

    monkeypatch.setattr(run, "retype_links", typer_by_run_size)
    root = tmp_path / "graph"
    shutil.copytree(graph_root, root)
    snap = tmp_path / "later"
    snap.mkdir()
    created = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()
    (snap / "models.jsonl").write_text("".join(json.dumps(
        {"id": f"u2/later-{i}", "tags": ["base_model:a/base"], "createdAt": created}) + "\n"
        for i in range(2)))
    report = ingest(SnapshotSource(snap), root=root, batch_size=1)
    assert report.mode == "incremental" and report.loaded["model"] == 2
    assert seen == [1, 1, 2]  # two batches of one, then the whole run
    assert report.loaded["retyped_children"] == 2
    edges = _edges(root)
    for i in range(2):
        assert edges[(f"u2/later-{i}", "a/base")] == ("QUANTIZED_OF", True, "tag")
    assert sum(1 for (c, _), _v in edges.items() if c.startswith("u2/")) == 2
