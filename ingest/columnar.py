"""The first load's fast path: listing files read column by column, for the plain records.

A snapshot listing (`models.jsonl.gz`, `datasets.jsonl.gz`) is hundreds of thousands of small,
well-formed objects. `read_listing` decodes a whole file with Arrow's JSON reader and applies
the declarations of `ingest.records` (`MODEL_FIELDS`, `DATASET_FIELDS`) column by column,
conservatively: a row is *plain* when every declared field it gives passes its check without
any change the per-record path would make or count (no drop, no strip, no truncation), and it
gives no declared field this path does not read (card headers, files, parents…). Plain rows
become Arrow columns with exactly the values `ModelRecord.from_api` / `DatasetRecord.from_api`
would give them; every other line (bad JSON, a bad or unusual value, lineage tags, a declared
field read only by the record path) is handed back as a `RawItem` for the per-record path.
`tests/test_ingest_columnar.py` proves the two paths build the same graph on real data mixed
with poison records.
"""
from __future__ import annotations

import gzip
import io
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from ingest.records import (
    EARLIEST_DATE,
    FIELDS,
    FUTURE_SLACK,
    HUB_BACKFILL_DATE,
    MAX_TAGS,
    Check,
    Field,
    RepoKind,
)

#: the declared fields this path reads, per kind (any other declared key sends the line to the
#: per-record path); the rest of each declaration (checks, lengths) comes from `FIELDS`
FAST_FIELDS: dict[RepoKind, tuple[str, ...]] = {
    "model": ("id", "author", "createdAt", "lastModified", "likes", "downloads", "pipeline_tag",
              "library_name", "tags", "gated"),
    "dataset": ("id", "author", "createdAt", "lastModified", "likes", "downloads", "tags",
                "gated", "description"),
}
_ARROW = {Check.ID: pa.string(), Check.NAME: pa.string(), Check.TEXT: pa.string(),
          Check.COUNT: pa.int64(), Check.DATE: pa.string(), Check.GATED: pa.string(),
          Check.NAMES: pa.list_(pa.string())}
#: tag prefixes whose values become relations (as `records._by_prefix`)
PREFIXES = ("license:", "dataset:", "arxiv:", "task_categories:")
_CHUNK_LINES = 50_000
_CHUNK_READERS = 2  # threads decoding and checking one file's chunks
_MIN_CHUNK = 1
# A value passes untouched when its first and last characters are printable ASCII, not
# spaces (`_edges`): str.strip() then leaves it as it is; nothing else is trusted
_ISO = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3}|\.\d{6})?Z$"


def _specs(kind: RepoKind) -> dict[str, Field]:
    return {f.name: f for f in FIELDS[kind] if not f.name.startswith("cardData.")}


def _slow_keys(kind: RepoKind) -> list[str]:
    """API keys of declared fields this path does not read (and second keys of those it
    does: `created_at` beside `createdAt`, `modelId` beside `id`)."""
    fast = set(FAST_FIELDS[kind])
    keys = []
    for spec in _specs(kind).values():
        keys += spec.keys[1:] if spec.name in fast else spec.keys
    return sorted(set(keys) - {"modelId"})  # modelId is only read when id is absent


def _line_filter(kind: RepoKind) -> str:
    """RE2 pattern of lines the fast path leaves to the per-record path outright: a declared
    key it does not read, a surrogate escape (the JSON readers differ on them), an escaped
    quote before `gated` (the boolean rewrite below must only touch keys)."""
    keys = "|".join(_slow_keys(kind))
    return rf'"({keys})"\s*:|\\u[dD][89a-fA-F]|\\"gated'


@dataclass
class ListingPart:
    """One listing file: its plain rows as columns, the rest as raw items, in file order."""

    kind: RepoKind
    table: pa.Table          # plain rows: the record fields, values as the records give them
    lineage: np.ndarray      # each plain row: whether its tags name parents (base_model:)
    positions: np.ndarray    # each plain row's position among the file's (non-blank) lines
    slow: list[tuple[int, object]]  # (position, RawItem) for everything else
    n_lines: int
    source: "_Lines"         # the file's lines
    rows: np.ndarray         # each plain row's line in `source`

    def line(self, row: int) -> bytes:
        """The line of plain row `row`, as the record path reads it."""
        return self.source.text(int(self.rows[row]))


def _decode_slow(kind: RepoKind, line: bytes):
    from ingest.sources import RawItem

    try:
        return RawItem(kind, orjson.loads(line))
    except orjson.JSONDecodeError:
        return RawItem(kind, None, "bad_json")


