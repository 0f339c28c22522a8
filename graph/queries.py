"""Every Cypher statement of the app: named, `$`-parameterised functions over a `GraphStore`.

Identifiers (labels, relation types, property names) cannot be parameters; they are formatted
in only from `graph.schema` enums and specs. Values always travel as parameters. The queries
are written in the subset Kùzu and Neo4j share; the few differences go through `store.dialect`.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from graph.schema import (LINEAGE_RELS, NODE_SPECS, REL_SPECS, REL_TO_RELATION, Label, Rel)
from graph.store import GraphStore

LINEAGE_TYPES = "|".join(r.value for r in LINEAGE_RELS.values())
#: Kùzu's default upper bound for variable-length patterns; deeper chains are not expected.
MAX_DEPTH = 30


# -- write builders (used by ingest's loader) ------------------------------------------------
def _cast(store: GraphStore, expr: str, typ: str) -> str:
    # Kùzu infers a parameter's type from its values, so an all-null column needs a cast;
    # Neo4j is dynamically typed except for datetimes, which travel as ISO strings.
    if store.dialect.name == "kuzu":
        return f"CAST({expr} AS {typ})"
    if typ == "TIMESTAMP":
        return f"datetime({expr})"
    return expr


def upsert_nodes(store: GraphStore, label: Label, columns: list[str]) -> str:
    """`UNWIND $rows MERGE` on id, setting the given properties (validated against the schema)."""
    types = dict(NODE_SPECS[label].properties)
    sets = ", ".join(f"n.{c} = {_cast(store, 'r.' + c, types[c])}" for c in columns if c != "id")
    query = f"UNWIND $rows AS r MERGE (n:{label.value} {{id: r.id}})"
    return query + (f" SET {sets}" if sets else "")


def ensure_stub_nodes(label: Label) -> str:
    """Create nodes named only by a reference, marked stub, leaving existing ones untouched."""
    return (f"UNWIND $ids AS i MERGE (n:{label.value} {{id: i}}) "
            f"ON CREATE SET n.stub = true")


def ensure_nodes(label: Label) -> str:
    return f"UNWIND $ids AS i MERGE (n:{label.value} {{id: i}})"


def existing_ids(store: GraphStore, label: Label, ids: list[str]) -> list[str]:
    """Which of `ids` are nodes of `label` already (stubs included)."""
    if not ids:
        return []
    return [r["id"] for r in store.rows(
        f"UNWIND $ids AS i MATCH (n:{label.value} {{id: i}}) RETURN n.id AS id", {"ids": ids})]


def create_nodes(store: GraphStore, label: Label, columns: list[str]) -> str:
    """`UNWIND $rows CREATE` nodes known not to exist (cheaper than MERGE: ~4x on Kùzu)."""
    types = dict(NODE_SPECS[label].properties)
    props = ", ".join(f"{c}: {_cast(store, 'r.' + c, types[c])}" for c in columns)
    return f"UNWIND $rows AS r CREATE (n:{label.value} {{{props}}})"


def update_nodes(store: GraphStore, label: Label, rows: list[dict]) -> list[tuple[str, dict]]:
    """Statements that set the scalar properties each row gives on existing nodes; a null
    keeps the stored value (list properties go through `set_list_property`: Kùzu 0.11 loses
    a list property set to an expression over itself in a multi-row UNWIND)."""
    if not rows:
        return []
    types = dict(NODE_SPECS[label].properties)
    cols = [c for c in rows[0] if c != "id" and not types[c].endswith("[]")]
    if not cols:
        return []

    def query(ref) -> str:
        sets = ", ".join(f"n.{c} = coalesce({_cast(store, ref(c), types[c])}, n.{c})"
                         for c in cols)
        return f"MATCH (n:{label.value} {{id: {ref('id')}}}) SET {sets}"

    return _row_statements(store, (label,), query, rows, ["id", *cols])


def set_list_property(store: GraphStore, label: Label, column: str, rows: list[dict], *,
                      only_if_null: bool = False) -> list[tuple[str, dict]]:
    """Statements that set a list property on existing nodes (only where it is null, with
    `only_if_null`) from rows of id and the value."""
    typ = dict(NODE_SPECS[label].properties)[column]
    where = f" WHERE n.{column} IS NULL" if only_if_null else ""

    def query(ref) -> str:
        return (f"MATCH (n:{label.value} {{id: {ref('id')}}}){where} "
                f"SET n.{column} = {_cast(store, ref(column), typ)}")

    return _row_statements(store, (label,), query, rows, ["id", column])


#: Kùzu 0.11 plans a `MATCH (n {id: r.x})` after `UNWIND` over a scan of the whole label, and
#: a second one per row (~0.2 µs a node, and a two-node `MATCH` as a join over both labels'
#: scans: out of buffer memory on the full graph for 84 rows). A statement per row looks the
#: key up in the index instead (~2-5 ms a statement). Above this many nodes in a label that
#: is the cheaper way; below it, one UNWIND statement per 2,000 rows.
KUZU_UNWIND_MAX_NODES = 15_000


def _row_statements(store: GraphStore, labels: tuple[Label, ...], query, rows: list[dict],
                    keys: list[str]) -> list[tuple[str, dict]]:
    """`query(ref)` (Cypher with `ref(name)` for each value) over `rows`: as `UNWIND $rows`
    statements, or on Kùzu with a large label, one statement per row."""
    if store.dialect.name == "kuzu" and max(
            store.rows(f"MATCH (n:{label.value}) RETURN count(n) AS n")[0]["n"]
            for label in labels) > KUZU_UNWIND_MAX_NODES:
        one = query(lambda name: "$" + name)
        return [(one, {k: r.get(k) for k in keys}) for r in rows]
    many = "UNWIND $rows AS r " + query(lambda name: "r." + name)
    return [(many, {"rows": rows[i:i + 2000]}) for i in range(0, len(rows), 2000)]


def create_ref_nodes(label: Label, *, stub: bool) -> str:
    """Create nodes known only by a reference (and known not to exist yet)."""
    props = "id: i, stub: true" if stub else "id: i"
    return f"UNWIND $ids AS i CREATE (n:{label.value} {{{props}}})"


def upsert_rels(store: GraphStore, rel: Rel, src: Label, dst: Label, columns: list[str]) -> str:
    """`MERGE` relations between existing nodes (Neo4j; on Kùzu 0.11 the two-node `MATCH`
    after `UNWIND` is planned as a join over both labels' scans and runs out of memory on the
    full graph: the loader uses `insert_rels` / `update_rels` there)."""
    types = dict(REL_SPECS[rel].properties)
    sets = ", ".join(f"e.{c} = coalesce({_cast(store, 'r.' + c, types[c])}, e.{c})"
                     for c in columns)
    query = (f"UNWIND $rows AS r MATCH (a:{src.value} {{id: r.src}}), "
             f"(b:{dst.value} {{id: r.dst}}) MERGE (a)-[e:{rel.value}]->(b)")
    return query + (f" SET {sets}" if sets else "")


def insert_rels(store: GraphStore, rel: Rel, src: Label, dst: Label,
                rows: list[dict]) -> list[tuple[str, dict]]:
    """Statements that create relations known not to exist yet between existing nodes, from
    rows of src, dst and every property of the relation (nulls allowed). (Kùzu's `COPY` into
    a non-empty relation table would be faster, but inside a transaction it does not survive
    `kill -9`: committed rows are lost and the file is damaged.)"""
    if not rows:
        return []
    props = REL_SPECS[rel].properties

    def query(ref) -> str:
        values = ", ".join(f"{p}: {_cast(store, ref(p), t)}" for p, t in props)
        carry = ", r" if ref("src") == "r.src" else ""  # UNWIND's row variable, if any
        return (f"MATCH (a:{src.value} {{id: {ref('src')}}}) WITH a{carry} "
                f"MATCH (b:{dst.value} {{id: {ref('dst')}}}) CREATE (a)-[e:{rel.value}"
                + (f" {{{values}}}" if values else "") + "]->(b)")

    return _row_statements(store, (src, dst), query, rows, ["src", "dst", *(p for p, _ in props)])


def update_rels(store: GraphStore, rel: Rel, src: Label, dst: Label,
                rows: list[dict]) -> list[tuple[str, dict]]:
    """Statements that set the properties rows give on existing relations (a null keeps the
    stored value)."""
    props = REL_SPECS[rel].properties
    if not rows or not props:
        return []

    def query(ref) -> str:
        sets = ", ".join(f"e.{p} = coalesce({_cast(store, ref(p), t)}, e.{p})" for p, t in props)
        return (f"MATCH (a:{src.value} {{id: {ref('src')}}})-[e:{rel.value}]->"
                f"(b:{dst.value} {{id: {ref('dst')}}}) SET {sets}")

    return _row_statements(store, (src, dst), query, rows, ["src", "dst", *(p for p, _ in props)])


def rel_pairs(store: GraphStore, rel: Rel, src: Label, dst: Label, *, by: str) -> str:
    """The (src, dst) pairs of existing `rel` relations at the nodes `$ids`, found from the
    `by` end ("src" or "dst": the end with few such relations)."""
    a = f"(a:{src.value} {{id: i}})" if by == "src" else f"(a:{src.value})"
    b = f"(b:{dst.value} {{id: i}})" if by == "dst" else f"(b:{dst.value})"
    return f"UNWIND $ids AS i MATCH {a}-[e:{rel.value}]->{b} RETURN a.id AS src, b.id AS dst"


def delete_out_rels(rel: Rel, src: Label) -> str:
    """Drop a node's own outgoing relations of one type before re-adding them (exact upsert)."""
    return f"UNWIND $ids AS i MATCH (a:{src.value} {{id: i}})-[e:{rel.value}]->() DELETE e"


