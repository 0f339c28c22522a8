"""The forecasts table: built once per graph generation, read by the Forecasts page.

:func:`build_forecasts` (lineage edges -> :class:`ForecastTable`) is the batch entry point of the
scheduled job; :func:`forecast_series` does the same from a ready :class:`GrowthSeries` (the CLI
uses it, so ``python -m analytics.growth fit`` and the page show the same numbers).  It

1. fits the WSB curve to every base model (the seed paper's parameters: immediacy μ,
   longevity σ, fitness λ, asymptote c∞, with the checks a fit must pass);
2. forecasts every base model with the pooled rate model
   (:class:`~analytics.growth.pooled.PooledRateForecaster`: median and calibrated 80% band,
   integers, at 3, 6 and 12 months and for every month of the next 12);
3. measures the method where it can be measured: a rolling-origin backtest of the same
   method at the latest origins with observed outcomes, per horizon and per size group
   (:data:`~analytics.growth.backtest.SIZE_LABELS`), so each forecast can say how far off the
   method was for series like it.

No fitting happens after the build: the page functions below are lookups and formatting.

Columns of :attr:`ForecastTable.models` (one row per base model; the ``growth_*`` and
``forecast_*`` names are the graph property names of :meth:`ForecastTable.graph_properties`):

========================  ======================================================================
model, author             base-model id and its ``org``
parent_created            creation date (the first dated derivative's where unknown)
parent_date_imputed       creation date unknown in the graph (Hub back-fill), imputed
series_end                end of the last complete month observed (``forecast_as_of``)
growth_months             complete months observed
derivatives               derivatives at ``series_end`` (direct children, all relation types)
derivatives_total         every direct derivative in the graph (the Lineage page's model tree)
derivatives_undated       ... of which without a creation date (Hub back-fill): not in the series
derivatives_after_as_of   ... created after the as-of date (later records): not in the series
derivatives_partial_month ... created after ``series_end`` up to the as-of date (the partial month)
size_group                1, 2-4, 5-19, 20-99 or 100+ derivatives
growth_lambda             WSB fitness λ (paper form, m = 100)
growth_mu, growth_sigma   WSB immediacy μ and longevity σ
growth_c_inf              WSB asymptote c∞ = 100 (e^λ − 1)
growth_r2, growth_rmsle   fit quality (R² on counts, RMSLE on log1p counts)
growth_fit_ok             the fit passes every check (parameters are meaningful)
growth_fit_flags          ``;``-joined failed checks (analytics.growth.FLAG_NAMES)
growth_fit_failed         the failed checks in words with their values ("RMSLE 0.62 > 0.5")
forecast_method           method of the forecast ("pooled rate"; "last value" without history)
forecast_{h}m             median forecast of the cumulative count ``h`` months after series_end
forecast_{h}m_low/_high   its calibrated 80% band (integers; never below ``derivatives``)
forecast_growth_{h}m      forecast_{h}m − derivatives (what the ranking sorts by)
forecast_error_{h}m       median absolute % error of the method at horizon h in backtest, for
                          base models of the same size group (NaN: not measurable)
forecast_error_basis_{h}m the size group that error was measured on ("all": the group had too
                          few series in the backtest, measured on all base models)
========================  ======================================================================

:attr:`ForecastTable.series`: model, month (0-based), date (end of the month), observed,
wsb_fit (the WSB curve of an ok fit).  :attr:`ForecastTable.paths`: model, months_ahead
(1..12), date, forecast, low, high.  :attr:`ForecastTable.skill`: horizon, size_group, method,
n_series, mae, mdae, mdape, coverage of the backtest behind ``forecast_error_*``.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from analytics.growth.backtest import PRODUCT, SIZE_BINS, SIZE_LABELS, rolling_backtest
from analytics.growth.fitters import FLAG_NAMES, LastValue, WSBFitter
from analytics.growth.pooled import METHOD_NAME, METHOD_TEXT, PooledRateForecaster
from analytics.growth.series import MONTH_DAYS, GrowthSeries, derivative_series
from graph.dates import utc_times

HORIZONS = (3, 6, 12)
PATH_MONTHS = 12
LEVEL = 0.8
FORMAT_VERSION = 1
GRAPH_PROPERTIES = (
    "growth_lambda", "growth_mu", "growth_sigma", "growth_c_inf", "growth_r2", "growth_rmsle",
    "growth_fit_ok", "growth_fit_flags", "forecast_method", "forecast_as_of",
    *(f"forecast_{h}m{s}" for h in HORIZONS for s in ("", "_low", "_high")),
)

#: One sentence per WSB check, for users (the order of FLAG_NAMES).
FLAG_REASONS = {
    "on_bound": "a parameter sits on the edge of its allowed range",
    "c_inf_cap": "the curve would keep growing past 100× the observed count",
    "not_converged": "the optimiser did not converge",
    "bad_fit": "the curve does not follow the observed months",
    "jump": "one abrupt jump (a batch upload or re-tagging) dominates the series",
    "too_short": "too few monthly points",
    "too_few": "too few derivatives",
    "flat": "no growth inside the observed window",
    "not_fitted": "nothing to fit",
}


@dataclass
class ForecastTable:
    """Forecasts of every base model, with what the page needs to draw them (module doc)."""

    models: pd.DataFrame
    series: pd.DataFrame
    paths: pd.DataFrame
    skill: pd.DataFrame
    meta: dict = field(default_factory=dict)

    _FILES = ("models", "series", "paths", "skill")

    def __len__(self) -> int:
        return len(self.models)

    def __post_init__(self):
        self._row = {m: i for i, m in enumerate(self.models["model"])}

    @property
    def row(self) -> dict:
        """model id -> row of :attr:`models`."""
        return self._row

    def save(self, folder: Path | str) -> Path:
        """Write ``<folder>/{models,series,paths,skill}.parquet`` and ``meta.json``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name in self._FILES:
            getattr(self, name).to_parquet(folder / f"{name}.parquet", index=False)
        (folder / "meta.json").write_text(json.dumps(self.meta, indent=1, default=str))
        return folder

    @classmethod
    def load(cls, folder: Path | str) -> ForecastTable:
        """Read a table written by :meth:`save` (FileNotFoundError when there is none)."""
        folder = Path(folder)
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{folder}: forecasts format {meta.get('format_version')!r}, "
                             f"expected {FORMAT_VERSION}")
        parts = {name: pd.read_parquet(folder / f"{name}.parquet") for name in cls._FILES}
        return cls(meta=meta, **parts)

    def graph_properties(self) -> pd.DataFrame:
        """``id`` plus the properties to set on each base model's node (names: module doc)."""
        m = self.models
        out = pd.DataFrame({"id": m["model"]})
        out["forecast_as_of"] = m["series_end"]
        for c in GRAPH_PROPERTIES:
            if c in m.columns:
                out[c] = m[c]
        return out