_WHITESPACE = np.zeros(256, bool)
_WHITESPACE[list(b" \t\n\r\x0b\x0c")] = True  # what bytes.strip() strips


class _Lines:
    """A file's lines without a Python object each: an Arrow array over the bytes (each line
    with its newline), which lines are blank (the record path skips them) and which need no
    stripping (only those can take the fast path)."""

    def __init__(self, raw: bytes):
        self.raw = raw
        buf = np.frombuffer(raw, np.uint8)
        nl = np.flatnonzero(buf == 10)
        self.starts = np.concatenate([[0], nl + 1]).astype(np.int64)
        self.ends = np.concatenate([nl, [len(raw)]]).astype(np.int64)
        size = self.ends - self.starts
        has = size > 0
        if len(buf):
            first = buf[np.minimum(self.starts, len(buf) - 1)]
            last = buf[np.maximum(self.ends - 1, 0)]
            self.clean = has & ~_WHITESPACE[first] & ~_WHITESPACE[last]
        else:
            self.clean = np.zeros(len(self.starts), bool)
        blank = ~has
        for i in np.flatnonzero(has & ~self.clean):
            blank[i] = not self.text(int(i))
        self.nonblank = ~blank
        self.position = np.cumsum(self.nonblank) - 1  # a line's place among non-blank ones
        offsets = np.append(self.starts, len(raw)).astype(np.int64)
        self.array = pa.Array.from_buffers(pa.large_binary(), len(self.starts),
                                           [None, pa.py_buffer(offsets), pa.py_buffer(raw)])

    def text(self, i: int) -> bytes:
        return self.raw[self.starts[i]:self.ends[i]].strip()

    def joined(self, idx: np.ndarray) -> bytes:
        """These lines (ascending), one per line."""
        taken = self.array.take(pa.array(idx, pa.int64()))
        end = int(np.frombuffer(taken.buffers()[1], np.int64)[taken.offset + len(taken)])
        start = int(np.frombuffer(taken.buffers()[1], np.int64)[taken.offset])
        data = memoryview(taken.buffers()[2])[start:end].tobytes()
        return data if data.endswith(b"\n") else data + b"\n"


def read_listing(path, kind: RepoKind) -> ListingPart | None:
    """The file split into plain rows and the rest, or None when it cannot be read whole
    (damaged gzip, not UTF-8): the caller then reads it record by record."""
    try:
        with (gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb")) as fh:
            raw = fh.read()
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError):
        return None
    lines = _Lines(raw)
    try:
        text = lines.array.cast(pa.large_string())
    except pa.ArrowInvalid:
        return None
    candidate = lines.clean & ~np.asarray(pc.match_substring_regex(
        text, _line_filter(kind)).to_numpy(zero_copy_only=False), bool)
    del text
    specs = _specs(kind)
    names = FAST_FIELDS[kind]
    keys = {n: specs[n].keys[0] for n in names}
    schema = pa.schema([(keys[n], _ARROW[specs[n].check]) for n in names])
    idx = np.flatnonzero(candidate)

    def read(start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, pa.Table] | None:
        tables, rows = [], []
        _read_chunks(lines, idx[start:start + _CHUNK_LINES], schema, tables, rows)
        if not tables:
            return None
        table = pa.concat_tables(tables).rename_columns(list(names))
        return (np.concatenate(rows), *_checked(kind, table, specs))

    # chunks decode and check in threads (Arrow releases the GIL), joined in file order
    with ThreadPoolExecutor(max_workers=_CHUNK_READERS) as pool:
        chunks = [c for c in pool.map(read, range(0, len(idx), _CHUNK_LINES)) if c is not None]
    if chunks:
        plain, ok, lineage = (np.concatenate([c[i] for c in chunks]) for i in range(3))
        values = pa.concat_tables([c[3] for c in chunks])
    else:
        empty = schema.empty_table().rename_columns(list(names))
        plain = np.zeros(0, np.int64)
        ok, lineage, values = _checked(kind, empty, specs)
    keep = plain[ok]
    rest = np.ones(len(lines.starts), bool)
    rest[keep] = False
    slow = [(int(lines.position[i]), _decode_slow(kind, lines.text(int(i))))
            for i in np.flatnonzero(rest & lines.nonblank)]
    return ListingPart(kind, values.filter(pa.array(ok)), lineage[ok], lines.position[keep],
                       slow, int(lines.nonblank.sum()), lines, keep)


