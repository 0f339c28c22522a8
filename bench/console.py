"""The console's sandbox: what every hostile input gets, latency and the worker's memory.

    python -m bench.console [--db /tmp/console-graph] [--runs 5] [--no-hostile]

1. The hostile corpus of tests/test_console_sandbox.py (by family), through the whole
   console and with the lexical first filter off (engine plan + OS alone): counts per
   outcome (refused by which layer, stopped, killed, engine error). Runs on --db, or on the
   mini graph loaded into a temporary folder when --db holds no graph.
2. Latency of the console's example queries on --db: a warm worker (median and worst of
   --runs), against the same queries on the app's own in-process connection measured in the
   same run (the baseline the sandbox replaces), plus the worker's start-up.
3. Memory: the worker's resident size when ready (idle) and after the examples.

Figures depend on the machine's load: compare the ratios, not the absolute times.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _rss_mb(pid: int) -> float:
    from graph.sandbox import _rss_bytes

    return _rss_bytes(pid) / 2**20


def _mini_graph(folder: Path) -> Path:
    from ingest.run import ingest
    from ingest.sources import SnapshotSource

    ingest(SnapshotSource(REPO / "tests" / "data" / "mini_snapshot"), root=folder)
    return folder


def hostile_table(root: Path) -> list[tuple[str, str, str, str]]:
    from graph.generations import Generations
    from graph.sandbox import ConsoleSandbox, SandboxLimits, SandboxTarget
    from tests.test_console_sandbox import HOSTILE, fill, outcome

    target = SandboxTarget.embedded(Generations(root).current_path())
    limits = SandboxLimits(timeout_s=3.0, max_rss_mb=1024)
    rows = []
    with tempfile.TemporaryDirectory(prefix="console-bench-") as out:
        for mode, precheck in (("console", True), ("engine-only", False)):
            with ConsoleSandbox(target, limits=limits, precheck=precheck) as box:
                for family, name, query in HOSTILE:
                    text = fill(query, ppid=os.getpid(), out=Path(out), graph=Path(target.path))
                    got, _ = outcome(lambda: box.run(text, row_cap=50))
                    rows.append((mode, family, name, got))
                    print(f"  {mode:<12} {family:<12} {got:<32} {name}", flush=True)
        written = list(Path(out).iterdir())
    if written:
        print(f"!! files written: {written}")
    return rows


def print_hostile(rows: list[tuple[str, str, str, str]]) -> None:
    for mode in ("console", "engine-only"):
        sub = [(f, o) for m, f, _, o in rows if m == mode]
        outcomes = sorted({o for _, o in sub})
        families = list(dict.fromkeys(f for f, _ in sub))
        counts = Counter(sub)
        print(f"\n{mode}: {len(sub)} hostile inputs")
        head = f"{'family':<12}{'n':>4}" + "".join(f"  {o}" for o in outcomes)
        print(head)
        print("-" * len(head))
        for fam in families + ["total"]:
            cells = [sum(counts[(f, o)] for f in families) if fam == "total" else counts[(fam, o)]
                     for o in outcomes]
            print(f"{fam:<12}{sum(cells):>4}" + "".join(f"  {c:>{len(o)}}" for c, o in
                                                        zip(cells, outcomes)))
        rows_back = [n for m, _, n, o in rows if m == mode and o == "ROWS"]
        print(f"returned rows: {len(rows_back)} {rows_back}")


def latency(root: Path, runs: int) -> None:
    from graph.generations import Generations
    from graph.kuzu_store import KuzuStore
    from graph.readonly import EXAMPLES
    from graph.sandbox import ConsoleSandbox, SandboxTarget

    path = Generations(root).current_path()
    t0 = time.perf_counter()
    box = ConsoleSandbox(SandboxTarget.embedded(path))
    ready = box.start()
    start_s = time.perf_counter() - t0
    pid = box.workers()[0]
    idle_mb = _rss_mb(pid)
    print(f"\nworker: {ready['engine']}; {ready['isolation']}")
    print(f"worker start-up (spawn to ready, graph opened): {start_s:.2f} s; "
          f"resident when ready: {idle_mb:.0f} MB")
    store = KuzuStore(path, read_only=True)
    print(f"\n{'query':<40}{'sandbox median':>16}{'worst':>8}{'in-process':>12}{'ratio':>7}")
    try:
        first = None
        for name, query in EXAMPLES.items():
            sand, base = [], []
            for i in range(runs + 1):  # run 0 warms both (buffer pool, OS cache)
                t = time.perf_counter()
                box.run(query, row_cap=1000)
                dt_s = time.perf_counter() - t
                if first is None:
                    first = dt_s
                t = time.perf_counter()
                store.frame(query)
                dt_b = time.perf_counter() - t
                if i:
                    sand.append(dt_s)
                    base.append(dt_b)
            ms, mb = statistics.median(sand), statistics.median(base)
            print(f"{name:<40}{ms * 1000:>13.0f} ms{max(sand) * 1000:>6.0f} ms"
                  f"{mb * 1000:>9.0f} ms{ms / mb:>7.2f}")
        t = time.perf_counter()
        box.run("RETURN 1 AS x")
        trivial = time.perf_counter() - t
        print(f"first query on the cold worker: {first * 1000:.0f} ms; "
              f"RETURN 1 (round trip + EXPLAIN check): {trivial * 1000:.0f} ms")
        print(f"worker resident after the examples: {_rss_mb(pid):.0f} MB "
              f"(idle {idle_mb:.0f} MB; workers are recycled beyond +256 MB)")
    finally:
        store.close()
        box.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", type=Path, default=Path(os.environ.get("HUBATLAS_DB",
                                                                   "/tmp/console-graph")))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-hostile", action="store_true")
    args = ap.parse_args(argv)
    from graph.generations import Generations

    with tempfile.TemporaryDirectory(prefix="console-bench-mini-") as tmp:
        root = args.db
        if Generations(root).current_path() is None:
            print(f"no graph in {root}: using the mini graph (tests/data/mini_snapshot)")
            root = _mini_graph(Path(tmp) / "graph")
        if not args.no_hostile:
            print_hostile(hostile_table(root))
        latency(root, args.runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
