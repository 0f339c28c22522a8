"""Every Cypher statement of the app: named, `$`-parameterised functions over a `GraphStore`.

Identifiers (labels, relation types, property names) cannot be parameters; they are formatted
in only from `graph.schema` enums and specs. Values always travel as parameters. The queries
are written in the subset Kùzu and Neo4j share; the few differences go through `store.dialect`.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from graph.dates import utc_times
from graph.lineage_index import LineageIndex
from graph.schema import (
    ACCOUNT_TYPES,
    LINEAGE_RELS,
    NODE_SPECS,
    REL_SPECS,
    REL_TO_RELATION,
    Label,
    Rel,
)
from graph.store import GraphStore

LINEAGE_TYPES = "|".join(r.value for r in LINEAGE_RELS.values())
#: Kùzu's default upper bound for variable-length patterns; deeper chains are not expected.
MAX_DEPTH = 30


# -- write builders (used by ingest's loader) ------------------------------------------------
def _cast(store: GraphStore, expr: str, typ: str) -> str:
    return store.dialect.cast(expr, typ)


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


def _row_statements(store: GraphStore, labels: tuple[Label, ...], query, rows: list[dict],
                    keys: list[str]) -> list[tuple[str, dict]]:
    """`query(ref)` (Cypher with `ref(name)` for each value) over `rows`: as `UNWIND $rows`
    statements, or on Kùzu with a large label, one statement per row."""
    limit = store.dialect.unwind_max_nodes
    if limit is not None and max(
            store.rows(f"MATCH (n:{label.value}) RETURN count(n) AS n")[0]["n"]
            for label in labels) > limit:
        one = query(lambda name: "$" + name)
        return [(one, {k: r.get(k) for k in keys}) for r in rows]
    many = "UNWIND $rows AS r " + query(lambda name: "r." + name)
    return [(many, {"rows": rows[i:i + 2000]}) for i in range(0, len(rows), 2000)]


def create_ref_nodes(label: Label, *, stub: bool, defaults: tuple[str, ...] = ()) -> str:
    """Create nodes known only by a reference (and known not to exist yet); `defaults`: string
    properties set from the parameters of the same name (`graph.schema.REF_DEFAULTS`)."""
    types = dict(NODE_SPECS[label].properties)
    if any(types.get(p) != "STRING" for p in defaults):
        raise ValueError(f"not string properties of {label.value}: {defaults}")
    props = ["id: i", *(["stub: true"] if stub else []), *(f"{p}: ${p}" for p in defaults)]
    return f"UNWIND $ids AS i CREATE (n:{label.value} {{{', '.join(props)}}})"


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


def lineage_edge_types(store: GraphStore) -> str:
    """Every lineage edge (child, parent, rel: its type) out of the models `$ids`."""
    return (f"UNWIND $ids AS i MATCH (c:Model {{id: i}})-[e:{LINEAGE_TYPES}]->(p:Model) "
            f"RETURN c.id AS child, p.id AS parent, {store.dialect.rel_type('e')} AS rel")


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


@dataclass(frozen=True)
class RunningRun:
    """An ingest run recorded as running (killed or still going): what resuming it needs.
    Timestamps are naive UTC as the graph stores them; rejects and counts are JSON text."""

    id: str
    source: str | None
    mode: str | None
    cursor: int
    rejects: str | None
    counts: str | None
    started_at: datetime | None
    since: datetime | None
    record_limit: int | None
    watermark: datetime | None


def running_run(store: GraphStore) -> RunningRun | None:
    """The run left `running` in the graph, if any."""
    rows = store.rows("MATCH (r:IngestRun) WHERE r.status = 'running' RETURN r.id AS id, "
                      "r.source AS source, r.mode AS mode, r.cursor AS cursor, "
                      "r.rejects AS rejects, r.startedAt AS started_at, r.since AS since, "
                      "r.recordLimit AS record_limit, r.counts AS counts, "
                      "r.watermark AS watermark")
    if not rows:
        return None
    row = rows[0]
    return RunningRun(**{**row, "cursor": int(row["cursor"] or 0)})


#: the newest finished ingest run (names a Neo4j generation)
LAST_FINISHED_RUN = ("MATCH (r:IngestRun) WHERE r.status = 'ok' AND r.endedAt IS NOT NULL "
                     "RETURN r.id AS id ORDER BY r.endedAt DESC LIMIT 1")


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
    by_type = {r["t"]: int(r["n"]) for r in store.rows(
        f"MATCH (a:{Label.ACCOUNT.value}) RETURN a.accountType AS t, count(*) AS n")}
    for typ in ACCOUNT_TYPES:  # accounts split by type, like the stubs
        out[f"{Label.ACCOUNT.value} ({typ})"] = by_type.get(typ, 0)
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


@dataclass(frozen=True)
class ModelRow:
    """One model's own properties, as the pages show them (`get_model`). A stub is a parent
    named by a base_model link that is not a model on the Hub: it has no metadata."""

    id: str
    author: str | None = None
    created_at: datetime | None = None  # naive UTC; None where the Hub back-filled the date
    downloads: int | None = None
    likes: int | None = None
    pipeline_tag: str | None = None
    library_name: str | None = None
    license: str | None = None
    stub: bool = False
    tags: tuple[str, ...] = ()
    parameters: int | None = None
    gated: str | None = None


def get_model(store: GraphStore, model_id: str) -> ModelRow | None:
    """The model with this exact id, or None."""
    rows = store.rows("MATCH (m:Model {id: $id}) RETURN m.id AS id, m.author AS author, "
                      "m.createdAt AS created_at, m.downloads AS downloads, m.likes AS likes, "
                      "m.pipelineTag AS pipeline_tag, m.libraryName AS library_name, "
                      "m.license AS license, m.stub AS stub, m.tags AS tags, "
                      "m.parameters AS parameters, m.gated AS gated", {"id": model_id})
    if not rows:
        return None
    row = rows[0]
    return ModelRow(**{**row, "stub": bool(row["stub"]), "tags": tuple(row["tags"] or ())})


def parents(store: GraphStore, model_id: str) -> pd.DataFrame:
    """Direct parents with relation type."""
    d = store.dialect
    df = store.frame(f"MATCH (c:Model {{id: $id}})-[e:{LINEAGE_TYPES}]->(m:Model) "
                     f"RETURN {_MODEL_COLS}, {d.rel_type('e')} AS rel, e.inferred AS inferred",
                     {"id": model_id})
    return _with_relation(df)


# Lineage walks. A store whose data cannot change under it (an embedded generation opened
# read-only) offers `lineage_index()`: the lineage subgraph in memory, walked with numpy in
# milliseconds (see graph.lineage_index for why). Other stores (Neo4j, a writable staging copy)
# walk level by level: one query per generation, `UNWIND $ids` over the frontier, each a
# primary-key lookup plus one hop, the same text on every backend and the same answers.
def _lineage_index(store: GraphStore) -> LineageIndex | None:
    get = getattr(store, "lineage_index", None)
    return get() if get is not None else None


def prepare_lineage(store: GraphStore) -> None:
    """Load the store's lineage index now, if it has one (a start-up warm-up, so the first
    lineage request does not wait 2-10 s for it on the full graph)."""
    _lineage_index(store)


def lineage_edges(store: GraphStore) -> pd.DataFrame:
    """Every lineage edge: child, parent, rel (relation type), source (where the link came
    from), inferred (whether its relation was inferred). The input of `LineageIndex`."""
    rel = store.dialect.rel_type("e")
    return store.frame(f"MATCH (c:Model)-[e:{LINEAGE_TYPES}]->(p:Model) "
                       f"RETURN c.id AS child, p.id AS parent, {rel} AS rel, "
                       "e.source AS source, e.inferred AS inferred")


def models_frame(store: GraphStore, ids: list[str]) -> pd.DataFrame:
    """The lineage frames' model properties (id, author, createdAt, downloads, likes,
    pipelineTag, libraryName, license, stub) of the models `ids` that exist."""
    return store.frame(f"UNWIND $ids AS i MATCH (m:Model {{id: i}}) RETURN {_MODEL_COLS}",
                       {"ids": ids})


def _hop_query(store: GraphStore, *, up: bool, with_edge: bool = True) -> str:
    """One hop from the frontier `$ids`: rows (id, via[, rel, source, inferred]) where `id`
    is a parent (up) or a child (down) of the frontier node `via`."""
    if up:
        match = f"UNWIND $ids AS i MATCH (v:Model {{id: i}})-[e:{LINEAGE_TYPES}]->(n:Model)"
    else:
        match = f"UNWIND $ids AS i MATCH (n:Model)-[e:{LINEAGE_TYPES}]->(v:Model {{id: i}})"
    if not with_edge:
        return f"{match} RETURN DISTINCT n.id AS id"
    return (f"{match} RETURN n.id AS id, v.id AS via, {store.dialect.rel_type('e')} AS rel, "
            "e.source AS source, e.inferred AS inferred")


def _walk(store: GraphStore, start: str, max_depth: int, *, up: bool
          ) -> tuple[pd.DataFrame, set[str]]:
    """Breadth-first from `start` along lineage edges (up: to parents, down: to children),
    one query per level.

    Returns one row per node reached within `max_depth` steps: id, via (the neighbour one
    level nearer on a shortest path; the smallest id where several are), rel (that edge's
    type; the smallest where several), that edge's source and inferred, and depth (the
    shortest), nearest first and by id; and
    the set of visited nodes known to have at least one neighbour in the walk's direction.
    """
    query = _hop_query(store, up=up)
    seen = {start}
    levels: list[pd.DataFrame] = []
    expanded: set[str] = set()
    frontier = [start]
    for depth in range(1, max_depth + 1):
        hop = store.frame(query, {"ids": frontier})
        if hop.empty:
            break
        expanded.update(hop["via"])
        hop = hop[~hop["id"].isin(seen)]
        if hop.empty:
            break
        hop = hop.sort_values(["id", "via", "rel"], kind="stable").drop_duplicates("id")
        levels.append(hop.assign(depth=depth))
        frontier = hop["id"].tolist()
        seen.update(frontier)
    if not levels:
        empty = pd.DataFrame(columns=["id", "via", "rel", "source", "inferred", "depth"])
        return empty, expanded
    return pd.concat(levels, ignore_index=True), expanded


def ancestors(store: GraphStore, model_id: str, max_depth: int = 10) -> pd.DataFrame:
    """Every ancestor up to the roots: its shortest depth, the relation of the edge that
    reaches it on that path, the child it was reached from (the smallest id where several
    shortest paths meet), and whether it is a root."""
    depth = min(int(max_depth), MAX_DEPTH)
    index = _lineage_index(store)
    if index is not None:
        start = index.node(model_id)
        walk = index.walk(start, depth, up=True) if start >= 0 else None
        if not walk:
            return _empty_lineage_frame(["child", "is_root"])
        # a walk is ordered by depth, then node index, which is id order
        return index.frame(walk, "child", extra={"is_root": ~index.has_parent(walk.node)})
    found, has_parent = _walk(store, model_id, depth, up=True)
    if found.empty:
        return _empty_lineage_frame(["child", "is_root"])
    if int(found["depth"].max()) == depth:  # the walk stopped at the cap: are these roots?
        last = found.loc[found["depth"] == depth, "id"].tolist()
        has_parent.update(r["id"] for r in store.rows(
            f"UNWIND $ids AS i MATCH (m:Model {{id: i}})-[:{LINEAGE_TYPES}]->(:Model) "
            "RETURN DISTINCT m.id AS id", {"ids": last}))
    paths = found.rename(columns={"via": "child"})
    info = models_frame(store, paths["id"].tolist())
    out = paths[["id", "depth", "rel", "child", "source", "inferred"]].merge(
        info, on="id", how="left")
    out["is_root"] = ~out["id"].isin(has_parent)
    return _with_relation(out).sort_values(["depth", "id"]).reset_index(drop=True)


def descendants(store: GraphStore, model_id: str, max_depth: int = 2,
                limit: int = 50_000) -> pd.DataFrame:
    """Descendants to `max_depth`: id, shortest depth, the relation to its parent on that path
    and that parent's id (the smallest where several are), plus model properties. At most
    `limit` rows, nearest first, then most downloaded."""
    depth = min(int(max_depth), MAX_DEPTH)
    index = _lineage_index(store)
    if index is not None:
        start = index.node(model_id)
        walk = index.walk(start, depth, up=False) if start >= 0 else None
        if not walk:
            return _empty_lineage_frame(["parent"])
        # nearest first, then most downloaded (unknown last), then id (= node index order)
        order = np.lexsort((walk.node, -index.downloads(walk.node), walk.depth))[:limit]
        return index.frame(walk, "parent", order=order)
    found, _ = _walk(store, model_id, depth, up=False)
    if found.empty:
        return _empty_lineage_frame(["parent"])
    info = models_frame(store, found["id"].tolist())
    out = found.rename(columns={"via": "parent"})[
        ["id", "depth", "rel", "parent", "source", "inferred"]].merge(info, on="id", how="left")
    out = out.sort_values(["depth", "downloads", "id"], ascending=[True, False, True])
    return _with_relation(out).head(limit).reset_index(drop=True)


def _empty_lineage_frame(extra: list[str]) -> pd.DataFrame:
    cols = ["id", "depth", "relation", *extra, "source", "inferred", "author", "createdAt",
            "downloads", "likes", "pipelineTag", "libraryName", "license", "stub"]
    return pd.DataFrame(columns=cols)


def descendant_counts(store: GraphStore, model_id: str) -> dict[str, int]:
    """Direct children per relation type, as the Hub's model tree shows them."""
    out = {name: 0 for name in LINEAGE_RELS}
    index = _lineage_index(store)
    if index is not None:
        start = index.node(model_id)
        counts = index.child_counts(start).items() if start >= 0 else ()
        rows = [{"rel": rel, "n": n} for rel, n in counts]
    else:
        rows = store.rows(f"MATCH (c:Model)-[e:{LINEAGE_TYPES}]->(m:Model {{id: $id}}) "
                          f"RETURN {store.dialect.rel_type('e')} AS rel, count(*) AS n",
                          {"id": model_id})
    for r in rows:
        out[REL_TO_RELATION[r["rel"]]] += int(r["n"])
    return out


