"""What the console may run, decided from the engine's own plan of the statement.

The console never decides from its own reading of the text: the worker asks the engine for
the plan of exactly the statement it will run (`EXPLAIN`), and runs it only if every
operator of that plan is on an allow-list of pure reads. Anything else — writes, schema
changes, file reads and writes (LOAD FROM / LOAD CSV / COPY / EXPORT / IMPORT), procedures
and table functions, extensions, database and session commands (ATTACH, USE, DETACH,
CHECKPOINT, transactions), and any operator this module does not know — is refused.

- Embedded engine (Kùzu / LadybugDB): `EXPLAIN` returns the physical plan drawn as boxes.
  `kuzu_plan_operators` reads the boxes on a strict grid and refuses a drawing it cannot
  read with certainty (user text with line breaks or box characters could otherwise fake
  or shift a box), so an operator can be added by a trick, never hidden.
- Neo4j: the driver's result summary of `EXPLAIN` carries the plan as a tree of operators;
  the server's own query type ('r' = read only) must agree.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from graph.errors import QueryRefused


class PlanUnreadable(QueryRefused):
    """The engine's plan could not be read with certainty, so the query is refused."""


@dataclass(frozen=True)
class PlanOperator:
    """One operator of an engine plan."""

    name: str  # the engine's name: "SCAN_NODE_TABLE", "NodeByLabelScan"
    detail: str = ""  # the table function of a TABLE_FUNCTION_CALL ("READ_CSV"), else ""


# -- the embedded engine ----------------------------------------------------------------------
#: physical operators of pure reads (Kùzu 0.11.3 and LadybugDB 0.22.0), collected from the
#: plans of the console's read corpus (tests/test_console_sandbox.py) and reviewed one by one
KUZU_READ_OPERATORS: frozenset[str] = frozenset({
    "RESULT_COLLECTOR", "PROJECTION", "FILTER", "FLATTEN", "LIMIT", "SKIP", "UNWIND",
    "SCAN_NODE_TABLE", "PRIMARY_KEY_SCAN_NODE_TABLE", "SCAN_REL_TABLE",
    "HASH_JOIN_BUILD", "HASH_JOIN_PROBE", "INTERSECT_BUILD", "INTERSECT", "CROSS_PRODUCT",
    "AGGREGATE", "AGGREGATE_FINALIZE", "AGGREGATE_SCAN",
    "ORDER_BY", "ORDER_BY_MERGE", "ORDER_BY_SCAN", "TOP_K", "TOP_K_SCAN",
    "UNION_ALL_SCAN", "RECURSIVE_EXTEND", "PATH_PROPERTY_PROBE", "SEMI_MASKER",
    "MULTIPLICITY_REDUCER",
    "DUMMY_SINK", "DUMMY_SIMPLE_SINK",  # no-op ends of inner pipelines (paths returned)
    "TABLE_FUNCTION_CALL",  # only with a function of KUZU_READ_TABLE_FUNCTIONS
    "QUERY_PRIMARY_KEY_LOOKUP",  # LadybugDB: `MATCH (n {id: …})` reads the primary-key index
    "COUNT_REL_TABLE",  # LadybugDB: `MATCH ()-[e:T]->() RETURN count(e)` reads the table size
})
#: table functions the planner itself inserts into pure reads (scans of its own
#: intermediate results); every user-callable table function (LOAD FROM's READ_CSV /
#: READ_PARQUET / READ_JSON…, CALL show_tables(), current_setting…) is refused
KUZU_READ_TABLE_FUNCTIONS: frozenset[str] = frozenset({"READ_FTABLE"})

#: why a known non-read operator is refused (for the message); unknown ones are refused too
KUZU_REFUSED_WHY: dict[str, str] = {
    **dict.fromkeys(["COPY_TO", "EXPORT_DATABASE", "IMPORT_DATABASE", "COPY_RDF",
                     "PARTITIONER", "BATCH_INSERT", "NODE_BATCH_INSERT", "REL_BATCH_INSERT"],
                    "reads or writes files"),
    **dict.fromkeys(["INSERT", "SET_PROPERTY", "DELETE_", "MERGE", "CREATE_TABLE",
                     "CREATE_SEQUENCE", "CREATE_TYPE", "CREATE_MACRO", "DROP", "DROP_TABLE",
                     "ALTER", "COMMENT_ON", "EMPTY_RESULT", "CREATE_INDEX", "DROP_INDEX"],
                    "writes to the graph or changes its schema"),
    **dict.fromkeys(["ATTACH_DATABASE", "DETACH_DATABASE", "USE_DATABASE", "TRANSACTION",
                     "STANDALONE_CALL", "INSTALL_EXTENSION", "LOAD_EXTENSION",
                     "UNINSTALL_EXTENSION", "EXTENSION", "CREATE_GRAPH", "USE_GRAPH"],
                    "is a database or session command"),
    "TABLE_FUNCTION_CALL": "calls a table function (LOAD FROM reads files; CALL runs "
                           "functions of the system)",
    "IN_QUERY_CALL": "calls a table function",
    "GDS_CALL": "calls a graph algorithm procedure",
}

