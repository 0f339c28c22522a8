"""graph/insights.py (and the descendants() rewrite in graph/queries.py) on the mini graph,
each checked against a plain-Python reference."""
from __future__ import annotations

from collections import Counter, defaultdict

import pandas as pd
import pytest

from graph import insights as I
from graph import queries as q
from graph.schema import LINEAGE_RELS, REL_TO_RELATION

PHI2 = "microsoft/phi-2"  # 56 descendants over 3 levels in the mini graph
SDXL = "stabilityai/stable-diffusion-xl-base-1.0"
DEEP = "BramVanroy/fietje-2-chat"  # three ancestors up to phi-2


@pytest.fixture(scope="module")
def store(mini_graph_root):
    from graph.store import open_store

    s = open_store(read_only=True, root=mini_graph_root)
    yield s
    s.close()


@pytest.fixture(scope="module")
def models(store) -> pd.DataFrame:
    return store.frame("MATCH (m:Model) RETURN m.id AS id, m.createdAt AS createdAt, "
                       "m.pipelineTag AS task, m.libraryName AS library, m.license AS license, "
                       "m.stub AS stub, m.downloads AS downloads")


@pytest.fixture(scope="module")
def edges(store) -> pd.DataFrame:
    return store.frame(f"MATCH (c:Model)-[e:{q.LINEAGE_TYPES}]->(p:Model) "
                       "RETURN c.id AS child, p.id AS parent, label(e) AS rel")


# -- descendants: the rewrite against a BFS reference -----------------------------------
def _bfs(edges: pd.DataFrame, root: str, depth: int) -> dict[str, int]:
    children = defaultdict(list)
    for c, p in zip(edges["child"], edges["parent"]):
        children[p].append(c)
    seen, frontier = {root: 0}, [root]
    for level in range(1, depth + 1):
        nxt = []
        for p in frontier:
            for c in children[p]:
                if c not in seen:
                    seen[c] = level
                    nxt.append(c)
        frontier = nxt
    del seen[root]
    return seen


@pytest.mark.parametrize("model_id", [PHI2, SDXL, "openai-community/gpt2", "selfish/model"])
@pytest.mark.parametrize("depth", [1, 2, 5])
def test_descendants_matches_bfs(store, edges, model_id, depth):
    got = q.descendants(store, model_id, depth)
    want = _bfs(edges, model_id, depth)
    assert dict(zip(got["id"], got["depth"])) == want
    # each row's parent is one level nearer, joined by an edge of the stated relation
    level = {**want, model_id: 0}
    rel = {(c, p): REL_TO_RELATION[r] for c, p, r in edges.itertuples(index=False)}
    for r in got.itertuples():
        assert level[r.parent] == r.depth - 1
        assert rel[(r.id, r.parent)] == r.relation
    assert list(got.columns[:4]) == ["id", "depth", "parent", "author"] or "relation" in got


def test_descendants_limit_and_empty(store):
    assert len(q.descendants(store, PHI2, 3, limit=5)) == 5
    empty = q.descendants(store, "no/such-model", 2)
    assert empty.empty and {"id", "depth", "relation", "parent"} <= set(empty.columns)


# -- overview --------------------------------------------------------------------------
@pytest.mark.parametrize("by,col", [("task", "task"), ("library", "library")])
def test_uploads_per_month(store, models, by, col):
    got = I.uploads_per_month(store, by=by, top=3)
    dated = models[models["createdAt"].notna()]
    assert got["n"].sum() == len(dated)
    assert set(got["group"]) - {I.OTHER, I.NONE} <= set(dated[col].dropna())
    assert len(set(got["group"]) - {I.OTHER, I.NONE}) <= 3
    months = dated["createdAt"].dt.to_period("M").dt.to_timestamp()
    assert got.groupby("month")["n"].sum().to_dict() == months.value_counts().to_dict()


def test_uploads_rejects_unknown_split(store):
    with pytest.raises(ValueError, match="by must be"):
        I.uploads_per_month(store, by="colour")


