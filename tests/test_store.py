"""graph/store.py, graph/engine.py and the engine marker of graph/generations.py: the embedded
engine is chosen in one place, and a database written by another engine, storage format or
schema is refused with what to do, never handed to the engine. Kùzu and LadybugDB cannot share
a process, so the cross-engine checks run each engine in its own child process."""
from __future__ import annotations

import ast
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from graph import engine as E
from graph.errors import GraphError
from graph.generations import GRAPH_FILE, EngineMarker, Generations, GraphIncompatible, check_compatible, schema_version
from graph.store import open_embedded, open_store

REPO = Path(__file__).resolve().parent.parent
MINI_SNAPSHOT = REPO / "tests" / "data" / "mini_snapshot"
OTHER = {"ladybug": "kuzu", "kuzu": "ladybug"}

WRITE = """
import sys
from graph.generations import Generations
from graph.store import open_embedded
gens = Generations(sys.argv[1])
path = gens.new_staging("t", copy_current=False)
store = open_embedded(path, buffer_pool_mb=64)
store.write([("CREATE (:Model {id: 'org/m'})", {})])
store.checkpoint()
store.close()
print(gens.publish(path.parent))
"""
READ = """
import json, sys
from graph.errors import GraphError
from graph.store import open_store
try:
    store = open_store(read_only=True, root=sys.argv[1])
    print(json.dumps({"nodes": store.node_count()}))
except GraphError as e:
    print(json.dumps({"error": type(e).__name__, "message": str(e)}))
"""


def child(engine: str, code: str, *args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "HUBATLAS_ENGINE": engine, "PYTHONPATH": str(REPO)}
    env.pop("NEO4J_URI", None)
    return subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, **kw)