_HEADER = re.compile(r"([A-Z][A-Z0-9_]*)\[(\d+)\]")
_FUNCTION = re.compile(r"Function: ([A-Za-z0-9_]+)")


def _unreadable(why: str, *, hint: bool = True) -> PlanUnreadable:
    return PlanUnreadable(
        f"Refused: the engine's plan for this query could not be checked with certainty "
        f"({why})." + (" Line breaks, tabs or box-drawing characters inside a string or a "
                       "`quoted name` cause this; write the query without them." if hint else
                       " Nothing runs unchecked."))


def kuzu_plan_operators(plan: str) -> list[PlanOperator]:
    """Every operator of a Kùzu/LadybugDB `EXPLAIN` drawing, in operator-id order.

    Strict: the drawing must be a rectangle (in the engine's own column measure, see
    `_columns`) with no control characters;
    every '┌' must start a box whose first line is `NAME[id]`, and the ids must be exactly
    0..n-1. Anything else raises `PlanUnreadable` (a `QueryRefused`)."""
    lines = plan.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) < 6 or "Physical Plan" not in lines[2]:
        raise _unreadable("no 'Physical Plan' heading")
    if any(ch < " " or ch == "\x7f" for line in lines for ch in line):
        raise _unreadable("a control character in the drawing")
    grid = [_columns(line) for line in lines[5:]]
    if not grid:
        raise _unreadable("an empty plan")
    width = len(grid[0])
    if any(len(row) != width for row in grid):
        raise _unreadable("the drawing is not a rectangle")
    by_id: dict[int, PlanOperator] = {}
    for r, row in enumerate(grid):
        c = row.find("┌")
        while c >= 0:
            end = row.find("┐", c + 1)
            if end < 0 or set(row[c + 1:end]) - set("─┴") or r + 1 >= len(grid):
                raise _unreadable(f"a box corner without a box at line {r + 6}")
            below = grid[r + 1]
            match = _HEADER.fullmatch(below[c + 1:end].strip())
            if below[c] != "│" or below[end] != "│" or match is None:
                raise _unreadable(f"a box without an operator name at line {r + 7}")
            name, op_id = match.group(1), int(match.group(2))
            if op_id in by_id:
                raise _unreadable(f"operator id {op_id} appears twice")
            by_id[op_id] = PlanOperator(name, _box_function(grid, r + 2, c, end)
                                        if name == "TABLE_FUNCTION_CALL" else "")
            c = row.find("┌", end + 1)
    if sorted(by_id) != list(range(len(by_id))) or not by_id:
        raise _unreadable("operator ids are not 0..n-1")
    return [by_id[i] for i in range(len(by_id))]


def _columns(line: str) -> str:
    """The line laid out the way the engine pads it: a box-drawing character takes one
    column, any other character as many as its UTF-8 bytes ("\0" fills the extra ones).
    A box character typed by the user is padded as three columns, so a forged box breaks
    the rectangle instead of lining up."""
    return "".join(ch if ch.isascii() or "\u2500" <= ch <= "\u257f"
                   else ch + "\0" * (len(ch.encode()) - 1) for ch in line)


def _box_function(grid: list[str], first: int, left: int, right: int) -> str:
    """The first `Function: NAME` line of the box whose content starts at row `first`
    (the engine prints it before any expression, so user text cannot come first)."""
    for row in grid[first:]:
        if row[left] != "│":  # the bottom border: no Function line in this box
            return ""
        match = _FUNCTION.fullmatch(row[left + 1:right].strip())
        if match:
            return match.group(1).upper()
    return ""


def check_kuzu_plan(operators: Iterable[PlanOperator]) -> None:
    """Refuse unless every operator is a pure read (`QueryRefused` naming the first that
    is not, and why)."""
    for op in operators:
        if op.name == "TABLE_FUNCTION_CALL" and op.detail in KUZU_READ_TABLE_FUNCTIONS:
            continue
        if op.name in KUZU_READ_OPERATORS and op.name != "TABLE_FUNCTION_CALL":
            continue
        what = f"{op.name} ({op.detail})" if op.detail else op.name
        why = KUZU_REFUSED_WHY.get(op.name, "is not on the console's list of read operators")
        raise QueryRefused(f"Refused: the engine plans this query with {what}, which {why}. "
                           "The console runs reads only: no writes, no file access, no "
                           "procedures or table functions, no database or session commands.")


