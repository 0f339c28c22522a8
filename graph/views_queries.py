"""Cypher for the licence audit, publisher, trends, compare and export views.

Same rules as `graph.queries`: identifiers only from `graph.schema`, values as `$`-parameters,
the subset Kùzu and Neo4j share (dialect differences through `store.dialect`). Whole-graph
reads here feed the batch builders in `analytics`; the per-author and per-model reads are
cheap enough for a page request (a few hundred ms on the full graph).
"""
from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa

from graph import queries as q
from graph.schema import (
    LICENCE_PROPERTIES,
    NODE_SPECS,
    REL_SPECS,
    REL_TO_RELATION,
    Label,
    Rel,
)
from graph.store import GraphStore

_LINEAGE = q.LINEAGE_TYPES
_DEPTH = q.MAX_DEPTH


def _relation(df: pd.DataFrame) -> pd.DataFrame:
    if "rel" in df:
        df = df.assign(relation=df["rel"].map(REL_TO_RELATION)).drop(columns="rel")
    return df


def _by_author(var: str) -> str:
    """`var` is published by $author; stub models carry no author, only their id's namespace."""
    return (f"({var}.author = $author OR ({var}.author IS NULL AND "
            f"{var}.id STARTS WITH $prefix))")


def _author_params(author: str) -> dict[str, Any]:
    return {"author": author, "prefix": author + "/"}


# -- licence audit ---------------------------------------------------------------------------
def lineage_edges_with_models(store: GraphStore) -> pd.DataFrame:
    """Every lineage edge with both ends' author, licence and downloads: child, child_author,
    child_licence, child_downloads, parent, parent_author, parent_licence, parent_downloads,
    relation. The input of `analytics.licences.audit_edges` (~127k rows, ~2 s)."""
    d = store.dialect
    df = store.frame(
        f"MATCH (c:Model)-[e:{_LINEAGE}]->(p:Model) "
        "RETURN c.id AS child, c.author AS child_author, c.license AS child_licence, "
        "c.downloads AS child_downloads, p.id AS parent, p.author AS parent_author, "
        "p.license AS parent_licence, p.downloads AS parent_downloads, "
        f"{d.rel_type('e')} AS rel")
    return _relation(df)


def write_licence_verdicts(store: GraphStore, rows: pa.Table, *, batch: int = 5000) -> None:
    """Replace every stored licence verdict in one transaction: clear, then set, through the
    shared derived-property builders (`graph.queries.clear_node_properties` /
    `set_node_properties`). rows: id + the `LICENCE_PROPERTIES` columns. 116k models in
    ~3.2 s on the full graph (LadybugDB)."""
    names = [n for n, _ in LICENCE_PROPERTIES]
    missing = [n for n in ["id", *names] if n not in rows.column_names]
    if missing:
        raise ValueError(f"verdict rows lack {missing}")
    query = q.set_node_properties(store, Label.MODEL, names)
    records = rows.select(["id", *names]).to_pylist()
    store.write([(q.clear_node_properties(Label.MODEL, names, marker=names[0]), {})]
                + [(query, {"rows": records[i:i + batch]})
                   for i in range(0, len(records), batch)])


def stored_licence_verdicts(store: GraphStore) -> pd.DataFrame:
    """Models with a stored verdict: id, licenseVerdict, licenseChainVerdict, familyRoot."""
    return store.frame("MATCH (m:Model) WHERE m.licenseVerdict IS NOT NULL "
                       "RETURN m.id AS id, m.licenseVerdict AS licenseVerdict, "
                       "m.licenseChainVerdict AS licenseChainVerdict, "
                       "m.familyRoot AS familyRoot")