def _read_chunks(lines: _Lines, idx: np.ndarray, schema: pa.Schema, tables: list,
                 rows: list) -> None:
    """Decode these lines with Arrow; a chunk that fails (one bad line makes Arrow give up)
    is halved until the bad lines are isolated, which are left to the per-record path."""
    if len(idx) == 0:
        return
    data = lines.joined(idx)
    # a boolean `gated` reads as the record path gives it: false -> absent, true -> "true"
    for sep in (b":", b": ") if b'"gated"' in data else ():
        data = data.replace(b'"gated"' + sep + b"false", b'"gated":null')
        data = data.replace(b'"gated"' + sep + b"true", b'"gated":"true"')
    try:
        table = pj.read_json(
            io.BytesIO(data),
            read_options=pj.ReadOptions(block_size=max(1 << 20, 2 * len(data))),
            parse_options=pj.ParseOptions(explicit_schema=schema,
                                          unexpected_field_behavior="ignore"))
        if table.num_rows != len(idx):
            raise pa.ArrowInvalid("row count")
    except pa.ArrowInvalid:
        if len(idx) <= _MIN_CHUNK:  # this line is what Arrow cannot read as declared
            return
        half = len(idx) // 2
        _read_chunks(lines, idx[:half], schema, tables, rows)
        _read_chunks(lines, idx[half:], schema, tables, rows)
        return
    tables.append(table.combine_chunks())
    rows.append(idx)


def _np(arr) -> np.ndarray:
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), bool)


def _edges(arr: pa.Array, skip: int = 0) -> np.ndarray:
    """Whether each string's first character (after `skip` bytes) and last character are
    printable ASCII, not spaces (read off the bytes: a character
    beyond ASCII never starts or ends with such a byte). False for nulls."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    n = len(arr)
    if n == 0:
        return np.zeros(0, bool)
    kind = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(arr.buffers()[1], kind)[arr.offset:arr.offset + n + 1]
    data = arr.buffers()[2]
    data = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    start, end = offsets[:-1].astype(np.int64), offsets[1:].astype(np.int64)
    ok = (end - start) > skip
    if not len(data):
        return np.zeros(n, bool)
    first = data[np.where(ok, start + skip, 0)]
    last = data[np.where(ok, end - 1, 0)]
    ok &= (first >= 0x21) & (first <= 0x7E) & (last >= 0x21) & (last <= 0x7E)
    return ok & _np(pc.is_valid(arr))


def _within(arr: pa.Array, max_len: int) -> np.ndarray:
    """At most `max_len` characters (bytes first: counting characters only where needed)."""
    short = _np(pc.less_equal(pc.binary_length(arr), max_len))
    if short.all():
        return short
    return short | _np(pc.less_equal(pc.utf8_length(arr), max_len))


def _plain_name(arr, max_len: int | None) -> np.ndarray:
    """Null, or a name `records._name` keeps as it is."""
    ok = _edges(arr)
    if max_len is not None:
        ok &= _within(arr, max_len)
    return ok | _np(pc.is_null(arr))


def _dates(arr) -> tuple[np.ndarray, pa.Array]:
    """(plain, value): ISO UTC timestamps in the record path's range; the back-fill is null."""
    shape = _np(pc.match_substring_regex(arr, _ISO))
    ok = _np(pc.is_null(arr)) | shape
    text = pc.if_else(pa.array(shape), arr, pa.scalar(None, pa.string()))
    try:
        ts = pc.cast(text, pa.timestamp("us", tz="UTC"))
    except pa.ArrowInvalid:  # a date like 2024-02-30: left to the record path
        ts = pa.nulls(len(arr), pa.timestamp("us", tz="UTC"))
        ok &= ~shape
        return ok, ts
    now = datetime.now(timezone.utc) + FUTURE_SLACK
    lo = pa.scalar(EARLIEST_DATE, pa.timestamp("us", tz="UTC"))
    hi = pa.scalar(now, pa.timestamp("us", tz="UTC"))
    in_range = _np(pc.and_(pc.greater_equal(ts, lo), pc.less_equal(ts, hi)))
    ok &= ~shape | in_range
    back0 = pa.scalar(HUB_BACKFILL_DATE, pa.timestamp("us", tz="UTC"))
    back1 = pa.scalar(HUB_BACKFILL_DATE.replace(second=HUB_BACKFILL_DATE.second + 2),
                      pa.timestamp("us", tz="UTC"))
    backfill = pc.and_(pc.greater_equal(ts, back0), pc.less(ts, back1))
    ts = pc.if_else(pc.fill_null(backfill, False), pa.scalar(None, ts.type), ts)
    return ok, ts.cast(pa.timestamp("us"))


