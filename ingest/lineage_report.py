"""What the graph's lineage rests on: parent ids that resolve to no model, by reason.

`resolution_report(store)` classifies every stub parent (a model named as a base that no record
describes) with `IdResolver.explain` over the graph's real models: local paths, placeholders,
ambiguous bare names, unknown namespaces, repos deleted or renamed… and counts the stubs that
would resolve now (a relink on the next ingest moves their edges).
"""
from __future__ import annotations

from collections import defaultdict

from graph import queries as q
from graph.store import GraphStore
from ingest.lineage import UNRESOLVED_REASONS, IdResolver


def resolver_from_store(store: GraphStore) -> IdResolver:
    """An `IdResolver` over the graph's real models, with downloads and parent mentions."""
    stats = q.model_resolution_stats(store)
    ids = stats["id"].tolist()
    downloads = dict(zip(ids, stats["downloads"].fillna(0).astype("int64").tolist()))
    refs = dict(zip(ids, stats["parents_named"].fillna(0).astype("int64").tolist()))
    return IdResolver(ids, downloads=downloads, references=refs)


def resolution_report(store: GraphStore, *, examples: int = 5,
                      resolver: IdResolver | None = None) -> dict:
    """Stub parents by reason: parents, links and example ids per reason."""
    resolver = resolver or resolver_from_store(store)
    stubs = q.stub_parent_links(store)
    rows: dict[str, dict] = defaultdict(lambda: {"parents": 0, "links": 0, "examples": []})
    resolvable = 0
    for sid, links in zip(stubs["id"], stubs["links"]):
        res = resolver.explain(sid)
        if res.known:
            resolvable += 1
            continue
        row = rows[res.how]
        row["parents"] += 1
        row["links"] += int(links)
        if len(row["examples"]) < examples:
            row["examples"].append(sid)
    ordered = dict(sorted(rows.items(), key=lambda kv: -kv[1]["parents"]))
    for reason, row in ordered.items():
        row["meaning"] = UNRESOLVED_REASONS.get(reason, "")
    return {"stubs": int(len(stubs)), "resolvable_now": resolvable,
            "unresolved_by_reason": ordered}
