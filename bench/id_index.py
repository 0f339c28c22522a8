"""Type-ahead index speed: `analytics.id_index.ModelIdIndex` against a plain-Python scan of
the same ids, in the same run (the timing that used to be an assertion in the tests).

    python -m bench.id_index [--n 760000]

Uses the real model ids of ../shared/data/hub-2024-07 when present, else synthetic ones.
"""
from __future__ import annotations

import argparse
import gzip
import time
from pathlib import Path

import orjson

from analytics.id_index import ModelIdIndex

SNAPSHOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hub-2024-07"
QUERIES = ("llama", "gpt2", "bert-base", "b", "stable-diffusion-xl", "nothing-here-at-all")


def load_ids(n: int) -> tuple[list[str], list[int], str]:
    path = SNAPSHOT / "models.jsonl.gz"
    if path.exists():
        ids, downloads = [], []
        with gzip.open(path, "rb") as fh:
            for line in fh:
                d = orjson.loads(line)
                ids.append(d["id"])
                downloads.append(int(d.get("downloads") or 0))
                if len(ids) >= n:
                    break
        return ids, downloads, str(path)
    ids = [f"org{i % 5000}/model-{i}-{'llama' if i % 7 == 0 else 'bert'}" for i in range(n)]
    return ids, list(range(n)), "synthetic"


def naive_search(ids, downloads, text, limit=50):
    t = text.lower()

    def rank(i):
        lo, name = i.lower(), i.lower().split("/", 1)[-1]
        return (0 if lo == t else 1 if name == t else 2 if lo.startswith(t) else
                3 if name.startswith(t) else 4)

    hits = [(rank(i), -d, i) for i, d in zip(ids, downloads) if t in i.lower()]
    return [i for _, _, i in sorted(hits)[:limit]]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=760_000)
    args = ap.parse_args(argv)
    ids, downloads, origin = load_ids(args.n)
    t = time.perf_counter()
    index = ModelIdIndex(ids, downloads)
    build = time.perf_counter() - t
    print(f"{len(ids):,} ids from {origin}; index build {build:.2f} s")
    print(f"{'query':<22} {'index ms':>9} {'naive ms':>9} {'speed-up':>9}")
    for text in QUERIES:
        t = time.perf_counter()
        got = index.search(text)
        fast = time.perf_counter() - t
        t = time.perf_counter()
        want = naive_search(ids, downloads, text)
        slow = time.perf_counter() - t
        same = "" if got[:1] == want[:1] else "  (first hit differs)"
        print(f"{text:<22} {fast * 1e3:9.1f} {slow * 1e3:9.1f} {slow / max(fast, 1e-9):8.1f}x{same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
