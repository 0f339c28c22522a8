"""Records → graph rows → the graph, by bulk import (first load) or idempotent upserts.

`GraphRows.build()` turns parsed records into node and relation rows once; the two load paths
only differ in how they write them: `bulk_write` uses the engine's own bulk import (Kùzu
`COPY`), `upsert_write` runs `MERGE` statements in one transaction together with the run's
checkpoint, so an ingest killed at any moment resumes without duplicates or lost rows.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

import pyarrow as pa

from graph import queries as q
from graph.schema import LINEAGE_RELS, Label, Rel
from graph.store import GraphStore, chunked
from ingest.lineage import IdResolver
from ingest.records import DatasetRecord, ModelRecord, SpaceRecord

# Namespaces we know to be organisations. Listing records carry no account type, so every
# other author is stored as a User; `HubSource` can refine this where the Hub is reachable.
KNOWN_ORGS = frozenset({
    "google-bert", "FacebookAI", "openai-community", "distilbert", "google-t5", "albert",
    "almanach", "facebook", "google", "microsoft", "openai", "stabilityai", "runwayml",
    "CompVis", "EleutherAI", "bigscience", "allenai", "huggingface", "meta-llama", "mistralai",
    "Qwen", "deepseek-ai", "nvidia", "intfloat", "BAAI", "sentence-transformers", "unsloth",
    "tiiuae", "bigcode", "HuggingFaceH4", "HuggingFaceTB", "apple", "amazon", "Salesforce",
    "ibm", "ibm-granite", "databricks", "mosaicml", "lmsys", "THUDM", "01-ai", "internlm",
    "Helsinki-NLP", "timm", "pyannote", "speechbrain", "jinaai", "nomic-ai", "cardiffnlp",
    "dslim", "deepset", "Intel", "AdaptLLM", "TheBlokeAI", "mlx-community", "lmstudio-community",
})


_ORG, _USER = Label.ORGANIZATION, Label.USER


def author_label(author: str) -> Label:
    return _ORG if author in KNOWN_ORGS else _USER


def _ts(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=None) if value is not None else None


def iso_utc(value: datetime | None) -> str | None:
    """A timestamp parameter: ISO 8601 with a `T`, naive UTC (Kùzu CASTs it, Neo4j datetime()s it)."""
    return value.replace(tzinfo=None).isoformat() if value is not None else None


@dataclass
class LineageStats:
    links: int = 0
    parents_written: set = field(default_factory=set)
    resolved_exact: set = field(default_factory=set)
    resolved_alias: set = field(default_factory=set)
    how: dict = field(default_factory=dict)  # parent as written → Resolution.how
    sources: Counter = field(default_factory=Counter)  # links per (source, inferred)

    def note(self, parent: str, how: str, known: bool) -> None:
        self.parents_written.add(parent)
        self.how.setdefault(parent, how)
        if known:
            (self.resolved_exact if how == "exact" else self.resolved_alias).add(parent)

    def as_dict(self) -> dict[str, Any]:
        n = len(self.parents_written)
        resolved = len(self.resolved_exact) + len(self.resolved_alias)
        known = {p for p in self.resolved_exact | self.resolved_alias}
        by_how = Counter(h for p, h in self.how.items() if p in known)
        unresolved = Counter(h for p, h in self.how.items() if p not in known)
        return {"lineage_links": self.links, "distinct_parents": n,
                "parents_resolved": resolved, "parents_resolved_by_alias": len(self.resolved_alias),
                "parents_resolved_share": round(resolved / n, 4) if n else None,
                "parents_resolved_by": dict(by_how.most_common()),
                "parents_unresolved_by_reason": dict(unresolved.most_common()),
                "links_by_source": {f"{s}{' (inferred)' if i else ''}": c
                                    for (s, i), c in sorted(self.sources.items())}}


@dataclass
class GraphRows:
    """Node and relation rows for one batch (or one whole first load)."""

    nodes: dict[Label, list[dict]] = field(default_factory=lambda: defaultdict(list))
    refs: dict[Label, set[str]] = field(default_factory=lambda: defaultdict(set))
    rels: dict[tuple[Rel, Label, Label], list[dict]] = field(
        default_factory=lambda: defaultdict(list))

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
            rows._add_space(s)
        return rows

    def _author(self, author: str | None, target: Label, rid: str) -> None:
        if author:
            label = author_label(author)
            self.refs[label].add(author)
            self.rels[(Rel.PUBLISHED, label, target)].append({"src": author, "dst": rid})

    def _add_model(self, m: ModelRecord, resolver: IdResolver, rejects: Counter,
                   stats: LineageStats) -> None:
        self.nodes[Label.MODEL].append({
            "id": m.id, "author": m.author, "createdAt": m.created_at,
            "lastModified": m.last_modified, "likes": m.likes, "downloads": m.downloads,
            "pipelineTag": m.pipeline_tag, "libraryName": m.library, "tags": list(m.tags),
            "gated": m.gated, "parameters": m.parameters, "license": m.license,
            "cardText": m.card_text, "stub": False,
            "downloadsAllTime": m.downloads_all_time, "trendingScore": m.trending_score,
            "childrenModelCount": m.children_count})
        self._author(m.author, Label.MODEL, m.id)
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
            self.rels[(Rel.HAS_LICENSE, Label.MODEL, Label.LICENSE)].append({"src": m.id, "dst": lic})
        for ds in m.datasets:
            self.refs[Label.DATASET].add(ds)
            self.rels[(Rel.TRAINED_ON, Label.MODEL, Label.DATASET)].append({"src": m.id, "dst": ds})
        for paper in m.arxiv:
            self.refs[Label.PAPER].add(paper)
            self.rels[(Rel.CITES, Label.MODEL, Label.PAPER)].append({"src": m.id, "dst": paper})
        for space in m.spaces:
            self.refs[Label.SPACE].add(space)
            self.rels[(Rel.USES_MODEL, Label.SPACE, Label.MODEL)].append({"src": space, "dst": m.id})
        seen_parents = set()
        for link in m.base_models:
            stats.links += 1
            res = resolver.explain(link.parent)
            stats.note(link.parent, res.how, res.known)
            parent = res.id if res.known else link.parent
            if parent == m.id:
                rejects["lineage_self_loop"] += 1
                continue
            if parent in seen_parents:
                rejects["lineage_duplicate_link"] += 1
                continue
            seen_parents.add(parent)
            stats.sources[(link.source, link.inferred)] += 1
            self.refs[Label.MODEL].add(parent)
            self.rels[(LINEAGE_RELS[link.relation], Label.MODEL, Label.MODEL)].append(
                {"src": m.id, "dst": parent, "inferred": link.inferred, "source": link.source})

    def _add_dataset(self, d: DatasetRecord) -> None:
        self.nodes[Label.DATASET].append({
            "id": d.id, "author": d.author, "createdAt": d.created_at,
            "lastModified": d.last_modified, "likes": d.likes, "downloads": d.downloads,
            "tags": list(d.tags), "gated": d.gated, "license": d.license,
            "description": d.description, "stub": False})
        self._author(d.author, Label.DATASET, d.id)
        for task in d.tasks:
            self.refs[Label.TASK].add(task)
            self.rels[(Rel.HAS_TASK, Label.DATASET, Label.TASK)].append({"src": d.id, "dst": task})
        for lic in d.licenses:
            self.refs[Label.LICENSE].add(lic)
            self.rels[(Rel.HAS_LICENSE, Label.DATASET, Label.LICENSE)].append({"src": d.id, "dst": lic})
        for paper in d.arxiv:
            self.refs[Label.PAPER].add(paper)
            self.rels[(Rel.CITES, Label.DATASET, Label.PAPER)].append({"src": d.id, "dst": paper})

    def _add_space(self, s: SpaceRecord) -> None:
        self.nodes[Label.SPACE].append({
            "id": s.id, "author": s.author, "createdAt": s.created_at,
            "lastModified": s.last_modified, "likes": s.likes, "sdk": s.sdk, "stub": False})
        self._author(s.author, Label.SPACE, s.id)
        for mid in s.models:
            self.refs[Label.MODEL].add(mid)
            self.rels[(Rel.USES_MODEL, Label.SPACE, Label.MODEL)].append({"src": s.id, "dst": mid})
        for did in s.datasets:
            self.refs[Label.DATASET].add(did)
            self.rels[(Rel.USES_DATASET, Label.SPACE, Label.DATASET)].append({"src": s.id, "dst": did})

    # -- lineage hygiene -------------------------------------------------------------------
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
            values = [_ts(v) for v in values]
        name = (rename or {}).get(c, c)
        data[name] = pa.array(values, type=_ARROW.get(c, pa.string()))
    return pa.table(data)


def bulk_write(store: GraphStore, rows: GraphRows) -> None:
    """First load into an empty graph: one bulk import per table."""
    for label, nodes in rows.nodes.items():
        if nodes:
            store.bulk_insert_nodes(label, _table(nodes))
    for label, ids in rows.refs.items():
        known = {n["id"] for n in rows.nodes.get(label, ())}
        missing = sorted(ids - known)
        if not missing:
            continue
        table = {"id": pa.array(missing, pa.string())}
        if label in (Label.MODEL, Label.DATASET, Label.SPACE):
            table["stub"] = pa.array([True] * len(missing), pa.bool_())
        store.bulk_insert_nodes(label, pa.table(table))
    for (rel, src, dst), rels in rows.rels.items():
        if rels:
            store.bulk_insert_rels(rel, src, dst, _table(rels, {"src": "from", "dst": "to"}))


_OWNED_RELS = {  # outgoing relations a record owns: replaced when the record is upserted again
    Label.MODEL: [*LINEAGE_RELS.values(), Rel.HAS_TASK, Rel.USES_LIBRARY, Rel.HAS_LICENSE,
                  Rel.TRAINED_ON, Rel.CITES],
    Label.DATASET: [Rel.HAS_TASK, Rel.HAS_LICENSE, Rel.CITES],
    Label.SPACE: [Rel.USES_MODEL, Rel.USES_DATASET],
}


def upsert_statements(store: GraphStore, rows: GraphRows) -> list[tuple[str, dict]]:
    """MERGE statements that make the graph hold exactly these records (idempotent)."""
    stmts: list[tuple[str, dict]] = []
    for label, nodes in rows.nodes.items():
        if not nodes:
            continue
        ids = [n["id"] for n in nodes]
        payload = [_iso_dates(n) for n in nodes]
        for chunk in chunked(payload, 2000):
            stmts.append((q.upsert_nodes(store, label, list(chunk[0].keys())), {"rows": chunk}))
        for rel in _OWNED_RELS.get(label, []):
            stmts.append((q.delete_out_rels(rel, label), {"ids": ids}))
    for label, ids in rows.refs.items():
        if label in (Label.MODEL, Label.DATASET, Label.SPACE):
            stmts.append((q.ensure_stub_nodes(label), {"ids": sorted(ids)}))
        else:
            stmts.append((q.ensure_nodes(label), {"ids": sorted(ids)}))
    for (rel, src, dst), rels in rows.rels.items():
        if not rels:
            continue
        cols = [c for c in rels[0] if c not in ("src", "dst")]
        for chunk in chunked(rels, 2000):
            stmts.append((q.upsert_rels(store, rel, src, dst, cols),
                          {"rows": [_iso_dates(r) for r in chunk]}))
    return stmts


def _iso_dates(row: dict) -> dict:
    return {k: (iso_utc(v) if k in _DATES else v) for k, v in row.items()}


def relink_statements(store: GraphStore, resolver: IdResolver) -> list[tuple[str, dict]]:
    """Stub parents that now resolve to a real model (its record arrived later in the stream,
    or under its new name): move their edges onto that model and drop the stub."""
    stmts: list[tuple[str, dict]] = []
    for stub in q.stub_model_ids(store):
        target, known = resolver.resolve(stub)
        if not known or target == stub:
            continue
        params = {"stub": stub, "target": target}
        for rel in [*LINEAGE_RELS.values(), Rel.USES_MODEL]:
            stmts.append((q.relink_stub(store, rel), params))
        stmts.append((q.delete_stub_model(), params))
    return stmts
