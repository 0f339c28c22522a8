"""Benchmark: growth fits and the forecasts build, with every reference timed in the same run.

    python -m bench.fit [--db DIR | --edges FILE.parquet] [--as-of 2024-07-11] [--n-synth 10000]
                        [--cf-sample-real 2000] [--seed 0]

(a) synthetic WSB series with Poisson increments: the batched Levenberg-Marquardt WSB fit
    against the paper's per-series scipy ``curve_fit``;
(b) every base-model series of a graph (``graph.queries.derivative_edges`` ->
    ``analytics.growth.derivative_series``): the same comparison on real series; the graph at
    ``--db``, an edges parquet (``--edges``) or, with neither, one built into a temp folder by
    ``python -m ingest run --snapshot ../shared/data/hub-2024-07`` (skipped when absent);
(c) the forecasts build (``analytics.forecasts.build_forecasts``: WSB fits + pooled rate model
    + its backtest at the latest origins) against the previous product path (WSB fits of every
    series plus a holdout WSB fit for the band) and against curve_fit, as ratios of times
    measured in this run.  The machine is shared: read ratios, not absolute seconds.

Reference ("paper") fit: scipy.optimize.curve_fit on raw counts, m = 100,
p0 = [0.5, 2, 0.5], bounds (0, inf) for (lambda, mu, sigma), default
tolerances, one call per series.  The model function uses scipy.special.ndtr
(the same function scipy.stats.norm.cdf evaluates, without its per-call
overhead), which makes the reference *faster*, not slower.

"Good fit" is the same for both: converged, R^2 on raw counts >= 0.9, and
parameters strictly inside one common box, checked in (log c_inf, mu,
log sigma) with c_inf in [1e-2, 1e8], mu in [-4, 8], sigma in [0.05, 8]
(a margin of 1e-4 of the box width), plus, for the paper fit, no parameter
on its own lower bound 0 (< 1e-4).  For this comparison the batched fit
runs without the relative c_inf cap (c_inf_max_ratio=None), i.e. in the same box.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import curve_fit
from scipy.special import ndtr

from analytics.growth import derivative_series, wsb_curve
from analytics.growth.fitters import WSBFitter, _r2_rmsle

ROOT = Path(__file__).resolve().parents[1]

R2_MIN = 0.9
SHARED = ROOT.parent / "shared" / "data"
SNAPSHOTS = [SHARED / "hub-2024-07"]


# --------------------------------------------------------------------------- #
# Real series from the graph
# --------------------------------------------------------------------------- #
def ensure_graph(db: Path | None, snapshots: list[Path]) -> tuple[Path, float | None]:
    """The graph folder to read: ``db`` as given, or a fresh one built into a temp folder with
    ``python -m ingest run --snapshot ...`` (returns the build time in seconds)."""
    if db is not None:
        return db, None
    tmp = Path(tempfile.mkdtemp(prefix="hubatlas-bench-"))
    cmd = [sys.executable, "-m", "ingest", "run"]
    for snap in snapshots:
        cmd += ["--snapshot", str(snap)]
    t0 = time.perf_counter()
    env = {**os.environ, "HUBATLAS_DB": str(tmp)}
    env.pop("NEO4J_URI", None)
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    return tmp, time.perf_counter() - t0


def graph_edges(db: Path) -> pd.DataFrame:
    from graph.queries import derivative_edges
    from graph.store import open_store

    os.environ.pop("NEO4J_URI", None)
    store = open_store(read_only=True, root=db)
    try:
        return derivative_edges(store)
    finally:
        store.close()


# --------------------------------------------------------------------------- #
# Reference: the paper's fit
# --------------------------------------------------------------------------- #
def _paper_model(t, lam, mu, sigma):
    return 100.0 * (np.exp(lam * ndtr((np.log(t) - mu) / sigma)) - 1.0)


def paper_curve_fit(Y: np.ndarray, rows: np.ndarray) -> dict:
    n = len(rows)
    P = np.full((n, 3), np.nan)
    conv = np.zeros(n, bool)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for j, i in enumerate(rows):
            y = Y[i]
            m = np.isfinite(y)
            t = (np.arange(y.size) + 1.0)[m]
            try:
                p, _, info, mesg, ier = curve_fit(
                    _paper_model, t, y[m], p0=[0.5, 2.0, 0.5], bounds=(0, np.inf), full_output=True
                )
                P[j] = p
                conv[j] = ier in (1, 2, 3, 4) and np.all(np.isfinite(p))
            except (RuntimeError, ValueError):
                pass
    dt = time.perf_counter() - t0
    Ys = Y[rows]
    with np.errstate(divide="ignore", invalid="ignore"):
        pred = (
            np.stack([_paper_model(np.arange(Y.shape[1]) + 1.0, *p) for p in np.nan_to_num(P)])
            if n
            else np.zeros((0, Y.shape[1]))
        )
    r2, rmsle = _r2_rmsle(Ys, pred)
    on_bound = (P < 1e-4).any(axis=1) | ~in_common_box(P)
    good = conv & (r2 >= R2_MIN) & ~on_bound
    return dict(
        time=dt,
        params=P,
        converged=conv,
        r2=r2,
        rmsle=rmsle,
        on_bound=on_bound,
        mu_on_bound=P[:, 1] < 1e-4,
        good=good,
    )


def in_common_box(P: np.ndarray) -> np.ndarray:
    """(lambda, mu, sigma) rows with m = 100 -> strictly inside the batched fitter's box."""
    lo, hi = WSBFitter()._bounds()
    with np.errstate(divide="ignore", invalid="ignore"):
        th = np.stack([np.log(100.0 * np.expm1(P[:, 0])), P[:, 1], np.log(P[:, 2])], axis=1)
    tol = 1e-4 * (hi - lo)
    return np.all((th > lo + tol) & (th < hi - tol), axis=1)


