"""The Cypher console: the lexical first filter, the sandboxed runner behind it, caps and
limits. (The hostile corpus by family is in tests/test_console_sandbox.py.)"""
from __future__ import annotations

import pandas as pd
import pytest

from graph import queries as q
from graph.errors import GraphError, QueryError, QueryRefused, QueryTimeout
from graph.readonly import EXAMPLES, check_read_only, run_console_query, schema_overview
from graph.sandbox import ConsoleFailure, ConsoleSandbox, SandboxTarget

#: (description, query): every one must be refused by the guard
ATTACKS = [
    ("create", "CREATE (:Model {id: 'evil'})"),
    ("create after match", "MATCH (m:Model) WITH m LIMIT 1 CREATE (:Model {id: 'evil'})"),
    ("merge", "MERGE (m:Model {id: 'evil'}) RETURN m"),
    ("set", "MATCH (m:Model) SET m.likes = 0"),
    ("set lower case", "match (m:Model) set m.likes = 0"),
    ("set mixed case", "MaTcH (m:Model) sEt m.likes = 0"),
    ("delete", "MATCH (m:Model) DELETE m"),
    ("detach delete", "MATCH (m:Model) DETACH DELETE m"),
    ("delete relation", "MATCH ()-[e:FINETUNE_OF]->() DELETE e"),
    ("remove", "MATCH (m:Model) REMOVE m.likes"),
    ("foreach", "MATCH (m:Model) FOREACH (x IN [1] | SET m.likes = x)"),
    ("load csv (neo4j)", "LOAD CSV FROM 'file:///etc/passwd' AS line RETURN line"),
    ("load from (kuzu)", "LOAD FROM '/etc/passwd' RETURN *"),
    ("load extension", "LOAD EXTENSION json"),
    ("copy from", "COPY Model FROM 'models.csv'"),
    ("copy to", "COPY (MATCH (m:Model) RETURN m.id) TO '/tmp/out.csv'"),
    ("call table function", "CALL show_tables() RETURN *"),
    ("call procedure (neo4j)", "CALL db.labels()"),
    ("call subquery", "MATCH (m) CALL { WITH m CREATE (:X) } RETURN m"),
    ("call after return-ish",
     "MATCH (m:Model) WITH m CALL apoc.do.when(true, 'x', 'y') YIELD value RETURN value"),
    ("install", "INSTALL httpfs"),
    ("attach", "ATTACH 'other.kuzu' AS other (dbtype kuzu)"),
    ("detach db", "DETACH other"),
    ("use", "USE other MATCH (n) RETURN n"),
    ("export", "EXPORT DATABASE '/tmp/dump'"),
    ("import", "IMPORT DATABASE '/tmp/dump'"),
    ("drop table", "DROP TABLE Model"),
    ("alter table", "ALTER TABLE Model ADD evil STRING"),
    ("create index (neo4j)", "CREATE INDEX FOR (m:Model) ON (m.likes)"),
    ("create macro", "CREATE MACRO evil(x) AS x"),
    ("comment on", "COMMENT ON TABLE Model IS 'evil'"),
    ("begin", "BEGIN TRANSACTION"),
    ("commit", "COMMIT"),
    ("checkpoint", "CHECKPOINT"),
    ("profile runs the query", "PROFILE MATCH (m:Model) SET m.likes = 0"),
    ("show (neo4j admin)", "SHOW DATABASES"),
    ("grant", "GRANT ALL ON DATABASE * TO evil"),
    ("multiple statements", "MATCH (m:Model) RETURN m.id LIMIT 1; MATCH (m:Model) DELETE m"),
    ("multiple read statements", "RETURN 1; RETURN 2"),
    ("statement after comment", "RETURN 1 /* harmless */; DROP TABLE Model"),
    ("line comment hides nothing", "MATCH (m:Model) // just a comment\nDETACH DELETE m"),
    ("block comment splits nothing", "MATCH (m:Model) /* x */ DELETE /* y */ m"),
    ("keyword glued to comment", "MATCH (m:Model)/**/DELETE/**/m"),
    ("keyword after newline and tabs", "MATCH (m:Model)\n\t\tDELETE m"),
    ("unterminated comment", "MATCH (m:Model) RETURN m /* DELETE m"),
    ("unterminated string", "MATCH (m:Model) WHERE m.id = 'x RETURN m"),
    ("escaped quote does not end the string, then a write",
     "MATCH (m:Model) WHERE m.id = 'a\\'' DELETE m"),
    ("full-width letters", "ＭＡＴＣＨ (m:Model) ＤＥＬＥＴＥ m"),
    ("cyrillic homoglyph", "MATCH (m:Model) DЕLETE m"),  # the E is U+0415
    ("zero-width joiner inside a keyword", "MATCH (m:Model) DEL\u200dETE m"),
    ("non-breaking space", "MATCH\u00a0(m:Model) RETURN m"),
    ("does not start with a read clause", "UNWIND [1] AS x CREATE (:Model {id: 'evil'})"),
    ("starts with garbage", "x MATCH (m) RETURN m"),
    ("empty", "   "),
    ("only a comment", "// nothing"),
    ("Kùzu reads `/* **/` as still open: the payload is code to the engine",
     "/* **/ ' */ LOAD FROM \"/etc/passwd\" RETURN * // ' RETURN 1"),
    ("Kùzu reads `/* **/` as still open: a second statement",
     "RETURN 1 /* **/ */ ; CHECKPOINT"),
    ("a carriage return ends a line comment", "RETURN 1 // x\r; CHECKPOINT"),
]