def lineage_parents(store: GraphStore) -> str:
    """Every lineage edge (child, parent) out of the models `$ids`."""
    return (f"UNWIND $ids AS i MATCH (c:Model {{id: i}})-[:{LINEAGE_TYPES}]->(p:Model) "
            f"RETURN c.id AS child, p.id AS parent")


def stub_model_ids(store: GraphStore) -> list[str]:
    return [r["id"] for r in store.rows("MATCH (m:Model) WHERE m.stub = true RETURN m.id AS id")]


def edges_into(store: GraphStore, rel: Rel, src: Label, dst: Label) -> str:
    """`rel` edges from `src` nodes into the `dst` nodes `$ids`: src, dst and properties."""
    props = "".join(f", e.{p} AS {p}" for p, _ in REL_SPECS[rel].properties)
    return (f"UNWIND $ids AS i MATCH (a:{src.value})-[e:{rel.value}]->(b:{dst.value} {{id: i}}) "
            f"RETURN a.id AS src, b.id AS dst{props}")


def delete_unreferenced(label: Label, *, stubs_only: bool) -> str:
    """Drop nodes of `label` that nothing links to any more (only stubs, with `stubs_only`):
    a first load never creates them, so an incremental run removes them to end equal."""
    stub = " AND n.stub = true" if stubs_only else ""
    return f"MATCH (n:{label.value}) WHERE NOT EXISTS {{ MATCH (n)-[]-() }}{stub} DELETE n"


