"""base_model lineage: tag parsing, relation-type inference and legacy-id resolution.

The Hub records a model's parents four ways, oldest first:
- untyped tags `base_model:org/x` (all of July 2024);
- typed tags `base_model:{finetune|adapter|quantized|merge}:org/x` (since late 2024);
- card metadata `base_model:` (string or list) with an optional `base_model_relation:`;
- the API's `baseModels` expand property (the Hub's own relation and parents).
A relation the Hub recorded always wins (API, then typed tag, then the card's relation). Where
none was recorded the link is marked `inferred`: `infer_relation` gives the rule-of-thumb type
here, and the ingest replaces it by the learnt typing of `ingest.relation_model`. Every link
says where it came from (`source`: `api`, `typed_tag`, `tag`, `card`, or `card_text` for
parents recovered from card prose by `ingest.cards`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Literal

from graph.schema import LINEAGE_RELS
from graph.vocabulary import QUANT_NAME, QUANT_TAGS

Relation = Literal["finetune", "adapter", "quantized", "merge", "unknown"]
RELATIONS: tuple[Relation, ...] = tuple(LINEAGE_RELS)  # the names graph.schema types
_TYPED = {"finetune", "adapter", "quantized", "merge"}
_CARD_RELATION_ALIASES = {"quantization": "quantized", "quantize": "quantized",
                          "fine-tune": "finetune", "fine_tune": "finetune", "finetuned": "finetune",
                          "lora": "adapter", "peft": "adapter", "merged": "merge"}

_SPACE = re.compile(r"\s")
#: tags `infer_relation` reads (lower-cased), and the prefixes of those it skips
INFER_SKIPS = ("base_model:", "dataset:", "arxiv:")
ADAPTER_TAGS = {"peft", "lora", "adapter-transformers", "qlora"}
MERGE_TAGS = {"mergekit", "merge", "moerge"}


LinkSource = Literal["api", "typed_tag", "tag", "card", "card_text"]
#: link sources, most authoritative first
LINK_SOURCES: tuple[str, ...] = ("api", "typed_tag", "tag", "card", "card_text")


@dataclass(frozen=True, slots=True)
class BaseModelLink:
    """child → parent link as recorded; `parent` is the id as written, not yet resolved.
    `pattern` names the card sentence a `card_text` link was read from."""

    parent: str
    relation: Relation
    inferred: bool
    source: LinkSource
    pattern: str | None = None


def parse_api_base_models(value) -> list[tuple[str, str | None]]:
    """(parent, relation) pairs from the API's `baseModels` property. The Hub answers
    `{"relation": "quantized", "models": [{"id": "org/x"}]}`; lists of such objects, of
    `{"id", "relation"}` objects or of plain ids (as `ModelInfo.base_models`) are read too."""
    out: list[tuple[str, str | None]] = []

    def relation_of(obj) -> str | None:
        rel = obj.get("relation") if isinstance(obj, dict) else None
        if not isinstance(rel, str):
            return None
        rel = _CARD_RELATION_ALIASES.get(rel.strip().lower(), rel.strip().lower())
        return rel if rel in _TYPED else "unknown"

    def visit(obj, rel: str | None) -> None:
        if isinstance(obj, str):
            parent = _clean_parent(obj)
            if parent:
                out.append((parent, rel))
        elif isinstance(obj, dict):
            rel = relation_of(obj) or rel
            if "models" in obj:
                visit(obj.get("models"), rel)
            elif isinstance(obj.get("id"), str):
                visit(obj["id"], rel)
        elif isinstance(obj, list):
            for item in obj:
                visit(item, rel)

    visit(value, None)
    return out


def _clean_parent(value: str) -> str | None:
    value = normalise_id(value)
    if not value or len(value) > 200 or _SPACE.search(value):
        return None
    return value


BASE_MODEL_TAG = "base_model:"


def tag_parent(value: str) -> tuple[str | None, Relation | None]:
    """The parent a `base_model:` tag names (`value`: the text after the prefix), cleaned,
    or None; with the relation of a typed tag (`finetune:org/x`), else None."""
    kind, sep, target = value.partition(":")
    if sep and kind in _TYPED:
        return _clean_parent(target), kind  # type: ignore[return-value]
    return _clean_parent(value), None


def infer_relation(child_id: str, tags: Iterable[str], n_parents: int, *,
                   library: str | None = None, has_adapter_config: bool = False) -> Relation:
    """Infer finetune/adapter/quantized/merge for an untyped link from the child's metadata."""
    tagset = {t.lower() for t in tags if not t.startswith(INFER_SKIPS)}
    if n_parents > 1 or tagset & MERGE_TAGS:
        return "merge"
    if has_adapter_config or (library or "").lower() == "peft" or tagset & ADAPTER_TAGS:
        return "adapter"
    if tagset & QUANT_TAGS or QUANT_NAME.search(child_id.split("/", 1)[-1]):
        return "quantized"
    return "finetune"


