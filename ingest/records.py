"""Typed records for Hub API objects, validated once, at the edge.

`ModelRecord.from_api()` and its siblings accept one Hub API object as a dict, in either of the
two shapes the Hub hands out: the raw JSON of `/api/models` (camelCase: `createdAt`,
`cardData`, `library_name`) or a `huggingface_hub` `ModelInfo` turned into a dict (snake_case:
`created_at`, `card_data`). Nothing downstream of this module sees raw dicts.

Every field that is read is declared once, in `MODEL_FIELDS`, `DATASET_FIELDS`, `SPACE_FIELDS`
and `CARD_FIELDS`: the API keys it is read from, its type and range (`Check`), and what a bad
value costs (`on_bad`):

- ``reject``: the record is rejected (`RecordError`, counted by reason): only the repo id, since
  a record without a usable id cannot be stored or linked;
- ``drop``: the field is dropped (the record keeps `None`: "not given", never 0) and the
  problem is counted in `record.issues` as ``<field>:<problem>(dropped)``; list fields drop
  only their bad items (``<field>:item_<problem>(dropped)``, one count per item) and keep at
  most `max_items` (``<field>:too_many(kept)``).

Field values that pass have exactly the type of their graph property (`graph.schema`): `str`
(valid UTF-8, bounded length), `int` in INT64 range, aware `datetime`, tuples of `str`; so
nothing that reaches the engine can overflow or crash it. The checks are plain functions of one
value (`check_value`), so a columnar parser can apply the same declarations column by column.
"""
from __future__ import annotations

import ast
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any, Iterable, Literal

from ingest.cards import card_text_links
from ingest.errors import RecordError
from ingest.lineage import BaseModelLink, parse_api_base_models, parse_base_models

#: The Hub back-filled every model and dataset created before March 2022 with this date
#: (or the second after it: 7.8k records carry :04, 22k carry :05 in the July 2024 listing).
HUB_BACKFILL_DATE = datetime(2022, 3, 2, 23, 29, 4, tzinfo=timezone.utc)
#: Tag lists longer than this are truncated (and the record counted as such); real records
#: rarely carry more than a few hundred tags (the July 2024 maximum is 4,046, on one model).
MAX_TAGS = 2000
#: Card text kept per model, enough for retrieval; full READMEs can be megabytes.
MAX_CARD_CHARS = 4000
#: Card text read for lineage sentences and mergekit configurations (`ingest.cards`).
MAX_CARD_SCAN_CHARS = 100_000
#: File names kept per model: enough to see formats (adapters, GGUF, quantisation configs).
MAX_FILES = 500
#: The largest value an INT64 property holds.
INT64_MAX = 2**63 - 1
#: Dates outside this window are not Hub dates (the Hub opened in 2016); a date in the future
#: would also move the run's watermark past every later record, so it is dropped.
EARLIEST_DATE = datetime(2000, 1, 1, tzinfo=timezone.utc)
FUTURE_SLACK = timedelta(days=2)
#: A card header given as text longer than this is not parsed (real ones: < 52k characters).
MAX_CARD_HEADER_CHARS = 1_000_000

RepoKind = Literal["model", "dataset", "space"]
_SPACE = re.compile(r"\s")


class Check(str, Enum):
    """The type (and range) of one field's value."""

    ID = "id"            # str, stripped, 1..max_len chars, no whitespace
    NAME = "name"        # str, stripped, non-empty, <= max_len chars ("" means not given)
    TEXT = "text"        # str, cut to max_len chars (a storage cap, not a problem)
    COUNT = "count"      # int in [0, INT64_MAX]; integral floats accepted; no bools
    DATE = "date"        # ISO 8601 string or datetime, in [EARLIEST_DATE, now + FUTURE_SLACK]
    GATED = "gated"      # bool, or a NAME ("auto", "manual")
    NAMES = "names"      # list of NAME items (or one str where `single_ok`), <= max_items kept
    FILES = "files"      # siblings: list of {"rfilename": str} or str -> file names
    MAPPING = "mapping"  # cardData: dict, or its text (JSON, Python repr or YAML header)
    TOTAL = "total"      # {"total": COUNT, ...} (safetensors, gguf) -> the COUNT
    SCORE = "score"      # a finite number (int or float) -> float; no bools
    LINKS = "links"      # baseModels: an object or a list, read by lineage.parse_api_base_models


