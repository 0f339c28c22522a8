"""The few places where the embedded engine's Cypher and Neo4j's Cypher differ, in one place.

Shared queries in `graph.queries` are written in the common subset and
call these methods for the rest; nothing else branches on the backend. `KUZU` serves both
embedded engines (Kùzu and its fork LadybugDB speak the same dialect).
"""
from __future__ import annotations


class Dialect:
    """Cypher fragments that differ between backends; `name` is for display only."""

    name: str = ""
    #: labels with more nodes than this are written one statement per row, not `UNWIND`
    #: (None: never; graph.queries._row_statements)
    unwind_max_nodes: int | None = None
    #: the graph lives on a server reached over Bolt (True) or in a local file (False)
    server: bool = False

    def rel_type(self, var: str) -> str:
        """The type name of relation variable `var`."""
        raise NotImplementedError

    def cast(self, expr: str, typ: str) -> str:
        """`expr` (usually a `$param` or `r.col` of an UNWIND row) as schema type `typ`."""
        raise NotImplementedError

    def year_month(self, expr: str) -> str:
        """An integer yyyymm of a timestamp expression."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{self.name} dialect>"


class KuzuDialect(Dialect):
    name = "kuzu"
    #: Kùzu 0.11 plans a `MATCH (n {id: r.x})` after `UNWIND` over a scan of the whole label,
    #: and a second one per row (~0.2 µs a node; a two-node `MATCH` as a join over both labels'
    #: scans ran out of buffer memory on the full graph for 84 rows). A statement per row looks
    #: the key up in the index instead (~2-5 ms a statement): the cheaper way above this many
    #: nodes in a label; below it, one UNWIND statement per 2,000 rows.
    unwind_max_nodes = 15_000

    def rel_type(self, var: str) -> str:
        return f"label({var})"

    def cast(self, expr: str, typ: str) -> str:
        # The engine infers a parameter's type from its values, so an all-null column (or a
        # timestamp sent as an ISO string) needs an explicit cast.
        return f"CAST({expr} AS {typ})"

    def year_month(self, expr: str) -> str:
        return f"date_part('year', {expr}) * 100 + date_part('month', {expr})"


class Neo4jDialect(Dialect):
    name = "neo4j"
    server = True

    def rel_type(self, var: str) -> str:
        return f"type({var})"

    def cast(self, expr: str, typ: str) -> str:
        # Dynamically typed, except datetimes, which travel as ISO strings.
        return f"datetime({expr})" if typ == "TIMESTAMP" else expr

    def year_month(self, expr: str) -> str:
        return f"{expr}.year * 100 + {expr}.month"


KUZU: Dialect = KuzuDialect()
NEO4J: Dialect = Neo4jDialect()
