"""Where records come from: recorded snapshot files, or the live Hub through `HubSource`.

Both yield `RawItem`s (one API object each, undecoded beyond JSON) in a deterministic order, so
an interrupted ingest can skip what it already loaded; `ingest.records` parses them.
"""
from __future__ import annotations

import ast
import gzip
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Protocol

import orjson

from ingest.columnar import FAST_FIELDS, ListingPart, read_listing
from ingest.records import RepoKind

#: listing files a first load reads at once (one per core of a 2-core machine)
LISTING_READERS = 2

#: file name → record kind, in load order (full model_info records after the listing, so they
#: enrich the same ids; trees carry 2025 records with typed base_model tags and card text)
SNAPSHOT_FILES: tuple[tuple[str, RepoKind], ...] = (
    ("models.jsonl.gz", "model"),
    ("model_info.jsonl.gz", "model"),
    ("trees.jsonl.gz", "model"),
    ("datasets.jsonl.gz", "dataset"),
    ("spaces.jsonl.gz", "space"),
)


@dataclass(slots=True)
class RawItem:
    kind: RepoKind
    data: Any
    error: str | None = None  # "bad_json" when the line could not be decoded


class Source(Protocol):
    name: str

    def iter_items(self, *, limit: int | None = None,
                   since: datetime | None = None) -> Iterator[RawItem]: ...


def _literal(node: ast.AST) -> Any:
    """Like ast.literal_eval, but a call such as RepoSibling(rfilename='x') or
    datetime.datetime(2024, 1, 2) becomes a dict of its keyword arguments (or its first
    positional one): the trees-2025 crawl stored some ModelInfo objects as their repr."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values) if k is not None}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_literal(node.operand)
    if isinstance(node, ast.Call):
        if node.keywords:
            return {k.arg: _literal(k.value) for k in node.keywords if k.arg}
        return _literal(node.args[0]) if node.args else None
    return None


def _tree_row_to_model(row: dict) -> Any:
    """trees-2025 rows wrap a ModelInfo (dict, or its Python repr) plus the card text."""
    meta = row.get("metadata")
    if isinstance(meta, str):
        try:
            meta = _literal(ast.parse(meta, mode="eval").body)
        except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
            return None
    if not isinstance(meta, dict):
        return None
    card = row.get("card")
    if isinstance(card, str) and card not in ("", "None"):
        meta = {**meta, "card": card}
    return meta


class SnapshotSource:
    """Recorded Hub API objects: `*.jsonl.gz` files, one object per line, in one or more dirs."""

    def __init__(self, *dirs: Path | str):
        self.dirs = [Path(d) for d in dirs]
        missing = [d for d in self.dirs if not d.is_dir()]
        if missing:
            raise FileNotFoundError(f"snapshot folder not found: {missing[0]}")
        self.files = []
        for d in self.dirs:
            for name, kind in SNAPSHOT_FILES:
                for candidate in (d / name, d / name.removesuffix(".gz")):
                    if candidate.exists():
                        self.files.append((candidate, kind))
                        break
        if not self.files:
            names = ", ".join(n for n, _ in SNAPSHOT_FILES)
            where = ", ".join(map(str, self.dirs))
            raise FileNotFoundError(f"no snapshot files ({names}) in {where}")
        self.name = "snapshot:" + ",".join(str(d) for d in self.dirs)

    def iter_items(self, *, limit: int | None = None,
                   since: datetime | None = None) -> Iterator[RawItem]:
        """Every line of every file; `limit` caps each record kind. `since` is applied by the
        loader, which knows the parsed dates.

        A damaged file does not end the run: every line readable before the damage is
        yielded, then one error item (`truncated_file`: the gzip stream ends early;
        `corrupt_file`: bad gzip data or CRC; `unreadable_file`: the file cannot be read), and
        reading goes on with the next file. The order stays deterministic for resumes."""
        taken: dict[str, int] = {}
        for path, kind in self.files:
            yield from self._file_items(path, kind, taken, limit)

    def iter_bulk(self) -> Iterator[RawItem | ListingPart]:
        """What `iter_items()` yields (no limit), but each listing file that reads whole as one
        `ListingPart` (its plain records as columns, `ingest.columnar`): for a first load.
        Listing files are read two at a time in threads (most of a read is zlib, Arrow and
        numpy, which release the GIL), still yielded in file order."""
        with ThreadPoolExecutor(max_workers=LISTING_READERS) as pool:
            listings = {i: pool.submit(read_listing, path, kind)
                        for i, (path, kind) in enumerate(self.files)
                        if kind in FAST_FIELDS and not path.name.startswith("trees.")}
            for i, (path, kind) in enumerate(self.files):
                part = listings[i].result() if i in listings else None
                if part is not None:
                    yield part
                else:
                    yield from self._file_items(path, kind, {}, None)

    @staticmethod
    def _file_items(path: Path, kind: RepoKind, taken: dict[str, int],
                    limit: int | None) -> Iterator[RawItem]:
        if limit is not None and taken.get(kind, 0) >= limit:
            return
        is_tree = path.name.startswith("trees.")
        opener = gzip.open if path.suffix == ".gz" else open
        try:
            with opener(path, "rb") as fh:
                for line in fh:
                    if limit is not None and taken.get(kind, 0) >= limit:
                        break
                    line = line.strip()
                    if not line:
                        continue
                    taken[kind] = taken.get(kind, 0) + 1
                    try:
                        data = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        yield RawItem(kind, None, "bad_json")
                        continue
                    if is_tree and isinstance(data, dict):
                        data = _tree_row_to_model(data)
                    yield RawItem(kind, data)
        except EOFError:
            yield RawItem(kind, None, "truncated_file")
        except (gzip.BadGzipFile, zlib.error):
            yield RawItem(kind, None, "corrupt_file")
        except OSError:
            yield RawItem(kind, None, "unreadable_file")


class LiveHubSource:
    """The live Hub (or any endpoint speaking its API) through `ingest.hub.HubSource`."""

    def __init__(self, hub=None, *, kinds: tuple[RepoKind, ...] = ("model", "dataset", "space")):
        from ingest.hub import HubSource, redact_url

        if hub is None:
            hub = HubSource()
        self.hub = hub
        self.kinds = kinds
        # the name is printed in run reports and stored as IngestRun.source: no credentials
        self.name = "hub:" + redact_url(str(getattr(hub, "endpoint", "default")))

    def iter_items(self, *, limit: int | None = None,
                   since: datetime | None = None) -> Iterator[RawItem]:
        listings = {"model": self.hub.iter_models, "dataset": self.hub.iter_datasets,
                    "space": self.hub.iter_spaces}
        for kind in self.kinds:
            for data in listings[kind](limit=limit, since=since):
                yield RawItem(kind, data)