#: queries with write keywords where they are harmless: inside literals, comments, as keys
ALLOWED = [
    ("keyword in a single-quoted string",
     "MATCH (m:Model) WHERE m.id = 'CREATE DELETE; DROP TABLE Model' RETURN count(m) AS n", 0),
    ("keyword in a double-quoted string",
     'MATCH (m:Model) WHERE m.id = "x; DETACH DELETE m" RETURN count(m) AS n', 0),
    ("escaped quotes inside a string",
     "MATCH (m:Model) WHERE m.id = 'it\\'s; SET' RETURN count(m) AS n", 0),
    ("a 'write' inside a string whose quote is escaped: the engine reads it the same way",
     'MATCH (m:Model) WHERE m.id = "a\\" DELETE m //" RETURN count(m) AS n', 0),
    ("keyword in a comment", "MATCH (m:Model) /* CREATE; DELETE */ RETURN count(m) AS n", None),
    ("keyword in a line comment", "MATCH (m:Model) RETURN count(m) AS n // then DROP it", None),
    ("keyword as a quoted alias", "MATCH (m:Model) RETURN count(m) AS `SET`", None),
    ("trailing semicolon", "MATCH (m:Model) RETURN count(m) AS n;", None),
    ("trailing semicolon and comment", "MATCH (m:Model) RETURN count(m) AS n; // done", None),
    ("lower case read", "match (m:Model) return count(m) as n", None),
    ("non-ASCII inside a string",
     "MATCH (m:Model) WHERE m.id = 'ＤＥＬＥＴＥ' RETURN count(m) AS n", 0),
    ("var-length range", "MATCH (c:Model)-[:FINETUNE_OF*1..2]->(p:Model {id: 'microsoft/phi-2'}) "
                         "RETURN count(DISTINCT c) AS n", None),
    ("STARTS WITH is not START", "MATCH (m:Model) WHERE m.id STARTS WITH 'microsoft/' "
                                 "RETURN count(m) AS n", None),
    ("optional match", "OPTIONAL MATCH (m:Model {id: 'nope'}) RETURN m.id AS id", None),
]

#: accepted by the guard, not runnable on our schema (no such property)
GUARD_ONLY = [
    ("keyword as a property key", "MATCH (m:Model) RETURN m.set, m . delete, m.CALL"),
    ("keyword in a backtick label", "MATCH (m:`CREATE`) RETURN m"),
]

