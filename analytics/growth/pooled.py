"""The product forecaster: one pooled model of every base model's derivative rate.

Why this model (measured by ``python -m analytics.growth backtest`` and bench/fit.py): 79% of
base models have fewer than 5 derivatives, too few to fit a curve each, and the Hub's tagging
habits changed fast (lineage tags took off in the second half of 2023, then growth settled in
2024), so a model trained on outcomes ``h`` months old learns a regime that has passed.  This
one borrows strength across series and adapts within a month:

1. **rate** — a gradient-boosted Poisson regression over all series predicts the number of new
   derivatives in the next month, ``mu_1``, from what each series (and its author's other
   models) showed at the origin (:mod:`~analytics.growth.features`).  It is trained on the
   ``rate_origins`` most recent origins whose next month is observed: the current regime.
2. **horizon** — month ``j`` ahead expects ``mu_1 * damping**(j-1)``, so ``h`` months expect
   ``mu_1 * S(h)`` with ``S(h) = (1 - damping**h) / (1 - damping)``; the count of new
   derivatives is negative-binomial with that mean and dispersion
   ``r = exp(a + b * log1p(mu_1))`` (a gamma-Poisson rate shared by the months).  ``damping``,
   ``a``, ``b`` maximise the likelihood of the 1..``calibration_horizon``-month outcomes at the
   latest ``calibration_origins`` origins.
3. **bands** — the equal-tail levels of the negative binomial are set so that the
   ``calibration_horizon``-month outcomes at those origins are covered at ``level`` (a conformal
   step on rolling-origin outcomes, per size group); then, **per horizon** ``h`` up to
   ``max_horizon``, the band's half-widths in log counts are widened by the smallest factor
   that covers ``level`` of the ``h``-month outcomes at the latest ``horizon_origins`` origins
   where they are observed.  Measured: with the 3-month levels alone the 12-month band covered
   0.29 of held-out outcomes, because growth after an origin is often faster than any
   3-month spread suggests (the lineage-tag take-off of 2023).  Moving the point forecast to
   another quantile per horizon the same way (``horizon_calibration="band+point"``) raised the
   tuning origins' error at every horizon (3 m 0.379 -> 0.417) and is off.

The point forecast is the median count (the forecast that minimises absolute log error), the
band its calibrated quantiles; both are integers and never below the last observed count.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import gammaln
from scipy.stats import nbinom
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from analytics.growth.features import FEATURE_NAMES, authors_of, origin_features, value_at
from analytics.growth.series import GrowthSeries, _as_matrix, _n_obs_from_counts

METHOD_NAME = "pooled rate"
METHOD_TEXT = ("a pooled model of the monthly rate of new derivatives, trained on every base "
               "model's recent months, with a negative-binomial spread widened per horizon "
               "until it covers past outcomes of that horizon")


#: Size groups (derivatives at the origin) that get their own band level: 1, 2-4, 5-19, 20-99,
#: 100+ (the backtest's groups).
SIZE_BINS = (0, 1, 4, 19, 99, np.inf)
SIZE_LABELS = ("1", "2-4", "5-19", "20-99", "100+")


def size_group_of(count) -> np.ndarray:
    """Index of each count's size group in :data:`SIZE_BINS`."""
    return np.clip(np.searchsorted(SIZE_BINS, np.asarray(count, float), side="left") - 1, 0,
                   len(SIZE_BINS) - 2)


def nb_logpmf(x, mean, r):
    """log P(X = x) for a negative binomial with the given mean and dispersion ``r``."""
    return (gammaln(x + r) - gammaln(r) - gammaln(x + 1.0) + r * np.log(r / (r + mean))
            + x * np.log(mean / (r + mean) + 1e-300))


def horizon_sum(damping: float, h) -> np.ndarray:
    """Expected months' worth of the current rate over ``h`` months: sum of damping**(j-1)."""
    h = np.asarray(h, float)
    if abs(damping - 1.0) < 1e-9:
        return h
    return (1.0 - damping ** h) / (1.0 - damping)


#: What :meth:`PooledRateForecaster._fit_horizons` calibrates per horizon.
HORIZON_CALIBRATIONS = ("band", "band+point", "none")

