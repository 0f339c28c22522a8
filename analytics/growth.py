"""Adoption growth: derivative-count series, batched WSB fits, forecasts, backtests.

The Wang-Song-Barabasi (WSB) citation model, as adapted to Hugging Face
derivatives by Bhandari, Chen & Gao (2025), is

    c(t) = m * (exp(lambda * Phi((ln t - mu) / sigma)) - 1)

with ``t`` in months since the base model's release, ``Phi`` the standard
normal CDF, ``lambda`` fitness, ``mu`` immediacy and ``sigma`` longevity.

Conventions used throughout this module
---------------------------------------
* Month column ``k`` ("k-month" in the wide CSV) holds the cumulative number of
  derivatives created before the end of month ``k`` of the parent's life, i.e.
  with age < k+1 months (a month is 30.436875 days).  It is evaluated at
  ``t = k + 1`` months, so the first column is t = 1 (``ln t = 0``).
* Only *complete* months up to ``as_of`` are observed; later cells are NaN.
* The fitted model keeps the paper's ``m = 100`` fixed (so lambda, mu, sigma
  are directly comparable with the paper), but the optimiser works in the
  identifiable parametrisation ``theta = (log c_inf, mu, log sigma)`` where
  ``c_inf = m * (exp(lambda) - 1)`` is the asymptotic number of derivatives.
  With m fixed this is a bijection with (lambda, mu, sigma); with m free the
  data would only pin c_inf, mu, sigma and a weak shape parameter.
* ``WSBFitter`` minimises squared error on raw counts by default (the paper's
  objective); ``loss="log"`` fits log1p(counts) instead.  Both were measured
  (bench/fit.py): on the 2024-07 snapshot the raw-count loss gave the better
  backtest errors and R^2-based fit rate, the log loss a lower in-sample
  RMSLE on synthetic data.  Baselines (logistic, Bass) use the log loss.

Pure numpy/scipy/pandas: no Streamlit, no database access.
"""
from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

MONTH_DAYS = 365.2425 / 12.0  # 30.436875 days
RELATIONS = ("finetune", "adapter", "quantized", "merge", "unknown")
FLAG_NAMES = ("on_bound", "c_inf_cap", "not_converged", "bad_fit", "jump", "too_short", "too_few", "flat", "not_fitted")
_SQRT_2PI = math.sqrt(2.0 * math.pi)
#: Default cap on the WSB asymptote c_inf relative to the largest observed count (WSBFitter's
#: ``c_inf_max_ratio``; None = only the fixed 1e8 bound).  A fit that reaches it is flagged
#: ``c_inf_cap`` (not ok).  Measured on the graph-backed real series (bench/fit.py, section c,
#: holdout 6, h = 6): without it some "ok" fits had c_inf millions of times the observed count; with
#: 100 the ok fits' MAPE goes 56.9 -> 40.4 % (RMSLE 0.747 -> 0.690, now below last value's
#: 0.838 on the same series), wsb_or_last RMSLE 0.702 -> 0.698, raw WSB MAPE 4.9e7 -> 618 %;
#: ok fits 406 -> 398 of 12.7k.  1000 gave the same ok-fit figures, 10-30 fewer ok fits.
C_INF_MAX_RATIO: float | None = 100.0


class GrowthDataError(ValueError):
    """Raised for malformed input frames / CSV files (message is user-facing)."""


# --------------------------------------------------------------------------- #
# Series
# --------------------------------------------------------------------------- #
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
                n_undated_children, n_after_as_of.
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
            raise ValueError("GrowthSeries: ids, counts, n_obs, relation and info must have the same length")

    def __len__(self) -> int:
        return self.counts.shape[0]

    @property
    def t(self) -> np.ndarray:
        """Time grid in months (t = k + 1 for column k)."""
        return np.arange(self.counts.shape[1], dtype=float) + 1.0

    def subset(self, mask) -> "GrowthSeries":
        idx = np.flatnonzero(mask) if np.asarray(mask).dtype == bool else np.asarray(mask)
        return GrowthSeries(
            ids=self.ids[idx], counts=self.counts[idx], n_obs=self.n_obs[idx],
            relation=self.relation[idx], info=self.info.iloc[idx].reset_index(drop=True),
            dropped=dict(self.dropped), as_of=self.as_of,
        )

    def head(self, k: int) -> "GrowthSeries":
        """Keep only the first ``k`` months of every series (``n_obs = min(n_obs, k)``):
        "fit on the first k months", with the later months kept aside for comparison."""
        k = int(k)
        if k < 1:
            raise ValueError(f"head: k must be >= 1, got {k}")
        n_obs = np.minimum(self.n_obs, k)
        counts = self.counts[:, :k].copy()
        counts[np.arange(counts.shape[1])[None, :] >= n_obs[:, None]] = np.nan
        return GrowthSeries(self.ids, counts, n_obs, self.relation, self.info.copy(), dict(self.dropped),
                            self.as_of)

    def truncate(self, holdout: int) -> "GrowthSeries":
        """Drop the last ``holdout`` observed months of every series (for backtests)."""
        n_obs = np.maximum(self.n_obs - int(holdout), 0)
        counts = self.counts.copy()
        counts[np.arange(counts.shape[1])[None, :] >= n_obs[:, None]] = np.nan
        return GrowthSeries(self.ids, counts, n_obs, self.relation, self.info.copy(), dict(self.dropped),
                            self.as_of)

    def to_wide(self) -> pd.DataFrame:
        """Wide frame ``model, 0-month, 1-month, ...`` (NaN after the window)."""
        cols = [f"{k}-month" for k in range(self.counts.shape[1])]
        df = pd.DataFrame(self.counts, columns=cols)
        model = self.ids if np.all(self.relation == "all") else [f"{i}|{r}" for i, r in zip(self.ids, self.relation)]
        df.insert(0, "model", list(model))
        return df

    @classmethod
    def from_wide(cls, df: pd.DataFrame) -> "GrowthSeries":
        """Parse/validate a wide frame (see :func:`read_wide_csv`)."""
        if "model" not in df.columns:
            raise GrowthDataError(
                f"missing required column 'model' (found columns: {', '.join(map(str, df.columns[:8]))}"
                f"{'...' if len(df.columns) > 8 else ''})")
        month_cols = []
        for c in df.columns:
            if c == "model":
                continue
            m = re.fullmatch(r"\s*(\d+)\s*-\s*months?\s*", str(c))
            if not m:
                raise GrowthDataError(f"unexpected column {c!r}: expected 'model' and '<k>-month' columns")
            month_cols.append((int(m.group(1)), c))
        if not month_cols:
            raise GrowthDataError("no '<k>-month' columns found")
        month_cols.sort()
        ks = [k for k, _ in month_cols]
        if ks != list(range(len(ks))):
            raise GrowthDataError(f"month columns must be 0-month, 1-month, ... without gaps (got {ks[:10]})")
        raw = df[[c for _, c in month_cols]]
        vals = raw.apply(pd.to_numeric, errors="coerce")
        bad = vals.isna() & raw.notna() & (raw.astype(str).apply(lambda s: s.str.strip()) != "")
        if bad.to_numpy().any():
            r, c = np.argwhere(bad.to_numpy())[0]
            raise GrowthDataError(
                f"non-numeric value {raw.iat[r, c]!r} in row {r + 2} (model {df['model'].iat[r]!r}), "
                f"column {raw.columns[c]!r}; {int(bad.to_numpy().sum())} bad cell(s) in total")
        counts = vals.to_numpy(dtype=float)
        if np.any(counts[np.isfinite(counts)] < 0):
            r, c = np.argwhere(np.nan_to_num(counts, nan=0.0) < 0)[0]
            raise GrowthDataError(f"negative count in row {r + 2}, column {raw.columns[c]!r}")
        if df["model"].isna().any():
            raise GrowthDataError(f"empty 'model' value in row {int(np.flatnonzero(df['model'].isna())[0]) + 2}")
        return cls(ids=df["model"].astype(str).to_numpy(), counts=counts, n_obs=_n_obs_from_counts(counts))


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
    d = pd.to_datetime(pd.Series(dates), utc=True, errors="coerce").dropna()
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


