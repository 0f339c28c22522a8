"""The Cypher console: user-typed Cypher, read-only, capped, time-limited, sandboxed.

What decides is the engine, in a separate worker process (`graph.sandbox`):

1. Limits on the raw text (size, bracket nesting), because the engine's parser is
   superlinear in both and can crash on deep nesting (`graph.sandbox.check_text_limits`).
2. A lexical first filter (`check_read_only`, this module): cheap and gives clear messages
   ("Refused: DELETE is not allowed…") for the obvious cases, without starting anything.
   It is *not* what admits a query: it can only refuse. It reads block comments both ways
   the engines do (`/* **/` closes the comment for Neo4j, not for Kùzu's lexer) and
   refuses a keyword seen under either reading.
3. The engine's plan of exactly the statement that will run (`EXPLAIN`), every operator on
   an allow-list of pure reads (`graph.sandbox_plan`), on Kùzu/LadybugDB and on Neo4j.
4. The operating system around the worker (`graph.sandbox_os`): a clean environment,
   Landlock (no file opened but Python's own, read-only — the database file is open
   already; no writes, no network), a memory ceiling and a wall-clock kill watched from
   the app, its own read-only connection.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from graph.errors import QueryRefused
from graph.sandbox import ConsoleResult, ConsoleSandbox, SandboxLimits, SandboxTarget

if TYPE_CHECKING:
    from graph.store import GraphStore

#: clause keywords refused anywhere outside string literals and comments
FORBIDDEN: frozenset[str] = frozenset({
    # writes
    "CREATE", "MERGE", "SET", "DELETE", "DETACH", "REMOVE", "FOREACH", "TRUNCATE",
    # schema / DDL
    "DROP", "ALTER", "RENAME", "COMMENT",
    # procedures, files, extensions, databases, transactions, admin
    "CALL", "LOAD", "COPY", "INSTALL", "UNINSTALL", "ATTACH", "USE", "EXPORT", "IMPORT",
    "CHECKPOINT", "BEGIN", "COMMIT", "ROLLBACK", "GRANT", "REVOKE", "DENY", "START", "STOP",
    "TERMINATE", "ENABLE", "SHOW", "PROFILE", "EXPLAIN",
})
#: the first keyword of an accepted statement
READ_STARTS: frozenset[str] = frozenset({"MATCH", "OPTIONAL", "WITH", "UNWIND", "RETURN"})

DEFAULT_ROW_CAP = 1000
DEFAULT_TIMEOUT_S = SandboxLimits().timeout_s  # HUBATLAS_CONSOLE_TIMEOUT_S, default 10 s


@dataclass
class Lexed:
    """The statement with literals and comments blanked out, and its keyword tokens."""

    code: str  # same length as the input; strings → '""', comments/identifiers → spaces
    words: list[tuple[str, int]]  # (UPPER word, offset) outside literals and comments


def _comment_end(text: str, start: int, *, star_pairs: bool) -> int:
    """Index just past the block comment opened at `start`, or -1 if it never closes.

    star_pairs=False: the first `*/` closes it (Neo4j). star_pairs=True: Kùzu's ANTLR rule
    `'/*' (~'*' | '*' ~'/')* '*/'`, where a `*` swallows the next character, so `/* **/`
    does not close."""
    if not star_pairs:
        j = text.find("*/", start + 2)
        return -1 if j < 0 else j + 2
    i, n = start + 2, len(text)
    while i < n:
        if text[i] == "*":
            if i + 1 < n and text[i + 1] == "/":
                return i + 2
            i += 2
        else:
            i += 1
    return -1


def _lex(text: str, *, escapes: bool = True, strict: bool = True,
         star_pairs: bool = False) -> Lexed:
    """Blank out comments and literals the way an engine's lexer reads them.

    `escapes`: a backslash escapes the next character in a string (both Kùzu and Neo4j do
    this; checked in tests/test_console.py); `strict`: an unterminated literal is refused
    (otherwise it runs to the end of the text); `star_pairs`: Kùzu's reading of block
    comments (see `_comment_end`)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        two = text[i:i + 2]
        if two == "//":  # to the end of the line: \n or \r, as the engines' lexers end it
            ends = [k for k in (text.find("\n", i), text.find("\r", i)) if k >= 0]
            j = min(ends) if ends else n
            out.append(" " * (j - i))
            i = j
        elif two == "/*":
            j = _comment_end(text, i, star_pairs=star_pairs)
            if j < 0:
                if strict:
                    raise QueryRefused("Refused: unterminated /* comment.")
                j = n
            out.append(" " * (j - i))
            i = j
        elif ch in ("'", '"'):
            j = i + 1
            while j < n and text[j] != ch:
                j += 2 if escapes and text[j] == "\\" else 1
            if j >= n:
                if strict:
                    raise QueryRefused("Refused: unterminated string literal.")
                j = n
            seg = min(j + 1, n) - i
            out.append((ch + " " * (seg - 2) + ch)[:seg])
            i = j + 1
        elif ch == "`":
            j = i + 1
            while True:
                j = text.find("`", j)
                if j < 0:
                    if strict:
                        raise QueryRefused("Refused: unterminated `quoted identifier`.")
                    j = n - 1
                    break
                if text[j:j + 2] == "``":  # an escaped backtick inside the identifier
                    j += 2
                    continue
                break
            out.append("_" * (j + 1 - i))  # an identifier, never a keyword
            i = j + 1
        else:
            out.append(ch)
            i += 1
    code = "".join(out)
    words: list[tuple[str, int]] = []
    i = 0
    while i < len(code):
        if code[i].isascii() and (code[i].isalpha() or code[i] == "_"):
            j = i
            while j < len(code) and code[j].isascii() and (code[j].isalnum() or code[j] == "_"):
                j += 1
            words.append((code[i:j].upper(), i))
            i = j
        else:
            i += 1
    return Lexed(code, words)