def ours(Y, rows, loss="log"):
    t0 = time.perf_counter()
    est = WSBFitter(loss=loss, c_inf_max_ratio=None).fit(Y[rows])
    dt = time.perf_counter() - t0
    return dict(
        time=dt,
        est=est,
        good=est.good_fit(R2_MIN),
        converged=est.converged_ & est.fitted_,
        on_bound=est.on_bound_params_.any(axis=1),
        ok=est.ok_,
        rmsle=est.rmsle_,
    )


def compare(name: str, Y: np.ndarray, eligible: np.ndarray, cf_sample: int | None, rng) -> None:
    rows = np.flatnonzero(eligible)
    print(
        f"\n=== {name}: {len(rows)} eligible series (>= 3 points, some derivative), "
        f"T = {Y.shape[1]} months"
    )
    res = {loss: ours(Y, rows, loss) for loss in ("linear", "log")}
    if cf_sample is not None and cf_sample < len(rows):
        sample = np.sort(rng.choice(len(rows), cf_sample, replace=False))
        note = (f"curve_fit on a random sample of {cf_sample}, time extrapolated "
                f"x{len(rows) / cf_sample:.2f}")
    else:
        sample = np.arange(len(rows))
        note = "curve_fit on all series"
    cf = paper_curve_fit(Y, rows[sample])
    cf_time = cf["time"] * len(rows) / len(sample)
    print(f"    ({note})")
    last = np.nan_to_num(np.fmax.reduce(np.where(np.isfinite(Y[rows]), Y[rows], 0), axis=1))
    npts = np.isfinite(Y[rows]).sum(1)
    first = np.nan_to_num(np.fmin.reduce(np.where(np.isfinite(Y[rows]), Y[rows], np.inf), axis=1))
    subsets = {
        "all eligible": np.ones(len(rows), bool),
        "non-flat (some growth in window)": first < last,
        ">= 6 points and >= 10 derivatives": (npts >= 6) & (last >= 10),
    }
    print(
        f"    {'method':34s} {'time s':>8s} {'x faster':>9s} {'conv':>7s} {'on bound':>9s} "
        f"{'med RMSLE':>10s}"
    )
    print(
        f"    {'paper curve_fit (m=100, p0 fixed)':34s} {cf_time:8.2f} {'1.0':>9s} "
        f"{cf['converged'].mean():7.3f} {cf['on_bound'].mean():9.3f} "
        f"{np.nanmedian(cf['rmsle']):10.3f}"
    )
    for loss, r in res.items():
        print(
            f"    {'batched LM, loss=' + loss:34s} {r['time']:8.2f} {cf_time / r['time']:9.1f} "
            f"{r['converged'].mean():7.3f} {r['on_bound'].mean():9.3f} "
            f"{np.nanmedian(r['rmsle']):10.3f}"
        )
    print(
        "    good-fit share (converged, R2 >= %.2f, inside common box), on curve_fit's series:"
        % R2_MIN
    )
    for sname, smask in subsets.items():
        ss = smask[sample]
        line = f"      {sname:36s} n={int(ss.sum()):6d}  paper {cf['good'][ss].mean():.3f}"
        for loss, r in res.items():
            line += f"  LM-{loss} {r['good'][sample][ss].mean():.3f}"
        lin = res["linear"]
        line += (f"  | default LM (linear) on all {int(smask.sum())}: good "
                 f"{lin['good'][smask].mean():.3f}, ok {lin['ok'][smask].mean():.3f}")
        print(line)
    print(
        f"    paper fit: mu on its 0 bound in {cf['mu_on_bound'].mean():.1%}, "
        f"not converged {1 - cf['converged'].mean():.1%}"
    )
    est = res["linear"]["est"]
    print(
        "    default batched LM (linear) flag shares: "
        + ", ".join(f"{k} {v:.3f}" for k, v in est.flags_[est.fitted_].mean().items())
    )
    pb = est.on_bound_params_.mean(axis=0)
    print(
        f"    default batched LM (linear) parameter on bound: c_inf {pb[0]:.3f}, "
        f"mu {pb[1]:.3f}, sigma {pb[2]:.3f}"
    )


