"""analytics/family.py (and the lineage reads of graph/queries.py it shapes) on the mini graph,
each checked against a plain-Python reference."""
from __future__ import annotations

from collections import defaultdict

import pandas as pd
import pytest

from analytics import family as F
from graph import queries as q
from graph.schema import LINEAGE_RELS, REL_TO_RELATION
from tests.mini_graph import DEEP, PHI2, SDXL, edges, models, store  # noqa: F401 - fixtures, found by name


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


# -- one model -------------------------------------------------------------------------
@pytest.mark.parametrize("model_id", [PHI2, SDXL])
def test_derivatives_per_month(store, models, edges, model_id):
    got = F.derivatives_per_month(q.derivatives_by_month(store, model_id))
    kids = edges[edges["parent"] == model_id].merge(models, left_on="child", right_on="id")
    assert got["n"].sum() == len(kids) == sum(q.descendant_counts(store, model_id).values())
    kids = kids.assign(relation=kids["rel"].map(REL_TO_RELATION),
                       month=kids["createdAt"].dt.to_period("M").dt.to_timestamp())
    want = kids.groupby(["month", "relation"], dropna=False).size()
    assert got.set_index(["month", "relation"])["n"].sort_index().to_dict() == \
        want.sort_index().to_dict()


def test_derivatives_per_month_none(store):
    assert F.derivatives_per_month(q.derivatives_by_month(store, "selfish/model")).empty


def test_licence_drift_against_reference(store):
    model = q.get_model(store, SDXL)
    desc = q.descendants(store, SDXL, 3)
    got = F.licence_drift(desc, model)
    licence = {model.id: model.license, **dict(zip(desc["id"], desc["license"]))}
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
    assert F.licence_drift(desc.iloc[0:0], model).empty


def test_relation_and_depth_counts(store):
    desc = q.descendants(store, PHI2, 3)
    counts = F.relation_counts(desc)
    assert set(counts) == set(LINEAGE_RELS) and sum(counts.values()) == len(desc)
    by_depth = F.depth_counts(desc)
    assert by_depth["total"].sum() == len(desc)
    assert list(by_depth["depth"]) == sorted(desc["depth"].unique())


# -- lineage graph ---------------------------------------------------------------------
@pytest.mark.parametrize("cap", [5, 20, 500])
def test_lineage_graph_cap_and_consistency(store, cap):
    model = q.get_model(store, PHI2)
    anc, desc = q.ancestors(store, PHI2), q.descendants(store, PHI2, 3)
    g = F.lineage_graph(model, anc, desc, cap=cap)
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
    g = F.lineage_graph(model, anc, q.descendants(store, DEEP, 2), cap=50)
    assert set(g.nodes.loc[g.nodes["kind"] == "ancestor", "id"]) == set(anc["id"])
    assert PHI2 in set(g.edges["target"])
    assert (g.nodes.loc[g.nodes["kind"] == "ancestor", "depth"] < 0).all()


def test_node_size():
    assert F.node_size(None, "descendant") == 8
    assert F.node_size(10**6, "descendant") > F.node_size(10, "descendant")
    assert F.node_size(float("nan"), "descendant") == 8
    assert F.node_size(0, "focus") > F.node_size(10**9, "descendant")


def test_dated_before_base():
    model = q.ModelRow("base/m", created_at=pd.Timestamp("2023-06-01", tz="UTC"))
    lineage = pd.DataFrame({
        "id": ["a/child", "b/older", "c/grandchild", "d/undated"],
        "parent": ["base/m", "base/m", "a/child", "a/child"],
        "createdAt": [pd.Timestamp("2023-07-01"), pd.Timestamp("2022-03-02"),
                      pd.Timestamp("2023-06-15"), pd.NaT]})
    flags = F.dated_before_base(lineage, model)
    # b is older than its base; c (June 15) is older than its parent a (July 1); d has no date
    assert flags.tolist() == [False, True, True, False]
    assert F.dated_before_base(lineage.iloc[:0], model).empty


def test_dated_before_base_on_the_mini_graph(store):
    model = q.get_model(store, PHI2)
    desc = q.descendants(store, PHI2, 6)
    flags = F.dated_before_base(desc, model)
    created = dict(zip(desc["id"], pd.to_datetime(desc["createdAt"], utc=True)))
    created[PHI2] = pd.to_datetime(model.created_at, utc=True)
    want = [bool(pd.notna(c) and pd.notna(created.get(p)) and c < created[p])
            for c, p in zip(pd.to_datetime(desc["createdAt"], utc=True), desc["parent"])]
    assert flags.tolist() == want
