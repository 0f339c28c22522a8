"""Base models recovered from model-card prose, for models whose metadata declares none.

Patterns, each a sentence or block that tools write into cards:
- `trainer`: the Trainer/TRL sentence "This model is a fine-tuned version of [X](https://…/X)";
- `mergekit`: a mergekit configuration (`models:` / `slices:` lists of `model:` entries and a
  `base_model:`), or LazyMergekit's "merge of the following models: * [X](…)";
- `quantized`: "GGUF/GPTQ/AWQ/EXL2 … (model files|quants) (for|of) [X](…)", "quantized (version)
  (of|from) [X](…)", "converted to GGUF/MLX format from [X](…)", bartowski's "Original model: X";
- `adapter`: "(LoRA|PEFT) adapter (for|of|on) [X](…)".

`extract_card_links(text)` returns `CardLink`s (parent id as written, relation the pattern
implies, or None when the sentence does not say: the Trainer sentence is written for full
fine-tunes and LoRA adapters alike). Links become `BaseModelLink(source="card_text",
inferred=True)`; `card_link_precision` measures them against the links models declare.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable

from ingest.lineage import BaseModelLink, IdResolver, infer_relation, normalise_id

_ID = r"[A-Za-z0-9][\w.\-]*/[\w.\-]*[A-Za-z0-9]"
# in a Hub URL a legacy bare id (`distilbert-base-uncased`) is a model too
_URL_ID = (r"(?!(?:datasets|spaces|docs|blog|papers|settings|join|login|collections|organizations"
           r"|tasks|pricing)\b)[A-Za-z0-9][\w.\-]*(?:/[\w.\-]*[A-Za-z0-9])?")
_HF = r"https?://(?:www\.)?(?:huggingface\.co|hf\.co)/(?:models/)?"
_HF_URL = rf"{_HF}(?P<url>{_URL_ID})"
# [text](https://huggingface.co/org/x), or a bare URL, or `org/x` / org/x
_REF = (rf"(?:\[[^\]]{{0,200}}\]\(\s*{_HF}(?P<link>{_URL_ID})[^)]*\)|{_HF_URL}|"
        rf"\[?`?(?P<plain>{_ID})`?\]?)")


def _with_ref(prefix: str, flags: int = re.I) -> re.Pattern:
    return re.compile(prefix + _REF, flags)


_TRAINER = (_with_ref(r"fine-?tuned version of\s+"),)
_QUANTIZED = (
    _with_ref(r"\b(?:gguf|ggml|gptq|awq|exl2|exllamav2|mlx|hqq|aqlm|bnb|bitsandbytes|fp8|int4|"
              r"int8|[2-8][- ]?bit|static|imatrix|weighted/imatrix|llama\.?cpp)\s+"
              r"(?:format\s+)?(?:model\s+files|files|quants?|quantizations?|quantisations?|"
              r"versions?|weights|conversions?)\s+(?:for|of)\s+(?:the\s+)?"),
    _with_ref(r"quanti[sz](?:ed|ation)s?\s+(?:version\s+)?(?:of|from)\s+(?:the\s+)?"),
    _with_ref(r"converted to \w+ format from\s+"),
    _with_ref(r"^\s*[-*]?\s*original model:\s*", re.I | re.M),
)
_ADAPTER = (_with_ref(r"(?:lora|peft|qlora)\s+adapters?\s+(?:for|of|on)\s+(?:the\s+)?"),)
_MERGE_LIST = re.compile(r"merge of the following models[^:\n]*:\s*\n((?:\s*[*-]\s+.*\n?)+)",
                         re.I)
_YAML_BLOCK = re.compile(r"```ya?ml\s*\n(.*?)```", re.S | re.I)
_YAML_MODEL = re.compile(rf"^\s*-?\s*(?:model|base_model)\s*:\s*[\"']?(?P<id>{_ID})[\"']?\s*$",
                         re.M)
_MERGEKIT_KEYS = re.compile(r"^\s*(?:merge_method|slices|models)\s*:", re.M)


@dataclass(frozen=True, slots=True)
class CardLink:
    """A parent named in a card: the id, the relation the pattern implies (None: the text does
    not say) and the pattern's name."""

    parent: str
    relation: str | None
    pattern: str


#: patterns whose wording fixes the relation (the relation typer leaves those links alone)
DEFINITE_PATTERNS = frozenset({"mergekit", "quantized", "adapter"})


def _refs(patterns: tuple[re.Pattern, ...], text: str) -> list[str]:
    out = []
    for pattern in patterns:
        for m in pattern.finditer(text):
            value = normalise_id(m.group("link") or m.group("url") or m.group("plain") or "")
            if value and value.count("/") <= 1:
                out.append(value)
    return out