def _is_property_key(code: str, offset: int) -> bool:
    """`n.set` / `n . delete`: a word right after a '.' is a property key, not a clause."""
    k = offset - 1
    while k >= 0 and code[k] in " \t\r\n":
        k -= 1
    return k >= 0 and code[k] == "." and not (k > 0 and code[k - 1] == ".")  # not `*1..2`


def _refuse_forbidden(lexed: Lexed) -> None:
    for word, offset in lexed.words:
        if word in FORBIDDEN and not _is_property_key(lexed.code, offset):
            raise QueryRefused(
                f"Refused: {word} is not allowed in the console: it is read-only (no writes, "
                f"schema changes, procedure calls, file access or transactions).")


def check_read_only(query: str) -> str:
    """The lexical first filter: refuse anything that is clearly not one read-only
    statement; return it without a trailing ';'. Both comment readings (Neo4j's and Kùzu's)
    must pass. Passing this admits nothing by itself: the engine's plan decides.

    Raises `graph.errors.QueryRefused` with a message naming what was refused.
    """
    if query is None or not query.strip():
        raise QueryRefused("Refused: the query is empty.")
    statement = query
    for star_pairs in (False, True):
        statement = _check_reading(query, _lex(query, star_pairs=star_pairs))
    return statement


def _check_reading(query: str, lexed: Lexed) -> str:
    code = lexed.code
    for pos, ch in enumerate(code):
        if not ch.isascii():
            raise QueryRefused(
                f"Refused: non-ASCII character U+{ord(ch):04X} outside a string literal "
                f"(at offset {pos}); only ASCII Cypher is accepted.")
    body, statement = code.rstrip(), query
    if body.endswith(";"):  # one trailing ';' (maybe followed by a comment) is harmless
        body = body[:-1]
        statement = query[:len(body)]
    if ";" in body:
        raise QueryRefused("Refused: multiple statements (';') are not allowed; run one "
                           "read-only query at a time.")
    _refuse_forbidden(lexed)
    first = lexed.words[0][0] if lexed.words else ""
    if first not in READ_STARTS:
        raise QueryRefused(
            f"Refused: a console query must start with one of {', '.join(sorted(READ_STARTS))}"
            f" (found {first or 'no keyword'!s}).")
    return statement.rstrip()


def run_console_query(runner: "ConsoleSandbox | GraphStore", query: str, *,
                      row_cap: int = DEFAULT_ROW_CAP,
                      timeout_s: float = DEFAULT_TIMEOUT_S) -> ConsoleResult:
    """Run one user query in the console's sandbox; at most `row_cap` rows.

    `runner` is a `graph.sandbox.ConsoleSandbox` (the page keeps a warm one per graph
    generation), or a store, for which a one-off worker over the same graph is started.
    Raises QueryRefused, QueryTimeout, QueryError or `graph.sandbox.ConsoleFailure`.
    """
    if isinstance(runner, ConsoleSandbox):
        return runner.run(query, row_cap=row_cap, timeout_s=timeout_s)
    with ConsoleSandbox(SandboxTarget.for_store(runner), max_workers=1, warm=False) as box:
        return box.run(query, row_cap=row_cap, timeout_s=timeout_s)


def display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Nodes, relationships, maps and lists as JSON text so any result can be shown in a
    table; scalars (and nulls) are left as they are."""
    import json

    def cell(v):
        if isinstance(v, (dict, list, tuple)):
            return json.dumps(v, default=str, ensure_ascii=False)
        return v

    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object and out[col].map(
                lambda v: isinstance(v, (dict, list, tuple))).any():
            out[col] = out[col].map(cell)
    return out


EXAMPLES: dict[str, str] = {
    "Most-liked models": (
        "MATCH (m:Model)\nWHERE m.likes IS NOT NULL\n"
        "RETURN m.id AS id, m.likes AS likes, m.downloads AS downloads\n"
        "ORDER BY likes DESC LIMIT 20"),
    "Fine-tunes of a base model": (
        "MATCH (c:Model)-[:FINETUNE_OF]->(p:Model {id: 'meta-llama/Meta-Llama-3-8B'})\n"
        "RETURN c.id AS child, c.downloads AS downloads\nORDER BY downloads DESC LIMIT 50"),
    "Models per library": (
        "MATCH (m:Model)-[:USES_LIBRARY]->(l:Library)\nRETURN l.id AS library, count(*) AS n\n"
        "ORDER BY n DESC LIMIT 20"),
    "Most-used datasets": (
        "MATCH (m:Model)-[:TRAINED_ON]->(d:Dataset)\nRETURN d.id AS dataset, count(*) AS models\n"
        "ORDER BY models DESC LIMIT 20"),
    "Fine-tune descendants within 3 hops": (
        "MATCH p = (c:Model {id: 'openai-community/gpt2'})<-[:FINETUNE_OF*1..3]-(d:Model)\n"
        "RETURN d.id AS descendant, length(p) AS depth\nORDER BY depth LIMIT 50"),
}


def schema_overview() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Node labels with their properties, and relation types with their endpoints, for
    display next to the console."""
    from graph.schema import NODES, RELS

    nodes = pd.DataFrame([{"label": n.label.value,
                           "properties": ", ".join(f"{p} {t}" for p, t in n.properties),
                           "about": n.doc} for n in NODES])
    rels = pd.DataFrame([{"type": r.rel.value,
                          "from → to": ", ".join(f"{a.value}→{b.value}" for a, b in r.pairs),
                          "properties": ", ".join(f"{p} {t}" for p, t in r.properties),
                          "about": r.doc} for r in RELS])
    return nodes, rels