def family_size(store: GraphStore, model_id: str, max_depth: int = 10) -> int:
    """Number of distinct descendants at any depth up to `max_depth`."""
    depth = min(int(max_depth), MAX_DEPTH)
    index = _lineage_index(store)
    if index is not None:
        start = index.node(model_id)
        return len(index.walk(start, depth, up=False)) if start >= 0 else 0
    query = _hop_query(store, up=False, with_edge=False)
    seen, frontier = {model_id}, [model_id]
    for _ in range(depth):
        frontier = [i for i in store.frame(query, {"ids": frontier})["id"] if i not in seen]
        if not frontier:
            break
        seen.update(frontier)
    return len(seen) - 1


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


# -- overview and timelines --------------------------------------------------------------
#: how uploads per month can be grouped → the model property holding the group
UPLOAD_GROUPS = {"task": "pipelineTag", "library": "libraryName"}


def uploads_by_month(store: GraphStore, by: str = "task") -> pd.DataFrame:
    """Models with a known creation date per month and group: ym (yyyymm), grp, n.

    Models the Hub back-filled with 2022-03-02 have no known date and are left out."""
    if by not in UPLOAD_GROUPS:
        raise ValueError(f"by must be one of {sorted(UPLOAD_GROUPS)}, got {by!r}")
    return store.frame(
        f"MATCH (m:Model) WHERE m.createdAt IS NOT NULL "
        f"RETURN {store.dialect.year_month('m.createdAt')} AS ym, "
        f"m.{UPLOAD_GROUPS[by]} AS grp, count(*) AS n")