def test_licence_mix(store, models):
    got = I.licence_mix(store, top=4)
    real = models[models["stub"] != True]  # noqa: E712
    assert got["n"].sum() == len(real)
    assert got["share"].sum() == pytest.approx(1.0)
    named = got[~got["licence"].isin([I.OTHER, I.NONE])]
    want = Counter(real["license"].dropna())
    assert dict(zip(named["licence"], named["n"])) == dict(want.most_common(4))


def test_top_base_models_long_form(store):
    wide = q.top_base_models(store, 10)
    long = I.top_base_models(store, 10)
    assert long.groupby("id")["n"].sum().to_dict() == dict(zip(wide["id"], wide["total"]))
    assert set(long["relation"]) <= set(LINEAGE_RELS)


def test_ingest_run_summary(store):
    runs = I.ingest_run_summary(store)
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["status"] == "ok" and run["models"] > 400 and run["rejects"] >= 0
    assert "snapshot" in run["source"]


# -- one model -------------------------------------------------------------------------
@pytest.mark.parametrize("model_id", [PHI2, SDXL])
def test_derivatives_per_month(store, models, edges, model_id):
    got = I.derivatives_per_month(store, model_id)
    kids = edges[edges["parent"] == model_id].merge(models, left_on="child", right_on="id")
    assert got["n"].sum() == len(kids) == sum(q.descendant_counts(store, model_id).values())
    kids = kids.assign(relation=kids["rel"].map(REL_TO_RELATION),
                       month=kids["createdAt"].dt.to_period("M").dt.to_timestamp())
    want = kids.groupby(["month", "relation"], dropna=False).size()
    assert got.set_index(["month", "relation"])["n"].sort_index().to_dict() == \
        want.sort_index().to_dict()


def test_derivatives_per_month_none(store):
    assert I.derivatives_per_month(store, "selfish/model").empty


def test_licence_drift_against_reference(store):
    model = q.get_model(store, SDXL)
    desc = q.descendants(store, SDXL, 3)
    got = I.licence_drift(desc, model)
    licence = {model["id"]: model["license"], **dict(zip(desc["id"], desc["license"]))}
    want = {}

    def stated(value):
        return None if value is None or pd.isna(value) or value == "" else value

    for r in desc.itertuples():
        child, parent = stated(r.license), stated(licence.get(r.parent))
        if child and parent and child != parent:
            want[r.id] = "changed"
        elif parent and not child:
            want[r.id] = "dropped"
        elif child and not parent:
            want[r.id] = "added"
    assert dict(zip(got["id"], got["drift"])) == want
    assert want  # the mini graph has drift under SDXL
    assert I.licence_drift(desc.iloc[0:0], model).empty


def test_relation_and_depth_counts(store):
    desc = q.descendants(store, PHI2, 3)
    counts = I.relation_counts(desc)
    assert set(counts) == set(LINEAGE_RELS) and sum(counts.values()) == len(desc)
    by_depth = I.depth_counts(desc)
    assert by_depth["total"].sum() == len(desc)
    assert list(by_depth["depth"]) == sorted(desc["depth"].unique())


# -- type-ahead index ------------------------------------------------------------------
def _reference_search(ids, downloads, text, limit):
    t = text.strip().lower()

    def rank(i):
        lo, name = i.lower(), i.lower().split("/", 1)[-1]
        return (0 if lo == t else 1 if name == t else 2 if lo.startswith(t) else
                3 if name.startswith(t) else 4)

    hits = [i for i in ids if t in i.lower()]
    return sorted(hits, key=lambda i: (rank(i), -downloads[i], i.lower()))[:limit]


@pytest.mark.parametrize("text", ["llama", "LLAMA", "phi-2", "microsoft/phi-2", "a", "/", "gpt2",
                                  "zzz-nothing", "", "  bert  "])
