"""``python -m analytics.growth fit|backtest`` over a wide CSV (``model, 0-month, 1-month, …``).

* ``fit FILE.csv --out OUT.csv``: one row per series with the WSB parameters and checks
  (``lambda, mu, sigma, c_inf, ok, flags, r2, rmsle``) and the product forecast with its 80%
  band (``pred_{h}m, pred_{h}m_low, pred_{h}m_high``), the numbers the Forecasts page shows
  (:func:`analytics.forecasts.forecast_series`, the same code path).  Every series of the file
  is taken to end at the same date, as those of ``derivative_series`` do.
* ``backtest FILE.csv``: the rolling-origin backtest of every method
  (:func:`analytics.growth.backtest.rolling_backtest`), test and tuning rows, and the goal
  check against the best baseline.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

import pandas as pd

from analytics.growth.backtest import default_methods, goal_table, rolling_backtest
from analytics.growth.series import GrowthDataError, derivative_series, read_wide_csv


def _parse_int_list(s: str) -> list[int]:
    try:
        v = [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}") from None
    if not v or any(x <= 0 for x in v):
        raise argparse.ArgumentTypeError("horizons must be positive integers")
    return v


def fit_rows(series, *, horizons: Sequence[int] = (6, 12)):
    """The ``fit`` command's frame: one row per series (see the module doc)."""
    from analytics.forecasts import forecast_series

    table = forecast_series(series, horizons=horizons, skill_origins=0)
    m = table.models
    out = pd.DataFrame({
        "model": m["model"], "lambda": m["growth_lambda"], "mu": m["growth_mu"],
        "sigma": m["growth_sigma"], "c_inf": m["growth_c_inf"], "ok": m["growth_fit_ok"],
        "flags": m["growth_fit_flags"], "failed_checks": m["growth_fit_failed"],
        "r2": m["growth_r2"], "rmsle": m["growth_rmsle"], "n_obs": m["growth_months"],
        "last": m["derivatives"], "method": m["forecast_method"]})
    for h in sorted(set(horizons)):
        for s in ("", "_low", "_high"):
            out[f"pred_{h}m{s}"] = m[f"forecast_{h}m{s}"]
    return out


def _source_args(p) -> None:
    p.add_argument("--graph", help="HUBATLAS_DB folder of an embedded graph")
    p.add_argument("--edges", help="parquet of graph.queries.derivative_edges output")
    p.add_argument("--as-of", default="auto",
                   help="end of the source's coverage, e.g. 2024-07-11 (default: auto, the end "
                        "of the dense child dates)")


def _edges(args) -> pd.DataFrame:
    if args.edges:
        return pd.read_parquet(args.edges)
    if not args.graph:
        raise GrowthDataError("give a CSV, --graph DIR or --edges FILE.parquet")
    from pathlib import Path

    from graph.queries import derivative_edges
    from graph.store import open_store

    store = open_store(read_only=True, root=Path(args.graph))
    try:
        return derivative_edges(store)
    finally:
        store.close()