@dataclass(frozen=True, slots=True)
class Field:
    """One declared field: where it is read from, what it must be, what a bad value costs."""

    name: str                  # attribute of the record (and the name used in reject reasons)
    keys: tuple[str, ...]      # API keys, first one present (not None) wins
    check: Check
    max_len: int | None = None    # characters of a NAME/TEXT/ID (of each item for NAMES)
    max_items: int | None = None  # items kept of a NAMES list (more: truncated, counted)
    single_ok: bool = False       # NAMES: a bare string stands for a one-item list
    on_bad: Literal["reject", "drop"] = "drop"
    why: str = ""                 # why this policy (documentation, shown in docs/schema.md)


class _Bad(Exception):
    """A value that fails its check; `problem` names how (`not_an_int`, `negative`...)."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem


def _utf8_ok(s: str) -> bool:
    if s.isascii():
        return True
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates (the json module lets "\ud800" through)
        return False
    return True


def _name(value: Any, max_len: int | None, what: str = "") -> str | None:
    if not isinstance(value, str):
        raise _Bad(f"{what}not_a_string")
    value = value.strip()
    if not value:
        return None
    if max_len is not None and len(value) > max_len:
        raise _Bad(f"{what}too_long")
    if not _utf8_ok(value):
        raise _Bad(f"{what}bad_unicode")
    return value


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad("not_an_int")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Bad("not_finite")
        if not value.is_integer():
            raise _Bad("not_an_int")
    if value < 0:
        raise _Bad("negative")
    if value > INT64_MAX:
        raise _Bad("out_of_range")
    return int(value)


def parse_datetime(value: Any) -> datetime | None:
    """Parse a Hub timestamp (ISO string or datetime) to an aware UTC datetime.

    The Hub's March-2022 back-fill date means "unknown" and becomes None; anything else that is
    not a date in range raises `RecordError("bad_date")`.
    """
    try:
        return _date(value)
    except _Bad as e:
        raise RecordError("bad_date", f"{e.problem}: {str(value)[:60]!r}") from None


def _date(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        if len(value) > 40:
            raise _Bad("not_a_date")
        text = value.strip().replace("Z", "+00:00")
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise _Bad("not_a_date") from None
    else:
        raise _Bad("not_a_date")
    try:
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        dt = dt.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        raise _Bad("out_of_range") from None
    if dt < EARLIEST_DATE or dt > datetime.now(timezone.utc) + FUTURE_SLACK:
        raise _Bad("out_of_range")
    if 0.0 <= (dt - HUB_BACKFILL_DATE).total_seconds() < 2.0:  # the back-fill took 2 seconds
        return None
    return dt


def _names(spec: Field, value: Any, issues: Counter) -> tuple[str, ...]:
    if isinstance(value, str) and spec.single_ok:
        value = [value]
    elif not isinstance(value, (list, tuple)):
        raise _Bad("not_a_list")
    out: list[str] = []
    for item in value:
        try:
            name = _name(item, spec.max_len, "item_")
        except _Bad as e:
            issues[f"{spec.name}:{e.problem}(dropped)"] += 1
            continue
        if name is not None:
            out.append(name)
    if spec.max_items is not None and len(out) > spec.max_items:
        issues[f"{spec.name}:too_many(kept)"] += 1
        out = out[:spec.max_items]
    return tuple(out)


_SIBLING_REPR = re.compile(r"rfilename='([^']*)'")


def _files(spec: Field, value: Any, issues: Counter) -> tuple[str, ...]:
    """File names from API dicts, plain names, or the `RepoSibling(rfilename=...)` reprs the
    trees-2025 crawl stored; at most `max_items` kept."""
    if not isinstance(value, (list, tuple)):
        raise _Bad("not_a_list")
    out = []
    for item in value:
        name = item.get("rfilename") if isinstance(item, dict) else item
        if isinstance(name, str) and name.startswith("RepoSibling("):
            match = _SIBLING_REPR.search(name)
            name = match.group(1) if match else None
        if isinstance(name, str) and name and _utf8_ok(name):
            out.append(name)
        else:
            issues[f"{spec.name}:item_not_a_file(dropped)"] += 1
    if spec.max_items is not None and len(out) > spec.max_items:
        issues[f"{spec.name}:too_many(kept)"] += 1
        out = out[:spec.max_items]
    return tuple(out)


def _mapping(value: Any) -> dict:
    """cardData arrives as a dict (API), a YAML-ish string (ModelInfo repr) or a repr'd dict."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        raise _Bad("not_an_object")
    if len(value) > MAX_CARD_HEADER_CHARS:
        raise _Bad("too_long")
    text = value.strip()
    if text.startswith("{"):
        for loader in (json.loads, ast.literal_eval):
            try:
                out = loader(text)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
            if isinstance(out, dict):
                return out
    return _parse_simple_yaml(text)


