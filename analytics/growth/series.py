"""Derivative-count series: the padded batch (`GrowthSeries`), built from lineage edges or a
wide CSV, with the conventions every other module of the package relies on.

* Month column ``k`` ("k-month" in the wide CSV) holds the cumulative number of derivatives
  created before the end of month ``k`` of the parent's life, i.e. with age < k+1 months (a
  month is 30.436875 days).  It is evaluated at ``t = k + 1`` months, so the first column is
  t = 1 (``ln t = 0``).
* Only *complete* months up to ``as_of`` are observed; later cells are NaN.  Every series of a
  batch built by :func:`derivative_series` ends at the same ``as_of``, so "the last k months"
  are the same calendar months for all of them: :meth:`GrowthSeries.truncate` is a forecast
  origin k months back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from graph.dates import utc_times

MONTH_DAYS = 365.2425 / 12.0  # 30.436875 days


class GrowthDataError(ValueError):
    """Raised for malformed input frames / CSV files (message is user-facing)."""


@dataclass
class GrowthSeries:
    """Padded batch of cumulative derivative-count series.

    ids       : (n,) object array of base-model ids.
    counts    : (n, T) float array; counts[i, k] = cumulative derivatives by the
                end of month k (t = k+1); NaN after the series' observed window.
    n_obs     : (n,) int array, number of observed months per series.
    relation  : (n,) object array; "all" unless built with ``by_relation=True``.
    info      : per-series DataFrame (same row order) with provenance/flags, e.g.
                parent_created, parent_date_imputed, n_children, n_before_parent,
                n_undated_children, n_after_as_of, n_direct (every direct derivative: those
                in the series, undated, after as_of and in the partial last month).
    dropped   : reason -> number of parents (or children) left out.
    as_of     : end of the observation window (set by :func:`derivative_series`).
    """

    ids: np.ndarray
    counts: np.ndarray
    n_obs: np.ndarray
    relation: np.ndarray | None = None
    info: pd.DataFrame | None = None
    dropped: dict = field(default_factory=dict)
    as_of: pd.Timestamp | None = None

    def __post_init__(self):
        self.ids = np.asarray(self.ids, dtype=object)
        self.counts = np.atleast_2d(np.asarray(self.counts, dtype=float))
        n = self.counts.shape[0]
        if self.n_obs is None:
            self.n_obs = _n_obs_from_counts(self.counts)
        self.n_obs = np.asarray(self.n_obs, dtype=int)
        if self.relation is None:
            self.relation = np.full(n, "all", dtype=object)
        self.relation = np.asarray(self.relation, dtype=object)
        if self.info is None:
            self.info = pd.DataFrame(index=range(n))
        if not (len(self.ids) == n == len(self.n_obs) == len(self.relation) == len(self.info)):
            raise ValueError(
                "GrowthSeries: ids, counts, n_obs, relation and info must have the same length"
            )

    def __len__(self) -> int:
        return self.counts.shape[0]

    @property
    def t(self) -> np.ndarray:
        """Time grid in months (t = k + 1 for column k)."""
        return np.arange(self.counts.shape[1], dtype=float) + 1.0

    def subset(self, mask) -> GrowthSeries:
        idx = np.flatnonzero(mask) if np.asarray(mask).dtype == bool else np.asarray(mask)
        return GrowthSeries(
            ids=self.ids[idx],
            counts=self.counts[idx],
            n_obs=self.n_obs[idx],
            relation=self.relation[idx],
            info=self.info.iloc[idx].reset_index(drop=True),
            dropped=dict(self.dropped),
            as_of=self.as_of,
        )

    def head(self, k: int) -> GrowthSeries:
        """Keep only the first ``k`` months of every series (``n_obs = min(n_obs, k)``):
        "fit on the first k months", with the later months kept aside for comparison."""
        k = int(k)
        if k < 1:
            raise ValueError(f"head: k must be >= 1, got {k}")
        n_obs = np.minimum(self.n_obs, k)
        counts = self.counts[:, :k].copy()
        counts[np.arange(counts.shape[1])[None, :] >= n_obs[:, None]] = np.nan
        return GrowthSeries(
            self.ids, counts, n_obs, self.relation, self.info.copy(), dict(self.dropped), self.as_of
        )

    def truncate(self, holdout: int) -> GrowthSeries:
        """Drop the last ``holdout`` observed months of every series (for backtests)."""
        n_obs = np.maximum(self.n_obs - int(holdout), 0)
        counts = self.counts.copy()
        counts[np.arange(counts.shape[1])[None, :] >= n_obs[:, None]] = np.nan
        return GrowthSeries(
            self.ids, counts, n_obs, self.relation, self.info.copy(), dict(self.dropped), self.as_of
        )

    def to_wide(self) -> pd.DataFrame:
        """Wide frame ``model, 0-month, 1-month, ...`` (NaN after the window)."""
        cols = [f"{k}-month" for k in range(self.counts.shape[1])]
        df = pd.DataFrame(self.counts, columns=cols)
        model = (
            self.ids
            if np.all(self.relation == "all")
            else [f"{i}|{r}" for i, r in zip(self.ids, self.relation)]
        )
        df.insert(0, "model", list(model))
        return df

    @classmethod
    def from_wide(cls, df: pd.DataFrame) -> GrowthSeries:
        """Parse/validate a wide frame (see :func:`read_wide_csv`)."""
        if "model" not in df.columns:
            raise GrowthDataError(
                "missing required column 'model' (found columns: "
                f"{', '.join(map(str, df.columns[:8]))}"
                f"{'...' if len(df.columns) > 8 else ''})"
            )
        month_cols = []
        for c in df.columns:
            if c == "model":
                continue
            m = re.fullmatch(r"\s*(\d+)\s*-\s*months?\s*", str(c))
            if not m:
                raise GrowthDataError(
                    f"unexpected column {c!r}: expected 'model' and '<k>-month' columns"
                )
            month_cols.append((int(m.group(1)), c))
        if not month_cols:
            raise GrowthDataError("no '<k>-month' columns found")
        month_cols.sort()
        ks = [k for k, _ in month_cols]
        if ks != list(range(len(ks))):
            raise GrowthDataError(
                f"month columns must be 0-month, 1-month, ... without gaps (got {ks[:10]})"
            )
        raw = df[[c for _, c in month_cols]]
        vals = raw.apply(pd.to_numeric, errors="coerce")
        bad = vals.isna() & raw.notna() & (raw.astype(str).apply(lambda s: s.str.strip()) != "")
        if bad.to_numpy().any():
            r, c = np.argwhere(bad.to_numpy())[0]
            raise GrowthDataError(
                f"non-numeric value {raw.iat[r, c]!r} in row {r + 2} "
                f"(model {df['model'].iat[r]!r}), "
                f"column {raw.columns[c]!r}; {int(bad.to_numpy().sum())} bad cell(s) in total"
            )
        counts = vals.to_numpy(dtype=float)
        if np.any(counts[np.isfinite(counts)] < 0):
            r, c = np.argwhere(np.nan_to_num(counts, nan=0.0) < 0)[0]
            raise GrowthDataError(f"negative count in row {r + 2}, column {raw.columns[c]!r}")
        if df["model"].isna().any():
            raise GrowthDataError(
                f"empty 'model' value in row {int(np.flatnonzero(df['model'].isna())[0]) + 2}"
            )
        return cls(
            ids=df["model"].astype(str).to_numpy(), counts=counts, n_obs=_n_obs_from_counts(counts)
        )


def _n_obs_from_counts(counts: np.ndarray) -> np.ndarray:
    fin = np.isfinite(counts)
    T = counts.shape[1]
    last = T - np.argmax(fin[:, ::-1], axis=1)
    return np.where(fin.any(axis=1), last, 0).astype(int)


def read_wide_csv(path) -> GrowthSeries:
    """Read a wide CSV (``model, 0-month, 1-month, ...``); raises GrowthDataError."""
    try:
        df = pd.read_csv(path, dtype={"model": str})
    except FileNotFoundError:
        raise GrowthDataError(f"file not found: {path}") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise GrowthDataError(f"cannot parse {path} as CSV: {exc}") from None
    return GrowthSeries.from_wide(df)


def coverage_end(dates, *, frac: float = 0.1, window_days: int = 7):
    """End of the densely observed period of a set of creation dates (UTC Timestamp).

    A graph merged from several snapshots (e.g. a July-2024 listing plus a few model trees
    crawled in 2025) has a long sparse tail after the main listing; ending the series at the
    last date would add months of spurious zero growth to every base model.  Rule: the last
    day whose trailing ``window_days`` count reaches ``frac`` of the busiest such window, then
    back to the last day at or before it with at least ``frac`` of the busiest window's daily
    mean; returns the latest timestamp of that day.  None when there are no dates.
    """
    d = utc_times(pd.Series(dates)).dropna()
    if d.empty:
        return None
    daily = d.dt.floor("D").value_counts().sort_index().asfreq("D", fill_value=0)
    win = daily.rolling(int(window_days), min_periods=1).sum()
    peak = float(win.max())
    last_dense_window = win.index[win >= frac * peak][-1]
    busy = daily[:last_dense_window]
    busy = busy[busy >= frac * peak / window_days]
    day = busy.index[-1] if len(busy) else last_dense_window
    return d[d.dt.floor("D") == day].max()


def derivative_series(
    edges: pd.DataFrame,
    *,
    by_relation: bool = False,
    as_of=None,
    unknown_parent: str = "impute",
    max_months: int | None = None,
) -> GrowthSeries:
    """Cumulative derivative counts per base model per month since its creation.

    ``edges`` columns: parent, parent_created, child, child_created, relation.

    * Window: complete months only, ending at ``as_of`` (default: max child_created;
      ``"auto"``: :func:`coverage_end` of the child dates, for merged snapshots).
      Children created after ``as_of`` are ignored (counted in ``n_after_as_of``).
    * Unknown parent creation (NaT): ``unknown_parent="impute"`` (default) uses
      the parent's first dated child as creation date and sets
      ``info.parent_date_imputed``; ``"drop"`` excludes the parent and counts it
      in ``dropped['unknown_parent_created']``.
    * Children without a date cannot be placed: dropped, counted per series in
      ``n_undated_children`` (and in total in ``dropped['undated_children']``).
    * Children dated before their parent go to month 0 (``n_before_parent``).
    * Duplicate (parent, child[, relation]) edges are counted once.
    * Parents younger than one complete month at ``as_of`` are excluded
      (``dropped['younger_than_one_month']``).
    """
    need = ["parent", "parent_created", "child", "child_created", "relation"]
    miss = [c for c in need if c not in edges.columns]
    if miss:
        raise GrowthDataError(f"edges frame is missing columns: {miss}")
    if unknown_parent not in ("impute", "drop"):
        raise ValueError("unknown_parent must be 'impute' or 'drop'")
    e = edges[need].copy()
    for c in ("parent_created", "child_created"):
        e[c] = utc_times(e[c])
    e["relation"] = e["relation"].fillna("unknown").astype(str)
    dropped: dict[str, int] = {}
    key = ["parent", "relation"] if by_relation else ["parent"]
    e = e.drop_duplicates(subset=key + ["child"])

    if isinstance(as_of, str) and as_of == "auto":
        as_of = coverage_end(e["child_created"])
    as_of = e["child_created"].max() if as_of is None else pd.Timestamp(as_of)
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.tz_localize("UTC")
    if pd.isna(as_of):
        raise GrowthDataError("no dated child in edges and no as_of given")

    # parent creation (one value per parent, the first non-null one)
    pc = e.groupby("parent", sort=True)["parent_created"].min()
    first_child = e.groupby("parent", sort=True)["child_created"].min()
    imputed = pc.isna() & first_child.notna()
    unknown = pc.isna()
    if unknown_parent == "impute":
        pc = pc.fillna(first_child)
    n_unknown_drop = int(pc.isna().sum())
    if n_unknown_drop:
        dropped[
            "unknown_parent_created"
            if unknown_parent == "drop"
            else "unknown_parent_and_children_dates"
        ] = n_unknown_drop
    pc = pc.dropna()
    age_asof = (as_of - pc).dt.total_seconds() / 86400.0 / MONTH_DAYS
    young = age_asof < 1.0
    if young.any():
        dropped["younger_than_one_month"] = int(young.sum())
    pc = pc[~young]
    n_obs_parent = np.floor(age_asof[~young]).astype(int)

    e = e[e["parent"].isin(pc.index)]
    undated = e["child_created"].isna()
    after = e["child_created"] > as_of
    if undated.any():
        dropped["undated_children"] = int(undated.sum())
    if after.any():
        dropped["children_after_as_of"] = int(after.sum())

    grp = e.groupby(key, sort=True)
    keys = grp.size().index
    n = len(keys)
    kdf = keys.to_frame(index=False)
    if not by_relation:
        kdf["relation"] = "all"
    kdf["row"] = np.arange(n)
    n_obs = n_obs_parent.reindex(kdf["parent"]).to_numpy()
    if max_months is not None:
        n_obs = np.minimum(n_obs, int(max_months))
    T = int(n_obs.max()) if n else 0

    info = kdf[["parent", "relation"]].rename(columns={"parent": "model"}).copy()
    info["parent_created"] = pc.reindex(kdf["parent"]).to_numpy()
    info["parent_date_imputed"] = imputed.reindex(kdf["parent"]).fillna(False).to_numpy(dtype=bool)
    info["n_undated_children"] = (
        grp["child_created"].apply(lambda s: int(s.isna().sum())).to_numpy() if n else []
    )
    info["n_after_as_of"] = (
        grp["child_created"].apply(lambda s: int((s > as_of).sum())).to_numpy() if n else []
    )
    info["n_direct"] = grp.size().to_numpy() if n else []  # every direct derivative, dated or not

    d = e[~undated & ~after].merge(kdf, on=key if by_relation else ["parent"], how="left")
    if not by_relation:
        d = (
            d.drop(columns=["relation_y"]).rename(columns={"relation_x": "relation"})
            if "relation_y" in d
            else d
        )
    d_pc = pc.reindex(d["parent"]).to_numpy()
    age = (d["child_created"].to_numpy() - d_pc) / np.timedelta64(1, "D") / MONTH_DAYS
    age = age.astype(float)
    before = age < 0
    month = np.floor(np.maximum(age, 0.0)).astype(int)
    rows = d["row"].to_numpy()
    inwin = month < n_obs[rows]
    info["n_before_parent"] = np.bincount(rows[before], minlength=n)
    counts = np.zeros((n, max(T, 1)))
    np.add.at(counts, (rows[inwin], month[inwin]), 1.0)
    counts = np.cumsum(counts, axis=1)[:, :T] if T else counts[:, :0]
    counts[np.arange(T)[None, :] >= n_obs[:, None]] = np.nan
    info["n_children"] = (
        np.nan_to_num(counts[np.arange(n), np.maximum(n_obs - 1, 0)]).astype(int) if T else 0
    )
    info["parent_created_unknown"] = (
        unknown.reindex(kdf["parent"]).fillna(False).to_numpy(dtype=bool)
    )
    return GrowthSeries(
        ids=kdf["parent"].to_numpy(dtype=object),
        counts=counts,
        n_obs=n_obs,
        relation=kdf["relation"].to_numpy(dtype=object),
        info=info,
        dropped=dropped,
        as_of=as_of,
    )


def _as_matrix(Y):
    if isinstance(Y, GrowthSeries):
        return Y.counts, Y.ids
    if isinstance(Y, pd.DataFrame):
        if "model" in Y.columns:
            gs = GrowthSeries.from_wide(Y)
            return gs.counts, gs.ids
        return Y.to_numpy(dtype=float), Y.index.to_numpy()
    Y = np.atleast_2d(np.asarray(Y, dtype=float))
    return Y, np.arange(Y.shape[0])


def _last_obs(Y):
    fin = np.isfinite(Y)
    n_obs = np.where(fin.any(1), Y.shape[1] - np.argmax(fin[:, ::-1], axis=1), 0)
    yl = np.where(n_obs > 0, Y[np.arange(len(Y)), np.maximum(n_obs - 1, 0)], np.nan)
    return n_obs.astype(int), yl