#: NB quantile levels a horizon's point forecast may take (chosen per horizon on recent
#: outcomes of that horizon; 0.5 is the median).
POINT_LEVELS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)

#: Smallest half-width of a band in log1p counts that the band scale multiplies (a one-point
#: band stays one point whatever the scale otherwise).
MIN_HALF_WIDTH = 0.1


def _conformal_scale(y, point, low, high, level: float) -> float:
    """Smallest factor on the half-widths (log space, at least :data:`MIN_HALF_WIDTH`) of the
    band around ``point`` that covers ``level`` of ``y``."""
    below = np.maximum(point - low, MIN_HALF_WIDTH)
    above = np.maximum(high - point, MIN_HALF_WIDTH)
    need = np.where(y < point, (point - y) / below, (y - point) / above)
    inside = (y >= low) & (y <= high)
    need = np.where(inside, 0.0, need)
    return float(np.quantile(need, level, method="higher"))


def _scaled_band(point, low, high, scale, last):
    """The band's log1p half-widths times ``scale`` (integers, never below ``last``)."""
    lp = np.log1p(point)
    below = np.maximum(lp - np.log1p(low), MIN_HALF_WIDTH)
    above = np.maximum(np.log1p(high) - lp, MIN_HALF_WIDTH)
    new_low = np.maximum(np.ceil(np.expm1(lp - scale * below) - 1e-9), last)
    new_high = np.floor(np.expm1(lp + scale * above) + 1e-9)
    return np.minimum(new_low, low), np.maximum(new_high, high)