# ------------------------------------------------------------------------------ the builder
def build_forecasts(edges: pd.DataFrame, *, as_of, horizons: Sequence[int] = HORIZONS,
                    level: float = LEVEL, skill_origins: int = 3) -> ForecastTable:
    """Forecasts of every base model from lineage edges (``graph.queries.derivative_edges``).

    ``as_of`` is where the source's coverage ends (e.g. 2024-07-11 for the July-2024 listing;
    ``"auto"``: :func:`analytics.growth.coverage_end` of the child dates).  Everything is
    learned from months up to ``as_of``.
    """
    t0 = time.perf_counter()
    if edges is None or len(edges) == 0 or edges["child_created"].notna().sum() == 0:
        series = GrowthSeries(ids=np.array([], dtype=object), counts=np.zeros((0, 0)),
                              n_obs=np.zeros(0, int))
    else:
        series = derivative_series(edges, as_of=as_of)
    return forecast_series(series, horizons=horizons, level=level, skill_origins=skill_origins,
                           _t0=t0)


def forecast_series(series: GrowthSeries, *, horizons: Sequence[int] = HORIZONS,
                    level: float = LEVEL, skill_origins: int = 3, _t0: float | None = None
                    ) -> ForecastTable:
    """:func:`build_forecasts` from a ready series batch (``skill_origins=0``: no backtest)."""
    t0 = time.perf_counter() if _t0 is None else _t0
    horizons = tuple(sorted({int(h) for h in horizons}))
    if not horizons or horizons[0] < 1:
        raise ValueError(f"horizons must be positive integers, got {horizons}")
    n = len(series)
    info = series.info
    last = np.zeros(n)
    has = series.n_obs > 0
    last[has] = series.counts[np.flatnonzero(has), series.n_obs[has] - 1]
    created = (utc_times(info["parent_created"]) if "parent_created" in info
               else pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns, UTC]"))
    end = created + pd.to_timedelta(series.n_obs * MONTH_DAYS, unit="D")
    models = pd.DataFrame({
        "model": series.ids.astype(str),
        "author": [m.split("/", 1)[0] if "/" in m else "" for m in series.ids.astype(str)],
        "parent_created": created.to_numpy(),
        "parent_date_imputed": (info["parent_date_imputed"].to_numpy(bool)
                                if "parent_date_imputed" in info else np.zeros(n, bool)),
        "series_end": end.to_numpy(),
        "growth_months": series.n_obs.astype(int),
        "derivatives": last.astype(int),
    })
    _reconciliation_columns(models, info)
    models["size_group"] = pd.cut(models["derivatives"], SIZE_BINS, labels=SIZE_LABELS).astype(str)
    wsb = WSBFitter().fit(series) if n else None
    pooled = PooledRateForecaster(level=level).fit(series) if n else None
    _wsb_columns(models, wsb)
    paths = _forecast_columns(models, pooled, horizons, series)
    skill = _skill(series, horizons, level, skill_origins) if n and skill_origins else \
        pd.DataFrame(columns=["horizon", "size_group", "method", "n_series", "mae", "mdae",
                              "mdape", "coverage"])
    for h in horizons:
        models[f"forecast_error_{h}m"], models[f"forecast_error_basis_{h}m"] = \
            _typical_error(skill, h, models["size_group"])
    curve = _series_frame(series, models, wsb)
    meta = {
        "format_version": FORMAT_VERSION, "as_of": str(series.as_of) if series.as_of is not None
        else None, "horizons": list(horizons), "path_months": PATH_MONTHS, "level": level,
        "method": METHOD_NAME, "method_text": METHOD_TEXT, "n_series": n,
        "n_forecast": int(models[f"forecast_{horizons[0]}m"].notna().sum()),
        "n_fit_ok": int(models["growth_fit_ok"].sum()), "skill_origins": int(skill_origins),
        "built_at": pd.Timestamp.now(tz="UTC").isoformat(),
    }
    if pooled is not None:
        meta["pooled"] = {"damping": pooled.damping_, "dispersion": list(pooled.dispersion_),
                          "tail": pooled.tail_all_,
                          "tail_by_size": [None if not np.isfinite(x) else float(x)
                                           for x in pooled.tail_],
                          "n_train": int(pooled.n_train_),
                          "n_calibration": int(pooled.n_calibration_),
                          "calibration_coverage": pooled.calibration_coverage_,
                          "band_scale_by_horizon": [float(x) for x in pooled.band_scale_],
                          "band_rows_by_horizon": [int(x) for x in pooled.horizon_rows_],
                          "has_model": pooled.rate_model_ is not None}
    meta["build_seconds"] = round(time.perf_counter() - t0, 2)
    return ForecastTable(models=models, series=curve, paths=paths, skill=skill, meta=meta)


