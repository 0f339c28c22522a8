"""Backtests of growth forecasts."""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from analytics.growth.fitters import (
    BassFitter,
    LastValue,
    LinearTrend,
    LogisticFitter,
    WSBFitter,
)
from analytics.growth.series import GrowthSeries, _as_matrix, _last_obs


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
