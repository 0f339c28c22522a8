"""How well is the relation type of a `base_model` link guessed, on families never seen?

Ground truth is every typed link available:
- the Hub's model trees (`trees-2025`): each row lists the model's children by type
  (`children` = finetunes, `adapters`, `quantized`, `merges`);
- relations recorded on the records themselves: typed `base_model:<rel>:` tags,
  `cardData.base_model_relation`, the API's `baseModels`.

Each labelled link gets its child's record with every recorded type hidden (typed tags become
untyped ones, the card relation and `baseModels` relations are dropped), in two shapes: as
crawled (`full`: 2025 records with files) and stripped to what a July-2024 listing item holds
(`listing`: id, tags, library, pipeline tag). Families are the connected components of the
labelled links (a tree root and everything linked to it); `evaluate` runs a family-grouped
K-fold, so every figure comes from families the learnt model never saw, and prints the
learnt typing beside the current rules, a naive id/tag rule and the majority class.
"""
from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from ingest.errors import RecordError
from ingest.lineage import _TYPED, infer_relation, normalise_id, parse_api_base_models
from ingest.records import MODEL_FIELDS, ModelRecord, _read
from ingest.relation_features import RELATION_CLASSES, author_habits, link_frame, untyped_tags
from ingest.sources import SnapshotSource

_TREE_LISTS = {"children": "finetune", "adapters": "adapter", "quantized": "quantized",
               "merges": "merge"}
_REPO_ID = re.compile(r"(?:huggingface\.co/)?([\w.\-]+/[\w.\-]+)")
_LISTING_KEYS = ("_id", "id", "modelId", "author", "likes", "downloads", "tags", "pipeline_tag",
                 "library_name", "createdAt", "created_at", "private")
_NAIVE_QUANT = re.compile(r"gguf|gptq|awq|exl2|ggml|\d-?bit|int[48]|q[2-8]_k", re.I)


def _repo_id(value) -> str | None:
    """Ids in the tree lists come plain (`org/x`), as URLs, or as fragments of a list repr."""
    match = _REPO_ID.search(str(value).replace("https://", "").strip("[]'\" "))
    return match.group(1) if match else None


def tree_truth(trees_file: Path) -> dict[tuple[str, str], tuple[str, str]]:
    """(child, parent) → (relation, tree root), from the typed child lists of every tree row."""
    truth: dict[tuple[str, str], tuple[str, str]] = {}
    with gzip.open(trees_file, "rt") as fh:
        for line in fh:
            row = json.loads(line)
            parent_id = _repo_id(row.get("model_id"))
            root = str(row.get("tree_root") or parent_id)
            for key, rel in _TREE_LISTS.items():
                items = row.get(key) or []
                for child in map(_repo_id, items if isinstance(items, list) else [items]):
                    if child and parent_id:
                        truth.setdefault((child, parent_id), (rel, root))
    return truth


def hide_recorded(d: dict) -> dict:
    """The record as if the Hub had recorded no relation type: typed `base_model:<rel>:` tags
    become untyped tags, `base_model_relation` and the `baseModels` relations are dropped
    (their parents stay, as untyped tags)."""
    out = dict(d)
    tags = [t for t in (d.get("tags") or []) if isinstance(t, str)]
    parents = [t.split(":", 2)[2] for t in tags
               if t.startswith("base_model:") and t.count(":") >= 2 and t.split(":")[1] in _TYPED]
    parents += [p for p, _ in parse_api_base_models(d.get("baseModels") or d.get("base_models"))]
    plain = list(untyped_tags(tags))
    have = {t[len("base_model:"):] for t in plain if t.startswith("base_model:")}
    plain += [f"base_model:{p}" for p in dict.fromkeys(parents) if p not in have]
    out["tags"] = plain
    out.pop("baseModels", None)
    out.pop("base_models", None)
    for key in ("cardData", "card_data"):
        card = d.get(key)
        if isinstance(card, dict):
            out[key] = {k: v for k, v in card.items() if k != "base_model_relation"}
        elif isinstance(card, str):
            out[key] = "\n".join(line for line in card.splitlines()
                                 if not line.startswith("base_model_relation"))
    return out


def listing_shape(d: dict) -> dict:
    """Only what a `GET /api/models` listing item of July 2024 holds."""
    return {k: d[k] for k in _LISTING_KEYS if k in d}


def recorded_truth(records: Iterable[ModelRecord]) -> dict[tuple[str, str], str]:
    """(child, parent) → relation, for every link whose relation the record states."""
    out: dict[tuple[str, str], str] = {}
    for r in records:
        for b in r.base_models:
            if not b.inferred and b.relation in _TYPED:
                out.setdefault((r.id, b.parent), b.relation)
    return out