def delete_stub_nodes(label: Label) -> str:
    """Drop the stub nodes `$ids` and their edges (real nodes are left alone)."""
    return (f"UNWIND $ids AS i MATCH (s:{label.value} {{id: i}}) WHERE s.stub = true "
            f"DETACH DELETE s")


# -- ingest runs -----------------------------------------------------------------------------
def start_run(store: GraphStore) -> str:
    return (f"MERGE (r:IngestRun {{id: $id}}) SET r.source = $source, "
            f"r.startedAt = {_cast(store, '$startedAt', 'TIMESTAMP')}, r.status = 'running', "
            f"r.mode = $mode, r.cursor = 0, r.counts = '{{}}', r.rejects = '{{}}', "
            f"r.since = {_cast(store, '$since', 'TIMESTAMP')}, "
            f"r.recordLimit = {_cast(store, '$recordLimit', 'INT64')}")


def checkpoint_run(store: GraphStore) -> str:
    """The run's cursor with its progress so far (counts: read/loaded/skipped, JSON)."""
    return ("MATCH (r:IngestRun {id: $id}) SET r.cursor = $cursor, r.rejects = $rejects, "
            f"r.counts = $counts, r.watermark = {_cast(store, '$watermark', 'TIMESTAMP')}")


def finish_run(store: GraphStore) -> str:
    return ("MATCH (r:IngestRun {id: $id}) SET r.status = $status, r.counts = $counts, "
            f"r.rejects = $rejects, r.endedAt = {_cast(store, '$endedAt', 'TIMESTAMP')}, "
            f"r.watermark = {_cast(store, '$watermark', 'TIMESTAMP')}")


