"""Benchmark: lineage reads of the largest families on the full graph, against the engine's own
recursive query in the same run.

    HUBATLAS_DB=/path/to/graph python -m bench.lineage [--repeat 30] [--families 3]

For each of the largest families (by descendants within 10 levels) it times, p50/p95 over
`--repeat` calls:
- `graph.queries` as the app calls it on a read-only generation (the in-memory lineage index):
  `ancestors` of the family's deepest descendant, `descendants(…, max_depth=10)`,
  `family_size`, `descendant_counts`;
- the engine's raw recursive match for the same answers (`[:FINETUNE_OF|…*1..10]`, shortest
  depth per model; count of distinct descendants), the baseline of the ratio;
- the previous implementation (one variable-length match plus a one-hop join) and the
  level-by-level `UNWIND $frontier` walk that stores without an index (Neo4j, a writable
  staging copy) use, with fewer repeats and no warm-up (`--slow-repeat`): they take seconds.
It also times the index's cold start: reading it from the graph, and loading it saved.
Every answer is checked against the raw query (same ids, same depths). Goal: p95 < 50 ms.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from graph import queries as q
from graph.lineage_index import LineageIndex
from graph.store import GraphStore, db_root, open_store

GOAL_MS = 50.0


class WithoutIndex:
    """The same store with no lineage index: `graph.queries` falls back to its Cypher walk."""

    def __init__(self, store: GraphStore):
        self._store = store
        self.dialect = store.dialect
        self.read_only = store.read_only

    def frame(self, query: str, params: dict[str, Any] | None = None):
        return self._store.frame(query, params)

    def rows(self, query: str, params: dict[str, Any] | None = None):
        return self._store.rows(query, params)


def timed(fn: Callable[[], Any], repeat: int, *, warm: bool = True
          ) -> tuple[float, float, Any]:
    """(p50 ms, p95 ms, last result) over `repeat` calls (after one warm-up call if `warm`)."""
    result = fn() if warm else None
    xs = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        xs.append((time.perf_counter() - start) * 1000)
    return statistics.median(xs), float(np.percentile(xs, 95)), result


# -- the engine's own recursive queries and the previous implementation ----------------------
def raw_descendants(store: GraphStore, model: str) -> dict[str, int]:
    df = store.frame(f"MATCH p = (c:Model)-[:{q.LINEAGE_TYPES}*1..10]->(m:Model {{id: $id}}) "
                     "RETURN c.id AS id, min(length(p)) AS depth", {"id": model})
    return dict(zip(df["id"], df["depth"]))


def raw_ancestors(store: GraphStore, model: str) -> dict[str, int]:
    df = store.frame(f"MATCH p = (c:Model {{id: $id}})-[:{q.LINEAGE_TYPES}*1..10]->(m:Model) "
                     "RETURN m.id AS id, min(length(p)) AS depth", {"id": model})
    return dict(zip(df["id"], df["depth"]))


def raw_family_size(store: GraphStore, model: str) -> int:
    return int(store.rows(f"MATCH (c:Model)-[:{q.LINEAGE_TYPES}*1..10]->(m:Model {{id: $id}}) "
                          "RETURN count(DISTINCT c) AS n", {"id": model})[0]["n"])


def previous_descendants(store: GraphStore, model: str) -> int:
    """The query `descendants` ran before the index (its pandas tail left out)."""
    d = store.dialect
    cols = q._MODEL_COLS.replace("m.", "c.")
    df = store.frame(
        f"MATCH p = (c:Model)-[:{q.LINEAGE_TYPES}*1..10]->(root:Model {{id: $id}}) "
        f"WITH c, min(length(p)) AS depth MATCH (c)-[e:{q.LINEAGE_TYPES}]->(parent:Model) "
        f"RETURN {cols}, depth, {d.rel_type('e')} AS rel, parent.id AS parent", {"id": model})
    return df["id"].nunique()


def previous_ancestors(store: GraphStore, model: str) -> int:
    """The path query `ancestors` ran before the index (Kùzu dialect)."""
    df = store.frame(
        f"MATCH p = (c:Model {{id: $id}})-[:{q.LINEAGE_TYPES}*1..10]->(m:Model) "
        "RETURN m.id AS id, length(p) AS depth, list_transform(rels(p), x -> label(x)) AS rels, "
        "list_transform(nodes(p), x -> x.id) AS nodes", {"id": model})
    return df["id"].nunique()


# -- the run ---------------------------------------------------------------------------------
def largest_families(index: LineageIndex, n: int) -> list[tuple[str, int, str]]:
    """(root, family size within 10 levels, its deepest descendant) of the n largest."""
    children = np.bincount(index.parent, minlength=len(index))
    candidates = np.argsort(-children)[:100]
    sizes = [(len(index.walk(int(c), 10, up=False)), int(c)) for c in candidates]
    out = []
    for size, node in sorted(sizes, reverse=True)[:n]:
        walk = index.walk(node, 10, up=False)
        last = walk.depth == walk.depth.max()
        deepest = index.ids[walk.node[last]].min()
        out.append((str(index.ids[node]), size, str(deepest)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=None, help="graph folder (HUBATLAS_DB)")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--slow-repeat", type=int, default=2,
                        help="repeats of the previous implementation and the Cypher walk")
    parser.add_argument("--families", type=int, default=3)
    parser.add_argument("--no-walk", action="store_true", help="skip the level-by-level walk")
    args = parser.parse_args()
    store = open_store(read_only=True, root=args.db or db_root())
    engine = getattr(store, "engine", None)
    print(f"graph: {args.db or db_root()}; backend: "
          f"{engine.describe() if engine else store.dialect.name}")

    start = time.perf_counter()
    index = LineageIndex.build(store)
    build_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory(prefix="bench-lineage-") as tmp:
        index.save(Path(tmp))
        start = time.perf_counter()
        LineageIndex.load(Path(tmp))
        load_s = time.perf_counter() - start
    start = time.perf_counter()
    store.lineage_index()  # what the app's first lineage request pays (saved index or build)
    first_s = time.perf_counter() - start
    print(f"lineage index: {len(index):,} models, {len(index.child):,} edges; read from the "
          f"graph in {build_s:.2f} s, loaded from its saved files in {load_s:.2f} s "
          f"(first use in this store: {first_s:.2f} s)")
    families = largest_families(index, args.families)
    print("families: " + "; ".join(f"{m} ({n:,}, deepest {d})" for m, n, d in families))
    print()
    head = f"{'family':<42}{'query':<19}{'method':<26}{'p50 ms':>9}{'p95 ms':>9}{'raw/new':>9}"
    print(head)
    print("-" * len(head))
    worst: dict[str, float] = {}
    slow = WithoutIndex(store)
    for model, size, deepest in families:
        name = model if len(model) < 41 else model[:38] + "…"
        checks = {
            "ancestors": (lambda: q.ancestors(store, deepest),
                          lambda: raw_ancestors(store, deepest),
                          lambda r: dict(zip(r["id"], r["depth"])),
                          [("previous (path lists)", lambda: previous_ancestors(store, deepest)),
                           ("cypher level walk", lambda: q.ancestors(slow, deepest))]),
            "descendants d10": (lambda: q.descendants(store, model, 10),
                                lambda: raw_descendants(store, model),
                                lambda r: dict(zip(r["id"], r["depth"])),
                                [("previous (var-length+hop)",
                                  lambda: previous_descendants(store, model)),
                                 ("cypher level walk", lambda: q.descendants(slow, model, 10))]),
            "family_size": (lambda: q.family_size(store, model),
                            lambda: raw_family_size(store, model), lambda r: r,
                            [("cypher level walk", lambda: q.family_size(slow, model))]),
            "descendant_counts": (lambda: q.descendant_counts(store, model),
                                  lambda: q.descendant_counts(slow, model), lambda r: r, []),
        }
        for query, (new, raw, key, others) in checks.items():
            p50, p95, got = timed(new, args.repeat)
            r50, r95, want = timed(raw, max(3, args.repeat // 5))
            assert key(got) == want, f"{query} of {model}: index and engine disagree"
            worst[query] = max(worst.get(query, 0.0), p95)
            raw_name = "one-hop query" if query == "descendant_counts" else "raw recursive match"
            ratio = r95 / p95
            print(f"{name:<42}{query:<19}{'graph.queries (index)':<26}{p50:>9.1f}{p95:>9.1f}"
                  f"{ratio:>8.{0 if ratio >= 10 else 1}f}x")
            print(f"{'':<42}{'':<19}{raw_name:<26}{r50:>9.1f}{r95:>9.1f}")
            for label, fn in others:
                if args.no_walk and "walk" in label:
                    continue
                o50, o95, _ = timed(fn, args.slow_repeat, warm=False)
                print(f"{'':<42}{'':<19}{label:<26}{o50:>9.1f}{o95:>9.1f}")
    print()
    for query, p95 in worst.items():
        verdict = "met" if p95 < GOAL_MS else "NOT met"
        print(f"{query:<19} worst p95 {p95:7.1f} ms (goal < {GOAL_MS:.0f} ms: {verdict})")
    print("answers: identical ids and shortest depths to the raw recursive match")
    store.close()


if __name__ == "__main__":
    main()