# -- publishers ------------------------------------------------------------------------------
def author_models(store: GraphStore, author: str) -> pd.DataFrame:
    """The models `author` published: id, createdAt, downloads, likes, pipelineTag,
    libraryName, license, stub, children (direct derivatives)."""
    df = store.frame(
        f"MATCH (m:Model) WHERE {_by_author('m')} "
        "OPTIONAL MATCH (c:Model)-[e:" + _LINEAGE + "]->(m) "
        "RETURN m.id AS id, m.createdAt AS createdAt, m.downloads AS downloads, "
        "m.likes AS likes, m.pipelineTag AS pipelineTag, m.libraryName AS libraryName, "
        "m.license AS license, m.stub AS stub, count(c) AS children", _author_params(author))
    return df.sort_values(["children", "downloads", "id"], ascending=[False, False, True],
                          na_position="last").reset_index(drop=True)


def author_derivatives(store: GraphStore, author: str) -> pd.DataFrame:
    """Direct derivatives of `author`'s models: id, author, createdAt, downloads, license,
    relation, parent. (Their own derivatives of their own models included; filter on author.)"""
    d = store.dialect
    df = store.frame(
        f"MATCH (c:Model)-[e:{_LINEAGE}]->(p:Model) WHERE {_by_author('p')} "
        "RETURN c.id AS id, c.author AS author, c.createdAt AS createdAt, "
        "c.downloads AS downloads, c.license AS license, "
        f"{d.rel_type('e')} AS rel, p.id AS parent", _author_params(author))
    return _relation(df)


def author_family(store: GraphStore, author: str) -> pd.DataFrame:
    """Every model descending (at any depth) from `author`'s models: id, author, createdAt,
    downloads, depth (shortest)."""
    return store.frame(
        f"MATCH p = (c:Model)-[:{_LINEAGE}*1..{_DEPTH}]->(m:Model) WHERE {_by_author('m')} "
        "RETURN c.id AS id, c.author AS author, c.createdAt AS createdAt, "
        "c.downloads AS downloads, min(length(p)) AS depth", _author_params(author))


def author_totals(store: GraphStore) -> pd.DataFrame:
    """Per author over the whole graph: author, models, downloads, likes (real models only)."""
    return store.frame("MATCH (m:Model) WHERE m.author IS NOT NULL "
                       "AND (m.stub IS NULL OR m.stub = false) "
                       "RETURN m.author AS author, count(*) AS models, "
                       "sum(m.downloads) AS downloads, sum(m.likes) AS likes")


# -- trends ----------------------------------------------------------------------------------
_OBS_COLS = ("m.id AS id, r.id AS run, r.source AS source, r.startedAt AS startedAt, "
             "o.at AS at, o.downloads AS downloads, o.likes AS likes")


def model_observations(store: GraphStore, model_ids: list[str]) -> pd.DataFrame:
    """Downloads and likes of the given models as each ingest run saw them: id, run, source,
    startedAt, at, downloads, likes (time order)."""
    df = store.frame(
        f"UNWIND $ids AS i MATCH (m:Model {{id: i}})-[o:{Rel.OBSERVED_IN.value}]->"
        f"(r:{Label.INGEST_RUN.value}) RETURN {_OBS_COLS}", {"ids": list(model_ids)})
    return df.sort_values(["id", "at", "startedAt", "run"]).reset_index(drop=True)


def repeated_observations(store: GraphStore) -> pd.DataFrame:
    """Every observation of the models observed by at least two runs (the input of
    `analytics.trends.build_trending`): id, run, source, startedAt, at, downloads, likes."""
    obs = Rel.OBSERVED_IN.value
    return store.frame(
        f"MATCH (m:Model)-[o:{obs}]->(:{Label.INGEST_RUN.value}) WITH m, count(o) AS n "
        f"WHERE n >= 2 MATCH (m)-[o:{obs}]->(r:{Label.INGEST_RUN.value}) "
        f"RETURN {_OBS_COLS}")


def observation_runs(store: GraphStore) -> pd.DataFrame:
    """Ingest runs with how many models each observed: run, source, startedAt, at, models."""
    return store.frame(
        f"MATCH (m:Model)-[o:{Rel.OBSERVED_IN.value}]->(r:{Label.INGEST_RUN.value}) "
        "RETURN r.id AS run, r.source AS source, r.startedAt AS startedAt, min(o.at) AS at, "
        "count(*) AS models ORDER BY at, startedAt")


