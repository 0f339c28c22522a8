"""The Cypher console's guard and runner: user-typed Cypher, read-only, capped, time-limited.

Defence in depth:

1. A lexical guard (`check_read_only`), the same for every backend. It lexes the text the
   way a Cypher parser does (line and block comments, '…' and "…" strings with backslash
   escapes, `…` quoted identifiers), so keywords hidden in comments are still seen and
   keywords inside string literals are not. Then, outside literals, it refuses
   - any non-ASCII character (homoglyphs, full-width letters, zero-width joiners…),
   - more than one statement (a ';' anywhere but at the very end),
   - a clause keyword that writes, changes the schema, calls procedures, touches files or
     the session (`FORBIDDEN`), wherever it appears,
   - a statement that does not start with a read clause (`READ_STARTS`).
   A keyword used as a property key (`n.set`) or quoted as an identifier is not a clause.
2. The engine itself: the app opens the embedded graph read-only (`KuzuStore(read_only=True)`)
   so a write that slipped past the guard still fails; Neo4j runs the statement in a READ
   access-mode transaction (`session.execute_read`). Both enforce a row cap and a time limit
   through `GraphStore.run_read_only`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd

from graph.errors import QueryRefused
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
DEFAULT_TIMEOUT_S = 10.0


@dataclass
class Lexed:
    """The statement with literals and comments blanked out, and its keyword tokens."""

    code: str  # same length as the input; strings → '""', comments/identifiers → spaces
    words: list[tuple[str, int]]  # (UPPER word, offset) outside literals and comments


def _lex(text: str, *, escapes: bool = True, strict: bool = True) -> Lexed:
    """Blank out comments and literals the way the engines' lexers read them.

    `escapes`: a backslash escapes the next character in a string (both Kùzu and Neo4j do
    this; checked in tests/test_console.py); `strict`: an unterminated literal is refused
    (otherwise it runs to the end of the text)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        two = text[i:i + 2]
        if two == "//":
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif two == "/*":
            j = text.find("*/", i + 2)
            if j < 0:
                if strict:
                    raise QueryRefused("Refused: unterminated /* comment.")
                j = n - 2
            out.append(" " * (j + 2 - i))
            i = j + 2
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
    """Refuse anything but one read-only statement; return it without a trailing ';'.

    Raises `graph.errors.QueryRefused` with a message naming what was refused.
    """
    if query is None or not query.strip():
        raise QueryRefused("Refused: the query is empty.")
    lexed = _lex(query)
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


@dataclass
class ConsoleResult:
    frame: pd.DataFrame
    truncated: bool  # more rows than the cap existed
    seconds: float
    row_cap: int


def run_console_query(store: GraphStore, query: str, *, row_cap: int = DEFAULT_ROW_CAP,
                      timeout_s: float = DEFAULT_TIMEOUT_S) -> ConsoleResult:
    """Guard, then run in the store's read-only transaction; at most `row_cap` rows.

    Raises QueryRefused (guard), QueryTimeout (time limit) or QueryError (engine).
    """
    if row_cap < 1:
        raise ValueError(f"row_cap must be >= 1, got {row_cap}")
    statement = check_read_only(query)
    started = time.perf_counter()
    frame = store.run_read_only(statement, None, row_cap=row_cap + 1, timeout_s=timeout_s)
    seconds = time.perf_counter() - started
    truncated = len(frame) > row_cap
    return ConsoleResult(frame.head(row_cap), truncated, seconds, row_cap)


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
