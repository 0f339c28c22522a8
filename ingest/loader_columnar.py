"""The plain rows of a first load (`ingest.columnar`) as graph rows, column by column.

`PlainRows` holds the plain listing rows of every listing file of a first load and turns them
into exactly the node and relation rows `GraphRows.build` makes of the same records: a model's
or dataset's node, its author (`PUBLISHED`), task, library, licences, datasets and papers (from
the same tag prefixes), and each model's observation. The links of plain rows that name parents in
untyped `base_model:` tags come by column too (`ingest.lineage_columnar`) and join the records'
links in `GraphRows`, whose lineage hygiene they share; a row with a typed tag becomes a
record. A plain row whose id comes twice in the load (a listing item and its full record) is
handed back to the record path, which merges.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from graph.schema import Label, Rel
from ingest.columnar import ListingPart, _decode_slow, prefixed
from ingest.lineage import IdResolver
from ingest.lineage_columnar import PlainLinks, typed_rows
from ingest.loader import GraphRows, LineageStats
from ingest.records import MODEL_FIELDS, ModelRecord
from ingest.relation_features import model_frame

_LABEL = {"model": Label.MODEL, "dataset": Label.DATASET}
#: relations read from tag prefixes, per kind: (prefix, relation, target label)
_TAG_RELS = {
    "model": (("license:", Rel.HAS_LICENSE, Label.LICENSE),
              ("dataset:", Rel.TRAINED_ON, Label.DATASET),
              ("arxiv:", Rel.CITES, Label.PAPER)),
    "dataset": (("task_categories:", Rel.HAS_TASK, Label.TASK),
                ("license:", Rel.HAS_LICENSE, Label.LICENSE),
                ("arxiv:", Rel.CITES, Label.PAPER)),
}
_EMPTY_TAGS = pa.scalar([], pa.list_(pa.string()))


@dataclass
class PlainRows:
    """Plain rows per kind (`table`, with `at`: each row's position in the whole stream)."""

    tables: dict[str, pa.Table] = field(default_factory=dict)
    fallback: list[tuple[int, object]] = field(default_factory=list)  # (position, RawItem)
    #: plain models with a typed base_model tag, as records (their lineage is read there)
    records: list[tuple[int, ModelRecord]] = field(default_factory=list)
    #: the links of the plain models in `tables["model"]` that name parents
    links: PlainLinks | None = None
    newest: datetime | None = None  # the newest date of every plain row (the watermark)

    @classmethod
    def collect(cls, parts: list[tuple[int, ListingPart]], record_keys: set[tuple[str, str]]
                ) -> "PlainRows":
        """The parts' plain rows, less those whose (kind, id) comes twice in the load (among
        them or among the records in `record_keys`): those go to `fallback`; plain models
        with a typed parent tag become `records`, the other links `links`."""
        out = cls()
        by_kind: dict[str, list[tuple[int, ListingPart]]] = {}
        for base, part in parts:
            by_kind.setdefault(part.kind, []).append((base, part))
        for kind, kparts in by_kind.items():
            tables = [p.table.append_column("at", pa.array(base + p.positions, pa.int64()))
                      for base, p in kparts]
            sizes = np.cumsum([0] + [p.table.num_rows for _, p in kparts])
            lineage = np.concatenate([p.lineage for _, p in kparts])
            table = pa.concat_tables(tables)
            dup = _repeated(table.column("id"), {rid for (k, rid) in record_keys if k == kind})
            if dup.any():
                ats = table.column("at").to_numpy()
                for i in np.flatnonzero(dup):
                    k = int(np.searchsorted(sizes, i, side="right")) - 1
                    line = kparts[k][1].line(int(i - sizes[k]))
                    out.fallback.append((int(ats[i]), _decode_slow(kind, line)))
                table = table.filter(pa.array(~dup))
                lineage = lineage[~dup]
            out.newest = _newest(table, out.newest)
            if lineage.any():
                where = np.flatnonzero(lineage)
                typed = np.zeros(len(lineage), bool)
                typed[where[typed_rows(table.take(pa.array(where)))]] = True
                if typed.any():
                    out.records += _records(table.filter(pa.array(typed)))
                    table, lineage = table.filter(pa.array(~typed)), lineage[~typed]
                links = PlainLinks.of(table.filter(pa.array(lineage)))
                links.row = np.flatnonzero(lineage)[links.row]
                out.links = links
            out.tables[kind] = table
        return out

    def count(self) -> int:
        """Plain rows read (those in `tables` and `records`)."""
        return self.in_tables() + len(self.records)

    def in_tables(self, kind: str | None = None) -> int:
        """Plain rows loaded from `tables` (`records` load as records)."""
        return sum(t.num_rows for k, t in self.tables.items() if kind in (None, k))

    def watermark(self, current: datetime | None) -> datetime | None:
        """The newest lastModified (else createdAt) of the plain rows and `current`."""
        if self.newest is None or (current is not None and current >= self.newest):
            return current
        return self.newest

    def with_model_frame(self, models: list[ModelRecord]) -> pd.DataFrame:
        """`model_frame` of the records and the plain models (`author_habits`' input)."""
        frame = model_frame(models)
        frame["tags_text"] = frame["tags"].map(lambda t: " ".join(t) if t else "")
        frame = frame.drop(columns=["tags"])
        t = self.tables.get("model")
        if t is None or not t.num_rows:
            return frame
        plain = pd.DataFrame({
            "id": t.column("id").to_pandas(), "author": t.column("author").to_pandas(),
            "tags_text": pc.fill_null(pc.binary_join(t.column("tags"), " "), "").to_pandas(),
            "library": t.column("library_name").to_pandas()})
        return pd.concat([frame, plain], ignore_index=True)

    def resolver(self, models: list[ModelRecord], first_at: list[int]) -> IdResolver:
        """`IdResolver.from_records` over the records and the plain models, in stream order
        (the first of two case variants wins, as in a record-by-record load)."""
        t = self.tables.get("model")
        ids = [m.id for m in models]
        downloads = {m.id: m.downloads for m in models}
        at = np.asarray(first_at, np.int64)
        if t is not None and t.num_rows:
            plain_ids = t.column("id").to_pylist()
            downloads.update(zip(plain_ids, t.column("downloads").to_pylist()))
            ids += plain_ids
            at = np.concatenate([at, t.column("at").to_numpy()])
        refs: Counter = Counter(self.links.parent if self.links else ())
        for r in models:
            for link in r.base_models:
                refs[link.parent] += 1
        order = np.argsort(at, kind="stable")
        return IdResolver((ids[i] for i in order), downloads=downloads, references=refs)

    # -- the plain links ------------------------------------------------------------------------
    def link_frame(self) -> pd.DataFrame:
        """The plain links as a link frame (`relation_features.link_frame`), to type them."""
        return self.links.frame(self.tables["model"])

    def set_relations(self, relations) -> None:
        """The plain links' learnt relations (in `links` order; None keeps the inferred)."""
        if relations is not None and self.links:
            self.links.relation = [str(r) for r in relations]

    def first_relations(self, resolver: IdResolver) -> dict[str, dict[str, str]]:
        """Per child with plain links: each resolved parent's relation (`retype_lineage`)."""
        if not self.links:
            return {}
        return self.links.first_relations(lambda p: resolver.resolve(p)[0])

    def add_lineage(self, rows: GraphRows, resolver: IdResolver, rejects: Counter,
                    stats: LineageStats) -> None:
        """The plain links into `rows` (`GraphRows.add_lineage`: resolved, hygiene counted)."""
        links = self.links
        if not links:
            return
        stats.add_links(links.parent, "tag", True)
        start = 0
        for end in [*np.flatnonzero(np.diff(links.row)) + 1, len(links)]:
            rows.add_lineage(links.child[start], ((links.parent[i], links.relation[i], True, "tag")
                                                  for i in range(start, end)), resolver, rejects)
            start = end

    def add_to(self, rows: GraphRows, run_id: str, at: datetime) -> None:
        """The plain rows' nodes, relations, referenced ids and observations into `rows`."""
        for kind, t in self.tables.items():
            if t.num_rows:
                _add_kind(rows, kind, t)
        t = self.tables.get("model")
        if t is not None and t.num_rows:
            n = t.num_rows
            rows.rel_tables[(Rel.OBSERVED_IN, Label.MODEL, Label.INGEST_RUN)].append(pa.table({
                "from": t.column("id"), "to": pa.array([run_id] * n, pa.string()),
                "downloads": t.column("downloads"), "likes": t.column("likes"),
                "at": pa.array([at.replace(tzinfo=None)] * n, pa.timestamp("us"))}))


def _repeated(ids: pa.ChunkedArray, taken: set[str]) -> np.ndarray:
    """Each id: whether it comes more than once in `ids` or is one of `taken`."""
    counts = pc.value_counts(ids)
    again = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    others = pa.concat_arrays([again.cast(pa.string()), pa.array(sorted(taken), pa.string())])
    return np.asarray(pc.is_in(ids, value_set=others).to_numpy(zero_copy_only=False), bool)


def _newest(t: pa.Table, best: datetime | None) -> datetime | None:
    when = pc.max(pc.coalesce(t.column("lastModified"), t.column("createdAt"))).as_py()
    if when is None:
        return best
    when = when.replace(tzinfo=timezone.utc)
    return when if best is None or when > best else best


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=timezone.utc) if value is not None else None