def test_id_index_search_matches_reference(store, models, text):
    index = I.ModelIdIndex.from_store(store)
    dl = dict(zip(models["id"], pd.to_numeric(models["downloads"]).fillna(0)))
    got = index.search(text, limit=20)
    want = _reference_search(models["id"].tolist(), dl, text, 20) if text.strip() else []
    t = text.strip().lower()

    def key(i):  # (rank, -downloads): ties may come in any order
        lo = i.lower()
        name = lo.split("/", 1)[-1]
        rank = (0 if lo == t else 1 if name == t else 2 if lo.startswith(t) else
                3 if name.startswith(t) else 4)
        return rank, -dl[i]

    assert [key(i) for i in got] == [key(i) for i in want]
    assert all(t in i.lower() for i in got)


def test_id_index_resolve_and_contains(store):
    index = I.ModelIdIndex.from_store(store)
    assert PHI2 in index and "nope/nope" not in index
    assert index.resolve(PHI2) == PHI2
    assert index.resolve("MICROSOFT/PHI-2") == PHI2
    assert index.resolve("microsoft/phi") is None
    assert index.resolve("") is None
    assert index.search(PHI2)[0] == PHI2  # the exact id first
    assert index.search("gpt2")[0] == "openai-community/gpt2"  # then an exact name
    assert len(index) == len(store.rows("MATCH (m:Model) RETURN m.id AS id"))


def test_id_index_is_fast_on_760k_ids():
    import time

    ids = [f"org{i % 5000}/model-{i}-{'llama' if i % 7 == 0 else 'bert'}" for i in range(760_000)]
    t = time.perf_counter()
    index = I.ModelIdIndex(ids, range(len(ids)))
    build = time.perf_counter() - t
    t = time.perf_counter()
    for text in ("llama", "org42/", "model-7", "b", "nothing-here"):
        index.search(text, limit=50)
    per_search = (time.perf_counter() - t) / 5
    assert per_search < 0.5, per_search  # measured ~0.1 s worst case ("b" hits 650k ids)
    assert build < 30, build
    assert index.search("org43/model-43-")[0] == "org43/model-43-bert"
    print(f"build {build:.2f} s, search {per_search * 1000:.0f} ms")


# -- lineage graph ---------------------------------------------------------------------
@pytest.mark.parametrize("cap", [5, 20, 500])
def test_lineage_graph_cap_and_consistency(store, cap):
    model = q.get_model(store, PHI2)
    anc, desc = q.ancestors(store, PHI2), q.descendants(store, PHI2, 3)
    g = I.lineage_graph(model, anc, desc, cap=cap)
    real = g.nodes[g.nodes["kind"] != "summary"]
    assert len(real) <= max(cap, 1 + len(anc))
    assert g.shown + sum(g.hidden.values()) == g.total == 1 + len(anc) + len(desc)
    ids = set(g.nodes["id"])
    assert set(g.edges["source"]) <= ids and set(g.edges["target"]) <= ids
    # every drawn descendant hangs off a drawn parent
    drawn = real[real["kind"] == "descendant"]
    assert len(g.edges[g.edges["source"].isin(drawn["id"])]) == len(drawn)
    if cap >= g.total:
        assert not g.hidden and (g.nodes["kind"] != "summary").all()
    # what goes to the browser is strict JSON (NaN would break the graph component)
    import json

    json.loads(json.dumps({"n": g.node_records(), "e": g.edge_records()}, allow_nan=False))
    assert len(g.node_records()) == len(g.nodes) and len(g.edge_records()) == len(g.edges)


def test_lineage_graph_with_ancestors(store):
    model = q.get_model(store, DEEP)
    anc = q.ancestors(store, DEEP)
    g = I.lineage_graph(model, anc, q.descendants(store, DEEP, 2), cap=50)
    assert set(g.nodes.loc[g.nodes["kind"] == "ancestor", "id"]) == set(anc["id"])
    assert PHI2 in set(g.edges["target"])
    assert (g.nodes.loc[g.nodes["kind"] == "ancestor", "depth"] < 0).all()


def test_node_size():
    assert I.node_size(None, "descendant") == 8
    assert I.node_size(10**6, "descendant") > I.node_size(10, "descendant")
    assert I.node_size(float("nan"), "descendant") == 8
    assert I.node_size(0, "focus") > I.node_size(10**9, "descendant")
