"""What a search query means, and the search command line.

`parse_query` reads a query the way a Hub user means it:

* task words → the Hub's pipeline tags (``text to image`` → ``text-to-image``, ``speech
  recognition`` → ``automatic-speech-recognition``, ``NER`` → ``token-classification``…):
  `TASK_PHRASES` (hand-written synonyms) plus every pipeline tag spelt as words;
* the rest are *name words*, matched against model names and authors (``whisper small``,
  ``llama 3 8b instruct gguf``), and the *key* (the query without separators, lower case),
  which equals a model's name key when the query names that model (``gpt2``,
  ``distilbert-base-uncased``).

Command line (the same ranking as the Search page)::

    python -m analytics.search "QUERY" [-k N] [--json] [--task T]
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass

from analytics.embeddings import split_words
from graph.vocabulary import QUANT_NAME

#: Phrases people use for a task → the pipeline tags that answer it (longest phrase wins).
TASK_PHRASES: dict[str, tuple[str, ...]] = {
    "text to image": ("text-to-image",), "txt2img": ("text-to-image",),
    "image generation": ("text-to-image",), "generate images": ("text-to-image",),
    "image generator": ("text-to-image",), "diffusion model": ("text-to-image",),
    "speech recognition": ("automatic-speech-recognition",),
    "speech to text": ("automatic-speech-recognition",),
    "asr": ("automatic-speech-recognition",), "transcribe": ("automatic-speech-recognition",),
    "transcription": ("automatic-speech-recognition",),
    "ner": ("token-classification",), "named entity recognition": ("token-classification",),
    "entity recognition": ("token-classification",), "entity extraction": ("token-classification",),
    "pos tagging": ("token-classification",),
    "sentiment": ("text-classification",), "sentiment analysis": ("text-classification",),
    "emotion": ("text-classification",), "toxic": ("text-classification",),
    "toxicity": ("text-classification",), "hate speech": ("text-classification",),
    "spam": ("text-classification",), "classifier": ("text-classification",),
    "summarization": ("summarization",), "summarisation": ("summarization",),
    "summarize": ("summarization",), "summary": ("summarization",),
    "translation": ("translation",), "translate": ("translation",),
    "question answering": ("question-answering",), "qa": ("question-answering",),
    "object detection": ("object-detection",), "detect objects": ("object-detection",),
    "image classification": ("image-classification",),
    "text to speech": ("text-to-speech",), "tts": ("text-to-speech",),
    "speech synthesis": ("text-to-speech",), "voice synthesis": ("text-to-speech",),
    "zero shot": ("zero-shot-classification",), "zero shot classification":
        ("zero-shot-classification",),
    "embedding": ("sentence-similarity", "feature-extraction"),
    "embeddings": ("sentence-similarity", "feature-extraction"),
    "sentence embeddings": ("sentence-similarity", "feature-extraction"),
    "semantic search": ("sentence-similarity", "feature-extraction"),
    "semantic similarity": ("sentence-similarity",),
    "image captioning": ("image-to-text",), "captioning": ("image-to-text",),
    "caption": ("image-to-text",), "ocr": ("image-to-text",),
    "segmentation": ("image-segmentation",), "depth": ("depth-estimation",),
    "fill mask": ("fill-mask",), "masked language model": ("fill-mask",),
    "chatbot": ("text-generation",), "chat model": ("text-generation",),
    "llm": ("text-generation",), "language model": ("text-generation", "fill-mask"),
    "code generation": ("text-generation",), "text generation": ("text-generation",),
    "audio classification": ("audio-classification",),
    "vqa": ("visual-question-answering",),
}

STOP_WORDS = frozenset(
    "a an the for of to in on with and or by from into my me i we you that this is are be "
    "model models want need good best some any which what find looking please use using "
    "based".split())
_WORD = re.compile(r"[0-9a-zA-Z]+(?:[.][0-9]+)*")


@dataclass(frozen=True)
class ParsedQuery:
    """A query as the ranking reads it.

    tasks: pipeline tags named by task words; task_words: those words; name_tokens: the other
    content words, split like names are (`split_words`); key: the query without separators,
    lower case (equals a model's name key when the query is that name); formats: name tokens
    that name a build format (``gguf``, ``awq``, ``gptq``: whole tokens matching
    `graph.vocabulary.QUANT_NAME`; words split at digits, ``exl2`` or ``4bit``, are not)."""

    text: str
    tasks: tuple[str, ...]
    task_words: tuple[str, ...]
    name_tokens: tuple[str, ...]
    key: str
    formats: tuple[str, ...] = ()

    @property
    def is_intent(self) -> bool:
        """The query asks for a kind of model (a task, a build format), not one repo by name:
        ``sentiment analysis for tweets``, ``llama 3 8b instruct gguf``."""
        return bool(self.tasks or self.formats)


def name_key(text: str) -> str:
    """``"Meta-Llama-3-8B"`` → ``"metallama38b"``: what is left of a name without separators."""
    return re.sub(r"[^0-9a-z]+", "", (text or "").lower())


def task_phrases(known_tags=()) -> dict[str, tuple[str, ...]]:
    """`TASK_PHRASES` plus each known pipeline tag spelt as words (``image-to-text`` →
    ``image to text``)."""
    out = dict(TASK_PHRASES)
    for tag in known_tags:
        if isinstance(tag, str) and tag:
            out.setdefault(" ".join(tag.lower().split("-")), (tag,))
    return out


def parse_query(query: str, phrases: dict[str, tuple[str, ...]] | None = None) -> ParsedQuery:
    """Split `query` into task tags and name tokens (longest task phrase first)."""
    phrases = phrases if phrases is not None else TASK_PHRASES
    words = [w.lower() for w in _WORD.findall(query or "")]
    used = [False] * len(words)
    tasks: list[str] = []
    task_words: list[str] = []
    max_len = max((p.count(" ") + 1 for p in phrases), default=1)
    for n in range(min(max_len, len(words)), 0, -1):
        for i in range(len(words) - n + 1):
            if any(used[i:i + n]):
                continue
            span = words[i:i + n]
            hit = phrases.get(" ".join(span))
            if hit is None:
                continue
            for t in hit:
                if t not in tasks:
                    tasks.append(t)
            task_words.extend(span)
            for j in range(i, i + n):
                used[j] = True
    name_tokens: list[str] = []
    for w, u in zip(words, used):
        if u or w in STOP_WORDS:
            continue
        for t in split_words(w):
            if t not in name_tokens:
                name_tokens.append(t)
    formats = tuple(t for t in name_tokens if QUANT_NAME.fullmatch(t))
    return ParsedQuery(query, tuple(tasks), tuple(task_words), tuple(name_tokens),
                       name_key(query), formats)


# -- command line ----------------------------------------------------------------------------
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m analytics.search",
                                description="Search models (the Search page's ranking).")
    p.add_argument("query")
    p.add_argument("-k", type=int, default=10, help="results (default 10)")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    p.add_argument("--task", help="only models with this pipeline tag")
    a = p.parse_args(argv)
    from analytics.retrieval import SearchFilters, open_search

    search = open_search()
    res = search.search(a.query, k=a.k, filters=SearchFilters(task=a.task) if a.task else None)
    cols = ["id", "score", "pipelineTag", "downloads", "license", "confidence", "reason"]
    if a.json:
        for rec in res[cols].to_dict("records"):
            print(json.dumps(rec, default=str))
        return 0
    if res.empty:
        print("no model matches")
        return 1
    if (res["confidence"] == "low").all():
        print("(low confidence: no model clearly matches this query)")
    with_pd = res[cols].copy()
    with_pd["downloads"] = with_pd["downloads"].map(lambda d: f"{int(d):,}")
    print(with_pd.to_string(index=False, max_colwidth=90))
    return 0


if __name__ == "__main__":
    sys.exit(main())