#: write statements sent straight to the engine (no guard): the read-only database refuses
ENGINE_WRITES = [
    "CREATE (:Model {id: 'evil'})",
    "MERGE (m:Model {id: 'evil'}) RETURN m",
    "MATCH (m:Model) SET m.likes = 0",
    "MATCH (m:Model) DETACH DELETE m",
    "MATCH ()-[e:FINETUNE_OF]->() DELETE e",
    "MATCH (m:Model) REMOVE m.likes",
    "DROP TABLE Model",
    "ALTER TABLE Model ADD evil STRING",
    "CREATE NODE TABLE Evil(id STRING, PRIMARY KEY (id))",
    "COPY Model FROM '/nonexistent.csv'",
]


@pytest.fixture(scope="module")
def console(mini_graph_root):
    """The console's runner over the mini graph (one warm worker for the module)."""
    with ConsoleSandbox(SandboxTarget.current(mini_graph_root)) as box:
        yield box


def _fingerprint(store) -> tuple:
    """Everything a write could change, cheaply: counts plus a digest of model likes."""
    likes = store.rows("MATCH (m:Model) RETURN sum(m.likes) AS s, count(m.license) AS l")[0]
    return (tuple(sorted(q.count_nodes(store).items())),
            tuple(sorted(q.count_rels(store).items())), likes["s"], likes["l"])