def ingest_cli(engine: str, root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HUBATLAS_ENGINE": engine, "HUBATLAS_DB": str(root),
           "HUBATLAS_KUZU_BUFFER_MB": "128"}
    env.pop("NEO4J_URI", None)
    return subprocess.run([sys.executable, "-m", "ingest", "run", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


# -- choosing the engine ---------------------------------------------------------------------
def test_engine_name_from_the_environment():
    assert E.engine_name({}) == E.DEFAULT_ENGINE == "ladybug"
    assert E.engine_name({"HUBATLAS_ENGINE": " Kuzu "}) == "kuzu"
    with pytest.raises(E.EngineUnavailable, match="choose one of: ladybug, kuzu"):
        E.engine_name({"HUBATLAS_ENGINE": "neo5"})


def test_the_configured_engine_is_loaded_once():
    e = E.engine()
    assert e is E.engine() and e.name == E.engine_name()
    assert e.version and e.storage_version > 0 and e.module.Database
    assert e.describe().startswith(f"{e.name} {e.version}")


def test_nothing_but_graph_engine_imports_an_engine():
    offenders = []
    for path in REPO.rglob("*.py"):
        if ".venv" in path.parts or path == REPO / "graph" / "engine.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] in ("kuzu", "ladybug") for n in names):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert offenders == []


def test_a_second_engine_in_one_process_is_refused_not_a_crash():
    for first, second in OTHER.items():
        code = (f"import {first}\nfrom graph.engine import engine, EngineUnavailable\n"
                "try:\n    engine()\nexcept EngineUnavailable as e:\n    print('refused:', e)")
        out = child(second, code)
        assert out.returncode == 0, out.stderr
        assert f"refused: cannot load {second}: {first} is already imported" in out.stdout


def test_switching_engines_within_a_process_is_refused(monkeypatch):
    current = E.engine()
    monkeypatch.setenv("HUBATLAS_ENGINE", OTHER[current.name])
    with pytest.raises(E.EngineUnavailable, match="already runs"):
        E.engine()


def test_sniff_reads_the_header(tmp_path):
    assert E.sniff(tmp_path / "absent") is None
    (tmp_path / "short").write_bytes(b"KUZU")
    assert E.sniff(tmp_path / "short") is None
    (tmp_path / "k").write_bytes(b"KUZU" + struct.pack("<Q", 39) + b"\0" * 20)
    (tmp_path / "l").write_bytes(b"LBUG" + struct.pack("<Q", 49) + b"\0" * 20)
    assert E.sniff(tmp_path / "k") == ("kuzu", 39) and E.sniff(tmp_path / "l") == ("ladybug", 49)


# -- markers -------------------------------------------------------------------------------
def test_a_generation_carries_the_marker_of_its_engine(mini_graph_copy):
    gens = Generations(mini_graph_copy)
    current = gens.current_path()
    marker = EngineMarker.read(current)
    assert marker == EngineMarker.current()
    assert marker.schema == schema_version() and len(marker.schema) == 12
    assert E.sniff(current) == (marker.engine, marker.storage_version)
    staging = gens.new_staging("copy")
    assert EngineMarker.read(staging) == marker  # the staging copy carries it


def test_a_database_from_before_markers_opens_and_gets_one(mini_graph_copy):
    current = Generations(mini_graph_copy).current_path()
    EngineMarker.path_for(current).unlink()
    check_compatible(current)  # the header matches the engine: opened as before
    store = open_store(read_only=True, root=mini_graph_copy)
    assert store.node_count() > 0
    store.close()
    assert EngineMarker.read(current) is None  # a reader writes nothing
    open_embedded(current, buffer_pool_mb=128).close()
    assert EngineMarker.read(current) == EngineMarker.current()


def _forge_schema(db: Path, schema: str = "0123456789ab") -> None:
    data = json.loads(EngineMarker.path_for(db).read_text())
    EngineMarker.path_for(db).write_text(json.dumps({**data, "schema": schema}))


def test_another_schema_is_refused_with_what_to_do(mini_graph_copy):
    gens = Generations(mini_graph_copy)
    current = gens.current_path()
    _forge_schema(current)
    with pytest.raises(GraphIncompatible) as err:
        open_store(read_only=True, root=mini_graph_copy)
    text = str(err.value)
    assert "graph schema 0123456789ab" in text and schema_version() in text
    assert "Re-ingest" in text and str(mini_graph_copy / "CURRENT") in text
    with pytest.raises(GraphIncompatible):  # ingest would copy it: refused before copying
        gens.new_staging("next")
    assert not list(mini_graph_copy.glob("staging-*"))


def test_a_file_of_no_known_engine_is_refused(tmp_path):
    db = tmp_path / "gen-1" / GRAPH_FILE
    db.parent.mkdir()
    db.write_bytes(b"SQLite format 3\0" + b"\0" * 100)
    with pytest.raises(GraphIncompatible, match="not a database of any known engine"):
        open_embedded(db, read_only=True)


def test_a_staging_left_by_another_engine_is_discarded(tmp_path):
    other = OTHER[E.engine().name]
    staging = tmp_path / "staging-old"
    staging.mkdir()
    (staging / GRAPH_FILE).write_bytes(E.ENGINES[other].magic + struct.pack("<Q", 7) + b"\0" * 8)
    gens = Generations(tmp_path)
    assert gens.pending_staging() is None and not staging.exists()


def test_the_app_says_what_to_do(mini_graph_copy, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    _forge_schema(Generations(mini_graph_copy).current_path())
    monkeypatch.setenv("HUBATLAS_DB", str(mini_graph_copy))
    monkeypatch.delenv("HUBATLAS_SNAPSHOT", raising=False)
    st.cache_data.clear()
    st.cache_resource.clear()
    try:
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
        assert not at.exception, [e.value for e in at.exception]
        errors = " ".join(e.value for e in at.error)
        assert "could not be opened" in errors and "Re-ingest" in errors
    finally:
        st.cache_data.clear()
        st.cache_resource.clear()


# -- the two engines' files, both directions -------------------------------------------------
@pytest.mark.parametrize("writer", ["kuzu", "ladybug"])
def test_a_folder_of_the_other_engine_is_reported_then_rebuilt(writer, tmp_path):
    reader = OTHER[writer]
    root = tmp_path / "graph"
    wrote = child(writer, WRITE, str(root))
    assert wrote.returncode == 0, wrote.stderr
    current = (root / "CURRENT").read_text()
    assert json.loads(child(writer, READ, str(root)).stdout) == {"nodes": 1}

    seen = json.loads(child(reader, READ, str(root)).stdout)
    assert seen["error"] == "GraphIncompatible"
    version = EngineMarker.read(root / current / GRAPH_FILE).version
    assert f"written by {writer} {version}" in seen["message"]
    assert f"this app runs {reader} " in seen["message"]
    assert f"HUBATLAS_ENGINE={writer}" in seen["message"] and "Re-ingest" in seen["message"]

    # ingest refuses too, cleanly, and changes nothing
    run = ingest_cli(reader, root, "--snapshot", str(MINI_SNAPSHOT), "--limit", "20")
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "Re-ingest" in run.stderr and (root / "CURRENT").read_text() == current
    assert not list(root.glob("staging-*"))

    # doing what the message says: CURRENT aside, and the next ingest is a first load
    (root / "CURRENT").rename(root / f"CURRENT.{writer}")
    run = ingest_cli(reader, root, "--snapshot", str(MINI_SNAPSHOT), "--limit", "20")
    assert run.returncode == 0, run.stderr
    rebuilt = json.loads(child(reader, READ, str(root)).stdout)
    assert rebuilt["nodes"] > 20
    marker = EngineMarker.read(Generations(root).current_path())
    assert marker.engine == reader


def test_open_embedded_rejects_an_unknown_engine(tmp_path, monkeypatch):
    code = ("from graph.errors import GraphError\nfrom graph.store import open_embedded\n"
            "try:\n    open_embedded('x/graph.kuzu')\nexcept GraphError as e:\n    print(e)")
    out = child("neo5", code)
    assert out.returncode == 0 and "HUBATLAS_ENGINE='neo5' is not an embedded engine" in out.stdout
    assert issubclass(E.EngineUnavailable, GraphError) and issubclass(GraphIncompatible,
                                                                     GraphError)