def parse_base_models(child_id: str, tags: Iterable[str], card_base_model=None,
                      card_relation=None, *, library: str | None = None,
                      has_adapter_config: bool = False,
                      api_base_models: list[tuple[str, str | None]] | None = None
                      ) -> tuple[BaseModelLink, ...]:
    """All child → parent links of one model, typed where the Hub said so, else inferred."""
    tags = list(tags)
    api: dict[str, Relation] = {}
    for parent, rel in api_base_models or ():
        if rel is not None:
            api.setdefault(parent, rel)  # type: ignore[arg-type]
    typed: dict[str, Relation] = {}
    untyped: dict[str, str] = {}
    for tag in tags:
        if not tag.startswith(BASE_MODEL_TAG):
            continue
        parent, kind = tag_parent(tag[len(BASE_MODEL_TAG):])
        if parent and kind:
            typed.setdefault(parent, kind)
        elif parent:
            untyped.setdefault(parent, "tag")
    if card_base_model:
        parents = [card_base_model] if isinstance(card_base_model, str) else card_base_model
        for p in parents if isinstance(parents, list) else []:
            parent = _clean_parent(p) if isinstance(p, str) else None
            if parent and parent not in untyped:
                untyped[parent] = "card"
    card_rel = None
    if isinstance(card_relation, str):
        rel = card_relation.strip().lower()
        rel = _CARD_RELATION_ALIASES.get(rel, rel)
        card_rel = rel if rel in _TYPED else "unknown"

    for parent, rel in api_base_models or ():
        if rel is None and parent not in typed:
            untyped.setdefault(parent, "api")  # the Hub named the parent but not the relation
    links = [BaseModelLink(p, r, False, "api") for p, r in api.items()]
    links += [BaseModelLink(p, r, False, "typed_tag") for p, r in typed.items() if p not in api]
    pending = [p for p in untyped if p not in typed and p not in api]
    if pending:
        if card_rel is not None:
            links += [BaseModelLink(p, card_rel, False, untyped[p]) for p in pending]  # type: ignore[arg-type]
        else:
            rel = infer_relation(child_id, tags, len(links) + len(pending), library=library,
                                 has_adapter_config=has_adapter_config)
            links += [BaseModelLink(p, rel, True, untyped[p]) for p in pending]  # type: ignore[arg-type]
    return tuple(links)


# Canonical models the Hub moved under an organisation in 2024: `gpt2` → `openai-community/gpt2`.
LEGACY_ORGS = ("google-bert", "FacebookAI", "openai-community", "distilbert", "google-t5",
               "albert", "almanach", "facebook", "google", "microsoft", "openai", "stabilityai",
               "runwayml", "CompVis", "EleutherAI", "bigscience", "allenai", "huggingface")

