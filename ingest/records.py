"""Typed records for Hub API objects, parsed once.

`ModelRecord.from_api()` and its siblings accept one Hub API object as a dict, in either of the
two shapes the Hub hands out: the raw JSON of `/api/models` (camelCase: `createdAt`,
`cardData`, `library_name`) or a `huggingface_hub` `ModelInfo` turned into a dict (snake_case:
`created_at`, `card_data`). Nothing downstream of this module sees raw dicts.

Malformed input raises `RecordError` with a short machine-readable `reason`; callers count those.
"""
from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Literal

from ingest.cards import card_text_links
from ingest.errors import RecordError
from ingest.lineage import BaseModelLink, parse_api_base_models, parse_base_models

#: The Hub back-filled every model and dataset created before March 2022 with this date
#: (or the second after it: 7.8k records carry :04, 22k carry :05 in the July 2024 listing).
HUB_BACKFILL_DATE = datetime(2022, 3, 2, 23, 29, 4, tzinfo=timezone.utc)
#: Tag lists longer than this are truncated (and the record counted as such); real records
#: rarely carry more than a few hundred tags.
MAX_TAGS = 2000
#: Card text kept per model, enough for retrieval; full READMEs can be megabytes.
MAX_CARD_CHARS = 4000

RepoKind = Literal["model", "dataset", "space"]
_SPACE = re.compile(r"\s")

_KNOWN_MODEL_KEYS = {
    "_id", "id", "modelId", "author", "sha", "lastModified", "last_modified", "createdAt",
    "created_at", "private", "disabled", "gated", "downloads", "downloads_all_time",
    "downloadsAllTime", "likes", "library_name", "pipeline_tag", "tags", "cardData",
    "card_data", "spaces", "safetensors", "siblings", "config", "model-index", "model_index",
    "widgetData", "widget_data", "transformersInfo", "transformers_info", "inference",
    "gguf", "trending_score", "trendingScore", "card", "baseModels", "base_models",
    "childrenModelCount", "children_model_count",
}


def _get(d: dict, *keys: str, default: Any = None) -> Any:
    for k in keys:
        if k in d and d[k] is not None:
            return d[k]
    return default


def parse_datetime(value: Any) -> datetime | None:
    """Parse a Hub timestamp (ISO string or datetime) to an aware UTC datetime.

    The Hub's March-2022 back-fill date means "unknown" and becomes None.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        try:
            dt = datetime.fromisoformat(text)
        except ValueError as e:
            raise RecordError("bad_date", f"unparseable date {value!r}") from e
    else:
        raise RecordError("bad_date", f"date of type {type(value).__name__}")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    dt = dt.astimezone(timezone.utc)
    if 0.0 <= (dt - HUB_BACKFILL_DATE).total_seconds() < 2.0:  # the back-fill took 2 seconds
        return None
    return dt


def _as_int(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        return int(value)
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _optional_int(value: Any) -> int | None:
    """An optional count: None stays None (unknown), junk becomes None too."""
    if value is None or isinstance(value, bool):
        return None
    try:
        out = int(value)
    except (TypeError, ValueError):
        return None
    return out if out >= 0 else None


def _optional_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if out == out else None  # NaN is unknown


def _as_mapping(value: Any) -> dict:
    """cardData arrives as a dict (API), a YAML-ish string (ModelInfo repr) or a repr'd dict."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if text.startswith("{"):
            for loader in (json.loads, ast.literal_eval):
                try:
                    out = loader(text)
                    if isinstance(out, dict):
                        return out
                except (ValueError, SyntaxError):
                    pass
        return _parse_simple_yaml(text)
    return {}


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


def _as_str_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if v is not None and not isinstance(v, (dict, list))]
    return []


