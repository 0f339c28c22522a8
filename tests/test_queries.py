"""Lineage reads of graph/queries.py: the in-memory index (read-only stores), the level-by-level
Cypher walk (writable stores, Neo4j) and the engine's own recursive match, each checked against
a plain-Python breadth-first reference, on the mini graph and on the real typed model trees of
../shared/data/trees-2025."""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd
import pytest

from graph import queries as q
from graph.lineage_index import LineageIndex
from graph.schema import LINEAGE_RELS, REL_TO_RELATION
from graph.store import open_embedded, open_store
from tests.conftest import shared_data_or_skip

PHI2 = "microsoft/phi-2"
SDXL = "stabilityai/stable-diffusion-xl-base-1.0"
MISTRAL = "mistralai/Mistral-7B-v0.1"
DEEP = "BramVanroy/fietje-2-chat"


# -- the reference ---------------------------------------------------------------------------
def reference_walk(edges: pd.DataFrame, start: str, depth: int, *, up: bool
                   ) -> dict[str, tuple[int, str, str]]:
    """id → (shortest depth, smallest neighbour one level nearer, smallest relation type of
    the edges between them), by a plain breadth-first search."""
    out_edges = defaultdict(list)
    for c, p, r in zip(edges["child"], edges["parent"], edges["rel"]):
        out_edges[c if up else p].append((p if up else c, r))
    found: dict[str, tuple[int, str, str]] = {}
    seen, frontier = {start}, [start]
    for level in range(1, depth + 1):
        best: dict[str, tuple[str, str]] = {}
        for via in frontier:
            for node, rel in out_edges[via]:
                if node not in seen and (node not in best or (via, rel) < best[node]):
                    best[node] = (via, rel)
        for node, (via, rel) in best.items():
            found[node] = (level, via, rel)
        seen.update(best)
        frontier = list(best)
    return found


def has_parent(edges: pd.DataFrame) -> set[str]:
    return set(edges["child"])


def as_walk(frame: pd.DataFrame, via: str) -> dict[str, tuple[int, str, str]]:
    rel = {name: r.value for name, r in LINEAGE_RELS.items()}
    return {i: (int(d), v, rel[r]) for i, d, v, r in
            zip(frame["id"], frame["depth"], frame[via], frame["relation"])}


# -- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def indexed(mini_graph_root):
    """The mini graph read-only: lineage reads go through the in-memory index."""
    store = open_store(read_only=True, root=mini_graph_root)
    assert store.lineage_index() is not None
    yield store
    store.close()


@pytest.fixture(scope="module")
def walked(mini_graph_root, tmp_path_factory):
    """A writable copy of the mini graph: no index, so the level-by-level Cypher walk."""
    import shutil

    from graph.generations import Generations

    src = Generations(mini_graph_root).current_path()
    dst = tmp_path_factory.mktemp("walked") / "gen-x" / src.name
    shutil.copytree(src.parent, dst.parent)
    store = open_embedded(dst, read_only=False, buffer_pool_mb=256)
    assert store.lineage_index() is None
    yield store
    store.close()


@pytest.fixture(scope="module")
def edges(indexed) -> pd.DataFrame:
    return q.lineage_edges(indexed)


def _families(edges: pd.DataFrame, n: int) -> list[str]:
    """The `n` models with the most direct children, then deep leaves and unknown ids."""
    top = edges["parent"].value_counts().index[:n].tolist()
    return top + ["no/such-model"]


# -- both paths against the reference ------------------------------------------------------
@pytest.mark.parametrize("depth", [1, 2, 3, 10])
def test_descendants_match_the_reference(indexed, walked, edges, depth):
    for model in [*_families(edges, 6), PHI2, SDXL]:
        want = reference_walk(edges, model, depth, up=False)
        fast = q.descendants(indexed, model, depth)
        slow = q.descendants(walked, model, depth)
        assert as_walk(fast, "parent") == want == as_walk(slow, "parent"), model
        assert q.family_size(indexed, model, depth) == len(want) == \
            q.family_size(walked, model, depth)
        if want:
            pd.testing.assert_frame_equal(fast, slow, check_dtype=False)
            assert list(fast.columns) == ["id", "depth", "parent", "author", "createdAt",
                                          "downloads", "likes", "pipelineTag", "libraryName",
                                          "license", "stub", "relation"]
            order = fast.assign(neg=-fast["downloads"].fillna(-1))
            assert order.equals(order.sort_values(["depth", "neg", "id"], kind="stable"))


