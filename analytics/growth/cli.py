"""``python -m analytics.growth fit|backtest``."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import pandas as pd

from analytics.growth.backtest import backtest
from analytics.growth.fitters import WSBFitter
from analytics.growth.series import GrowthDataError, read_wide_csv


def _parse_int_list(s: str) -> list[int]:
    try:
        v = [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}") from None
    if not v or any(x <= 0 for x in v):
        raise argparse.ArgumentTypeError("horizons must be positive integers")
    return v


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m analytics.growth",
                                 description="Fit the WSB growth model to derivative-count series (wide CSV).")
    sub = ap.add_subparsers(dest="cmd", required=True)
    pf = sub.add_parser("fit", help="fit every series, write one row per model")
    pf.add_argument("csv")
    pf.add_argument("--out", required=True)
    pf.add_argument("--horizons", type=_parse_int_list, default=[6, 12])
    pf.add_argument("--level", type=float, default=0.8)
    pf.add_argument("--loss", choices=("log", "linear"), default="linear")
    pb = sub.add_parser("backtest", help="hold out the last months, compare WSB with baselines")
    pb.add_argument("csv")
    pb.add_argument("--holdout", type=int, default=6)
    pb.add_argument("--horizons", type=_parse_int_list, default=[3, 6, 12])
    pb.add_argument("--min-train", type=int, default=6)
    args = ap.parse_args(argv)
    try:
        gs = read_wide_csv(args.csv)
    except GrowthDataError as exc:
        print(f"error: {args.csv}: {exc}", file=sys.stderr)
        return 2
    if args.cmd == "fit":
        est = WSBFitter(loss=args.loss).fit(gs)
        df = est.summary(horizons=args.horizons, level=args.level)
        df.to_csv(args.out, index=False)
        print(f"fitted {len(df)} series: {int(df['ok'].sum())} ok, "
              f"{int((~df['ok']).sum())} flagged/failed -> {args.out}")
        return 0
    if args.holdout < 1:
        print("error: --holdout must be >= 1", file=sys.stderr)
        return 2
    hz = [h for h in args.horizons if h <= args.holdout]
    if not hz:
        print(f"error: no horizon <= holdout {args.holdout}", file=sys.stderr)
        return 2
    table = backtest(gs, holdout=args.holdout, horizons=hz, min_train=args.min_train)
    print(f"backtest: holdout={args.holdout}, eligible series={table.attrs['n_eligible']} of {len(gs)}")
    if table.attrs["n_eligible"] == 0:
        print("error: no series long enough for this holdout", file=sys.stderr)
        return 3
    with pd.option_context("display.width", 140, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    return 0

