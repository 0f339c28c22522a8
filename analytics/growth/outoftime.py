"""Out-of-time test: forecast from the July-2024 graph, score against the 2025 model trees.

``trees-2025`` (``../shared/data/trees-2025/trees.jsonl.gz``) holds, for ~2k models crawled
in March–April 2025, the child lists the Hub's model tree showed then: ``children``
(fine-tunes), ``adapters``, ``quantized``, ``merges``.  For every such model that is a base
model of the July-2024 series, each method forecasts its count at the crawl date from the
July-2024 series alone, and is scored against the number of distinct ids in those lists.

What is comparable: the 2025 lists are the Hub's *typed* lineage at the crawl; the July-2024
links are ``base_model`` tags whose type was inferred.  Totals over all four types are
compared (per-type counts would mix in the inference's errors).  The lists also drop children
deleted since July 2024 and add children whose card gained a ``base_model`` later, and a list
can stop at a display cap (3,000 adapters of google/gemma-7b): :func:`tree_counts` reports the
share of July children still listed and flags capped lists, so a reader can judge each row.

The crawl date of a tree is not recorded; it is taken as the latest ``last_modified`` among
the tree's records, and no earlier than 2025-03-01 (the crawl ran in March–April 2025).
"""
from __future__ import annotations

import ast
import gzip
import json
import re
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import pandas as pd

from analytics.growth.series import MONTH_DAYS, GrowthSeries
from graph.dates import utc_times

TREE_LISTS = ("children", "adapters", "quantized", "merges")
CRAWL_START = pd.Timestamp("2025-03-01", tz="UTC")
LIST_CAPS = (1000, 3000)  # list lengths that are display caps, not counts
_REPO_ID = re.compile(r"(?:huggingface\.co/)?([\w.\-]+/[\w.\-]+)")


def _repo_id(value) -> str | None:
    text = str(value).replace("https://", "").strip("[]'\" ")
    match = _REPO_ID.search(text)
    return match.group(1) if match else None


def _metadata(raw) -> dict:
    if isinstance(raw, dict):
        return raw
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            return {}
        return value if isinstance(value, dict) else {}


def read_trees(path: Path | str) -> pd.DataFrame:
    """One row per tree record: model, tree_root, depth, created, last_modified and, per list
    of :data:`TREE_LISTS`, the distinct child ids (a frozenset)."""
    rows = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            meta = _metadata(rec.get("metadata"))
            row = {"model": _repo_id(rec.get("model_id")) or str(rec.get("model_id")),
                   "tree_root": rec.get("tree_root"), "depth": rec.get("depth"),
                   "created": meta.get("created_at") or meta.get("createdAt"),
                   "last_modified": meta.get("last_modified") or meta.get("lastModified")}
            for key in TREE_LISTS:
                items = rec.get(key) or []
                items = items if isinstance(items, list) else [items]
                row[key] = frozenset(i for i in map(_repo_id, items) if i)
            rows.append(row)
    df = pd.DataFrame(rows)
    for col in ("created", "last_modified"):
        df[col] = pd.to_datetime(df[col], utc=True, errors="coerce", format="mixed")
    return df


def tree_counts(trees: pd.DataFrame, edges: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per model of the trees: crawl_date, observed_2025 (distinct children over all lists),
    n_<list> per list, capped (a list at a display cap) and, given the July-2024 ``edges``,
    july_children and july_still_listed (how many of them the 2025 lists still show)."""
    crawl = trees.groupby("tree_root")["last_modified"].max().clip(lower=CRAWL_START)
    out = trees.drop_duplicates("model").copy()
    out["crawl_date"] = out["tree_root"].map(crawl).fillna(CRAWL_START)
    allc = [frozenset().union(*(r[k] for k in TREE_LISTS)) for _, r in out.iterrows()]
    out["observed_2025"] = [len(c) for c in allc]
    for key in TREE_LISTS:
        out[f"n_{key}"] = out[key].map(len)
    out["capped"] = out[[f"n_{k}" for k in TREE_LISTS]].isin(LIST_CAPS).any(axis=1)
    if edges is not None:
        july = edges.drop_duplicates(["parent", "child"]).groupby("parent")["child"].agg(frozenset)
        kids = out["model"].map(july)
        out["july_children"] = [len(k) if isinstance(k, frozenset) else 0 for k in kids]
        out["july_still_listed"] = [len(k & c) if isinstance(k, frozenset) else 0
                                    for k, c in zip(kids, allc)]
    return out.drop(columns=list(TREE_LISTS)).reset_index(drop=True)


def out_of_time(series: GrowthSeries, counts: pd.DataFrame,
                methods: Mapping[str, Callable[[], object]]) -> pd.DataFrame:
    """Fit every method on the full ``series`` (the July-2024 graph) and forecast each model of
    ``counts`` (:func:`tree_counts`) that has a series to its crawl date.

    Only models with at least one derivative at the end of their last complete month are
    scored (the backtest's rule, and the models the product forecasts): every method is
    scored on the same models.  ``result.attrs["no_derivative_at_end"]`` lists the others.

    Returns one row per (method, model): horizon_months (from the series' last complete month
    to the crawl), last (July count), observed (2025 lists), forecast, low, high, plus the
    comparability columns of ``counts``."""
    row = {m: i for i, m in enumerate(series.ids)}
    c = counts[counts["model"].isin(row)].copy()
    idx = c["model"].map(row).to_numpy(int)
    at_end = series.counts[idx, np.maximum(series.n_obs[idx] - 1, 0)]
    forecastable = (series.n_obs[idx] >= 1) & (np.nan_to_num(at_end) >= 1)
    left_out = sorted(c.loc[~forecastable, "model"])
    c, idx = c[forecastable].copy(), idx[forecastable]
    created = utc_times(series.info["parent_created"]).to_numpy()[idx]
    end = pd.to_datetime(created) + pd.to_timedelta(series.n_obs[idx] * MONTH_DAYS, unit="D")
    h = ((utc_times(c["crawl_date"]).to_numpy() - end.to_numpy())
         / np.timedelta64(1, "D") / MONTH_DAYS).astype(float)
    c["horizon_months"] = h
    c["last"] = series.counts[idx, series.n_obs[idx] - 1]
    frames = []
    for name, make in methods.items():
        est = make().fit(series)
        fc, lo, hi = (np.full(len(c), np.nan) for _ in range(3))
        for j, (i, hj) in enumerate(zip(idx, h)):
            p, low, high = _at_horizon(est, hj)
            fc[j], lo[j], hi[j] = p[i], low[i], high[i]
        frames.append(c.assign(method=name, forecast=fc, low=lo, high=hi))
    out = pd.concat(frames, ignore_index=True).rename(columns={"observed_2025": "observed"})
    out.attrs["no_derivative_at_end"] = left_out
    return out


def _at_horizon(est, h: float):
    from analytics.growth.backtest import _forecast

    return _forecast(est, h, 0.8)