def models_per_licence(store: GraphStore) -> pd.DataFrame:
    """Real (non-stub) models per stated licence: licence, n."""
    return store.frame("MATCH (m:Model) WHERE m.stub IS NULL OR m.stub = false "
                       "RETURN m.license AS licence, count(*) AS n")


def derivatives_by_month(store: GraphStore, model_id: str) -> pd.DataFrame:
    """Direct derivatives of one model per creation month and relation type: ym (0 when
    unknown), rel, n."""
    d = store.dialect
    return store.frame(
        f"MATCH (c:Model)-[e:{LINEAGE_TYPES}]->(m:Model {{id: $id}}) "
        f"RETURN CASE WHEN c.createdAt IS NULL THEN 0 "
        f"ELSE {d.year_month('c.createdAt')} END AS ym, "
        f"{d.rel_type('e')} AS rel, count(*) AS n", {"id": model_id})


def model_created_dates(store: GraphStore) -> pd.Series:
    """Creation dates of every real (non-stub) model with a known date: where the graph's
    observations end is read from them (`analytics.pipeline.observed_until`)."""
    df = store.frame("MATCH (m:Model) WHERE (m.stub IS NULL OR m.stub = false) AND "
                     "m.createdAt IS NOT NULL RETURN m.createdAt AS createdAt")
    return utc_times(df["createdAt"])


