"""A model's family, ready to show: counts per relation and depth, licence drift along the
tree, derivatives per month and the capped, drawable lineage subgraph.

Pure functions over the frames of `graph.queries` (`ancestors`, `descendants`,
`derivatives_by_month`); no Cypher here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analytics.overview import month_from_ym
from graph.dates import utc_times
from graph.queries import ModelRow
from graph.schema import LINEAGE_RELS, REL_TO_RELATION


def derivatives_per_month(rows: pd.DataFrame) -> pd.DataFrame:
    """Direct derivatives per month and relation from `graph.queries.derivatives_by_month`
    rows (ym = yyyymm, 0 when the child's creation date is unknown; rel): month, relation, n.

    Children without a creation date are returned with month NaT.
    """
    if rows.empty:
        return pd.DataFrame({"month": pd.Series(dtype="datetime64[ns]"),
                             "relation": pd.Series(dtype=str), "n": pd.Series(dtype="int64")})
    df = rows.copy()
    df["relation"] = df["rel"].map(REL_TO_RELATION)
    known = df["ym"] > 0
    df["month"] = pd.NaT
    df.loc[known, "month"] = month_from_ym(df.loc[known, "ym"]).values
    df["month"] = pd.to_datetime(df["month"])
    out = df.groupby(["month", "relation"], as_index=False, dropna=False)["n"].sum()
    return out.sort_values(["month", "relation"]).reset_index(drop=True)


def relation_counts(lineage: pd.DataFrame) -> dict[str, int]:
    """Rows of a descendants frame per relation (all relation names present, zeros kept)."""
    counts = lineage["relation"].value_counts() if len(lineage) else pd.Series(dtype=int)
    return {name: int(counts.get(name, 0)) for name in LINEAGE_RELS}


def depth_counts(lineage: pd.DataFrame) -> pd.DataFrame:
    """Descendants per depth and relation: depth, plus one column per relation, plus total."""
    if lineage.empty:
        return pd.DataFrame(columns=["depth", *LINEAGE_RELS, "total"])
    wide = lineage.pivot_table(index="depth", columns="relation", values="id",
                               aggfunc="count", fill_value=0)
    for name in LINEAGE_RELS:
        if name not in wide:
            wide[name] = 0
    wide = wide[list(LINEAGE_RELS)]
    wide["total"] = wide.sum(axis=1)
    return wide.reset_index()


def dated_before_base(lineage: pd.DataFrame, model: ModelRow | None) -> pd.Series:
    """For each descendant row: True when it is dated before its own parent (the Hub
    back-filled creation dates of old repos, so a derivative can look older than its base).
    Unknown dates are never flagged."""
    if lineage.empty:
        return pd.Series(dtype=bool)
    created = utc_times(lineage["createdAt"])
    parent_created = dict(zip(lineage["id"], created))
    if model is not None:
        parent_created[model.id] = utc_times(model.created_at)
    parents = utc_times(lineage["parent"].map(parent_created))
    return (created < parents).fillna(False).astype(bool).rename("dated_before_base")


def licence_drift(lineage: pd.DataFrame, model: ModelRow | None) -> pd.DataFrame:
    """Descendants whose licence differs from their own parent's.

    `lineage` is a `graph.queries.descendants` frame (it carries each child's parent and
    licence); `model` the focus model (`get_model`), the parent of depth-1 rows. Returns id,
    depth, relation, parent, parent_licence, licence, drift where drift is "changed" (both
    stated, different), "dropped" (parent states one, child none) or "added"; unchanged
    children are left out.
    """
    cols = ["id", "depth", "relation", "parent", "parent_licence", "licence", "drift"]
    if lineage.empty:
        return pd.DataFrame(columns=cols)
    licences = dict(zip(lineage["id"], lineage["license"]))
    if model is not None:
        licences[model.id] = model.license
    df = lineage.assign(parent_licence=lineage["parent"].map(licences),
                        licence=lineage["license"])
    norm = lambda s: s.where(s.notna() & (s.astype(str) != ""), None)  # noqa: E731
    child, parent = norm(df["licence"]), norm(df["parent_licence"])
    drift = np.select(
        [child.notna() & parent.notna() & (child != parent),
         child.isna() & parent.notna(),
         child.notna() & parent.isna()],
        ["changed", "dropped", "added"], default="")
    df = df.assign(drift=drift)
    df = df[df["drift"] != ""]
    order = {"changed": 0, "dropped": 1, "added": 2}
    df = df.assign(_o=df["drift"].map(order)).sort_values(["_o", "depth", "id"])
    return df[cols].reset_index(drop=True)


@dataclass
class LineageGraph:
    """A capped lineage subgraph for drawing.

    nodes: id, kind ("focus" | "ancestor" | "descendant" | "summary"), relation (of the edge
    to its parent; None for the focus and ancestors' top), depth (negative for ancestors),
    downloads, caption. edges: source (child), target (parent), relation, origin (where the
    link came from: the edge's `source` property, e.g. `typed_tag` or `card_text`) and
    inferred (whether its relation was inferred). hidden: relation →
    descendants not drawn (each drawn as one summary node hanging off the focus model).
    """

    nodes: pd.DataFrame
    edges: pd.DataFrame
    hidden: dict[str, int] = field(default_factory=dict)
    total: int = 0

    @property
    def shown(self) -> int:
        return int((self.nodes["kind"] != "summary").sum())

    @property
    def model_ids(self) -> set[str]:
        """The drawn models (summary nodes excluded): the ones a click can re-centre on."""
        return set(self.nodes.loc[self.nodes["kind"] != "summary", "id"].astype(str))

    def node_records(self) -> list[dict[str, Any]]:
        """Nodes as JSON-safe dicts (no NaN: a browser's JSON.parse rejects it)."""
        out = []
        for r in self.nodes.to_dict("records"):
            downloads = r["downloads"]
            out.append({"id": str(r["id"]), "kind": r["kind"],
                        "relation": r["relation"] if isinstance(r["relation"], str) else "",
                        "depth": int(r["depth"]),
                        "downloads": None if downloads is None or pd.isna(downloads)
                        else int(downloads),
                        "caption": str(r["caption"])})
        return out

    def edge_records(self) -> list[dict[str, Any]]:
        return [{"source": str(r["source"]), "target": str(r["target"]),
                 "relation": r["relation"] if isinstance(r["relation"], str) else "",
                 "origin": r["origin"] if isinstance(r["origin"], str) else "",
                 "inferred": bool(r["inferred"]) if isinstance(r["inferred"], (bool, np.bool_))
                 else None}
                for r in self.edges.to_dict("records")]


def lineage_graph(model: ModelRow, ancestors: pd.DataFrame,
                  descendants: pd.DataFrame, *, cap: int = 200) -> LineageGraph:
    """Build the drawable subgraph from `ancestors`/`descendants` frames of `graph.queries`.

    All ancestors are kept (they are few); descendants nearest first, then most downloaded,
    until `cap` nodes; since a level is taken whole before the next, every kept descendant's
    parent is kept too. The rest are counted per relation in `hidden`.
    """
    focus = model.id
    nodes = [{"id": focus, "kind": "focus", "relation": None, "depth": 0,
              "downloads": model.downloads, "caption": focus}]
    edges = []
    anc = ancestors.head(max(cap // 4, 1)) if len(ancestors) else ancestors
    for r in anc.to_dict("records"):
        nodes.append({"id": r["id"], "kind": "ancestor", "relation": r["relation"],
                      "depth": -int(r["depth"]), "downloads": r.get("downloads"),
                      "caption": r["id"]})
    anc_ids = set(anc["id"]) if len(anc) else set()
    for r in anc.to_dict("records"):
        if r["child"] == focus or r["child"] in anc_ids:
            edges.append({"source": r["child"], "target": r["id"], "relation": r["relation"],
                          "origin": r.get("source"), "inferred": r.get("inferred")})
    room = max(cap - len(nodes), 0)
    desc = descendants.sort_values(["depth", "downloads"], ascending=[True, False],
                                   na_position="last") if len(descendants) else descendants
    kept, rest = desc.head(room), desc.iloc[room:]
    for r in kept.to_dict("records"):
        nodes.append({"id": r["id"], "kind": "descendant", "relation": r["relation"],
                      "depth": int(r["depth"]), "downloads": r.get("downloads"),
                      "caption": r["id"]})
        edges.append({"source": r["id"], "target": r["parent"], "relation": r["relation"],
                      "origin": r.get("source"), "inferred": r.get("inferred")})
    hidden = {k: int(v) for k, v in rest["relation"].value_counts().items()} if len(rest) else {}
    for relation, n in hidden.items():
        sid = f"+{n:,} more {relation}"
        nodes.append({"id": sid, "kind": "summary", "relation": relation, "depth": 1,
                      "downloads": None, "caption": f"+{n:,} more ({relation})"})
        edges.append({"source": sid, "target": focus, "relation": relation, "origin": None,
                      "inferred": None})
    ndf = pd.DataFrame(nodes, columns=["id", "kind", "relation", "depth", "downloads",
                                       "caption"])
    edf = pd.DataFrame(edges, columns=["source", "target", "relation", "origin", "inferred"])
    known = set(ndf["id"])
    edf = edf[edf["source"].isin(known) & edf["target"].isin(known)].reset_index(drop=True)
    return LineageGraph(ndf, edf, hidden, total=len(ancestors) + len(descendants) + 1)


def node_size(downloads: Any, kind: str) -> float:
    """Display size of a lineage node: log-scaled downloads, the focus model largest."""
    if kind == "focus":
        return 40.0
    if kind == "summary":
        return 25.0
    try:
        d = float(downloads)
    except (TypeError, ValueError):
        d = 0.0
    if not np.isfinite(d) or d < 0:
        d = 0.0
    return float(8 + 3 * np.log10(1 + d))
