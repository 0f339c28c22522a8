"""Regenerate tests/data/mini_snapshot/ from ../shared/data (run by hand, output committed).

A few real families (with legacy-id parents, quantized/adapter/merge children, a two-level
chain), the datasets they name, and the tree rows of two 2025 families with typed tags.
"""
import gzip
import json
import random
from pathlib import Path

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
OUT = Path(__file__).resolve().parent / "mini_snapshot"
PARENTS = {"mistralai/Mistral-7B-v0.1", "gpt2", "openai-community/gpt2",
           "distilbert-base-uncased", "distilbert/distilbert-base-uncased",
           "meta-llama/Meta-Llama-3-8B", "meta-llama/Meta-Llama-3-8B-Instruct",
           "stabilityai/stable-diffusion-xl-base-1.0", "unsloth/llama-3-8b-bnb-4bit"}
PER_PARENT = 40


def main() -> None:
    rng = random.Random(7)
    models, children = {}, {p: [] for p in PARENTS}
    with gzip.open(SHARED / "hub-2024-07" / "models.jsonl.gz", "rt") as f:
        for line in f:
            m = json.loads(line)
            if m["id"] in PARENTS:
                models[m["id"]] = m
            for t in m.get("tags", []):
                if t.startswith("base_model:") and t[11:] in PARENTS:
                    children[t[11:]].append(m)
    keep = dict(models)
    for p, kids in children.items():
        for k in rng.sample(kids, min(PER_PARENT, len(kids))):
            keep[k["id"]] = k
    # grandchildren of the kept children, for depth-2 lineage
    kept_ids = set(keep)
    with gzip.open(SHARED / "hub-2024-07" / "models.jsonl.gz", "rt") as f:
        extra = [m for m in map(json.loads, f)
                 if any(t.startswith("base_model:") and t[11:] in kept_ids and t[11:] not in PARENTS
                        for t in m.get("tags", []))]
    for m in extra[:60]:
        keep[m["id"]] = m
    ds_ids = {t[8:] for m in keep.values() for t in m.get("tags", []) if t.startswith("dataset:")}
    datasets = []
    with gzip.open(SHARED / "hub-2024-07" / "datasets.jsonl.gz", "rt") as f:
        for line in f:
            d = json.loads(line)
            if d["id"] in ds_ids or len(datasets) < 30:
                d.pop("citation", None)
                datasets.append(d)
    trees = []
    with gzip.open(SHARED / "trees-2025" / "trees.jsonl.gz", "rt") as f:
        for line in f:
            row = json.loads(line)
            if row["tree_root"] in ("phi-2",) and len(trees) < 60:
                if isinstance(row.get("card"), str):
                    row["card"] = row["card"][:1500]
                trees.append(row)
    OUT.mkdir(exist_ok=True)
    with open(OUT / "models.jsonl", "w") as f:
        for m in keep.values():
            f.write(json.dumps(m) + "\n")
        f.write("{not json at all\n")                       # malformed line
        f.write(json.dumps({"likes": 3}) + "\n")            # missing id
        f.write(json.dumps(["a", "list"]) + "\n")           # not an object
        f.write(json.dumps({"id": "selfish/model", "tags": ["base_model:selfish/model"],
                            "createdAt": "2024-05-01T00:00:00.000Z"}) + "\n")  # self-loop
        f.write(json.dumps({"id": "cyc/a", "tags": ["base_model:cyc/b"]}) + "\n")
        f.write(json.dumps({"id": "cyc/b", "tags": ["base_model:cyc/a"]}) + "\n")
        f.write(json.dumps({"id": "huge/tags", "tags": [f"t{i}" for i in range(2500)],
                            "unknownField": {"x": 1}}) + "\n")
        f.write(json.dumps(next(iter(keep.values()))) + "\n")  # duplicate id
    with open(OUT / "datasets.jsonl", "w") as f:
        for d in datasets:
            f.write(json.dumps(d) + "\n")
    with open(OUT / "trees.jsonl", "w") as f:
        for row in trees:
            f.write(json.dumps(row) + "\n")
    print(len(keep), "models,", len(datasets), "datasets,", len(trees), "tree rows")


if __name__ == "__main__":
    main()
