"""graph/dialect.py: the backend differences as methods, run for real on the embedded engine."""
from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from graph.dialect import KUZU, NEO4J, Dialect

REPO = Path(__file__).resolve().parent.parent


def test_fragments():
    assert KUZU.rel_type("e") == "label(e)" and NEO4J.rel_type("e") == "type(e)"
    assert KUZU.cast("$x", "INT64") == "CAST($x AS INT64)"
    assert NEO4J.cast("$x", "INT64") == "$x" and NEO4J.cast("$t", "TIMESTAMP") == "datetime($t)"
    assert NEO4J.year_month("m.createdAt") == "m.createdAt.year * 100 + m.createdAt.month"
    assert isinstance(KUZU, Dialect) and repr(KUZU) == "<kuzu dialect>"


def test_kuzu_fragments_run_on_the_embedded_engine(mini_store):
    d = mini_store.dialect
    assert d is KUZU
    row = mini_store.rows(
        f"WITH {d.cast('$t', 'TIMESTAMP')} AS t, {d.cast('$n', 'INT64')} AS n "
        f"RETURN {d.year_month('t')} AS ym, n", {"t": "2024-07-11T10:00:00", "n": None})[0]
    assert row == {"ym": 202407, "n": None}
    rels = mini_store.rows("MATCH (:Model)-[e:FINETUNE_OF]->(:Model) "
                           f"RETURN DISTINCT {d.rel_type('e')} AS rel")
    assert rels == [{"rel": "FINETUNE_OF"}]
    when = mini_store.rows(f"RETURN {d.cast('$t', 'TIMESTAMP')} AS t",
                           {"t": "2023-01-02T03:04:05"})[0]["t"]
    assert when == datetime(2023, 1, 2, 3, 4, 5)


def test_no_backend_name_tests_left_in_the_tree():
    pattern = re.compile(r"dialect\.name\s*[!=]=|\.name\s*==\s*[\"'](kuzu|neo4j)[\"']"
                         r"|getattr\([^)]*dialect[^)]*[\"']name[\"']")
    hits = [f"{p.relative_to(REPO)}:{i}" for p in REPO.rglob("*.py") if ".venv" not in p.parts
            and p != Path(__file__) for i, line in enumerate(p.read_text().splitlines(), 1)
            if pattern.search(line)]
    assert hits == []


def test_the_sandbox_opens_the_graph_the_store_reads(mini_store):
    from graph.sandbox import SandboxTarget

    assert NEO4J.server and not KUZU.server
    target = SandboxTarget.for_store(mini_store)
    assert target.kind != "neo4j" and Path(target.path) == Path(mini_store.path)
