"""The console's sandbox on the real engine: every hostile family, every legitimate shape.

Each hostile input runs twice: through the whole console (text limits, the lexical first
filter, the engine's plan, the engine, the operating system) and with the lexical filter
switched off, which proves that the engine's plan and the worker's lock-down decide on
their own. Nothing hostile ever returns rows; nothing is written; the graph still opens and
`python -m ingest status` still works afterwards; the app's own connection never waits.

`HOSTILE` is the corpus the report's table counts (`python -m bench.console` prints it).
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from graph.errors import QueryError, QueryRefused, QueryTimeout
from graph.generations import Generations
from graph.readonly import EXAMPLES
from graph.sandbox import (
    ConsoleBusy,
    ConsoleSandbox,
    QueryOutOfMemory,
    ResultTooLarge,
    SandboxLimits,
    SandboxTarget,
    WorkerCrashed,
    check_text_limits,
)
from graph.sandbox_plan import (
    KUZU_READ_OPERATORS,
    PlanOperator,
    PlanUnreadable,
    check_kuzu_plan,
    check_neo4j_plan,
    kuzu_plan_operators,
    neo4j_plan_operators,
)

REPO = Path(__file__).resolve().parent.parent

# Tokens filled in at run time: @PPID@ the app's pid (the worker's parent), @OUT@ a folder the
# test watches for files, @GRAPH@ the live database file.
_SMUGGLE = "/* **/ ' */ {payload} // ' RETURN 1"  # the lexers' disagreement on `/* **/`

#: (family, name, query): none may return rows, write a file or change the graph
HOSTILE: list[tuple[str, str, str]] = [
    # -- comment, string and identifier tricks (the payload is hidden from one lexer) ------
    ("tricks", "comment smuggles LOAD FROM (the issue's finding)", _SMUGGLE.format(
        payload='LOAD FROM "/etc/passwd" (file_format="csv", header=false, delim=":") '
                'RETURN *')),
    ("tricks", "comment smuggles LOAD FROM environ", _SMUGGLE.format(
        payload='LOAD FROM "/proc/@PPID@/environ" (file_format="csv", header=false) RETURN *')),
    ("tricks", "comment smuggles CHECKPOINT", _SMUGGLE.format(payload="CHECKPOINT")),
    ("tricks", "comment smuggles COPY TO", _SMUGGLE.format(
        payload='COPY (MATCH (m:Model) RETURN m.id) TO "@OUT@/smuggled.csv"')),
    ("tricks", "comment smuggles ATTACH", _SMUGGLE.format(
        payload='ATTACH "@OUT@/other.kuzu" AS other (dbtype kuzu)')),
    ("tricks", "comment smuggles EXPORT", _SMUGGLE.format(payload='EXPORT DATABASE "@OUT@/d"')),
    ("tricks", "star-pair comment then a second statement",
     "RETURN 1 /* **/ */ ; CHECKPOINT"),
    ("tricks", "line comment ends at a carriage return", "RETURN 1 // x\r; CHECKPOINT"),
    ("tricks", "backtick identifier with an escaped backtick",
     "MATCH (m:`Mo``del`) RETURN 1; CHECKPOINT"),
    ("tricks", "keyword glued to comments", "MATCH (m:Model)/**/DETACH/**/DELETE/**/m"),
    ("tricks", "lower and mixed case", "lOaD fRoM '/etc/passwd' (file_format='csv') return *"),
    ("tricks", "full-width letters", "ＬＯＡＤ FROM '/etc/passwd' RETURN *"),
    ("tricks", "non-breaking space between keywords",
     "LOAD\u00a0FROM '/etc/passwd' (file_format='csv') RETURN *"),
    ("tricks", "unicode escape in a path", "LOAD FROM '\\u002fetc\\u002fpasswd' "
                                          "(file_format='csv') RETURN *"),
    ("tricks", "forged plan box in an alias (adds an operator, hides none)",
     "RETURN 1 AS `┌─────────┐`, 2 AS `│ LOAD[9] │`"),
    ("tricks", "line break in a name (shifts the plan drawing)",
     "MATCH (m:Model) RETURN m.id AS `a\nSCAN_NODE_TABLE[0]` LIMIT 1"),
    # -- file reads --------------------------------------------------------------------------
    ("file reads", "LOAD FROM /etc/passwd (csv)",
     "LOAD FROM '/etc/passwd' (file_format='csv', header=false, delim=':') RETURN *"),
    ("file reads", "LOAD FROM /proc/self/environ",
     "LOAD FROM '/proc/self/environ' (file_format='csv', header=false) RETURN *"),
    ("file reads", "LOAD FROM the app's environ",
     "LOAD FROM '/proc/@PPID@/environ' (file_format='csv', header=false) RETURN *"),
    ("file reads", "LOAD FROM the app's cmdline",
     "LOAD FROM '/proc/@PPID@/cmdline' (file_format='csv', header=false) RETURN *"),
    ("file reads", "LOAD WITH HEADERS",
     "LOAD WITH HEADERS (line STRING) FROM '/etc/passwd' (file_format='csv') RETURN *"),
    ("file reads", "LOAD FROM parquet", "LOAD FROM '/etc/passwd' (file_format='parquet') "
                                        "RETURN *"),
    ("file reads", "LOAD FROM json", "LOAD FROM '/etc/hostname' (file_format='json') RETURN *"),
    ("file reads", "LOAD FROM a glob", "LOAD FROM '/etc/*.conf' (file_format='csv') RETURN *"),
    ("file reads", "LOAD FROM the live graph file",
     "LOAD FROM '@GRAPH@' (file_format='csv') RETURN *"),
    ("file reads", "LOAD FROM inside a read",
     "MATCH (m:Model) WITH m LIMIT 1 LOAD FROM '/etc/passwd' (file_format='csv') RETURN *"),
    ("file reads", "LOAD FROM a URL", "LOAD FROM 'http://127.0.0.1:9/x.csv' RETURN *"),
    ("file reads", "LOAD CSV (Neo4j)", "LOAD CSV FROM 'file:///etc/passwd' AS line RETURN line"),
    ("file reads", "IMPORT DATABASE", "IMPORT DATABASE '/etc'"),
    ("file reads", "COPY FROM a file", "COPY Model FROM '/etc/passwd'"),
    # -- file writes ----------------------------------------------------------------------------
    ("file writes", "COPY TO csv", "COPY (MATCH (m:Model) RETURN m.id) TO '@OUT@/x.csv'"),
    ("file writes", "COPY TO parquet", "COPY (MATCH (m:Model) RETURN m.id) TO '@OUT@/x.parquet'"),
    ("file writes", "COPY TO relative path", "COPY (RETURN 1) TO 'relative.csv'"),
    ("file writes", "EXPORT DATABASE", "EXPORT DATABASE '@OUT@/dump'"),
    ("file writes", "EXPORT DATABASE parquet", "EXPORT DATABASE '@OUT@/dump2' (format='parquet')"),
    # -- procedures and table functions -------------------------------------------------------
    ("procedures", "CALL show_tables()", "CALL show_tables() RETURN *"),
    ("procedures", "CALL table_info()", "CALL table_info('Model') RETURN *"),
    ("procedures", "CALL current_setting()", "CALL current_setting('threads') RETURN *"),
    ("procedures", "CALL db_version()", "CALL db_version() RETURN *"),
    ("procedures", "CALL show_functions()", "CALL show_functions() RETURN *"),
    ("procedures", "CALL show_connection()", "CALL show_connection('FINETUNE_OF') RETURN *"),
    ("procedures", "CALL a setting", "CALL threads=64"),
    ("procedures", "CALL read_ftable()", "CALL read_ftable() RETURN *"),
    ("procedures", "table function after UNWIND", "UNWIND [1] AS x CALL show_tables() RETURN *"),
    ("procedures", "CALL db.labels() (Neo4j)", "CALL db.labels()"),
    ("procedures", "CALL apoc (Neo4j)", "CALL apoc.load.json('file:///etc/passwd')"),
    ("procedures", "CALL subquery with a write", "MATCH (m) CALL { WITH m CREATE (:X) } RETURN m"),
    # -- database and session commands --------------------------------------------------------
    ("session", "CHECKPOINT", "CHECKPOINT"),
    ("session", "BEGIN TRANSACTION", "BEGIN TRANSACTION"),
    ("session", "BEGIN TRANSACTION READ ONLY", "BEGIN TRANSACTION READ ONLY"),
    ("session", "COMMIT", "COMMIT"),
    ("session", "ROLLBACK", "ROLLBACK"),
    ("session", "ATTACH", "ATTACH '@OUT@/other.kuzu' AS other (dbtype kuzu)"),
    ("session", "ATTACH then USE", "ATTACH '@OUT@/other.kuzu' AS other (dbtype kuzu); USE other"),
    ("session", "USE", "USE other"),
    ("session", "DETACH", "DETACH other"),
    ("session", "INSTALL", "INSTALL httpfs"),
    ("session", "LOAD EXTENSION", "LOAD EXTENSION httpfs"),
    ("session", "LOAD EXTENSION from a path", "LOAD EXTENSION '/tmp/x.kuzu_extension'"),
    ("session", "UNINSTALL", "UNINSTALL httpfs"),
    ("session", "two statements", "RETURN 1; CHECKPOINT"),
    ("session", "two reads", "RETURN 1; RETURN 2"),
    ("session", "EXPLAIN (nested)", "EXPLAIN MATCH (m) RETURN m"),
    ("session", "PROFILE", "PROFILE MATCH (m) RETURN m"),
    # -- writes and schema changes --------------------------------------------------------------
    ("writes", "CREATE", "CREATE (:Model {id: 'evil'})"),
    ("writes", "MERGE", "MERGE (m:Model {id: 'evil'}) RETURN m"),
    ("writes", "SET", "MATCH (m:Model) SET m.likes = 0"),
    ("writes", "DELETE", "MATCH (m:Model) DELETE m"),
    ("writes", "DETACH DELETE", "MATCH (m:Model) DETACH DELETE m"),
    ("writes", "REMOVE", "MATCH (m:Model) REMOVE m.likes"),
    ("writes", "CREATE after a read", "MATCH (m:Model) WITH m LIMIT 1 CREATE (:Model {id: 'e'})"),
    ("writes", "DROP TABLE", "DROP TABLE Model"),
    ("writes", "ALTER TABLE", "ALTER TABLE Model ADD evil STRING"),
    ("writes", "CREATE NODE TABLE", "CREATE NODE TABLE Evil(id STRING, PRIMARY KEY (id))"),
    ("writes", "CREATE MACRO", "CREATE MACRO evil(x) AS x"),
    ("writes", "COMMENT ON", "COMMENT ON TABLE Model IS 'evil'"),
    ("writes", "CREATE SEQUENCE", "CREATE SEQUENCE evil"),
    # -- nesting and size -------------------------------------------------------------------------
    ("nesting", "3,000 parentheses (segfaulted the server)",
     "RETURN " + "(" * 3000 + "1" + ")" * 3000),
    ("nesting", "500 nested lists (hangs the parser)", "RETURN " + "[" * 500 + "1" + "]" * 500),
    ("nesting", "100 nested maps", "RETURN " + "{a: " * 100 + "1" + "}" * 100),
    ("nesting", "60 parentheses", "RETURN " + "(" * 60 + "1" + ")" * 60),
    ("nesting", "brackets inside a string still count", "RETURN '" + "(" * 40 + "' AS x"),
    ("nesting", "100,000 characters", "RETURN " + "+".join(["1"] * 50_000)),
    ("nesting", "2,500 NOTs (no brackets)", "RETURN " + "NOT " * 2500 + "true"),
    # -- allocation bombs (grew to 6-24 GB) -----------------------------------------------------
    ("allocation", "size(range(1, 3e8))", "RETURN size(range(1, 300000000)) AS n"),
    ("allocation", "UNWIND range(1, 1e9)", "UNWIND range(1, 1000000000) AS x RETURN count(x)"),
    ("allocation", "repeat('x', 2e9)", "RETURN size(repeat('x', 2000000000)) AS n"),
    ("allocation", "collect over a cross product",
     "MATCH (a:Model), (b:Model), (c:Model) RETURN size(collect(a.id + b.id + c.id)) AS n"),
    ("allocation", "list of huge strings",
     "UNWIND range(1, 1000) AS i RETURN size(collect(repeat('x', 10000000))) AS n"),
    ("allocation", "nested range lists",
     "UNWIND range(1, 100000) AS i RETURN sum(size(range(1, 100000 + i))) AS n"),
    ("allocation", "huge result rows", "UNWIND range(1, 200) AS i RETURN repeat('x', 5000000) "
                                       "AS s"),
    # -- runaway paths and CPU -------------------------------------------------------------------
    ("runaway", "any relation, 1..30 hops, undirected",
     "MATCH (a)-[*1..30]-(b) RETURN count(*) AS n"),
    ("runaway", "paths returned, 1..30 hops",
     "MATCH p = (a:Model)-[*1..30]-(b) RETURN p LIMIT 100000"),
    ("runaway", "all shortest paths everywhere",
     "MATCH p = (a)-[* ALL SHORTEST 1..30]-(b) RETURN count(*) AS n"),
    ("runaway", "four-way cross product",
     "MATCH (a:Model), (b:Model), (c:Model), (d:Model) WHERE a.likes + b.likes + c.likes + "
     "d.likes > -1 RETURN count(*) AS n"),
    ("runaway", "1e10 filtered pairs", "UNWIND range(1, 100000) AS a UNWIND range(1, 100000) "
                                       "AS b WITH a, b WHERE a + b = -1 RETURN count(*) AS n"),
]

#: legitimate reads of every shape: all must answer with rows
LEGIT: list[tuple[str, str]] = [
    *EXAMPLES.items(),
    ("aggregations", "MATCH (m:Model) RETURN count(*) AS n, avg(m.likes) AS a, "
                     "max(m.downloads) AS d, min(m.id) AS first, collect(m.id)[1] AS one"),
    ("distinct count per group", "MATCH (m:Model)-[:USES_LIBRARY]->(l:Library) RETURN l.id, "
                                 "count(DISTINCT m) AS n ORDER BY n DESC SKIP 1 LIMIT 3"),
    ("SKIP without ORDER BY", "MATCH (m:Model) RETURN m.id SKIP 5 LIMIT 5"),
    ("var-length count", "MATCH (c:Model)-[:FINETUNE_OF*1..3]->(p:Model) RETURN count(*) AS n"),
    ("var-length union of types",
     "MATCH p = (c:Model)-[:FINETUNE_OF|ADAPTER_OF*1..2]->(b:Model) "
     "RETURN length(p) AS hops, count(*) AS n"),
    ("shortest path", "MATCH p = (a:Model)-[:FINETUNE_OF* SHORTEST 1..5]->(b:Model) "
                      "RETURN length(p) AS hops LIMIT 3"),
    ("all shortest paths", "MATCH p = (a:Model)-[:FINETUNE_OF* ALL SHORTEST 1..5]->(b:Model) "
                           "RETURN length(p) AS hops LIMIT 3"),
    ("paths returned", "MATCH p = (a:Model)-[:FINETUNE_OF]->(b:Model) RETURN p LIMIT 2"),
    ("nodes and relations returned",
     "MATCH (a:Model)-[e:FINETUNE_OF]->(b:Model) RETURN a, e, b LIMIT 2"),
    ("OPTIONAL MATCH", "MATCH (m:Model) OPTIONAL MATCH (m)-[:TRAINED_ON]->(d:Dataset) "
                       "RETURN m.id, d.id LIMIT 5"),
    ("OPTIONAL MATCH alone", "OPTIONAL MATCH (m:Model {id: 'nope'}) RETURN m.id AS id"),
    ("UNION", "MATCH (m:Model) RETURN m.id AS id LIMIT 2 UNION "
              "MATCH (d:Dataset) RETURN d.id AS id LIMIT 2"),
    ("UNION ALL", "MATCH (m:Model) RETURN m.id AS id LIMIT 2 UNION ALL "
                  "MATCH (d:Dataset) RETURN d.id AS id LIMIT 2"),
    ("CASE", "MATCH (m:Model) RETURN CASE WHEN m.likes > 10 THEN 'hot' ELSE 'cold' END AS k, "
             "count(*) AS n"),
    ("EXISTS subquery", "MATCH (m:Model) WHERE EXISTS { MATCH (m)-[:FINETUNE_OF]->(:Model) } "
                        "RETURN count(m) AS n"),
    ("NOT EXISTS subquery", "MATCH (m:Model) WHERE NOT EXISTS { MATCH (m)-[:FINETUNE_OF]->() } "
                            "RETURN count(m) AS n"),
    ("COUNT subquery", "MATCH (m:Model) RETURN m.id, COUNT { MATCH (m)<-[:FINETUNE_OF]-(:Model) "
                       "} AS kids ORDER BY kids DESC LIMIT 3"),
    ("UNWIND and WITH", "UNWIND [1, 2, 3] AS x WITH x WHERE x > 1 RETURN sum(x) AS s"),
    ("RETURN only", "RETURN 1 AS x, 'a' AS y, [1, 2] AS z, {k: 1} AS m, NULL AS n"),
    ("dates", "RETURN date('2024-07-01') AS d, timestamp('2024-07-01 10:00:00') AS t, "
              "interval('3 days') AS i"),
    ("WITH aggregation filter", "MATCH (m:Model) WITH m.pipelineTag AS t, count(*) AS n "
                                "WHERE n > 1 RETURN t, n ORDER BY n DESC"),
    ("primary-key lookup", "MATCH (m:Model {id: 'microsoft/phi-2'}) RETURN m.id, m.likes"),
    ("string predicates", "MATCH (m:Model) WHERE m.id STARTS WITH 'micro' AND m.id CONTAINS "
                          "'phi' OR m.id ENDS WITH 'x' RETURN m.id"),
    ("regex", "MATCH (m:Model) WHERE m.id =~ '.*phi.*' RETURN m.id"),
    ("relation types", "MATCH (a:Model)-[r]->(b) RETURN label(r) AS t, count(*) AS n "
                       "ORDER BY t"),
    ("triangle (worst-case-optimal join)",
     "MATCH (a:Model)-[:FINETUNE_OF]->(b:Model), (a)-[:USES_LIBRARY]->(l:Library), "
     "(b)-[:USES_LIBRARY]->(l) RETURN count(*) AS n"),
    ("cross product", "MATCH (a:Library), (l:License) RETURN count(*) AS n"),
    ("list functions", "MATCH (m:Model) RETURN list_transform(m.tags, x -> upper(x))[1] AS t, "
                       "size(m.tags) AS n LIMIT 2"),
    ("DISTINCT", "MATCH (m:Model) RETURN DISTINCT m.pipelineTag AS t"),
    ("parameters-free IN list", "MATCH (m:Model) WHERE m.likes IN [1, 2, 3] RETURN count(*)"),
    ("undirected", "MATCH (a:Model)-[:FINETUNE_OF]-(b:Model) RETURN count(*) AS n"),
    ("keywords inside strings and comments", "MATCH (m:Model) /* CREATE; DELETE */ "
                                             "WHERE m.id <> 'LOAD FROM x; CHECKPOINT' "
                                             "RETURN count(m) AS n // DROP"),
    ("trailing semicolon", "MATCH (m:Model) RETURN count(m) AS n;"),
    ("ORDER BY then a second MATCH", "MATCH (m:Model) WITH m ORDER BY m.likes DESC LIMIT 10 "
                                     "MATCH (m)-[:USES_LIBRARY]->(l) RETURN m.id, l.id"),
    ("30 nested parentheses", "RETURN " + "(" * 30 + "1" + ")" * 30 + " AS x"),
    ("undirected var-length paths returned",
     "MATCH p = (a:Model {id: 'microsoft/phi-2'})-[*1..2]-(b) RETURN p LIMIT 3"),
    ("nodes and rels of paths", "MATCH p = (a:Model)-[:FINETUNE_OF*1..3]-(b) "
                                "RETURN nodes(p) AS n, rels(p) AS r LIMIT 3"),
    ("var-length relation list", "MATCH (a:Model)-[e*1..2]->(b) RETURN e LIMIT 3"),
    ("paths from one model", "MATCH p = (a:Model {id: 'microsoft/phi-2'})<-[*1..3]-(b:Model) "
                             "RETURN p LIMIT 3"),
    ("any labels", "MATCH (a)-[r]-(b) RETURN a, r, b LIMIT 3"),
    ("labels of every node", "MATCH (n) RETURN label(n) AS l, count(*) AS n ORDER BY l"),
    ("collect then size", "MATCH (m:Model)-[:TRAINED_ON]->(d) WITH d, collect(m.id) AS ms "
                          "RETURN d.id, size(ms) AS n ORDER BY n DESC LIMIT 3"),
    ("ORDER BY two keys, SKIP", "MATCH (m:Model) RETURN m.id ORDER BY m.likes DESC, m.id "
                                "SKIP 3 LIMIT 3"),
    ("WITH LIMIT then count", "MATCH (m:Model) WITH m LIMIT 10 RETURN count(*) AS n"),
    ("filter, WITH, MATCH again", "MATCH (a:Model) WHERE a.likes > 10 WITH a "
                                  "MATCH (a)-[:USES_LIBRARY]->(l) RETURN l.id, count(*) AS n"),
    ("timestamp comparison", "MATCH (m:Model) WHERE m.createdAt > timestamp('2023-01-01') "
                             "RETURN count(*) AS n"),
    ("two UNWINDs", "UNWIND [1, 2, 3] AS x UNWIND [4, 5] AS y RETURN x, y"),
    ("simple CASE", "MATCH (m:Model) RETURN m.id, CASE m.pipelineTag WHEN 'text-generation' "
                    "THEN 1 ELSE 0 END AS gen LIMIT 3"),
    ("OPTIONAL MATCH var-length", "MATCH (m:Model {id: 'microsoft/phi-2'}) "
                                  "OPTIONAL MATCH p = (m)<-[:FINETUNE_OF*1..2]-(d) "
                                  "RETURN count(p) AS n"),
    ("non-ASCII strings", "MATCH (m:Model) WHERE m.id IN ['é', '日本語テキスト', '😀', "
                          "'ＤＥＬＥＴＥ'] RETURN count(m) AS n, 'Grüße' AS greeting"),
]


def fill(query: str, *, ppid: int, out: Path, graph: Path) -> str:
    return (query.replace("@PPID@", str(ppid)).replace("@OUT@", str(out))
            .replace("@GRAPH@", str(graph)))


def outcome(run) -> tuple[str, str]:
    """(outcome, message) of one console call; outcome is 'ROWS' only if rows came back."""
    try:
        run()
    except QueryRefused as e:
        return f"refused ({getattr(e, 'layer', '?')})", str(e)
    except QueryTimeout as e:
        stopped = "worker was stopped" in str(e)
        return ("killed (wall clock)" if stopped else "stopped (engine timeout)"), str(e)
    except QueryOutOfMemory as e:
        return "killed (memory)", str(e)
    except WorkerCrashed as e:
        return "killed (crash)", str(e)
    except ResultTooLarge as e:
        return "error (result size)", str(e)
    except QueryError as e:
        text = str(e)
        if "bad_alloc" in text:
            return "error (address-space backstop)", text
        if "buffer pool is full" in text.lower():
            return "error (buffer pool full)", text
        if "cannot be created" in text or "Permission denied" in text:
            return "error (os: file access denied)", text
        return "error (engine)", text
    return "ROWS", ""


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def graph_root(mini_graph_root, tmp_path_factory) -> Path:
    """A private copy of the mini graph: attacks run against it, then it must still work."""
    import shutil

    root = tmp_path_factory.mktemp("console-graph") / "graph"
    shutil.copytree(mini_graph_root, root)
    return root


@pytest.fixture(scope="module")
def target(graph_root) -> SandboxTarget:
    return SandboxTarget.embedded(Generations(graph_root).current_path())


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("console-writes")


#: tight limits so the bombs and runaways end fast on a 2-core machine
FAST = SandboxLimits(timeout_s=3.0, max_rss_mb=1024, grace_s=1.0)


@pytest.fixture(scope="module")
def sandbox(target):
    with ConsoleSandbox(target, limits=FAST) as box:
        yield box


@pytest.fixture(scope="module")
def bare_sandbox(target):
    """The lexical first filter switched off: the engine's plan and the OS decide alone."""
    with ConsoleSandbox(target, limits=FAST, precheck=False) as box:
        yield box