def running_run(store: GraphStore) -> dict[str, Any] | None:
    rows = store.rows("MATCH (r:IngestRun) WHERE r.status = 'running' RETURN r.id AS id, "
                      "r.source AS source, r.mode AS mode, r.cursor AS cursor, "
                      "r.rejects AS rejects, r.startedAt AS startedAt, r.since AS since, "
                      "r.recordLimit AS recordLimit, r.counts AS counts, "
                      "r.watermark AS watermark")
    return rows[0] if rows else None


def last_watermark(store: GraphStore) -> Any:
    rows = store.rows("MATCH (r:IngestRun) WHERE r.status = 'ok' AND r.watermark IS NOT NULL "
                      "RETURN max(r.watermark) AS w")
    return rows[0]["w"] if rows else None


def ingest_runs(store: GraphStore, limit: int = 20) -> pd.DataFrame:
    """The most recent ingest runs, newest first."""
    return store.frame("MATCH (r:IngestRun) RETURN r.id AS id, r.source AS source, "
                       "r.mode AS mode, r.status AS status, r.startedAt AS startedAt, "
                       "r.endedAt AS endedAt, r.counts AS counts, r.rejects AS rejects "
                       "ORDER BY r.startedAt DESC LIMIT $limit", {"limit": limit})


# -- counts ----------------------------------------------------------------------------------
def count_nodes(store: GraphStore) -> dict[str, int]:
    """Nodes per label; models and datasets split into real and stub."""
    out: dict[str, int] = {}
    for label in Label:
        n = store.rows(f"MATCH (n:{label.value}) RETURN count(n) AS n")[0]["n"]
        out[label.value] = int(n)
    for label in (Label.MODEL, Label.DATASET, Label.SPACE):
        stubs = store.rows(f"MATCH (n:{label.value}) WHERE n.stub = true RETURN count(n) AS n")
        out[f"{label.value} (stub)"] = int(stubs[0]["n"])
    return out


def count_rels(store: GraphStore) -> dict[str, int]:
    out = {}
    for rel in Rel:
        out[rel.value] = int(store.rows(f"MATCH ()-[e:{rel.value}]->() RETURN count(e) AS n")[0]["n"])
    return out


def model_ids(store: GraphStore, *, include_stubs: bool = False) -> list[str]:
    where = "" if include_stubs else " WHERE m.stub IS NULL OR m.stub = false"
    return [r["id"] for r in store.rows(f"MATCH (m:Model){where} RETURN m.id AS id")]


# -- models and lineage ----------------------------------------------------------------------
_MODEL_COLS = ("m.id AS id, m.author AS author, m.createdAt AS createdAt, "
               "m.downloads AS downloads, m.likes AS likes, m.pipelineTag AS pipelineTag, "
               "m.libraryName AS libraryName, m.license AS license, m.stub AS stub")