def _outoftime(gs, edges, args) -> int:
    from pathlib import Path

    from analytics.growth.backtest import summarise
    from analytics.growth.outoftime import out_of_time, read_trees, tree_counts

    path = Path(args.trees) / "trees.jsonl.gz"
    if not path.exists():
        print(f"error: no trees file {path}", file=sys.stderr)
        return 2
    trees = read_trees(path)
    counts = tree_counts(trees, edges)
    methods = {k: v for k, v in default_methods().items()}
    rows = out_of_time(gs, counts, methods)
    if rows.empty:
        print("error: no model of the trees has a series in this graph", file=sys.stderr)
        return 3
    if args.out:
        rows.to_csv(args.out, index=False)
    rows["split"] = "out-of-time"
    rows["horizon"] = "crawl"
    n_models = rows["model"].nunique()
    one = rows[rows["method"] == rows["method"].iloc[0]]
    print(f"out-of-time: {n_models} base models of the trees with a July series; horizon "
          f"{one['horizon_months'].min():.1f}-{one['horizon_months'].max():.1f} months; "
          f"{int(one['capped'].sum())} with a capped list; July children still listed in "
          f"2025: {one['july_still_listed'].sum():,} of {one['july_children'].sum():,}")
    left_out = rows.attrs.get("no_derivative_at_end", [])
    if left_out:
        print(f"not scored, no derivative at the end of the last complete July month (no method "
              f"is scored on them): {len(left_out)}: {', '.join(left_out)}")
    with pd.option_context("display.width", 160, "display.max_rows", 500):
        comparable = ~rows["capped"] & (rows["july_still_listed"] >= 0.5 * rows["july_children"])
        parts = (("all", rows), ("lists not capped", rows[~rows["capped"]]),
                 ("comparable: not capped, >= half of the July children still listed",
                  rows[comparable]))
        for name, part in parts:
            t = summarise(part, ("method",)).sort_values("mae")
            print(f"{name}:")
            print(t.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m analytics.growth",
                                 description="Growth fits, forecasts and backtests of "
                                             "derivative-count series (wide CSV).")
    sub = ap.add_subparsers(dest="cmd", required=True)
    pf = sub.add_parser("fit", help="fit and forecast every series, one row per model")
    pf.add_argument("csv")
    pf.add_argument("--out", required=True)
    pf.add_argument("--horizons", type=_parse_int_list, default=[6, 12])
    pb = sub.add_parser("backtest", help="rolling-origin backtest of every method")
    pb.add_argument("csv", nargs="?", help="wide CSV (or give --graph / --edges)")
    _source_args(pb)
    pb.add_argument("--by-relation", action="store_true",
                    help="one series per (base model, relation type); tables by relation")
    pb.add_argument("--horizons", type=_parse_int_list, default=[3, 6, 12])
    pb.add_argument("--test-window", type=int, default=6,
                    help="outcomes in the last N months are test rows (default 6)")
    pb.add_argument("--tuning-window", type=int, default=6,
                    help="origins before the test ones used for choices (default 6)")
    pb.add_argument("--min-series", type=int, default=30)
    pb.add_argument("--curves", action="store_true", help="also the logistic and Bass fits")
    pb.add_argument("--predictions", help="write every scored forecast to this CSV")
    po = sub.add_parser("outoftime", help="forecast from a graph, score against trees-2025")
    _source_args(po)
    po.add_argument("--trees", required=True, help="folder of trees.jsonl.gz (trees-2025)")
    po.add_argument("--out", help="write the per-model rows to this CSV")
    pe = sub.add_parser("export", help="write the series of a graph as a wide CSV")
    _source_args(pe)
    pe.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    if args.cmd in ("outoftime", "export") or (args.cmd == "backtest" and args.csv is None):
        try:
            edges = _edges(args)
        except (GrowthDataError, FileNotFoundError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        gs = derivative_series(edges, as_of=args.as_of,
                               by_relation=getattr(args, "by_relation", False))
        print(f"{len(gs):,} series from {len(edges):,} lineage edges, observed to {gs.as_of}")
        if args.cmd == "export":
            gs.to_wide().to_csv(args.out, index=False)
            print(f"-> {args.out}")
            return 0
        if args.cmd == "outoftime":
            return _outoftime(gs, edges, args)
    else:
        try:
            gs = read_wide_csv(args.csv)
        except GrowthDataError as exc:
            print(f"error: {args.csv}: {exc}", file=sys.stderr)
            return 2
    if args.cmd == "fit":
        df = fit_rows(gs, horizons=args.horizons)
        df.to_csv(args.out, index=False)
        print(f"fitted {len(df)} series: {int(df['ok'].sum())} WSB fits ok, "
              f"{int(df['pred_' + str(args.horizons[0]) + 'm'].notna().sum())} forecasts "
              f"-> {args.out}")
        return 0
    if args.test_window < 1 or args.tuning_window < 0:
        print("error: --test-window must be >= 1 and --tuning-window >= 0", file=sys.stderr)
        return 2
    res = rolling_backtest(gs, methods=default_methods(curves=args.curves),
                           horizons=args.horizons, test_window=args.test_window,
                           tuning_window=args.tuning_window, min_series=args.min_series)
    if res.predictions.empty:
        print("error: no origin with enough eligible series for these horizons",
              file=sys.stderr)
        return 3
    if args.predictions:
        res.predictions.to_csv(args.predictions, index=False)
    table = res.table(("split", "horizon", "method"))
    with pd.option_context("display.width", 160, "display.max_columns", 20,
                           "display.max_rows", 500):
        for split in ("test", "tuning"):
            t = table[table["split"] == split].drop(columns="split")
            if t.empty:
                continue
            ks = sorted(int(k) for k in res.predictions.loc[res.predictions["split"] == split,
                                                             "origin"].unique())
            print(f"{split} rows (origins {ks} months before the end):")
            print(t.sort_values(["horizon", "mae"]).to_string(
                index=False, float_format=lambda x: f"{x:.4f}"))
        if getattr(args, "by_relation", False):
            rel = res.table(("split", "relation", "horizon", "method"))
            rel = rel[rel["split"] == "test"].drop(columns="split")
            print("test rows by relation type:")
            print(rel.sort_values(["relation", "horizon", "mae"]).to_string(
                index=False, float_format=lambda x: f"{x:.4f}"))
        goals = goal_table(res)
        if not goals.empty:
            print("goal (test rows): product vs the best baseline per horizon")
            print(goals.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    return 0
