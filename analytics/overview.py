"""The Overview page's aggregates: uploads per month, licence mix, base models with the most
derivatives, publishers by account type and the last ingest runs, as plain frames.

`build_overview(store)` runs the named queries once (the scheduled job calls it after each
ingest); the functions below it are pure transformations of their rows.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from graph import queries as q
from graph.schema import ACCOUNT_ORGANIZATION, ACCOUNT_UNKNOWN, ACCOUNT_USER, LINEAGE_RELS
from graph.store import GraphStore

OTHER = "(other)"
NONE = "(none)"
#: licence values that say nothing definite, shown as one group (its parts in a tooltip):
#: no licence, the lump of rare ones, the Hub's "other" and "unknown"
UNSPECIFIED = "unspecified / other"
UNSPECIFIED_PARTS = (NONE, OTHER, "other", "unknown")
GROUPS = ("task", "library")  # how uploads per month can be split


def month_from_ym(ym: pd.Series) -> pd.Series:
    """First day of the month of integer yyyymm values."""
    ym = ym.astype("int64")
    return pd.to_datetime(pd.DataFrame({"year": ym // 100, "month": ym % 100, "day": 1}))


def lump(df: pd.DataFrame, col: str, top: int) -> pd.DataFrame:
    """Keep the `top` largest values of `col` (by total n), lump the rest into OTHER; rows
    without a value become NONE (kept, and not counted in `top`)."""
    df = df.copy()
    df[col] = df[col].fillna(NONE).replace("", NONE)
    totals = df[df[col] != NONE].groupby(col)["n"].sum().sort_values(ascending=False)
    keep = set(totals.index[:top]) | {NONE}
    df.loc[~df[col].isin(keep), col] = OTHER
    return df


def uploads_per_month(rows: pd.DataFrame, top: int = 8,
                      as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """Models created per month and group from `graph.queries.uploads_by_month` rows
    (ym, grp, n): month (first of month), group, n, partial; groups beyond the `top` largest
    are lumped into "(other)", models with none into "(none)".

    `as_of` (where the graph's observations end): later months are left out (a few records
    crawled later are not a month of uploads) and the month of `as_of` is `partial` unless
    it ends that day."""
    if rows.empty:
        return pd.DataFrame({"month": pd.Series(dtype="datetime64[ns]"),
                             "group": pd.Series(dtype=str), "n": pd.Series(dtype="int64"),
                             "partial": pd.Series(dtype=bool)})
    df = lump(rows.rename(columns={"grp": "group"}), "group", top)
    df["month"] = month_from_ym(df["ym"])
    out = df.groupby(["month", "group"], as_index=False)["n"].sum()
    out["partial"] = False
    if as_of is not None:
        as_of = pd.Timestamp(as_of).tz_localize(None) if pd.Timestamp(as_of).tzinfo else \
            pd.Timestamp(as_of)
        last = as_of.to_period("M").to_timestamp()
        out = out[out["month"] <= last].copy()
        out["partial"] = (out["month"] == last) & (as_of.day < as_of.days_in_month)
    return out.sort_values(["month", "group"]).reset_index(drop=True)


def licence_mix(rows: pd.DataFrame, top: int = 12) -> pd.DataFrame:
    """Models per licence from `graph.queries.models_per_licence` rows, largest first:
    licence, n, share, parts. The `top` named licences keep their row; no licence, the rarer
    ones, the Hub's "other" and "unknown" are one UNSPECIFIED row, last, whose `parts` says
    what it holds ("(none) 120, other 40, (other) 12")."""
    if rows.empty:
        return pd.DataFrame(columns=["licence", "n", "share", "parts"])
    licence = rows["licence"].fillna(NONE).replace("", NONE)
    totals = rows.assign(licence=licence).groupby("licence")["n"].sum()
    named = totals[~totals.index.isin(UNSPECIFIED_PARTS)].sort_values(ascending=False)
    parts = {k: int(totals[k]) for k in UNSPECIFIED_PARTS if k in totals.index and k != OTHER}
    if len(named) > top:
        parts[OTHER] = int(named.iloc[top:].sum())  # the rarer named licences
    out = pd.DataFrame({"licence": named.index[:top], "n": named.to_numpy()[:top].astype(int),
                        "parts": ""})
    if parts:
        ordered = sorted(parts.items(), key=lambda kv: -kv[1])
        out.loc[len(out)] = [UNSPECIFIED, sum(parts.values()),
                             ", ".join(f"{k} {v:,}" for k, v in ordered)]
    out["n"] = out["n"].astype(int)
    out["share"] = out["n"] / out["n"].sum()
    return out[["licence", "n", "share", "parts"]]


#: how the Overview names the account groups: types as the Hub's account pages say, and the
#: two kinds of unknown (never guessed from the name)
ACCOUNT_GROUPS: tuple[tuple[str, bool | None, str], ...] = (
    (ACCOUNT_ORGANIZATION, None, "organisations"),
    (ACCOUNT_USER, None, "users"),
    (ACCOUNT_UNKNOWN, False, "unknown: not asked yet"),
    (ACCOUNT_UNKNOWN, True, "unknown: not on the Hub"),
)
ACCOUNT_COLUMNS = ["group", "accounts", "models", "downloads", "model_share"]


def account_mix(rows: pd.DataFrame) -> pd.DataFrame:
    """`graph.queries.publishers_by_account_type` rows as the Overview's groups (ACCOUNT_GROUPS
    order, empty ones left out): group, accounts, models, downloads, model_share (of the
    models that have an author)."""
    out = []
    for typ, checked, name in ACCOUNT_GROUPS:
        sel = rows[rows["account_type"] == typ] if len(rows) else rows
        if checked is not None and len(sel):
            sel = sel[sel["checked"].astype(bool) == checked]
        if len(sel) and int(sel["accounts"].sum()):
            out.append({"group": name, "accounts": int(sel["accounts"].sum()),
                        "models": int(sel["models"].sum()),
                        "downloads": int(sel["downloads"].sum())})
    df = pd.DataFrame(out, columns=ACCOUNT_COLUMNS[:-1])
    total = df["models"].sum() if len(df) else 0
    df["model_share"] = df["models"] / total if total else 0.0
    return df[ACCOUNT_COLUMNS]


def top_base_models_long(wide: pd.DataFrame) -> pd.DataFrame:
    """`graph.queries.top_base_models` in long form for a stacked bar: id, relation, n, total."""
    if wide.empty:
        return pd.DataFrame(columns=["id", "relation", "n", "total"])
    long = wide.melt(id_vars=["id", "total"], value_vars=list(LINEAGE_RELS),
                     var_name="relation", value_name="n")
    return long[long["n"] > 0].reset_index(drop=True)


def run_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """`graph.queries.ingest_runs` with their JSON counts and rejects flattened into columns."""
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


@dataclass
class Overview:
    """Everything the Overview page draws, computed once per generation."""

    nodes: dict[str, int]
    rels: dict[str, int]
    uploads: dict[str, pd.DataFrame]  # group ("task" / "library") → uploads_per_month frame
    top_base: pd.DataFrame
    licences: pd.DataFrame
    runs: pd.DataFrame
    #: publishers by account type (`account_mix`); empty in overviews stored before it existed
    accounts: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=ACCOUNT_COLUMNS))


def build_overview(store: GraphStore, *, top_base: int = 20, top_groups: int = 8,
                   top_licences: int = 12, runs: int = 10,
                   as_of: pd.Timestamp | None = None) -> Overview:
    """Run the overview's queries once and shape their rows (the scheduled job's step);
    `as_of`: where the graph's observations end (the uploads chart stops there)."""
    return Overview(
        nodes=q.count_nodes(store), rels=q.count_rels(store),
        uploads={by: uploads_per_month(q.uploads_by_month(store, by), top_groups, as_of)
                 for by in GROUPS},
        top_base=top_base_models_long(q.top_base_models(store, top_base)),
        licences=licence_mix(q.models_per_licence(store), top_licences),
        runs=run_summary(q.ingest_runs(store, runs)),
        accounts=account_mix(q.publishers_by_account_type(store)))
