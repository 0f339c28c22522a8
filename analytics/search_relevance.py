"""A relevance set for model search: queries, the models a Hub user would accept for each, and
the scores of a ranking on them (success@k, MRR@10 per query type).

The judgements were written down before any ranking was looked at, as rules over the graph's
model rows (`analytics.model_rows.model_text_frame`), so they follow the graph: a rule names
what an acceptable answer *is* (the canonical model, a model of the task that people use, a
model with the asked-for property), never which ranking produced it. Query types:

* ``known-item`` — the query names one model. Generated: the `N_CANONICAL` most downloaded
  models whose name no more-downloaded model shares; the query is the name as people type it
  (lower case, separators as spaces); the one acceptable answer is that model (the Hub's own
  search shows the most downloaded holder of a name first). Hand-written: legacy ids and names
  from the issue (``gpt2``, ``whisper small``, ``distilbert-base-uncased``…).
* ``family`` — the query names a model family (``llama 3``, ``stable diffusion``): the family's
  official base and instruct releases are acceptable.
* ``task`` — a task in words (``text to image``, ``speech recognition``, ``NER``): acceptable
  are the `TASK_TOP` most downloaded models of the matching Hub pipeline tag (what the Hub's
  task page lists first: an established model for the task).
* ``intent`` — task plus a qualifier (domain, language, format, size): acceptable are models
  matching the qualifier by id/tags with at least some adoption (the rule says how much).
* ``nonsense`` — strings that mean nothing; no model is acceptable, a ranking should say it is
  not confident. Scored as the share flagged low-confidence (and, for the real queries, the
  share wrongly flagged).

A third of the queries (by a hash of the query text) are held out: ranking was tuned on the
others only, and both parts are reported.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd

N_CANONICAL = 120
TASK_TOP = 50
KS = (1, 5, 10)
KINDS = ("known-item", "family", "task", "intent", "nonsense")


@dataclass(frozen=True)
class Rule:
    """Which models are acceptable for a query (all given conditions must hold).

    ids: acceptable as they are (case-insensitive), whatever the other conditions;
    task: the model's pipeline tag is one of these; id_all / id_any: regexes (case-insensitive)
    that must all / at least one match the id; tags_any: the model has one of these tags;
    bases_any: one of its base models is one of these ids; min_downloads: adoption floor;
    top_n: only the N most downloaded of the models matching the rest."""

    ids: tuple[str, ...] = ()
    task: tuple[str, ...] = ()
    id_all: tuple[str, ...] = ()
    id_any: tuple[str, ...] = ()
    tags_any: tuple[str, ...] = ()
    bases_any: tuple[str, ...] = ()
    min_downloads: int = 0
    top_n: int | None = None

    def has_conditions(self) -> bool:
        return bool(self.task or self.id_all or self.id_any or self.tags_any or self.bases_any)


@dataclass(frozen=True)
class Judgement:
    query: str
    kind: str
    why: str
    rule: Rule = field(default_factory=Rule)


def _j(query, kind, why, **rule) -> Judgement:
    return Judgement(query, kind, why, Rule(**{k: tuple(v) if isinstance(v, list) else v
                                               for k, v in rule.items()}))


# -- the hand-written judgements (written before looking at any ranking) ---------------------
HAND = [
    # known items the issue names, and legacy ids people still type
    _j("gpt2", "known-item", "GPT-2's canonical repo (legacy id gpt2)",
       ids=["openai-community/gpt2"]),
    _j("whisper small", "known-item", "the official Whisper small checkpoint",
       ids=["openai/whisper-small"]),
    _j("distilbert-base-uncased", "known-item", "legacy id of DistilBERT base uncased",
       ids=["distilbert/distilbert-base-uncased"]),
    _j("bert-base-uncased", "known-item", "legacy id of BERT base uncased",
       ids=["google-bert/bert-base-uncased"]),
    _j("xlm-roberta-base", "known-item", "legacy id of XLM-R base",
       ids=["FacebookAI/xlm-roberta-base"]),
    _j("t5-small", "known-item", "legacy id of T5 small", ids=["google-t5/t5-small"]),
    _j("openai/whisper-large-v3", "known-item", "a full id", ids=["openai/whisper-large-v3"]),
    _j("llama 3 8b instruct", "known-item", "Meta's release of Llama 3 8B Instruct",
       ids=["meta-llama/Meta-Llama-3-8B-Instruct"]),
    _j("mistral 7b instruct", "known-item", "Mistral AI's instruct releases of Mistral 7B",
       ids=["mistralai/Mistral-7B-Instruct-v0.1", "mistralai/Mistral-7B-Instruct-v0.2",
            "mistralai/Mistral-7B-Instruct-v0.3"]),
    _j("sdxl", "known-item", "the common short name of Stable Diffusion XL",
       ids=["stabilityai/stable-diffusion-xl-base-1.0", "stabilityai/sdxl-turbo",
            "stabilityai/stable-diffusion-xl-refiner-1.0"]),
    _j("all-MiniLM-L6-v2", "known-item", "the sentence-transformers checkpoint",
       ids=["sentence-transformers/all-MiniLM-L6-v2"]),
    _j("bart large cnn", "known-item", "Facebook's summarisation checkpoint",
       ids=["facebook/bart-large-cnn"]),
    # families: the official base/instruct releases are what a user means
    _j("llama 3", "family", "Meta's Llama 3 releases",
       ids=["meta-llama/Meta-Llama-3-8B", "meta-llama/Meta-Llama-3-8B-Instruct",
            "meta-llama/Meta-Llama-3-70B", "meta-llama/Meta-Llama-3-70B-Instruct"]),
    _j("llama 2", "family", "Meta's Llama 2 releases",
       id_any=[r"^meta-llama/Llama-2-(7|13|70)b(-chat)?(-hf)?$"]),
    _j("stable diffusion", "family", "the Stable Diffusion base releases",
       ids=["runwayml/stable-diffusion-v1-5", "CompVis/stable-diffusion-v1-4",
            "stabilityai/stable-diffusion-2-1", "stabilityai/stable-diffusion-xl-base-1.0",
            "stabilityai/stable-diffusion-2-1-base", "stabilityai/stable-diffusion-2"]),
    _j("whisper", "family", "OpenAI's Whisper checkpoints", id_any=[r"^openai/whisper-"]),
    _j("mistral", "family", "Mistral AI's own releases", id_any=[r"^mistralai/"]),
    _j("clip", "family", "OpenAI's CLIP checkpoints", id_any=[r"^openai/clip-vit-"]),
    _j("roberta", "family", "the RoBERTa base/large releases",
       ids=["FacebookAI/roberta-base", "FacebookAI/roberta-large"]),
    _j("phi 3", "family", "Microsoft's Phi-3 releases", id_any=[r"^microsoft/Phi-3"]),
    _j("gemma", "family", "Google's Gemma releases", id_any=[r"^google/gemma-"]),
    _j("qwen2", "family", "Qwen's own Qwen2 releases", id_any=[r"^Qwen/Qwen2-"]),
    # tasks in words -> pipeline tags
    _j("text to image", "task", "text-to-image", task=["text-to-image"]),
    _j("image generation", "task", "text-to-image", task=["text-to-image"]),
    _j("speech recognition", "task", "automatic-speech-recognition",
       task=["automatic-speech-recognition"]),
    _j("transcribe audio to text", "task", "automatic-speech-recognition",
       task=["automatic-speech-recognition"]),
    _j("NER", "task", "token-classification", task=["token-classification"]),
    _j("named entity recognition", "task", "token-classification", task=["token-classification"]),
    _j("sentiment analysis", "task", "text-classification", task=["text-classification"]),
    _j("summarization", "task", "summarization", task=["summarization"]),
    _j("translation", "task", "translation", task=["translation"]),
    _j("question answering", "task", "question-answering", task=["question-answering"]),
    _j("object detection", "task", "object-detection", task=["object-detection"]),
    _j("image classification", "task", "image-classification", task=["image-classification"]),
    _j("text to speech", "task", "text-to-speech", task=["text-to-speech"]),
    _j("tts", "task", "text-to-speech", task=["text-to-speech"]),
    _j("zero shot classification", "task", "zero-shot-classification",
       task=["zero-shot-classification"]),
    _j("sentence embeddings", "task", "sentence-similarity / feature-extraction",
       task=["sentence-similarity", "feature-extraction"]),
    _j("image captioning", "task", "image-to-text", task=["image-to-text"]),
    _j("image segmentation", "task", "image-segmentation", task=["image-segmentation"]),
    _j("depth estimation", "task", "depth-estimation", task=["depth-estimation"]),
    _j("fill mask", "task", "fill-mask", task=["fill-mask"]),
    _j("chatbot", "task", "text-generation", task=["text-generation"]),
    _j("audio classification", "task", "audio-classification", task=["audio-classification"]),
    _j("speaker diarization", "task", "the pyannote pipelines are what people use",
       id_any=[r"diariz"], min_downloads=10_000),
    _j("visual question answering", "task", "visual-question-answering",
       task=["visual-question-answering"]),
    # intents: task + a qualifier
    _j("sentiment analysis for tweets", "intent",
       "a sentiment/emotion classifier trained on tweets (twitter/tweet in the id), used",
       task=["text-classification"], id_all=[r"twitter|tweet", r"senti|emotion"],
       min_downloads=1_000),
    _j("llama 3 8b instruct gguf", "intent", "GGUF builds of Llama 3 8B Instruct, used",
       id_all=[r"llama-?3-8b-instruct"], id_any=[r"gguf"], tags_any=["gguf"],
       min_downloads=1_000),
    _j("german named entity recognition", "intent", "NER models for German, used",
       task=["token-classification"],
       id_any=[r"german|(?:^|[-_/])de(?:[-_]|$)|gbert|bert-base-german"], tags_any=["de"],
       min_downloads=300),
    _j("japanese text generation", "intent", "Japanese LMs, used",
       task=["text-generation"], id_any=[r"japanese|(?:^|[-_/])ja(?:[-_]|$)"], tags_any=["ja"],
       min_downloads=1_000),
    _j("code generation", "intent", "code LMs, used",
       task=["text-generation"], id_any=[r"code|coder|starcoder|santacoder|codegen"],
       min_downloads=5_000),
    _j("multilingual sentence embeddings", "intent", "multilingual embedding models, used",
       task=["sentence-similarity", "feature-extraction"],
       id_any=[r"multilingual|labse|xlm|m3|multi"], min_downloads=5_000),
    _j("stable diffusion xl lora", "intent", "LoRAs on SDXL base, used",
       bases_any=["stabilityai/stable-diffusion-xl-base-1.0"], id_any=[r"lora"],
       tags_any=["lora"], min_downloads=200),
    _j("chinese embedding model", "intent", "Chinese embedding models, used",
       task=["sentence-similarity", "feature-extraction"],
       id_any=[r"chinese|(?:^|[-_/])zh(?:[-_]|$)|text2vec|bge-.*zh|m3e"], tags_any=["zh"],
       min_downloads=2_000),
    _j("medical text classification", "intent", "clinical/biomedical classifiers",
       task=["text-classification"], id_any=[r"medic|clinic|bio|pubmed|health"],
       min_downloads=100),
    _j("small bert for mobile", "intent", "compact BERT variants, used",
       id_any=[r"tinybert|mobilebert|bert-(mini|small|tiny|medium)|distilbert-base|minilm"],
       min_downloads=10_000),
    _j("toxic comment detection", "intent", "toxicity/hate classifiers, used",
       task=["text-classification"], id_any=[r"toxic|hate|offensive|detoxify"],
       min_downloads=1_000),
    _j("translate french to english", "intent", "fr→en translation models, used",
       id_any=[r"fr-en|french.?to.?english|opus-mt-fr-en"], min_downloads=1_000),
    _j("english to german translation", "intent", "en→de translation models, used",
       id_any=[r"en-de\b|en-de$|english.?to.?german|wmt19-en-de"], min_downloads=1_000),
    _j("yolo object detection", "intent", "YOLO detectors, used",
       id_any=[r"yolo"], min_downloads=500),
    _j("protein language model", "intent", "protein LMs (ESM, ProtBERT, ProtT5…), used",
       id_any=[r"esm|prot_?bert|prot_?t5|protgpt|ankh|prot"], min_downloads=1_000),
    _j("mistral 7b gguf", "intent", "GGUF builds of Mistral 7B (base or instruct), used",
       id_all=[r"mistral-7b"], id_any=[r"gguf"], tags_any=["gguf"], min_downloads=1_000),
    _j("controlnet canny", "intent", "canny-edge ControlNets, used",
       id_all=[r"controlnet|control_", r"canny"], min_downloads=1_000),
    _j("question answering squad", "intent", "extractive QA trained on SQuAD, used",
       task=["question-answering"], id_any=[r"squad"], min_downloads=10_000),
    _j("summarization of news articles", "intent", "news summarisers (CNN/DM, XSum…), used",
       task=["summarization", "text2text-generation"], id_any=[r"cnn|news|xsum|dailymail"],
       min_downloads=1_000),
    _j("4-bit quantized llama 2 7b chat", "intent", "4-bit builds of Llama 2 7B chat, used",
       id_all=[r"llama-?2-7b-chat"], id_any=[r"gptq|awq|gguf|4bit|4-bit|bnb|ggml|int4"],
       min_downloads=1_000),
    _j("emotion detection", "intent", "emotion classifiers, used",
       task=["text-classification"], id_any=[r"emotion"], min_downloads=1_000),
    _j("spanish sentiment analysis", "intent", "Spanish sentiment classifiers, used",
       task=["text-classification"], id_all=[r"senti|polarity"],
       id_any=[r"spanish|beto|robertuito|bertin|(?:^|[-_/])es(?:[-_]|$)"], tags_any=["es"],
       min_downloads=500),
    _j("whisper fine-tuned for hindi", "intent", "Whisper fine-tunes for Hindi",
       task=["automatic-speech-recognition"], id_all=[r"whisper", r"hi(?:ndi)?(?:[-_]|$)"],
       min_downloads=50),
    _j("financial sentiment", "intent", "sentiment classifiers for finance, used",
       task=["text-classification"], id_any=[r"financ|finbert|fin-"], min_downloads=1_000),
    # nonsense: no acceptable model
    _j("qwzx vbnm plok", "nonsense", "keyboard mash"),
    _j("xyzzy frobnicate glorp", "nonsense", "made-up words"),
    _j("blorfendorf wamblequist", "nonsense", "made-up words"),
    _j("zzqj kkvv wpxo", "nonsense", "keyboard mash"),
    _j("flibbertigibbet snorkelwhump", "nonsense", "made-up words"),
    _j("jjjj kkkk llll", "nonsense", "repeated letters"),
]


def _random_nonsense(n: int = 12, seed: int = 7) -> list[Judgement]:
    rng = np.random.default_rng(seed)
    letters = np.array(list("bcdfghjklmnpqrstvwxz"))
    out = []
    for _ in range(n):
        words = ["".join(rng.choice(letters, rng.integers(4, 9)))
                 for _ in range(rng.integers(2, 4))]
        out.append(_j(" ".join(words), "nonsense", "random consonant strings"))
    return out


def _name_query(name: str) -> str:
    return re.sub(r"[-_\s]+", " ", name).strip().lower()


def _name_key(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "", name.lower())


def canonical_judgements(models: pd.DataFrame, n: int = N_CANONICAL) -> list[Judgement]:
    """Known-item queries for the `n` most downloaded models that hold their name: the query
    is the name as typed, the acceptable answer the model."""
    names = models["id"].str.split("/").str[-1]
    keys = names.map(_name_key)
    order = models.assign(_key=keys, _name=names).sort_values(
        ["downloads", "id"], ascending=[False, True], kind="stable")
    seen: set[str] = set()
    out = []
    for mid, key, name in zip(order["id"], order["_key"], order["_name"]):
        if len(out) >= n:
            break
        if key in seen or not key:
            continue
        seen.add(key)
        out.append(_j(_name_query(name), "known-item",
                      "generated: the most downloaded model with this name", ids=[mid]))
    return out


def all_judgements(models: pd.DataFrame) -> list[Judgement]:
    """Every judgement: generated canonical names, the hand-written ones, random nonsense.
    Later duplicates of a query (case-insensitive) are dropped."""
    out, seen = [], set()
    for j in [*HAND, *canonical_judgements(models), *_random_nonsense()]:
        if j.query.lower() not in seen:
            seen.add(j.query.lower())
            out.append(j)
    return out


def held_out(query: str) -> bool:
    """A third of the queries, fixed by a hash of their text: never tuned on."""
    return int(hashlib.blake2b(query.lower().encode(), digest_size=4).hexdigest(), 16) % 3 == 0


@dataclass(frozen=True)
class RelevanceQuery:
    query: str
    kind: str
    why: str
    acceptable: frozenset
    held_out: bool


def acceptable_ids(rule: Rule, models: pd.DataFrame) -> frozenset:
    """The ids `rule` accepts among `models` (a `model_text_frame`)."""
    ids = models["id"]
    lower = {i.lower() for i in rule.ids}
    explicit = set(ids[ids.str.lower().isin(lower)]) if lower else set()
    if not rule.has_conditions():
        return frozenset(explicit)
    m = pd.Series(True, index=models.index)
    if rule.task:
        m &= models["pipelineTag"].isin(rule.task)
    for rx in rule.id_all:
        m &= ids.str.contains(rx, case=False, regex=True)
    if rule.id_any or rule.tags_any:
        anym = pd.Series(False, index=models.index)
        for rx in rule.id_any:
            anym |= ids.str.contains(rx, case=False, regex=True)
        if rule.tags_any:
            want = set(rule.tags_any)
            anym |= models["tags"].map(lambda t: bool(want.intersection(t)))
        m &= anym
    if rule.bases_any:
        want = set(rule.bases_any)
        m &= models["bases"].map(lambda b: bool(want.intersection(b)))
    if rule.min_downloads:
        m &= models["downloads"] >= rule.min_downloads
    sel = models[m]
    if rule.top_n:
        sel = sel.sort_values("downloads", ascending=False, kind="stable").head(rule.top_n)
    return frozenset(explicit | set(sel["id"]))


def relevance_set(models: pd.DataFrame) -> list[RelevanceQuery]:
    """The judgements resolved against the graph's models (task queries: the `TASK_TOP` most
    downloaded of the task). A real query whose rule accepts nothing in this graph is
    dropped (it cannot be scored)."""
    out = []
    for j in all_judgements(models):
        rule = j.rule
        if j.kind == "task" and rule.task and rule.top_n is None:
            rule = Rule(**{**rule.__dict__, "top_n": TASK_TOP})
        acc = acceptable_ids(rule, models) if j.kind != "nonsense" else frozenset()
        if j.kind != "nonsense" and not acc:
            continue
        out.append(RelevanceQuery(j.query, j.kind, j.why, acc, held_out(j.query)))
    return out


# -- scoring ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class RankedResult:
    ids: list
    low_confidence: bool = False


def score_rankers(rankers: dict[str, Callable[[str], RankedResult]],
                  queries: Sequence[RelevanceQuery], ks=KS) -> pd.DataFrame:
    """One row per (method, split, query type): queries, success@k, MRR@10 and the share of
    queries flagged low-confidence (for ``nonsense`` that is the hit rate)."""
    rows = []
    for name, rank in rankers.items():
        for q in queries:
            res = rank(q.query)
            top = list(res.ids)[:max(max(ks), 10)]
            hit = next((i + 1 for i, m in enumerate(top) if m in q.acceptable), None)
            row = {"method": name, "kind": q.kind, "held_out": q.held_out, "query": q.query,
                   "rank": hit, "low_confidence": bool(res.low_confidence)}
            for k in ks:
                row[f"success@{k}"] = float(hit is not None and hit <= k)
            row["MRR@10"] = 1.0 / hit if hit is not None and hit <= 10 else 0.0
            rows.append(row)
    return pd.DataFrame(rows)


def summarise(per_query: pd.DataFrame, ks=KS) -> pd.DataFrame:
    """Means per method × split × type (plus an 'all real queries' row per method × split)."""
    cols = [f"success@{k}" for k in ks] + ["MRR@10", "low_confidence"]
    real = per_query[per_query["kind"] != "nonsense"].assign(kind="all (real)")
    both = pd.concat([per_query, real])
    g = both.groupby(["method", "held_out", "kind"], sort=False)
    out = g[cols].mean()
    out.insert(0, "queries", g.size())
    return out.reset_index()


def format_table(summary: pd.DataFrame, methods: Sequence[str]) -> str:
    """Per split and query type, one line per method."""
    lines = []
    order = [k for k in (*KINDS, "all (real)") if k in set(summary["kind"])]
    for split, label in ((False, "tuning part"), (True, "held-out part (never tuned on)")):
        lines.append(f"Search relevance, {label}:")
        head = (f"{'query type':12s} {'n':>4s} {'method':34s} {'s@1':>6s} {'s@5':>6s} "
                f"{'s@10':>6s} {'MRR@10':>7s} {'low-conf':>8s}")
        lines += [head, "-" * len(head)]
        for kind in order:
            for m in methods:
                r = summary[(summary["held_out"] == split) & (summary["kind"] == kind)
                            & (summary["method"] == m)]
                if r.empty:
                    continue
                r = r.iloc[0]
                if kind == "nonsense":
                    lines.append(f"{kind:12s} {int(r['queries']):4d} {m:34s} {'':>6s} {'':>6s} "
                                 f"{'':>6s} {'':>7s} {r['low_confidence']:8.2f}")
                else:
                    lines.append(f"{kind:12s} {int(r['queries']):4d} {m:34s} "
                                 f"{r['success@1']:6.2f} {r['success@5']:6.2f} "
                                 f"{r['success@10']:6.2f} {r['MRR@10']:7.3f} "
                                 f"{r['low_confidence']:8.2f}")
        lines.append("")
    lines.append("low-conf: share of queries the ranking flagged as low-confidence (wanted: 1 "
                 "for nonsense, 0 elsewhere).")
    return "\n".join(lines)


METHOD_LABELS = {"hybrid": "query understanding (new)", "v1": "hybrid v1 (previous)",
                 "dense": "dense cosine only", "lexical": "TF-IDF only",
                 "hub": "id substring, by downloads"}


def evaluate_search(search, *, methods: Sequence[str] = tuple(METHOD_LABELS), k: int = 10
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score `search` (a fitted `HybridSearch`) on the relevance set built from the rows it
    was fitted on: (summary, per-query rows) — see `summarise`."""
    queries = relevance_set(search.models_frame_)
    ids = search.ids_

    def ranker(method):
        def rank(q: str) -> RankedResult:
            r = search.rank(q, k, method=method)
            return RankedResult([ids[i] for i in r.rows], r.low_confidence)
        return rank

    per = score_rankers({METHOD_LABELS.get(m, m): ranker(m) for m in methods}, queries)
    return summarise(per), per
