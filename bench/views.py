"""The views' batch builders, page-time look-ups and exports on the full graph.

    python -m bench.views [--db /tmp/views-graph] [--write] [--parquet [--portable]]

Builds the full graph first when --db holds none (from ../shared/data, ~1-3 min). Prints
the seconds the scheduled job's view steps took for the current generation (its manifest),
how long loading each stored result takes (what a page does), then, for each builder and
look-up, seconds and a ratio against a baseline measured in the same run (so figures stay
comparable on a busy machine), then what the views find: verdict counts, the families and
publishers with the most licence conflicts, Meta-Llama-3-8B's descendants by verdict,
trending models, the largest family's export.

Baselines: the audit against one scan of every lineage edge with both ends' properties (the
builder's own query); a family export against `graph.queries.descendants` of that family;
the portable Parquet export against the engine's COPY.
--write copies the current generation to a scratch folder and times writing the verdicts
into it (the scheduled job's step). Run it under `flock /tmp/hubatlas-heavy.lock` on shared
machines.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from bench.pages import ensure_full_graph


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def _row(name: str, seconds: float, base: float | None = None, note: str = "") -> None:
    ratio = f"{seconds / base:6.2f}x" if base else "       "
    print(f"  {name:<46} {seconds:8.2f} s  {ratio}  {note}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", type=Path, default=Path("/tmp/views-graph"))
    ap.add_argument("--write", action="store_true", help="time writing the verdicts")
    ap.add_argument("--parquet", action="store_true", help="time the whole-graph export")
    ap.add_argument("--portable", action="store_true",
                    help="with --parquet, also the portable (paged) export: ~10 min on Kùzu")
    ap.add_argument("--top", type=int, default=10)
    args = ap.parse_args()
    pd.set_option("display.width", 200)
    pd.set_option("display.max_colwidth", 60)

    from analytics import compare, export, licences, publishers, trends
    from analytics import pipeline as P
    from analytics.forecasts import ForecastTable
    from analytics.results import Results
    from graph import queries as q
    from graph import views_queries as vq
    from graph.store import open_store

    ensure_full_graph(args.db)
    store = open_store(read_only=True, root=args.db)
    print(f"graph {args.db}: {q.count_nodes(store)['Model']:,} models")
    results = Results(store.generation())
    status = results.status()
    print(f"  {'job step (manifest)':<46} {'seconds':>10}")
    for name, s in status.items():
        _row(name, s.seconds, note="ok" if s.ok else f"FAILED: {s.error}")
    job = sum(s.seconds for s in status.values())
    views = sum(status[n].seconds for n in (P.LICENCE_VERDICTS, P.LICENCE_AUDIT, P.PUBLISHERS,
                                            P.TRENDS) if n in status)
    _row("the view steps, of all steps", views, job, f"all steps {job:.1f} s")
    loaders = {P.LICENCE_AUDIT: lambda r: licences.LicenceAudit.load(r.folder(P.LICENCE_AUDIT)),
               P.PUBLISHERS: lambda r: r.load_frame(P.PUBLISHERS),
               P.TRENDS: lambda r: trends.Trends.load(r.folder(P.TRENDS)),
               P.FORECASTS: lambda r: ForecastTable.load(r.folder(P.FORECASTS))}
    loaded = {}
    print(f"  {'load a stored result (a page, cold)':<46} {'seconds':>10}")
    for name, load in loaders.items():
        if results.ready(name):
            loaded[name], t_l = _timed(load, results)
            _row(f"  {name}", t_l)
    forecast_table = loaded.get(P.FORECASTS)
    print(f"  {'step':<46} {'seconds':>10}  {'ratio':>7}")

    edges, t_scan = _timed(vq.lineage_edges_with_models, store)
    _row("baseline: scan every lineage edge", t_scan, note=f"{len(edges):,} edges")
    audit, t_audit = _timed(licences.build_licence_audit, store)
    _row("build_licence_audit", t_audit, t_scan, f"{len(audit.models):,} derivatives")
    index, t_index = _timed(publishers.build_publisher_index, store, audit)
    _row("build_publisher_index (given the audit)", t_index, t_scan, f"{len(index):,} authors")
    trending, t_trend = _timed(trends.build_trending, store)
    _row("build_trending", t_trend, t_scan, f"{len(trending):,} models with 2+ observations")
    with tempfile.TemporaryDirectory(prefix="views-bench-") as tmp:
        _, t_save = _timed(audit.save, tmp)
        back, t_load = _timed(licences.LicenceAudit.load, tmp)
        _row("LicenceAudit.save (parquet)", t_save, t_audit)
        _row("LicenceAudit.load (what a page would do)", t_load, t_audit)
        _, t_look = _timed(back.model, "TheBloke/Llama-2-7B-GGUF")
        _row("  look-up: one model's verdict and chain", t_look, t_audit)

    for author in index["author"].head(3):
        prof, t = _timed(publishers.publisher_profile, store, author)
        _row(f"publisher_profile({author})", t, t_scan,
             f"{len(prof.models):,} models, family {prof.family_size:,}")
    top5 = q.top_base_models(store, 5)["id"].tolist()
    cmp, t_cmp = _timed(compare.compare_models, store, top5, forecasts=forecast_table)
    _row("compare_models(top 5 base models)", t_cmp, t_scan,
         f"{int(cmp.overview['descendants'].sum()):,} descendants")

    largest = q.top_base_models(store, 1)["id"].iat[0]
    _, t_desc = _timed(q.descendants, store, largest, 10)
    fg, t_fam = _timed(export.family_graph, store, largest)
    _row(f"baseline: descendants({largest})", t_desc)
    _row("family_graph (nodes, all edges inside)", t_fam, t_desc,
         f"{len(fg.nodes):,} nodes, {len(fg.edges):,} edges")
    gml, t_gml = _timed(export.to_graphml, fg)
    js, t_js = _timed(export.to_json, fg)
    _row("to_graphml", t_gml, t_desc, f"{len(gml) / 1e6:.2f} MB")
    _row("to_json", t_js, t_desc, f"{len(js) / 1e6:.2f} MB")

    if args.parquet:
        from graph.parquet_export import export_graph_parquet

        with tempfile.TemporaryDirectory(prefix="views-parquet-") as tmp:
            native, t_nat = _timed(export_graph_parquet, store, Path(tmp) / "native")
            size = sum(f["bytes"] for f in native.files.values())
            _row("parquet export (engine COPY)", t_nat, note=f"{native.rows:,} rows, "
                 f"{size / 1e6:.0f} MB")
            if args.portable:
                _, t_port = _timed(export_graph_parquet, store, Path(tmp) / "portable",
                                   native=False)
                _row("parquet export (portable, paged)", t_port, t_nat)
    store.close()

    if args.write:
        from graph.generations import Generations
        from graph.kuzu_store import KuzuStore

        src = Generations(args.db).current_path()
        with tempfile.TemporaryDirectory(prefix="views-write-") as tmp:
            for f in src.parent.glob(src.name + "*"):
                shutil.copy2(f, Path(tmp) / f.name)
            w = KuzuStore(Path(tmp) / src.name, read_only=False)
            try:
                written, t_w = _timed(licences.write_licence_verdicts, w, audit)
                _row("write_licence_verdicts (staging copy)", t_w, t_audit,
                     f"{written['models']:,} models (clear + set, UNWIND batches)")
                n, t_q = _timed(w.rows, "MATCH (m:Model) WHERE m.licenseVerdict = 'conflict' "
                                "RETURN count(*) AS n")
                _row("  Cypher: count conflicts from the property", t_q, t_audit,
                     f"{n[0]['n']:,}")
                _, t_again = _timed(licences.write_licence_verdicts, w, audit)
                _row("  again over stored verdicts (the next run)", t_again, t_w)
            finally:
                w.close()

    print("\nverdicts (derivatives, links):")
    print(audit.verdict_counts()[["verdict", "models", "edges"]].to_string(index=False))
    cols = ["root", "root_licence", "models", "conflict", "missing", "conflict_share", "worst"]
    print(f"\nfamilies with the most conflicts:\n{audit.top_families(args.top)[cols].to_string()}")
    cols = ["author", "derivatives", "conflict", "missing", "conflict_share", "family_conflicts"]
    print(f"\npublishers with the most conflicts:\n"
          f"{audit.top_publishers(args.top)[cols].to_string()}")
    by_fam = audit.publishers.sort_values("family_conflicts", ascending=False).head(args.top)
    print(f"\npublishers with the most conflicts in their families:\n"
          f"{by_fam[['author', 'family_models', 'family_conflicts']].to_string()}")
    print(f"\ncommonest conflicting licence pairs:\n{audit.transitions(limit=args.top)}")
    llama = "meta-llama/Meta-Llama-3-8B"
    store = open_store(read_only=True, root=args.db)
    try:
        for depth in (2, 10):
            desc = q.descendants(store, llama, depth)
            print(f"\n{llama}: {len(desc):,} descendants to depth {depth}, by verdict:\n"
                  f"{audit.subtree_counts(desc['id']).to_string(index=False)}")
    finally:
        store.close()
    if len(trending):
        cols = ["id", "downloads_before", "downloads_after", "downloads_change",
                "downloads_relative"]
        for kind in ("absolute", "relative"):
            top = trends.top_trending(trending, kind=kind, min_base=1000, limit=args.top)
            print(f"\ntrending ({kind}, min base 1,000):\n{top[cols].to_string()}")
        fall = trends.top_trending(trending, rising=False, min_base=1000, limit=5)
        print(f"\nfalling:\n{fall[cols].to_string()}")
    print(f"\nmost derived-from publishers:\n{index.head(args.top).to_string()}")


if __name__ == "__main__":
    main()
