"""Rebuild the hub_pages fixture from the recorded Hub data in ../shared/data/hub-2024-07.

    python tests/data/hub_pages/make_fixture.py [/path/to/shared/data]

Deterministic (fixed seed). Real records, trimmed so the fixture stays small:
- models: `GET /api/models/{id}` records from model_info.jsonl.gz; `config`, `widgetData`,
  `transformersInfo`, `model-index` and `inferenceStatus` dropped, `cardData` without its bulky
  `model-index`/`widget` keys, `siblings` cut to 6 files (an `adapter_config.json` is always kept),
  `spaces` cut to 5 ids. Every other field is as recorded.
- datasets: `GET /api/datasets` list items from datasets.jsonl.gz; `description` and `citation`
  cut to 300 characters.
- spaces and papers are made up (spaces.json, papers.json are hand-written, not generated).
"""
from __future__ import annotations

import gzip
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DROP_MODEL_KEYS = {"config", "widgetData", "transformersInfo", "model-index", "inferenceStatus"}
DROP_CARD_KEYS = {"model-index", "model_index", "widget"}
N_CHILDREN_WITH_PARENT = 60
N_OTHER_CHILDREN = 70
N_PLAIN = 90
N_DATASETS = 120


def _read(path: Path):
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def _trim_model(r: dict) -> dict:
    out = {k: v for k, v in r.items() if k not in DROP_MODEL_KEYS}
    if isinstance(out.get("cardData"), dict):
        out["cardData"] = {k: v for k, v in out["cardData"].items() if k not in DROP_CARD_KEYS}
    sib = out.get("siblings") or []
    keep = [s for s in sib if "adapter_config.json" in str(s.get("rfilename"))]
    out["siblings"] = (keep + [s for s in sib if s not in keep])[:6]
    if isinstance(out.get("spaces"), list):
        out["spaces"] = out["spaces"][:5]
    return out


def _write_jsonl(path: Path, rows: list) -> None:
    # plain JSON lines (not .gz): a small hand-picked fixture, byte-identical on every rebuild
    data = "".join(json.dumps(r, ensure_ascii=False, sort_keys=False) + "\n" for r in rows)
    path.write_text(data, encoding="utf-8")


def main(shared: Path) -> None:
    rng = random.Random(20240711)
    src = shared / "hub-2024-07"
    infos = list(_read(src / "model_info.jsonl.gz"))
    by_id = {r["id"]: r for r in infos}

    def parents(r):
        return [t.split(":", 1)[1] for t in r.get("tags", []) if t.startswith("base_model:")]

    children = [r for r in infos if parents(r)]
    plain = [r for r in infos if not parents(r)]
    with_parent = [r for r in children if any(p in by_id and p != r["id"] for p in parents(r))]
    picked: dict[str, dict] = {}
    for r in rng.sample(with_parent, N_CHILDREN_WITH_PARENT):
        picked[r["id"]] = r
        for p in parents(r):
            if p in by_id:
                picked.setdefault(p, by_id[p])
    others = [r for r in children if r["id"] not in picked]
    for r in rng.sample(others, N_OTHER_CHILDREN):
        picked[r["id"]] = r
    for r in rng.sample([r for r in plain if r["id"] not in picked], N_PLAIN):
        picked[r["id"]] = r
    models = sorted((_trim_model(r) for r in picked.values()),
                    key=lambda r: (-int(r.get("downloads") or 0), r["id"]))

    # Datasets: a fixed-stride sample over the whole recording.
    datasets = []
    for i, d in enumerate(_read(src / "datasets.jsonl.gz")):
        if i % 1400 == 7 and len(datasets) < N_DATASETS:
            d = dict(d)
            for k in ("description", "citation"):
                if isinstance(d.get(k), str):
                    d[k] = d[k][:300]
            datasets.append(d)
    _write_jsonl(HERE / "models.jsonl", models)
    _write_jsonl(HERE / "datasets.jsonl", datasets)
    print(f"models={len(models)} datasets={len(datasets)}")


if __name__ == "__main__":
    default = Path(__file__).resolve().parents[3].parent / "shared" / "data"
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
