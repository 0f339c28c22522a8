"""Glue for the Forecasts page: series + WSB fits + forecasts with fallback + ranking, as frames.

Everything here is pure (numpy/pandas over :mod:`analytics.growth`): no Streamlit, no Cypher.
The page calls :func:`build_series` once per graph generation, :func:`growth_table` once per
(generation, points used, horizons), and the small helpers below per widget.

What the page shows as a forecast
---------------------------------
Only fits that pass every check (``ok``) are extrapolated.  For any other base model the
forecast is the last observed count (the ``wsb_or_last`` rule, which the backtest found no
worse than any other method), and :func:`reasons` says why the WSB fit was not used.

Bands
-----
The fitter's delta-method band is far too narrow on real series (backtest coverage of its
nominal 80% band on ok fits: ~0.3-0.45).  :func:`calibrate` measures, on a holdout backtest of
the same graph, the quantiles of the log error of ok WSB forecasts per horizon; the page's band
is the forecast shifted by those quantiles (widened by sqrt(h / holdout) beyond the holdout).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from analytics.growth import FLAG_NAMES, MONTH_DAYS, GrowthSeries, WSBFitter, derivative_series, rank_models

DEFAULT_HORIZONS = (6, 12)

#: One sentence per flag, for users (the order of FLAG_NAMES).
FLAG_REASONS = {
    "on_bound": "a parameter sits on the edge of its allowed range, so the curve's timing is not identified",
    "c_inf_cap": "the curve would keep growing past 100x the observed count: the series is still "
                 "accelerating and its final size cannot be estimated yet",
    "not_converged": "the optimiser did not converge",
    "bad_fit": "the curve does not follow the observed months (R² < 0.9 or RMSLE > 0.5)",
    "jump": "one abrupt jump (a batch upload or re-tagging) dominates the series",
    "too_short": "fewer than 6 monthly points",
    "too_few": "fewer than 5 derivatives",
    "flat": "no growth inside the observed window, so the timing parameters are not identified",
    "not_fitted": "fewer than 3 monthly points or no derivative: nothing to fit",
}


def build_series(edges: pd.DataFrame, *, as_of="auto") -> GrowthSeries:
    """Monthly cumulative derivative counts per base model from ``derivative_edges`` output.

    ``as_of="auto"`` ends the window where the dense coverage of the graph ends
    (:func:`analytics.growth.coverage_end`), not at the last stray date of a later crawl."""
    if edges is None or len(edges) == 0 or edges["child_created"].notna().sum() == 0:
        return GrowthSeries(ids=np.array([], dtype=object), counts=np.zeros((0, 0)), n_obs=np.zeros(0, int))
    return derivative_series(edges, as_of=as_of)


@dataclass
class GrowthTable:
    """Result of :func:`growth_table` (picklable, so it can live in ``st.cache_data``).

    series      : the full observed series.
    fitter      : the fitted WSBFitter (rows in ``series`` order).
    summary     : one row per base model (see :func:`growth_table`).
    horizons    : forecast horizons in ``summary``.
    points_used : months the fit saw (None = all observed months).
    calibration : :func:`calibrate` output used for the bands (None = the fitter's own band).
    """

    series: GrowthSeries
    fitter: WSBFitter
    summary: pd.DataFrame
    horizons: tuple
    points_used: int | None = None
    level: float = 0.8
    calibration: pd.DataFrame | None = None
    row: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.summary)


def growth_table(series: GrowthSeries, *, horizons: Sequence[int] = DEFAULT_HORIZONS,
                 points_used: int | None = None, level: float = 0.8,
                 calibration: pd.DataFrame | None = None, **fitter_params) -> GrowthTable:
    """Fit WSB to every series (optionally on its first ``points_used`` months only) and
    tabulate parameters, checks and forecasts.

    ``summary`` columns: model, author, parent_created, parent_date_imputed, n_obs (observed
    months), months_used, last (count at the end of the fitted window), observed_last (count
    at the end of all observed months), lambda, mu, sigma (paper form, m = 100), c_inf, r2,
    rmsle, flags, ok, reason, forecast ("wsb" or "last value"), and per horizon h:
    pred_{h}m (the shown forecast), pred_{h}m_low / _high (band, NaN for the fallback),
    wsb_{h}m (the raw WSB value, whatever its flags), observed_{h}m (the observed count h
    months after the fitted window when it exists: a built-in backtest when points_used is set).
    """
    horizons = tuple(sorted({int(h) for h in horizons}))
    if not horizons or min(horizons) < 1:
        raise ValueError(f"horizons must be positive integers, got {horizons}")
    if points_used is not None and int(points_used) < 1:
        raise ValueError(f"points_used must be >= 1, got {points_used}")
    fit_series = series.head(int(points_used)) if points_used is not None else series
    est = WSBFitter(**fitter_params).fit(fit_series)
    base = est.summary(horizons=(), level=level)
    ok = base["ok"].to_numpy()
    last = base["last"].to_numpy(dtype=float)
    info = series.info
    df = pd.DataFrame({
        "model": series.ids,
        "author": [_author(m) for m in series.ids],
        "parent_created": info["parent_created"].to_numpy() if "parent_created" in info else pd.NaT,
        "parent_date_imputed": (info["parent_date_imputed"].to_numpy(dtype=bool)
                                if "parent_date_imputed" in info else False),
        "n_obs": series.n_obs,
        "months_used": fit_series.n_obs,
        "last": last,
        "observed_last": _last_values(series.counts, series.n_obs),
    })
    for c in ("lambda", "mu", "sigma", "c_inf", "r2", "rmsle", "flags", "ok"):
        df[c] = base[c].to_numpy()
    df["reason"] = [reason_text(f) for f in df["flags"]]
    df["forecast"] = np.where(ok, "wsb", "last value")
    for h in horizons:
        wsb, lo, hi = _band(est, h, level, calibration)
        df[f"pred_{h}m"] = np.where(ok, wsb, last)
        df[f"pred_{h}m_low"] = np.where(ok, lo, np.nan)
        df[f"pred_{h}m_high"] = np.where(ok, hi, np.nan)
        df[f"wsb_{h}m"] = wsb
        k = fit_series.n_obs - 1 + h
        inwin = (fit_series.n_obs > 0) & (k < series.n_obs)
        obs = np.full(len(df), np.nan)
        if inwin.any():
            obs[inwin] = series.counts[np.flatnonzero(inwin), k[inwin]]
        df[f"observed_{h}m"] = obs
    return GrowthTable(series=series, fitter=est, summary=df, horizons=horizons,
                       points_used=None if points_used is None else int(points_used), level=level,
                       calibration=calibration, row={m: i for i, m in enumerate(series.ids)})


def reason_text(flags: str) -> str:
    """User-facing explanation of a ``;``-joined flag string ('' -> '')."""
    names = [f for f in str(flags or "").split(";") if f]
    if "not_fitted" in names:  # says it all
        names = [f for f in names if f not in ("too_short", "too_few")]
    return "; ".join(FLAG_REASONS.get(f, f) for f in names)


def _author(model_id: str) -> str:
    return model_id.split("/", 1)[0] if "/" in model_id else ""


def _last_values(counts: np.ndarray, n_obs: np.ndarray) -> np.ndarray:
    out = np.full(len(n_obs), np.nan)
    has = n_obs > 0
    if has.any():
        out[has] = counts[np.flatnonzero(has), n_obs[has] - 1]
    return out


# --------------------------------------------------------------------------- bands
def calibrate(series: GrowthSeries, *, holdout: int = 6, level: float = 0.8, min_train: int = 6,
              min_series: int = 30, **fitter_params) -> pd.DataFrame:
    """Empirical band for ok WSB forecasts: fit on all but the last ``holdout`` months, and
    per horizon h = 1..holdout take the (1-level)/2 and (1+level)/2 quantiles of
    log1p(observed) - log1p(forecast) over the ok fits.

    Returns horizon, q_low, q_high, n (series used), coverage_model (how often the fitter's
    own delta-method band held the observed value, for comparison).  With fewer than
    ``min_series`` ok fits the quantiles are NaN (and the fitter's own band is used)."""
    train = series.truncate(holdout)
    elig = (train.n_obs >= min_train) & (series.n_obs - train.n_obs >= holdout)
    idx = np.flatnonzero(elig)
    rows = []
    a = (1.0 - level) / 2.0
    if idx.size:
        est = WSBFitter(**fitter_params).fit(train.subset(idx))
        okr = np.flatnonzero(est.ok_)
        for h in range(1, holdout + 1):
            truth = series.counts[idx[okr], train.n_obs[idx[okr]] - 1 + h]
            pred, lo, hi = est.predict_interval(h, level, rows=okr)
            m = np.isfinite(truth) & np.isfinite(pred)
            e = np.log1p(truth[m]) - np.log1p(np.maximum(pred[m], 0.0))
            cov = float(np.mean((truth[m] >= lo[m]) & (truth[m] <= hi[m]))) if m.any() else np.nan
            enough = e.size >= max(int(min_series), 1)
            rows.append(dict(horizon=h, q_low=float(np.quantile(e, a)) if enough else np.nan,
                             q_high=float(np.quantile(e, 1 - a)) if enough else np.nan,
                             n=int(m.sum()), coverage_model=cov))
    out = pd.DataFrame(rows, columns=["horizon", "q_low", "q_high", "n", "coverage_model"])
    out.attrs.update(level=level, holdout=holdout)
    return out


def band_note(table: GrowthTable) -> str:
    """One sentence saying which band the forecasts carry and how well it was measured."""
    cal = table.calibration
    pct = f"{table.level:.0%}"
    if cal is None or cal.empty or cal["q_low"].isna().all():
        n = 0 if cal is None or cal.empty else int(cal["n"].max())
        return (f"Band: the fitter's own {pct} interval (delta method). Too few ok fits to measure it "
                f"on this graph ({n} series); on the full Hub graph it held the truth only 33-48% of the time (bench/fit.py).")
    return (f"Band: {pct} interval measured on this graph: quantiles of the error of ok WSB forecasts when the "
            f"last {int(cal['horizon'].max())} months are held out ({int(cal['n'].max())} series), widened as "
            f"sqrt(h) beyond. The fitter's own band held the truth only {cal['coverage_model'].min():.0%}-"
            f"{cal['coverage_model'].max():.0%} of the time.")


def _calibrated_offsets(calibration: pd.DataFrame, h: int) -> tuple[float, float]:
    c = calibration.dropna(subset=["q_low", "q_high"])
    if c.empty:
        return np.nan, np.nan
    c = c.set_index("horizon").sort_index()
    if h in c.index:
        return float(c.at[h, "q_low"]), float(c.at[h, "q_high"])
    hmax = int(c.index.max())
    if h > hmax:  # beyond the holdout: widen like a random walk
        s = np.sqrt(h / hmax)
        return float(c.at[hmax, "q_low"]) * s, float(c.at[hmax, "q_high"]) * s
    lo = np.interp(h, c.index, c["q_low"])
    hi = np.interp(h, c.index, c["q_high"])
    return float(lo), float(hi)


def _band(est: WSBFitter, h: int, level: float, calibration: pd.DataFrame | None, rows=None):
    pred, lo, hi = est.predict_interval(h, level, rows=rows)
    if calibration is not None and len(calibration):
        ql, qh = _calibrated_offsets(calibration, h)
        if np.isfinite(ql) and np.isfinite(qh):
            lp = np.log1p(np.maximum(pred, 0.0))
            lo, hi = np.expm1(lp + min(ql, 0.0)), np.expm1(lp + max(qh, 0.0))
    # cumulative counts never fall: the band starts at the last observed value
    last = est.last_y_ if rows is None else est.last_y_[rows]
    lo = np.fmax(lo, last)
    hi = np.fmax(hi, lo)
    return pred, lo, hi


# --------------------------------------------------------------------------- per-widget helpers
def lookup(table: GrowthTable, model_ids: Iterable[str]) -> tuple[list[str], list[str]]:
    """Split ``model_ids`` into (those with a series, those without)."""
    found, missing = [], []
    for m in model_ids:
        (found if m in table.row else missing).append(m)
    return found, missing


def authors(table: GrowthTable, *, min_models: int = 1) -> pd.DataFrame:
    """Authors/orgs owning base models with a series: author, base_models, derivatives,
    ok_fits; most derivatives first."""
    s = table.summary[table.summary["author"] != ""]
    g = s.groupby("author").agg(base_models=("model", "size"), derivatives=("observed_last", "sum"),
                                ok_fits=("ok", "sum"))
    g = g[g["base_models"] >= min_models].sort_values(["derivatives", "base_models"], ascending=False)
    return g.reset_index().astype({"derivatives": int, "ok_fits": int})


def models_of(table: GrowthTable, author: str, *, limit: int | None = None) -> list[str]:
    """Base models of ``author`` with a series, most derivatives first."""
    s = table.summary[table.summary["author"] == author].sort_values("observed_last", ascending=False)
    ids = s["model"].tolist()
    return ids if limit is None else ids[:limit]


def parameters(table: GrowthTable, model_ids: Sequence[str]) -> pd.DataFrame:
    """The parameter table of the chosen models (in the given order)."""
    cols = ["model", "lambda", "mu", "sigma", "c_inf", "r2", "rmsle", "flags", "ok", "reason", "forecast",
            "months_used", "n_obs", "last", "parent_created", "parent_date_imputed"]
    cols += [c for h in table.horizons for c in (f"pred_{h}m", f"pred_{h}m_low", f"pred_{h}m_high")]
    if table.points_used is not None:
        cols += [f"observed_{h}m" for h in table.horizons]
    idx = [table.row[m] for m in model_ids if m in table.row]
    return table.summary.iloc[idx][cols].reset_index(drop=True)


def curves(table: GrowthTable, model_ids: Sequence[str], *, months_ahead: int = 12) -> pd.DataFrame:
    """Long frame for the chart: model, t (months since release; point k is month k's end),
    date, kind, value, low, high.  kind is one of

    * ``observed``  — observed cumulative counts the fit used;
    * ``held out``  — observed months after ``points_used`` (not seen by the fit);
    * ``fit``       — the WSB curve over the fitted window (ok fits only);
    * ``forecast``  — WSB beyond the window with its band (ok), or the last value held flat
      (fallback, no band);
    * ``rejected fit`` — the WSB curve of a flagged fit, over window and horizon, for inspection.
    """
    months_ahead = int(months_ahead)
    frames = []
    est, s = table.fitter, table.series
    for m in model_ids:
        i = table.row.get(m)
        if i is None:
            continue
        n_all, n_fit = int(s.n_obs[i]), int(table.summary.at[i, "months_used"])
        t_obs = np.arange(n_all) + 1.0
        y = s.counts[i, :n_all]
        created = table.summary.at[i, "parent_created"]
        kinds = np.where(np.arange(n_all) < n_fit, "observed", "held out")
        parts = [pd.DataFrame({"t": t_obs, "kind": kinds, "value": y})]
        ok = bool(table.summary.at[i, "ok"])
        last = float(table.summary.at[i, "last"])
        t_fit = np.linspace(1.0, max(n_fit, 1), max(4 * n_fit, 2))
        hs = np.arange(1, months_ahead + 1)
        t_fc = n_fit + hs.astype(float)
        if est.fitted_[i]:
            curve = est.predict(t_fit, rows=[i])[0]
            fc = np.array([_band(est, h, table.level, table.calibration, rows=[i]) for h in hs])[:, :, 0]
            if ok:
                parts.append(pd.DataFrame({"t": t_fit, "kind": "fit", "value": curve}))
                parts.append(pd.DataFrame({"t": np.r_[n_fit, t_fc], "kind": "forecast",
                                           "value": np.r_[last, fc[:, 0]], "low": np.r_[last, fc[:, 1]],
                                           "high": np.r_[last, fc[:, 2]]}))
            else:
                parts.append(pd.DataFrame({"t": np.r_[t_fit, t_fc], "kind": "rejected fit",
                                           "value": np.r_[curve, fc[:, 0]]}))
        if not ok and n_fit > 0:
            parts.append(pd.DataFrame({"t": np.r_[n_fit, t_fc], "kind": "forecast",
                                       "value": np.full(months_ahead + 1, last)}))
        df = pd.concat(parts, ignore_index=True)
        df.insert(0, "model", m)
        if pd.notna(created):
            df["date"] = pd.Timestamp(created) + pd.to_timedelta(df["t"] * MONTH_DAYS, unit="D")
        else:
            df["date"] = pd.NaT
        frames.append(df)
    cols = ["model", "t", "date", "kind", "value", "low", "high"]
    if not frames:
        return pd.DataFrame(columns=cols)
    out = pd.concat(frames, ignore_index=True)
    for c in ("low", "high"):
        if c not in out:
            out[c] = np.nan
    return out[cols]


def ranking(table: GrowthTable, *, horizons: Sequence[int] | None = None, ok_only: bool = True,
            top: int | None = None) -> pd.DataFrame:
    """Base models ranked by predicted derivatives at each horizon (the shown forecast) and by
    fitness λ.  ``ok_only=False`` also ranks flagged models at their last value (fallback);
    their λ is not ranked.  Adds author and forecast columns."""
    horizons = tuple(table.horizons if horizons is None else horizons)
    s = table.summary.copy()
    s.loc[~s["ok"], ["lambda", "c_inf"]] = np.nan
    out = rank_models(s, horizons=horizons, ok_only=ok_only, top=top)
    extra = s.set_index("model")[["forecast", "flags"]]
    out = out.join(extra, on="model")
    if not ok_only:
        out.loc[~out["ok"], "rank_fitness"] = pd.NA
    return out


def table_csv(df: pd.DataFrame) -> bytes:
    """CSV bytes for a download button."""
    return df.to_csv(index=False).encode("utf-8")


__all__ = ["DEFAULT_HORIZONS", "FLAG_NAMES", "FLAG_REASONS", "GrowthTable", "authors", "build_series",
           "band_note", "calibrate", "curves", "growth_table", "lookup", "models_of", "parameters", "ranking",
           "reason_text", "table_csv"]
