"""The few places where Kùzu's Cypher and Neo4j's Cypher differ, in one place.

Shared queries in `graph.queries` are written in the common subset and call these for the rest.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dialect:
    name: str
    rel_type_fn: str  # Kùzu: label(r); Neo4j: type(r)
    path_rel_types: str  # expression giving the list of relation types along path `p`
    path_node_ids: str  # expression giving the list of node ids along path `p`

    def rel_type(self, var: str) -> str:
        return f"{self.rel_type_fn}({var})"

    def year_month(self, expr: str) -> str:
        """An integer yyyymm of a timestamp expression."""
        if self.name == "kuzu":
            return f"date_part('year', {expr}) * 100 + date_part('month', {expr})"
        return f"{expr}.year * 100 + {expr}.month"


KUZU = Dialect("kuzu", "label", "list_transform(rels(p), x -> label(x))",
              "list_transform(nodes(p), x -> x.id)")
NEO4J = Dialect("neo4j", "type", "[x IN relationships(p) | type(x)]",
                "[x IN nodes(p) | x.id]")