def _tags(d: dict) -> tuple[list[str], bool]:
    raw = d.get("tags")
    if raw is None:
        return [], False
    if not isinstance(raw, list):
        raise RecordError("bad_tags", f"tags is {type(raw).__name__}, not a list")
    tags = [t for t in raw if isinstance(t, str)]
    truncated = len(tags) > MAX_TAGS
    return tags[:MAX_TAGS], truncated


def _record_id(d: dict, kind: RepoKind) -> str:
    rid = _get(d, "id", "modelId") if kind == "model" else d.get("id")
    if not isinstance(rid, str) or not rid.strip():
        raise RecordError("missing_id", f"{kind} record without an id")
    rid = rid.strip()
    if len(rid) > 200 or _SPACE.search(rid):
        raise RecordError("bad_id", f"{kind} id {rid[:60]!r} is not a repo id")
    return rid


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


def _gated(value: Any) -> str | None:
    if value is None or value is False:
        return None
    if value is True:
        return "true"
    return str(value)


def _author(d: dict, rid: str) -> str | None:
    author = d.get("author")
    if isinstance(author, str) and author:
        return author
    return rid.split("/", 1)[0] if "/" in rid else None


def _parameters(d: dict) -> int | None:
    st = d.get("safetensors")
    if isinstance(st, dict):
        total = st.get("total")
        if isinstance(total, (int, float)) and total > 0:
            return int(total)
    gguf = d.get("gguf")
    if isinstance(gguf, dict):
        total = gguf.get("total")
        if isinstance(total, (int, float)) and total > 0:
            return int(total)
    return None


_SIBLING_REPR = re.compile(r"rfilename='([^']*)'")
#: File names kept per model: enough to see formats (adapters, GGUF, quantisation configs).
MAX_FILES = 500


def _file_names(siblings: Any) -> tuple[str, ...]:
    """Repo file names from `siblings`: API dicts, or the `RepoSibling(rfilename=...)` reprs
    the trees-2025 crawl stored."""
    if not isinstance(siblings, list):
        return ()
    names = []
    for s in siblings[:MAX_FILES]:
        if isinstance(s, dict):
            name = s.get("rfilename")
        elif isinstance(s, str):
            match = _SIBLING_REPR.search(s)
            name = match.group(1) if match else s
        else:
            name = None
        if isinstance(name, str) and name:
            names.append(name)
    return tuple(names)


def _repo_fields(d: dict, kind: RepoKind) -> dict[str, Any]:
    """The fields every repo record shares: id, author, dates, likes."""
    if not isinstance(d, dict):
        raise RecordError("not_an_object", f"{kind} record is {type(d).__name__}")
    rid = _record_id(d, kind)
    return {"id": rid, "author": _author(d, rid),
            "created_at": parse_datetime(_get(d, "createdAt", "created_at")),
            "last_modified": parse_datetime(_get(d, "lastModified", "last_modified")),
            "likes": _as_int(d.get("likes"))}


def _unique(seq: Iterable[str]) -> tuple[str, ...]:
    if not seq:
        return ()
    return tuple(dict.fromkeys(s.strip() for s in seq if s and s.strip()))


