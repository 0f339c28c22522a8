"""Benchmark: batched WSB Levenberg-Marquardt vs the paper's per-series scipy curve_fit,
on synthetic series and on the real base-model series read from the graph.

    python bench/fit.py [--db /tmp/dbfull] [--n-synth 10000] [--cf-sample-real 2000] [--seed 0]

(a) synthetic WSB series with Poisson increments; (b) every base-model series of the graph
(``graph.queries.derivative_edges`` -> ``analytics.growth.derivative_series`` with
``as_of="auto"``): the graph at ``--db`` (a HUBATLAS_DB folder), or, without ``--db``, one
built into a temp folder by ``python -m ingest run --snapshot ../shared/data/hub-2024-07
--snapshot ../shared/data/trees-2025`` (skipped when the shared data is absent), plus the
holdout-6 / holdout-12 backtests; (c) the cap on c_inf relative to the observed count
(``WSBFitter(c_inf_max_ratio=...)``): backtests per cap; (d) coverage of the page's 80% band
(``analytics.forecasts.calibrate``), 5-fold cross-fitted over the series.

Reference ("paper") fit: scipy.optimize.curve_fit on raw counts, m = 100,
p0 = [0.5, 2, 0.5], bounds (0, inf) for (lambda, mu, sigma), default
tolerances, one call per series.  The model function uses scipy.special.ndtr
(the same function scipy.stats.norm.cdf evaluates, without its per-call
overhead), which makes the reference *faster*, not slower.

"Good fit" is the same for both: converged, R^2 on raw counts >= 0.9, and
parameters strictly inside one common box, checked in (log c_inf, mu,
log sigma) with c_inf in [1e-2, 1e8], mu in [-4, 8], sigma in [0.05, 8]
(a margin of 1e-4 of the box width), plus, for the paper fit, no parameter
on its own lower bound 0 (< 1e-4).  The common box is the batched fitter's
box, so a paper fit is not "good" with e.g. sigma -> 0.001 (a step) where
ours would be flagged on_bound at 0.05.  For this comparison the batched fit
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analytics.growth import backtest, derivative_series, wsb_curve  # noqa: E402
from analytics.growth.fitters import C_INF_MAX_RATIO, LastValue, WSBFitter, _r2_rmsle  # noqa: E402

R2_MIN = 0.9
SHARED = ROOT.parent / "shared" / "data"
SNAPSHOTS = [SHARED / "hub-2024-07", SHARED / "trees-2025"]


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
                p, _, info, mesg, ier = curve_fit(_paper_model, t, y[m], p0=[0.5, 2.0, 0.5],
                                                  bounds=(0, np.inf), full_output=True)
                P[j] = p
                conv[j] = ier in (1, 2, 3, 4) and np.all(np.isfinite(p))
            except (RuntimeError, ValueError):
                pass
    dt = time.perf_counter() - t0
    Ys = Y[rows]
    with np.errstate(divide="ignore", invalid="ignore"):
        pred = np.stack([_paper_model(np.arange(Y.shape[1]) + 1.0, *p) for p in np.nan_to_num(P)]) if n else np.zeros((0, Y.shape[1]))
    r2, rmsle = _r2_rmsle(Ys, pred)
    on_bound = (P < 1e-4).any(axis=1) | ~in_common_box(P)
    good = conv & (r2 >= R2_MIN) & ~on_bound
    return dict(time=dt, params=P, converged=conv, r2=r2, rmsle=rmsle, on_bound=on_bound,
                mu_on_bound=P[:, 1] < 1e-4, good=good)


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
    return dict(time=dt, est=est, good=est.good_fit(R2_MIN), converged=est.converged_ & est.fitted_,
                on_bound=est.on_bound_params_.any(axis=1), ok=est.ok_, rmsle=est.rmsle_)


def compare(name: str, Y: np.ndarray, eligible: np.ndarray, cf_sample: int | None, rng) -> None:
    rows = np.flatnonzero(eligible)
    print(f"\n=== {name}: {len(rows)} eligible series (>= 3 points, some derivative), T = {Y.shape[1]} months")
    res = {loss: ours(Y, rows, loss) for loss in ("linear", "log")}
    if cf_sample is not None and cf_sample < len(rows):
        sample = np.sort(rng.choice(len(rows), cf_sample, replace=False))
        note = f"curve_fit on a random sample of {cf_sample}, time extrapolated x{len(rows) / cf_sample:.2f}"
    else:
        sample = np.arange(len(rows))
        note = "curve_fit on all series"
    cf = paper_curve_fit(Y, rows[sample])
    cf_time = cf["time"] * len(rows) / len(sample)
    print(f"    ({note})")
    last = np.nan_to_num(np.fmax.reduce(np.where(np.isfinite(Y[rows]), Y[rows], 0), axis=1))
    npts = np.isfinite(Y[rows]).sum(1)
    first = np.nan_to_num(np.fmin.reduce(np.where(np.isfinite(Y[rows]), Y[rows], np.inf), axis=1))
    subsets = {"all eligible": np.ones(len(rows), bool),
               "non-flat (some growth in window)": first < last,
               ">= 6 points and >= 10 derivatives": (npts >= 6) & (last >= 10)}
    print(f"    {'method':34s} {'time s':>8s} {'x faster':>9s} {'conv':>7s} {'on bound':>9s} {'med RMSLE':>10s}")
    print(f"    {'paper curve_fit (m=100, p0 fixed)':34s} {cf_time:8.2f} {'1.0':>9s} "
          f"{cf['converged'].mean():7.3f} {cf['on_bound'].mean():9.3f} {np.nanmedian(cf['rmsle']):10.3f}")
    for loss, r in res.items():
        print(f"    {'batched LM, loss=' + loss:34s} {r['time']:8.2f} {cf_time / r['time']:9.1f} "
              f"{r['converged'].mean():7.3f} {r['on_bound'].mean():9.3f} {np.nanmedian(r['rmsle']):10.3f}")
    print("    good-fit share (converged, R2 >= %.2f, inside common box), on curve_fit's series:" % R2_MIN)
    for sname, smask in subsets.items():
        ss = smask[sample]
        line = f"      {sname:36s} n={int(ss.sum()):6d}  paper {cf['good'][ss].mean():.3f}"
        for loss, r in res.items():
            line += f"  LM-{loss} {r['good'][sample][ss].mean():.3f}"
        line += f"  | default LM (linear) on all {int(smask.sum())}: good {res['linear']['good'][smask].mean():.3f}, ok {res['linear']['ok'][smask].mean():.3f}"
        print(line)
    print(f"    paper fit: mu on its 0 bound in {cf['mu_on_bound'].mean():.1%}, not converged {1 - cf['converged'].mean():.1%}")
    est = res["linear"]["est"]
    print("    default batched LM (linear) flag shares: " + ", ".join(f"{k} {v:.3f}" for k, v in est.flags_[est.fitted_].mean().items()))
    pb = est.on_bound_params_.mean(axis=0)
    print(f"    default batched LM (linear) parameter on bound: c_inf {pb[0]:.3f}, mu {pb[1]:.3f}, sigma {pb[2]:.3f}")


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


def cap_ablation(gs, caps) -> pd.DataFrame:
    """Backtests (holdout 6 and 12) of WSB with each cap on c_inf / observed count."""
    rows = []
    for cap in caps:
        t0 = time.perf_counter()
        est = WSBFitter(c_inf_max_ratio=cap).fit(gs)
        fit_s = time.perf_counter() - t0
        for hold in (6, 12):
            tab = backtest(gs, holdout=hold, horizons=(3, 6, 12), ok_rows=True,
                           methods={"wsb": lambda c=cap: WSBFitter(c_inf_max_ratio=c), "last_value": LastValue})
            for r in tab.to_dict("records"):
                if r["method"] in ("wsb", "wsb_or_last", "wsb[ok]", "last_value[ok]"):
                    rows.append(dict(cap=cap, ok_full=int(est.ok_.sum()), cap_flagged=int(est.flags_["c_inf_cap"].sum()),
                                     fit_s=fit_s, holdout=hold, **r))
    return pd.DataFrame(rows)


def band_coverage(gs, rng, holdout: int = 6, level: float = 0.8, folds: int = 5) -> pd.DataFrame:
    """Cross-fitted coverage of the calibrated band: split the series into ``folds`` random
    folds, calibrate on the other folds, score the ok forecasts of the held-out fold."""
    from analytics.forecasts import calibrate, growth_table

    fold = rng.permutation(len(gs)) % folds
    train = gs.truncate(holdout)
    rows = []
    for f in range(folds):
        a, b = fold != f, fold == f
        cal = calibrate(gs.subset(a), holdout=holdout, level=level)
        test, tr = gs.subset(b), train.subset(b)
        for name, c in (("calibrated", cal), ("delta method", None)):
            s = growth_table(tr, horizons=range(1, holdout + 1), level=level, calibration=c).summary
            elig = (tr.n_obs >= 6) & (test.n_obs - tr.n_obs >= holdout) & s["ok"].to_numpy()
            for h in range(1, holdout + 1):
                y = test.counts[np.flatnonzero(elig), tr.n_obs[elig] - 1 + h]
                lo, hi = s[f"pred_{h}m_low"].to_numpy()[elig], s[f"pred_{h}m_high"].to_numpy()[elig]
                rows.append(dict(band=name, horizon=h, n=int(elig.sum()), covered=int(((y >= lo) & (y <= hi)).sum())))
    df = pd.DataFrame(rows).groupby(["band", "horizon"], as_index=False).sum()
    df["coverage"] = df["covered"] / df["n"]
    return df


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-synth", type=int, default=10_000)
    ap.add_argument("--cf-sample-synth", type=int, default=None, help="curve_fit sample size for (a); default all")
    ap.add_argument("--cf-sample-real", type=int, default=2000, help="curve_fit sample size for (b); 0 = all")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--db", type=Path, default=None,
                    help="HUBATLAS_DB folder of a built graph (e.g. /tmp/dbfull); default: build one in a temp folder")
    ap.add_argument("--snapshot", type=Path, action="append", default=None,
                    help="snapshot folder for the temp build (repeatable; default hub-2024-07 + trees-2025)")
    args = ap.parse_args(argv)
    args.snapshot = args.snapshot or SNAPSHOTS
    rng = np.random.default_rng(args.seed)
    print(f"numpy {np.__version__}, cores visible {os.cpu_count()}")

    # (a) synthetic
    Y, truth = synthetic(args.n_synth, rng)
    elig = (np.isfinite(Y).sum(1) >= 3) & (np.nanmax(Y, axis=1) > 0)
    compare(f"(a) synthetic WSB series (n={args.n_synth})", Y, elig, args.cf_sample_synth, rng)

    # (b) real series from the graph
    missing = [p for p in args.snapshot if not p.exists()] if args.db is None else []
    if missing or (args.db is not None and not args.db.exists()):
        print(f"\n(b) skipped: not found: {missing or args.db}")
        return 0
    db, build_s = ensure_graph(args.db, args.snapshot)
    t0 = time.perf_counter()
    edges = graph_edges(db)
    t1 = time.perf_counter()
    gs = derivative_series(edges, as_of="auto")
    t2 = time.perf_counter()
    built = f"built by ingest in {build_s:.0f}s" if build_s is not None else "given with --db"
    print(f"\n(b) graph {db} ({built}): {len(edges)} lineage edges (derivative_edges {t1 - t0:.1f}s, "
          f"derivative_series {t2 - t1:.1f}s)")
    pr = edges.drop_duplicates("parent")
    print(f"    base models (distinct parents): {len(pr)}; parents without a creation date in the graph "
          f"(back-fill stamp or stub): {int(pr['parent_created'].isna().sum())}; children without a date: "
          f"{int(edges['child_created'].isna().sum())}; relations: {edges['relation'].value_counts().to_dict()}")
    print(f"    window ends at as_of = {gs.as_of} (coverage_end; last child date {edges['child_created'].max()})")
    info = gs.info
    print(f"    series built: {len(gs)}; parent creation unknown: {int(info['parent_created_unknown'].sum())} "
          f"(imputed from first dated child: {int(info['parent_date_imputed'].sum())}); dropped: {gs.dropped}")
    print(f"    children dated before their parent (put in month 0): {int(info['n_before_parent'].sum())}")
    for N in (3, 6, 12, 24):
        print(f"    series with >= {N:2d} monthly points: {int((gs.n_obs >= N).sum())}")
    Yr = gs.counts
    elig = (gs.n_obs >= 3) & (np.nanmax(np.where(np.isfinite(Yr), Yr, 0), axis=1) > 0)
    compare("(b) real base-model series", Yr, elig, args.cf_sample_real or None, rng)

    for hold in (6, 12):
        t0 = time.perf_counter()
        tab = backtest(gs, holdout=hold, horizons=(3, 6, 12), ok_rows=True)
        print(f"\n(b) backtest holdout={hold}, default WSBFitter (c_inf cap {C_INF_MAX_RATIO}x): "
              f"{tab.attrs['n_eligible']} series with >= 6 training months and >= 1 derivative "
              f"({time.perf_counter() - t0:.1f}s)")
        print(tab.to_string(index=False, float_format=lambda x: f"{x:.3f}"))

    caps = [None, 1000.0, 100.0, 30.0, 10.0]
    abl = cap_ablation(gs, caps)
    print("\n(c) cap on c_inf relative to the largest observed count (None = only the 1e8 bound); "
          "ok_full / cap_flagged: fits on all series")
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(abl.drop(columns=["n_failed", "coverage"]).to_string(index=False, float_format=lambda x: f"{x:.3f}"))

    cov = band_coverage(gs, rng)
    print("\n(d) 80% band on ok fits, holdout 6, 5-fold cross-fitted (calibrate on 4/5 of the series, "
          "score the ok forecasts of the other 1/5):")
    print(cov.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
