"""base_model lineage: tag parsing, relation-type inference and legacy-id resolution.

The Hub records a model's parents three ways, oldest first:
- untyped tags `base_model:org/x` (all of July 2024);
- typed tags `base_model:{finetune|adapter|quantized|merge}:org/x` (since late 2024);
- card metadata `base_model:` (string or list) with an optional `base_model_relation:`.
Where no type was recorded we infer it the way the Hub's model tree does (adapter files or
PEFT → adapter, quantisation formats → quantized, several parents → merge, else finetune) and
mark the link `inferred`. `evaluate_inference` measures that rule against typed tags.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Literal

Relation = Literal["finetune", "adapter", "quantized", "merge", "unknown"]
RELATIONS: tuple[Relation, ...] = ("finetune", "adapter", "quantized", "merge", "unknown")
_TYPED = {"finetune", "adapter", "quantized", "merge"}
_CARD_RELATION_ALIASES = {"quantization": "quantized", "quantize": "quantized",
                          "fine-tune": "finetune", "fine_tune": "finetune", "finetuned": "finetune",
                          "lora": "adapter", "peft": "adapter", "merged": "merge"}

_SPACE = re.compile(r"\s")
_QUANT_TAGS = {"gguf", "gptq", "awq", "exl2", "4-bit", "8-bit", "bitsandbytes", "quantized",
               "autoround", "hqq", "aqlm", "ggml", "fp8", "compressed-tensors", "bnb", "mlx"}
_QUANT_ID = re.compile(
    r"(gguf|ggml|gptq|awq|exl2|bnb|[-_.]?\d(\.\d+)?bits?\b|\b[48]bit|int[48]|fp8|nf4|q[2-8]_k|"
    r"q[2-8]_[01]|\bquant|[-_]mlx\b|imatrix|hqq|aqlm)", re.I)
_ADAPTER_TAGS = {"peft", "lora", "adapter-transformers", "qlora"}
_MERGE_TAGS = {"mergekit", "merge", "moerge"}


@dataclass(frozen=True, slots=True)
class BaseModelLink:
    """child → parent link as recorded; `parent` is the id as written, not yet resolved."""

    parent: str
    relation: Relation
    inferred: bool
    source: Literal["typed_tag", "tag", "card"]


def _clean_parent(value: str) -> str | None:
    value = value.strip().strip("'\"")
    for prefix in ("https://huggingface.co/", "http://huggingface.co/", "hf.co/"):
        if value.startswith(prefix):
            value = value[len(prefix):]
    value = value.rstrip("/")
    if not value or len(value) > 200 or _SPACE.search(value):
        return None
    return value


def infer_relation(child_id: str, tags: Iterable[str], n_parents: int, *,
                   library: str | None = None, has_adapter_config: bool = False) -> Relation:
    """Infer finetune/adapter/quantized/merge for an untyped link from the child's metadata."""
    tagset = {t.lower() for t in tags if not t.startswith(("base_model:", "dataset:", "arxiv:"))}
    if n_parents > 1 or tagset & _MERGE_TAGS:
        return "merge"
    if has_adapter_config or (library or "").lower() == "peft" or tagset & _ADAPTER_TAGS:
        return "adapter"
    if tagset & _QUANT_TAGS or _QUANT_ID.search(child_id.split("/", 1)[-1]):
        return "quantized"
    return "finetune"


def parse_base_models(child_id: str, tags: Iterable[str], card_base_model=None,
                      card_relation=None, *, library: str | None = None,
                      has_adapter_config: bool = False) -> tuple[BaseModelLink, ...]:
    """All child → parent links of one model, typed where the Hub said so, else inferred."""
    tags = list(tags)
    typed: dict[str, Relation] = {}
    untyped: dict[str, str] = {}
    for tag in tags:
        if not tag.startswith("base_model:"):
            continue
        rest = tag[len("base_model:"):]
        kind, sep, target = rest.partition(":")
        if sep and kind in _TYPED:
            parent = _clean_parent(target)
            if parent:
                typed.setdefault(parent, kind)  # type: ignore[arg-type]
        else:
            parent = _clean_parent(rest)
            if parent:
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

    links = [BaseModelLink(p, r, False, "typed_tag") for p, r in typed.items()]
    pending = [p for p in untyped if p not in typed]
    if pending:
        if card_rel is not None:
            links += [BaseModelLink(p, card_rel, False, untyped[p]) for p in pending]  # type: ignore[arg-type]
        else:
            rel = infer_relation(child_id, tags, len(typed) + len(pending), library=library,
                                 has_adapter_config=has_adapter_config)
            links += [BaseModelLink(p, rel, True, untyped[p]) for p in pending]  # type: ignore[arg-type]
    return tuple(links)


# Canonical models the Hub moved under an organisation in 2024: `gpt2` → `openai-community/gpt2`.
LEGACY_ORGS = ("google-bert", "FacebookAI", "openai-community", "distilbert", "google-t5",
               "albert", "almanach", "facebook", "google", "microsoft", "openai", "stabilityai",
               "runwayml", "CompVis", "EleutherAI", "bigscience", "allenai", "huggingface")


class IdResolver:
    """Resolve parent ids as written in tags to model ids present in the graph.

    Order: exact id → case-insensitive id → legacy alias (a bare name that now lives under
    one of `LEGACY_ORGS`, when exactly one such model exists). Unresolved ids stay as written.
    """

    def __init__(self, model_ids: Iterable[str]):
        self._exact: set[str] = set()
        self._lower: dict[str, str] = {}
        self._legacy: dict[str, str | None] = {}
        orgs = {o.lower() for o in LEGACY_ORGS}
        for mid in model_ids:
            self.add(mid, orgs)

    def add(self, mid: str, orgs: set[str] | None = None) -> None:
        orgs = orgs or {o.lower() for o in LEGACY_ORGS}
        self._exact.add(mid)
        self._lower.setdefault(mid.lower(), mid)
        org, sep, name = mid.partition("/")
        if sep and org.lower() in orgs:
            key = name.lower()
            if key not in self._legacy:
                self._legacy[key] = mid
            elif self._legacy[key] != mid:
                self._legacy[key] = None  # two organisations hold this name: ambiguous

    def resolve(self, parent: str) -> tuple[str, bool]:
        """(resolved id, whether it names a known model)."""
        if parent in self._exact:
            return parent, True
        hit = self._lower.get(parent.lower())
        if hit:
            return hit, True
        if "/" not in parent:
            hit = self._legacy.get(parent.lower())
            if hit:
                return hit, True
        return parent, False