def derivative_series(edges: pd.DataFrame, *, by_relation: bool = False, as_of=None,
                      unknown_parent: str = "impute", max_months: int | None = None) -> GrowthSeries:
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
        e[c] = pd.to_datetime(e[c], utc=True, errors="coerce")
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
        dropped["unknown_parent_created" if unknown_parent == "drop" else "unknown_parent_and_children_dates"] = n_unknown_drop
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
    info["n_undated_children"] = grp["child_created"].apply(lambda s: int(s.isna().sum())).to_numpy() if n else []
    info["n_after_as_of"] = grp["child_created"].apply(lambda s: int((s > as_of).sum())).to_numpy() if n else []

    d = e[~undated & ~after].merge(kdf, on=key if by_relation else ["parent"], how="left")
    if not by_relation:
        d = d.drop(columns=["relation_y"]).rename(columns={"relation_x": "relation"}) if "relation_y" in d else d
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
    info["n_children"] = np.nan_to_num(counts[np.arange(n), np.maximum(n_obs - 1, 0)]).astype(int) if T else 0
    info["parent_created_unknown"] = unknown.reindex(kdf["parent"]).fillna(False).to_numpy(dtype=bool)
    return GrowthSeries(ids=kdf["parent"].to_numpy(dtype=object), counts=counts, n_obs=n_obs,
                        relation=kdf["relation"].to_numpy(dtype=object), info=info, dropped=dropped,
                        as_of=as_of)


# --------------------------------------------------------------------------- #
# Model functions
# --------------------------------------------------------------------------- #
def wsb_curve(t, lam, mu, sigma, m: float = 100.0):
    """c(t) = m (exp(lam Phi((ln t - mu)/sigma)) - 1); broadcasts over inputs."""
    t = np.asarray(t, dtype=float)
    with np.errstate(divide="ignore"):
        z = (np.log(t) - mu) / sigma
    return m * np.expm1(lam * ndtr(z))


def wsb_lambda(c_inf, m: float = 100.0):
    """Paper fitness lambda for a given asymptote c_inf (m fixed)."""
    return np.log1p(np.asarray(c_inf, dtype=float) / m)


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


# ---- model evaluators: theta (n,p), t (1,T) -> (f, J) in "loss space" -------
def _wsb_eval(theta, t, jac, log, m):
    a, mu, s = theta[:, 0:1], theta[:, 1:2], theta[:, 2:3]
    cinf = np.exp(a)
    lam = np.log1p(cinf / m)
    sig = np.exp(s)
    with np.errstate(divide="ignore"):
        z = (np.log(t) - mu) / sig
    Phi = ndtr(z)
    em1 = np.expm1(lam * Phi)
    c = m * em1
    f = np.log1p(c) if log else c
    if not jac:
        return f, None
    J = np.empty((theta.shape[0], 3, f.shape[1]))
    mE = m * (em1 + 1.0)
    if log:
        mE /= 1.0 + c
    k = np.exp(-0.5 * z * z)
    k *= mE
    k *= lam / _SQRT_2PI
    np.multiply(mE * Phi, cinf / (m + cinf), out=J[:, 0])
    np.divide(k, sig, out=J[:, 1])
    J[:, 1] *= -1.0
    np.multiply(k, z, out=J[:, 2])
    J[:, 2] *= -1.0
    return f, J


def _logistic_eval(theta, t, jac, log):
    K, r, t0 = np.exp(theta[:, 0:1]), np.exp(theta[:, 1:2]), theta[:, 2:3]
    x = np.clip(r * (t - t0), -700, 700)
    g = 1.0 / (1.0 + np.exp(-x))
    c = K * g
    f = np.log1p(c) if log else c
    if not jac:
        return f, None
    gg = K * g * (1 - g)
    J = np.stack([c, gg * x, -gg * r], axis=1)
    if log:
        J /= (1.0 + c)[:, None, :]
    return f, J


def _bass_eval(theta, t, jac, log):
    M, p, q = np.exp(theta[:, 0:1]), np.exp(theta[:, 1:2]), np.exp(theta[:, 2:3])
    u = p + q
    r = q / p
    E = np.exp(-u * t)
    den = 1.0 + r * E
    F = (1.0 - E) / den
    c = M * F
    f = np.log1p(c) if log else c
    if not jac:
        return f, None
    dF_dE = -(1.0 + r) / den ** 2
    dF_dr = -(1.0 - E) * E / den ** 2
    dE_du = -t * E
    J = np.stack([c, M * (dF_dE * dE_du * p - dF_dr * r), M * (dF_dE * dE_du * q + dF_dr * r)], axis=1)
    if log:
        J /= (1.0 + c)[:, None, :]
    return f, J