@pytest.mark.parametrize("depth", [1, 2, 10])
def test_ancestors_match_the_reference(indexed, walked, edges, depth):
    parents = has_parent(edges)
    leaves = sorted(set(edges["child"]) - set(edges["parent"]))[:40] + [DEEP, PHI2, "x/none"]
    for model in leaves:
        want = reference_walk(edges, model, depth, up=True)
        fast = q.ancestors(indexed, model, depth)
        slow = q.ancestors(walked, model, depth)
        assert as_walk(fast, "child") == want == as_walk(slow, "child"), model
        assert dict(zip(fast["id"], fast["is_root"])) == {
            i: i not in parents for i in want}, model
        if want:
            pd.testing.assert_frame_equal(fast, slow, check_dtype=False)
            assert list(fast.columns) == ["id", "depth", "child", "author", "createdAt",
                                          "downloads", "likes", "pipelineTag", "libraryName",
                                          "license", "stub", "is_root", "relation"]
        else:
            assert fast.empty and slow.empty


def test_roots_and_counts(indexed, walked, edges):
    assert q.roots(indexed, DEEP) == q.roots(walked, DEEP) == [PHI2]
    assert q.roots(indexed, PHI2) == [PHI2]
    for model in _families(edges, 10):
        kids = edges[edges["parent"] == model]
        want = {name: int((kids["rel"] == r.value).sum()) for name, r in LINEAGE_RELS.items()}
        assert q.descendant_counts(indexed, model) == want == q.descendant_counts(walked, model)


def test_depths_match_the_engines_own_recursive_match(indexed, edges):
    for model in _families(edges, 4):
        raw = indexed.frame(f"MATCH p = (c:Model)-[:{q.LINEAGE_TYPES}*1..10]->(m:Model "
                            "{id: $id}) RETURN c.id AS id, min(length(p)) AS depth",
                            {"id": model})
        got = q.descendants(indexed, model, 10)
        assert dict(zip(raw["id"], raw["depth"])) == dict(zip(got["id"], got["depth"]))


def test_limit_and_empty(indexed, walked):
    for store in (indexed, walked):
        assert len(q.descendants(store, PHI2, 3, limit=5)) == 5
        assert q.descendants(store, PHI2, 3, limit=5)["id"].tolist() == \
            q.descendants(store, PHI2, 3)["id"].head(5).tolist()
        empty = q.descendants(store, "no/such-model", 2)
        assert empty.empty and {"id", "depth", "relation", "parent"} <= set(empty.columns)
        assert q.family_size(store, "no/such-model") == 0
        assert q.descendant_counts(store, "no/such-model") == {n: 0 for n in LINEAGE_RELS}


def test_prepare_lineage_loads_the_index_once(mini_graph_root, walked):
    store = open_store(read_only=True, root=mini_graph_root)
    try:
        q.prepare_lineage(store)
        index = store.lineage_index()
        assert index is not None and store.lineage_index() is index and len(index) > 100
    finally:
        store.close()
    q.prepare_lineage(walked)  # a writable store has none: nothing to do
    assert walked.lineage_index() is None


# -- the index on its own --------------------------------------------------------------------
def _toy(edges: list[tuple[str, str, str]]) -> LineageIndex:
    frame = pd.DataFrame(edges, columns=["child", "parent", "rel"])
    ids = sorted(set(frame["child"]) | set(frame["parent"]))
    models = pd.DataFrame({"id": ids, "downloads": np.arange(len(ids), dtype=float)})
    return LineageIndex.from_frames(frame, models)


def test_index_walk_ties_cycles_and_caps():
    # a diamond (d reaches r through b and c), a cycle (x <-> y) and two edge types b->r
    idx = _toy([("b", "r", "FINETUNE_OF"), ("b", "r", "ADAPTER_OF"), ("c", "r", "MERGE_OF"),
                ("d", "c", "FINETUNE_OF"), ("d", "b", "QUANTIZED_OF"), ("e", "d", "FINETUNE_OF"),
                ("x", "y", "FINETUNE_OF"), ("y", "x", "FINETUNE_OF")])
    down = idx.walk(idx.node("r"), 10, up=False)
    got = {idx.ids[n]: (int(d), idx.ids[v], int(r)) for n, v, r, d in
           zip(down.node, down.via, down.rel, down.depth)}
    codes = {name: i for i, name in enumerate(("ADAPTER_OF", "DERIVED_FROM", "FINETUNE_OF",
                                                "MERGE_OF", "QUANTIZED_OF"))}
    assert got == {"b": (1, "r", codes["ADAPTER_OF"]), "c": (1, "r", codes["MERGE_OF"]),
                   "d": (2, "b", codes["QUANTIZED_OF"]), "e": (3, "d", codes["FINETUNE_OF"])}
    assert len(idx.walk(idx.node("r"), 2, up=False)) == 3
    up = idx.walk(idx.node("e"), 10, up=True)
    assert [idx.ids[n] for n in up.node] == ["d", "b", "c", "r"]
    assert len(idx.walk(idx.node("x"), 10, up=False)) == 1  # the cycle ends at the start
    assert idx.child_counts(idx.node("r")) == {"ADAPTER_OF": 1, "DERIVED_FROM": 0,
                                               "FINETUNE_OF": 1, "MERGE_OF": 1,
                                               "QUANTIZED_OF": 0}
    assert idx.node("nope") == -1