@pytest.mark.parametrize("name,query", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_guard_refuses(name, query):
    with pytest.raises(QueryRefused) as info:
        check_read_only(query)
    assert str(info.value).startswith("Refused:")


@pytest.mark.parametrize("name,query", [a[:2] for a in ALLOWED] + GUARD_ONLY,
                         ids=[a[0] for a in ALLOWED + GUARD_ONLY])
def test_guard_allows_reads(name, query):
    statement = check_read_only(query)
    assert query.startswith(statement) and not statement.endswith(";")


def test_refusal_names_the_keyword():
    with pytest.raises(QueryRefused, match="DETACH"):
        check_read_only("MATCH (m) DETACH DELETE m")
    with pytest.raises(QueryRefused, match="multiple statements"):
        check_read_only("RETURN 1; RETURN 2")
    with pytest.raises(QueryRefused, match="U\\+0415"):
        check_read_only("MATCH (m:Model) DЕLETE m")


def test_attacks_leave_the_graph_unchanged(mini_store, console):
    before = _fingerprint(mini_store)
    for name, query in ATTACKS:
        with pytest.raises(QueryRefused):
            run_console_query(console, query, row_cap=10, timeout_s=5)
    assert _fingerprint(mini_store) == before


@pytest.mark.parametrize("query", ENGINE_WRITES)
def test_engine_is_read_only_too(mini_store, query):
    """Without the lexical filter (`store.run_read_only` runs a sandboxed worker with the
    engine's plan check only), a write is still refused (or, for REMOVE, which Kùzu does not
    parse, fails to parse), and nothing changes."""
    before = _fingerprint(mini_store)
    assert mini_store.read_only
    with pytest.raises(QueryRefused if "REMOVE" not in query else GraphError):
        mini_store.run_read_only(query, None, row_cap=10, timeout_s=5)
    assert _fingerprint(mini_store) == before


@pytest.mark.parametrize("name,query,expected", ALLOWED, ids=[a[0] for a in ALLOWED])
def test_allowed_queries_run(console, name, query, expected):
    result = run_console_query(console, query, row_cap=10, timeout_s=10)
    assert isinstance(result.frame, pd.DataFrame)
    if expected is not None:
        assert result.frame.iloc[0, 0] == expected


def test_row_cap_and_truncation(console, mini_store):
    result = run_console_query(console, "MATCH (m:Model) RETURN m.id AS id", row_cap=25)
    assert len(result.frame) == 25 and result.truncated
    result = run_console_query(console, "MATCH (m:Model) RETURN m.id AS id LIMIT 5",
                               row_cap=25)
    assert len(result.frame) == 5 and not result.truncated
    with pytest.raises(ValueError):
        run_console_query(console, "RETURN 1", row_cap=0)
    # a store works too: a one-off worker over the same file
    result = run_console_query(mini_store, "MATCH (m:Model) RETURN m.id AS id", row_cap=3)
    assert len(result.frame) == 3 and result.truncated


def test_time_limit(console):
    # ~10^8 filtered rows streamed (~1 s of CPU on 2 cores, ~200 MB); interrupted at 0.1 s
    slow = ("MATCH (a:Model), (b:Model), (c:Model) WHERE a.likes + b.likes + c.likes > -1 "
            "RETURN count(*) AS n")
    with pytest.raises(QueryTimeout):
        run_console_query(console, slow, row_cap=10, timeout_s=0.1)
    # the console answers afterwards, without the limit
    assert run_console_query(console, "RETURN 1 AS x").frame.iloc[0, 0] == 1


def test_engine_errors_are_query_errors(console):
    with pytest.raises(QueryError):
        run_console_query(console, "MATCH (m:NoSuchLabel) RETURN m")


def test_examples_pass_the_guard_and_run(console):
    for name, query in EXAMPLES.items():
        result = run_console_query(console, query, row_cap=50)
        assert len(result.frame.columns) >= 1, name


def test_schema_overview_lists_every_label_and_relation():
    from graph.schema import Label, Rel

    nodes, rels = schema_overview()
    assert set(nodes["label"]) == {label.value for label in Label}
    assert set(rels["type"]) == {rel.value for rel in Rel}


# -- the first filter runs before anything starts ----------------------------------------------
def test_refusals_start_no_worker(tmp_path):
    """The lexical filter and the text limits run in the app, before any worker exists: a
    console over a graph that cannot even be opened refuses every attack the same way, and
    only an accepted query gets as far as starting a worker (which then fails to open)."""
    target = SandboxTarget.embedded(tmp_path / "missing" / "graph.kuzu")
    with ConsoleSandbox(target, warm=False) as box:
        for name, query in ATTACKS:
            with pytest.raises(QueryRefused):
                box.run(query)
            assert box.workers() == [], name
        with pytest.raises(ConsoleFailure, match="could not open the graph"):
            box.run("MATCH (m:Model) RETURN count(m)")


def test_neo4j_store_read_only_path_uses_read_access_with_timeout():
    """`Neo4jStore.run_read_only` (a store API; the console itself goes through a worker):
    READ access mode, the server-side timeout, the row cap."""
    import neo4j

    from graph import neo4j_store

    driver = _FakeDriver()
    store = neo4j_store.Neo4jStore(driver)
    frame = store.run_read_only("MATCH (n) RETURN n.x AS x", None, row_cap=5, timeout_s=2.5)
    assert len(frame) == 5
    sessions = [e[1] for e in driver.log if e[0] == "session"]
    assert sessions and all(s.get("default_access_mode") == neo4j.READ_ACCESS for s in sessions)
    timeouts = [e[1] for e in driver.log if e[0] == "begin"]
    assert (timeouts == [2.5]) or any(e[0] == "execute_read" for e in driver.log)


class _FakeResult:
    def __init__(self, rows):
        self._rows = rows

    def keys(self):
        return ["x"]

    def __iter__(self):
        for r in self._rows:
            yield type("Rec", (), {"values": lambda self, r=r: [r]})()


class _FakeTx:
    def __init__(self, log):
        self.log = log

    def run(self, query, params):
        self.log.append(("run", query))
        return _FakeResult(range(20))

    def rollback(self):
        self.log.append(("rollback",))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _FakeSession:
    def __init__(self, log, kwargs):
        self.log = log
        log.append(("session", kwargs))

    def begin_transaction(self, timeout=None, **kwargs):
        self.log.append(("begin", timeout))
        return _FakeTx(self.log)

    def execute_read(self, work, *args, **kwargs):
        self.log.append(("execute_read",))
        return work(_FakeTx(self.log), *args, **kwargs)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _FakeDriver:
    def __init__(self):
        self.log: list[tuple] = []

    def session(self, **kwargs):
        return _FakeSession(self.log, kwargs)

    def close(self):
        pass