@dataclass(slots=True)
class ModelRecord:
    """One Hub model, as the graph stores it."""

    id: str
    author: str | None = None
    created_at: datetime | None = None
    last_modified: datetime | None = None
    downloads: int = 0
    likes: int = 0
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
    tags_truncated: bool = False
    files: tuple[str, ...] = ()  # repo file names where the record lists them (not listings)
    downloads_all_time: int | None = None  # `downloadsAllTime` (downloads is the 30-day count)
    trending_score: float | None = None
    children_count: int | None = None  # the Hub's `childrenModelCount`
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_api(cls, d: Any) -> "ModelRecord":
        common = _repo_fields(d, "model")
        rid = common["id"]
        tags, truncated = _tags(d)
        card = _as_mapping(_get(d, "cardData", "card_data"))
        prefixed = _by_prefix(tags)
        licenses = prefixed["license:"] + _as_str_list(card.get("license"))
        datasets = prefixed["dataset:"] + _as_str_list(card.get("datasets"))
        files = _file_names(d.get("siblings"))
        has_adapter_config = any(f.rsplit("/", 1)[-1] == "adapter_config.json" for f in files)
        base_models = parse_base_models(
            rid, tags, card.get("base_model"), card.get("base_model_relation"),
            library=_get(d, "library_name"), has_adapter_config=has_adapter_config,
            api_base_models=parse_api_base_models(_get(d, "baseModels", "base_models")),
        )
        card_text = d.get("card")
        if not isinstance(card_text, str) or card_text in ("", "None"):
            card_text = None
        if not base_models and card_text:  # nothing declared: what does the card's prose say?
            base_models = card_text_links(rid, card_text, tags, library=_get(d, "library_name"),
                                          has_adapter_config=has_adapter_config)
        spaces = d.get("spaces") if isinstance(d.get("spaces"), list) else []
        return cls(
            **common,
            downloads=_as_int(d.get("downloads")),
            pipeline_tag=_get(d, "pipeline_tag") or None,
            library=_get(d, "library_name") or None,
            tags=tuple(tags),
            gated=_gated(d.get("gated")),
            parameters=_parameters(d),
            licenses=_unique(licenses),
            datasets=_unique(datasets),
            arxiv=_unique(prefixed["arxiv:"]),
            spaces=_unique(s for s in spaces if isinstance(s, str)),
            base_models=base_models,
            card_text=card_text[:MAX_CARD_CHARS] if card_text else None,
            tags_truncated=truncated,
            files=files,
            downloads_all_time=_optional_int(_get(d, "downloadsAllTime", "downloads_all_time")),
            trending_score=_optional_float(_get(d, "trendingScore", "trending_score")),
            children_count=_optional_int(_get(d, "childrenModelCount", "children_model_count")),
            extra={k: v for k, v in d.items() if k not in _KNOWN_MODEL_KEYS},
        )

    @property
    def license(self) -> str | None:
        return self.licenses[0] if self.licenses else None


@dataclass(slots=True)
class DatasetRecord:
    """One Hub dataset."""

    id: str
    author: str | None = None
    created_at: datetime | None = None
    last_modified: datetime | None = None
    downloads: int = 0
    likes: int = 0
    tags: tuple[str, ...] = ()
    gated: str | None = None
    licenses: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    arxiv: tuple[str, ...] = ()
    description: str | None = None
    tags_truncated: bool = False

    @classmethod
    def from_api(cls, d: Any) -> "DatasetRecord":
        common = _repo_fields(d, "dataset")
        tags, truncated = _tags(d)
        card = _as_mapping(_get(d, "cardData", "card_data"))
        prefixed = _by_prefix(tags)
        desc = d.get("description")
        return cls(
            **common,
            downloads=_as_int(d.get("downloads")),
            tags=tuple(tags),
            gated=_gated(d.get("gated")),
            licenses=_unique(prefixed["license:"] + _as_str_list(card.get("license"))),
            tasks=_unique(prefixed["task_categories:"]),
            arxiv=_unique(prefixed["arxiv:"]),
            description=desc[:MAX_CARD_CHARS] if isinstance(desc, str) and desc else None,
            tags_truncated=truncated,
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
    likes: int = 0
    sdk: str | None = None
    models: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()

    @classmethod
    def from_api(cls, d: Any) -> "SpaceRecord":
        common = _repo_fields(d, "space")
        return cls(
            **common,
            sdk=d.get("sdk") or None,
            models=_unique(_as_str_list(d.get("models"))),
            datasets=_unique(_as_str_list(d.get("datasets"))),
        )


Record = ModelRecord | DatasetRecord | SpaceRecord

RECORD_TYPES: dict[RepoKind, type] = {
    "model": ModelRecord, "dataset": DatasetRecord, "space": SpaceRecord,
}
