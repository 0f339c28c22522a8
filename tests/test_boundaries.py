"""The layers keep their boundaries: data flows Hub → ingest → graph → analytics → pages.

- pages import neither `ingest` nor a database driver (only `app.py`, the one place that wires
  things, may call the first-run seed);
- Cypher lives in `graph/` only: no string in ingest/, analytics/, app_pages/ or app.py reads like a
  Cypher statement;
- analytics does not import ingest (it reads the graph, not the Hub);
- nothing edits `sys.path`: the project installs as a package (pyproject.toml), so benchmarks
  and tests import it as users do.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DRIVERS = {"kuzu", "ladybug", "real_ladybug", "neo4j"}
CYPHER = re.compile(r"\b(MATCH|MERGE|UNWIND|OPTIONAL MATCH|DETACH DELETE)\s*[\(\$]|\bRETURN\b.*\bAS\b"
                    r"|\bCREATE\s+(NODE|REL)\s+TABLE\b")


def _modules(*folders: str) -> list[Path]:
    out = []
    for folder in folders:
        path = REPO / folder
        out += [path] if path.suffix == ".py" else sorted(path.rglob("*.py"))
    return out


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _strings(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings]


@pytest.mark.parametrize("path", _modules("app_pages"), ids=lambda p: p.name)
def test_pages_import_no_ingest_and_no_driver(path):
    bad = _imports(path) & ({"ingest"} | DRIVERS)
    assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", _modules("analytics"), ids=lambda p: p.name)
def test_analytics_imports_no_ingest_and_no_driver(path):
    bad = _imports(path) & ({"ingest", "app_pages"} | DRIVERS)
    assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", _modules("ingest", "analytics", "app_pages", "app.py"),
                         ids=lambda p: str(p.relative_to(REPO)))
def test_no_cypher_outside_graph(path):
    found = [(line, text[:80]) for line, text in _strings(path) if CYPHER.search(text)]
    assert not found, f"Cypher in {path.relative_to(REPO)} (it belongs in graph/): {found}"


def _path_edits(tree: ast.AST) -> list[int]:
    """Lines that call `sys.path.<insert|append|extend>` or assign to `sys.path`."""
    def is_sys_path(node) -> bool:
        return (isinstance(node, ast.Attribute) and node.attr == "path"
                and isinstance(node.value, ast.Name) and node.value.id == "sys")
    lines = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("insert", "append", "extend")
                and is_sys_path(node.func.value)):
            lines.append(node.lineno)
        elif isinstance(node, ast.Assign) and any(is_sys_path(t) for t in node.targets):
            lines.append(node.lineno)
    return sorted(lines)


@pytest.mark.parametrize("path", _modules("app.py", "app_pages", "graph", "ingest", "analytics",
                                          "bench", "tests"),
                         ids=lambda p: str(p.relative_to(REPO)))
def test_no_sys_path_edits(path):
    found = _path_edits(ast.parse(path.read_text(), filename=str(path)))
    assert not found, f"{path.relative_to(REPO)} edits sys.path at lines {found}"


def test_the_checks_can_fail():
    """The patterns catch what they are meant to catch."""
    assert CYPHER.search("MATCH (m:Model) RETURN m.id AS id")
    assert CYPHER.search("UNWIND $rows AS r")
    assert not CYPHER.search("a match of the model id")
    assert "kuzu" in DRIVERS and "ingest" in _imports(REPO / "app.py")
    assert _path_edits(ast.parse("import sys\nsys.path.insert(0, 'x')\nsys.path = []")) == [2, 3]
    assert not _path_edits(ast.parse("paths = sorted(p for p in sys.path)"))


def test_every_derived_property_is_documented():
    from graph.schema import GROWTH_PROPERTIES, LICENCE_PROPERTIES

    doc = (REPO / "docs" / "schema.md").read_text()
    missing = [name for name, _ in GROWTH_PROPERTIES + LICENCE_PROPERTIES
               if f"`{name}`" not in doc]
    assert not missing, f"docs/schema.md does not describe {missing}"