def _parse_simple_yaml(text: str) -> dict:
    """The few top-level keys we need from a card's YAML header (no PyYAML dependency)."""
    out: dict[str, Any] = {}
    key: str | None = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith((" ", "-", "\t")) and ":" in line:
            key, _, rest = line.partition(":")
            key, rest = key.strip(), rest.strip()
            out[key] = rest.strip("'\"") if rest else []
        elif key is not None and line.lstrip().startswith("- ") and isinstance(out.get(key), list):
            out[key].append(line.lstrip()[2:].strip().strip("'\""))
    return out


def check_value(spec: Field, value: Any, issues: Counter) -> Any:
    """`value` as `spec` declares it, or None when it is absent. Raises `_Bad` for a bad
    value (the caller drops or rejects); item-level problems are counted into `issues`."""
    if value is None:
        return None
    c = spec.check
    if c is Check.NAME or c is Check.ID:
        return _name(value, spec.max_len)
    if c is Check.TEXT:
        if not isinstance(value, str):
            raise _Bad("not_a_string")
        value = value[:spec.max_len] if spec.max_len else value
        if not _utf8_ok(value):
            raise _Bad("bad_unicode")
        return value if value.strip() and value != "None" else None
    if c is Check.COUNT:
        return _count(value)
    if c is Check.DATE:
        return _date(value)
    if c is Check.GATED:
        if value is False:
            return None
        if value is True:
            return "true"
        return _name(value, spec.max_len)
    if c is Check.NAMES:
        return _names(spec, value, issues)
    if c is Check.FILES:
        return _files(spec, value, issues)
    if c is Check.SCORE:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Bad("not_a_number")
        if not math.isfinite(value):
            raise _Bad("not_finite")
        return float(value)
    if c is Check.LINKS:
        if not isinstance(value, (dict, list, tuple)):
            raise _Bad("not_an_object")
        return value
    if c is Check.MAPPING:
        return _mapping(value)
    if c is Check.TOTAL:
        if not isinstance(value, dict):
            raise _Bad("not_an_object")
        total = _count(value.get("total")) if value.get("total") is not None else None
        return total or None
    raise AssertionError(c)  # pragma: no cover