def test_index_rejects_unknown_relation_types():
    with pytest.raises(ValueError, match="unknown relation"):
        _toy([("a", "b", "LIKES")])


def test_index_save_load_round_trip(indexed, tmp_path):
    idx = indexed.lineage_index()
    idx.save(tmp_path)
    back = LineageIndex.load(tmp_path)
    assert back is not None and len(back) == len(idx)
    for model in (PHI2, SDXL, MISTRAL):
        a = idx.frame(idx.walk(idx.node(model), 10, up=False), "parent")
        b = back.frame(back.walk(back.node(model), 10, up=False), "parent")
        pd.testing.assert_frame_equal(a, b)
    assert LineageIndex.load(tmp_path / "elsewhere") is None


def test_store_uses_the_saved_index_of_its_generation(mini_graph_copy):
    from graph.generations import Generations

    path = Generations(mini_graph_copy).current_path()
    store = open_store(read_only=True, root=mini_graph_copy)
    try:
        full = q.family_size(store, PHI2)
        edges = q.lineage_edges(store)
    finally:
        store.close()
    # a saved index without phi-2's children: the store must answer from it, not rebuild
    pruned = edges[edges["parent"] != PHI2]
    ids = sorted(set(pruned["child"]) | set(pruned["parent"]))
    LineageIndex.from_frames(pruned, pd.DataFrame({"id": ids})).save(path.parent / "results")
    store = open_store(read_only=True, root=mini_graph_copy)
    try:
        assert full > 0 and q.family_size(store, PHI2) == 0
    finally:
        store.close()


# -- real typed trees (../shared/data/trees-2025) -------------------------------------------
@pytest.fixture(scope="module")
def trees_graph(tmp_path_factory):
    from ingest.run import ingest
    from ingest.sources import SnapshotSource

    trees = shared_data_or_skip("trees-2025")
    root = tmp_path_factory.mktemp("trees_graph")
    ingest(SnapshotSource(trees), root=root)
    store = open_store(read_only=True, root=root)
    yield root, store
    store.close()


def test_real_trees_both_paths_match_the_reference(trees_graph, tmp_path):
    import gzip
    import json
    import shutil

    from graph.generations import Generations

    root, store = trees_graph
    with gzip.open(shared_data_or_skip("trees-2025", "trees.jsonl.gz"), "rt") as f:
        rows = [json.loads(line) for line in f]
    tree_roots = sorted({r["model_id"] for r in rows if r["depth"] == 0})
    edges = q.lineage_edges(store)
    src = Generations(root).current_path()
    shutil.copytree(src.parent, tmp_path / "gen-copy")
    walked = open_embedded(tmp_path / "gen-copy" / src.name, read_only=False,
                           buffer_pool_mb=256)
    try:
        checked = 0
        for model in tree_roots:
            want = reference_walk(edges, model, 10, up=False)
            assert as_walk(q.descendants(store, model, 10), "parent") == want, model
            assert as_walk(q.descendants(walked, model, 10), "parent") == want, model
            assert q.family_size(store, model) == len(want) == q.family_size(walked, model)
            checked += len(want)
            deepest = max(want, key=lambda i: (want[i][0], i), default=None)
            if deepest:
                up = reference_walk(edges, deepest, 10, up=True)
                assert as_walk(q.ancestors(store, deepest), "child") == up
                assert as_walk(q.ancestors(walked, deepest), "child") == up
                assert set(q.roots(store, model)) <= set(q.roots(store, deepest))
        assert len(tree_roots) >= 20 and checked > 1500
    finally:
        walked.close()


def check_real_family(store, model: str, edges: pd.DataFrame) -> int:
    """Descendants, family size and the deepest descendant's ancestors of `model` against the
    BFS reference and the engine's own recursive match (used on the full snapshot by
    tests/test_shared_data.py, which builds that graph once)."""
    want = reference_walk(edges, model, 10, up=False)
    got = q.descendants(store, model, 10)
    assert as_walk(got, "parent") == want
    assert q.family_size(store, model) == len(want)
    raw = store.frame(f"MATCH p = (c:Model)-[:{q.LINEAGE_TYPES}*1..10]->(m:Model {{id: $id}}) "
                      "RETURN c.id AS id, min(length(p)) AS depth", {"id": model})
    assert dict(zip(raw["id"], raw["depth"])) == dict(zip(got["id"], got["depth"]))
    deepest = max(want, key=lambda i: (want[i][0], i))
    up = q.ancestors(store, deepest)
    assert as_walk(up, "child") == reference_walk(edges, deepest, 10, up=True)
    assert model in set(up["id"])
    return len(want)


def test_relation_names_cover_the_schema():
    assert set(REL_TO_RELATION) == {r.value for r in LINEAGE_RELS.values()}
