"""Adoption growth of base models: derivative-count series, WSB and baseline fitters,
forecasts, backtests.

Modules, in the order data flows through them:

* :mod:`~analytics.growth.series`   — ``GrowthSeries`` from lineage edges or a wide CSV;
* :mod:`~analytics.growth.curves`   — the WSB / logistic / Bass curves and the batched
  Levenberg–Marquardt solver;
* :mod:`~analytics.growth.fitters`  — estimators: ``WSBFitter`` (the paper's parameters) and
  the baselines;
* :mod:`~analytics.growth.backtest` — rolling-origin backtests;
* :mod:`~analytics.growth.cli`      — ``python -m analytics.growth fit|backtest``.

Pure numpy/scipy/pandas: no Streamlit, no database access.
"""
from analytics.growth.backtest import backtest, rank_models
from analytics.growth.curves import batched_lm, wsb_curve, wsb_lambda
from analytics.growth.fitters import (
                                      C_INF_MAX_RATIO,
                                      FLAG_NAMES,
                                      BassFitter,
                                      LastValue,
                                      LinearTrend,
                                      LogisticFitter,
                                      WSBFitter,
                                      detect_jumps,
)
from analytics.growth.series import (
                                      MONTH_DAYS,
                                      GrowthDataError,
                                      GrowthSeries,
                                      coverage_end,
                                      derivative_series,
                                      read_wide_csv,
)

__all__ = ["C_INF_MAX_RATIO", "FLAG_NAMES", "MONTH_DAYS", "BassFitter", "GrowthDataError",
           "GrowthSeries", "LastValue", "LinearTrend", "LogisticFitter", "WSBFitter", "backtest",
           "batched_lm", "coverage_end", "derivative_series", "detect_jumps", "rank_models",
           "read_wide_csv", "wsb_curve", "wsb_lambda"]
