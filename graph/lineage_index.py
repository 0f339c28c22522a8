"""The lineage subgraph of one immutable graph generation, held in memory as adjacency arrays.

Why: the embedded engines answer lineage walks slowly on the full graph. A variable-length
match over the five lineage relation tables spends 0.2-0.5 s in its recursive extend for a
5k-model family, and a level-by-level `UNWIND $frontier` hop is planned as a hash join over
all 127k lineage edges (0.7-1.5 s per level); only single-key lookups are fast (`bench.lineage`
has the figures). The lineage subgraph itself is small (127k edges between 127k models on the
full snapshot, ~30 MB with the models' display properties), so a read-only store loads it once
per generation and walks it with numpy: each ancestors / descendants / family-size call then
costs a few milliseconds and is exact (same shortest depths, same tie-breaks as the Cypher walk
in `graph.queries`, which stays the path for stores whose data can change, such as Neo4j).

Built by two shared Cypher queries (`graph.queries.lineage_edges`, `graph.queries.models_frame`),
so it is the same on every backend; `save`/`load` keep it beside the generation's other
derived results (`<generation>/results/lineage/`).
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from graph.schema import REL_TO_RELATION


def _codes(values: pa.Array, ids: pa.Array) -> np.ndarray:
    return pc.index_in(values, value_set=ids).to_numpy(zero_copy_only=False)


#: relation types in sorted order: a code's order is its name's order (tie-breaks match Cypher's)
REL_NAMES: tuple[str, ...] = tuple(sorted(REL_TO_RELATION))
RESULTS_NAME = "lineage"


@dataclass(frozen=True)
class Walk:
    """Nodes reached by a breadth-first walk, nearest first, sorted by id within a level."""

    node: np.ndarray  # node index (into LineageIndex.ids)
    via: np.ndarray  # the neighbour one level nearer on a shortest path (smallest id)
    rel: np.ndarray  # code (into REL_NAMES) of the edge between node and via
    depth: np.ndarray  # shortest number of steps from the start

    def __len__(self) -> int:
        return len(self.node)


class LineageIndex:
    """Adjacency arrays over every model that has a lineage edge; node i is `ids[i]` (sorted,
    so a smaller index is a smaller id) and row i of `table` its properties."""

    def __init__(self, table: pa.Table, child: np.ndarray, parent: np.ndarray, rel: np.ndarray):
        """`table`: one row per node, sorted by a unique `id` column, with the models'
        properties; `child`, `parent`: node indices of each edge; `rel`: REL_NAMES codes."""
        self.table = table.combine_chunks()
        self.ids = self.table.column("id").to_numpy(zero_copy_only=False)
        self.child = np.asarray(child, dtype=np.int64)
        self.parent = np.asarray(parent, dtype=np.int64)
        self.rel = np.asarray(rel, dtype=np.int8)
        self._relations = pa.array([REL_TO_RELATION[r] for r in REL_NAMES])
        n = len(self.ids)
        # edges grouped by parent (walking down) and by child (walking up), each group sorted
        # by the neighbour's index then relation code, so "first" means the smallest
        self._down = np.lexsort((self.rel, self.child, self.parent))
        self._up = np.lexsort((self.rel, self.parent, self.child))
        self._down_ptr = np.searchsorted(self.parent[self._down], np.arange(n + 1))
        self._up_ptr = np.searchsorted(self.child[self._up], np.arange(n + 1))

    # -- construction --------------------------------------------------------------------
    @classmethod
    def from_frames(cls, edges: pd.DataFrame, models: pd.DataFrame) -> "LineageIndex":
        """From `edges` (child, parent, rel: relation type names) and `models` (an `id`
        column and the properties to return; rows for models not in `edges` are ignored,
        missing ones get nulls)."""
        child = pa.array(edges["child"], type=pa.string())
        parent = pa.array(edges["parent"], type=pa.string())
        ids = pc.unique(pa.concat_arrays([child, parent]))
        ids = ids.take(pc.sort_indices(ids))
        rel = pc.index_in(pa.array(edges["rel"], type=pa.string()),
                          value_set=pa.array(REL_NAMES))
        if rel.null_count:
            raise ValueError(f"unknown relation types: {set(edges['rel']) - set(REL_NAMES)}")
        props = pa.Table.from_pandas(models.drop_duplicates("id"), preserve_index=False)
        rows = pc.index_in(ids, value_set=props.column("id").cast(pa.string()))
        table = pa.table({"id": ids, **{name: props.column(name).take(rows)
                                        for name in props.column_names if name != "id"}})
        return cls(table, _codes(child, ids), _codes(parent, ids),
                   rel.to_numpy(zero_copy_only=False))

    @classmethod
    def build(cls, store) -> "LineageIndex":
        """Read the lineage subgraph of `store` (two queries; ~2-10 s on the full graph)."""
        from graph import queries as q

        edges = q.lineage_edges(store)
        ids = sorted(set(edges["child"]) | set(edges["parent"]))
        return cls.from_frames(edges, q.models_frame(store, ids))

    def save(self, folder: Path) -> Path:
        """Write the index under `folder/lineage/` (atomically: a reader sees all or none)."""
        out = Path(folder) / RESULTS_NAME
        tmp = out.with_name(out.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        pq.write_table(self.table, tmp / "nodes.parquet")
        pq.write_table(pa.table({"child": self.child.astype(np.int32),
                                 "parent": self.parent.astype(np.int32), "rel": self.rel}),
                       tmp / "edges.parquet")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
        return out

    @classmethod
    def load(cls, folder: Path) -> "LineageIndex | None":
        """The index saved under `folder/lineage/`, or None if there is none."""
        src = Path(folder) / RESULTS_NAME
        try:
            table = pq.read_table(src / "nodes.parquet")
            edges = pq.read_table(src / "edges.parquet")
        except FileNotFoundError:
            return None
        return cls(table, *(edges.column(c).to_numpy() for c in ("child", "parent", "rel")))

    # -- lookups -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    def node(self, model_id: str) -> int:
        """Index of `model_id`, -1 when it has no lineage edge at all."""
        i = int(np.searchsorted(self.ids, model_id))
        return i if i < len(self.ids) and self.ids[i] == model_id else -1

    def walk(self, start: int, max_depth: int, *, up: bool) -> Walk:
        """Breadth-first from node `start` to parents (up) or children (down), `max_depth`
        levels at most; each node once, at its shortest depth, via its smallest neighbour
        one level nearer (and that edge's smallest relation type)."""
        ptr, order = (self._up_ptr, self._up) if up else (self._down_ptr, self._down)
        far, near = (self.parent, self.child) if up else (self.child, self.parent)
        seen = np.zeros(len(self.ids), dtype=bool)
        seen[start] = True
        frontier = np.array([start], dtype=np.int64)
        parts: list[tuple[np.ndarray, ...]] = []
        for depth in range(1, max_depth + 1):
            lo, hi = ptr[frontier], ptr[frontier + 1]
            counts = hi - lo
            total = int(counts.sum())
            if total == 0:
                break
            # positions lo[k] .. hi[k]-1 of every frontier node, concatenated
            offsets = np.repeat(lo - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
            edges = order[offsets + np.arange(total)]
            edges = edges[~seen[far[edges]]]
            if len(edges) == 0:
                break
            nodes, vias, rels = far[edges], near[edges], self.rel[edges]
            first = np.lexsort((rels, vias, nodes))
            keep = first[np.r_[True, nodes[first][1:] != nodes[first][:-1]]]
            frontier = nodes[keep]
            seen[frontier] = True
            parts.append((frontier, vias[keep], rels[keep],
                          np.full(len(keep), depth, dtype=np.int64)))
        if not parts:
            empty = np.array([], dtype=np.int64)
            return Walk(empty, empty, empty.astype(np.int8), empty)
        return Walk(*(np.concatenate(cols) for cols in zip(*parts)))

    def has_parent(self, nodes: np.ndarray) -> np.ndarray:
        """Whether each node has at least one lineage parent."""
        return self._up_ptr[nodes + 1] > self._up_ptr[nodes]

    def child_counts(self, node: int) -> dict[str, int]:
        """Direct children of `node` per relation type name (edges, as the Hub counts them)."""
        rels = self.rel[self._down[self._down_ptr[node]:self._down_ptr[node + 1]]]
        counts = np.bincount(rels, minlength=len(REL_NAMES))
        return {name: int(n) for name, n in zip(REL_NAMES, counts)}

    def frame(self, walk: Walk, via_name: str, *, order: np.ndarray | None = None,
              extra: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
        """A walk as the lineage frames of `graph.queries`: id, depth, <via_name>, the models'
        properties, the `extra` columns, relation; rows in walk order or `order`."""
        sel = np.arange(len(walk)) if order is None else order
        nodes = walk.node[sel]
        props = self.table.take(nodes)
        cols = {"id": props.column("id"), "depth": pa.array(walk.depth[sel]),
                via_name: self.table.column("id").take(walk.via[sel])}
        cols.update((name, props.column(name)) for name in props.column_names if name != "id")
        cols.update((name, pa.array(values[sel])) for name, values in (extra or {}).items())
        cols["relation"] = self._relations.take(walk.rel[sel])
        return pa.table(cols).to_pandas()

    def downloads(self, nodes: np.ndarray) -> np.ndarray:
        """The models' download counts (NaN where unknown)."""
        col = self.table.column("downloads").take(nodes)
        return col.to_numpy(zero_copy_only=False).astype(np.float64)