# --------------------------------------------------------------------------- #
# Batched Levenberg-Marquardt
# --------------------------------------------------------------------------- #
def batched_lm(model: Callable, theta0: np.ndarray, t: np.ndarray, Y: np.ndarray, lo, hi, *,
               max_iter: int = 200, ftol: float = 1e-10, xtol: float = 1e-10, gtol: float = 1e-12,
               damping0: float = 1e-3):
    """Projected Levenberg-Marquardt over a batch of independent problems.

    model(theta (k,p), t (1,T), jac: bool) -> (f (k,T), J (k,p,T) or None).
    Y (n,T) are targets in the same space as f (NaN = missing, masked).
    lo/hi: (p,) or (n,p) box bounds.  A parameter on a bound whose gradient
    points outwards is frozen for that step (active set); steps are clipped
    to the box.  Marquardt damping (scaled by diag(J'J)), one model
    evaluation (value + Jacobian) per iteration, converged series leave the
    active set.

    Returns dict(theta, cost, converged, n_iter, J (n,p,T) at the solution).
    """
    theta = np.clip(np.array(theta0, dtype=float), lo, hi)
    n, p = theta.shape
    lo = np.broadcast_to(np.asarray(lo, float), (n, p))
    hi = np.broadcast_to(np.asarray(hi, float), (n, p))
    t = np.asarray(t, float).reshape(1, -1)
    Wf = np.isfinite(Y).astype(float)
    Y0 = np.where(Wf > 0, Y, 0.0)

    def evaluate(th, rows):
        f, J = model(th, t, True)
        w = Wf[rows]
        r = (f - Y0[rows]) * w
        J *= w[:, None, :]
        with np.errstate(invalid="ignore", over="ignore"):
            c = 0.5 * np.einsum("nt,nt->n", r, r)
        fin = np.isfinite(c) & np.isfinite(J).all(axis=(1, 2))
        return r, J, np.where(fin, c, np.inf)

    r, J, cost = evaluate(theta, np.arange(n))
    # absolute cost tolerance: a (numerically) perfect fit is converged
    atol = 1e-12 * (1.0 + 0.5 * np.einsum("nt,nt->n", Y0, Y0))
    lam = np.full(n, damping0)
    done = ~np.isfinite(cost)
    converged = np.zeros(n, bool)
    n_iter = np.zeros(n, int)
    eye = np.eye(p)
    for _ in range(max_iter):
        act = np.flatnonzero(~done)
        if act.size == 0:
            break
        Ja, ra, th = J[act], r[act], theta[act]
        A = np.matmul(Ja, Ja.transpose(0, 2, 1))
        g = np.matmul(Ja, ra[:, :, None])[:, :, 0]
        frozen = ((th <= lo[act]) & (g > 0)) | ((th >= hi[act]) & (g < 0))
        keep = ~frozen
        A = A * keep[:, :, None] * keep[:, None, :] + eye * frozen[:, :, None]
        g = g * keep
        dA = np.maximum(np.diagonal(A, axis1=1, axis2=2), 1e-12)
        Ad = A + (lam[act, None] * dA)[:, :, None] * eye
        try:
            step = -np.linalg.solve(Ad, g[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = -np.einsum("npq,nq->np", np.linalg.pinv(Ad), g)
        step *= keep
        th_new = np.clip(th + step, lo[act], hi[act])
        r_new, J_new, c_new = evaluate(th_new, act)
        c_old = cost[act]
        acc = c_new < c_old
        dth = np.abs(th_new - th).max(axis=1)
        small_step = dth <= xtol * (np.abs(th).max(axis=1) + xtol)
        rel = np.where(acc, (c_old - c_new) / np.maximum(c_old, 1e-300), 0.0)
        gnorm = np.abs(g).max(axis=1)
        conv = (acc & (rel <= ftol)) | small_step | (gnorm <= gtol) | (c_old <= atol[act])
        ia = act[acc]
        theta[ia], cost[ia], r[ia], J[ia] = th_new[acc], c_new[acc], r_new[acc], J_new[acc]
        lam[act] = np.where(acc, np.maximum(lam[act] / 3.0, 1e-15), lam[act] * 4.0)
        n_iter[act] += 1
        stop = conv | (lam[act] > 1e16)
        converged[act[stop]] = True
        done[act[stop]] = True
    return dict(theta=theta, cost=cost, converged=converged, n_iter=n_iter, J=J)


# --------------------------------------------------------------------------- #
# Estimators
# --------------------------------------------------------------------------- #
def _r2_rmsle(Y, pred):
    W = np.isfinite(Y)
    n = W.sum(1)
    Y0 = np.where(W, Y, 0.0)
    P0 = np.where(W, pred, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = Y0.sum(1) / np.maximum(n, 1)
        sst = (np.where(W, Y0 - mean[:, None], 0.0) ** 2).sum(1)
        ssr = (np.where(W, Y0 - P0, 0.0) ** 2).sum(1)
        r2 = np.where(sst > 0, 1.0 - ssr / sst, np.where(ssr <= 1e-12 * np.maximum(1, mean ** 2), 1.0, np.nan))
        lr = np.where(W, np.log1p(np.maximum(P0, 0)) - np.log1p(Y0), 0.0)
        rmsle = np.sqrt((lr ** 2).sum(1) / np.maximum(n, 1))
    r2 = np.where(n > 0, r2, np.nan)
    rmsle = np.where(n > 0, rmsle, np.nan)
    return r2, rmsle


def detect_jumps(Y, *, share: float = 0.4, ratio: float = 4.0, min_count: float = 10.0) -> np.ndarray:
    """Flag series with an abrupt step: some month k >= 1 whose increment is
    >= ``share`` of the final count, >= ``min_count`` and >= ``ratio`` times
    the larger of its neighbouring increments (a batch upload, a re-tagging
    sweep...).  Month 0 is excluded (a large first month is immediacy)."""
    Y, _ = _as_matrix(Y)
    if Y.shape[1] < 2:
        return np.zeros(len(Y), bool)
    n_obs, yl = _last_obs(Y)
    Yf = Y.copy()
    d = np.diff(Yf, axis=1)  # d[:, k-1] = y_k - y_{k-1}, k>=1
    prev = np.concatenate([Yf[:, :1], d[:, :-1]], axis=1)  # increment of month k-1 (month 0: y_0)
    nxt = np.concatenate([d[:, 1:], np.full((len(Y), 1), np.nan)], axis=1)
    nb = np.fmax(np.nan_to_num(prev, nan=0.0), np.nan_to_num(nxt, nan=0.0))
    with np.errstate(invalid="ignore"):
        j = (d >= share * yl[:, None]) & (d >= min_count) & (d >= ratio * np.maximum(nb, 1.0))
    return np.nan_to_num(j, nan=0).astype(bool).any(axis=1)


class _CurveFitter:
    """Shared machinery: batched multi-start LM fit of a 3-parameter curve."""

    param_names: tuple = ()

    def __init__(self, *, loss: str = "log", max_iter: int = 200, ftol: float = 1e-10,
                 explore_iter: int = 5, min_points: int = 3):
        if loss not in ("log", "linear"):
            raise ValueError("loss must be 'log' or 'linear'")
        self.loss = loss
        self.max_iter = max_iter
        self.ftol = ftol
        self.explore_iter = explore_iter
        self.min_points = min_points

    # subclasses: _eval(theta, t, jac, log), _starts(Y, t, yl, tl) -> (n, S, p), _bounds() -> lo, hi, _curve(theta, t)
    def _model(self):
        log = self.loss == "log"
        return lambda th, t, jac: self._eval(th, t, jac, log)

    def _row_bounds(self, yl):
        """Per-series box (k, p) given each series' largest count ``yl``; default: the fixed box."""
        lo, hi = self._bounds()
        k = len(yl)
        return np.tile(lo, (k, 1)), np.tile(hi, (k, 1))

    def _target(self, Y):
        return np.log1p(Y) if self.loss == "log" else Y

    def fit(self, Y, t=None):
        Y, ids = _as_matrix(Y)
        n, T = Y.shape
        self.ids_ = np.asarray(ids)
        self.t_ = np.arange(T, dtype=float) + 1.0 if t is None else np.asarray(t, float)
        self.n_obs_, self.last_y_ = _last_obs(Y)
        self.n_points_ = np.isfinite(Y).sum(1)
        self.last_t_ = np.where(self.n_obs_ > 0, self.t_[np.maximum(self.n_obs_ - 1, 0)], np.nan)
        ymax = np.nanmax(np.where(np.isfinite(Y), Y, -np.inf), axis=1) if T else np.full(n, -np.inf)
        self.zero_ = (self.n_points_ > 0) & (ymax <= 0)
        fit_mask = (self.n_points_ >= self.min_points) & (ymax > 0) & (self.n_points_ >= 3)
        self.fitted_ = fit_mask
        p = len(self.param_names)
        self.theta_ = np.full((n, p), np.nan)
        self.cost_ = np.full(n, np.nan)
        self.converged_ = np.zeros(n, bool)
        self.n_iter_ = np.zeros(n, int)
        self.cov_ = np.full((n, p, p), np.nan)
        self.s2_ = np.full(n, np.nan)
        idx = np.flatnonzero(fit_mask)
        if idx.size:
            Yi = Y[idx]
            Z = self._target(Yi)
            yl = np.nanmax(np.where(np.isfinite(Yi), Yi, -np.inf), axis=1)
            tl = self.last_t_[idx]
            starts = self._starts(Yi, self.t_, yl, tl)  # (k, S, p)
            k, S, _ = starts.shape
            lo, hi = self._row_bounds(yl)  # (k, p) each
            starts = np.clip(starts, lo[:, None, :] + 1e-6, hi[:, None, :] - 1e-6)
            model = self._model()
            # stage 1: short exploration from every start, batched together
            res = batched_lm(model, starts.reshape(k * S, p), self.t_, np.repeat(Z, S, axis=0),
                             np.repeat(lo, S, axis=0), np.repeat(hi, S, axis=0),
                             max_iter=self.explore_iter, ftol=self.ftol)
            cost = res["cost"].reshape(k, S)
            cost = np.where(np.isfinite(cost), cost, np.inf)
            best = np.argmin(cost, axis=1)
            th1 = res["theta"].reshape(k, S, p)[np.arange(k), best]
            # stage 2: polish the best start to convergence
            res = batched_lm(model, th1, self.t_, Z, lo, hi, max_iter=self.max_iter, ftol=self.ftol)
            self.theta_[idx] = res["theta"]
            self.cost_[idx] = res["cost"]
            self.converged_[idx] = res["converged"] & np.isfinite(res["cost"])
            self.n_iter_[idx] = res["n_iter"] + self.explore_iter
            # delta-method covariance in theta space (pseudo-inverse handles parameters on bounds)
            J = res["J"]
            dof = np.maximum(self.n_points_[idx] - p, 1)
            s2 = 2.0 * res["cost"] / dof
            self.s2_[idx] = s2
            with np.errstate(invalid="ignore", over="ignore"):
                JTJ = np.matmul(J, J.transpose(0, 2, 1))
                good = np.isfinite(JTJ).all(axis=(1, 2))
                cov = np.full_like(JTJ, np.nan)
                if good.any():
                    cov[good] = np.linalg.pinv(JTJ[good], rcond=1e-10, hermitian=True) * s2[good, None, None]
            self.cov_[idx] = cov
            lo_b, hi_b = lo, hi
            g_lo, g_hi = self._bounds()
            tol = 1e-4 * (g_hi - g_lo)
            self.on_bound_params_ = np.zeros((n, p), bool)
            self.on_bound_params_[idx] = (res["theta"] <= lo_b + tol) | (res["theta"] >= hi_b - tol)
        else:
            self.on_bound_params_ = np.zeros((n, p), bool)
        pred = self.predict(self.t_)
        self.r2_, self.rmsle_ = _r2_rmsle(Y, pred)
        self._Y = Y
        return self

    def predict(self, t, rows=None) -> np.ndarray:
        """Curve values.  ``t`` 1-D (shared grid) -> (n, len(t)); ``t`` 2-D (n, k)
        -> per-series times.  NaN for unfitted series, 0 for all-zero series.
        ``rows`` (indices) restricts the output to those series (n = len(rows))."""
        t = np.asarray(t, float)
        rows = np.arange(len(self.theta_)) if rows is None else np.atleast_1d(np.asarray(rows, int))
        n = len(rows)
        th = np.nan_to_num(self.theta_[rows])
        if t.ndim == 2:
            if t.shape[0] != n:
                raise ValueError("2-D t must have one row per series")
            out = self._eval(th, t, False, False)[0]  # theta (n,1) broadcasts against t (n,k)
        else:
            out = self._eval(th, t.reshape(1, -1), False, False)[0]
            out = np.broadcast_to(out, (n, t.size)).copy()
        out[~self.fitted_[rows]] = np.nan
        out[self.zero_[rows]] = 0.0
        return out

    def predict_ahead(self, h) -> np.ndarray:
        """Predicted cumulative count ``h`` months after each series' last observation -> (n,)."""
        return self.predict(np.nan_to_num(self.last_t_ + float(h), nan=1.0)[:, None])[:, 0]

    def predict_interval(self, h, level: float = 0.8, rows=None):
        """(pred, low, high) at ``h`` months ahead.  Delta method in the loss
        space (log1p by default): Var = g' Cov g + s^2 (prediction interval).
        Residuals of cumulative series are serially correlated, so the band is
        optimistic; the backtest reports its empirical coverage.  ``rows``
        (indices) restricts the output to those series."""
        from scipy.stats import norm
        zq = norm.ppf(0.5 + level / 2.0)
        rows = np.arange(len(self.theta_)) if rows is None else np.atleast_1d(np.asarray(rows, int))
        t = np.nan_to_num(self.last_t_[rows] + float(h), nan=1.0)
        th = np.nan_to_num(self.theta_[rows])
        log = self.loss == "log"
        # evaluate each series at its own t: use (n,1) time column
        f, J = self._eval_rows(th, t, log)
        cov = np.nan_to_num(self.cov_[rows])
        var = np.einsum("np,npq,nq->n", J, cov, J) + np.nan_to_num(self.s2_[rows])
        sd = np.sqrt(np.maximum(var, 0.0))
        if log:
            pred, low, high = np.expm1(f), np.expm1(f - zq * sd), np.expm1(f + zq * sd)
        else:
            pred, low, high = f, f - zq * sd, f + zq * sd
        low = np.maximum(low, 0.0)
        out = []
        for a in (pred, low, high):
            a = np.where(self.fitted_[rows], a, np.nan)
            out.append(np.where(self.zero_[rows], 0.0, a))
        return tuple(out)

    def _eval_rows(self, th, t_rows, log):
        f, J = self._eval(th, np.asarray(t_rows, float)[:, None], True, log)
        return f[:, 0], J[:, :, 0]


class WSBFitter(_CurveFitter):
    """Batched WSB fit (paper model with m fixed, default m = 100).

    Parameters (keyword-only): m, loss ('linear' = raw counts, default | 'log'
    = log1p counts), max_iter,
    explore_iter (iterations spent on every start before keeping the best),
    min_points (series shorter than this are flagged too_short; series with
    < 3 points are not fitted), min_derivatives (final count below this is
    flagged too_few), r2_min / rmsle_max (bad_fit thresholds; R2 is
    on raw counts, RMSLE on log1p counts), bounds for mu and sigma, jump_* for
    :func:`detect_jumps`, c_inf_max_ratio (cap on c_inf as a multiple of the
    largest observed count, default :data:`C_INF_MAX_RATIO`; None = off).

    Learned attributes: ids_, theta_ (log c_inf, mu, log sigma), c_inf_,
    lambda_, mu_, sigma_, cost_, converged_, n_iter_, r2_, rmsle_, cov_,
    flags_ (DataFrame of bools, FLAG_NAMES), ok_, on_bound_params_,
    c_inf_cap_ (the cap per series, inf where none), n_obs_, last_t_, last_y_.
    """

    param_names = ("log_c_inf", "mu", "log_sigma")

    def __init__(self, *, m: float = 100.0, loss: str = "linear", max_iter: int = 200, ftol: float = 1e-10,
                 explore_iter: int = 5, min_points: int = 6, min_derivatives: float = 5, r2_min: float = 0.9,
                 rmsle_max: float = 0.5,
                 c_inf_bounds=(1e-2, 1e8), mu_bounds=(-4.0, 8.0), sigma_bounds=(0.05, 8.0),
                 jump_share: float = 0.4, jump_ratio: float = 4.0, jump_min_count: float = 10.0,
                 c_inf_max_ratio: float | None = C_INF_MAX_RATIO):
        super().__init__(loss=loss, max_iter=max_iter, ftol=ftol, explore_iter=explore_iter, min_points=3)
        if c_inf_max_ratio is not None and not c_inf_max_ratio > 1.0:
            raise ValueError(f"c_inf_max_ratio must be > 1 or None, got {c_inf_max_ratio!r}")
        self.c_inf_max_ratio = c_inf_max_ratio
        self.m = m
        self.min_points_flag = min_points
        self.min_derivatives = min_derivatives
        self.r2_min = r2_min
        self.rmsle_max = rmsle_max
        self.c_inf_bounds = c_inf_bounds
        self.mu_bounds = mu_bounds
        self.sigma_bounds = sigma_bounds
        self.jump_share = jump_share
        self.jump_ratio = jump_ratio
        self.jump_min_count = jump_min_count

    def _eval(self, theta, t, jac, log):
        return _wsb_eval(theta, t, jac, log, self.m)

    def _row_bounds(self, yl):
        lo, hi = super()._row_bounds(yl)
        if self.c_inf_max_ratio is not None:
            cap = np.log(float(self.c_inf_max_ratio) * np.maximum(np.asarray(yl, float), 1.0))
            hi[:, 0] = np.minimum(hi[:, 0], cap)
        return lo, hi

    def _bounds(self):
        lo = np.array([math.log(self.c_inf_bounds[0]), self.mu_bounds[0], math.log(self.sigma_bounds[0])])
        hi = np.array([math.log(self.c_inf_bounds[1]), self.mu_bounds[1], math.log(self.sigma_bounds[1])])
        return lo, hi

    def _starts(self, Y, t, yl, tl):
        """Data-driven starts.  For a guessed c_inf = f * y_max the model gives
        Phi_k = log1p(y_k/m)/lambda exactly, so z_k = ndtri(Phi_k) and
        ln t_k = mu + sigma z_k is a weighted linear regression."""
        m = self.m
        lt = np.log(t)[None, :]
        lo, hi = self._bounds()
        starts = []
        for fac in (1.05, 1.5, 3.0):
            cinf = fac * yl
            lam = np.log1p(cinf / m)
            with np.errstate(invalid="ignore", divide="ignore"):
                Phi = np.log1p(np.where(np.isfinite(Y), Y, np.nan) / m) / lam[:, None]
            w = np.isfinite(Phi) & (Phi > 0.02) & (Phi < 0.98)
            z = ndtri(np.clip(np.nan_to_num(Phi, nan=0.5), 0.02, 0.98))
            sw = w.sum(1)
            zb = np.where(w, z, 0).sum(1) / np.maximum(sw, 1)
            xb = np.where(w, lt, 0).sum(1) / np.maximum(sw, 1)
            szz = np.where(w, (z - zb[:, None]) ** 2, 0).sum(1)
            szx = np.where(w, (z - zb[:, None]) * (lt - xb[:, None]), 0).sum(1)
            with np.errstate(invalid="ignore", divide="ignore"):
                sig = szx / szz
            okr = (sw >= 2) & (szz > 1e-9) & np.isfinite(sig) & (sig > 0)
            sig = np.where(okr, sig, 1.0)
            mu = np.where(okr, xb - sig * zb, np.log(np.maximum(tl, 1.0)) * 0.7)
            starts.append(np.stack([np.log(cinf), mu, np.log(np.clip(sig, 0.06, 7.0))], axis=1))
        # generic fallback (more starts, e.g. c_inf = 10 or 50 y_max, did not lower the cost on
        # synthetic or real series and cost ~1/6 of the run time each)
        starts.append(np.stack([np.log(2 * yl), np.log(np.maximum(tl, 1.0)) * 0.5, np.zeros_like(yl)], axis=1))
        # "immediate" start: everything before month 1 (flat series; the box corner mu=-4,
        # sigma=8 is a local minimum of the raw-count loss that the others can fall into)
        starts.append(np.stack([np.log(1.02 * yl), np.full_like(yl, -1.0), np.full_like(yl, math.log(0.3))], axis=1))
        st = np.stack(starts, axis=1)
        return np.clip(np.nan_to_num(st), lo + 1e-6, hi - 1e-6)

    def fit(self, Y, t=None):
        super().fit(Y, t)
        th = self.theta_
        self.c_inf_ = np.where(self.zero_, 0.0, np.exp(th[:, 0]))
        self.lambda_ = wsb_lambda(self.c_inf_, self.m)
        self.mu_ = th[:, 1]
        self.sigma_ = np.exp(th[:, 2])
        n = len(th)
        fitted = self.fitted_
        # the relative cap on c_inf (c_inf_max_ratio x largest count) reached: the asymptote is not
        # identified by the window (still accelerating); reported apart from the fixed box
        ymax = np.nanmax(np.where(np.isfinite(self._Y), self._Y, 0.0), axis=1) if self._Y.shape[1] else np.zeros(n)
        if self.c_inf_max_ratio is not None:
            cap = float(self.c_inf_max_ratio) * np.maximum(ymax, 1.0)
            self.c_inf_cap_ = np.where(cap < self.c_inf_bounds[1], cap, np.inf)
        else:
            self.c_inf_cap_ = np.full(n, np.inf)
        at_cap = fitted & np.isfinite(self.c_inf_cap_) & self.on_bound_params_[:, 0] & (th[:, 0] > math.log(self.c_inf_bounds[0]) + 1)
        box = self.on_bound_params_.copy()
        box[:, 0] &= ~at_cap
        flags = pd.DataFrame({
            "on_bound": box.any(axis=1),
            "c_inf_cap": at_cap,
            "not_converged": fitted & ~self.converged_,
            "bad_fit": fitted & ~((self.r2_ >= self.r2_min) & (self.rmsle_ <= self.rmsle_max)),
            "jump": detect_jumps(self._Y, share=self.jump_share, ratio=self.jump_ratio,
                                 min_count=self.jump_min_count),
            "too_short": self.n_points_ < self.min_points_flag,
            "too_few": ~(np.nan_to_num(self.last_y_) >= self.min_derivatives),
            # no growth inside the window: fits exactly with any early curve, so mu/sigma are unidentified
            "flat": fitted & (np.nanmin(np.where(np.isfinite(self._Y), self._Y, np.inf), axis=1) == self.last_y_),
            "not_fitted": ~fitted,
        }, index=range(n))
        self.flags_ = flags
        self.ok_ = fitted & self.converged_ & ~flags[["on_bound", "c_inf_cap", "bad_fit", "jump", "too_short", "too_few", "flat"]].any(axis=1).to_numpy()
        return self

    def good_fit(self, r2_min: float | None = None) -> np.ndarray:
        """Benchmark definition shared with the curve_fit reference:
        converged, R2 (raw counts) >= r2_min, no parameter on a bound."""
        r2_min = self.r2_min if r2_min is None else r2_min
        return self.fitted_ & self.converged_ & (self.r2_ >= r2_min) & ~self.on_bound_params_.any(axis=1)

    def summary(self, horizons: Sequence[int] = (6, 12), level: float = 0.8) -> pd.DataFrame:
        """One row per series: model, lambda, mu, sigma (m = 100 form), c_inf, ok,
        r2, rmsle, flags, n_obs, last, pred_{h}m (+ _low/_high)."""
        df = pd.DataFrame({
            "model": self.ids_, "lambda": self.lambda_, "mu": self.mu_, "sigma": self.sigma_,
            "c_inf": self.c_inf_, "ok": self.ok_, "r2": self.r2_, "rmsle": self.rmsle_,
            "flags": [";".join(k for k in FLAG_NAMES if row[k]) for row in self.flags_.to_dict("records")],
            "n_obs": self.n_obs_, "last": self.last_y_, "converged": self.converged_,
        })
        for h in horizons:
            p, lo, hi = self.predict_interval(h, level)
            df[f"pred_{h}m"], df[f"pred_{h}m_low"], df[f"pred_{h}m_high"] = p, lo, hi
        return df


class LogisticFitter(_CurveFitter):
    """Baseline: logistic c(t) = K / (1 + exp(-r (t - t0))), batched LM in log1p space."""

    param_names = ("log_K", "log_r", "t0")

    def _eval(self, theta, t, jac, log):
        return _logistic_eval(theta, t, jac, log)

    def _bounds(self):
        return (np.array([math.log(1e-2), math.log(1e-3), -100.0]),
                np.array([math.log(1e8), math.log(20.0), 600.0]))

    def _starts(self, Y, t, yl, tl):
        st = []
        for fac, r in ((1.2, 0.3), (3.0, 0.2), (10.0, 0.1), (1.05, 1.0)):
            # K g(t_last) = y_last  =>  t0 = t_last + ln(fac - 1) / r
            st.append(np.stack([np.log(fac * yl), np.full_like(yl, math.log(r)), tl + math.log(fac - 1.0) / r], axis=1))
        return np.clip(np.stack(st, axis=1), *self._bounds())


class BassFitter(_CurveFitter):
    """Baseline: Bass diffusion N(t) = M (1 - e^{-(p+q)t}) / (1 + (q/p) e^{-(p+q)t})."""

    param_names = ("log_M", "log_p", "log_q")

    def _eval(self, theta, t, jac, log):
        return _bass_eval(theta, t, jac, log)

    def _bounds(self):
        return (np.array([math.log(1e-2), math.log(1e-7), math.log(1e-6)]),
                np.array([math.log(1e8), math.log(2.0), math.log(5.0)]))

    def _starts(self, Y, t, yl, tl):
        st = []
        for fac, p, q in ((1.2, 0.05, 0.3), (3.0, 0.01, 0.2), (10.0, 0.003, 0.1), (1.05, 0.3, 0.1)):
            st.append(np.stack([np.log(fac * yl), np.full_like(yl, math.log(p)), np.full_like(yl, math.log(q))], axis=1))
        return np.clip(np.stack(st, axis=1), *self._bounds())


class LastValue:
    """Baseline: the last observed cumulative count persists."""

    def fit(self, Y, t=None):
        Y, self.ids_ = _as_matrix(Y)
        self.n_obs_, self.last_y_ = _last_obs(Y)
        return self

    def predict_ahead(self, h):
        return self.last_y_.copy()


class LinearTrend:
    """Baseline: OLS line through the last ``window`` observed months,
    extrapolated; never below the last observed value."""

    def __init__(self, *, window: int = 6):
        self.window = window

    def fit(self, Y, t=None):
        Y, self.ids_ = _as_matrix(Y)
        n, T = Y.shape
        self.n_obs_, self.last_y_ = _last_obs(Y)
        tt = np.arange(T, dtype=float)[None, :]
        w = np.isfinite(Y) & (tt >= (self.n_obs_ - self.window)[:, None])
        sw = w.sum(1)
        xb = np.where(w, tt, 0).sum(1) / np.maximum(sw, 1)
        yb = np.where(w, Y, 0).sum(1) / np.maximum(sw, 1)
        sxx = np.where(w, (tt - xb[:, None]) ** 2, 0).sum(1)
        sxy = np.where(w, (tt - xb[:, None]) * (np.nan_to_num(Y) - yb[:, None]), 0).sum(1)
        self.slope_ = np.where(sxx > 0, sxy / np.where(sxx > 0, sxx, 1), 0.0)
        self.intercept_ = yb - self.slope_ * xb
        return self

    def predict_ahead(self, h):
        x = self.n_obs_ - 1 + float(h)
        return np.maximum(self.intercept_ + self.slope_ * x, self.last_y_)


def fit_wsb(Y, **kwargs) -> WSBFitter:
    """Convenience: ``WSBFitter(**kwargs).fit(Y)``."""
    return WSBFitter(**kwargs).fit(Y)


# --------------------------------------------------------------------------- #
# Backtest and ranking
# --------------------------------------------------------------------------- #
def default_methods() -> dict:
    return {
        "wsb": lambda: WSBFitter(),
        "last_value": lambda: LastValue(),
        "linear": lambda: LinearTrend(window=6),
        "logistic": lambda: LogisticFitter(),
        "bass": lambda: BassFitter(),
    }


def backtest(series, *, holdout: int = 6, horizons: Iterable[int] = (3, 6, 12), min_train: int = 6,
             methods: dict | None = None, level: float = 0.8, return_predictions: bool = False,
             ok_rows: bool = False):
    """Fit every method on all but the last ``holdout`` observed months and score
    forecasts ``h`` months after the training window (h <= holdout).

    Eligible series: >= min_train training months, last training value > 0.
    Every method is scored on the same series.  Also reports ``wsb_anchored``
    (WSB increment added to the last observed value), ``wsb_or_last`` (WSB
    where its fit is ``ok``, last value otherwise), with ``ok_rows=True``
    ``wsb[ok]`` and ``last_value[ok]`` (both scored only on the series whose
    WSB fit is ok), and, for WSB, the empirical coverage of its ``level``
    prediction band.

    Returns a tidy DataFrame: method, horizon, n_series, mape (mean APE, %),
    mdape (median APE, %), rmsle, coverage.
    """
    if not isinstance(series, GrowthSeries):
        Y, ids = _as_matrix(series)
        series = GrowthSeries(ids=ids, counts=Y, n_obs=None)
    horizons = [int(h) for h in horizons if int(h) <= holdout]
    if not horizons:
        raise ValueError(f"no horizon <= holdout ({holdout})")
    train = series.truncate(holdout)
    Yt = train.counts
    _, last_train = _last_obs(Yt)
    elig = (train.n_obs >= min_train) & (np.nan_to_num(last_train) > 0) & (series.n_obs - train.n_obs >= max(horizons))
    idx = np.flatnonzero(elig)
    Ytr = Yt[idx]
    if idx.size:
        T_need = int(train.n_obs[idx].max())
        Ytr = Ytr[:, :T_need]
    truth = {h: series.counts[idx, train.n_obs[idx] - 1 + h] for h in horizons}
    methods = default_methods() if methods is None else methods
    preds: dict[str, dict[int, np.ndarray]] = {}
    bands: dict[int, tuple] = {}
    for name, make in methods.items():
        est = make().fit(Ytr)
        preds[name] = {h: est.predict_ahead(h) for h in horizons}
        if name == "wsb" and idx.size:
            bands = {h: est.predict_interval(h, level) for h in horizons}
            # anchored variant: WSB growth increment added to the last observed value
            base = est.predict(est.last_t_[:, None])[:, 0]
            preds["wsb_anchored"] = {h: np.maximum(last_train[idx] + preds["wsb"][h] - base, last_train[idx])
                                     for h in horizons}
            # what a product would show: WSB where the fit is ok, last value otherwise
            preds["wsb_or_last"] = {h: np.where(est.ok_, preds["wsb"][h], last_train[idx]) for h in horizons}
            if ok_rows:
                # the ok fits alone (what the page shows as a WSB forecast), last value on the same series
                ok_mask = est.ok_.copy()
                preds["wsb[ok]"] = preds["wsb"]
                preds["last_value[ok]"] = {h: last_train[idx].copy() for h in horizons}
    only = {"wsb[ok]": ok_mask, "last_value[ok]": ok_mask} if "wsb[ok]" in preds else {}
    rows = []
    for name, ph in preds.items():
        for h in horizons:
            y, p = truth[h], ph[h]
            m = np.isfinite(p) & np.isfinite(y) & (y > 0)
            if name in only:
                m &= only[name]
            ape = np.abs(p[m] - y[m]) / y[m] * 100.0
            le = np.log1p(np.maximum(p[m], 0)) - np.log1p(y[m])
            cov = np.nan
            if name in ("wsb", "wsb[ok]") and h in bands:
                _, lo, hi = bands[h]
                mm = m & np.isfinite(lo) & np.isfinite(hi)
                cov = float(np.mean((y[mm] >= lo[mm]) & (y[mm] <= hi[mm]))) if mm.any() else np.nan
            n_failed = int((~np.isfinite(p) & only[name]).sum()) if name in only else int((~np.isfinite(p)).sum())
            rows.append(dict(method=name, horizon=h, n_series=int(m.sum()), n_failed=n_failed,
                             mape=float(ape.mean()) if ape.size else np.nan,
                             mdape=float(np.median(ape)) if ape.size else np.nan,
                             rmsle=float(np.sqrt(np.mean(le ** 2))) if le.size else np.nan, coverage=cov))
    table = pd.DataFrame(rows).sort_values(["horizon", "rmsle"], kind="stable").reset_index(drop=True)
    table.attrs.update(n_eligible=int(idx.size), holdout=holdout, level=level)
    if return_predictions:
        return table, dict(ids=series.ids[idx], truth=truth, preds=preds)
    return table


def rank_models(summary: pd.DataFrame, *, horizons: Sequence[int] = (6, 12), ok_only: bool = True,
                top: int | None = None) -> pd.DataFrame:
    """Rank base models by predicted derivatives in ``horizons`` months and by
    fitness (lambda).  ``summary`` is :meth:`WSBFitter.summary` output.

    Returns model, last, pred_{h}m, growth_{h}m (= pred - last), lambda,
    c_inf, ok, rank_{h}m (1 = most derivatives predicted), rank_fitness,
    sorted by the first horizon's rank.  ``ok_only`` drops flagged fits."""
    need = {"model", "lambda", "c_inf", "ok", "last"} | {f"pred_{h}m" for h in horizons}
    miss = sorted(need - set(summary.columns))
    if miss:
        raise ValueError(f"summary is missing columns {miss}; call WSBFitter.summary(horizons={tuple(horizons)})")
    df = summary[summary["ok"]] if ok_only else summary
    cols = ["model", "last"] + [f"pred_{h}m" for h in horizons] + ["lambda", "c_inf", "ok"]
    extra = [c for c in summary.columns if c.endswith(("_low", "_high")) and any(c.startswith(f"pred_{h}m") for h in horizons)]
    out = df[cols + extra].copy()
    for h in horizons:
        out[f"growth_{h}m"] = out[f"pred_{h}m"] - out["last"]
        out[f"rank_{h}m"] = out[f"pred_{h}m"].rank(ascending=False, method="min", na_option="bottom").astype(int)
    out["rank_fitness"] = out["lambda"].rank(ascending=False, method="min", na_option="bottom").astype(int)
    out = out.sort_values([f"rank_{horizons[0]}m", "rank_fitness"], kind="stable").reset_index(drop=True)
    return out.head(top) if top is not None else out


# --------------------------------------------------------------------------- #
# CLI
# --------------------------------------------------------------------------- #
def _parse_int_list(s: str) -> list[int]:
    try:
        v = [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}") from None
    if not v or any(x <= 0 for x in v):
        raise argparse.ArgumentTypeError("horizons must be positive integers")
    return v


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m analytics.growth",
                                 description="Fit the WSB growth model to derivative-count series (wide CSV).")
    sub = ap.add_subparsers(dest="cmd", required=True)
    pf = sub.add_parser("fit", help="fit every series, write one row per model")
    pf.add_argument("csv")
    pf.add_argument("--out", required=True)
    pf.add_argument("--horizons", type=_parse_int_list, default=[6, 12])
    pf.add_argument("--level", type=float, default=0.8)
    pf.add_argument("--loss", choices=("log", "linear"), default="linear")
    pb = sub.add_parser("backtest", help="hold out the last months, compare WSB with baselines")
    pb.add_argument("csv")
    pb.add_argument("--holdout", type=int, default=6)
    pb.add_argument("--horizons", type=_parse_int_list, default=[3, 6, 12])
    pb.add_argument("--min-train", type=int, default=6)
    args = ap.parse_args(argv)
    try:
        gs = read_wide_csv(args.csv)
    except GrowthDataError as exc:
        print(f"error: {args.csv}: {exc}", file=sys.stderr)
        return 2
    if args.cmd == "fit":
        est = WSBFitter(loss=args.loss).fit(gs)
        df = est.summary(horizons=args.horizons, level=args.level)
        df.to_csv(args.out, index=False)
        print(f"fitted {len(df)} series: {int(df['ok'].sum())} ok, "
              f"{int((~df['ok']).sum())} flagged/failed -> {args.out}")
        return 0
    if args.holdout < 1:
        print("error: --holdout must be >= 1", file=sys.stderr)
        return 2
    hz = [h for h in args.horizons if h <= args.holdout]
    if not hz:
        print(f"error: no horizon <= holdout {args.holdout}", file=sys.stderr)
        return 2
    table = backtest(gs, holdout=args.holdout, horizons=hz, min_train=args.min_train)
    print(f"backtest: holdout={args.holdout}, eligible series={table.attrs['n_eligible']} of {len(gs)}")
    if table.attrs["n_eligible"] == 0:
        print("error: no series long enough for this holdout", file=sys.stderr)
        return 3
    with pd.option_context("display.width", 140, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
