"""Benchmark: full snapshot ingest vs the engine's own raw bulk load of the same rows.

    python -m bench.ingest [--snapshot ../shared/data/hub-2024-07] [--keep DIR]
                           [--record-by-record]

1. `python -m ingest run --snapshot … --no-analytics` into a fresh folder, in a child process:
   wall time (process start to exit: imports, reading, checks, typing, writing, publishing),
   records/s, peak RSS (the child's ru_maxrss), CPU seconds (its typing child's included),
   phase times from the run report. The derived results the scheduled job refreshes after a
   load are not part of it (`bench.views` times them).
2. The graph it produced is exported to Parquet (not timed), then loaded into a fresh database
   of the same engine (`HUBATLAS_ENGINE`) with plain `COPY … FROM '*.parquet'` (timed, wall
   and CPU): the baseline the goal compares with: the same rows, nothing to read, check or
   derive. The ingest's CPU seconds over the usable cores bound its wall time from below:
   printed as a ratio too, the part of the gap no overlap can close.
3. With `--record-by-record`, the reference path (`ingest run --record-by-record`) too, into
   another fresh folder: its time, and whether its counts, rejects and lineage report equal
   the columnar run's.
Goal: full snapshot < 3 min, within 2x of the raw bulk load.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from analytics.embeddings import usable_cpus

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SNAPSHOT = REPO.parent / "shared" / "data" / "hub-2024-07"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_ingest(snapshot: Path, db: Path, *flags: str) -> tuple[dict, float, float, float]:
    """The run's report, wall seconds, peak MB and CPU seconds (its typing child's too)."""
    env = {**os.environ, "HUBATLAS_DB": str(db)}
    env.pop("NEO4J_URI", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    cpu = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "ingest", "run", "--snapshot", str(snapshot),
                           "--no-analytics", *flags, "--json"], cwd=REPO, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"ingest failed:\n{proc.stderr[-3000:]}")
    # ru_maxrss of children is the largest child so far: only meaningful for the first run
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return (json.loads(proc.stdout), wall, peak_mb if peak_mb * 1024 > before else float("nan"),
            _children_cpu() - cpu)


#: what two runs of the same data must agree on
SAME = ("read", "loaded", "skipped", "rejects", "lineage", "counts", "watermark")


def raw_bulk_load(graph_file: Path, work: Path) -> tuple[float, float, int]:
    """Seconds and CPU seconds of the engine's COPY of the exported graph; its node count."""
    from graph.store import open_embedded

    exported = work / "parquet"
    src = open_embedded(graph_file, read_only=True)
    src.export_parquet(exported)
    src.close()
    start, cpu = time.perf_counter(), time.process_time()
    dst = open_embedded(work / "raw.kuzu", read_only=False)
    dst.import_parquet(exported)
    dst.checkpoint()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    n = dst.node_count()
    dst.close()
    return elapsed, cpu, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshot", type=Path, default=DEFAULT_SNAPSHOT)
    parser.add_argument("--keep", type=Path, default=None, help="keep the built graph here")
    parser.add_argument("--record-by-record", action="store_true",
                        help="also time the reference record-by-record path and compare")
    args = parser.parse_args()
    if not args.snapshot.exists():
        print(f"skip: snapshot not found at {args.snapshot}")
        return
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    db = args.keep or work / "db"
    if db.exists():
        shutil.rmtree(db)
    try:
        report, wall, peak_mb, cpu = run_ingest(args.snapshot, db)
        from graph.generations import Generations

        raw_s, raw_cpu, raw_nodes = raw_bulk_load(Generations(db).current_path(), work)
        nodes = report["counts"]["nodes"]
        rels = report["counts"]["rels"]
        total_rows = sum(v for k, v in nodes.items() if "(stub)" not in k) + sum(rels.values())
        from graph.engine import engine

        print(f"snapshot: {args.snapshot}; engine: {engine().describe()}")
        print(f"records read: {report['read']:,}; loaded: {report['loaded']}")
        print(f"graph: {total_rows:,} rows ({sum(rels.values()):,} relations); "
              f"models {nodes['Model'] - nodes['Model (stub)']:,} (+{nodes['Model (stub)']:,} stub "
              f"parents), datasets {nodes['Dataset'] - nodes['Dataset (stub)']:,}")
        lineage = sum(rels[r] for r in ("FINETUNE_OF", "ADAPTER_OF", "QUANTIZED_OF", "MERGE_OF",
                                        "DERIVED_FROM"))
        print(f"lineage edges: {lineage:,}; parents resolved: "
              f"{report['lineage']['parents_resolved_share']:.1%}")
        print()
        print(f"{'path':<34}{'seconds':>9}{'records/s':>12}{'rows/s':>12}{'peak MB':>9}"
              f"{'CPU-s':>8}")
        print(f"{'hub-atlas ingest (end to end)':<34}{wall:>9.1f}{report['read'] / wall:>12,.0f}"
              f"{total_rows / wall:>12,.0f}{peak_mb:>9,.0f}{cpu:>8.1f}")
        print(f"{'  phases: ' + ', '.join(f'{k} {v}s' for k, v in report['phases'].items()):<34}")
        raw_name = f"{engine().name} COPY from parquet (raw)"
        print(f"{raw_name:<34}{raw_s:>9.1f}{'':>12}{total_rows / raw_s:>12,.0f}{'':>9}"
              f"{raw_cpu:>8.1f}")
        print()
        print(f"ratio ingest / raw bulk load: {wall / raw_s:.2f}x  (goal: <= 2x); "
              f"full snapshot in {wall / 60:.1f} min (goal: < 3 min)")
        cores = usable_cpus()  # the affinity mask, capped by a cgroup CPU quota
        print(f"CPU time: ingest {cpu:.1f} s vs raw {raw_cpu:.1f} s; on {cores} cores the ingest's "
              f"work takes at least {cpu / cores:.1f} s = {cpu / cores / raw_s:.2f}x the raw load")
        print(f"raw load holds {raw_nodes:,} nodes (same graph)")
        if args.record_by_record:
            ref, ref_wall, _, _ = run_ingest(args.snapshot, work / "ref", "--record-by-record")
            same = [k for k in SAME if ref[k] == report[k]]
            differ = [k for k in SAME if ref[k] != report[k]]
            print(f"{'record-by-record ingest (reference)':<34}{ref_wall:>9.1f}"
                  f"{ref['read'] / ref_wall:>12,.0f}{total_rows / ref_wall:>12,.0f}")
            print(f"  phases: {', '.join(f'{k} {v}s' for k, v in ref['phases'].items())}")
            print(f"ratio record-by-record / raw bulk load: {ref_wall / raw_s:.2f}x; "
                  f"columnar speed-up {ref_wall / wall:.2f}x")
            print(f"same {', '.join(same)}" + (f"; DIFFERENT: {', '.join(differ)}" if differ
                                                  else " (all)"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