#: How a parent id resolved, or why it did not (`Resolution.how`).
RESOLVED_HOW = ("exact", "normalised", "case", "legacy_alias", "unique_name", "dominant_name")
UNRESOLVED_REASONS = {
    "local_path": "a path on the author's machine or a file name, not a Hub repo",
    "placeholder": "a template placeholder or empty value ('None', '{{base_model}}', …)",
    "ambiguous": "a bare name several models carry, none of them the clear original",
    "unknown_name": "a bare name no model in the graph carries",
    "namespace_unknown": "no model in the graph lives under that namespace (account renamed, "
                         "deleted, or outside the snapshot)",
    "deleted_or_renamed": "the namespace exists but not this repo (deleted, renamed, private, "
                          "or newer than the snapshot)",
}

_URL_PREFIX = re.compile(r"^(?:hf://|(?:https?://)?(?:www\.)?(?:huggingface\.co|hf\.co)/)"
                         r"(?:models/)?", re.I)
_REVISION_SUFFIX = re.compile(r"/(?:tree|blob|resolve|commit)/.*$|@[\w.\-]+$|\.git$")
_LOCAL_PATH = re.compile(
    r"^(?:[/~.\\]|[A-Za-z]:[\\/])|\\|"
    r"\.(?:safetensors|bin|ckpt|pt|pth|h5|gguf|json|onnx|pkl|msgpack|ya?ml|zip|tar|gz)$|"
    r"(?:^|/)checkpoints?[-_]?\d*$", re.I)
_LOCAL_DIRS = frozenset({
    "models", "model", "data", "output", "outputs", "out", "checkpoints", "checkpoint", "ckpt",
    "ckpts", "results", "result", "content", "tmp", "temp", "home", "workspace", "mnt", "root",
    "drive", "saved_models", "saved_model", "save", "merged", "merged_models", "merged_model",
    "merged_peft", "merged_ckpts", "weights", "artifacts", "runs", "experiments", "local",
    "kaggle", "input", "llama_weights", "model_trained", "trained_models", "pretrained"})
_LOCAL_BARE = re.compile(r"^(?:outputs?|models?|checkpoints?|ckpts?|results?|tmp|temp|"
                         r"merged[-_]?models?|final[-_]?models?|saved?[-_]?models?|"
                         r"trained[-_]?models?|my[-_]?models?)(?:[-_]?\w{0,8})?$", re.I)
_PLACEHOLDERS = frozenset({"none", "null", "nan", "n/a", "na", "-", "base_model", "base-model",
                           "unknown", "todo", "tbd", "your_model", "your-model", "model_id",
                           "model-id", "model_name", "model-name", "base_model_name", ""})

#: A bare name several models carry resolves to the one the ecosystem treats as the original:
#: it holds this share of the candidates' downloads and of their mentions as a parent.
DOMINANT_SHARE = 0.9


