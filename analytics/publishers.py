"""Publishers (users and organisations): their models, what others derive from them, who
derives most, how their families grew, and the licence problems in those families.

- `build_publisher_index` (batch builder): one row per author over the whole graph, for the
  ranking and the picker.
- `publisher_profile` (page time, a few queries of well under a second per author on the full
  graph): everything about one author, as a `PublisherProfile`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analytics.licences import CONFLICT, LicenceAudit, build_licence_audit
from graph import queries as q
from graph.schema import ACCOUNT_ORGANIZATION, ACCOUNT_UNKNOWN, ACCOUNT_USER, LINEAGE_RELS
from graph.store import GraphStore, store_or_open

INDEX_COLUMNS = ["author", "account_type", "account_checked", "models", "downloads", "likes", "derived_by_others",
                 "deriving_authors", "derivatives", "conflicts_published", "family_models",
                 "family_conflicts"]


def with_account_types(frame: pd.DataFrame, types: pd.DataFrame) -> pd.DataFrame:
    """`frame` (an `author` column) with account_type and account_checked from
    `graph.queries.account_types`; a namespace without an account node (one only seen in a
    stub parent's id) is unknown, not asked."""
    out = frame.merge(types, on="author", how="left")
    out["account_type"] = out["account_type"].fillna(ACCOUNT_UNKNOWN).astype(str)
    out["account_checked"] = out["account_checked"].fillna(False).astype(bool)
    return out


def account_label(account_type: str, checked: bool) -> str:
    """What the pages say of an account's type."""
    if account_type == ACCOUNT_ORGANIZATION:
        return "organisation"
    if account_type == ACCOUNT_USER:
        return "user"
    return "account type unknown: " + ("not on the Hub" if checked else "not asked yet")


def _month(ts: pd.Series) -> pd.Series:
    return pd.to_datetime(ts).dt.to_period("M").dt.to_timestamp()


def build_publisher_index(store: GraphStore | None = None,
                          audit: LicenceAudit | None = None) -> pd.DataFrame:
    """Batch builder: per author, its account type (what the Hub says, else unknown; checked:
    whether the Hub was asked), models (real ones), downloads and likes summed, direct
    derivatives of their models by other authors, how many authors made them, their own
    models with a parent (derivatives), conflicts among those, and the models and conflicts
    in the families rooted at their models. Most derived-from first."""
    from graph import views_queries as vq

    with store_or_open(store) as s:
        totals = vq.author_totals(s)
        types = q.account_types(s)
        audit = audit if audit is not None else build_licence_audit(s)
    e = audit.edges
    by_others = e[e["child_author"] != e["parent_author"]]
    derived = by_others.groupby("parent_author").agg(
        derived_by_others=("child", "size"), deriving_authors=("child_author", "nunique"))
    pub = audit.publishers.set_index("author")
    pub = pub.rename(columns={CONFLICT: "conflicts_published"})[
        ["derivatives", "conflicts_published", "family_models", "family_conflicts"]]
    out = totals.set_index("author").join(derived, how="outer").join(pub, how="outer")
    out = out.fillna(0).astype({c: "int64" for c in out.columns})
    out = out.rename_axis("author").reset_index()
    out = with_account_types(out, types)
    return out.sort_values(["derived_by_others", "models", "author"],
                           ascending=[False, False, True])[INDEX_COLUMNS].reset_index(drop=True)


@dataclass
class PublisherProfile:
    """One author. Frames:

    models: their models (id, createdAt, downloads, likes, pipelineTag, libraryName,
        license, stub, children).
    derivatives: direct derivatives of their models by *other* authors (id, author,
        createdAt, downloads, license, relation, parent).
    by_relation: relation, n (of `derivatives`, every relation present).
    by_month: month, relation, n (of `derivatives` with a creation date).
    top_derivers: author, derivatives, relations ("finetune 12, quantized 3"), first, last.
    family_growth: month, new, total (every descendant at any depth, by anyone, dated).
    """

    author: str
    models: pd.DataFrame
    derivatives: pd.DataFrame
    by_relation: pd.DataFrame
    by_month: pd.DataFrame
    top_derivers: pd.DataFrame
    family_growth: pd.DataFrame
    family_size: int
    undated: int

    @property
    def found(self) -> bool:
        return len(self.models) > 0


def relation_totals(derivatives: pd.DataFrame) -> pd.DataFrame:
    counts = derivatives["relation"].value_counts() if len(derivatives) else pd.Series(dtype=int)
    return pd.DataFrame({"relation": list(LINEAGE_RELS),
                         "n": [int(counts.get(r, 0)) for r in LINEAGE_RELS]})


def per_month(derivatives: pd.DataFrame) -> pd.DataFrame:
    """Derivatives per creation month and relation (undated ones left out)."""
    d = derivatives.dropna(subset=["createdAt"])
    if d.empty:
        return pd.DataFrame({"month": pd.Series(dtype="datetime64[ns]"),
                             "relation": pd.Series(dtype=str), "n": pd.Series(dtype="int64")})
    d = d.assign(month=_month(d["createdAt"]))
    return d.groupby(["month", "relation"]).size().rename("n").reset_index()


def top_derivers(derivatives: pd.DataFrame, limit: int = 20) -> pd.DataFrame:
    """The authors who derived most from these models, with their relation mix."""
    cols = ["author", "derivatives", "relations", "first", "last"]
    if derivatives.empty:
        return pd.DataFrame(columns=cols)
    g = derivatives.groupby("author")
    out = pd.DataFrame({"derivatives": g.size(), "first": g["createdAt"].min(),
                        "last": g["createdAt"].max()})
    mix = derivatives.groupby(["author", "relation"]).size().rename("n").reset_index() \
        .sort_values(["author", "n"], ascending=[True, False])
    out["relations"] = mix.groupby("author").apply(
        lambda f: ", ".join(f"{r} {n}" for r, n in zip(f["relation"], f["n"])),
        include_groups=False)
    out = out.rename_axis("author").reset_index()
    return out.sort_values(["derivatives", "author"], ascending=[False, True])[cols] \
        .head(limit).reset_index(drop=True)


def growth(family: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """New and cumulative descendants per month; also how many have no creation date."""
    dated = family.dropna(subset=["createdAt"])
    undated = int(len(family) - len(dated))
    if dated.empty:
        return pd.DataFrame({"month": pd.Series(dtype="datetime64[ns]"),
                             "new": pd.Series(dtype="int64"),
                             "total": pd.Series(dtype="int64")}), undated
    new = dated.assign(month=_month(dated["createdAt"])).groupby("month").size()
    months = pd.date_range(new.index.min(), new.index.max(), freq="MS")
    new = new.reindex(months, fill_value=0)
    out = pd.DataFrame({"month": months, "new": new.to_numpy(dtype=np.int64)})
    out["total"] = out["new"].cumsum()
    return out, undated


def publisher_profile(store: GraphStore, author: str) -> PublisherProfile:
    """Everything the publisher page shows about `author` (empty frames if unknown)."""
    from graph import views_queries as vq

    author = (author or "").strip()
    models = vq.author_models(store, author)
    direct = vq.author_derivatives(store, author)
    others = direct[direct["author"] != author].reset_index(drop=True)
    family = vq.author_family(store, author)
    family_growth, undated = growth(family)
    return PublisherProfile(
        author=author, models=models, derivatives=others, by_relation=relation_totals(others),
        by_month=per_month(others), top_derivers=top_derivers(others),
        family_growth=family_growth, family_size=int(len(family)), undated=undated)


def author_of(model_id: str) -> str | None:
    """The namespace of a repo id ('org/name' → 'org'); None for a legacy bare name."""
    return model_id.split("/", 1)[0] if "/" in (model_id or "") else None


def search_authors(index: pd.DataFrame, text: str, limit: int = 50) -> list[str]:
    """Authors whose name contains `text` (case-insensitive), exact match first, then the
    most derived-from."""
    needle = (text or "").strip().lower()
    if not needle:
        return []
    names = index["author"].astype(str)
    hit = index[names.str.lower().str.contains(needle, regex=False)]
    exact = hit["author"].str.lower() == needle
    hit = hit.assign(_e=~exact).sort_values(["_e", "derived_by_others", "models"],
                                            ascending=[True, False, False])
    return hit["author"].head(limit).tolist()
