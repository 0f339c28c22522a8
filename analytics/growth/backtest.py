"""Rolling-origin backtests: every method, every horizon, from several cut-off months.

Every series of a batch ends at the same ``as_of``, so origin ``K`` (``K`` months before the
end) is one calendar cut-off for all of them.  At each origin every method is fitted on
``series.truncate(K)`` — it cannot see anything after the cut-off — and scored ``h`` months
later against the observed count.  Forecasts are made for the series a product would show:
at least one complete month old and at least one derivative at the origin.

Origins split by the date of the *outcome* they are scored on: an (origin, horizon) pair whose
outcome lies in the last ``test_window`` months is **test**, the ``tuning_window`` origins before
it are **tuning**.  Choices (method, settings) are made on tuning rows only; the test rows are
the figures to report.

Errors are on log1p counts: ``ae = |log1p(forecast) - log1p(observed)|``, summarised as the
mean (``mae``) and median (``mdae``), with RMSLE for comparison with earlier tables; a band
covers when ``low <= observed <= high``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from analytics.growth.fitters import (
    BassFitter,
    DampedTrend,
    LastValue,
    LinearTrend,
    LogisticFitter,
    WSBFitter,
    WSBOrLastValue,
)
from analytics.growth.pooled import SIZE_BINS, SIZE_LABELS, PooledRateForecaster
from analytics.growth.series import GrowthSeries, _as_matrix

PRODUCT = "pooled_rate"
BASELINES = ("last_value", "linear", "linear_w3", "damped", "damped_w3", "damped_w6")


def default_methods(*, curves: bool = False) -> dict[str, Callable[[], object]]:
    """Name -> factory of a fresh, unfitted forecaster.  Baseline settings (windows, damping)
    were chosen on tuning rows; the test table shows every one of them.  ``curves`` adds the
    logistic and Bass curve fits (slow, never competitive here)."""
    methods: dict[str, Callable[[], object]] = {
        PRODUCT: PooledRateForecaster,
        "last_value": LastValue,
        "linear": lambda: LinearTrend(window=6),
        "linear_w3": lambda: LinearTrend(window=3),
        "damped": lambda: DampedTrend(window=1, damping=0.6),
        "damped_w3": lambda: DampedTrend(window=3, damping=0.8),
        "damped_w6": lambda: DampedTrend(window=6, damping=0.9),
        "wsb": WSBFitter,
        "wsb_or_last": WSBOrLastValue,
    }
    if curves:
        methods["logistic"] = LogisticFitter
        methods["bass"] = BassFitter
    return methods


@dataclass
class BacktestResult:
    """Every scored forecast, one row per (method, horizon, origin, series).

    predictions : method, horizon, origin (months before the end), split (test | tuning),
                  model, relation, last (count at the origin), observed, forecast, low, high.
    origins     : origin -> calendar date of the cut-off (when the series carry ``as_of``).
    """

    predictions: pd.DataFrame
    origins: dict = field(default_factory=dict)

    def table(self, by: Iterable[str] = ("split", "horizon", "method")) -> pd.DataFrame:
        """Error summary grouped by ``by`` (any prediction column, plus ``size``: the count at
        the origin in bins 1, 2-4, 5-19, 20-99, 100+)."""
        return summarise(self.predictions, by)


def summarise(
    pred: pd.DataFrame, by: Iterable[str] = ("split", "horizon", "method")
) -> pd.DataFrame:
    """Per group: n_series (scored forecasts: one per series and origin), n_models (distinct
    base models among them: rows without a ``model`` column count one each), n_failed (eligible but no forecast), mae, mdae, rmsle, mdape
    (median absolute % error of the count), coverage."""
    by = list(by)
    d = pred.copy()
    if "size" in by:
        d["size"] = pd.cut(d["last"], SIZE_BINS, labels=SIZE_LABELS)
    ok = np.isfinite(d["forecast"].to_numpy(float))
    err = np.log1p(np.maximum(d["forecast"].to_numpy(float), 0)) - np.log1p(
        d["observed"].to_numpy(float)
    )
    d["_ae"] = np.where(ok, np.abs(err), np.nan)
    d["_se"] = np.where(ok, err**2, np.nan)
    obs = d["observed"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        d["_ape"] = np.where(
            ok & (obs > 0), np.abs(d["forecast"].to_numpy(float) - obs) / obs * 100, np.nan
        )
    d["_failed"] = ~ok
    banded = np.isfinite(d["low"].to_numpy(float)) & np.isfinite(d["high"].to_numpy(float))
    d["_cov"] = np.where(banded, (d["observed"] >= d["low"]) & (d["observed"] <= d["high"]), np.nan)
    g = d.groupby(by, observed=True, sort=True)
    out = pd.DataFrame(
        {
            "n_series": g["_ae"].count(),
            "n_models": g["model"].nunique() if "model" in d else g["_ae"].size(),
            "n_failed": g["_failed"].sum().astype(int),
            "mae": g["_ae"].mean(),
            "mdae": g["_ae"].median(),
            "rmsle": np.sqrt(g["_se"].mean()),
            "mdape": g["_ape"].median(),
            "coverage": g["_cov"].mean(),
        }
    )
    return out.reset_index()


def origins_for(horizons: Iterable[int], test_window: int, tuning_window: int) -> dict:
    """(origin, horizon) -> split, for origins whose outcome is observed."""
    pairs = {}
    for h in horizons:
        for k in range(h, h + test_window + tuning_window):
            pairs[(k, h)] = "test" if k < h + test_window else "tuning"
    return pairs


def rolling_backtest(
    series,
    *,
    methods: Mapping[str, Callable[[], object]] | None = None,
    horizons: Iterable[int] = (3, 6, 12),
    test_window: int = 6,
    tuning_window: int = 6,
    level: float = 0.8,
    min_series: int = 30,
    progress: Callable[[str], None] | None = None,
) -> BacktestResult:
    """Fit every method at every origin and score it at every horizon (see the module doc).

    ``methods``: name -> factory (default :func:`default_methods`); a forecaster has
    ``fit(series)`` and ``predict_ahead(h)``, and ``predict_interval(h[, level])`` if it has
    a band.  Origins with fewer than ``min_series`` eligible series are skipped.
    """
    if not isinstance(series, GrowthSeries):
        counts, ids = _as_matrix(series)
        series = GrowthSeries(ids=ids, counts=counts, n_obs=None)
    horizons = sorted({int(h) for h in horizons})
    if not horizons or horizons[0] < 1:
        raise ValueError(f"horizons must be positive integers, got {horizons}")
    if int(test_window) < 1 or int(tuning_window) < 0:
        raise ValueError("test_window must be >= 1 and tuning_window >= 0")
    methods = default_methods() if methods is None else dict(methods)
    pairs = origins_for(horizons, int(test_window), int(tuning_window))
    frames, dates = [], {}
    for k in sorted({k for k, _ in pairs}):
        train = series.truncate(k)
        rows_last = _last_values(train)
        hs = [h for (kk, h) in pairs if kk == k]
        eligible = {
            h: (train.n_obs >= 1) & (rows_last >= 1) & (series.n_obs - train.n_obs >= h) for h in hs
        }
        if max(int(e.sum()) for e in eligible.values()) < min_series:
            continue
        if series.as_of is not None:
            dates[k] = (pd.Timestamp(series.as_of) - pd.DateOffset(months=k)).date()
        for name, make in methods.items():
            est = make().fit(train)
            for h in hs:
                idx = np.flatnonzero(eligible[h])
                if idx.size < min_series:
                    continue
                forecast, low, high = _forecast(est, h, level)
                frames.append(
                    pd.DataFrame(
                        {
                            "method": name,
                            "horizon": h,
                            "origin": k,
                            "split": pairs[(k, h)],
                            "model": series.ids[idx],
                            "relation": series.relation[idx],
                            "last": rows_last[idx],
                            "observed": series.counts[idx, train.n_obs[idx] - 1 + h],
                            "forecast": forecast[idx],
                            "low": low[idx],
                            "high": high[idx],
                        }
                    )
                )
        if progress is not None:
            progress(f"origin {k} done")
    cols = [
        "method",
        "horizon",
        "origin",
        "split",
        "model",
        "relation",
        "last",
        "observed",
        "forecast",
        "low",
        "high",
    ]
    pred = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
    return BacktestResult(predictions=pred, origins=dates)


def _forecast(est, h: int, level: float):
    if isinstance(est, WSBFitter):
        point, low, high = est.predict_interval(h, level)
        return point, low, high
    if hasattr(est, "predict_interval"):
        return est.predict_interval(h)
    point = est.predict_ahead(h)
    nan = np.full(len(point), np.nan)
    return point, nan, nan


def _last_values(series: GrowthSeries) -> np.ndarray:
    out = np.zeros(len(series))
    has = series.n_obs > 0
    out[has] = series.counts[np.flatnonzero(has), series.n_obs[has] - 1]
    return out


def goal_table(
    result: BacktestResult,
    *,
    split: str = "test",
    product: str = PRODUCT,
    baselines: Iterable[str] = (
        "last_value",
        "linear",
        "linear_w3",
        "damped",
        "damped_w3",
        "damped_w6",
    ),
    margin: float = 0.10,
) -> pd.DataFrame:
    """Per horizon: the product's mae/mdae/coverage against the best baseline of that horizon
    (best of every configured baseline, chosen on the same rows: the strictest comparison),
    with the relative gap and whether the goal (``margin`` below the best, coverage 72-88%)
    is met."""
    t = result.table(("split", "horizon", "method"))
    t = t[t["split"] == split]
    rows = []
    for h, g in t.groupby("horizon"):
        g = g.set_index("method")
        if product not in g.index:
            continue
        base = g.loc[[b for b in baselines if b in g.index]]
        p = g.loc[product]
        row = {"horizon": int(h), "n_series": int(p["n_series"]), "n_models": int(p["n_models"])}
        for metric in ("mae", "mdae"):
            best = base[metric].idxmin()
            row[f"{metric}"] = p[metric]
            row[f"best_baseline_{metric}"] = f"{best} {base.at[best, metric]:.4f}"
            ref = base.at[best, metric]
            row[f"{metric}_vs_best"] = (p[metric] / ref - 1.0) if ref > 0 else np.nan
            row[f"{metric}_met"] = bool(ref > 0 and p[metric] <= (1.0 - margin) * ref)
        row["coverage"] = p["coverage"]
        row["coverage_met"] = bool(0.72 <= p["coverage"] <= 0.88)
        rows.append(row)
    return pd.DataFrame(rows)