def model_ids_downloads(store: GraphStore) -> pd.DataFrame:
    """Every model id with its downloads (the type-ahead index's input): id, downloads."""
    return store.frame("MATCH (m:Model) RETURN m.id AS id, m.downloads AS downloads")


# -- derived properties (written by the scheduled job) -------------------------------------
def set_node_properties(store: GraphStore, label: Label, columns: list[str]) -> str:
    """`UNWIND $rows` (id + `columns`) setting derived properties on existing nodes."""
    types = dict(NODE_SPECS[label].properties)
    unknown = [c for c in columns if c not in types or c == "id"]
    if unknown:
        raise ValueError(f"not settable properties of {label.value}: {unknown}")
    sets = ", ".join(f"n.{c} = {_cast(store, 'r.' + c, types[c])}" for c in columns)
    return f"UNWIND $rows AS r MATCH (n:{label.value} {{id: r.id}}) SET {sets}"


def clear_node_properties(label: Label, columns: list[str], marker: str) -> str:
    """Null `columns` on every node where `marker` is set (before writing fresh values)."""
    types = dict(NODE_SPECS[label].properties)
    if marker not in types or any(c not in types for c in columns):
        raise ValueError(f"unknown properties of {label.value}: {[marker, *columns]}")
    sets = ", ".join(f"n.{c} = NULL" for c in columns)
    return f"MATCH (n:{label.value}) WHERE n.{marker} IS NOT NULL SET {sets}"


