"""Adoption growth of base models: derivative-count series, WSB and baseline fitters,
forecasts, backtests.

Modules, in the order data flows through them:

* :mod:`~analytics.growth.series`   — ``GrowthSeries`` from lineage edges or a wide CSV;
* :mod:`~analytics.growth.curves`   — the WSB / logistic / Bass curves and the batched
  Levenberg–Marquardt solver;
* :mod:`~analytics.growth.fitters`  — estimators: ``WSBFitter`` (the paper's parameters) and
  the baselines;
* :mod:`~analytics.growth.features` — what every series shows at a forecast origin;
* :mod:`~analytics.growth.pooled`   — ``PooledRateForecaster``, the product forecast;
* :mod:`~analytics.growth.backtest` — rolling-origin backtests;
* :mod:`~analytics.growth.cli`      — ``python -m analytics.growth fit|backtest``.

Pure numpy/scipy/pandas: no Streamlit, no database access.
"""
from analytics.growth.backtest import BacktestResult, default_methods, goal_table, rolling_backtest
from analytics.growth.curves import batched_lm, wsb_curve, wsb_lambda
from analytics.growth.fitters import (
                                       C_INF_MAX_RATIO,
                                       FLAG_NAMES,
                                       BassFitter,
                                       DampedTrend,
                                       LastValue,
                                       LinearTrend,
                                       LogisticFitter,
                                       WSBFitter,
                                       WSBOrLastValue,
                                       detect_jumps,
)
from analytics.growth.pooled import PooledRateForecaster
from analytics.growth.series import (
                                       MONTH_DAYS,
                                       GrowthDataError,
                                       GrowthSeries,
                                       coverage_end,
                                       derivative_series,
                                       read_wide_csv,
)

__all__ = ["C_INF_MAX_RATIO", "FLAG_NAMES", "MONTH_DAYS", "BacktestResult", "BassFitter",
           "DampedTrend", "GrowthDataError", "GrowthSeries", "LastValue", "LinearTrend",
           "LogisticFitter", "PooledRateForecaster", "WSBFitter", "WSBOrLastValue", "batched_lm",
           "coverage_end", "default_methods", "derivative_series", "detect_jumps", "goal_table",
           "read_wide_csv", "rolling_backtest", "wsb_curve", "wsb_lambda"]