def _records(t: pa.Table) -> list[tuple[int, ModelRecord]]:
    """Plain model rows as the records `ModelRecord.from_api` makes of them (the same
    construction, from the same checked values; every other declared field is absent)."""
    absent = {f.name: None for f in MODEL_FIELDS}
    cols = {name: t.column(name).to_pylist() for name in t.column_names}
    out = []
    for i, at in enumerate(cols["at"]):
        tags = cols["tags"][i]
        values = {**absent, "author": cols["author"][i],
                  "createdAt": _aware(cols["createdAt"][i]),
                  "lastModified": _aware(cols["lastModified"][i]),
                  "likes": cols["likes"][i], "downloads": cols["downloads"][i],
                  "pipeline_tag": cols["pipeline_tag"][i],
                  "library_name": cols["library_name"][i],
                  "tags": tuple(tags) if tags is not None else None, "gated": cols["gated"][i]}
        out.append((at, ModelRecord.from_values(cols["id"][i], values, Counter())))
    return out


def _add_kind(rows: GraphRows, kind: str, t: pa.Table) -> None:
    label = _LABEL[kind]
    ids, tags = t.column("id"), t.column("tags")
    ids = ids.combine_chunks()
    pairs = {p: prefixed(tags, ids, p) for p, _, _ in _TAG_RELS[kind]}
    licence = pairs["license:"][1]
    node = {"id": ids, "author": t.column("author"), "createdAt": t.column("createdAt"),
            "lastModified": t.column("lastModified"), "likes": t.column("likes"),
            "downloads": t.column("downloads")}
    if kind == "model":
        node |= {"pipelineTag": t.column("pipeline_tag"),
                 "libraryName": t.column("library_name")}
    node |= {"tags": pc.fill_null(tags, _EMPTY_TAGS), "gated": t.column("gated"),
             "license": licence}
    if kind == "dataset":
        node["description"] = t.column("description")
    node["stub"] = pa.array(np.zeros(t.num_rows, bool))
    rows.node_tables[label].append(pa.table(node))
    rows.table_ids[label].update(ids.to_pylist())
    # authors: PUBLISHED from one Account per namespace, its type unknown until the Hub is
    # asked (`ingest.accounts`), as GraphRows._author does
    author = t.column("author")
    has = pc.is_valid(author)
    src, dst = pc.filter(author, has), pc.filter(ids, has)
    if len(src):
        rows.refs[Label.ACCOUNT].update(pc.unique(src).to_pylist())
        rows.rel_tables[(Rel.PUBLISHED, Label.ACCOUNT, label)].append(
            pa.table({"from": src, "to": dst}))
    if kind == "model":
        for col, rel, target in (("pipeline_tag", Rel.HAS_TASK, Label.TASK),
                                 ("library_name", Rel.USES_LIBRARY, Label.LIBRARY)):
            value = t.column(col)
            mask = pc.is_valid(value)
            src, dst = pc.filter(ids, mask), pc.filter(value, mask)
            if len(src):
                rows.refs[target].update(pc.unique(dst).to_pylist())
                rows.rel_tables[(rel, label, target)].append(pa.table({"from": src, "to": dst}))
    for prefix, rel, target in _TAG_RELS[kind]:
        table = pairs[prefix][0]
        if table.num_rows:
            rows.refs[target].update(pc.unique(table.column("to")).to_pylist())
            rows.rel_tables[(rel, label, target)].append(table)
