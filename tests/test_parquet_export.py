"""graph/parquet_export.py and `python -m graph export --parquet DIR` on the mini graph:
counts match the graph, the portable path writes what the engine's COPY writes, and the
files load back into an empty graph."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from graph import queries as q
from graph.kuzu_store import KuzuStore
from graph.parquet_export import export_graph_parquet
from graph.schema import NODES, RELS

REPO = Path(__file__).resolve().parent.parent


def _cli(*args, db: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HUBATLAS_DB": str(db)}
    env.pop("NEO4J_URI", None)
    return subprocess.run([sys.executable, "-m", "graph", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli_exports_every_table_and_it_loads_back(mini_graph_root, mini_store, tmp_path):
    out = tmp_path / "parquet"
    done = _cli("export", "--parquet", str(out), db=mini_graph_root)
    assert done.returncode == 0, done.stderr
    assert "exported" in done.stdout and "kuzu COPY" in done.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    nodes, rels = q.count_nodes(mini_store), q.count_rels(mini_store)
    for spec in NODES:
        assert manifest["files"][f"node-{spec.label.value}.parquet"]["rows"] == \
            nodes[spec.label.value]
    for spec in RELS:
        total = sum(manifest["files"][f"rel-{spec.rel.value}-{a.value}-{b.value}.parquet"]["rows"]
                    for a, b in spec.pairs)
        assert total == rels[spec.rel.value], spec.rel
    # the layout is the one KuzuStore.import_parquet reads: load into an empty graph
    (tmp_path / "fresh").mkdir()
    fresh = KuzuStore(tmp_path / "fresh" / "graph.kuzu", read_only=False)
    try:
        fresh.import_parquet(out)
        assert q.count_nodes(fresh) == nodes and q.count_rels(fresh) == rels
        assert q.family_size(fresh, "microsoft/phi-2") == q.family_size(mini_store,
                                                                        "microsoft/phi-2")
    finally:
        fresh.close()


def test_portable_path_writes_the_same_rows(mini_store, tmp_path):
    native = export_graph_parquet(mini_store, tmp_path / "native")
    portable = export_graph_parquet(mini_store, tmp_path / "portable", native=False,
                                    page_rows=97)  # several pages per table
    assert native.engine == "kuzu COPY" and portable.engine == "kuzu"
    assert {k: v["rows"] for k, v in native.files.items()} == \
        {k: v["rows"] for k, v in portable.files.items()}
    for name in ("node-Model.parquet", "rel-FINETUNE_OF-Model-Model.parquet",
                 "rel-OBSERVED_IN-Model-IngestRun.parquet", "node-IngestRun.parquet"):
        a = pd.read_parquet(tmp_path / "native" / name)
        b = pd.read_parquet(tmp_path / "portable" / name)
        assert list(a.columns) == list(b.columns)
        key = ["from", "to"] if "from" in a else ["id"]
        a = a.sort_values(key).reset_index(drop=True).astype(str)
        b = b.sort_values(key).reset_index(drop=True).astype(str)
        pd.testing.assert_frame_equal(a, b)


def test_native_export_refuses_a_quoted_folder(mini_store, tmp_path):
    with pytest.raises(ValueError, match="quote"):
        export_graph_parquet(mini_store, tmp_path / "it's")
    report = export_graph_parquet(mini_store, tmp_path / "it's", native=False)
    assert report.rows > 1000


def test_cli_on_an_empty_graph_says_so(tmp_path):
    done = _cli("export", "--parquet", str(tmp_path / "out"), db=tmp_path / "empty")
    assert done.returncode != 0 and "no graph yet" in done.stderr
    assert _cli("--help", db=tmp_path).stdout.count("export") >= 1


@pytest.fixture(scope="module")
def mini_store(mini_graph_root):
    from graph.store import open_store

    store = open_store(read_only=True, root=mini_graph_root)
    yield store
    store.close()