# -- compare and export ---------------------------------------------------------------------
_EXPORT_MODEL_PROPS = ("author", "createdAt", "downloads", "likes", "pipelineTag",
                       "libraryName", "license", "parameters", "gated", "stub",
                       *(n for n, _ in LICENCE_PROPERTIES))
_EXPORT_EDGE_PROPS = tuple(n for n, _ in REL_SPECS[Rel.FINETUNE_OF].properties)


def _fill(df: pd.DataFrame, names: tuple[str, ...]) -> pd.DataFrame:
    for n in names:  # an empty result still has every column
        if n not in df:
            df[n] = None
    return df


def models_by_id(store: GraphStore, model_ids: list[str]) -> pd.DataFrame:
    """Key properties of the given models (those in the graph): id plus `_EXPORT_MODEL_PROPS`."""
    cols = ", ".join(f"m.{p} AS {p}" for p in _EXPORT_MODEL_PROPS)
    df = store.frame(f"UNWIND $ids AS i MATCH (m:Model {{id: i}}) RETURN m.id AS id, {cols}",
                     {"ids": list(model_ids)})
    return _fill(df, _EXPORT_MODEL_PROPS)


def lineage_edges_from(store: GraphStore, model_ids: list[str]) -> pd.DataFrame:
    """Every lineage edge leaving the given models: child, parent, relation, and the edge
    properties (inferred, source)."""
    d = store.dialect
    props = "".join(f", e.{p} AS {p}" for p in _EXPORT_EDGE_PROPS)
    df = _relation(store.frame(
        f"UNWIND $ids AS i MATCH (c:Model {{id: i}})-[e:{_LINEAGE}]->(p:Model) "
        f"RETURN c.id AS child, p.id AS parent, {d.rel_type('e')} AS rel{props}",
        {"ids": list(model_ids)}))
    return _fill(df, _EXPORT_EDGE_PROPS)


def derivative_edges_of(store: GraphStore, model_ids: list[str]) -> pd.DataFrame:
    """`graph.queries.derivative_edges` for the given parents only: parent, parent_created,
    child, child_created, relation."""
    d = store.dialect
    df = store.frame(
        f"UNWIND $ids AS i MATCH (c:Model)-[e:{_LINEAGE}]->(p:Model {{id: i}}) "
        "RETURN p.id AS parent, p.createdAt AS parent_created, c.id AS child, "
        f"c.createdAt AS child_created, {d.rel_type('e')} AS rel", {"ids": list(model_ids)})
    df = _relation(df)
    for col in ("parent_created", "child_created"):
        df[col] = pd.to_datetime(df[col])
    return df


def node_table_page(store: GraphStore, label: Label, columns: list[str], skip: int,
                    limit: int) -> pd.DataFrame:
    """One page of a node table (the given declared properties, id first), in id order."""
    names = [n for n, _ in NODE_SPECS[label].properties if n in set(columns)]
    cols = ", ".join(f"n.{p} AS {p}" for p in names)
    return store.frame(f"MATCH (n:{label.value}) RETURN {cols} ORDER BY n.id "
                       "SKIP $skip LIMIT $limit", {"skip": int(skip), "limit": int(limit)})


def rel_table_page(store: GraphStore, rel: Rel, src: Label, dst: Label, columns: list[str],
                   skip: int, limit: int) -> pd.DataFrame:
    """One page of a relation table: from, to and the given declared properties."""
    names = [n for n, _ in REL_SPECS[rel].properties if n in set(columns)]
    props = "".join(f", e.{p} AS {p}" for p in names)
    return store.frame(f"MATCH (a:{src.value})-[e:{rel.value}]->(b:{dst.value}) "
                       f"RETURN a.id AS `from`, b.id AS `to`{props} ORDER BY `from`, `to` "
                       "SKIP $skip LIMIT $limit", {"skip": int(skip), "limit": int(limit)})
