"""Records → graph rows → the graph, by bulk import (first load) or idempotent upserts.

`GraphRows.build()` turns parsed records into node and relation rows once; the two load paths
only differ in how they write them: `bulk_write` uses the engine's own bulk import (Kùzu
`COPY`), `upsert_write` runs `MERGE` statements in one transaction together with the run's
checkpoint, so an ingest killed at any moment resumes without duplicates or lost rows.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import pyarrow as pa

from graph import queries as q
from graph.dates import iso_utc, naive_utc
from graph.kuzu_store import conform
from graph.schema import LINEAGE_RELS, NODE_SPECS, REF_DEFAULTS, REL_SPECS, Label, Rel
from graph.store import GraphStore, chunked
from ingest.lineage import IdResolver
from ingest.records import INT64_MAX, DatasetRecord, ModelRecord, SpaceRecord


@dataclass
class LineageStats:
    """Links, distinct parents (as written) and links per source of one run; resolution is
    measured at the end, against every model the run knows then, so a resumed run reports
    what a clean one does."""

    links: int = 0
    parents_written: set = field(default_factory=set)
    sources: Counter = field(default_factory=Counter)  # links per (source, inferred), declared

    def add(self, record: ModelRecord) -> None:
        self.links += len(record.base_models)
        self.parents_written.update(link.parent for link in record.base_models)
        self.sources.update((link.source, link.inferred) for link in record.base_models)

    def add_links(self, parents: list[str], source: str, inferred: bool) -> None:
        """Links that are not in records (a first load's plain rows), all of one source."""
        self.links += len(parents)
        self.parents_written.update(parents)
        if parents:
            self.sources[(source, inferred)] += len(parents)

    def as_dict(self, resolver: IdResolver) -> dict[str, Any]:
        """The run's lineage summary: resolution share, how parents resolved (exact,
        normalised, case, legacy…) and why the rest did not (`IdResolver.explain`)."""
        n = len(self.parents_written)
        resolved_by: Counter = Counter()
        unresolved_by: Counter = Counter()
        for parent in self.parents_written:
            res = resolver.explain(parent)
            (resolved_by if res.known else unresolved_by)[res.how] += 1
        resolved = sum(resolved_by.values())
        return {"lineage_links": self.links, "distinct_parents": n,
                "parents_resolved": resolved,
                "parents_resolved_by_alias": resolved - resolved_by["exact"],
                "parents_resolved_share": round(resolved / n, 4) if n else None,
                "parents_resolved_by": dict(resolved_by.most_common()),
                "parents_unresolved_by_reason": dict(unresolved_by.most_common()),
                "links_by_source": {f"{s}{' (inferred)' if i else ''}": c
                                    for (s, i), c in sorted(self.sources.items())}}


def _given_list(record, name: str) -> list[str] | None:
    """A list property as a row carries it: None when the record does not give it (the
    stored value is kept), else the list, possibly empty (which replaces it)."""
    return list(getattr(record, name)) if name in record.given else None


@dataclass
class GraphRows:
    """Node and relation rows for one batch (or one whole first load)."""

    nodes: dict[Label, list[dict]] = field(default_factory=lambda: defaultdict(list))
    refs: dict[Label, set[str]] = field(default_factory=lambda: defaultdict(set))
    rels: dict[tuple[Rel, Label, Label], list[dict]] = field(
        default_factory=lambda: defaultdict(list))
    #: (relation, source label) -> ids whose record gives that relation's source field: the
    #: incremental path replaces exactly those records' relations of that type
    owned: dict[tuple[Rel, Label], list[str]] = field(default_factory=lambda: defaultdict(list))
    #: rows already in columns (a first load's plain listing rows, `ingest.loader_columnar`),
    #: written with the rows above; `table_ids`: their node ids
    node_tables: dict[Label, list[pa.Table]] = field(default_factory=lambda: defaultdict(list))
    rel_tables: dict[tuple[Rel, Label, Label], list[pa.Table]] = field(
        default_factory=lambda: defaultdict(list))
    table_ids: dict[Label, set[str]] = field(default_factory=lambda: defaultdict(set))

    @classmethod
    def build(cls, models: Iterable[ModelRecord], datasets: Iterable[DatasetRecord],
              spaces: Iterable[SpaceRecord], resolver: IdResolver, rejects: Counter,
              stats: LineageStats) -> "GraphRows":
        rows = cls()
        for m in models:
            rows._add_model(m, resolver, rejects, stats)
        for d in datasets:
            rows._add_dataset(d)
        for s in spaces:
            rows._add_space(s, resolver)
        return rows

    def _own(self, label: Label, rid: str, given: bool, *rels: Rel) -> None:
        if given:
            for rel in rels:
                self.owned[(rel, label)].append(rid)

    def _author(self, author: str | None, target: Label, rid: str) -> None:
        # one Account per namespace, its type unknown until the Hub is asked
        # (`ingest.accounts`): records carry no account type, and none is guessed
        if author:
            self.refs[Label.ACCOUNT].add(author)
            self.rels[(Rel.PUBLISHED, Label.ACCOUNT, target)].append({"src": author, "dst": rid})

    def _add_model(self, m: ModelRecord, resolver: IdResolver, rejects: Counter,
                   stats: LineageStats) -> None:
        self.nodes[Label.MODEL].append({
            "id": m.id, "author": m.author, "createdAt": m.created_at,
            "lastModified": m.last_modified, "likes": m.likes, "downloads": m.downloads,
            "pipelineTag": m.pipeline_tag, "libraryName": m.library,
            "tags": _given_list(m, "tags"), "gated": m.gated, "parameters": m.parameters,
            "license": m.license, "cardText": m.card_text, "stub": False,
            "downloadsAllTime": m.downloads_all_time, "trendingScore": m.trending_score,
            "childrenModelCount": m.children_count})
        self._author(m.author, Label.MODEL, m.id)
        own, given = self._own, m.given
        own(Label.MODEL, m.id, m.pipeline_tag is not None, Rel.HAS_TASK)
        own(Label.MODEL, m.id, m.library is not None, Rel.USES_LIBRARY)
        own(Label.MODEL, m.id, "licenses" in given, Rel.HAS_LICENSE)
        own(Label.MODEL, m.id, "datasets" in given, Rel.TRAINED_ON)
        own(Label.MODEL, m.id, "arxiv" in given, Rel.CITES)
        own(Label.MODEL, m.id, "base_models" in given, *LINEAGE_RELS.values())
        if m.pipeline_tag:
            self.refs[Label.TASK].add(m.pipeline_tag)
            self.rels[(Rel.HAS_TASK, Label.MODEL, Label.TASK)].append(
                {"src": m.id, "dst": m.pipeline_tag})
        if m.library:
            self.refs[Label.LIBRARY].add(m.library)
            self.rels[(Rel.USES_LIBRARY, Label.MODEL, Label.LIBRARY)].append(
                {"src": m.id, "dst": m.library})
        for lic in m.licenses:
            self.refs[Label.LICENSE].add(lic)
            self.rels[(Rel.HAS_LICENSE, Label.MODEL, Label.LICENSE)].append(
                {"src": m.id, "dst": lic})
        for ds in m.datasets:
            self.refs[Label.DATASET].add(ds)
            self.rels[(Rel.TRAINED_ON, Label.MODEL, Label.DATASET)].append({"src": m.id, "dst": ds})
        for paper in m.arxiv:
            self.refs[Label.PAPER].add(paper)
            self.rels[(Rel.CITES, Label.MODEL, Label.PAPER)].append({"src": m.id, "dst": paper})
        for space in m.spaces:
            self.refs[Label.SPACE].add(space)
            self.rels[(Rel.USES_MODEL, Label.SPACE, Label.MODEL)].append(
                {"src": space, "dst": m.id})
        stats.add(m)
        self.add_lineage(m.id, ((b.parent, b.relation, b.inferred, b.source)
                                for b in m.base_models), resolver, rejects)

    def add_lineage(self, child: str, links: Iterable[tuple[str, str, bool, str]],
                    resolver: IdResolver, rejects: Counter) -> None:
        """A child's links (parent as written, relation, inferred, source) as lineage rows to
        the resolved parents: a link to itself or a second link to a parent is counted and
        dropped."""
        seen_parents = set()
        for written, relation, inferred, source in links:
            parent, _ = resolver.resolve(written)
            if parent == child:
                rejects["lineage_self_loop"] += 1
                continue
            if parent in seen_parents:
                rejects["lineage_duplicate_link"] += 1
                continue
            seen_parents.add(parent)
            self.refs[Label.MODEL].add(parent)
            self.rels[(LINEAGE_RELS[relation], Label.MODEL, Label.MODEL)].append(
                {"src": child, "dst": parent, "inferred": inferred, "source": source})

    def _add_dataset(self, d: DatasetRecord) -> None:
        self.nodes[Label.DATASET].append({
            "id": d.id, "author": d.author, "createdAt": d.created_at,
            "lastModified": d.last_modified, "likes": d.likes, "downloads": d.downloads,
            "tags": _given_list(d, "tags"), "gated": d.gated, "license": d.license,
            "description": d.description, "stub": False})
        self._author(d.author, Label.DATASET, d.id)
        self._own(Label.DATASET, d.id, "tasks" in d.given, Rel.HAS_TASK)
        self._own(Label.DATASET, d.id, "licenses" in d.given, Rel.HAS_LICENSE)
        self._own(Label.DATASET, d.id, "arxiv" in d.given, Rel.CITES)
        for task in d.tasks:
            self.refs[Label.TASK].add(task)
            self.rels[(Rel.HAS_TASK, Label.DATASET, Label.TASK)].append({"src": d.id, "dst": task})
        for lic in d.licenses:
            self.refs[Label.LICENSE].add(lic)
            self.rels[(Rel.HAS_LICENSE, Label.DATASET, Label.LICENSE)].append(
                {"src": d.id, "dst": lic})
        for paper in d.arxiv:
            self.refs[Label.PAPER].add(paper)
            self.rels[(Rel.CITES, Label.DATASET, Label.PAPER)].append({"src": d.id, "dst": paper})

    def _add_space(self, s: SpaceRecord, resolver: IdResolver) -> None:
        self.nodes[Label.SPACE].append({
            "id": s.id, "author": s.author, "createdAt": s.created_at,
            "lastModified": s.last_modified, "likes": s.likes, "sdk": s.sdk, "stub": False})
        self._author(s.author, Label.SPACE, s.id)
        self._own(Label.SPACE, s.id, "models" in s.given, Rel.USES_MODEL)
        self._own(Label.SPACE, s.id, "datasets" in s.given, Rel.USES_DATASET)
        # model ids resolve like base_model parents (case, legacy names), so a Space and a
        # child that name one model the same way point at the same node
        for mid in dict.fromkeys(resolver.resolve(m)[0] for m in s.models):
            self.refs[Label.MODEL].add(mid)
            self.rels[(Rel.USES_MODEL, Label.SPACE, Label.MODEL)].append({"src": s.id, "dst": mid})
        for did in s.datasets:
            self.refs[Label.DATASET].add(did)
            self.rels[(Rel.USES_DATASET, Label.SPACE, Label.DATASET)].append(
                {"src": s.id, "dst": did})

    # -- lineage hygiene -------------------------------------------------------------------
    def lineage_rewritten(self) -> set[str]:
        """Models whose lineage this batch replaces (their record gives base_models)."""
        return set(self.owned.get((Rel.FINETUNE_OF, Label.MODEL), ()))

    def lineage_edges(self) -> list[tuple[Rel, dict]]:
        return [(rel, row) for (rel, _, _), rows in self.rels.items()
                if rel.value in {r.value for r in LINEAGE_RELS.values()} for row in rows]

    def drop_lineage(self, bad: set[tuple[str, str]]) -> int:
        """Remove the given (child, parent) lineage edges; returns how many were removed."""
        removed = 0
        for (rel, src, dst), rows in self.rels.items():
            if rel in LINEAGE_RELS.values():
                keep = [r for r in rows if (r["src"], r["dst"]) not in bad]
                removed += len(rows) - len(keep)
                self.rels[(rel, src, dst)] = keep
        return removed

    def retype_lineage(self, models: Iterable[ModelRecord], resolver: IdResolver,
                       more: dict[str, dict[str, str]] | None = None) -> None:
        """Move each lineage row to the relation its link has now (`retype_links` ran after
        the rows were built): the row of a child and a (resolved) parent is its first link
        to that parent, as `add_lineage` keeps it. `more`: child -> resolved parent ->
        relation of links that are not in records."""
        relation: dict[str, dict[str, str]] = dict(more or {})
        for m in models:
            if any(b.inferred for b in m.base_models):
                first: dict[str, str] = {}
                for link in m.base_models:
                    first.setdefault(resolver.resolve(link.parent)[0], link.relation)
                relation[m.id] = first
        moved: dict[Rel, list[dict]] = defaultdict(list)
        for key in [k for k in self.rels if k[0] in LINEAGE_RELS.values()]:
            keep = []
            for r in self.rels[key]:
                now = relation.get(r["src"], {}).get(r["dst"])
                target = LINEAGE_RELS[now] if now is not None else key[0]
                (keep if target is key[0] else moved[target]).append(r)
            self.rels[key] = keep
        for rel, rs in moved.items():
            self.rels[(rel, Label.MODEL, Label.MODEL)].extend(rs)

    def dedupe_rels(self) -> None:
        for key, rows in self.rels.items():
            seen, keep = set(), []
            for r in rows:
                k = (r["src"], r["dst"])
                if k not in seen:
                    seen.add(k)
                    keep.append(r)
            self.rels[key] = keep


def cycle_edges(edges: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """Back edges of a depth-first search over child → parent links: removing them leaves
    the lineage acyclic. Deterministic (sorted) so re-runs reject the same edges."""
    graph: dict[str, list[str]] = defaultdict(list)
    for child, parent in edges:
        graph[child].append(parent)
    for parents in graph.values():
        parents.sort()
    state: dict[str, int] = {}  # 1 = on stack, 2 = done
    back: set[tuple[str, str]] = set()
    for start in sorted(graph):
        if start in state:
            continue
        stack = [(start, iter(graph[start]))]
        state[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                back.add((node, nxt))
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(graph.get(nxt, ()))))
    return back


# -- the two write paths ---------------------------------------------------------------------
_DATES = ("createdAt", "lastModified", "at")
_ARROW = {"createdAt": pa.timestamp("us"), "lastModified": pa.timestamp("us"),
          "at": pa.timestamp("us"),
          "tags": pa.list_(pa.string()), "likes": pa.int64(), "downloads": pa.int64(),
          "parameters": pa.int64(), "stub": pa.bool_(), "inferred": pa.bool_(),
          "downloadsAllTime": pa.int64(), "trendingScore": pa.float64(),
          "childrenModelCount": pa.int64()}


def _table(rows: list[dict], rename: dict[str, str] | None = None) -> pa.Table:
    cols = list(rows[0].keys())
    data = {}
    for c in cols:
        values = [r[c] for r in rows]
        if c in _DATES:
            values = [naive_utc(v) for v in values]
        elif c == "tags":  # a record that gives no tags has none
            values = [v if v is not None else [] for v in values]
        name = (rename or {}).get(c, c)
        data[name] = pa.array(values, type=_ARROW.get(c, pa.string()))
    return pa.table(data)


def _concat(tables: list[pa.Table], columns, lead: tuple[str, ...] = ()) -> pa.Table:
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables([conform(t, columns, lead) for t in tables])


def bulk_write(store: GraphStore, rows: GraphRows,
               before_lineage: Callable[[], None] | None = None) -> None:
    """First load into an empty graph: one bulk import per table; `before_lineage` runs
    before the lineage relations are written (it may still change their types)."""
    for label in dict.fromkeys([*rows.nodes, *rows.node_tables]):
        nodes = rows.nodes.get(label)
        tables = ([_table(nodes)] if nodes else []) + rows.node_tables.get(label, [])
        if tables:
            store.bulk_insert_nodes(label, _concat(tables, NODE_SPECS[label].properties))
    for label, ids in rows.refs.items():
        known = {n["id"] for n in rows.nodes.get(label, ())} | rows.table_ids.get(label, set())
        missing = sorted(ids - known)
        if not missing:
            continue
        table = {"id": pa.array(missing, pa.string())}
        if label in (Label.MODEL, Label.DATASET, Label.SPACE):
            table["stub"] = pa.array([True] * len(missing), pa.bool_())
        for prop, value in REF_DEFAULTS.get(label, {}).items():
            table[prop] = pa.array([value] * len(missing), pa.string())
        store.bulk_insert_nodes(label, pa.table(table))
    keys = list(dict.fromkeys([*rows.rels, *rows.rel_tables]))
    lineage = set(LINEAGE_RELS.values())
    _write_rels(store, rows, [k for k in keys if k[0] not in lineage])
    if before_lineage is not None:
        before_lineage()
    _write_rels(store, rows, [k for k in dict.fromkeys([*rows.rels, *rows.rel_tables])
                              if k[0] in lineage])


def _write_rels(store: GraphStore, rows: GraphRows, keys) -> None:
    for key in keys:
        rels = rows.rels.get(key)
        tables = (([_table(rels, {"src": "from", "dst": "to"})] if rels else [])
                  + rows.rel_tables.get(key, []))
        if tables:
            rel, src, dst = key
            store.bulk_insert_rels(rel, src, dst, _concat(
                tables, REL_SPECS[rel].properties, lead=("from", "to")))


def _param_ok(value: Any, typ: str) -> bool:
    if value is None:
        return True
    if typ == "STRING" or typ == "TIMESTAMP":  # timestamps travel as ISO strings
        return isinstance(value, str)
    if typ == "INT64":
        return type(value) is int and -INT64_MAX - 1 <= value <= INT64_MAX
    if typ == "BOOLEAN":
        return type(value) is bool
    if typ == "DOUBLE":
        return type(value) is float and math.isfinite(value)
    if typ == "STRING[]":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return False


def _checked(rows: list[dict], types: dict[str, str], what: str) -> list[dict]:
    """Parameter rows whose values have exactly their schema type (ISO strings for dates).
    Records are validated at the edge, so a mismatch is a bug: it fails loudly here rather
    than reaching the engine, whose parameter binding can crash the process on one."""
    rows = [_iso_dates(r) for r in rows]
    for r in rows:
        for k, v in r.items():
            typ = types.get(k, "STRING")
            if not _param_ok(v, typ):
                raise TypeError(f"{what}.{k}: {type(v).__name__} value for a {typ} property")
    return rows


def _node_types(label: Label) -> dict[str, str]:
    return dict(NODE_SPECS[label].properties)


def _rel_types(rel: Rel) -> dict[str, str]:
    return {"src": "STRING", "dst": "STRING", **dict(REL_SPECS[rel].properties)}


def upsert_statements(store: GraphStore, rows: GraphRows) -> list[tuple[str, dict]]:
    """Statements that make the graph hold these records, merged into what it holds: a new
    node is created; a known one (real or stub) takes every property the record gives (None
    keeps the stored value, as `merge_records` does) and the relations whose source field the
    record gives (`rows.owned`) are replaced. Reads which ids exist first, so it must run
    under the writer lock; the statements are idempotent and commit in one transaction."""
    stmts: list[tuple[str, dict]] = []
    for label, nodes in rows.nodes.items():
        if not nodes:
            continue
        types = _node_types(label)
        existing = set(q.existing_ids(store, label, [n["id"] for n in nodes]))
        cols = list(nodes[0].keys())
        lists = [c for c in cols if types[c].endswith("[]")]
        new = _checked([{**n, **{c: n[c] or [] for c in lists}}
                        for n in nodes if n["id"] not in existing], types, label.value)
        old = _checked([n for n in nodes if n["id"] in existing], types, label.value)
        for chunk in chunked(new, 2000):
            stmts.append((q.create_nodes(store, label, cols), {"rows": chunk}))
        stmts += q.update_nodes(store, label, old)
        for c in lists:  # a list property given replaces the stored one; else it is kept
            stmts += q.set_list_property(
                store, label, c, [{"id": r["id"], c: r[c]} for r in old if r[c] is not None])
            stmts += q.set_list_property(
                store, label, c, [{"id": r["id"], c: []} for r in old if r[c] is None],
                only_if_null=True)
    for (rel, label), ids in rows.owned.items():
        if ids:
            stmts.append((q.delete_out_rels(rel, label), {"ids": ids}))
    for label, ids in rows.refs.items():
        own = {n["id"] for n in rows.nodes.get(label, ())}
        wanted = sorted(ids - own)
        missing = sorted(set(wanted) - set(q.existing_ids(store, label, wanted)))
        if missing:
            stub = label in (Label.MODEL, Label.DATASET, Label.SPACE)
            defaults = REF_DEFAULTS.get(label, {})
            stmts.append((q.create_ref_nodes(label, stub=stub, defaults=tuple(defaults)),
                          {"ids": missing, **defaults}))
    for (rel, src, dst), rels in rows.rels.items():
        if rels:
            fresh = set(rows.owned.get((rel, src), ()))  # their old relations are deleted above
            stmts += rel_statements(store, rel, src, dst, rels, fresh)
    return stmts


#: the end from which existing relations of a type are looked up: the one with few of them
_LOOKUP_END = {Rel.PUBLISHED: "dst", Rel.USES_MODEL: "dst"}


def rel_statements(store: GraphStore, rel: Rel, src: Label, dst: Label, rels: list[dict],
                   fresh: set[str]) -> list[tuple[str, dict]]:
    """Statements that make these relations exist with these properties: rows out of `fresh`
    sources (whose relations of this type are deleted first) are inserted; for the others,
    which relations exist already is read first: those are updated (a null property keeps
    its value), the rest inserted. Endpoints must exist when the statements run."""
    props = [p for p, _ in REL_SPECS[rel].properties]
    rows = _checked([{"src": r["src"], "dst": r["dst"], **{p: r.get(p) for p in props}}
                     for r in rels], _rel_types(rel), rel.value)
    other = [r for r in rows if r["src"] not in fresh]
    existing: set[tuple[str, str]] = set()
    if other:
        end = _LOOKUP_END.get(rel, "src")
        for chunk in chunked(sorted({r[end] for r in other}), 2000):
            existing.update((x["src"], x["dst"]) for x in store.rows(
                q.rel_pairs(store, rel, src, dst, by=end), {"ids": chunk}))
    new = [r for r in rows if (r["src"], r["dst"]) not in existing]
    old = [r for r in rows if (r["src"], r["dst"]) in existing]
    return q.insert_rels(store, rel, src, dst, new) + q.update_rels(store, rel, src, dst, old)


def _iso_dates(row: dict) -> dict:
    return {k: (iso_utc(v) if k in _DATES else v) for k, v in row.items()}


def closing_edges(store: GraphStore, edges: Iterable[tuple[str, str]],
                  replaced: set[str] = frozenset()) -> set[tuple[str, str]]:
    """The new child -> parent edges that would close a lineage cycle, together with the
    graph's edges (minus those of `replaced` children, whose lineage is being rewritten) and
    the new edges accepted before them (in sorted order: deterministic)."""
    new = sorted(set(edges))
    if not new:
        return set()
    up: dict[str, set[str]] = defaultdict(set)
    frontier = {n for e in new for n in e}
    seen = set(frontier)
    for _ in range(q.MAX_DEPTH + 1):  # the graph's ancestors of every endpoint, level by level
        if not frontier:
            break
        found = store.rows(q.lineage_parents(store), {"ids": sorted(frontier)})
        frontier = set()
        for r in found:
            if r["child"] in replaced:
                continue
            up[r["child"]].add(r["parent"])
            if r["parent"] not in seen:
                seen.add(r["parent"])
                frontier.add(r["parent"])
    bad = set()
    for child, parent in new:
        if child == parent or _reaches(up, parent, child):
            bad.add((child, parent))
        else:
            up[child].add(parent)
    return bad


def _reaches(up: dict[str, set[str]], start: str, goal: str) -> bool:
    stack, seen = [start], {start}
    while stack:
        node = stack.pop()
        if node == goal:
            return True
        for nxt in up.get(node, ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return False


#: labels whose nodes exist only because something links to them (repo labels: the stubs)
_REFERENCED_ONLY = (Label.PAPER, Label.TASK, Label.LIBRARY, Label.LICENSE, Label.ACCOUNT)


def unreferenced_statements() -> list[tuple[str, dict]]:
    """Delete what an incremental run left unreferenced (a licence, task, author or stub
    parent no record names any more), which a first load would not have created."""
    stmts = [(q.delete_unreferenced(label, stubs_only=False), {}) for label in _REFERENCED_ONLY]
    stmts += [(q.delete_unreferenced(label, stubs_only=True), {})
              for label in (Label.MODEL, Label.DATASET, Label.SPACE)]
    return stmts


#: relations that can point at a stub model, by the label they come from
_INTO_MODELS = [*((rel, Label.MODEL) for rel in LINEAGE_RELS.values()),
                (Rel.USES_MODEL, Label.SPACE)]


def relink_statements(store: GraphStore, resolver: IdResolver,
                      rejects: Counter) -> tuple[list[tuple[str, dict]], int]:
    """Stub models that now resolve to a real model (its record arrived later in the stream,
    or under its new name): move their incoming edges onto that model and drop the stub, with
    the same lineage hygiene as a first load (self-loops, duplicate links and cycles are
    dropped and counted). Returns the statements and how many stubs they remove."""
    moves = {}
    for stub in q.stub_model_ids(store):
        target, known = resolver.resolve(stub)
        if known and target != stub:
            moves[stub] = target
    if not moves:
        return [], 0
    stubs = sorted(moves)
    moved: dict[tuple[Rel, Label], list[dict]] = {}
    for rel, src in _INTO_MODELS:
        found = store.rows(q.edges_into(store, rel, src, Label.MODEL), {"ids": stubs})
        moved[(rel, src)] = [{**r, "dst": moves[r["dst"]]} for r in found]
    lineage = [(rel, r) for (rel, src), rs in moved.items() if src is Label.MODEL
               and rel in LINEAGE_RELS.values() for r in rs]
    children = sorted({r["src"] for _, r in lineage})
    have = {(r["child"], r["parent"]) for r in
            store.rows(q.lineage_parents(store), {"ids": children})} if children else set()
    keep: dict[tuple[str, str], tuple[Rel, dict]] = {}
    for rel, r in sorted(lineage, key=lambda x: (x[1]["src"], x[1]["dst"], x[0].value)):
        edge = (r["src"], r["dst"])
        if edge[0] == edge[1]:
            rejects["lineage_self_loop"] += 1
        elif edge in have or edge in keep:
            rejects["lineage_duplicate_link"] += 1
        else:
            keep[edge] = (rel, r)
    bad = closing_edges(store, keep)
    rejects["lineage_cycle"] += len(bad)
    for rel, src in moved:
        if rel in LINEAGE_RELS.values():
            moved[(rel, src)] = [r for e, (kr, r) in keep.items() if kr is rel and e not in bad]
    stmts = [(q.delete_stub_nodes(Label.MODEL), {"ids": stubs})]
    for (rel, src), rs in moved.items():
        rs = list({(r["src"], r["dst"]): r for r in rs}.values())
        if rs:
            stmts += rel_statements(store, rel, src, Label.MODEL, rs, fresh=set())
    return stmts, len(stubs)
