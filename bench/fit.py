"""Benchmark: batched WSB Levenberg-Marquardt vs the paper's per-series scipy curve_fit.

    python bench/fit.py [--n-synth 10000] [--cf-sample-real 2000] [--seed 0]

(a) synthetic WSB series with Poisson increments, (b) every base-model series
of the real snapshot ../shared/data/hub-2024-07/models.jsonl.gz (skipped with a
message when the file is absent), plus the holdout-6 / holdout-12 backtests on
the real series.

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
ours would be flagged on_bound at 0.05.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import curve_fit
from scipy.special import ndtr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analytics.growth import (GrowthSeries, WSBFitter, _r2_rmsle, backtest,  # noqa: E402
                              derivative_series, wsb_curve)

R2_MIN = 0.9
SNAPSHOT = ROOT / ".." / "shared" / "data" / "hub-2024-07" / "models.jsonl.gz"


# --------------------------------------------------------------------------- #
# STAND-IN for graph.derivative_edges (being written in graph/).  Kept here,
# private to the benchmark; replace with the graph-backed function once it exists.
# --------------------------------------------------------------------------- #
_BACKFILL_PREFIX = "2022-03-02T23:29:0"  # Hub back-fill stamp: ...:04.000Z (7.8k) AND ...:05.000Z (22k records)


def _standin_derivative_edges(path: Path) -> tuple[pd.DataFrame, dict]:
    """Edges frame (parent, parent_created, child, child_created, relation) from the
    raw jsonl.  Lineage from tags ``base_model:<parent>`` (relation 'unknown') or
    ``base_model:<relation>:<parent>``.  createdAt equal to the back-fill stamp
    (2022-03-02T23:29:04/05Z) becomes NaT.  parent_created comes from the parent's
    own record when its id matches exactly (else NaT)."""
    created: dict[str, str | None] = {}
    rows = []
    stats = dict(records=0, backfill_dates=0)
    with gzip.open(path, "rt") as fh:
        for line in fh:
            r = json.loads(line)
            stats["records"] += 1
            ca = r.get("createdAt")
            if ca is None or ca.startswith(_BACKFILL_PREFIX):
                stats["backfill_dates"] += ca is not None
                ca = None
            created[r["id"]] = ca
            for tag in r.get("tags") or ():
                if tag.startswith("base_model:"):
                    rest = tag[len("base_model:"):]
                    rel, _, par = rest.partition(":")
                    if par and rel in ("finetune", "adapter", "quantized", "merge"):
                        rows.append((par, r["id"], ca, rel))
                    else:
                        rows.append((rest, r["id"], ca, "unknown"))
    e = pd.DataFrame(rows, columns=["parent", "child", "child_created", "relation"])
    matched = e["parent"].map(lambda p: p in created)
    stats["edges"] = len(e)
    stats["parent_id_match_share"] = float(matched.mean()) if len(e) else float("nan")
    e["parent_created"] = e["parent"].map(created)
    for c in ("parent_created", "child_created"):
        e[c] = pd.to_datetime(e[c], utc=True, errors="coerce", format="ISO8601")
    pr = e.drop_duplicates("parent")
    stats["parents"] = len(pr)
    stats["parents_not_in_snapshot"] = int((~pr["parent"].map(lambda p: p in created)).sum())
    stats["parents_backfill_date"] = int((pr["parent"].map(lambda p: p in created) & pr["parent_created"].isna()).sum())
    return e[["parent", "parent_created", "child", "child_created", "relation"]], stats


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
    est = WSBFitter(loss=loss).fit(Y[rows])
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-synth", type=int, default=10_000)
    ap.add_argument("--cf-sample-synth", type=int, default=None, help="curve_fit sample size for (a); default all")
    ap.add_argument("--cf-sample-real", type=int, default=2000, help="curve_fit sample size for (b); 0 = all")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--snapshot", type=Path, default=SNAPSHOT)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    print(f"numpy {np.__version__}, cores visible {os.cpu_count()}")

    # (a) synthetic
    Y, truth = synthetic(args.n_synth, rng)
    elig = (np.isfinite(Y).sum(1) >= 3) & (np.nanmax(Y, axis=1) > 0)
    compare(f"(a) synthetic WSB series (n={args.n_synth})", Y, elig, args.cf_sample_synth, rng)

    # (b) real snapshot
    if not args.snapshot.exists():
        print(f"\n(b) skipped: snapshot not found at {args.snapshot}")
        return 0
    t0 = time.perf_counter()
    edges, st = _standin_derivative_edges(args.snapshot)
    t1 = time.perf_counter()
    gs = derivative_series(edges)
    t2 = time.perf_counter()
    print(f"\n(b) real snapshot {args.snapshot.name}: {st['records']} records, {st['edges']} lineage edges "
          f"(stand-in reader {t1 - t0:.1f}s, derivative_series {t2 - t1:.1f}s)")
    print(f"    base models (distinct parents): {st['parents']}; parent id found in snapshot: "
          f"{st['parent_id_match_share']:.1%} of edges; parents not in snapshot: {st['parents_not_in_snapshot']}; "
          f"parents with back-fill creation date: {st['parents_backfill_date']}")
    print(f"    records with back-fill createdAt (-> NaT): {st['backfill_dates']}")
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
        tab = backtest(gs, holdout=hold, horizons=(3, 6, 12))
        print(f"\n(b) backtest holdout={hold}: {tab.attrs['n_eligible']} series with >= 6 training months "
              f"and >= 1 derivative ({time.perf_counter() - t0:.1f}s)")
        print(tab.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