# -- parent resolution (ingest's IdResolver and `python -m ingest resolution`) ---------------
def model_resolution_stats(store: GraphStore) -> pd.DataFrame:
    """Every real model: id, downloads, and how many lineage edges name it as a parent."""
    return store.frame(
        "MATCH (m:Model) WHERE m.stub IS NULL OR m.stub = false "
        f"OPTIONAL MATCH (:Model)-[e:{LINEAGE_TYPES}]->(m) "
        "RETURN m.id AS id, m.downloads AS downloads, count(e) AS parents_named")


def stub_parent_links(store: GraphStore) -> pd.DataFrame:
    """Stub models named as a parent: id and the number of lineage edges pointing at it."""
    return store.frame(
        f"MATCH (:Model)-[e:{LINEAGE_TYPES}]->(m:Model) WHERE m.stub = true "
        "RETURN m.id AS id, count(e) AS links")


def model_parameters(store: GraphStore) -> pd.DataFrame:
    """id, parameters of every real model whose parameter count is known."""
    return store.frame("MATCH (m:Model) WHERE m.parameters IS NOT NULL AND "
                       "(m.stub IS NULL OR m.stub = false) "
                       "RETURN m.id AS id, m.parameters AS parameters")


def models_of_authors(store: GraphStore, authors: list[str]) -> pd.DataFrame:
    """id, author, tags, library of every real model of the given authors (ingest's author
    habits for the relation typer)."""
    # through PUBLISHED from the author's node (an IN filter: an UNWIND join was 8x slower)
    found = store.frame(f"MATCH (u:{Label.ACCOUNT.value})-[:{Rel.PUBLISHED.value}]->(m:Model) "
                        "WHERE u.id IN $authors AND (m.stub IS NULL OR m.stub = false) "
                        "RETURN m.id AS id, u.id AS author, m.tags AS tags, "
                        "m.libraryName AS library", {"authors": authors})
    if not len(found):
        return pd.DataFrame(columns=["id", "author", "tags", "library"])
    return found.reset_index(drop=True)