class PooledRateForecaster:
    """Pooled rate model of new derivatives (see the module docstring).

    Parameters (keyword-only): rate_origins (origins the rate model learns from), relative
    (model the rate as a multiple of the series' own recent rate), min_group (calibration
    outcomes a size group needs for its own band level),
    calibration_origins and calibration_horizon (origins and months of outcomes that set
    damping, dispersion and the band), max_damping (1 = the rate never grows), level (band),
    min_train (fewer training rows: no pooled model, the forecast is the last value), the
    HistGradientBoostingRegressor settings max_iter, learning_rate, max_leaf_nodes,
    min_samples_leaf, and random_state; horizon_calibration (:data:`HORIZON_CALIBRATIONS`),
    horizon_origins, max_horizon, min_horizon_rows (the per-horizon band step, module doc).

    Learned attributes: ids_, n_obs_, last_y_, eligible_ (series with a forecast), rate_
    (expected new derivatives next month), rate_model_ (None when too little data),
    damping_, dispersion_ (a, b), tail_ (band quantile levels tail_, 1 - tail_, per size group
    of :data:`SIZE_BINS`; NaN where the group is too small and the overall level serves),
    tail_all_, horizon_grid_ (1..max_horizon), band_scale_ and point_level_ per horizon of the
    grid (interpolated between them), horizon_rows_ (outcomes behind each),
    calibration_coverage_ (coverage of the overall band on the calibration outcomes),
    n_train_, n_calibration_.
    """

    def __init__(self, *, rate_origins: int = 6, calibration_origins: int = 3,
                 calibration_horizon: int = 3, max_damping: float = 1.0, level: float = 0.8,
                 relative: bool = True, min_group: int = 100,
                 min_train: int = 50, max_iter: int = 150, learning_rate: float = 0.05,
                 max_leaf_nodes: int = 15, min_samples_leaf: int = 40, random_state: int = 0,
                 horizon_calibration: str = "band", horizon_origins: int = 3,
                 max_horizon: int = 12, min_horizon_rows: int = 30):
        self.horizon_calibration = horizon_calibration
        self.horizon_origins = horizon_origins
        self.max_horizon = max_horizon
        self.min_horizon_rows = min_horizon_rows
        self.rate_origins = rate_origins
        self.calibration_origins = calibration_origins
        self.calibration_horizon = calibration_horizon
        self.max_damping = max_damping
        self.level = level
        self.relative = relative
        self.min_group = min_group
        self.min_train = min_train
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.random_state = random_state

    # ------------------------------------------------------------------------------ fit
    def _validate(self) -> None:
        for name in ("rate_origins", "calibration_origins", "calibration_horizon", "min_train",
                     "max_iter", "max_leaf_nodes", "min_samples_leaf"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.horizon_calibration not in HORIZON_CALIBRATIONS:
            raise ValueError(f"horizon_calibration must be one of {HORIZON_CALIBRATIONS}, got "
                             f"{self.horizon_calibration!r}")
        for name in ("horizon_origins", "max_horizon", "min_horizon_rows"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not 0.0 < float(self.level) < 1.0:
            raise ValueError(f"level must be in (0, 1), got {self.level!r}")
        if not 0.05 <= float(self.max_damping) <= 2.0:
            raise ValueError(f"max_damping must be in [0.05, 2], got {self.max_damping!r}")

    def fit(self, series, t=None):
        """Learn from ``series`` (a GrowthSeries, wide frame or matrix: the origin is its end)."""
        self._validate()
        counts, ids = _as_matrix(series)
        n_obs = series.n_obs if isinstance(series, GrowthSeries) else None
        if n_obs is None:
            n_obs = _n_obs_from_counts(counts)
        self.ids_ = np.asarray(ids)
        self._counts, self._n_obs = counts, np.asarray(n_obs, int)
        self._authors = authors_of(self.ids_)
        now = origin_features(counts, self._n_obs, self._authors, 0)
        self.n_obs_, self.last_y_, self.eligible_ = self._n_obs, now.last, now.eligible
        X, y = self._rows(range(1, int(self.rate_origins) + 1), horizon=1)
        self.n_train_ = len(y)
        self.rate_model_ = None
        self.damping_, self.dispersion_ = 1.0, (0.0, 0.0)
        self.tail_all_ = (1 - self.level) / 2
        self.tail_ = np.full(len(SIZE_BINS) - 1, np.nan)
        self.calibration_coverage_, self.n_calibration_ = np.nan, 0
        self.rate_ = np.where(self.eligible_, 0.0, np.nan)
        self.horizon_grid_ = np.arange(1, int(self.max_horizon) + 1, dtype=float)
        self.point_level_ = np.full(len(self.horizon_grid_), 0.5)
        self.band_scale_ = np.ones(len(self.horizon_grid_))
        self.horizon_rows_ = np.zeros(len(self.horizon_grid_), int)
        if self.n_train_ < int(self.min_train) or not (y > 0).any():
            return self  # too little to learn from (or nothing grew): the last value stands
        base = self._base_rate(X)
        # one OpenMP thread: beside other work (the dashboard, a second job) the threads
        # spin-wait on each other; measured on 2 cores under load: 8-15 s with one, 57-111 s
        # with two (a quiet machine gains less than 2x from the second)
        with threadpool_limits(1, user_api="openmp"):
            self.rate_model_ = HistGradientBoostingRegressor(
                loss="poisson", max_iter=int(self.max_iter),
                learning_rate=float(self.learning_rate),
                max_leaf_nodes=int(self.max_leaf_nodes),
                min_samples_leaf=int(self.min_samples_leaf), early_stopping=False,
                random_state=self.random_state).fit(X, y / base, sample_weight=base)
        self.rate_ = np.where(self.eligible_, self._rate(now.X), np.nan)
        self._fit_spread()
        self._fit_horizons()
        return self

    def _rows(self, origins, horizon: int):
        """Features at each origin and the number of new derivatives ``horizon`` months later."""
        Xs, ys = [], []
        for k in origins:
            if k < horizon:
                continue
            f = origin_features(self._counts, self._n_obs, self._authors, k)
            keep = f.eligible & (f.pos + horizon <= self._n_obs - 1)
            if keep.any():
                Xs.append(f.X[keep])
                ys.append(value_at(self._counts, f.pos + horizon)[keep] - f.last[keep])
        if not Xs:
            return np.zeros((0, len(FEATURE_NAMES))), np.zeros(0)
        return np.vstack(Xs), np.concatenate(ys)

    def _base_rate(self, X) -> np.ndarray:
        """The exposure the model's rate multiplies: the series' own recent monthly rate (with
        one pseudo-derivative, so quiet series keep a small one) when ``relative``, else 1.
        Poisson regression of y / base weighted by base is Poisson with offset log(base): a
        tree's leaf then scales each series' own rate instead of lumping big series together."""
        if not self.relative:
            return np.ones(len(X))
        new_3 = np.expm1(X[:, FEATURE_NAMES.index("log_new_3")])
        return (new_3 + 1.0) / 3.0

    def _rate(self, X) -> np.ndarray:
        with threadpool_limits(1, user_api="openmp"):  # predicting spin-waits too (see fit)
            rate = self.rate_model_.predict(X)
        return np.maximum(rate * self._base_rate(X), 1e-6)

    def _fit_spread(self) -> None:
        hc = int(self.calibration_horizon)
        origins = range(hc, hc + int(self.calibration_origins))
        data = []  # (mu_1, h, new derivatives within h months) at the calibration origins
        for k in origins:
            f = origin_features(self._counts, self._n_obs, self._authors, k)
            keep = f.eligible & (f.pos + hc <= self._n_obs - 1)
            if not keep.any():
                continue
            mu1 = self._rate(f.X[keep])
            for h in range(1, hc + 1):
                data.append((mu1, h, value_at(self._counts, f.pos + h)[keep] - f.last[keep],
                             f.last[keep]))
        n_cal = sum(len(x) for *_, x in data) // max(hc, 1)
        self.n_calibration_ = n_cal
        if n_cal < 30:
            return

        def nll(theta):
            damping, a, b = theta
            total = 0.0
            for mu1, h, x, _ in data:
                r = np.exp(a + b * np.log1p(mu1))
                total -= nb_logpmf(x, mu1 * horizon_sum(damping, h), r).sum()
            return total

        res = minimize(nll, x0=[min(0.9, float(self.max_damping)), 0.0, 0.0], method="L-BFGS-B",
                       bounds=[(0.05, float(self.max_damping)), (-8.0, 6.0), (-3.0, 3.0)])
        self.damping_, a, b = (float(v) for v in res.x)
        self.dispersion_ = (a, b)
        mu1 = np.concatenate([m for m, h, _, _ in data if h == hc])
        x = np.concatenate([x for _, h, x, _ in data if h == hc])
        group = size_group_of(np.concatenate([c for _, h, _, c in data if h == hc]))
        self.tail_all_, self.calibration_coverage_ = self._calibrate_tail(mu1, hc, x)
        # the spread differs by size (measured: one level over-covers small series and
        # under-covers large ones), so each size group gets its own level where it can
        for g in range(len(self.tail_)):
            in_g = group == g
            if in_g.sum() >= self.min_group:
                self.tail_[g] = self._calibrate_tail(mu1[in_g], hc, x[in_g])[0]

    def _calibrate_tail(self, mu1, h, x) -> tuple[float, float]:
        """Largest equal-tail level whose band still covers ``level`` of the outcomes."""
        lo_t, hi_t = 1e-4, 0.5
        for _ in range(30):  # coverage falls as the tail level grows: bisect
            mid = 0.5 * (lo_t + hi_t)
            low, high = self._quantiles(mu1, h, (mid, 1.0 - mid))
            if np.mean((x >= low) & (x <= high)) >= self.level:
                lo_t = mid
            else:
                hi_t = mid
        low, high = self._quantiles(mu1, h, (lo_t, 1.0 - lo_t))
        return lo_t, float(np.mean((x >= low) & (x <= high)))

    def _quantiles(self, mu1, h, levels):
        a, b = self.dispersion_
        r = np.exp(a + b * np.log1p(mu1))
        mean = np.maximum(mu1 * horizon_sum(self.damping_, h), 1e-9)
        p = r / (r + mean)
        return [nbinom.ppf(q, r, p) for q in levels]

    def _fit_horizons(self) -> None:
        """Per horizon ``h`` = 1..max_horizon, from the ``h``-month outcomes at the latest
        ``horizon_origins`` origins where they are observed (conformal steps on rolling-origin
        outcomes, so a horizon is judged by outcomes of its own length):

        * point: the NB quantile level (from :data:`POINT_LEVELS`) with the least absolute log
          error — 0.5 unless the recent outcomes of that horizon say the median runs low/high;
        * band: a factor (>= 1: the 3-month band is never narrowed) on the band's half-widths
          in log1p counts, the smallest that covers ``level`` of the outcomes.

        A horizon with fewer than ``min_horizon_rows`` outcomes takes the values of the longest
        shorter horizon that had them."""
        mode = str(self.horizon_calibration)
        if mode == "none":
            return
        origins: dict = {}
        for j, h in enumerate(self.horizon_grid_.astype(int)):
            mu1, last, x = [], [], []
            for k in range(h, h + int(self.horizon_origins)):
                if k not in origins:  # consecutive horizons share origins: compute each once
                    f = origin_features(self._counts, self._n_obs, self._authors, k)
                    rate = np.full(len(f.last), np.nan)
                    if f.eligible.any():
                        rate[f.eligible] = self._rate(f.X[f.eligible])
                    origins[k] = (f, rate)
                f, rate = origins[k]
                keep = f.eligible & (f.pos + h <= self._n_obs - 1)
                if keep.any():
                    mu1.append(rate[keep])
                    last.append(f.last[keep])
                    x.append(value_at(self._counts, f.pos + h)[keep])
            n = sum(len(v) for v in x)
            self.horizon_rows_[j] = n
            if n < int(self.min_horizon_rows):
                if j:
                    self.point_level_[j] = self.point_level_[j - 1]
                    self.band_scale_[j] = self.band_scale_[j - 1]
                continue
            mu1, last, x = np.concatenate(mu1), np.concatenate(last), np.concatenate(x)
            y = np.log1p(x)
            if "point" in mode:
                errs = [np.mean(np.abs(np.log1p(last + self._quantiles(mu1, h, (q,))[0]) - y))
                        for q in POINT_LEVELS]
                self.point_level_[j] = POINT_LEVELS[int(np.argmin(errs))]
            if "band" in mode:
                point, low, high = self._band(mu1, last, h, self.point_level_[j])
                self.band_scale_[j] = max(1.0, _conformal_scale(y, np.log1p(point),
                                                                np.log1p(low), np.log1p(high),
                                                                self.level))

    def _band(self, mu1, last, h, point_level, tail=None):
        """(point, low, high) counts of the NB band before the horizon's band scale."""
        if tail is None:
            tail = self.tail_[size_group_of(last)]
            tail = np.where(np.isfinite(tail), tail, self.tail_all_)
        point, low, high = self._quantiles(mu1, h, (point_level, tail, 1.0 - tail))
        return last + point, last + low, last + high

    def _horizon_values(self, h: float) -> tuple[float, float]:
        grid = self.horizon_grid_
        return (float(np.interp(h, grid, self.point_level_)),
                float(np.interp(h, grid, self.band_scale_)))

    # -------------------------------------------------------------------------- predict
    def predict_interval(self, h, level: float | None = None):
        """(median, low, high) cumulative counts ``h`` months (may be fractional) after each
        series' end; NaN where there is no forecast.  ``level`` defaults to the calibrated
        band; another level uses the model's own quantiles."""
        h = float(h)
        if h <= 0:
            raise ValueError(f"h must be > 0, got {h}")
        last = self.last_y_
        out = np.full((3, len(last)), np.nan)
        rows = np.flatnonzero(self.eligible_)
        if rows.size:
            if self.rate_model_ is None:
                out[:, rows] = last[rows]
            else:
                point_level, scale = self._horizon_values(h)
                tail = None if level is None else np.full(rows.size, (1.0 - float(level)) / 2.0)
                point, low, high = self._band(self.rate_[rows], last[rows], h, point_level, tail)
                if level is None and scale > 1.0:
                    low, high = _scaled_band(point, low, high, scale, last[rows])
                out[:, rows] = np.vstack([point, low, high])
        return out[0], out[1], out[2]

    def predict_ahead(self, h) -> np.ndarray:
        """Median cumulative count ``h`` months after each series' end."""
        return self.predict_interval(h)[0]