def synthetic(n: int, rng, T: int = 36) -> tuple[np.ndarray, np.ndarray]:
    lam = rng.uniform(0.3, 5.0, n)
    mu = rng.uniform(-0.5, 3.5, n)
    sig = rng.uniform(0.3, 2.0, n)
    t = np.arange(T) + 1.0
    C = wsb_curve(t[None, :], lam[:, None], mu[:, None], sig[:, None])
    inc = np.diff(np.concatenate([np.zeros((n, 1)), C], axis=1), axis=1)
    Y = np.cumsum(rng.poisson(np.maximum(inc, 0.0)), axis=1).astype(float)
    L = rng.integers(6, T + 1, n)
    Y[np.arange(T)[None, :] >= L[:, None]] = np.nan
    return Y, np.stack([lam, mu, sig], 1)


def build_timings(edges: pd.DataFrame, series, as_of, rng, cf_sample: int) -> None:
    """(c): the forecasts build against the previous product path and curve_fit, same run."""
    from analytics.forecasts import build_forecasts
    from analytics.growth.pooled import PooledRateForecaster

    t0 = time.perf_counter()
    WSBFitter().fit(series)
    WSBFitter().fit(series.truncate(6))  # the old page's band: a holdout-6 WSB refit
    old = time.perf_counter() - t0
    t0 = time.perf_counter()
    PooledRateForecaster().fit(series).predict_interval(12)
    pooled = time.perf_counter() - t0
    t0 = time.perf_counter()
    table = build_forecasts(edges, as_of=as_of)
    build = time.perf_counter() - t0
    elig = np.flatnonzero(series.n_obs >= 3)
    rows = np.sort(rng.choice(elig, min(cf_sample, elig.size), replace=False))
    cf = paper_curve_fit(series.counts, rows)["time"] * elig.size / max(rows.size, 1)
    print(
        f"\n(c) forecasts build on {len(series):,} base models ({table.meta['n_forecast']:,} "
        f"forecasts, {table.meta['n_fit_ok']:,} ok WSB fits)"
    )
    print(f"    {'step':54s} {'seconds':>8s} {'x previous':>10s}")
    print(f"    {'previous product: WSB fits + holdout WSB refit':54s} {old:8.1f} {1.0:10.2f}")
    print(
        f"    {'pooled rate model alone (fit + 12-month band)':54s} {pooled:8.1f} "
        f"{pooled / old:10.2f}"
    )
    print(
        f"    {'build_forecasts (WSB + pooled + backtest, all outputs)':54s} {build:8.1f} "
        f"{build / old:10.2f}"
    )
    print(
        f"    {'paper curve_fit on the same series (extrapolated)':54s} {cf:8.1f} {cf / old:10.2f}"
    )
    print(f"    build_seconds recorded in the table's meta: {table.meta['build_seconds']}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n-synth", type=int, default=10_000)
    ap.add_argument(
        "--cf-sample-synth",
        type=int,
        default=None,
        help="curve_fit sample size for (a); default all",
    )
    ap.add_argument(
        "--cf-sample-real", type=int, default=2000, help="curve_fit sample size for (b); 0 = all"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--db",
        type=Path,
        default=None,
        help="HUBATLAS_DB folder of a built graph; default: build one in a temp folder",
    )
    ap.add_argument(
        "--edges",
        type=Path,
        default=None,
        help="parquet of graph.queries.derivative_edges output (instead of --db)",
    )
    ap.add_argument(
        "--as-of",
        default="auto",
        help="end of the source's coverage (default auto: end of the dense dates)",
    )
    ap.add_argument(
        "--snapshot",
        type=Path,
        action="append",
        default=None,
        help="snapshot folder for the temp build (repeatable; default hub-2024-07 + trees-2025)",
    )
    args = ap.parse_args(argv)
    args.snapshot = args.snapshot or SNAPSHOTS
    rng = np.random.default_rng(args.seed)
    print(f"numpy {np.__version__}, cores visible {os.cpu_count()}")

    # (a) synthetic
    Y, truth = synthetic(args.n_synth, rng)
    elig = (np.isfinite(Y).sum(1) >= 3) & (np.nanmax(Y, axis=1) > 0)
    compare(f"(a) synthetic WSB series (n={args.n_synth})", Y, elig, args.cf_sample_synth, rng)

    # (b) real series from the graph
    t0 = time.perf_counter()
    if args.edges is not None:
        db, build_s = args.edges, None
        edges = pd.read_parquet(args.edges)
    else:
        missing = [p for p in args.snapshot if not p.exists()] if args.db is None else []
        if missing or (args.db is not None and not args.db.exists()):
            print(f"\n(b) skipped: not found: {missing or args.db}")
            return 0
        db, build_s = ensure_graph(args.db, args.snapshot)
        t0 = time.perf_counter()
        edges = graph_edges(db)
    t1 = time.perf_counter()
    gs = derivative_series(edges, as_of=args.as_of)
    t2 = time.perf_counter()
    built = f"built by ingest in {build_s:.0f}s" if build_s is not None else "given with --db"
    print(
        f"\n(b) graph {db} ({built}): {len(edges)} lineage edges (derivative_edges {t1 - t0:.1f}s, "
        f"derivative_series {t2 - t1:.1f}s)"
    )
    pr = edges.drop_duplicates("parent")
    print(
        f"    base models (distinct parents): {len(pr)}; parents without a creation date in "
        f"the graph (back-fill stamp or stub): {int(pr['parent_created'].isna().sum())}; "
        f"children without a date: {int(edges['child_created'].isna().sum())}; relations: "
        f"{edges['relation'].value_counts().to_dict()}"
    )
    print(
        f"    window ends at as_of = {gs.as_of} (last child date "
        f"{edges['child_created'].max()})"
    )
    info = gs.info
    print(
        f"    series built: {len(gs)}; parent creation unknown: "
        f"{int(info['parent_created_unknown'].sum())} "
        f"(imputed from first dated child: {int(info['parent_date_imputed'].sum())}); "
        f"dropped: {gs.dropped}"
    )
    print(
        f"    children dated before their parent (put in month 0): "
        f"{int(info['n_before_parent'].sum())}"
    )
    for N in (3, 6, 12, 24):
        print(f"    series with >= {N:2d} monthly points: {int((gs.n_obs >= N).sum())}")
    Yr = gs.counts
    elig = (gs.n_obs >= 3) & (np.nanmax(np.where(np.isfinite(Yr), Yr, 0), axis=1) > 0)
    compare("(b) real base-model series", Yr, elig, args.cf_sample_real or None, rng)

    build_timings(edges, gs, args.as_of, rng, args.cf_sample_real or 2000)
    return 0


if __name__ == "__main__":
    sys.exit(main())