def _fill(query, target, out_dir):
    return fill(query, ppid=os.getpid(), out=out_dir, graph=Path(target.path))


# -- hostile inputs -----------------------------------------------------------------------------
_IDS = [f"{fam}:{name}" for fam, name, _ in HOSTILE]

#: families whose every input must be *refused* (not merely fail): file access, commands
MUST_REFUSE = {"file reads", "file writes", "procedures", "session", "writes", "tricks"}
#: engine errors raised while parsing or binding, before anything runs
_BEFORE_RUNNING = ("Parser exception", "Binder exception", "Catalog exception")


@pytest.mark.parametrize("family,name,query", HOSTILE, ids=_IDS)
@pytest.mark.parametrize("mode", ["console", "engine-only"])
def test_hostile_input_gets_no_rows(family, name, query, mode, sandbox, bare_sandbox, target,
                                    out_dir):
    box = sandbox if mode == "console" else bare_sandbox
    text = _fill(query, target, out_dir)
    got, message = outcome(lambda: box.run(text, row_cap=50))
    assert got != "ROWS", f"{name}: rows came back ({mode})"
    if family in MUST_REFUSE:  # refused, or failed before anything ran (parse, bind)
        assert got.startswith(("refused", "error (os")) or (
            got == "error (engine)" and message.startswith(_BEFORE_RUNNING)), \
            f"{name}: {got}: {message}"
    if family == "nesting" and "characters" not in name and "NOT" not in name:
        assert got == "refused (limits)", f"{name}: {got}"
    assert "root:" not in message and "HF_TOKEN" not in message, message
    assert not list(out_dir.iterdir()), f"{name} wrote {list(out_dir.iterdir())}"
    assert not Path("/relative.csv").exists()