def normalise_id(value: str) -> str:
    """The repo id inside a Hub URL, revision suffix or stray slashes/quotes; else as given."""
    value = value.strip().strip("'\"`").strip()
    value = _URL_PREFIX.sub("", value)
    value = _REVISION_SUFFIX.sub("", value)
    return value.rstrip("/").strip()


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a parent id names: `id` (resolved, or the normalised id when not `known`) and
    `how` (one of `RESOLVED_HOW`, or the reason in `UNRESOLVED_REASONS`)."""

    id: str
    known: bool
    how: str


class IdResolver:
    """Resolve parent ids as written in tags and cards to model ids present in the graph.

    Order: exact id → the id inside a URL / with a revision suffix or stray slashes → case
    variant → legacy alias (a bare name that now lives under one of `LEGACY_ORGS`) → a bare
    name exactly one namespaced model carries → a bare name whose candidates have one clear
    original (`DOMINANT_SHARE` of their downloads and of their mentions as a parent; needs
    `downloads`/`references`). Whatever is left stays as written, with a reason (`explain`).
    """

    def __init__(self, model_ids: Iterable[str], *, downloads: dict[str, int] | None = None,
                 references: dict[str, int] | None = None):
        self._exact: set[str] = set()
        self._lower: dict[str, str] = {}
        self._legacy: dict[str, str | None] = {}
        self._by_name: dict[str, str] = {}
        self._name_dups: dict[str, list[str]] = {}
        self._namespaces: set[str] = set()
        self._orgs = {o.lower() for o in LEGACY_ORGS}
        self._downloads = downloads or {}
        self._references = references or {}
        self._dominant: dict[str, str | None] = {}
        for mid in model_ids:
            self.add(mid)

    @classmethod
    def from_records(cls, records) -> "IdResolver":
        """A resolver over these model records, with their downloads and how often each id is
        named as a parent (what makes an original 'clear' among same-named copies)."""
        records = list(records)
        refs: dict[str, int] = {}
        for r in records:
            for link in r.base_models:
                refs[link.parent] = refs.get(link.parent, 0) + 1
        return cls((r.id for r in records), downloads={r.id: r.downloads for r in records},
                   references=refs)

    def add(self, mid: str, orgs: set[str] | None = None) -> None:
        if mid in self._exact:
            return
        self._exact.add(mid)
        self._lower.setdefault(mid.lower(), mid)
        org, sep, name = mid.partition("/")
        if not sep:
            return
        self._namespaces.add(org.lower())
        key = name.lower()
        if org.lower() in (orgs or self._orgs):
            if key not in self._legacy:
                self._legacy[key] = mid
            elif self._legacy[key] != mid:
                self._legacy[key] = None  # two organisations hold this name: ambiguous
        first = self._by_name.setdefault(key, mid)
        if first != mid:
            self._name_dups.setdefault(key, [first]).append(mid)
            self._dominant.pop(key, None)

    def resolve(self, parent: str) -> tuple[str, bool]:
        """(resolved id, whether it names a known model)."""
        res = self.explain(parent)
        return (res.id, True) if res.known else (parent, False)

    def explain(self, parent: str) -> Resolution:
        """The resolution of one parent id, with how it resolved or why it did not."""
        if parent in self._exact:
            return Resolution(parent, True, "exact")
        clean = normalise_id(parent)
        if clean != parent and clean in self._exact:
            return Resolution(clean, True, "normalised")
        hit = self._lower.get(clean.lower())
        if hit:
            return Resolution(hit, True, "case")
        if clean.lower() in _PLACEHOLDERS or "{{" in clean or "<" in clean:
            return Resolution(clean, False, "placeholder")
        if _LOCAL_PATH.search(clean):
            return Resolution(clean, False, "local_path")
        org, sep, name = clean.partition("/")
        if sep:
            if org.lower() in self._namespaces:
                return Resolution(clean, False, "deleted_or_renamed")
            if org.lower() in _LOCAL_DIRS or "/" in name:
                return Resolution(clean, False, "local_path")
            return Resolution(clean, False, "namespace_unknown")
        key = clean.lower()
        hit = self._legacy.get(key)
        if hit:
            return Resolution(hit, True, "legacy_alias")
        if _LOCAL_BARE.match(clean):
            return Resolution(clean, False, "local_path")
        if key not in self._by_name:
            return Resolution(clean, False, "unknown_name")
        if key not in self._name_dups:
            return Resolution(self._by_name[key], True, "unique_name")
        hit = self._dominant_candidate(key)
        if hit:
            return Resolution(hit, True, "dominant_name")
        return Resolution(clean, False, "ambiguous")

    def candidates(self, name: str) -> list[str]:
        """Every model id whose name part (after the namespace) is `name`, case-insensitively."""
        key = name.lower()
        return list(self._name_dups.get(key) or ([self._by_name[key]] if key in self._by_name
                                                  else []))

    def _dominant_candidate(self, key: str) -> str | None:
        if key in self._dominant:
            return self._dominant[key]
        cands = self._name_dups[key]
        best = max(cands, key=lambda c: (self._references.get(c, 0), self._downloads.get(c, 0)))
        downloads = sum(self._downloads.get(c, 0) for c in cands)
        refs = sum(self._references.get(c, 0) for c in cands)
        ok = (refs > 0 and downloads > 0
              and self._references.get(best, 0) >= DOMINANT_SHARE * refs
              and self._downloads.get(best, 0) >= DOMINANT_SHARE * downloads)
        self._dominant[key] = best if ok else None
        return self._dominant[key]
