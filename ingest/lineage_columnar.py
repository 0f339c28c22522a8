"""The `base_model` links of a first load's plain model rows (`ingest.loader_columnar`), by column.

A plain listing row names its parents only in `base_model:` tags. `PlainLinks.of` gives every
row the links `ingest.lineage.parse_base_models` gives its record: each distinct tag value is
cleaned once (`tag_parent`), a row's links are its distinct parents in tag order, and their
relation is `infer_relation`'s, for all rows at once (a row with a tag or library that is not
ASCII is typed by `infer_relation` itself: Python and Arrow lower-case some characters
differently).
Rows with a typed tag (`base_model:<relation>:`) are not plain lineage: `typed_rows` finds
them for the record path. `tests/test_ingest_columnar.py` holds both paths to the same graph.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from graph.vocabulary import QUANT_NAME, QUANT_TAGS
from ingest.lineage import (
    ADAPTER_TAGS,
    BASE_MODEL_TAG,
    INFER_SKIPS,
    MERGE_TAGS,
    RELATIONS,
    infer_relation,
    tag_parent,
)

_TYPED_TAG = rf"^{BASE_MODEL_TAG}({'|'.join(r for r in RELATIONS if r != 'unknown')}):"


def _np(arr) -> np.ndarray:
    arr = pc.fill_null(arr, False)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return np.asarray(arr.to_numpy(zero_copy_only=False), bool)


def _tags(t: pa.Table) -> pa.ListArray:
    tags = t.column("tags")
    return tags.combine_chunks() if isinstance(tags, pa.ChunkedArray) else tags


def typed_rows(t: pa.Table) -> np.ndarray:
    """Rows with a typed `base_model:<relation>:` tag (left to the record path)."""
    tags = _tags(t)
    hit = _np(pc.match_substring_regex(pc.list_flatten(tags), _TYPED_TAG))
    parent = pc.list_parent_indices(tags).to_numpy()
    return np.bincount(parent[hit], minlength=t.num_rows).astype(bool)


@dataclass
class PlainLinks:
    """One row per link, in row order then tag order: `row` (the child's row in the plain
    model table), `child`, `parent` (cleaned, as written), `relation` (inferred; the learnt
    typing replaces it), `n_parents` (the child's links)."""

    row: np.ndarray
    child: list[str]
    parent: list[str]
    relation: list[str]
    n_parents: np.ndarray

    def __len__(self) -> int:
        return len(self.row)

    @classmethod
    def of(cls, t: pa.Table) -> "PlainLinks":
        """The links of every row of `t` (no row may have a typed tag: `typed_rows`)."""
        tags = _tags(t)
        flat = pc.list_flatten(tags)
        owner = pc.list_parent_indices(tags).to_numpy()
        is_link = _np(pc.starts_with(flat, BASE_MODEL_TAG))
        values = pc.utf8_slice_codeunits(pc.filter(flat, pa.array(is_link)), len(BASE_MODEL_TAG),
                                         1 << 30)
        coded = pc.dictionary_encode(values)
        cleaned = [tag_parent(v)[0] for v in coded.dictionary.to_pylist()]
        # the distinct cleaned parents, and each tag's among them (-1: none)
        names = list(dict.fromkeys(p for p in cleaned if p))
        code_of = {p: i for i, p in enumerate(names)}
        to_name = np.array([code_of[p] if p else -1 for p in cleaned] + [-1], np.int64)
        name = to_name[np.asarray(coded.indices.to_numpy(zero_copy_only=False), np.int64)]
        rows = owner[is_link]
        keep = name >= 0
        rows, name = rows[keep], name[keep]
        # a row's distinct parents in tag order (the first tag naming a parent wins)
        _, first = np.unique(rows * max(len(names), 1) + name, return_index=True)
        first.sort()
        rows, name = rows[first], name[first]
        per_row = np.bincount(rows, minlength=t.num_rows)
        n_parents = per_row[rows]
        relation = _infer(t, tags, flat, owner, per_row)[rows]
        ids = t.column("id").take(pa.array(rows)).to_pylist()
        return cls(rows, ids, [names[i] for i in name], relation.tolist(), n_parents)

    def frame(self, t: pa.Table) -> pd.DataFrame:
        """The links as `relation_features.link_frame` gives them for records (listing rows
        list no files and name parents only in tags)."""
        take = pa.array(self.row)
        tags = t.column("tags").take(take).to_pylist()
        return pd.DataFrame({
            "record": self.row, "index": np.zeros(len(self), np.int64), "child": self.child,
            "parent": self.parent, "author": t.column("author").take(take).to_pylist(),
            "tags": [tuple(x) for x in tags],
            "library": t.column("library_name").take(take).to_pylist(),
            "pipeline": t.column("pipeline_tag").take(take).to_pylist(), "files": None,
            "n_parents": self.n_parents, "n_card_parents": np.zeros(len(self), np.int64)})

    def first_relations(self, resolve) -> dict[str, dict[str, str]]:
        """Per child: the relation of its first link to each resolved parent."""
        out: dict[str, dict[str, str]] = {}
        for child, parent, rel in zip(self.child, self.parent, self.relation):
            out.setdefault(child, {}).setdefault(resolve(parent), rel)
        return out


def _infer(t: pa.Table, tags: pa.ListArray, flat: pa.Array, owner: np.ndarray,
           n_parents: np.ndarray) -> np.ndarray:
    """`infer_relation` of every row (its `n_parents` links), as an array of relations."""
    n = t.num_rows
    lower = pc.utf8_lower(flat)
    read = ~np.zeros(len(flat), bool)
    for prefix in INFER_SKIPS:
        read &= ~_np(pc.starts_with(flat, prefix))

    def any_tag(vocab) -> np.ndarray:
        hit = read & _np(pc.is_in(lower, value_set=pa.array(sorted(vocab), pa.string())))
        return np.bincount(owner[hit], minlength=n).astype(bool)

    ids = t.column("id").to_pylist()
    library = t.column("library_name")
    peft = _np(pc.equal(pc.utf8_lower(library), "peft"))
    quant_name = np.fromiter((QUANT_NAME.search(i.split("/", 1)[-1]) is not None for i in ids),
                             bool, n)
    relation = np.select(
        [(n_parents > 1) | any_tag(MERGE_TAGS), peft | any_tag(ADAPTER_TAGS),
         any_tag(QUANT_TAGS) | quant_name], ["merge", "adapter", "quantized"], "finetune")
    relation = relation.astype(object)
    odd = np.zeros(n, bool)
    odd[owner[~_np(pc.string_is_ascii(flat)) & read]] = True
    odd |= ~_np(pc.or_kleene(pc.is_null(library), pc.string_is_ascii(library)))
    libraries = library.to_pylist() if odd.any() else []
    for i in np.flatnonzero(odd):
        if n_parents[i]:
            relation[i] = infer_relation(ids[i], tags[int(i)].as_py(), int(n_parents[i]),
                                         library=libraries[i])
    return relation