def _wsb_columns(models: pd.DataFrame, wsb: WSBFitter | None) -> None:
    n = len(models)
    if wsb is None:
        for c in ("growth_lambda", "growth_mu", "growth_sigma", "growth_c_inf", "growth_r2",
                  "growth_rmsle"):
            models[c] = np.zeros(0)
        models["growth_fit_ok"], models["growth_fit_flags"] = np.zeros(0, bool), []
        models["growth_fit_failed"] = []
        return
    fitted = wsb.fitted_
    models["growth_lambda"] = np.where(fitted, wsb.lambda_, np.nan)
    models["growth_mu"] = np.where(fitted, wsb.mu_, np.nan)
    models["growth_sigma"] = np.where(fitted, wsb.sigma_, np.nan)
    models["growth_c_inf"] = np.where(fitted, wsb.c_inf_, np.nan)
    models["growth_r2"], models["growth_rmsle"] = wsb.r2_, wsb.rmsle_
    models["growth_fit_ok"] = wsb.ok_.astype(bool)
    flags = wsb.flags_.to_dict("records")
    models["growth_fit_flags"] = [";".join(k for k in FLAG_NAMES if f[k]) for f in flags]
    models["growth_fit_failed"] = wsb.failed_checks() if n else []


#: no count of derivatives comes near this (the whole Hub holds a few million models)
MAX_COUNT = 10**9


def _counts(values) -> pd.arrays.IntegerArray:
    """Rounded counts as nullable integers. A value beyond `MAX_COUNT` or not finite is
    missing: on a small graph (the shipped sample) the per-horizon widening of the band,
    calibrated on a handful of outcomes, can leave the upper bound unbounded (~1e20)."""
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v) & (np.abs(v) <= MAX_COUNT)
    return pd.array(np.where(ok, np.round(v), np.nan), dtype="Int64")