def read_fields(d: dict, specs: Iterable[Field], issues: Counter) -> dict[str, Any]:
    """Every declared field of `d`, checked: {name: value or None}. A bad value is dropped
    (counted in `issues`) or rejects the record (`RecordError`), as its spec says."""
    out: dict[str, Any] = {}
    for spec in specs:
        raw = None
        for key in spec.keys:
            raw = d.get(key)
            if raw is not None:
                break
        try:
            out[spec.name] = check_value(spec, raw, issues)
        except _Bad as e:
            if spec.on_bad == "reject":
                raise RecordError(f"bad_{spec.name}", f"{spec.name}: {e.problem}") from None
            issues[f"{spec.name}:{e.problem}(dropped)"] += 1
            out[spec.name] = None
    return out


_ID_WHY = "the record cannot be stored or linked without its id"
_COUNT_WHY = "absent, not 0: a later record of the same id keeps the earlier count"
_REPO_FIELDS = (
    Field("author", ("author",), Check.NAME, max_len=200,
          why="a namespace; when absent or bad it is read from the id"),
    Field("createdAt", ("createdAt", "created_at"), Check.DATE,
          why="a date; the record is still useful without it"),
    Field("lastModified", ("lastModified", "last_modified"), Check.DATE,
          why="a date; also the watermark, so future dates are dropped"),
    Field("likes", ("likes",), Check.COUNT, why=_COUNT_WHY),
)
_TAGS = Field("tags", ("tags",), Check.NAMES, max_len=2000, max_items=MAX_TAGS,
              why="kept per item; real tags are <= 1,246 chars, lists <= 4,046 items")
MODEL_FIELDS: tuple[Field, ...] = _REPO_FIELDS + (
    Field("downloads", ("downloads",), Check.COUNT, why=_COUNT_WHY),
    Field("pipeline_tag", ("pipeline_tag",), Check.NAME, max_len=100,
          why="a task name (real ones <= 30 chars)"),
    Field("library_name", ("library_name",), Check.NAME, max_len=100,
          why="a library name (real ones <= 84 chars)"),
    _TAGS,
    Field("gated", ("gated",), Check.GATED, max_len=20, why="false, true, 'auto' or 'manual'"),
    Field("cardData", ("cardData", "card_data"), Check.MAPPING,
          why="the card header; only the keys in CARD_FIELDS are read"),
    Field("siblings", ("siblings",), Check.FILES, max_items=MAX_FILES,
          why="file names: adapter detection and relation typing (formats)"),
    Field("spaces", ("spaces",), Check.NAMES, max_len=200, max_items=MAX_TAGS,
          why="Space ids that use the model"),
    Field("safetensors", ("safetensors",), Check.TOTAL, why="parameter count"),
    Field("gguf", ("gguf",), Check.TOTAL, why="parameter count of GGUF files"),
    Field("card", ("card",), Check.TEXT, max_len=MAX_CARD_SCAN_CHARS,
          why="README text (trees-2025, live Hub cards); its start is scanned for lineage, "
              "MAX_CARD_CHARS kept for retrieval"),
    Field("downloads_all_time", ("downloadsAllTime", "downloads_all_time"), Check.COUNT,
          why=_COUNT_WHY),
    Field("trending_score", ("trendingScore", "trending_score"), Check.SCORE,
          why="the Hub's trending score (live Hub)"),
    Field("children_count", ("childrenModelCount", "children_model_count"), Check.COUNT,
          why="the Hub's count of derived models (live Hub)"),
    Field("baseModels", ("baseModels", "base_models"), Check.LINKS,
          why="the Hub's typed parents (live Hub expand); bad entries are skipped"),
)
#: Keys read from a model or dataset card header (cardData).
CARD_FIELDS: tuple[Field, ...] = (
    Field("cardData.license", ("license",), Check.NAMES, max_len=200, max_items=50,
          single_ok=True, why="licence ids"),
    Field("cardData.datasets", ("datasets",), Check.NAMES, max_len=200, max_items=MAX_TAGS,
          single_ok=True, why="dataset ids"),
    Field("cardData.base_model", ("base_model",), Check.NAMES, max_len=1000, max_items=MAX_TAGS,
          single_ok=True, why="parent ids (lineage cleans and bounds them further)"),
    Field("cardData.base_model_relation", ("base_model_relation",), Check.NAME, max_len=50,
          why="finetune/adapter/quantized/merge"),
)
DATASET_FIELDS: tuple[Field, ...] = _REPO_FIELDS + (
    Field("downloads", ("downloads",), Check.COUNT, why=_COUNT_WHY),
    _TAGS,
    Field("gated", ("gated",), Check.GATED, max_len=20, why="false, true, 'auto' or 'manual'"),
    Field("cardData", ("cardData", "card_data"), Check.MAPPING,
          why="the card header; only cardData.license is read"),
    Field("description", ("description",), Check.TEXT, max_len=MAX_CARD_CHARS,
          why="cut to MAX_CARD_CHARS"),
)
SPACE_FIELDS: tuple[Field, ...] = _REPO_FIELDS + (
    Field("sdk", ("sdk",), Check.NAME, max_len=50, why="gradio, streamlit, docker, static"),
    Field("models", ("models",), Check.NAMES, max_len=200, max_items=MAX_TAGS,
          why="model ids the Space uses"),
    Field("datasets", ("datasets",), Check.NAMES, max_len=200, max_items=MAX_TAGS,
          why="dataset ids the Space uses"),
)
_ID_FIELDS: dict[RepoKind, Field] = {
    "model": Field("id", ("id", "modelId"), Check.ID, max_len=200, on_bad="reject", why=_ID_WHY),
    "dataset": Field("id", ("id",), Check.ID, max_len=200, on_bad="reject", why=_ID_WHY),
    "space": Field("id", ("id",), Check.ID, max_len=200, on_bad="reject", why=_ID_WHY),
}