def _checked(kind: RepoKind, t: pa.Table, specs: dict[str, Field]
             ) -> tuple[np.ndarray, np.ndarray, pa.Table]:
    """Which rows are plain, which name parents in their tags, and the record values of
    every row (meaningful where plain)."""
    n = t.num_rows
    ok = np.ones(n, bool)
    lineage = np.zeros(n, bool)
    rid = t.column("id").combine_chunks()
    ok &= _np(pc.match_substring_regex(rid, r"^[!-~]+$"))
    ok &= _within(rid, specs["id"].max_len)
    out: dict[str, pa.Array] = {"id": rid}
    for name in FAST_FIELDS[kind][1:]:
        spec, col = specs[name], t.column(name).combine_chunks()
        if spec.check in (Check.NAME, Check.GATED):
            ok &= _plain_name(col, spec.max_len)
            out[name] = col
        elif spec.check is Check.COUNT:
            ok &= _np(pc.or_kleene(pc.is_null(col), pc.greater_equal(col, 0)))
            out[name] = col
        elif spec.check is Check.DATE:
            good, out[name] = _dates(col)
            ok &= good
        elif spec.check is Check.TEXT:
            cut = pc.utf8_slice_codeunits(col, 0, spec.max_len) if spec.max_len else col
            # kept when it has a printable ASCII character (not blank) and is not "None"
            keep = pc.and_(pc.match_substring_regex(cut, r"[!-~]"), pc.not_equal(cut, "None"))
            ok &= _np(pc.or_kleene(pc.is_null(col), keep))
            out[name] = cut
        elif spec.check is Check.NAMES:
            good, lineage = _plain_tags(col, spec)
            ok &= good
            out[name] = col
        else:  # pragma: no cover - FAST_FIELDS only names the checks above
            raise AssertionError(spec.check)
    author = out["author"]
    from_id = pc.utf8_slice_codeunits(rid, 0, 1 << 30)  # copy
    parts = pc.split_pattern(from_id, "/", max_splits=1)
    first = pc.list_element(parts, 0)
    has_slash = pc.match_substring(rid, "/")
    out["author"] = pc.coalesce(author, pc.if_else(has_slash, first, pa.scalar(None, pa.string())))
    return ok, lineage if kind == "model" else np.zeros(n, bool), pa.table(out)


def _plain_tags(col: pa.Array, spec: Field) -> tuple[np.ndarray, np.ndarray]:
    """(plain, lineage): null, or a list `records._names` keeps as it is, with tag prefix
    values that need no stripping; and whether a tag names a parent (`base_model:`)."""
    n = len(col)
    flat = pc.list_flatten(col)
    parent = np.asarray(pc.list_parent_indices(col).to_numpy(), np.int64)
    good = _edges(flat) & _within(flat, spec.max_len)
    lineage = _np(pc.starts_with(flat, "base_model:"))
    bad_value = np.zeros(len(flat), bool)
    for p in PREFIXES:
        # an empty value is skipped by the record path, a value it would strip is left to it
        bad_value |= _np(pc.starts_with(flat, p)) & ~_edges(flat, skip=len(p))
    bad = ~good | bad_value
    row_bad = np.bincount(parent[bad], minlength=n).astype(bool) if bad.any() else np.zeros(n, bool)
    row_lineage = np.bincount(parent[lineage], minlength=n).astype(bool)
    lengths = pc.fill_null(pc.list_value_length(col), 0).to_numpy()
    return ~row_bad & (lengths <= (spec.max_items or MAX_TAGS)), row_lineage


def prefixed(tags: pa.Array, ids: pa.Array, prefix: str) -> tuple[pa.Table, pa.Array]:
    """The tags starting with `prefix` as `records._by_prefix` and `_unique` read them:
    (distinct (from: id, to: value) pairs, each row's first value or null)."""
    tags = tags.combine_chunks() if isinstance(tags, pa.ChunkedArray) else tags
    flat = pc.list_flatten(tags)
    parent = pc.list_parent_indices(tags)
    mask = pc.starts_with(flat, prefix)
    values = pc.utf8_slice_codeunits(pc.filter(flat, mask), len(prefix), 1 << 30)
    rows = pc.filter(parent, mask)
    pairs = pa.table({"from": pc.take(ids, rows), "to": values}).group_by(
        ["from", "to"], use_threads=False).aggregate([])
    first_rows, first_at = np.unique(rows.to_numpy(), return_index=True)
    pick = np.full(len(ids), -1, np.int64)
    pick[first_rows] = first_at
    first = pc.take(values, pa.array(pick, mask=pick < 0))
    return pairs, first
