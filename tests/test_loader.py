"""ingest/loader.py: records → graph rows → the graph, by its two write paths.

On the real embedded engine: the first load's bulk import (`bulk_write`) and the incremental
statements (`upsert_statements`) make the same graph of the same records; the statements are
idempotent; unknown parents become stubs; lineage cycles are cut deterministically; a
mistyped parameter row is a loud bug, never a value handed to the engine.
"""
from __future__ import annotations

from collections import Counter

import pyarrow.parquet as pq
import pytest

from graph.schema import Label, Rel
from graph.store import open_embedded
from ingest.lineage import IdResolver
from ingest.loader import (
    GraphRows,
    LineageStats,
    _checked,
    bulk_write,
    cycle_edges,
    upsert_statements,
)
from ingest.records import DatasetRecord, ModelRecord, SpaceRecord

MODELS = [
    {"id": "org/base", "author": "org", "downloads": 10, "likes": 1,
     "pipeline_tag": "text-classification", "library_name": "transformers",
     "createdAt": "2024-01-01T00:00:00.000Z",
     "tags": ["transformers", "license:mit", "dataset:squad", "arxiv:1810.04805"]},
    {"id": "other/ft", "author": "other", "createdAt": "2024-02-01T00:00:00.000Z",
     "tags": ["base_model:org/base", "base_model:finetune:org/base", "license:apache-2.0"]},
    {"id": "other/ft-gguf", "author": "other",
     "tags": ["gguf", "base_model:quantized:other/ft"]},
    {"id": "x/merge", "author": "x",
     "tags": ["base_model:merge:org/base", "base_model:merge:gone/thing"]},
]
DATASETS = [{"id": "squad", "tags": ["task_categories:question-answering", "license:cc-by-4.0"]}]
SPACES = [{"id": "org/demo", "author": "org", "sdk": "gradio", "models": ["org/base"],
           "datasets": ["squad"]}]


def _rows() -> GraphRows:
    models = [ModelRecord.from_api(d) for d in MODELS]
    rows = GraphRows.build(models, [DatasetRecord.from_api(d) for d in DATASETS],
                           [SpaceRecord.from_api(d) for d in SPACES],
                           IdResolver.from_records(models), Counter(), LineageStats())
    rows.dedupe_rels()
    return rows


def _dump(store) -> dict:
    """Every node and relation with its properties, sorted (the store's own Parquet export,
    one file per node table and relation pair): what 'the same graph' means."""
    files = store.export_parquet(store.path.parent / "dump")
    return {f.stem: sorted(tuple(str(v) for v in row.values())
                           for row in pq.read_table(f).to_pylist()) for f in files}


@pytest.fixture
def empty(tmp_path):
    def make(name: str):
        (tmp_path / name).mkdir()
        store = open_embedded(tmp_path / name / "graph.kuzu", read_only=False)
        store.ensure_schema()
        return store
    return make


def test_bulk_and_incremental_paths_make_the_same_graph(empty):
    bulk, incremental = empty("bulk"), empty("incremental")
    bulk_write(bulk, _rows())
    incremental.write(upsert_statements(incremental, _rows()))
    graph = _dump(bulk)
    assert graph == _dump(incremental)
    # what the records say is there, by type
    assert graph["rel-FINETUNE_OF-Model-Model"][0][:2] == ("other/ft", "org/base")
    assert graph["rel-QUANTIZED_OF-Model-Model"][0][:2] == ("other/ft-gguf", "other/ft")
    assert {r[:2] for r in graph["rel-MERGE_OF-Model-Model"]} == {("x/merge", "org/base"),
                                                               ("x/merge", "gone/thing")}
    assert {r[:2] for r in graph["rel-PUBLISHED-Account-Model"]} >= {("org", "org/base"),
                                                                  ("other", "other/ft")}
    assert ("org/base", "mit") in {r[:2] for r in graph["rel-HAS_LICENSE-Model-License"]}
    assert ("org/demo", "org/base") in {r[:2] for r in graph["rel-USES_MODEL-Space-Model"]}
    bulk.close()
    incremental.close()


def test_an_unknown_parent_is_a_stub_node(empty):
    store = empty("g")
    bulk_write(store, _rows())
    stubs = store.rows("MATCH (m:Model) WHERE m.stub = true RETURN m.id AS id")
    assert [r["id"] for r in stubs] == ["gone/thing"]
    store.close()


def test_incremental_statements_are_idempotent(empty):
    store = empty("g")
    store.write(upsert_statements(store, _rows()))
    once = _dump(store)
    store.write(upsert_statements(store, _rows()))
    assert _dump(store) == once
    store.close()


def test_cycle_edges_cut_each_cycle_once_and_deterministically():
    edges = [("a", "b"), ("b", "c"), ("c", "a"), ("d", "a"), ("e", "e")]
    cut = cycle_edges(edges)
    assert cut == cycle_edges(list(reversed(edges)))
    assert ("e", "e") in cut and len(cut) == 2
    left = [e for e in edges if e not in cut]
    assert not cycle_edges(left)  # what is left is acyclic
    assert cycle_edges([("a", "b"), ("b", "c")]) == set()


def test_drop_lineage_removes_only_the_named_edges():
    rows = _rows()
    before = {(r["src"], r["dst"]) for _, r in rows.lineage_edges()}
    assert rows.drop_lineage({("x/merge", "gone/thing"), ("no/such", "edge")}) == 1
    after = {(r["src"], r["dst"]) for _, r in rows.lineage_edges()}
    assert after == before - {("x/merge", "gone/thing")}


def test_a_mistyped_parameter_row_fails_loudly():
    types = {"id": "STRING", "downloads": "INT64", "createdAt": "TIMESTAMP"}
    assert _checked([{"id": "a", "downloads": 3, "createdAt": None}], types, "Model")
    for bad in ({"id": "a", "downloads": "3", "createdAt": None},
                {"id": "a", "downloads": True, "createdAt": None},
                {"id": "a", "downloads": 2 ** 70, "createdAt": None},
                {"id": 7, "downloads": 3, "createdAt": None}):
        with pytest.raises(TypeError, match="Model"):
            _checked([bad], types, "Model")


def test_rows_keep_relations_to_their_labels():
    rows = _rows()
    assert (Rel.TRAINED_ON, Label.MODEL, Label.DATASET) in rows.rels
    assert (Rel.HAS_TASK, Label.DATASET, Label.TASK) in rows.rels
    assert rows.refs[Label.ACCOUNT] >= {"org", "other", "x"}
