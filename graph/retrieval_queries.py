"""The Cypher behind search, recommendation, tracing and their evaluation.

Every statement is a `$`-parameterised constant in the subset Kùzu and Neo4j share; relation
types are formatted in only from `graph.schema` enums, and the one dialect difference (the
name of a relation's type) goes through `store.dialect`. The rows are joined into the frame
search reads in `analytics.model_rows` (plain pandas, so the evaluation can attach *training*
links only, after holding some out).
"""
from __future__ import annotations

from datetime import datetime
from typing import Iterable

import numpy as np
import pandas as pd

from graph.schema import LINEAGE_RELS, REL_TO_RELATION, Rel
from graph.store import GraphStore

LINEAGE_TYPES = "|".join(r.value for r in LINEAGE_RELS.values())

MODEL_ROWS = (
    "MATCH (m:Model) WHERE m.stub IS NULL OR m.stub = false "
    "RETURN m.id AS id, m.author AS author, m.pipelineTag AS pipelineTag, "
    "m.libraryName AS libraryName, m.tags AS tags, m.license AS license, "
    "m.cardText AS cardText, m.downloads AS downloads, m.likes AS likes, "
    "m.createdAt AS createdAt")

MODEL_DATASET_LINKS = (
    f"MATCH (m:Model)-[:{Rel.TRAINED_ON.value}]->(d:Dataset) "
    "RETURN m.id AS model, d.id AS dataset")

DATASET_ROWS = (
    "UNWIND $ids AS i MATCH (d:Dataset {id: i}) "
    "RETURN d.id AS id, d.downloads AS downloads, d.likes AS likes, d.stub AS stub")

CHANGED_MODELS = (
    "MATCH (m:Model) WHERE (m.stub IS NULL OR m.stub = false) AND "
    "((m.lastModified IS NOT NULL AND m.lastModified >= $ts) OR "
    "(m.createdAt IS NOT NULL AND m.createdAt >= $ts)) RETURN m.id AS id")


def _lineage_query(store: GraphStore) -> str:
    return (f"MATCH (c:Model)-[e:{LINEAGE_TYPES}]->(p:Model) "
            f"RETURN c.id AS child, p.id AS parent, {store.dialect.rel_type('e')} AS rel")


# -- raw frames ------------------------------------------------------------------------------
def model_frame(store: GraphStore) -> pd.DataFrame:
    """One row per non-stub model: the properties retrieval needs (no links)."""
    df = store.frame(MODEL_ROWS)
    df["createdAt"] = pd.to_datetime(df["createdAt"])
    for col in ("downloads", "likes"):
        df[col] = pd.to_numeric(df[col], errors="coerce").fillna(0).astype(np.int64)
    df["tags"] = df["tags"].map(lambda t: list(t) if isinstance(t, (list, tuple, np.ndarray))
                                else [])
    return df.reset_index(drop=True)


def model_dataset_links(store: GraphStore) -> pd.DataFrame:
    """Every Model→Dataset TRAINED_ON link: columns model, dataset."""
    return store.frame(MODEL_DATASET_LINKS)


def lineage_links(store: GraphStore) -> pd.DataFrame:
    """Every child→parent lineage link: child, parent, relation (finetune/adapter/…)."""
    df = store.frame(_lineage_query(store))
    if df.empty:
        return pd.DataFrame(columns=["child", "parent", "relation"])
    df["relation"] = df["rel"].map(REL_TO_RELATION)
    return df.drop(columns="rel")


def dataset_frame(store: GraphStore, ids: Iterable[str]) -> pd.DataFrame:
    """Downloads, likes and stub flag of the given datasets."""
    ids = list(dict.fromkeys(ids))
    if not ids:
        return pd.DataFrame(columns=["id", "downloads", "likes", "stub"])
    return store.frame(DATASET_ROWS, {"ids": ids})


def changed_models_since(store: GraphStore, ts: datetime) -> list[str]:
    """Models created or modified at or after `ts` (what an incremental ingest touched)."""
    return [r["id"] for r in store.rows(CHANGED_MODELS, {"ts": ts})]