def _record_id(d: dict, kind: RepoKind) -> str:
    spec = _ID_FIELDS[kind]
    raw = next((d[k] for k in spec.keys if d.get(k) is not None), None)
    if not isinstance(raw, str) or not raw.strip():
        raise RecordError("missing_id", f"{kind} record without an id")
    rid = raw.strip()
    if len(rid) > spec.max_len or _SPACE.search(rid) or not _utf8_ok(rid):
        raise RecordError("bad_id", f"{kind} id {rid[:60]!r} is not a repo id")
    return rid


def _read(d: Any, kind: RepoKind, specs: tuple[Field, ...]) -> tuple[str, dict, Counter]:
    if not isinstance(d, dict):
        raise RecordError("not_an_object", f"{kind} record is {type(d).__name__}")
    rid = _record_id(d, kind)
    issues: Counter = Counter()
    values = read_fields(d, specs, issues)
    if values["author"] is None and "/" in rid:
        values["author"] = rid.split("/", 1)[0]
    return rid, values, issues


_TAG_PREFIXES = ("license:", "dataset:", "arxiv:", "task_categories:")


def _by_prefix(tags: Iterable[str]) -> dict[str, list[str]]:
    """One pass over the tags: the values of `license:`, `dataset:`, `arxiv:`… tags."""
    out: dict[str, list[str]] = {p: [] for p in _TAG_PREFIXES}
    for t in tags:
        head, sep, value = t.partition(":")
        if sep and value:
            bucket = out.get(head + ":")
            if bucket is not None:
                bucket.append(value)
    return out


def _unique(seq: Iterable[str]) -> tuple[str, ...]:
    if not seq:
        return ()
    return tuple(dict.fromkeys(s.strip() for s in seq if s and s.strip()))


#: list fields a record gives when its tags (or its card header) are given, even if empty
_MODEL_FROM_TAGS = frozenset({"tags", "licenses", "datasets", "arxiv", "base_models"})
_MODEL_FROM_CARD = frozenset({"licenses", "datasets", "base_models"})
_DATASET_FROM_TAGS = frozenset({"tags", "licenses", "tasks", "arxiv"})


def _card(value: dict | None, issues: Counter) -> dict[str, Any]:
    return read_fields(value or {}, CARD_FIELDS, issues)