def _forecast_columns(models, pooled, horizons, series) -> pd.DataFrame:
    n = len(models)
    has_model = pooled is not None and pooled.rate_model_ is not None
    eligible = pooled.eligible_ if pooled is not None else np.zeros(0, bool)
    models["forecast_method"] = np.where(eligible, METHOD_NAME if has_model else "last value",
                                         None)
    derivatives = models["derivatives"].to_numpy(float)
    for h in sorted(set(horizons)):
        p, lo, hi = pooled.predict_interval(h) if n else (np.zeros(0),) * 3
        for suffix, v in (("", p), ("_low", lo), ("_high", hi)):
            models[f"forecast_{h}m{suffix}"] = _counts(v)
        models[f"forecast_growth_{h}m"] = _counts(p - derivatives)
    rows = np.flatnonzero(eligible)
    frames = []
    end = utc_times(models["series_end"])
    for j in range(1, PATH_MONTHS + 1 if rows.size else 1):
        p, lo, hi = pooled.predict_interval(j)
        frames.append(pd.DataFrame({
            "model": models["model"].to_numpy()[rows], "months_ahead": j,
            "date": (end + pd.to_timedelta(j * MONTH_DAYS, unit="D")).to_numpy()[rows],
            "forecast": p[rows], "low": lo[rows], "high": hi[rows]}))
    cols = ["model", "months_ahead", "date", "forecast", "low", "high"]
    if not frames or not rows.size:
        return pd.DataFrame(columns=cols)
    return pd.concat(frames, ignore_index=True).sort_values(["model", "months_ahead"],
                                                            ignore_index=True)[cols]


def _series_frame(series: GrowthSeries, models: pd.DataFrame, wsb) -> pd.DataFrame:
    cols = ["model", "month", "date", "observed", "wsb_fit"]
    if not len(series) or series.counts.shape[1] == 0:
        return pd.DataFrame(columns=cols)
    T = series.counts.shape[1]
    mask = np.arange(T)[None, :] < series.n_obs[:, None]
    rows, month = np.nonzero(mask)
    fit = wsb.predict(np.arange(T) + 1.0)
    fit[~wsb.ok_] = np.nan
    created = utc_times(models["parent_created"]).to_numpy()
    date = pd.to_datetime(created[rows]) + pd.to_timedelta((month + 1) * MONTH_DAYS, unit="D")
    return pd.DataFrame({"model": series.ids.astype(str)[rows], "month": month, "date": date,
                         "observed": series.counts[rows, month], "wsb_fit": fit[rows, month]})


def _skill(series, horizons, level, skill_origins) -> pd.DataFrame:
    """Backtest of the product (and last value) at the latest ``skill_origins`` origins."""
    res = rolling_backtest(series, methods={PRODUCT: lambda: PooledRateForecaster(level=level),
                                            "last_value": LastValue},
                           horizons=horizons, test_window=int(skill_origins), tuning_window=0,
                           level=level, min_series=10)
    if res.predictions.empty:
        return pd.DataFrame(columns=["horizon", "size_group", "method", "n_series", "mae", "mdae",
                                     "mdape", "coverage"])
    by_size = res.table(("horizon", "size", "method")).rename(columns={"size": "size_group"})
    overall = res.table(("horizon", "method")).assign(size_group="all")
    out = pd.concat([by_size, overall], ignore_index=True)
    out["size_group"] = out["size_group"].astype(str)
    return out[["horizon", "size_group", "method", "n_series", "mae", "mdae", "mdape",
                "coverage"]]


def _typical_error(skill: pd.DataFrame, h: int, size_group: pd.Series, *, min_series: int = 20):
    """MdAPE of the product at horizon ``h`` for each model's size group (all sizes when the
    group had fewer than ``min_series`` series in the backtest)."""
    s = skill[(skill["method"] == PRODUCT) & (skill["horizon"] == h)]
    s = s[s["n_series"] >= min_series].set_index("size_group")["mdape"]
    overall = s.get("all", np.nan)
    own = size_group.map(s)
    basis = np.where(own.notna(), size_group.astype(str), np.where(np.isfinite(overall), "all",
                                                                    ""))
    return own.fillna(overall).astype(float).to_numpy(), basis


# ------------------------------------------------------------------------ page-time helpers
def lookup(table: ForecastTable, model_ids: Iterable[str]) -> tuple[list[str], list[str]]:
    """Split ``model_ids`` into (those with a series, those without)."""
    found, missing = [], []
    for m in model_ids:
        (found if m in table.row else missing).append(m)
    return found, missing