def _mergekit(text: str) -> list[str]:
    parents: list[str] = []
    for block in _YAML_BLOCK.findall(text):
        if _MERGEKIT_KEYS.search(block):
            parents += [m.group("id") for m in _YAML_MODEL.finditer(block)]
    for items in _MERGE_LIST.findall(text):
        for line in items.splitlines():
            m = re.search(rf"{_HF_URL}|\[(?P<plain>{_ID})\]", line)
            if m:
                parents.append(m.group("url") or m.group("plain"))
    return [normalise_id(p) for p in parents]


def _strip_front_matter(text: str) -> str:
    if text.startswith("---"):
        end = text.find("\n---", 3)
        if end != -1:
            return text[end + 4:]
    return text


def extract_card_links(text: str | None, *, own_id: str | None = None) -> tuple[CardLink, ...]:
    """Base models a card's prose names, first pattern first, each parent once."""
    if not text:
        return ()
    body = _strip_front_matter(text)
    found: dict[str, CardLink] = {}

    def add(parents: Iterable[str], relation: str | None, pattern: str) -> None:
        for p in parents:
            if p and p != own_id and p.lower() != (own_id or "").lower() and p not in found:
                found[p] = CardLink(p, relation, pattern)

    merge = _mergekit(body)
    if len(set(merge)) > 1:  # a one-model "merge" config is a re-save, not a merge
        add(merge, "merge", "mergekit")
    add(_refs(_QUANTIZED, body), "quantized", "quantized")
    add(_refs(_ADAPTER, body), "adapter", "adapter")
    add(_refs(_TRAINER, body), None, "trainer")
    return tuple(found.values())


def card_text_links(child_id: str, text: str | None, tags=(), *, library: str | None = None,
                    has_adapter_config: bool = False) -> tuple[BaseModelLink, ...]:
    """`extract_card_links` as lineage links (`source="card_text"`, `inferred=True`); where the
    sentence does not fix the relation, the rule of thumb types it until the learnt typer
    (`ingest.relation_model`) runs over the batch."""
    found = extract_card_links(text, own_id=child_id)
    if not found:
        return ()
    guess = infer_relation(child_id, tags, len(found), library=library,
                           has_adapter_config=has_adapter_config)
    return tuple(BaseModelLink(c.parent, c.relation or guess, True, "card_text", c.pattern)
                 for c in found)


@dataclass
class CardLinkReport:
    """Card-derived links of models that also declare their base: how many agree."""

    models: int = 0                   # models with card text and declared links
    models_with_card_links: int = 0
    extracted: Counter = None         # pattern → links extracted
    correct: Counter = None           # pattern → links whose parent is a declared parent
    relation_checked: Counter = None  # pattern → links whose declared relation is recorded
    relation_agrees: Counter = None

    def __post_init__(self) -> None:
        for name in ("extracted", "correct", "relation_checked", "relation_agrees"):
            if getattr(self, name) is None:
                setattr(self, name, Counter())

    def as_dict(self) -> dict:
        def share(a: int, b: int) -> float | None:
            return round(a / b, 4) if b else None

        per = {p: {"links": n, "precision": share(self.correct[p], n),
                   "relation_checked": self.relation_checked[p],
                   "relation_accuracy": share(self.relation_agrees[p], self.relation_checked[p])}
               for p, n in sorted(self.extracted.items())}
        total = sum(self.extracted.values())
        return {"models_checked": self.models,
                "models_with_card_links": self.models_with_card_links, "links": total,
                "precision": share(sum(self.correct.values()), total),
                "per_pattern": per}


def card_link_precision(records, resolver: IdResolver | None = None) -> CardLinkReport:
    """Extract card links from every record that has card text AND declared base models, and
    count how many name one of the declared parents (ids compared after resolution). Pass
    records whose `card_text` is the whole card (`ModelRecord` keeps only its start)."""
    report = CardLinkReport()

    def canon(pid: str) -> str:
        if resolver is None:
            return normalise_id(pid).lower()
        rid, known = resolver.resolve(pid)
        return (rid if known else normalise_id(pid)).lower()

    for r in records:
        declared = [b for b in r.base_models if b.source != "card_text"]
        text = r.card_text
        if not declared or not text:
            continue
        report.models += 1
        links = extract_card_links(text, own_id=r.id)
        if links:
            report.models_with_card_links += 1
        truth = {canon(b.parent): b for b in declared}
        for link in links:
            report.extracted[link.pattern] += 1
            hit = truth.get(canon(link.parent))
            if hit is None:
                continue
            report.correct[link.pattern] += 1
            if link.relation is not None and not hit.inferred:
                report.relation_checked[link.pattern] += 1
                report.relation_agrees[link.pattern] += int(hit.relation == link.relation)
    return report