def test_no_hostile_input_changed_the_graph_and_it_still_opens(graph_root, sandbox, target):
    """Runs after the corpus (pytest keeps file order): the generation folder holds only
    the database file (no WAL or shadow file from a CHECKPOINT), the app opens it, and
    `python -m ingest status` works."""
    from graph.store import open_store

    for name, query in EXAMPLES.items():
        assert len(sandbox.run(query, row_cap=5).frame.columns), name
    live = Generations(graph_root).current_path()
    assert sorted(p.name for p in live.parent.iterdir() if p.name != "results") == [
        "graph.kuzu", "graph.kuzu.engine.json"]  # the graph and its engine marker, nothing else
    store = open_store(read_only=True, root=graph_root)
    try:
        assert store.node_count() > 0
        assert not store.rows("MATCH (m:Model {id: 'evil'}) RETURN m")
    finally:
        store.close()
    env = {k: v for k, v in os.environ.items() if k != "NEO4J_URI"}
    status = subprocess.run([sys.executable, "-m", "ingest", "status"], cwd=REPO, env={
        **env, "HUBATLAS_DB": str(graph_root)}, capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr
    assert "Model" in status.stdout


@pytest.mark.parametrize("name,query", LEGIT, ids=[n for n, _ in LEGIT])
@pytest.mark.parametrize("mode", ["console", "engine-only"])
def test_legitimate_reads_answer(name, query, mode, sandbox, bare_sandbox):
    box = sandbox if mode == "console" else bare_sandbox
    result = box.run(query, row_cap=50)
    assert len(result.frame.columns) >= 1
    assert set(result.operators) <= KUZU_READ_OPERATORS


def test_results_are_typed_and_capped(sandbox):
    r = sandbox.run("MATCH (m:Model) RETURN m.id AS id, m.likes AS likes, m AS node", row_cap=7)
    assert len(r.frame) == 7 and r.truncated and list(r.frame.columns) == ["id", "likes", "node"]
    assert isinstance(r.frame["node"].iloc[0], dict) and r.frame["node"].iloc[0]["_label"] == \
        "Model"
    r = sandbox.run("RETURN date('2024-07-01') AS d, 1.5 AS f, [1, 2] AS l", row_cap=5)
    import datetime as dt

    assert r.frame.iloc[0]["d"] == dt.date(2024, 7, 1) and r.frame.iloc[0]["l"] == [1, 2]
    assert not r.truncated
    with pytest.raises(ValueError):
        sandbox.run("RETURN 1", row_cap=0)


def test_parameters_are_passed(sandbox):
    r = sandbox.run("MATCH (m:Model) WHERE m.id = $id RETURN m.id AS id",
                    params={"id": "microsoft/phi-2"})
    assert r.frame["id"].tolist() == ["microsoft/phi-2"]


# -- the worker's isolation -------------------------------------------------------------------
def test_worker_environment_is_clean_and_locked_down(target, monkeypatch):
    """Secrets in the app's environment never reach the worker; the worker reports Landlock
    wherever the kernel has it."""
    from graph.sandbox_os import landlock_abi

    monkeypatch.setenv("HF_TOKEN", "hf_canary_sandbox_token")
    monkeypatch.setenv("NEO4J_PASSWORD", "canary-neo4j-password")
    with ConsoleSandbox(target, limits=FAST, precheck=False) as box:
        ready = box.start()
        assert box.isolation == ready["isolation"] and box.landlock_abi == ready["landlock_abi"]
        pid = box.workers()[0]
        environ = Path(f"/proc/{pid}/environ").read_bytes().decode()
        assert "canary" not in environ and "HF_TOKEN" not in environ
        assert set(k.split("=", 1)[0] for k in environ.split("\0") if k) <= {
            "PATH", "HOME", "PYTHONDONTWRITEBYTECODE", "PYTHONNOUSERSITE", "MALLOC_ARENA_MAX",
            "LANG", "LC_ALL", "TZ"}
        if landlock_abi() >= 1:
            assert ready["landlock_abi"] >= 1, ready
            got, message = outcome(lambda: box.run(
                "LOAD FROM '/proc/self/environ' (file_format='csv') RETURN *"))
            assert got == "refused (os)", message
        else:
            assert "no file isolation" in ready["isolation"]


def test_crash_of_the_worker_is_contained(target):
    """With the nesting limit lifted, 3,000 parentheses crash the engine's parser (a stack
    overflow): the worker dies, the caller gets WorkerCrashed or a timeout, the next query
    gets a fresh worker."""
    loose = SandboxLimits(timeout_s=40.0, max_depth=100_000, grace_s=2.0)
    with ConsoleSandbox(target, limits=loose, precheck=False) as box:
        first = box.workers()
        got, message = outcome(lambda: box.run("RETURN " + "(" * 3000 + "1" + ")" * 3000))
        assert got in ("killed (crash)", "killed (wall clock)"), (got, message)
        assert box.run("RETURN 1 AS x").frame.iloc[0, 0] == 1
        assert box.workers() and box.workers() != first


def test_rss_watchdog_kills_an_allocation_bomb(target):
    """Without the address-space backstop, the watchdog alone stops a query whose worker
    passes the memory ceiling; the worker is replaced."""
    limits = SandboxLimits(timeout_s=60.0, max_rss_mb=600, address_space_backstop=False)
    with ConsoleSandbox(target, limits=limits, precheck=False) as box:
        got, message = outcome(lambda: box.run("RETURN size(range(1, 300000000)) AS n"))
        assert got == "killed (memory)", (got, message)
        assert box.kills["memory"] == 1
        assert box.run("RETURN 2 AS x").frame.iloc[0, 0] == 2


def test_wall_clock_kill_covers_parsing(target):
    """500 nested lists keep the parser busy for minutes (no engine timeout applies to
    parsing): the worker is killed at timeout + grace."""
    limits = SandboxLimits(timeout_s=1.0, max_depth=100_000, grace_s=0.5)
    with ConsoleSandbox(target, limits=limits, precheck=False) as box:
        started = time.monotonic()
        got, _ = outcome(lambda: box.run("RETURN " + "[" * 500 + "1" + "]" * 500))
        assert got == "killed (wall clock)"
        assert time.monotonic() - started < 30  # killed, not waited for
        assert box.kills["timeout"] == 1


def test_text_limits():
    limits = SandboxLimits()
    check_text_limits("RETURN " + "(" * 32 + "1" + ")" * 32, limits)
    with pytest.raises(QueryRefused, match="nest 33 deep"):
        check_text_limits("RETURN " + "(" * 33 + "1" + ")" * 33, limits)
    with pytest.raises(QueryRefused, match="characters"):
        check_text_limits("x" * 10_001, limits)


# -- nobody waits on the console ----------------------------------------------------------------
def _busy(box) -> int:
    with box._lock:
        return len(box._busy)


#: ~1e10 predicate evaluations: runs until it is stopped
SLOW = ("UNWIND range(1, 100000) AS a UNWIND range(1, 100000) AS b WITH a, b "
        "WHERE a + b = -1 RETURN count(*) AS n")


def test_app_queries_and_other_console_queries_do_not_wait(target, mini_store):
    slow = SLOW
    with ConsoleSandbox(target, limits=SandboxLimits(timeout_s=8.0), max_workers=2) as box:
        box.start()
        results: dict[str, str] = {}
        runner = threading.Thread(target=lambda: results.setdefault(
            "slow", outcome(lambda: box.run(slow))[0]))
        runner.start()
        deadline = time.monotonic() + 10
        while _busy(box) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        # the app's own connection answers while the console query runs
        assert mini_store.rows("MATCH (m:Model) RETURN count(*) AS n")[0]["n"] > 0
        # and so does a second console query, in a second worker
        assert box.run("RETURN 7 AS x").frame.iloc[0, 0] == 7
        assert runner.is_alive(), "the slow query ended before the others were answered"
        runner.join(30)
        assert results["slow"] in ("killed (wall clock)", "stopped (engine timeout)")


def test_console_says_busy_instead_of_queueing(target):
    with ConsoleSandbox(target, limits=SandboxLimits(timeout_s=5.0), max_workers=1) as box:
        box.start()
        runner = threading.Thread(target=lambda: outcome(
            lambda: box.run(SLOW)))
        runner.start()
        deadline = time.monotonic() + 10
        while _busy(box) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(ConsoleBusy):
            box.run("RETURN 1")
        runner.join(30)
        assert box.run("RETURN 1 AS x").frame.iloc[0, 0] == 1


def test_a_new_generation_gets_a_new_worker(mini_graph_copy):
    """The page keys its sandbox by generation: a sandbox over the new generation reads it,
    while the old one, still open, keeps reading its own file."""
    from graph.kuzu_store import KuzuStore

    gens = Generations(mini_graph_copy)
    old = ConsoleSandbox(SandboxTarget.current(mini_graph_copy))
    try:
        before = old.run("MATCH (m:Model) RETURN count(*) AS n").frame.iloc[0, 0]
        staging = gens.new_staging("console-test")
        writer = KuzuStore(staging, read_only=False)
        writer.write([("CREATE (:Model {id: 'console/new-model', stub: false})", {})])
        writer.close()
        gens.publish(staging.parent)
        with ConsoleSandbox(SandboxTarget.current(mini_graph_copy)) as new:
            after = new.run("MATCH (m:Model) RETURN count(*) AS n").frame.iloc[0, 0]
        assert after == before + 1
        assert old.run("MATCH (m:Model) RETURN count(*) AS n").frame.iloc[0, 0] == before
    finally:
        old.close()


# -- the plan reader --------------------------------------------------------------------------
_PLAN = """\
┌─────────────────────────────┐
│┌───────────────────────────┐│
││       Physical Plan       ││
│└───────────────────────────┘│
└─────────────────────────────┘
┌─────────────────────────────┐
│     RESULT_COLLECTOR[1]     │
│   -----------------------   │
│       Expressions: x        │
└──────────────┬──────────────┘
┌──────────────┴──────────────┐
│   TABLE_FUNCTION_CALL[0]    │
│   -----------------------   │
│    Function: READ_FTABLE    │
└─────────────────────────────┘
"""


def test_plan_reader_reads_boxes_and_functions():
    ops = kuzu_plan_operators(_PLAN)
    assert ops == [PlanOperator("TABLE_FUNCTION_CALL", "READ_FTABLE"),
                   PlanOperator("RESULT_COLLECTOR")]
    check_kuzu_plan(ops)
    with pytest.raises(QueryRefused, match="READ_CSV"):
        check_kuzu_plan(kuzu_plan_operators(_PLAN.replace("READ_FTABLE", "READ_CSV   ")))


@pytest.mark.parametrize("damage", [
    lambda p: p.replace("│       Expressions: x        │", "│       Expressions: x\n│"),
    lambda p: p.replace("RESULT_COLLECTOR[1]", "RESULT_COLLECTOR[0]"),
    lambda p: p.replace("RESULT_COLLECTOR[1]", "RESULT_COLLECTOR[5]"),
    lambda p: p.replace("Expressions: x ", "Expressions:\tx"),
    lambda p: p.replace("Physical Plan", "Logical Plan "),
    lambda p: p.replace("│       Expressions: x        │", "│  ┌── Expressions: x      │"),
    lambda p: "",
], ids=["line break", "duplicate id", "missing id", "tab", "no heading", "stray corner",
        "empty"])
def test_plan_reader_refuses_what_it_cannot_read(damage):
    with pytest.raises(PlanUnreadable):
        kuzu_plan_operators(damage(_PLAN))


def test_unknown_operators_are_refused():
    with pytest.raises(QueryRefused, match="not on the console's list"):
        check_kuzu_plan([PlanOperator("SOME_NEW_OPERATOR")])


#: Neo4j 5 plans as the driver gives them (`summary.plan`), abridged from real EXPLAINs
_NEO4J_READ = {"operatorType": "ProduceResults@neo4j", "children": [
    {"operatorType": "EagerAggregation@neo4j", "children": [
        {"operatorType": "Expand(All)@neo4j", "children": [
            {"operatorType": "NodeByLabelScan@neo4j", "children": []}]}]}]}
_NEO4J_LOAD = {"operatorType": "ProduceResults@neo4j", "children": [
    {"operatorType": "LoadCSV@neo4j", "children": [{"operatorType": "EmptyRow@neo4j"}]}]}
_NEO4J_CALL = {"operatorType": "ProduceResults@neo4j", "children": [
    {"operatorType": "ProcedureCall@neo4j", "children": []}]}
_NEO4J_TX = {"operatorType": "EmptyResult@neo4j", "children": [
    {"operatorType": "TransactionForeach@neo4j", "children": [
        {"operatorType": "Create@neo4j"}]}]}


def test_neo4j_plan_checks():
    check_neo4j_plan(neo4j_plan_operators(_NEO4J_READ), "r")
    for plan, word in ((_NEO4J_LOAD, "LoadCSV"), (_NEO4J_CALL, "ProcedureCall"),
                       (_NEO4J_TX, "EmptyResult")):
        with pytest.raises(QueryRefused, match=word):
            check_neo4j_plan(neo4j_plan_operators(plan), "r")
    with pytest.raises(QueryRefused, match="'rw'"):
        check_neo4j_plan(neo4j_plan_operators(_NEO4J_READ), "rw")
    with pytest.raises(PlanUnreadable):
        neo4j_plan_operators(None)


def hostile_table(results: list[tuple[str, str, str]]) -> str:
    """Counts by family and outcome, as printed by `python -m bench.console`."""
    families = list(dict.fromkeys(f for f, _, _ in results))
    table = Counter((f, o) for f, _, o in results)
    outcomes = sorted({o for _, _, o in results})
    lines = [f"{'family':<14}{'n':>4}  " + "  ".join(outcomes)]
    for fam in families:
        n = sum(v for (f, _), v in table.items() if f == fam)
        lines.append(f"{fam:<14}{n:>4}  " + "  ".join(
            f"{table[(fam, o)]:>{len(o)}}" for o in outcomes))
    return "\n".join(lines)


# -- the same checks on LadybugDB (the maintained fork the embedded engine may move to) --------
_LADYBUG_LOAD = r"""
import json, sys
import ladybug
ddl, copies, path = json.loads(sys.stdin.read())
db = ladybug.Database(path)
conn = ladybug.Connection(db)
for statement in ddl + copies:
    conn.execute(statement)
conn.close()
db.close()
"""


@pytest.fixture(scope="module")
def ladybug_target(mini_graph_root, tmp_path_factory) -> SandboxTarget:
    """The mini graph copied into a LadybugDB file (Kùzu's parquet export, then Ladybug's own
    COPY in a separate process: the two engines cannot share one)."""
    import importlib.util
    import json

    from graph.kuzu_store import KuzuStore, schema_ddl
    from graph.schema import NODES, RELS

    if importlib.util.find_spec("ladybug") is None:
        pytest.skip("ladybug is not installed (pip install ladybug==0.22.0)")
    folder = tmp_path_factory.mktemp("ladybug")
    store = KuzuStore(Generations(mini_graph_root).current_path(), read_only=True)
    try:
        store.export_parquet(folder / "parquet")
    finally:
        store.close()
    copies = [f"COPY {n.label.value} FROM '{folder}/parquet/node-{n.label.value}.parquet'"
              for n in NODES]
    copies += [f"COPY {r.rel.value} FROM '{folder}/parquet/rel-{r.rel.value}-{a.value}-"
               f"{b.value}.parquet' (from='{a.value}', to='{b.value}')"
               for r in RELS for a, b in r.pairs]
    path = folder / "gen-ladybug" / "graph.lbug"
    path.parent.mkdir()
    subprocess.run([sys.executable, "-c", _LADYBUG_LOAD], check=True, timeout=300,
                   input=json.dumps([schema_ddl(), copies, str(path)]), text=True)
    return SandboxTarget.embedded(path, engine="ladybug")


def test_ladybug_reads_answer_and_hostile_inputs_get_nothing(ladybug_target, out_dir):
    """Engine plan and OS alone (no lexical filter) on LadybugDB 0.22: every legitimate
    read answers, no hostile input returns rows or writes a file."""
    with ConsoleSandbox(ladybug_target, limits=FAST, precheck=False) as box:
        assert box.start()["engine"].startswith("ladybug")
        for name, query in LEGIT:
            got, message = outcome(lambda: box.run(query, row_cap=20))
            assert got == "ROWS", f"{name}: {got}: {message}"
        for family, name, query in HOSTILE:
            text = fill(query, ppid=os.getpid(), out=out_dir, graph=Path(ladybug_target.path))
            got, message = outcome(lambda: box.run(text, row_cap=20))
            assert got != "ROWS", name
            if family in MUST_REFUSE:
                assert got.startswith(("refused", "error (os")) or (
                    got == "error (engine)" and message.startswith(_BEFORE_RUNNING)), \
                    f"{name}: {got}: {message}"
        assert not list(out_dir.iterdir())


class _Recorder:
    """A read-only store that records every query the app's own read functions send."""

    def __init__(self, store):
        self._store, self.dialect, self.read_only, self.sent = store, store.dialect, True, []

    def frame(self, query, params=None):
        self.sent.append((query, params))
        return self._store.frame(query, params)

    def rows(self, query, params=None):
        self.sent.append((query, params))
        return self._store.rows(query, params)


def test_the_apps_own_read_queries_pass_the_plan_check(mini_store, bare_sandbox):
    """Every query the pages and analytics run (graph.queries, graph.retrieval_queries) is a
    pure read by the engine's plan, so the allow-list is not narrower than the app's own Cypher."""
    from graph import queries, retrieval_queries

    rec = _Recorder(mini_store)
    model = "microsoft/phi-2"
    for call in (lambda: queries.count_nodes(rec), lambda: queries.count_rels(rec),
                 lambda: queries.model_ids(rec), lambda: queries.get_model(rec, model),
                 lambda: queries.parents(rec, model), lambda: queries.ancestors(rec, model),
                 lambda: queries.descendants(rec, model, 3),
                 lambda: queries.descendant_counts(rec, model),
                 lambda: queries.family_size(rec, model), lambda: queries.roots(rec, model),
                 lambda: queries.top_base_models(rec), lambda: queries.derivative_edges(rec),
                 lambda: queries.ingest_runs(rec), lambda: queries.stub_model_ids(rec),
                 lambda: queries.uploads_by_month(rec, "task"),
                 lambda: queries.uploads_by_month(rec, "library"),
                 lambda: queries.models_per_licence(rec),
                 lambda: queries.derivatives_by_month(rec, model),
                 lambda: queries.model_ids_downloads(rec),
                 lambda: retrieval_queries.model_frame(rec),
                 lambda: retrieval_queries.model_dataset_links(rec),
                 lambda: retrieval_queries.lineage_links(rec)):
        call()
    import json

    checked = 0
    for query, params in dict.fromkeys((q, json.dumps(p or {}, sort_keys=True))
                                       for q, p in rec.sent):
        got, message = outcome(lambda: bare_sandbox.run(query, params=json.loads(params),
                                                        row_cap=5))
        assert got == "ROWS", f"{query}: {got}: {message}"
        checked += 1
    assert checked >= 20


# -- Neo4j ------------------------------------------------------------------------------------
def test_neo4j_worker_gets_credentials_over_stdin_and_fails_closed(tmp_path):
    """Driver wiring against FalkorDB's Bolt endpoint (tests/neo4j_server.py): the worker
    connects with credentials it got over its stdin (never its environment) and may reach
    only the Bolt port. FalkorDB returns no plan for EXPLAIN, so every query is refused:
    nothing runs unchecked."""
    from tests.neo4j_server import FalkorUnavailable, cleanup, start_falkordb

    try:
        srv = start_falkordb(tmp_path / "falkordb")
    except FalkorUnavailable as e:
        pytest.skip(f"FalkorDB Bolt smoke test not run: {e}")
    try:
        target = SandboxTarget("neo4j", uri=srv.uri, auth=("canary-neo4j-user", ""))
        with ConsoleSandbox(target, limits=FAST, precheck=False) as box:
            ready = box.start()
            environ = Path(f"/proc/{box.workers()[0]}/environ").read_bytes()
            assert b"canary" not in environ and b"NEO4J" not in environ
            if ready["landlock_abi"] >= 4:
                assert f"TCP port {srv.bolt_port} only" in ready["isolation"]
            for query in ("RETURN 1 AS x", "MATCH (n) RETURN count(n) AS n", "CREATE (:X)"):
                got, message = outcome(lambda: box.run(query))
                assert got == "refused (plan)" and "no plan" in message, (query, message)
    finally:
        cleanup(srv)


@pytest.mark.neo4j
def test_neo4j_console_on_a_real_server():
    """Against a real Neo4j 5 (NEO4J_URI set): reads answer with the plan check passed,
    file access, procedures, writes and database switches are refused by the plan."""
    if not os.environ.get("NEO4J_URI"):
        pytest.skip("NEO4J_URI is not set: no Neo4j server to test against")
    with ConsoleSandbox(SandboxTarget.neo4j_from_env(), limits=FAST, precheck=False) as box:
        assert box.run("RETURN 1 AS x").frame.iloc[0, 0] == 1
        assert len(box.run("MATCH (n) RETURN count(n) AS n").frame) == 1
        assert len(box.run("MATCH (a)-[r]->(b) RETURN type(r) AS t, count(*) AS n "
                           "ORDER BY n DESC LIMIT 3").frame.columns) == 2
        for query in ("LOAD CSV FROM 'file:///etc/passwd' AS line RETURN line",
                      "CALL db.labels()", "CREATE (:ConsoleProbe)",
                      "MATCH (n) DETACH DELETE n", "USE system SHOW DATABASES",
                      "MATCH (n) CALL { WITH n SET n.x = 1 } IN TRANSACTIONS RETURN 1"):
            got, message = outcome(lambda: box.run(query))
            assert got.startswith("refused") or got == "error (engine)", (query, got, message)
        assert box.run("MATCH (n:ConsoleProbe) RETURN count(n) AS n").frame.iloc[0, 0] == 0