# -- Neo4j ------------------------------------------------------------------------------------
#: Neo4j 5 plan operators of pure reads (the Cypher manual's operator list, read operators
#: only), without the runtime suffix ("@neo4j")
NEO4J_READ_OPERATORS: frozenset[str] = frozenset({
    "ProduceResults", "Projection", "Filter", "Limit", "ExhaustiveLimit", "Skip", "Sort",
    "PartialSort", "Top", "PartialTop", "Distinct", "OrderedDistinct", "EagerAggregation",
    "OrderedAggregation", "NodeCountFromCountStore", "RelationshipCountFromCountStore",
    "AllNodesScan", "NodeByLabelScan", "NodeByIdSeek", "NodeByElementIdSeek",
    "NodeIndexSeek", "NodeUniqueIndexSeek", "NodeIndexScan", "NodeIndexContainsScan",
    "NodeIndexEndsWithScan", "NodeIndexSeekByRange", "NodeUniqueIndexSeekByRange",
    "MultiNodeIndexSeek", "IntersectionNodeByLabelsScan", "UnionNodeByLabelsScan",
    "SubtractionNodeByLabelsScan", "DirectedRelationshipTypeScan",
    "UndirectedRelationshipTypeScan", "DirectedAllRelationshipsScan",
    "UndirectedAllRelationshipsScan", "DirectedRelationshipByIdSeek",
    "UndirectedRelationshipByIdSeek", "DirectedRelationshipByElementIdSeek",
    "UndirectedRelationshipByElementIdSeek", "DirectedRelationshipIndexSeek",
    "UndirectedRelationshipIndexSeek", "DirectedRelationshipIndexScan",
    "UndirectedRelationshipIndexScan", "DirectedRelationshipIndexContainsScan",
    "UndirectedRelationshipIndexContainsScan", "DirectedRelationshipIndexEndsWithScan",
    "UndirectedRelationshipIndexEndsWithScan", "DirectedRelationshipIndexSeekByRange",
    "UndirectedRelationshipIndexSeekByRange", "DirectedUnionRelationshipTypesScan",
    "UndirectedUnionRelationshipTypesScan",
    "Expand(All)", "Expand(Into)", "OptionalExpand(All)", "OptionalExpand(Into)",
    "VarLengthExpand(All)", "VarLengthExpand(Into)", "VarLengthExpand(Pruning)",
    "VarLengthExpand(Pruning,BFS)", "BFSPruningVarExpand", "ShortestPath",
    "StatefulShortestPath(All)", "StatefulShortestPath(Into)", "Repeat(Trail)", "Trail",
    "NullifyMetadata", "ProjectEndpoints", "TriadicSelection", "TriadicBuild",
    "TriadicFilter", "CartesianProduct", "NodeHashJoin", "ValueHashJoin",
    "NodeLeftOuterHashJoin", "NodeRightOuterHashJoin", "Apply", "SemiApply",
    "AntiSemiApply", "LetSemiApply", "LetAntiSemiApply", "SelectOrSemiApply",
    "SelectOrAntiSemiApply", "LetSelectOrSemiApply", "LetSelectOrAntiSemiApply",
    "RollUpApply", "ConditionalApply", "AntiConditionalApply", "Optional", "Anti",
    "Argument", "ArgumentTracker", "Unwind", "Union", "OrderedUnion", "Eager",
    "CacheProperties", "AssertSameNode", "AssertSameRelationship", "EmptyRow",
    "PartitionedAllNodesScan", "PartitionedNodeByLabelScan", "PartitionedUnwind",
    "PartitionedNodeIndexScan", "PartitionedNodeIndexSeek",
    "PartitionedDirectedRelationshipTypeScan", "PartitionedUndirectedRelationshipTypeScan",
    "PartitionedDirectedAllRelationshipsScan", "PartitionedUndirectedAllRelationshipsScan",
})
NEO4J_REFUSED_WHY: dict[str, str] = {
    "LoadCSV": "reads a file or URL",
    "ProcedureCall": "calls a procedure",
    **dict.fromkeys(["TransactionApply", "TransactionForeach"], "commits transactions"),
    **dict.fromkeys(["Create", "Merge", "LockingMerge", "Delete", "DetachDelete",
                     "SetProperty", "SetProperties", "SetNodeProperty", "SetLabels",
                     "RemoveLabels", "SetPropertiesFromMap", "SetNodePropertiesFromMap",
                     "SetRelationshipProperty", "SetRelationshipPropertiesFromMap",
                     "Foreach", "SubqueryForeach", "EmptyResult"], "writes to the graph"),
}


def neo4j_plan_operators(plan: Mapping[str, Any] | None) -> list[PlanOperator]:
    """Every operator of the driver's `summary.plan` tree (depth first)."""
    if not plan:
        raise _unreadable("the server returned no plan", hint=False)
    out: list[PlanOperator] = []
    stack = [plan]
    while stack:
        node = stack.pop()
        name = str(node.get("operatorType") or node.get("operator_type") or "")
        if not name:
            raise _unreadable("an operator without a name", hint=False)
        out.append(PlanOperator(name.split("@", 1)[0]))
        stack.extend(reversed(list(node.get("children") or [])))
    return out


def check_neo4j_plan(operators: Iterable[PlanOperator], query_type: str | None) -> None:
    """Refuse unless the server calls the query read-only ('r') and every operator is a
    pure read."""
    for op in operators:
        if op.name not in NEO4J_READ_OPERATORS:
            why = NEO4J_REFUSED_WHY.get(op.name, "is not on the console's list of read "
                                                 "operators")
            raise QueryRefused(f"Refused: Neo4j plans this query with {op.name}, which {why}."
                               " The console runs reads only: no writes, no file access, no "
                               "procedures, no database or session commands.")
    if query_type != "r":
        raise QueryRefused(f"Refused: Neo4j classifies this query as {query_type!r}, not a "
                           "read-only query ('r').")