# -- account types (ingest.accounts, the Overview and Publishers) ----------------------------
_ACCOUNT, _PUBLISHED = Label.ACCOUNT.value, Rel.PUBLISHED.value


def accounts_to_ask(store: GraphStore, limit: int) -> list[str]:
    """Up to `limit` accounts the Hub has not answered for yet (`accountCheckedAt` null), the
    most downloaded first (their models' downloads summed), then by id: what the next
    account-type lookups ask."""
    rows = store.rows(
        f"MATCH (a:{_ACCOUNT}) WHERE a.accountCheckedAt IS NULL "
        f"OPTIONAL MATCH (a)-[:{_PUBLISHED}]->(m:Model) "
        "WITH a.id AS id, sum(coalesce(m.downloads, 0)) AS downloads "
        "RETURN id ORDER BY downloads DESC, id LIMIT $limit", {"limit": int(limit)})
    return [r["id"] for r in rows]


def accounts_unasked(store: GraphStore) -> int:
    """How many accounts the Hub has not answered for yet."""
    return int(store.rows(f"MATCH (a:{_ACCOUNT}) WHERE a.accountCheckedAt IS NULL "
                          "RETURN count(a) AS n")[0]["n"])


def set_account_types(store: GraphStore) -> str:
    """`UNWIND $rows` (id, accountType, accountCheckedAt): what the Hub said of each account."""
    return set_node_properties(store, Label.ACCOUNT, ["accountType", "accountCheckedAt"])


def account_types(store: GraphStore) -> pd.DataFrame:
    """Every account: author (its id), account_type, account_checked (the Hub has answered
    for it)."""
    return store.frame(f"MATCH (a:{_ACCOUNT}) RETURN a.id AS author, "
                       "a.accountType AS account_type, "
                       "a.accountCheckedAt IS NOT NULL AS account_checked")


def publishers_by_account_type(store: GraphStore) -> pd.DataFrame:
    """Per account type and whether the Hub was asked: accounts, models (real ones they
    published), downloads (of those models): account_type, checked, accounts, models,
    downloads."""
    per_account = store.frame(
        f"MATCH (a:{_ACCOUNT}) OPTIONAL MATCH (a)-[:{_PUBLISHED}]->(m:Model) "
        "RETURN a.id AS id, a.accountType AS account_type, "
        "a.accountCheckedAt IS NOT NULL AS checked, count(m) AS models, "
        "sum(coalesce(m.downloads, 0)) AS downloads")
    cols = ["account_type", "checked", "accounts", "models", "downloads"]
    if per_account.empty:
        return pd.DataFrame(columns=cols)
    out = per_account.groupby(["account_type", "checked"], as_index=False).agg(
        accounts=("id", "size"), models=("models", "sum"), downloads=("downloads", "sum"))
    return out[cols].astype({"accounts": "int64", "models": "int64", "downloads": "int64"})
