"""Dashboard queries beyond `graph.queries`: monthly uploads, licences, a model's timeline,
licence drift, the type-ahead id index and the capped lineage subgraph for the viz.

Same rules as `graph.queries`: identifiers come only from `graph.schema`, values travel as
`$`-parameters, and the few dialect differences (month of a timestamp) are resolved here by
`store.dialect`. Everything returns plain pandas/numpy objects so pages stay free of Cypher
and arithmetic.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from graph import queries as q
from graph.schema import LINEAGE_RELS, REL_TO_RELATION
from graph.store import GraphStore

#: relation name → colour, shared by every chart and the lineage graph
RELATION_COLOURS: dict[str, str] = {
    "finetune": "#1f77b4",
    "adapter": "#ff7f0e",
    "quantized": "#2ca02c",
    "merge": "#9467bd",
    "unknown": "#7f7f7f",
}
FOCUS_COLOUR = "#d62728"
ANCESTOR_COLOUR = "#8c564b"
SUMMARY_COLOUR = "#c7c7c7"

OTHER = "(other)"
NONE = "(none)"


def _year_month(store: GraphStore, expr: str) -> str:
    """An integer yyyymm of a timestamp expression, in the store's dialect."""
    return store.dialect.year_month(expr)


def _month_from_ym(ym: pd.Series) -> pd.Series:
    ym = ym.astype("int64")
    return pd.to_datetime(pd.DataFrame({"year": ym // 100, "month": ym % 100, "day": 1}))


def _lump(df: pd.DataFrame, col: str, top: int) -> pd.DataFrame:
    """Keep the `top` largest values of `col` (by total n), lump the rest into OTHER; rows
    without a value become NONE (kept, and not counted in `top`)."""
    df = df.copy()
    df[col] = df[col].fillna(NONE).replace("", NONE)
    totals = df[df[col] != NONE].groupby(col)["n"].sum().sort_values(ascending=False)
    keep = set(totals.index[:top]) | {NONE}
    df.loc[~df[col].isin(keep), col] = OTHER
    return df


# -- overview -------------------------------------------------------------------------------
_GROUP_PROPS = {"task": "pipelineTag", "library": "libraryName"}


def uploads_per_month(store: GraphStore, by: str = "task", top: int = 8) -> pd.DataFrame:
    """Models created per month, split by task (pipeline tag) or library.

    Returns columns month (Timestamp, first of month), group, n; groups beyond the `top`
    largest are lumped into "(other)", models with none into "(none)". Models without a known
    creation date (the Hub back-filled 2022-03-02 for old repos) are left out.
    """
    if by not in _GROUP_PROPS:
        raise ValueError(f"by must be one of {sorted(_GROUP_PROPS)}, got {by!r}")
    prop = _GROUP_PROPS[by]
    df = store.frame(
        f"MATCH (m:Model) WHERE m.createdAt IS NOT NULL "
        f"RETURN {_year_month(store, 'm.createdAt')} AS ym, m.{prop} AS grp, count(*) AS n")
    if df.empty:
        return pd.DataFrame({"month": pd.Series(dtype="datetime64[ns]"),
                             "group": pd.Series(dtype=str), "n": pd.Series(dtype="int64")})
    df = _lump(df.rename(columns={"grp": "group"}), "group", top)
    df["month"] = _month_from_ym(df["ym"])
    out = df.groupby(["month", "group"], as_index=False)["n"].sum()
    return out.sort_values(["month", "group"]).reset_index(drop=True)


def licence_mix(store: GraphStore, top: int = 12) -> pd.DataFrame:
    """Models per licence (the `license:` tag), largest first: licence, n, share."""
    df = store.frame("MATCH (m:Model) WHERE m.stub IS NULL OR m.stub = false "
                     "RETURN m.license AS licence, count(*) AS n")
    if df.empty:
        return pd.DataFrame(columns=["licence", "n", "share"])
    df = _lump(df, "licence", top).groupby("licence", as_index=False)["n"].sum()
    df["share"] = df["n"] / df["n"].sum()
    order = df["licence"].isin([OTHER, NONE])  # the named licences first, then the lumps
    return (df.assign(_o=order).sort_values(["_o", "n"], ascending=[True, False])
            .drop(columns="_o").reset_index(drop=True))


def top_base_models(store: GraphStore, limit: int = 20) -> pd.DataFrame:
    """`graph.queries.top_base_models` in long form for a stacked bar: id, relation, n, total."""
    wide = q.top_base_models(store, limit)
    if wide.empty:
        return pd.DataFrame(columns=["id", "relation", "n", "total"])
    long = wide.melt(id_vars=["id", "total"], value_vars=list(LINEAGE_RELS),
                     var_name="relation", value_name="n")
    return long[long["n"] > 0].reset_index(drop=True)


def ingest_run_summary(store: GraphStore, limit: int = 10) -> pd.DataFrame:
    """The last ingest runs with their JSON counts and rejects flattened into columns."""
    runs = q.ingest_runs(store, limit)
    if runs.empty:
        return pd.DataFrame(columns=["startedAt", "endedAt", "source", "mode", "status",
                                     "models", "datasets", "spaces", "read", "rejects",
                                     "top rejects", "id"])
    rows = []
    for r in runs.to_dict("records"):
        counts = _json(r.get("counts"))
        rejects = _json(r.get("rejects"))
        loaded = counts.get("loaded", {})
        worst = sorted(rejects.items(), key=lambda kv: -kv[1])[:3]
        rows.append({"startedAt": r["startedAt"], "endedAt": r["endedAt"],
                     "source": r["source"], "mode": r["mode"], "status": r["status"],
                     "models": loaded.get("model"), "datasets": loaded.get("dataset"),
                     "spaces": loaded.get("space"), "read": counts.get("read"),
                     "rejects": int(sum(rejects.values())),
                     "top rejects": ", ".join(f"{k} {v:,}" for k, v in worst),
                     "id": r["id"]})
    return pd.DataFrame(rows)


def _json(text: Any) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


# -- one model ------------------------------------------------------------------------------
def derivatives_per_month(store: GraphStore, model_id: str) -> pd.DataFrame:
    """Direct derivatives of one model created per month, by relation: month, relation, n.

    Children without a creation date are returned with month NaT.
    """
    d = store.dialect
    df = store.frame(
        f"MATCH (c:Model)-[e:{q.LINEAGE_TYPES}]->(m:Model {{id: $id}}) "
        f"RETURN CASE WHEN c.createdAt IS NULL THEN 0 "
        f"ELSE {_year_month(store, 'c.createdAt')} END AS ym, "
        f"{d.rel_type('e')} AS rel, count(*) AS n", {"id": model_id})
    if df.empty:
        return pd.DataFrame({"month": pd.Series(dtype="datetime64[ns]"),
                             "relation": pd.Series(dtype=str), "n": pd.Series(dtype="int64")})
    df["relation"] = df["rel"].map(REL_TO_RELATION)
    known = df["ym"] > 0
    df["month"] = pd.NaT
    df.loc[known, "month"] = _month_from_ym(df.loc[known, "ym"]).values
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


def licence_drift(lineage: pd.DataFrame, model: dict[str, Any] | None) -> pd.DataFrame:
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
        licences[model["id"]] = model.get("license")
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


# -- type-ahead -----------------------------------------------------------------------------
class ModelIdIndex:
    """All model ids in memory for type-ahead: prefix and substring search, best first.

    Built once per graph generation (one scan, ~1.5 s and ~100 MB for 760k ids); a search is
    a vectorised substring scan in Arrow plus a sort of the hits (a few ms to ~50 ms).
    Ranking: exact id, exact name (after the "org/"), id prefix, name prefix, then any
    substring; within a rank, most downloaded first ("gpt2" → openai-community/gpt2 first).
    """

    def __init__(self, ids: Iterable[str], downloads: Iterable[Any] | None = None):
        ids = pa.array(list(ids), type=pa.string())
        dl = (np.zeros(len(ids)) if downloads is None else
              pd.to_numeric(pd.Series(list(downloads), dtype=object), errors="coerce")
              .fillna(0).to_numpy(dtype="float64"))
        lower = pc.utf8_lower(ids)
        order = pc.sort_indices(lower).to_numpy()
        self.ids_ = np.asarray(ids.take(pa.array(order)).to_pylist(), dtype=object)
        self.downloads_ = dl[order]
        self._lower = lower.take(pa.array(order))
        self._lower_np = np.asarray(self._lower.to_pylist(), dtype=object)
        # the name part after "org/", for "llama" → "meta-llama/Llama-3…" style matches
        self._names = pc.utf8_lower(pc.replace_substring_regex(
            pa.array(self.ids_.tolist(), type=pa.string()), pattern="^[^/]*/", replacement=""))
        self._set = set(self.ids_.tolist())

    @classmethod
    def from_store(cls, store: GraphStore) -> "ModelIdIndex":
        df = store.frame("MATCH (m:Model) RETURN m.id AS id, m.downloads AS downloads")
        return cls(df["id"].tolist(), df["downloads"].tolist())

    def __len__(self) -> int:
        return len(self.ids_)

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._set

    def resolve(self, text: str | None) -> str | None:
        """The id itself if known, else the one id equal to `text` ignoring case."""
        text = (text or "").strip()
        if text in self._set:
            return text
        lo, hi = self._prefix_range(text.lower())
        exact = [i for i in self.ids_[lo:hi] if i.lower() == text.lower()]
        return exact[0] if len(exact) == 1 else None

    def _prefix_range(self, prefix: str) -> tuple[int, int]:
        lo = int(np.searchsorted(self._lower_np, prefix, side="left"))
        hi = int(np.searchsorted(self._lower_np, prefix + "\U0010ffff", side="left"))
        return lo, hi

    def search(self, text: str | None, limit: int = 50) -> list[str]:
        """Ids containing `text` (case-insensitive), best first, at most `limit`."""
        needle = (text or "").strip().lower()
        if not needle or len(self.ids_) == 0:
            return []

        def mask(arr) -> np.ndarray:
            return arr.to_numpy(zero_copy_only=False).astype(bool)

        hits = np.flatnonzero(mask(pc.match_substring(self._lower, needle)))
        if hits.size == 0:
            return []
        take = pa.array(hits)
        lower, names = self._lower.take(take), self._names.take(take)
        rank = np.full(hits.size, 4, dtype=np.int8)
        rank[mask(pc.starts_with(names, needle))] = 3
        rank[mask(pc.starts_with(lower, needle))] = 2
        rank[mask(pc.equal(names, needle))] = 1
        rank[mask(pc.equal(lower, needle))] = 0
        order = np.lexsort((-self.downloads_[hits], rank))[:limit]
        return self.ids_[hits[order]].tolist()


# -- lineage graph --------------------------------------------------------------------------
@dataclass
class LineageGraph:
    """A capped lineage subgraph for drawing.

    nodes: id, kind ("focus" | "ancestor" | "descendant" | "summary"), relation (of the edge
    to its parent; None for the focus and ancestors' top), depth (negative for ancestors),
    downloads, caption. edges: source (child), target (parent), relation. hidden: relation →
    descendants not drawn (each drawn as one summary node hanging off the focus model).
    """

    nodes: pd.DataFrame
    edges: pd.DataFrame
    hidden: dict[str, int] = field(default_factory=dict)
    total: int = 0

    @property
    def shown(self) -> int:
        return int((self.nodes["kind"] != "summary").sum())

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
                 "relation": r["relation"] if isinstance(r["relation"], str) else ""}
                for r in self.edges.to_dict("records")]


def lineage_graph(model: dict[str, Any], ancestors: pd.DataFrame,
                  descendants: pd.DataFrame, *, cap: int = 200) -> LineageGraph:
    """Build the drawable subgraph from `ancestors`/`descendants` frames of `graph.queries`.

    All ancestors are kept (they are few); descendants nearest first, then most downloaded,
    until `cap` nodes; since a level is taken whole before the next, every kept descendant's
    parent is kept too. The rest are counted per relation in `hidden`.
    """
    focus = model["id"]
    nodes = [{"id": focus, "kind": "focus", "relation": None, "depth": 0,
              "downloads": model.get("downloads"), "caption": focus}]
    edges = []
    anc = ancestors.head(max(cap // 4, 1)) if len(ancestors) else ancestors
    for r in anc.to_dict("records"):
        nodes.append({"id": r["id"], "kind": "ancestor", "relation": r["relation"],
                      "depth": -int(r["depth"]), "downloads": r.get("downloads"),
                      "caption": r["id"]})
    anc_ids = set(anc["id"]) if len(anc) else set()
    for r in anc.to_dict("records"):
        if r["child"] == focus or r["child"] in anc_ids:
            edges.append({"source": r["child"], "target": r["id"], "relation": r["relation"]})
    room = max(cap - len(nodes), 0)
    desc = descendants.sort_values(["depth", "downloads"], ascending=[True, False],
                                   na_position="last") if len(descendants) else descendants
    kept, rest = desc.head(room), desc.iloc[room:]
    for r in kept.to_dict("records"):
        nodes.append({"id": r["id"], "kind": "descendant", "relation": r["relation"],
                      "depth": int(r["depth"]), "downloads": r.get("downloads"),
                      "caption": r["id"]})
        edges.append({"source": r["id"], "target": r["parent"], "relation": r["relation"]})
    hidden = {k: int(v) for k, v in rest["relation"].value_counts().items()} if len(rest) else {}
    for relation, n in hidden.items():
        sid = f"+{n:,} more {relation}"
        nodes.append({"id": sid, "kind": "summary", "relation": relation, "depth": 1,
                      "downloads": None, "caption": f"+{n:,} more ({relation})"})
        edges.append({"source": sid, "target": focus, "relation": relation})
    ndf = pd.DataFrame(nodes, columns=["id", "kind", "relation", "depth", "downloads",
                                       "caption"])
    edf = pd.DataFrame(edges, columns=["source", "target", "relation"])
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
