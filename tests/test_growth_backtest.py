"""analytics.growth.backtest: rolling origins, splits, summaries, the goal check."""
from __future__ import annotations

import numpy as np
import pandas as pd

from analytics.growth import LastValue, PooledRateForecaster, goal_table, rolling_backtest
from analytics.growth.backtest import origins_for, summarise
from tests.test_growth_pooled import steady_series


def test_origins_split_by_the_outcome_date():
    pairs = origins_for([3, 12], test_window=2, tuning_window=1)
    assert pairs == {(3, 3): "test", (4, 3): "test", (5, 3): "tuning",
                     (12, 12): "test", (13, 12): "test", (14, 12): "tuning"}


def test_rolling_backtest_scores_every_method_on_the_same_series():
    gs = steady_series(n=400, T=20, seed=3)
    res = rolling_backtest(gs, methods={"pooled_rate": PooledRateForecaster,
                                        "last_value": LastValue},
                           horizons=(3, 6), test_window=2, tuning_window=1, min_series=10)
    p = res.predictions
    assert set(p["method"]) == {"pooled_rate", "last_value"}
    assert set(zip(p["origin"], p["horizon"])) == {(3, 3), (4, 3), (5, 3), (6, 6), (7, 6), (8, 6)}
    a = p[p.method == "pooled_rate"].sort_values(["origin", "horizon", "model"])
    b = p[p.method == "last_value"].sort_values(["origin", "horizon", "model"])
    assert list(a["model"]) == list(b["model"])  # same rows for every method
    # the observed value is the count h months after the origin
    r = p.iloc[0]
    i = list(gs.ids).index(r["model"])
    assert r["observed"] == gs.counts[i, gs.n_obs[i] - r["origin"] - 1 + r["horizon"]]
    assert (b["forecast"] == b["last"]).all() and b["low"].isna().all()
    t = res.table()
    assert {"n_series", "n_failed", "mae", "mdae", "rmsle", "mdape", "coverage"} <= set(t.columns)
    g = goal_table(res, baselines=("last_value",))
    assert list(g["horizon"]) == [3, 6] and (g["mae_vs_best"] < 0).all()


def test_summarise_by_hand():
    pred = pd.DataFrame({"method": "m", "horizon": 3, "split": "test", "model": ["a", "b", "a"],
                         "last": [1.0, 10, 10],
                         "observed": [1.0, 20, 10], "forecast": [2.0, 20, np.nan],
                         "low": [1.0, 15, np.nan], "high": [1.0, 30, np.nan]})
    t = summarise(pred, ("method",)).iloc[0]
    assert t["n_series"] == 2 and t["n_failed"] == 1 and t["n_models"] == 2
    np.testing.assert_allclose(t["mae"], (np.log(3) - np.log(2)) / 2)
    np.testing.assert_allclose(t["mdape"], 50.0)
    assert t["coverage"] == 1.0
    by_size = summarise(pred, ("size",))
    assert set(by_size["size"]) == {"1", "5-19"}