def authors(table: ForecastTable, *, horizon: int = 12) -> pd.DataFrame:
    """author, base_models, derivatives, forecast_growth (next ``horizon`` months), most
    derivatives first."""
    m = table.models[table.models["author"] != ""]
    g = m.groupby("author").agg(base_models=("model", "size"), derivatives=("derivatives", "sum"),
                                forecast_growth=(f"forecast_growth_{horizon}m", "sum"))
    g = g.sort_values(["derivatives", "base_models"], ascending=False).reset_index()
    return g.astype({"derivatives": int, "forecast_growth": int})


def models_of(table: ForecastTable, author: str, *, limit: int | None = None) -> list[str]:
    """Base models of ``author``, most derivatives first."""
    m = table.models[table.models["author"] == author].sort_values("derivatives", ascending=False)
    ids = m["model"].tolist()
    return ids if limit is None else ids[:limit]


def ranking(table: ForecastTable, *, horizon: int = 12, top: int | None = None) -> pd.DataFrame:
    """Base models ranked by predicted *growth* (new derivatives in ``horizon`` months), ties
    by the upper end of the band, then by size."""
    h = int(horizon)
    m = table.models
    cols = ["model", "derivatives", "derivatives_total", f"forecast_growth_{h}m",
            f"forecast_{h}m", f"forecast_{h}m_low", f"forecast_{h}m_high", "forecast_method",
            "growth_lambda", "growth_fit_ok"]
    out = m[m[f"forecast_{h}m"].notna()][[c for c in cols if c in m]].copy()
    out["_hi"] = out[f"forecast_{h}m_high"] - out["derivatives"]
    out = out.sort_values([f"forecast_growth_{h}m", "_hi", "derivatives"], ascending=False,
                          kind="stable").drop(columns="_hi").reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out.head(top) if top is not None else out


def parameters(table: ForecastTable, model_ids: Sequence[str]) -> pd.DataFrame:
    """The WSB parameters, checks and forecasts of the chosen models (in the given order)."""
    idx = [table.row[m] for m in model_ids if m in table.row]
    cols = ["model", "derivatives", "derivatives_total", "growth_months", "growth_lambda",
            "growth_mu", "growth_sigma", "growth_c_inf", "growth_r2", "growth_rmsle",
            "growth_fit_ok", "growth_fit_failed", "forecast_method"]
    cols += [f"forecast_{h}m{s}" for h in table.meta.get("horizons", HORIZONS)
             for s in ("", "_low", "_high")]
    return table.models.iloc[idx][[c for c in cols if c in table.models]].reset_index(drop=True)


def chart_data(table: ForecastTable, model_ids: Sequence[str]) -> tuple[pd.DataFrame,
                                                                         pd.DataFrame]:
    """(observed months, forecast path) rows of the chosen models."""
    ids = set(model_ids)
    return (table.series[table.series["model"].isin(ids)],
            table.paths[table.paths["model"].isin(ids)])


def fmt_int(value) -> str:
    """1234 -> '1,234'; missing -> '–'."""
    return "–" if value is None or pd.isna(value) else f"{int(round(float(value))):,}"


def _reconciliation_columns(models: pd.DataFrame, info: pd.DataFrame) -> None:
    """How the series' count relates to every direct derivative (module doc); NA where the
    series came without that information (e.g. a wide CSV)."""
    have = {"n_direct", "n_undated_children", "n_after_as_of"} <= set(info.columns)
    for col, src in (("derivatives_total", "n_direct"),
                     ("derivatives_undated", "n_undated_children"),
                     ("derivatives_after_as_of", "n_after_as_of")):
        models[col] = pd.array(info[src].to_numpy(int) if have else [pd.NA] * len(models),
                               dtype="Int64")
    models["derivatives_partial_month"] = (models["derivatives_total"] - models["derivatives"]
                                           - models["derivatives_undated"]
                                           - models["derivatives_after_as_of"])