class _Families:
    """Union-find over ids: the family of a link is its component's tree root (else an id)."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.root_name: dict[str, str] = {}

    def find(self, x: str) -> str:
        p = self.parent.setdefault(x, x)
        while p != self.parent[p]:
            self.parent[p] = self.parent[self.parent[p]]
            p = self.parent[p]
        self.parent[x] = p
        return p

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[ra] = rb
            if ra in self.root_name:
                self.root_name.setdefault(rb, self.root_name[ra])

    def name(self, x: str) -> str:
        r = self.find(x)
        return self.root_name.get(r, r)


@dataclass
class LabelledLinks:
    """Every labelled link, featurisable: both input shapes share `y` and `family`."""

    full: pd.DataFrame        # link frame, child records as crawled (typed info hidden)
    listing: pd.DataFrame     # the same links, child records stripped to listing fields
    y: np.ndarray             # relation per link
    family: np.ndarray        # family (component) per link
    truth_source: np.ndarray  # "tree" (model-tree lists) or "record" (tags/card/API)
    habits: pd.DataFrame      # author habits over every model record read
    counts: dict = field(default_factory=dict)


def _link_row(d: dict, parent: str) -> pd.DataFrame | None:
    """The link frame row of `parent` for the (hidden) record `d`; the parent is added as an
    untyped tag when the record does not name it (so the link exists to be typed)."""
    tags = list(d.get("tags") or [])
    named = {normalise_id(t[len("base_model:"):]).lower() for t in tags
             if t.startswith("base_model:")}
    if parent.lower() not in named:
        d = {**d, "tags": tags + [f"base_model:{parent}"]}
    try:
        rec = ModelRecord.from_api(d)
    except RecordError:
        return None
    frame = link_frame([rec])
    frame = frame[frame["parent"].str.lower() == parent.lower()]
    return frame.head(1) if len(frame) else None


#: the fields `author_habits` reads, checked as `ModelRecord.from_api` checks them
_HABIT_FIELDS = tuple(f for f in MODEL_FIELDS if f.name in ("author", "tags", "library_name"))


def _may_state_relation(d: dict) -> bool:
    """Whether a raw model record could state a relation (a typed `base_model:<relation>:`
    tag, a card's base_model, or the API's baseModels): only those need the full parse."""
    card = d.get("cardData")
    if d.get("baseModels") or (card and (not isinstance(card, dict) or card.get("base_model"))):
        return True
    tags = d.get("tags")
    if not isinstance(tags, list):
        return True  # let the full parse judge it
    return any(isinstance(t, str) and t.startswith("base_model:") and t.count(":") >= 2
               for t in tags)


def labelled_links(trees_dir: Path, snapshot_dirs: Iterable[Path] = ()) -> LabelledLinks:
    """Read the trees and snapshots once; assemble the labelled links in both shapes."""
    trees_dir = Path(trees_dir)
    tree = tree_truth(trees_dir / "trees.jsonl.gz")
    children_in_tree = {c for c, _ in tree}
    raw: dict[str, dict] = {}
    habit_rows = []
    recorded: dict[tuple[str, str], str] = {}
    families = _Families()
    for item in SnapshotSource(trees_dir, *snapshot_dirs).iter_items():
        d = item.data
        if item.kind != "model" or not isinstance(d, dict):
            continue
        if not _may_state_relation(d):
            # most records: only the habit columns, read by the same field checks
            try:
                rid, v, _ = _read(d, "model", _HABIT_FIELDS)
            except RecordError:
                continue
            if rid not in children_in_tree:
                habit_rows.append((rid, v["author"], tuple(v["tags"] or ()), v["library_name"]))
                continue
        try:
            rec = ModelRecord.from_api(d)
        except RecordError:
            continue
        habit_rows.append((rec.id, rec.author, rec.tags, rec.library))
        for key, rel in recorded_truth([rec]).items():
            recorded.setdefault(key, rel)
        if rec.id not in raw and (rec.id in children_in_tree
                                  or any(not b.inferred for b in rec.base_models)):
            raw[rec.id] = d  # the first record read wins: trees rows (2025) come first
    for (child, parent), (rel, root) in tree.items():
        families.root_name.setdefault(families.find(parent), root)
        families.union(child, parent)
    for (child, parent) in recorded:
        families.union(child, parent)
    truth = {k: (rel, "tree") for k, (rel, _) in tree.items()}
    for key, rel in recorded.items():
        truth.setdefault(key, (rel, "record"))

    full_rows, listing_rows, meta = [], [], []
    for (child, parent), (rel, source) in truth.items():
        d = raw.get(child)
        if d is None:
            continue
        hidden = hide_recorded(d)
        a, b = _link_row(hidden, parent), _link_row(listing_shape(hidden), parent)
        if a is None or b is None:
            continue
        full_rows.append(a)
        listing_rows.append(b)
        meta.append((rel, families.name(child), source))
    habits = author_habits(pd.DataFrame(habit_rows, columns=["id", "author", "tags", "library"]))
    y, fam, src = (np.asarray(col, dtype=object) for col in zip(*meta)) if meta else (
        np.array([], object),) * 3
    full = pd.concat(full_rows, ignore_index=True) if full_rows else link_frame([])
    listing = pd.concat(listing_rows, ignore_index=True) if listing_rows else link_frame([])
    counts = {"truth_links": len(truth), "tree_links": len(tree), "recorded_links": len(recorded),
              "with_child_record": len(meta), "children_in_trees": len(children_in_tree),
              "families": len(set(fam.tolist())), "per_relation": dict(Counter(y.tolist()))}
    return LabelledLinks(full, listing, y, fam, src, habits, counts)


# -- the evaluation ---------------------------------------------------------------------------
def rules_predict(links: pd.DataFrame) -> np.ndarray:
    """The current rule of thumb (`infer_relation`) on a link frame."""
    out = []
    for child, tags, n, k, lib, files in zip(links["child"], links["tags"], links["n_parents"],
                                             links["n_card_parents"], links["library"],
                                             links["files"]):
        adapter = bool(files) and any(f.rsplit("/", 1)[-1] == "adapter_config.json"
                                      for f in files)
        out.append(infer_relation(child, tags, max(int(n + k), 1),
                                  library=lib if isinstance(lib, str) else None,
                                  has_adapter_config=adapter))
    return np.asarray(out, dtype=object)


def naive_predict(links: pd.DataFrame) -> np.ndarray:
    """A naive id/tag rule: quantisation words in the id or a gguf tag → quantized,
    peft library → adapter, else finetune."""
    out = []
    for child, tags, lib in zip(links["child"], links["tags"], links["library"]):
        lowered = {t.lower() for t in tags}
        if _NAIVE_QUANT.search(child.rsplit("/", 1)[-1]) or "gguf" in lowered:
            out.append("quantized")
        elif lib == "peft":
            out.append("adapter")
        else:
            out.append("finetune")
    return np.asarray(out, dtype=object)


def scores(y: np.ndarray, pred: np.ndarray) -> dict:
    """Accuracy, per-class precision/recall/support and the confusion matrix (true → guess)."""
    classes = list(RELATION_CLASSES)
    confusion = pd.crosstab(pd.Series(y, name="true"), pd.Series(pred, name="predicted"))
    confusion = confusion.reindex(index=classes, columns=classes, fill_value=0)
    per = {}
    for c in classes:
        tp = int(confusion.loc[c, c])
        predicted, true = int(confusion[c].sum()), int(confusion.loc[c].sum())
        per[c] = {"support": true, "precision": round(tp / predicted, 4) if predicted else None,
                  "recall": round(tp / true, 4) if true else None}
    return {"links": int(len(y)), "accuracy": round(float(np.mean(y == pred)), 4) if len(y)
            else None, "per_relation": per,
            "confusion": {t: {p: int(confusion.loc[t, p]) for p in classes} for t in classes}}


def grouped_folds(family: np.ndarray, n_splits: int) -> list[np.ndarray]:
    """Families dealt into `n_splits` folds of similar size, largest first (deterministic)."""
    sizes = pd.Series(family).value_counts()
    load = [0] * n_splits
    fold_of: dict[str, int] = {}
    for fam, n in sorted(sizes.items(), key=lambda kv: (-kv[1], str(kv[0]))):
        k = int(np.argmin(load))
        fold_of[fam] = k
        load[k] += n
    folds = np.array([fold_of[f] for f in family])
    return [np.flatnonzero(folds == k) for k in range(n_splits)]


def evaluate(data: LabelledLinks, *, n_splits: int = 5, params: dict | None = None) -> dict:
    """Family-grouped K-fold: the learnt typing (trained on both shapes of the training
    families' links) against the rules, a naive rule and the majority class, per shape."""
    from ingest.relation_model import RelationTyper

    n = len(data.y)
    pred = {"full": np.empty(n, object), "listing": np.empty(n, object)}
    folds = grouped_folds(data.family, n_splits)
    for test in folds:
        train = np.setdiff1d(np.arange(n), test)
        links = pd.concat([data.full.iloc[train], data.listing.iloc[train]], ignore_index=True)
        y = np.concatenate([data.y[train], data.y[train]])
        fam = np.concatenate([data.family[train], data.family[train]])
        typer = RelationTyper(**(params or {})).fit(links, y, groups=fam, habits=data.habits)
        for shape in pred:
            frame = getattr(data, shape).iloc[test]
            pred[shape][test] = typer.predict(frame, data.habits)
    out = {"counts": data.counts, "folds": n_splits,
           "fold_families": [sorted(set(data.family[t].tolist())) for t in folds]}
    majority = Counter(data.y.tolist()).most_common(1)[0][0] if n else "finetune"
    for shape in pred:
        frame = getattr(data, shape)
        out[shape] = {"learnt": scores(data.y, pred[shape]),
                      "rules": scores(data.y, rules_predict(frame)),
                      "naive_rule": scores(data.y, naive_predict(frame)),
                      "majority": scores(data.y, np.full(n, majority, object))}
    return out


def format_report(result: dict) -> str:
    """The evaluation as text: a summary table, then confusion matrices and P/R per class."""
    lines = []
    c = result["counts"]
    lines.append(f"labelled links: {c['with_child_record']:,} with a child record (of "
                 f"{c['truth_links']:,}: {c['tree_links']:,} from model trees, "
                 f"{c['recorded_links']:,} recorded on records) in {c['families']} families; "
                 f"{result['folds']}-fold, grouped by family")
    lines.append("per relation: " + ", ".join(f"{k} {v:,}" for k, v in c["per_relation"].items()))
    head = f"{'input':<8} {'method':<11} {'accuracy':>8}  " + "  ".join(
        f"{r[:5]:>5} P/R  " for r in RELATION_CLASSES)
    lines += ["", head, "-" * len(head)]
    for shape in ("full", "listing"):
        for method in ("learnt", "rules", "naive_rule", "majority"):
            s = result[shape][method]
            cells = []
            for r in RELATION_CLASSES:
                pr = s["per_relation"][r]
                p = "  -  " if pr["precision"] is None else f"{pr['precision']:.3f}"
                rc = "  -  " if pr["recall"] is None else f"{pr['recall']:.3f}"
                cells.append(f"{p}/{rc}")
            lines.append(f"{shape:<8} {method:<11} {s['accuracy']:>8.4f}  " + "  ".join(cells))
    for shape in ("full", "listing"):
        for method in ("learnt", "rules"):
            conf = result[shape][method]["confusion"]
            lines += ["", f"confusion ({shape} inputs, {method}): rows true, columns predicted",
                      f"{'':<10}" + "".join(f"{r:>10}" for r in RELATION_CLASSES)]
            for t in RELATION_CLASSES:
                lines.append(f"{t:<10}" + "".join(f"{conf[t][p]:>10,}" for p in RELATION_CLASSES))
    cards = result.get("card_links")
    if cards:
        lines += ["", f"card-derived links (checked on {cards['models_checked']:,} models that "
                  f"declare a base and have card text): {cards['links']:,} links, precision "
                  f"{cards['precision']} against the declared parents"]
        for pattern, row in cards["per_pattern"].items():
            lines.append(f"  {pattern:<10} {row['links']:>6,} links  precision {row['precision']}"
                         f"  relation agrees with the Hub's on {row['relation_accuracy']} of "
                         f"{row['relation_checked']}")
    return "\n".join(lines)


def card_link_report(*dirs: Path) -> dict:
    """Precision of card-derived links against the links the same models declare, over
    every record with card text in the snapshot folders (`ingest.cards`)."""
    from ingest.cards import card_link_precision

    records = []
    for item in SnapshotSource(*dirs).iter_items():
        d = item.data
        if item.kind != "model" or not isinstance(d, dict) or not isinstance(d.get("card"), str):
            continue
        try:
            rec = ModelRecord.from_api(d)
        except RecordError:
            continue
        rec.card_text = d["card"]  # the whole card, not the stored excerpt
        records.append(rec)
    return card_link_precision(records).as_dict()


def measure(trees_dir: Path, snapshot_dir: Path | None = None, *, n_splits: int = 5) -> dict:
    """`evaluate` over the trees (and an older listing for more children's records), plus the
    precision of card-derived links."""
    data = labelled_links(Path(trees_dir), [Path(snapshot_dir)] if snapshot_dir else [])
    out = evaluate(data, n_splits=n_splits)
    out["card_links"] = card_link_report(Path(trees_dir))
    return out