@dataclass(slots=True)
class ModelRecord:
    """One Hub model, as the graph stores it. None means "not given" (absent, null or dropped
    as bad), never 0: a later record of the same id only overrides what it gives."""

    id: str
    author: str | None = None
    created_at: datetime | None = None
    last_modified: datetime | None = None
    downloads: int | None = None
    likes: int | None = None
    pipeline_tag: str | None = None
    library: str | None = None
    tags: tuple[str, ...] = ()
    gated: str | None = None
    parameters: int | None = None
    licenses: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    arxiv: tuple[str, ...] = ()
    spaces: tuple[str, ...] = ()
    base_models: tuple[BaseModelLink, ...] = ()
    card_text: str | None = None
    files: tuple[str, ...] = ()  # repo file names where the record lists them (not listings)
    downloads_all_time: int | None = None  # `downloadsAllTime` (downloads is the 30-day count)
    trending_score: float | None = None
    children_count: int | None = None  # the Hub's `childrenModelCount`
    #: the list fields this record gives (an empty tuple is "none" only when listed here)
    given: frozenset[str] = frozenset()
    #: field problems, counted by the run as `model:<issue>` ("downloads:negative(dropped)")
    issues: Counter = field(default_factory=Counter)

    @classmethod
    def from_api(cls, d: Any) -> "ModelRecord":
        rid, v, issues = _read(d, "model", MODEL_FIELDS)
        return cls.from_values(rid, v, issues)

    @classmethod
    def from_values(cls, rid: str, v: dict[str, Any], issues: Counter) -> "ModelRecord":
        """The record of checked field values (`read_fields` of `MODEL_FIELDS`, the author
        already read from the id where absent): what `from_api` and the columnar first load
        (`ingest.loader_columnar`) both build."""
        tags = v["tags"] or ()
        card = _card(v["cardData"], issues)
        prefixed = _by_prefix(tags)
        licenses = prefixed["license:"] + list(card["cardData.license"] or ())
        datasets = prefixed["dataset:"] + list(card["cardData.datasets"] or ())
        given = _MODEL_FROM_TAGS if v["tags"] is not None else frozenset()
        if v["cardData"] is not None:
            given |= _MODEL_FROM_CARD
        if v["spaces"] is not None:
            given |= {"spaces"}
        if v["siblings"] is not None:
            given |= {"files"}
        if v["baseModels"] is not None:
            given |= {"base_models"}
        files = v["siblings"] or ()
        has_adapter_config = any(f.rsplit("/", 1)[-1] == "adapter_config.json" for f in files)
        card_parents = card["cardData.base_model"]
        base_models = parse_base_models(
            rid, tags, list(card_parents) if card_parents else None,
            card["cardData.base_model_relation"],
            library=v["library_name"], has_adapter_config=has_adapter_config,
            api_base_models=parse_api_base_models(v["baseModels"]),
        )
        card_text = v["card"]
        if not base_models and card_text:  # nothing declared: what does the card's prose say?
            base_models = card_text_links(rid, card_text, tags, library=v["library_name"],
                                          has_adapter_config=has_adapter_config)
        return cls(
            id=rid, author=v["author"], created_at=v["createdAt"],
            last_modified=v["lastModified"], likes=v["likes"],
            downloads=v["downloads"],
            pipeline_tag=v["pipeline_tag"],
            library=v["library_name"],
            tags=tuple(tags),
            gated=v["gated"],
            parameters=v["safetensors"] or v["gguf"],
            licenses=_unique(licenses),
            datasets=_unique(datasets),
            arxiv=_unique(prefixed["arxiv:"]),
            spaces=_unique(v["spaces"] or ()),
            base_models=base_models,
            card_text=card_text[:MAX_CARD_CHARS] if card_text else None,
            files=files,
            downloads_all_time=v["downloads_all_time"],
            trending_score=v["trending_score"],
            children_count=v["children_count"],
            given=given,
            issues=issues,
        )

    @property
    def license(self) -> str | None:
        return self.licenses[0] if self.licenses else None