@dataclass(frozen=True)
class DerivativeCounts:
    """A base model's direct derivatives as the Lineage page counts them (`total`) and as the
    forecast models them (`modelled`: created up to `series_end`), with the difference."""

    total: int
    modelled: int
    undated: int
    partial_month: int
    after_as_of: int
    series_end: pd.Timestamp
    as_of: pd.Timestamp | None

    def sentence(self) -> str:
        """Why the two counts differ, in words ('' when they do not)."""
        if self.total == self.modelled:
            return (f"All {fmt_int(self.total)} direct derivatives in the graph (the Lineage "
                    f"page's count) are in the forecast's series.")
        end = self.series_end.strftime("%Y-%m-%d")
        def n(k: int, one: str, many: str) -> str:
            return f"{fmt_int(k)} {one if k == 1 else many}"

        parts = []
        if self.undated:
            parts.append(n(self.undated, "has", "have") + " no creation date (the Hub "
                         "back-filled it): no month to count it in")
        if self.partial_month:
            parts.append(n(self.partial_month, "was", "were") + f" created after {end}, in the "
                         "month still running" + (f" at the as-of date {self.as_of:%Y-%m-%d}"
                                                  if self.as_of is not None else ""))
        if self.after_as_of:
            parts.append(n(self.after_as_of, "was", "were") + " created after the as-of date "
                         "(records crawled later)")
        return (f"{fmt_int(self.total)} direct derivatives in the graph (the Lineage page's "
                f"count); the forecast continues the {fmt_int(self.modelled)} created up to "
                f"{end} (the end of its last complete month observed): "
                + "; ".join(parts) + ".")


def derivative_counts(table: ForecastTable, model_id: str) -> DerivativeCounts | None:
    """The reconciliation of `model_id`'s counts; None when it is not forecast or the table
    has no reconciliation columns."""
    i = table.row.get(model_id)
    if i is None or "derivatives_total" not in table.models:
        return None
    r = table.models.iloc[i]
    if pd.isna(r["derivatives_total"]):
        return None
    as_of = table.meta.get("as_of")
    return DerivativeCounts(
        total=int(r["derivatives_total"]), modelled=int(r["derivatives"]),
        undated=int(r["derivatives_undated"]), partial_month=int(r["derivatives_partial_month"]),
        after_as_of=int(r["derivatives_after_as_of"]),
        series_end=pd.Timestamp(r["series_end"]),
        as_of=pd.Timestamp(as_of) if as_of else None)


def describe(table: ForecastTable, model_id: str, *, horizon: int = 12,
             name: str | None = None) -> str:
    """A plain sentence about a model's forecast: how many new derivatives, the 80% range,
    the method and how far off that method was in backtest for series of the same size.
    `name` is how the model is written (default: its id; a page passes it escaped)."""
    r = table.models.iloc[table.row[model_id]]
    model_id = model_id if name is None else name
    h = int(horizon)
    if pd.isna(r.get(f"forecast_{h}m")):
        return (f"No forecast for {model_id}: it has no derivative at the end of the observed "
                "months.")
    have = int(r["derivatives"])
    new = int(r[f"forecast_{h}m"]) - have
    lo, hi = int(r[f"forecast_{h}m_low"]) - have, int(r[f"forecast_{h}m_high"]) - have
    level = f"{table.meta.get('level', LEVEL):.0%}"
    head = (f"about {fmt_int(new)} new derivative{'s' if new != 1 else ''}" if new > 0
            else "most likely no new derivative")
    text = (f"{model_id} has {fmt_int(have)} derivative{'s' if have != 1 else ''}; "
            f"{head} in the next {h} months ({level} range {fmt_int(lo)}–{fmt_int(hi)} new).")
    method = r["forecast_method"]
    err = r.get(f"forecast_error_{h}m")
    if method == "last value":
        return text + " Too little history in the graph to train a forecast: last value."
    if err is None or pd.isna(err):
        return text + f" Method: {method}; its backtest error could not be measured here."
    basis = r.get(f"forecast_error_basis_{h}m", r["size_group"])
    similar = ("all base models (too few of this size to measure)" if basis == "all" else
               f"base models with {basis} derivative{'' if basis == '1' else 's'}")
    return (text + f" Method: {method}, which erred by a median {err:.0f}% at {h} months in "
            f"backtest on {similar}.")


def reason_text(flags: str) -> str:
    """The user-facing names of a ``;``-joined flag string ('' -> '')."""
    names = [f for f in str(flags or "").split(";") if f]
    return "; ".join(FLAG_REASONS.get(f, f) for f in names)


def table_csv(df: pd.DataFrame) -> bytes:
    """CSV bytes for a download button."""
    return df.to_csv(index=False).encode("utf-8")


__all__ = ["FLAG_REASONS", "GRAPH_PROPERTIES", "HORIZONS", "DerivativeCounts", "ForecastTable",
           "authors", "build_forecasts", "chart_data", "derivative_counts", "describe", "fmt_int", "forecast_series", "lookup",
           "models_of", "parameters", "ranking", "reason_text", "table_csv"]