def get_model(store: GraphStore, model_id: str) -> dict[str, Any] | None:
    rows = store.rows(f"MATCH (m:Model {{id: $id}}) RETURN {_MODEL_COLS}, m.tags AS tags, "
                      "m.parameters AS parameters, m.gated AS gated", {"id": model_id})
    return rows[0] if rows else None


def parents(store: GraphStore, model_id: str) -> pd.DataFrame:
    """Direct parents with relation type."""
    d = store.dialect
    df = store.frame(f"MATCH (c:Model {{id: $id}})-[e:{LINEAGE_TYPES}]->(m:Model) "
                     f"RETURN {_MODEL_COLS}, {d.rel_type('e')} AS rel, e.inferred AS inferred",
                     {"id": model_id})
    return _with_relation(df)


def ancestors(store: GraphStore, model_id: str, max_depth: int = 10) -> pd.DataFrame:
    """Every ancestor up to the roots: its shortest depth, the relation of the edge that
    reaches it on that path, the child it was reached from, and whether it is a root."""
    d = store.dialect
    depth = min(int(max_depth), MAX_DEPTH)
    paths = store.frame(
        f"MATCH p = (c:Model {{id: $id}})-[:{LINEAGE_TYPES}*1..{depth}]->(m:Model) "
        f"RETURN m.id AS id, length(p) AS depth, {d.path_rel_types} AS rels, "
        f"{d.path_node_ids} AS nodes", {"id": model_id})
    if paths.empty:
        return _empty_lineage_frame(["child", "is_root"])
    paths = paths.sort_values("depth", kind="stable").drop_duplicates("id")
    paths["rel"] = paths["rels"].map(lambda r: r[-1])
    paths["child"] = paths["nodes"].map(lambda n: n[-2])
    ids = paths["id"].tolist()
    has_parent = {r["id"] for r in store.rows(
        f"UNWIND $ids AS i MATCH (m:Model {{id: i}})-[:{LINEAGE_TYPES}]->(:Model) "
        "RETURN DISTINCT m.id AS id", {"ids": ids})}
    info = _models_frame(store, ids)
    out = paths[["id", "depth", "rel", "child"]].merge(info, on="id", how="left")
    out["is_root"] = ~out["id"].isin(has_parent)
    return _with_relation(out).sort_values(["depth", "id"]).reset_index(drop=True)


def descendants(store: GraphStore, model_id: str, max_depth: int = 2,
                limit: int = 50_000) -> pd.DataFrame:
    """Descendants to `max_depth`: id, shortest depth, the relation to its parent on that path
    and that parent's id, plus model properties. At most `limit` rows, nearest first."""
    # One query: each descendant's shortest depth, then its own lineage edges; the edge to a
    # parent one level nearer is the one on a shortest path. Returning path lists instead
    # (list_transform over every path) took 2-4 s for a 5k-children family on the full graph.
    d = store.dialect
    depth = min(int(max_depth), MAX_DEPTH)
    child_cols = _MODEL_COLS.replace("m.", "c.")
    df = store.frame(
        f"MATCH p = (c:Model)-[:{LINEAGE_TYPES}*1..{depth}]->(root:Model {{id: $id}}) "
        f"WITH c, min(length(p)) AS depth "
        f"MATCH (c)-[e:{LINEAGE_TYPES}]->(parent:Model) "
        f"RETURN {child_cols}, depth, {d.rel_type('e')} AS rel, parent.id AS parent",
        {"id": model_id})
    if df.empty:
        return _empty_lineage_frame(["parent"])
    level = dict(zip(df["id"], df["depth"]))
    level[model_id] = 0
    df = df[df["parent"].map(level) == df["depth"] - 1]
    df = df.sort_values(["id", "parent"], kind="stable").drop_duplicates("id")
    out = df[["id", "depth", "rel", "parent", *[c for c in df.columns
                                                if c not in ("id", "depth", "rel", "parent")]]]
    out = out.sort_values(["depth", "downloads", "id"], ascending=[True, False, True])
    return _with_relation(out).head(limit).reset_index(drop=True)


