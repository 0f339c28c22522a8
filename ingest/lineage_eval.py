"""How well does `infer_relation` guess the relation type the Hub would record?

Ground truth comes from the 2025 model trees (`trees-2025`): each row lists the model's
children by type as the Hub's model tree showed them (children = finetunes, adapters,
quantized, merges), and rows themselves carry typed `base_model:<rel>:` tags. The guess is
made from the child's own metadata with the types hidden: from its 2025 record where the crawl
has one, else from its July-2024 listing record (which only had untyped tags).
"""
from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from pathlib import Path
from typing import Iterable

from ingest.errors import RecordError
from ingest.lineage import _TYPED, infer_relation
from ingest.records import ModelRecord
from ingest.sources import SnapshotSource

_TREE_LISTS = {"children": "finetune", "adapters": "adapter", "quantized": "quantized",
               "merges": "merge"}
_REPO_ID = re.compile(r"(?:huggingface\.co/)?([\w.\-]+/[\w.\-]+)")


def _repo_id(value) -> str | None:
    """Ids in the tree lists come plain (`org/x`), as URLs, or as fragments of a list repr."""
    match = _REPO_ID.search(str(value).replace("https://", "").strip("[]'\" "))
    return match.group(1) if match else None


def tree_truth(trees_file: Path) -> dict[tuple[str, str], str]:
    """(child, parent) → relation, from the typed child lists of every tree row."""
    truth: dict[tuple[str, str], str] = {}
    with gzip.open(trees_file, "rt") as fh:
        for line in fh:
            row = json.loads(line)
            parent_id = _repo_id(row.get("model_id"))
            for key, rel in _TREE_LISTS.items():
                items = row.get(key) or []
                for child in map(_repo_id, items if isinstance(items, list) else [items]):
                    if child and parent_id:
                        truth.setdefault((child, parent_id), rel)
    return truth


def _hidden_guess(rec: ModelRecord, n_parents: int) -> str:
    plain = [t for t in rec.tags
             if not (t.startswith("base_model:") and t.split(":")[1] in _TYPED and t.count(":") >= 2)]
    return infer_relation(rec.id, plain, n_parents, library=rec.library)


def evaluate(truth: dict[tuple[str, str], str], records: Iterable[ModelRecord]) -> dict:
    """Accuracy and per-relation precision/recall of the inference against `truth`."""
    by_child: dict[str, list[str]] = {}
    for (child, _parent), rel in truth.items():
        by_child.setdefault(child, []).append(rel)
    confusion: Counter = Counter()
    for rec in records:
        rels = by_child.pop(rec.id, None)
        if rels is None:
            continue
        n_parents = max(len(rec.base_models), 1)
        guess = _hidden_guess(rec, n_parents)
        for rel in rels:
            confusion[(rel, guess)] += 1
    total = sum(confusion.values())
    correct = sum(n for (t, g), n in confusion.items() if t == g)
    majority = max((sum(n for (t, _), n in confusion.items() if t == r) for r in _TYPED), default=0)
    per = {}
    for rel in sorted(_TYPED):
        tp = confusion[(rel, rel)]
        pred = sum(n for (_, g), n in confusion.items() if g == rel)
        true = sum(n for (t, _), n in confusion.items() if t == rel)
        per[rel] = {"support": true, "precision": round(tp / pred, 3) if pred else None,
                    "recall": round(tp / true, 3) if true else None}
    return {"links": total, "accuracy": round(correct / total, 4) if total else None,
            "majority_baseline": round(majority / total, 4) if total else None,
            "per_relation": per,
            "confusion": {f"{t}->{g}": n for (t, g), n in sorted(confusion.items())}}


def measure(trees_dir: Path, snapshot_dir: Path | None = None) -> dict:
    """Truth from trees; child metadata from the trees rows, then from the July 2024 listing."""
    truth = tree_truth(Path(trees_dir) / "trees.jsonl.gz")
    dirs = [Path(trees_dir)] + ([Path(snapshot_dir)] if snapshot_dir else [])
    records: dict[str, ModelRecord] = {}
    for item in SnapshotSource(*dirs).iter_items():
        if item.kind != "model" or not isinstance(item.data, dict):
            continue
        try:
            rec = ModelRecord.from_api(item.data)
        except RecordError:
            continue
        records.setdefault(rec.id, rec)  # trees rows first: the 2025 metadata wins
    return evaluate(truth, records.values())