@dataclass(slots=True)
class DatasetRecord:
    """One Hub dataset (None: not given, as for `ModelRecord`)."""

    id: str
    author: str | None = None
    created_at: datetime | None = None
    last_modified: datetime | None = None
    downloads: int | None = None
    likes: int | None = None
    tags: tuple[str, ...] = ()
    gated: str | None = None
    licenses: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    arxiv: tuple[str, ...] = ()
    description: str | None = None
    given: frozenset[str] = frozenset()
    issues: Counter = field(default_factory=Counter)

    @classmethod
    def from_api(cls, d: Any) -> "DatasetRecord":
        rid, v, issues = _read(d, "dataset", DATASET_FIELDS)
        tags = v["tags"] or ()
        card = _card(v["cardData"], issues)
        prefixed = _by_prefix(tags)
        given = _DATASET_FROM_TAGS if v["tags"] is not None else frozenset()
        if v["cardData"] is not None:
            given |= {"licenses"}
        return cls(
            id=rid, author=v["author"], created_at=v["createdAt"],
            last_modified=v["lastModified"], likes=v["likes"],
            downloads=v["downloads"],
            tags=tuple(tags),
            gated=v["gated"],
            licenses=_unique(prefixed["license:"] + list(card["cardData.license"] or ())),
            tasks=_unique(prefixed["task_categories:"]),
            arxiv=_unique(prefixed["arxiv:"]),
            description=v["description"],
            given=given,
            issues=issues,
        )

    @property
    def license(self) -> str | None:
        return self.licenses[0] if self.licenses else None


@dataclass(slots=True)
class SpaceRecord:
    """One Hub Space, with the models and datasets it uses."""

    id: str
    author: str | None = None
    created_at: datetime | None = None
    last_modified: datetime | None = None
    likes: int | None = None
    sdk: str | None = None
    models: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    given: frozenset[str] = frozenset()
    issues: Counter = field(default_factory=Counter)

    @classmethod
    def from_api(cls, d: Any) -> "SpaceRecord":
        rid, v, issues = _read(d, "space", SPACE_FIELDS)
        return cls(
            id=rid, author=v["author"], created_at=v["createdAt"],
            last_modified=v["lastModified"], likes=v["likes"], sdk=v["sdk"],
            models=_unique(v["models"] or ()), datasets=_unique(v["datasets"] or ()),
            given=frozenset(k for k in ("models", "datasets") if v[k] is not None),
            issues=issues,
        )


Record = ModelRecord | DatasetRecord | SpaceRecord

RECORD_TYPES: dict[RepoKind, type] = {
    "model": ModelRecord, "dataset": DatasetRecord, "space": SpaceRecord,
}
FIELDS: dict[RepoKind, tuple[Field, ...]] = {
    "model": (_ID_FIELDS["model"], *MODEL_FIELDS, *CARD_FIELDS),
    "dataset": (_ID_FIELDS["dataset"], *DATASET_FIELDS, CARD_FIELDS[0]),
    "space": (_ID_FIELDS["space"], *SPACE_FIELDS),
}


def merge_records(old: Record, new: Record) -> Record:
    """Two records for one id (a listing item, then its full record): the later wins where it
    gives a value: a scalar that is not None, a list field named in its `given`. The
    incremental loader applies the same rule to what the graph already holds. `issues` are
    not merged (each record's were counted when it was read)."""
    values = {}
    for f in fields(new):
        if f.name == "issues":
            values[f.name] = Counter()
        elif f.name == "given":
            values[f.name] = old.given | new.given
        elif isinstance(getattr(new, f.name), tuple):
            values[f.name] = getattr(new if f.name in new.given else old, f.name)
        else:
            b = getattr(new, f.name)
            values[f.name] = b if b is not None else getattr(old, f.name)
    return type(new)(**values)