def _models_frame(store: GraphStore, ids: list[str]) -> pd.DataFrame:
    return store.frame(f"UNWIND $ids AS i MATCH (m:Model {{id: i}}) RETURN {_MODEL_COLS}",
                       {"ids": ids})


def _empty_lineage_frame(extra: list[str]) -> pd.DataFrame:
    cols = ["id", "depth", "relation", *extra, "author", "createdAt", "downloads", "likes",
            "pipelineTag", "libraryName", "license", "stub"]
    return pd.DataFrame(columns=cols)


def descendant_counts(store: GraphStore, model_id: str) -> dict[str, int]:
    """Direct children per relation type, as the Hub's model tree shows them."""
    d = store.dialect
    rows = store.rows(f"MATCH (c:Model)-[e:{LINEAGE_TYPES}]->(m:Model {{id: $id}}) "
                      f"RETURN {d.rel_type('e')} AS rel, count(*) AS n", {"id": model_id})
    out = {name: 0 for name in LINEAGE_RELS}
    for r in rows:
        out[REL_TO_RELATION[r["rel"]]] = int(r["n"])
    return out


def family_size(store: GraphStore, model_id: str, max_depth: int = 10) -> int:
    """Number of distinct descendants at any depth up to `max_depth`."""
    depth = min(int(max_depth), MAX_DEPTH)
    rows = store.rows(f"MATCH (c:Model)-[:{LINEAGE_TYPES}*1..{depth}]->(m:Model {{id: $id}}) "
                      "RETURN count(DISTINCT c) AS n", {"id": model_id})
    return int(rows[0]["n"])


def roots(store: GraphStore, model_id: str) -> list[str]:
    """Ancestors with no parent of their own (the model itself if it has none)."""
    df = ancestors(store, model_id)
    if df.empty:
        return [model_id]
    return sorted(df.loc[df["is_root"], "id"].tolist())


def top_base_models(store: GraphStore, limit: int = 20) -> pd.DataFrame:
    """Models with the most direct derivatives, one column per relation type."""
    d = store.dialect
    df = store.frame(f"MATCH (c:Model)-[e:{LINEAGE_TYPES}]->(m:Model) "
                     f"RETURN m.id AS id, {d.rel_type('e')} AS rel, count(*) AS n")
    if df.empty:
        return pd.DataFrame(columns=["id", "total", *LINEAGE_RELS])
    df["relation"] = df["rel"].map(REL_TO_RELATION)
    wide = df.pivot_table(index="id", columns="relation", values="n", aggfunc="sum", fill_value=0)
    for name in LINEAGE_RELS:
        if name not in wide:
            wide[name] = 0
    wide = wide[list(LINEAGE_RELS)]
    wide.insert(0, "total", wide.sum(axis=1))
    return wide.sort_values("total", ascending=False).head(limit).reset_index()


def derivative_edges(store: GraphStore) -> pd.DataFrame:
    """Every lineage edge with both creation dates: parent, parent_created, child,
    child_created, relation. The input of `analytics.growth`."""
    d = store.dialect
    df = store.frame(f"MATCH (c:Model)-[e:{LINEAGE_TYPES}]->(p:Model) "
                     f"RETURN p.id AS parent, p.createdAt AS parent_created, c.id AS child, "
                     f"c.createdAt AS child_created, {d.rel_type('e')} AS rel")
    df["relation"] = df["rel"].map(REL_TO_RELATION)
    for col in ("parent_created", "child_created"):
        df[col] = pd.to_datetime(df[col])
    return df.drop(columns="rel")


def _with_relation(df: pd.DataFrame) -> pd.DataFrame:
    if "rel" in df:
        df = df.assign(relation=df["rel"].map(REL_TO_RELATION)).drop(columns="rel")
    return df


