"""The model rows search, recommendation and tracing read: the graph's rows
(`graph.retrieval_queries`) with their datasets, parents and family sizes attached."""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd

from graph import retrieval_queries as rq
from graph.store import GraphStore


def family_sizes(lineage: pd.DataFrame) -> dict[str, int]:
    """Distinct descendants at any depth for every model that has a child."""
    children: dict[str, list[str]] = defaultdict(list)
    for c, p in zip(lineage["child"].to_numpy(), lineage["parent"].to_numpy()):
        if c != p:
            children[p].append(c)
    out: dict[str, int] = {}
    for root in children:
        seen: set[str] = set()
        stack = list(children[root])
        while stack:
            node = stack.pop()
            if node in seen or node == root:
                continue
            seen.add(node)
            stack.extend(children.get(node, ()))
        out[root] = len(seen)
    return out


def _lists_by_key(ids: list[str], keys: pd.Series, values: pd.Series) -> list[list]:
    """For each id, the values of its rows in (keys, values), in row order ([] if none).
    A plain dict of lists: pandas' groupby(...).agg(list) is ~100x slower on 120k links."""
    grouped: dict[str, list] = {}
    for key, value in zip(keys.tolist(), values.tolist()):
        grouped.setdefault(key, []).append(value)
    return [grouped.get(i, []) for i in ids]


def attach_links(models: pd.DataFrame, datasets: pd.DataFrame,
                 lineage: pd.DataFrame) -> pd.DataFrame:
    """Add `datasets` (list), `bases` (list of parent ids), `base_relations` (list, aligned)
    and `family_size` (distinct descendants) to a `model_frame`."""
    out = models.copy()
    # Sorted, so a model's text (and so its vector's hash) does not depend on the order in
    # which the engine happened to return its links.
    datasets = datasets.sort_values(["model", "dataset"], kind="stable")
    lineage = lineage.sort_values(["child", "parent"], kind="stable")
    ids = out["id"].tolist()
    out["datasets"] = _lists_by_key(ids, datasets["model"], datasets["dataset"])
    out["bases"] = _lists_by_key(ids, lineage["child"], lineage["parent"])
    out["base_relations"] = _lists_by_key(ids, lineage["child"], lineage["relation"])
    fam = family_sizes(lineage) if len(lineage) else {}
    out["family_size"] = out["id"].map(fam).fillna(0).astype(np.int64)
    return out


def model_text_frame(store: GraphStore) -> pd.DataFrame:
    """One row per non-stub model with everything its search text and scores need:
    id, author, pipelineTag, libraryName, tags, license, cardText, downloads, likes,
    createdAt, datasets, bases, base_relations, family_size."""
    return attach_links(rq.model_frame(store), rq.model_dataset_links(store),
                        rq.lineage_links(store))
