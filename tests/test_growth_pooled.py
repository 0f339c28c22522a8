"""analytics.growth.pooled: the product forecaster."""
from __future__ import annotations

import numpy as np
import pytest

from analytics.growth import GrowthSeries, LastValue, PooledRateForecaster


def steady_series(n=600, T=24, seed=0):
    """Series with a persistent, heterogeneous monthly rate (gamma-Poisson), each starting at a
    random month and ending together (as derivative_series batches do)."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(0.6, 2.0, n)
    start = rng.integers(0, T - 8, n)
    counts = np.full((n, T), np.nan)
    for i in range(n):
        m = T - start[i]
        counts[i, :m] = 1 + np.cumsum(rng.poisson(rate[i], m))
    ids = np.array([f"org{i % 40}/m{i}" for i in range(n)], dtype=object)
    return GrowthSeries(ids=ids, counts=counts, n_obs=T - start)


def test_beats_last_value_and_covers_on_held_out_months():
    gs = steady_series()
    h = 3
    train = gs.truncate(h)  # the forecaster sees nothing after the origin
    est = PooledRateForecaster().fit(train)
    p, lo, hi = est.predict_interval(h)
    rows = np.flatnonzero(est.eligible_)
    truth = gs.counts[rows, train.n_obs[rows] - 1 + h]
    err = np.abs(np.log1p(p[rows]) - np.log1p(truth)).mean()
    lv = LastValue().fit(train).predict_ahead(h)[rows]
    err_lv = np.abs(np.log1p(lv) - np.log1p(truth)).mean()
    assert err < 0.6 * err_lv
    cover = np.mean((truth >= lo[rows]) & (truth <= hi[rows]))
    assert 0.65 <= cover <= 0.95
    assert est.damping_ <= 1.0 and est.rate_model_ is not None


def test_forecasts_are_integers_ordered_and_never_below_the_last_count():
    gs = steady_series(n=300, seed=1)
    est = PooledRateForecaster().fit(gs)
    prev = est.last_y_.copy()
    for h in (1, 3, 6, 8.5, 12):
        p, lo, hi = est.predict_interval(h)
        ok = est.eligible_
        assert np.all(p[ok] == np.round(p[ok])) and np.all(lo[ok] == np.round(lo[ok]))
        assert np.all(est.last_y_[ok] <= lo[ok]) and np.all(lo[ok] <= p[ok])
        assert np.all(p[ok] <= hi[ok]) and np.all(p[ok] >= prev[ok])
        prev = p
    with pytest.raises(ValueError):
        est.predict_interval(0)


def test_too_little_history_falls_back_to_the_last_value():
    counts = np.array([[1.0, 2, 2], [0, 1, 3]])
    est = PooledRateForecaster().fit(counts)
    assert est.rate_model_ is None
    p, lo, hi = est.predict_interval(6)
    np.testing.assert_array_equal(p, [2, 3])
    np.testing.assert_array_equal(lo, [2, 3])
    # a series without a derivative gets no forecast
    est = PooledRateForecaster().fit(np.array([[0.0, 0, 0], [1, 1, 2]]))
    assert np.isnan(est.predict_ahead(3)[0]) and est.predict_ahead(3)[1] == 2


def test_enough_series_but_none_grew_falls_back_to_the_last_value():
    # a small first load: many series, none with a new derivative in the training months
    counts = np.ones((80, 8))
    est = PooledRateForecaster().fit(counts)
    assert est.n_train_ >= est.min_train and est.rate_model_ is None
    np.testing.assert_array_equal(est.predict_ahead(6), np.ones(80))


@pytest.mark.parametrize("bad", [{"level": 1.2}, {"rate_origins": 0}, {"max_damping": 5.0},
                                 {"horizon_calibration": "sometimes"}, {"horizon_origins": 0}])
def test_validation_happens_in_fit(bad):
    est = PooledRateForecaster(**bad)
    with pytest.raises(ValueError):
        est.fit(steady_series(n=50).counts)


def test_deterministic():
    gs = steady_series(n=300, seed=2)
    a = PooledRateForecaster().fit(gs).predict_interval(6)
    b = PooledRateForecaster().fit(gs).predict_interval(6)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def accelerating_series(n=800, T=40, growth=1.12, seed=3):
    """Series whose monthly rate grows by ``growth`` a month: a band set on 3-month outcomes
    (and a rate that never grows) is too narrow 12 months out."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(0.6, 0.5, n)
    start = rng.integers(0, T - 28, n)
    counts = np.full((n, T), np.nan)
    for i in range(n):
        m = T - start[i]
        counts[i, :m] = 1 + np.cumsum(rng.poisson(rate[i] * growth ** np.arange(m)))
    ids = np.array([f"org{i % 40}/m{i}" for i in range(n)], dtype=object)
    return GrowthSeries(ids=ids, counts=counts, n_obs=T - start)


def test_band_calibrated_per_horizon_covers_long_horizons():
    gs, h = accelerating_series(), 12
    train = gs.truncate(h)
    cover = {}
    for mode in ("none", "band"):
        est = PooledRateForecaster(horizon_calibration=mode).fit(train)
        p, lo, hi = est.predict_interval(h)
        rows = np.flatnonzero(est.eligible_)
        truth = gs.counts[rows, train.n_obs[rows] - 1 + h]
        cover[mode] = np.mean((truth >= lo[rows]) & (truth <= hi[rows]))
        assert np.all(lo[rows] <= p[rows]) and np.all(p[rows] <= hi[rows])
    assert est.horizon_rows_[h - 1] >= est.min_horizon_rows and np.all(est.band_scale_ >= 1.0)
    assert cover["none"] < 0.4 and 0.65 <= cover["band"] <= 0.95, cover


def test_horizons_longer_than_the_history_take_the_longest_measured_band():
    """Series 10 months long: the 12-month step has no outcome (no series is eligible that far
    back) and keeps the widest horizon that had outcomes."""
    gs = steady_series(n=400, T=10, seed=4)
    est = PooledRateForecaster().fit(gs)
    assert est.rate_model_ is not None and est.horizon_rows_[-1] == 0
    last = np.flatnonzero(est.horizon_rows_ >= est.min_horizon_rows)[-1]
    assert np.all(est.band_scale_[last:] == est.band_scale_[last])
    p, lo, hi = est.predict_interval(12)
    assert np.all(lo[est.eligible_] <= p[est.eligible_])
