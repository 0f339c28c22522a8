"""Hybrid model search: what the query names (model, family, task) + dense MiniLM cosine +
TF-IDF over id tokens and tags, with adoption breaking ties among relevant models.

`HybridSearch` is fitted on `analytics.model_rows.model_text_frame` rows and their vectors
(`analytics.embeddings.embed_models`). A query (`analytics.search.parse_query`) is answered in
two stages so top-10 over 760k models stays well under 100 ms on two cores:

1. candidates: the best rows by a *coarse* dense score (the vectors projected on their top
   `coarse_dim` principal axes), by lexical score (posting lists of the query's rare terms),
   by name match (rows whose name and author hold the most query words, most adopted first),
   rows whose name *is* the query (``gpt2``, ``whisper-small``), and the most adopted models
   of the tasks the query names (``text to image`` → text-to-image);
2. exact rerank of the candidates on: full 384-d cosine, lexical cosine, name coverage (share
   of query words in the name/author) × name precision (share of the name the query covers),
   exact name, task match, adoption (downloads, likes, derivatives: log-scaled, in [0, 1]).

A result is *low confidence* when nothing but the embedding ties it to the query (no exact or
full name match, no task, cosine below `min_semantic`); a nonsense query says so.

Filters (task, library, licence, lineage relation, quantized, created after) are boolean masks
applied before stage 1, so a selective filter still returns k results.

`build_search(store)` is the batch builder (read the graph, embed what the vector cache lacks,
fit); `HybridSearch.save(folder)` writes the fitted index as plain files (see `save`), and
`HybridSearch.load(folder)` memory-maps them back in well under a second.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from scipy import sparse
from sklearn.base import BaseEstimator
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from analytics.embeddings import DIM, TextEncoder, clean_tags, split_words
from analytics.search import ParsedQuery, name_key, parse_query, task_phrases
from graph.schema import LINEAGE_RELS
from graph.vocabulary import QUANT_NAME, looks_quantized

RELATIONS = tuple(LINEAGE_RELS)  # finetune, adapter, quantized, merge, unknown
_REL_BIT = {r: 1 << i for i, r in enumerate(RELATIONS)}
_STOP = frozenset(ENGLISH_STOP_WORDS) | {"model", "models", "want", "need", "good", "best"}
_ONNX_FAILED = False
_RAW = re.compile(r"[/_\-.\s:+,()\[\]]+")
#: The ranking before query understanding (kept as the baseline of the evaluation).
V1_WEIGHTS = {"w_dense": 1.0, "w_lexical": 0.5, "w_popularity": 0.3}
METHODS = ("hybrid", "v1", "dense", "lexical", "hub")
FORMAT = 1
def lexical_tokens(text: str) -> list[str]:
    """Terms of an id, tag or query: whole lower-cased parts (``gpt2``, ``l6``) plus their
    camelCase/digit splits (``gpt``, ``2``), English stop words dropped."""
    out = []
    for part in _RAW.split(text or ""):
        if not part:
            continue
        low = part.lower()
        if low not in _STOP:
            out.append(low)
        for w in split_words(part):
            if w != low and w not in _STOP:
                out.append(w)
    return out


@lru_cache(maxsize=200_000)
def _cached_tokens(text: str) -> tuple[str, ...]:
    # tags, tasks and libraries repeat across models: tokenise each distinct one once
    return tuple(lexical_tokens(text))


def _doc_tokens(mid: str, tags, task, library) -> list[str]:
    toks = lexical_tokens(mid)
    for t in clean_tags(tags):
        toks.extend(_cached_tokens(t))
    for v in (task, library):
        if isinstance(v, str) and v:
            toks.extend(_cached_tokens(v))
    return toks


def is_quantized(mid: str, tags, relations) -> bool:
    if relations is not None and "quantized" in list(relations):
        return True
    if QUANT_NAME.search((mid or "").split("/", 1)[-1]):
        return True
    return any(_quant_tag(str(t)) for t in (tags if tags is not None else ()))


@lru_cache(maxsize=200_000)
def _quant_tag(tag: str) -> bool:
    return looks_quantized("", (tag,))


@dataclass
class SearchFilters:
    """Restrictions on search results; None means "any".

    relation: one or more of finetune / adapter / quantized / merge / unknown (the model has a
    base link of that type) or "base" (the model has no known base)."""

    task: str | None = None
    library: str | None = None
    license: str | None = None
    relation: str | Sequence[str] | None = None
    quantized: bool | None = None
    created_after: str | pd.Timestamp | None = None

    def is_empty(self) -> bool:
        return all(v is None for v in (self.task, self.library, self.license, self.relation,
                                       self.quantized, self.created_after))


def _log_norm(x: np.ndarray) -> np.ndarray:
    v = np.log1p(np.maximum(np.asarray(x, dtype=np.float64), 0))
    top = v.max() if len(v) else 0.0
    return (v / top).astype(np.float32) if top > 0 else np.zeros(len(v), np.float32)


def _key_hash(keys) -> np.ndarray:
    """uint64 hashes of strings (vectorised; equal strings, equal hashes)."""
    return pd.util.hash_array(np.asarray(list(keys), dtype=object), categorize=False)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the `k` largest finite scores, best first (ties keep index order)."""
    k = min(int(k), len(scores))
    if k <= 0:
        return np.zeros(0, np.int64)
    part = np.argpartition(-scores, k - 1)[:k]
    part = part[np.isfinite(scores[part])]
    return part[np.argsort(-scores[part], kind="stable")]


def _lookup(vocab: pa.Array | dict, terms: Sequence[str]) -> np.ndarray:
    """Column of each term in `vocab` (a sorted term array, or its term → column dict; -1
    when unknown)."""
    if not len(terms):
        return np.zeros(0, np.int64)
    if isinstance(vocab, dict):
        return np.fromiter((vocab.get(t, -1) for t in terms), np.int64, len(terms))
    idx = pc.index_in(pa.array(list(terms), pa.string()), value_set=vocab)
    return idx.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def _binary_rows(token_lists: list[list[str]]) -> tuple[sparse.csr_matrix, pa.Array]:
    """A binary row × token matrix and its sorted vocabulary."""
    vocab = sorted({t for toks in token_lists for t in toks})
    col = {t: i for i, t in enumerate(vocab)}
    indptr = np.zeros(len(token_lists) + 1, np.int64)
    indices = []
    for i, toks in enumerate(token_lists):
        cs = sorted({col[t] for t in toks})
        indices.extend(cs)
        indptr[i + 1] = indptr[i] + len(cs)
    m = sparse.csr_matrix((np.ones(len(indices), np.float32), np.asarray(indices, np.int32),
                           indptr), shape=(len(token_lists), len(vocab)))
    return m, pa.array(vocab, pa.string())


@dataclass(frozen=True)
class _Ranked:
    rows: np.ndarray
    score: np.ndarray
    feats: dict
    low_confidence: bool
    parsed: ParsedQuery


class HybridSearch(BaseEstimator):
    """Natural-language search over models: what the query names + dense + lexical + adoption.

    Parameters
    ----------
    encoder : TextEncoder or None, default=None
        Encodes queries; must be the encoder that made the fitted vectors (None: default one).
    w_dense, w_lexical, w_name, w_exact, w_task, w_popularity : float
        Weights of the semantic cosine, the lexical TF-IDF cosine, the name match (coverage² ×
        precision), an exact name (× adoption), a task match (+1 the asked task, -1 another)
        and adoption. A build format the query names (gguf, awq) is a requirement, not a
        weight: when some candidates are such builds, only they are ranked.
    name_precision : float, default=0.25
        How much the share of the name the query covers counts in the name match (0: only
        coverage counts; 1: ``whisper small`` prefers ``whisper-small`` to
        ``whisper-small-hi`` as much as it prefers a match to none).
    name_adoption : float, default=0.0
        How much the name match is scaled by the model's adoption (0: not at all; 1: fully),
        so words of an intent query found in an unused repo's name do not outrank used models.
        Measured on the full graph's relevance set, MRR@10 tuning/held-out: 0 → 0.911/0.894,
        0.5 → 0.926/0.918, 1 → 0.947/0.952; but on the mini graph's set 0.5 falls below the
        previous ranking (0.905 vs 0.921), so it stays off until the set covers niche models.
    intent_name_adoption : float, default=1.0
        The same scaling for a query that asks for a kind of model (`ParsedQuery.is_intent`: it
        names a task or a build format, ``sentiment analysis for tweets``, ``llama 3 8b
        instruct gguf``): its words describe the model wanted, and among the repos they fit
        a Hub user wants the used ones; a query without such words is most often one name.
    min_semantic : float, default=0.5
        Below this cosine, a result that neither names nor matches the query's task is low
        confidence.
    coarse_dim : int, default=64
        Principal axes kept for the first-stage dense scan (≤ 384; 384 = exact scan).
    n_candidates : int, default=1000
        Rows kept by each first-stage scorer for the exact rerank.
    common_df : float, default=0.05
        Terms held by more than this share of models only score candidates; they do not
        generate them (their posting lists are too long to scan per query).
    fast_queries : bool, default=True
        Encode queries with the fp32 network in onnxruntime (see `_query_encoder`).
    random_state : int, RandomState or None, default=0
        Seeds the row sample used to fit the principal axes.

    Attributes
    ----------
    ids_ : ndarray of str
    n_models_ : int
    vectors_ : ndarray (n_models, 384) float16 (possibly a memmap)
    coarse_ : ndarray (n_models, coarse_dim) float32
    components_ : ndarray (384, coarse_dim)
    vocab_, idf_ : lexical terms (sorted, pyarrow) and their idf
    terms_ : scipy.sparse.csc_matrix (n_models, n_terms), l2-normalised sublinear TF-IDF
    names_, name_or_author_ : csc_matrix (n_models, n_name_tokens), binary name tokens, and
        name ∪ author tokens; name_len_ : name tokens per model; name_vocab_
    name_key_, id_key_ : uint64 hashes of each model's name and id without separators
    popularity_ : ndarray (n_models,) in [0, 1]
    table_ : pyarrow.Table of the display columns (one row per model)

    Examples
    --------
    >>> search = HybridSearch().fit(frame, vectors)       # doctest: +SKIP
    >>> search.search("german ner", k=5, filters=SearchFilters(library="transformers"))
    """

    def __init__(self, *, encoder: TextEncoder | None = None, w_dense: float = 1.0,
                 w_lexical: float = 0.2, w_name: float = 0.6, w_exact: float = 0.6,
                 w_task: float = 0.25, w_popularity: float = 0.8, name_precision: float = 0.25,
                 name_adoption: float = 0.0, intent_name_adoption: float = 1.0,
                 min_semantic: float = 0.5,
                 coarse_dim: int = 64, n_candidates: int = 1000, common_df: float = 0.05,
                 fast_queries: bool = True, random_state=0):
        self.encoder = encoder
        self.w_dense = w_dense
        self.w_lexical = w_lexical
        self.w_name = w_name
        self.w_exact = w_exact
        self.w_task = w_task
        self.w_popularity = w_popularity
        self.name_precision = name_precision
        self.name_adoption = name_adoption
        self.intent_name_adoption = intent_name_adoption
        self.min_semantic = min_semantic
        self.coarse_dim = coarse_dim
        self.n_candidates = n_candidates
        self.common_df = common_df
        self.fast_queries = fast_queries
        self.random_state = random_state

    # -- fitting -------------------------------------------------------------------------
    def fit(self, models: pd.DataFrame, vectors: np.ndarray) -> "HybridSearch":
        """Index `models` (a `model_text_frame`) with their `vectors` (aligned rows)."""
        if not isinstance(models, pd.DataFrame) or "id" not in models:
            raise TypeError("models must be a DataFrame with an 'id' column "
                            "(analytics.model_rows.model_text_frame)")
        if vectors.ndim != 2 or vectors.shape[1] != DIM or len(vectors) != len(models):
            raise ValueError(f"vectors must be ({len(models)}, {DIM}), got {vectors.shape}")
        if not 1 <= int(self.coarse_dim) <= DIM:
            raise ValueError(f"coarse_dim must be in [1, {DIM}], got {self.coarse_dim!r}")
        if int(self.n_candidates) < 1:
            raise ValueError(f"n_candidates must be >= 1, got {self.n_candidates!r}")
        models = models.reset_index(drop=True)
        self.ids_ = models["id"].to_numpy(dtype=object)
        self.n_models_ = len(models)
        self.vectors_ = vectors
        self._fit_coarse(vectors)
        self._fit_lexical(models)
        self._fit_names(models)
        self._fit_signals(models)
        self.models_frame_ = models
        return self

    def _fit_coarse(self, vectors: np.ndarray) -> None:
        d = int(self.coarse_dim)
        n = len(vectors)
        if d >= DIM:
            self.components_ = np.eye(DIM, dtype=np.float32)
        else:
            rng = check_random_state(self.random_state)
            take = np.sort(rng.choice(n, min(n, 50_000), replace=False)) if n else np.arange(0)
            sample = np.asarray(vectors[take], dtype=np.float32)
            if len(sample) >= 2:
                # Uncentred principal axes: scores stay dot products with the query.
                _, _, vt = np.linalg.svd(sample, full_matrices=False)
                comps = vt[:d].T
                if comps.shape[1] < d:
                    comps = np.pad(comps, ((0, 0), (0, d - comps.shape[1])))
            else:
                comps = np.eye(DIM, d, dtype=np.float32)
            self.components_ = comps.astype(np.float32)
        coarse = np.empty((n, self.components_.shape[1]), dtype=np.float32)
        for s in range(0, n, 65_536):
            coarse[s:s + 65_536] = np.asarray(vectors[s:s + 65_536], np.float32) @ self.components_
        self.coarse_ = coarse

    def _fit_lexical(self, models: pd.DataFrame) -> None:
        docs = [_doc_tokens(m, t, task, lib) for m, t, task, lib in zip(
            models["id"], models["tags"], models.get("pipelineTag", [None] * len(models)),
            models.get("libraryName", [None] * len(models)))]
        vec = TfidfVectorizer(analyzer=lambda d: d, sublinear_tf=True, dtype=np.float32)
        terms = vec.fit_transform(docs)
        self.vocab_ = pa.array(vec.get_feature_names_out().tolist(), pa.string())
        self.idf_ = vec.idf_.astype(np.float32)
        self.terms_ = terms.tocsc()
        self.terms_rows_ = terms.tocsr()
        self.df_ = np.diff(self.terms_.indptr).astype(np.int64)

    def _fit_names(self, models: pd.DataFrame) -> None:
        ids = models["id"].astype(str)
        names = ids.str.split("/").str[-1]
        authors = ids.map(lambda m: m.split("/", 1)[0] if "/" in m else "")
        name_toks = [split_words(n) for n in names]
        auth_toks = [split_words(a) for a in authors]
        both, self.name_vocab_ = _binary_rows([n + a for n, a in zip(name_toks, auth_toks)])
        col = _lookup(self.name_vocab_, [t for toks in name_toks for t in toks])
        rows = np.repeat(np.arange(len(name_toks)), [len(t) for t in name_toks])
        names_m = sparse.csr_matrix((np.ones(len(col), np.float32), (rows, col)),
                                    shape=both.shape)
        names_m.data[:] = 1.0
        self.names_ = names_m.tocsc()
        self.name_or_author_ = both.tocsc()
        self.name_len_ = np.diff(names_m.indptr).astype(np.float32)
        self.name_key_ = _key_hash(names.map(name_key))
        self.id_key_ = _key_hash(ids.map(name_key))

    def _fit_signals(self, models: pd.DataFrame) -> None:
        n = len(models)
        col = lambda c, default: models[c] if c in models else pd.Series([default] * n)  # noqa: E731
        downloads = col("downloads", 0).fillna(0).to_numpy()
        likes = col("likes", 0).fillna(0).to_numpy()
        family = col("family_size", 0).fillna(0).to_numpy()
        self.popularity_ = (0.6 * _log_norm(downloads) + 0.25 * _log_norm(likes)
                            + 0.15 * _log_norm(family)).astype(np.float32)
        rels = col("base_relations", None)
        bits = np.zeros(n, dtype=np.int16)
        quant = np.zeros(n, dtype=bool)
        for i, (mid, tags, rs) in enumerate(zip(models["id"], col("tags", None), rels)):
            rs = list(rs) if rs is not None and not isinstance(rs, float) else []
            for r in rs:
                bits[i] |= _REL_BIT.get(r, 0)
            quant[i] = is_quantized(mid, tags, rs)
        self.relation_bits_ = bits
        self.quantized_ = quant
        created = pd.to_datetime(col("createdAt", None), errors="coerce")
        # Unknown dates are the Hub's pre-March-2022 back-fill: treat as that date.
        created = created.fillna(pd.Timestamp("2022-03-02"))
        self.created_ = created.to_numpy(dtype="datetime64[ns]")
        self.categories_ = {}
        for c in ("pipelineTag", "libraryName", "license"):
            cat = pd.Categorical(col(c, None))
            self.categories_[c] = (cat.codes.astype(np.int32), {v: i for i, v in
                                                                  enumerate(cat.categories)})
        # rows of each task, most adopted first: the candidates a task query starts from
        codes = self.categories_["pipelineTag"][0]
        order = np.lexsort((-self.popularity_, codes))
        order = order[codes[order] >= 0]
        self.task_rows_ = order.astype(np.int64)
        counts = np.bincount(codes[codes >= 0], minlength=len(self.categories_["pipelineTag"][1]))
        self.task_offsets_ = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        keep = [c for c in ("id", "author", "pipelineTag", "libraryName", "license",
                            "downloads", "likes", "createdAt", "family_size") if c in models]
        frame = models[keep].copy()
        frame["relation"] = [",".join(dict.fromkeys(r)) if r is not None and
                             not isinstance(r, float) and len(r) else "base" for r in rels]
        frame["quantized"] = quant
        frame["tags"] = [list(t) if t is not None and not isinstance(t, float) else []
                         for t in col("tags", None)]
        self.table_ = pa.Table.from_pandas(frame, preserve_index=False)

    # -- persistence ---------------------------------------------------------------------
    _ARRAYS = ("vectors_", "coarse_", "components_", "idf_", "df_", "name_len_", "name_key_",
               "id_key_", "popularity_", "relation_bits_", "quantized_", "task_rows_",
               "task_offsets_")
    _SPARSE = ("terms_", "terms_rows_", "names_", "name_or_author_")
    _PARAMS = ("w_dense", "w_lexical", "w_name", "w_exact", "w_task", "w_popularity",
               "name_precision", "name_adoption", "intent_name_adoption", "min_semantic",
               "coarse_dim", "n_candidates", "common_df", "fast_queries")

    def save(self, folder: str | Path) -> Path:
        """Write the fitted index to `folder` (replaced whole, atomically by a rename).

        Files: ``manifest.json`` (format, encoder, parameters, sizes, categories); one
        ``<attribute>.npy`` per array (vectors float16 — hard-linked from the vector cache
        when it is on the same disk —, coarse projection, hashes, signals); ``<matrix>.
        {indptr,indices,data}.npy`` per sparse matrix; ``vocab.arrow`` and
        ``name_vocab.arrow`` (terms); ``table.arrow`` (display columns, Arrow IPC, memory-
        mapped); ``models.parquet`` (the full model rows, read only by the recommender and
        tracer); ``created.npy`` (int64 ns)."""
        check_is_fitted(self, "n_models_")
        folder = Path(folder)
        tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        for name in self._ARRAYS:
            arr = getattr(self, name)
            src = getattr(arr, "filename", None)
            dst = tmp / f"{name.rstrip('_')}.npy"
            if name == "vectors_" and src and str(src).endswith(".npy") \
                    and isinstance(arr, np.memmap) and arr.offset <= 128 and \
                    arr.shape == (self.n_models_, DIM):
                try:
                    os.link(src, dst)  # the cache's file: no second copy
                    continue
                except OSError:
                    pass
            np.save(dst, np.asarray(arr))
        np.save(tmp / "created.npy", self.created_.astype("datetime64[ns]").view(np.int64))
        for name in self._SPARSE:
            m = getattr(self, name)
            for part in ("indptr", "indices", "data"):
                np.save(tmp / f"{name.rstrip('_')}.{part}.npy", getattr(m, part))
        for name, arr in (("vocab", self.vocab_), ("name_vocab", self.name_vocab_)):
            _write_arrow(tmp / f"{name}.arrow", pa.table({"term": arr}))
        _write_arrow(tmp / "table.arrow", self.table_)
        models = self.__dict__.get("_models_frame")
        if models is not None:
            pq.write_table(pa.Table.from_pandas(models, preserve_index=False),
                           tmp / "models.parquet")
        elif self.__dict__.get("_folder") and (Path(self._folder) / "models.parquet").exists():
            shutil.copy2(Path(self._folder) / "models.parquet", tmp / "models.parquet")
        enc = self.encoder
        manifest = {
            "format": FORMAT, "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "n_models": int(self.n_models_),
            "encoder": {"variant": enc.variant, "max_seq_length": enc.max_seq_length,
                        "key": enc.key} if enc is not None else None,
            "params": {p: getattr(self, p) for p in self._PARAMS},
            "shapes": {n: list(getattr(self, n).shape) for n in self._SPARSE},
            "categories": {c: list(lookup) for c, (_, lookup) in self.categories_.items()},
            "build_info": getattr(self, "build_info_", None),
        }
        for c, (codes, _) in self.categories_.items():
            np.save(tmp / f"codes.{c}.npy", codes)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str))
        if folder.exists():
            old = folder.with_name(folder.name + f".old-{os.getpid()}")
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
        return folder

    @classmethod
    def load(cls, folder: str | Path, *, encoder: TextEncoder | None = None) -> "HybridSearch":
        """A fitted index from `save`'s files (arrays memory-mapped: loads in well under a
        second; pages are read from disk as queries touch them)."""
        folder = Path(folder)
        try:
            man = json.loads((folder / "manifest.json").read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"no saved search index in {folder}") from None
        if man.get("format") != FORMAT:
            raise ValueError(f"{folder} holds search index format {man.get('format')}, "
                             f"this code reads {FORMAT}: rebuild it (build_search)")
        if encoder is None and man.get("encoder"):
            e = man["encoder"]
            encoder = TextEncoder(variant=e["variant"], max_seq_length=e["max_seq_length"])
        self = cls(encoder=encoder, **man["params"])
        for name in cls._ARRAYS:
            setattr(self, name, np.load(folder / f"{name.rstrip('_')}.npy", mmap_mode="r"))
        self.created_ = np.load(folder / "created.npy").view("datetime64[ns]")
        for name in cls._SPARSE:
            parts = [np.load(folder / f"{name.rstrip('_')}.{p}.npy", mmap_mode="r")
                     for p in ("data", "indices", "indptr")]
            kind = sparse.csr_matrix if name == "terms_rows_" else sparse.csc_matrix
            setattr(self, name, kind(tuple(parts), shape=tuple(man["shapes"][name]),
                                     copy=False))
        self.vocab_ = _read_arrow(folder / "vocab.arrow").column("term").combine_chunks()
        self.name_vocab_ = _read_arrow(folder / "name_vocab.arrow").column(
            "term").combine_chunks()
        self.table_ = _read_arrow(folder / "table.arrow")
        self.categories_ = {c: (np.load(folder / f"codes.{c}.npy", mmap_mode="r"),
                                {v: i for i, v in enumerate(names)})
                            for c, names in man["categories"].items()}
        self.n_models_ = int(man["n_models"])
        self.build_info_ = man.get("build_info")
        self._folder = str(folder)
        return self

    @property
    def models_frame_(self) -> pd.DataFrame:
        """The full model rows the index was fitted on (read from disk on first use after
        `load`): what the recommender and the tracer fit on."""
        frame = self.__dict__.get("_models_frame")
        if frame is None:
            folder = self.__dict__.get("_folder")
            if not folder or not (Path(folder) / "models.parquet").exists():
                raise AttributeError("models_frame_: not kept with this index")
            frame = pd.read_parquet(Path(folder) / "models.parquet")
            for c in ("tags", "datasets", "bases", "base_relations"):
                if c in frame:
                    frame[c] = frame[c].map(lambda v: list(v) if v is not None else [])
            self._models_frame = frame
        return frame

    @models_frame_.setter
    def models_frame_(self, frame: pd.DataFrame) -> None:
        self._models_frame = frame

    @property
    def ids_(self) -> np.ndarray:
        """Model ids, row order (object array; after `load`, built on first use)."""
        ids = self.__dict__.get("_ids")
        if ids is None:
            ids = self._ids = self.table_.column("id").to_numpy(zero_copy_only=False)
        return ids

    @ids_.setter
    def ids_(self, ids) -> None:
        self._ids = np.asarray(ids, dtype=object)

    @property
    def row_of_(self) -> dict:
        """id → row (built on first use: ~0.2 s on 760k ids)."""
        lookup = self.__dict__.get("_row_of")
        if lookup is None:
            lookup = self._row_of = {m: i for i, m in enumerate(self.ids_.tolist())}
        return lookup

    @property
    def frame_(self) -> pd.DataFrame:
        """The display columns of every model as a DataFrame (materialised on first use)."""
        frame = self.__dict__.get("_frame")
        if frame is None:
            frame = self._frame = self.table_.drop_columns(["tags"]).to_pandas()
        return frame

    def rows_frame(self, rows: np.ndarray) -> pd.DataFrame:
        """Display columns of the given rows, in that order (no whole-table conversion)."""
        t = self.table_.take(pa.array(np.asarray(rows, dtype=np.int64)))
        return t.drop_columns(["tags"]).to_pandas()

    # -- helpers -------------------------------------------------------------------------
    def _encoder(self) -> TextEncoder:
        if self.encoder is None:
            self.encoder = TextEncoder()
        return self.encoder

    def _query_encoder(self) -> TextEncoder:
        """Queries go through the fp32 network in onnxruntime when the corpus encoder is the
        torch bf16/fp32 or the OpenVINO one (same vector space: cosine 0.9999 with bf16; 3 ms
        vs 8.5 per query for torch); if the ONNX export is unavailable, through the corpus
        encoder itself."""
        qe = self.__dict__.get("_qenc")
        if qe is None:
            enc = self._encoder()
            qe = enc
            global _ONNX_FAILED
            if self.fast_queries and enc.variant in ("bf16", "fp32", "openvino-bf16") \
                    and not _ONNX_FAILED:
                try:
                    cand = TextEncoder(variant="onnx-fp32", max_seq_length=enc.max_seq_length,
                                       onnx_dir=enc.onnx_dir)
                    cand.encode(["warm up"])
                    qe = cand
                except Exception as e:  # noqa: BLE001 - any export failure: keep torch
                    import logging

                    _ONNX_FAILED = True  # e.g. the `onnx` package is missing: do not retry
                    logging.getLogger(__name__).warning("ONNX query encoder unavailable: %s", e)
            self._qenc = qe
        return qe

    def encode_query(self, query: str) -> np.ndarray:
        return self._query_encoder().encode([query])[0]

    def phrases(self) -> dict:
        ph = self.__dict__.get("_phrases")
        if ph is None:
            ph = self._phrases = task_phrases(self.categories_["pipelineTag"][1])
        return ph

    def parse(self, query: str) -> ParsedQuery:
        """The query as this index reads it (tasks limited to those it holds)."""
        parsed = parse_query(query, self.phrases())
        known = self.categories_["pipelineTag"][1]
        return replace(parsed, tasks=tuple(t for t in parsed.tasks if t in known))
    def mask(self, filters: SearchFilters | None) -> np.ndarray | None:
        """Boolean row mask for `filters` (None when nothing is filtered); the last few masks
        are kept, since people page through one set of filters with many queries."""
        check_is_fitted(self, "n_models_")
        if filters is None or filters.is_empty():
            return None
        key = repr(filters)
        cache = self.__dict__.setdefault("_masks", {})
        if key not in cache:
            if len(cache) >= 16:
                cache.pop(next(iter(cache)))
            cache[key] = self._mask(filters)
        return cache[key]

    def _mask(self, filters: SearchFilters) -> np.ndarray:
        m = np.ones(self.n_models_, dtype=bool)
        for attr, col in (("task", "pipelineTag"), ("library", "libraryName"),
                          ("license", "license")):
            want = getattr(filters, attr)
            if want is None:
                continue
            codes, lookup = self.categories_[col]
            wants = [want] if isinstance(want, str) else list(want)
            ok = [lookup[w] for w in wants if w in lookup]
            m &= np.isin(codes, ok) if ok else False
        if filters.relation is not None:
            rels = [filters.relation] if isinstance(filters.relation, str) \
                else list(filters.relation)
            bad = [r for r in rels if r not in _REL_BIT and r != "base"]
            if bad:
                raise ValueError(f"relation must be in {RELATIONS + ('base',)}, got {bad}")
            bits = sum(_REL_BIT[r] for r in rels if r != "base")
            rm = (self.relation_bits_ & bits) != 0
            if "base" in rels:
                rm |= self.relation_bits_ == 0
            m &= rm
        if filters.quantized is not None:
            m &= self.quantized_ if filters.quantized else ~self.quantized_
        if filters.created_after is not None:
            m &= self.created_ >= np.datetime64(pd.Timestamp(filters.created_after), "ns")
        return m

    def _coarse_candidates(self, qv: np.ndarray, m: int, mask: np.ndarray | None = None
                           ) -> np.ndarray:
        """The `m` best rows by coarse score (every allowed row when the mask is that small)."""
        allowed = None if mask is None else np.flatnonzero(mask)
        if allowed is not None and len(allowed) <= m:
            return allowed
        if allowed is not None and len(allowed) < self.n_models_ // 10:
            coarse = self.coarse_[allowed] @ (self.components_.T @ qv.astype(np.float32))
            return allowed[np.argpartition(-coarse, m - 1)[:m]]
        coarse = self.coarse_ @ (self.components_.T @ qv.astype(np.float32))
        if mask is not None:
            coarse[~mask] = -np.inf
        m = min(m, len(coarse))
        cand = np.argpartition(-coarse, m - 1)[:m] if m < len(coarse) else np.arange(len(coarse))
        return cand if mask is None else cand[mask[cand]]

    def dense_candidates(self, qv: np.ndarray, n: int, mask: np.ndarray | None = None,
                         exclude: Iterable[int] = ()) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the `n` best exact cosines to `qv` (two-stage), best first: (rows, cos)."""
        cand = self._coarse_candidates(qv, max(self.n_candidates, 4 * n), mask)
        excl = np.fromiter(exclude, dtype=np.int64)
        if len(excl):
            cand = cand[~np.isin(cand, excl)]
        if not len(cand):
            return cand.astype(np.int64), np.zeros(0, np.float32)
        cos = self._exact(cand, qv)
        top = np.argsort(-cos, kind="stable")[:n]
        return cand[top], cos[top]

    def _exact(self, rows: np.ndarray, qv: np.ndarray) -> np.ndarray:
        order = np.argsort(rows)
        vecs = np.asarray(self.vectors_[rows[order]], dtype=np.float32)
        out = np.empty(len(rows), dtype=np.float32)
        out[order] = vecs @ qv.astype(np.float32)
        return out

    def _terms_dict(self, name: str) -> dict:
        """term → column of `vocab_` / `name_vocab_`, built on the first query (~0.3 s on the
        full graph; hashing 480k terms per query would cost ~1 s each time)."""
        d = self.__dict__.get(f"_dict_{name}")
        if d is None:
            d = {t: i for i, t in enumerate(getattr(self, name).to_pylist())}
            self.__dict__[f"_dict_{name}"] = d
        return d

    def _query_terms(self, query: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """The query's TF-IDF vector over known terms (as `TfidfVectorizer(sublinear_tf=True)`
        makes it): (columns, l2-normalised weights, terms)."""
        last = self.__dict__.get("_last_terms")
        if last is not None and last[0] == query:
            return last[1]
        out = self._query_terms_uncached(query)
        self._last_terms = (query, out)
        return out

    def _query_terms_uncached(self, query: str):
        toks = lexical_tokens(query)
        if not toks:
            return np.zeros(0, np.int64), np.zeros(0, np.float32), []
        uniq, counts = np.unique(np.asarray(toks, dtype=object), return_counts=True)
        cols = _lookup(self._terms_dict("vocab_"), uniq.tolist())
        known = cols >= 0
        cols, counts, terms = cols[known], counts[known], uniq[known].tolist()
        if not len(cols):
            return cols, np.zeros(0, np.float32), []
        w = (1.0 + np.log(counts)) * self.idf_[cols]
        w = (w / np.linalg.norm(w)).astype(np.float32)
        order = np.argsort(cols)
        return cols[order], w[order], [terms[i] for i in order]

    def lexical_scores(self, query: str, *, rare_only: bool = False
                       ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Rows with a nonzero lexical cosine, their scores and the query's known terms.

        rare_only: use only terms held by at most `common_df` of the models (the rarest one
        if all are common) — posting lists of words like "text" span half the Hub."""
        cols, data, names = self._query_terms(query)
        if not len(cols):
            return np.zeros(0, np.int64), np.zeros(0, np.float32), []
        if rare_only:
            limit = max(self.common_df * self.n_models_, 50)
            keep = self.df_[cols] <= limit
            if not keep.any():
                keep = self.df_[cols] == self.df_[cols].min()
            cols, data = cols[keep], data[keep]
        sub = self.terms_[:, cols]
        res = (sub @ sparse.csc_matrix(data.reshape(-1, 1))).tocsc()
        res.sum_duplicates()
        return res.indices.astype(np.int64), res.data.astype(np.float32), names

    def _lexical_rows(self, rows: np.ndarray, cols: np.ndarray, data: np.ndarray) -> np.ndarray:
        if not len(cols) or not len(rows):
            return np.zeros(len(rows), np.float32)
        q = np.zeros(self.terms_.shape[1], np.float32)
        q[cols] = data
        return np.asarray(self.terms_rows_[rows] @ q, dtype=np.float32).ravel()

    def _name_hits(self, parsed: ParsedQuery) -> tuple[np.ndarray, np.ndarray, int]:
        """Per model: query name tokens in its name ∪ author, in its name; and the number of
        query name tokens (unknown ones count: nothing can cover them)."""
        toks = list(parsed.name_tokens)
        cols = _lookup(self._terms_dict("name_vocab_"), toks)
        cols = cols[cols >= 0]
        if not len(cols):
            z = np.zeros(self.n_models_, np.float32)
            return z, z, len(toks)
        ones = np.ones(len(cols), np.float32)
        both = np.asarray(self.name_or_author_[:, cols] @ ones, np.float32).ravel()
        name = np.asarray(self.names_[:, cols] @ ones, np.float32).ravel()
        return both, name, len(toks)

    def _format_match(self, rows: np.ndarray, formats: Sequence[str]) -> np.ndarray:
        """Per row: 1 when its id or tags hold every format word of the query, else 0."""
        if not formats:
            return np.zeros(len(rows), np.float32)
        cols = _lookup(self._terms_dict("vocab_"), list(formats))
        if (cols < 0).any():  # a format no model has: nothing to prefer
            return np.zeros(len(rows), np.float32)
        held = np.asarray((self.terms_rows_[rows][:, cols] > 0).sum(axis=1)).ravel()
        return (held == len(cols)).astype(np.float32)

    def _task_candidates(self, tasks: Sequence[str], per_task: int = 300) -> np.ndarray:
        lookup = self.categories_["pipelineTag"][1]
        out = [self.task_rows_[self.task_offsets_[c]:self.task_offsets_[c] + per_task]
               for c in (lookup[t] for t in tasks if t in lookup)]
        return np.concatenate(out) if out else np.zeros(0, np.int64)

    def rank(self, query: str, k: int = 10, filters: SearchFilters | None = None, *,
             method: str = "hybrid") -> _Ranked:
        """The top-`k` rows for `query` by `method` (see `METHODS`): ``hybrid`` (this ranking),
        ``v1`` (the ranking before query understanding), ``dense`` (cosine only),
        ``lexical`` (TF-IDF only) and ``hub`` (every query word a substring of the id, most
        downloaded first: what the Hub's search box does)."""
        check_is_fitted(self, "n_models_")
        if not isinstance(query, str) or not query.strip():
            raise ValueError("query must be a non-empty string")
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k!r}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        k = int(k)
        mask = self.mask(filters)
        parsed = self.parse(query)
        if method == "hub":
            return self._rank_hub(query, k, mask, parsed)
        cols, data, _ = self._query_terms(query)
        cand = []
        qv = None
        if method != "lexical":
            qv = self.encode_query(query)
            cand.append(self._coarse_candidates(qv, max(self.n_candidates, 4 * k), mask))
        if method in ("hybrid", "v1", "lexical"):
            l_rows, l_scores, _ = self.lexical_scores(query, rare_only=True)
            if mask is not None and len(l_rows):
                keep = mask[l_rows]
                l_rows, l_scores = l_rows[keep], l_scores[keep]
            if len(l_rows) > self.n_candidates:
                l_rows = l_rows[np.argpartition(-l_scores, self.n_candidates - 1)
                                [: self.n_candidates]]
            cand.append(l_rows)
        both = name = None
        n_tok = 0
        if method == "hybrid":
            both, name, n_tok = self._name_hits(parsed)
            if both.any():
                proxy = both + self.popularity_
                if mask is not None:
                    proxy = np.where(mask, proxy, -1.0)
                m = min(2 * self.n_candidates, int((proxy >= 1).sum()))
                if m:
                    cand.append(np.argpartition(-proxy, m - 1)[:m])
            qh = _key_hash([parsed.key])[0]
            exact = np.flatnonzero((self.name_key_ == qh) | (self.id_key_ == qh))
            task_rows = self._task_candidates(parsed.tasks)
            for extra in (exact, task_rows):
                cand.append(extra if mask is None else extra[mask[extra]])
        cand = np.unique(np.concatenate(cand)) if cand else np.zeros(0, np.int64)
        fmt = np.zeros(len(cand), np.float32)
        if method == "hybrid" and parsed.formats:
            # a build format asked for (gguf, awq…) is a requirement, like the Hub's format
            # filter: when some candidates are such builds, only they are ranked
            fmt = self._format_match(cand, parsed.formats)
            if (fmt > 0).any():
                cand, fmt = cand[fmt > 0], fmt[fmt > 0]
        if not len(cand):
            return _Ranked(cand, np.zeros(0, np.float32), {}, True, parsed)
        feats = {"semantic": self._exact(cand, qv) if qv is not None
                 else np.zeros(len(cand), np.float32),
                 "lexical": self._lexical_rows(cand, cols, data),
                 "popularity": self.popularity_[cand]}
        if method == "dense":
            score = feats["semantic"]
        elif method == "lexical":
            score = feats["lexical"] + 1e-3 * feats["popularity"]
        elif method == "v1":
            score = (V1_WEIGHTS["w_dense"] * feats["semantic"] + V1_WEIGHTS["w_lexical"]
                     * feats["lexical"] + V1_WEIGHTS["w_popularity"] * feats["popularity"])
        else:
            cover = np.minimum(both[cand] / max(n_tok, 1), 1.0) if n_tok else \
                np.zeros(len(cand), np.float32)
            precision = np.where(self.name_len_[cand] > 0,
                                 name[cand] / np.maximum(self.name_len_[cand], 1), 0.0)
            qh = _key_hash([parsed.key])[0]
            # An exact name counts as much as the model is used: the canonical "sdxl" is not an
            # unused repo that happens to be called so.
            exact = ((self.name_key_[cand] == qh) | (self.id_key_[cand] == qh)).astype(
                np.float32) * feats["popularity"]
            codes, lookup = self.categories_["pipelineTag"]
            want = [lookup[t] for t in parsed.tasks]
            # a query that names a task wants models of that task: one with another
            # (known) task is pushed down as much as a match is pulled up, so adoption cannot
            # lift a famous off-task model above the task's own (text to image -> not gpt2)
            if want:
                on_task = np.isin(codes[cand], want)
                known = codes[cand] >= 0  # -1: the model states no task
                task = np.where(on_task, 1.0, np.where(known, -1.0, 0.0)).astype(np.float32)
            else:
                task = np.zeros(len(cand), np.float32)
            prec_w = float(self.name_precision)
            # a name match counts as much as the model is used, in part: query words that
            # happen to be in an unused repo's name are a lexical accident, not a known item
            adopt_w = float(self.intent_name_adoption if parsed.is_intent else self.name_adoption)
            feats.update({"name": (cover ** 2 * (1 - prec_w + prec_w * precision)
                                   * (1 - adopt_w + adopt_w * feats["popularity"])
                                   ).astype(np.float32),
                          "name_coverage": cover.astype(np.float32), "exact": exact,
                          "task": task, "format": fmt})
            score = (self.w_dense * feats["semantic"] + self.w_lexical * feats["lexical"]
                     + self.w_name * feats["name"] + self.w_exact * exact
                     + self.w_task * task + self.w_popularity * feats["popularity"])
        top = np.argsort(-score, kind="stable")[:k]
        feats = {f: v[top] for f, v in feats.items()}
        confident = feats["semantic"] >= self.min_semantic
        if method == "hybrid":
            confident |= (feats["exact"] > 0) | (feats["name_coverage"] >= 1.0) \
                | (feats["task"] > 0) | (feats["format"] > 0)
        feats["confident"] = confident
        return _Ranked(cand[top], score[top].astype(np.float32), feats,
                       bool(len(top) and not confident[0]), parsed)

    def _rank_hub(self, query: str, k: int, mask, parsed) -> _Ranked:
        ids = self.__dict__.get("_ids_lower")
        if ids is None:
            ids = self._ids_lower = pc.utf8_lower(self.table_.column("id"))
        hit = None
        for w in query.lower().split():
            m = pc.match_substring(ids, w)
            hit = m if hit is None else pc.and_(hit, m)
        rows = np.flatnonzero(hit.to_numpy(zero_copy_only=False)) if hit is not None else \
            np.zeros(0, np.int64)
        if mask is not None:
            rows = rows[mask[rows]]
        downloads = self.table_.column("downloads").to_numpy()[rows] if len(rows) else rows
        top = rows[np.argsort(-downloads, kind="stable")[:k]]
        return _Ranked(top, np.zeros(len(top), np.float32), {}, not len(top), parsed)

    # -- the query -----------------------------------------------------------------------
    def search(self, query: str, k: int = 10, filters: SearchFilters | None = None
               ) -> pd.DataFrame:
        """Top-`k` models for a natural-language query, with score components and a reason.

        Columns: id, score, confidence ("high"/"low"), semantic, lexical, name, task,
        popularity, matched_terms, reason, and the display properties (author, pipelineTag,
        libraryName, license, downloads, likes, createdAt, family_size, relation, quantized)."""
        r = self.rank(query, k, filters)
        if not len(r.rows):
            return self._empty()
        out = self.rows_frame(r.rows)
        f = r.feats
        out.insert(1, "score", r.score)
        out.insert(2, "confidence", np.where(f["confident"], "high", "low"))
        for i, c in enumerate(("semantic", "lexical", "name", "task", "popularity")):
            out.insert(3 + i, c, f[c])
        q_set = set(lexical_tokens(query)) | set(r.parsed.name_tokens)
        tags = self.table_.column("tags").take(pa.array(r.rows)).to_pylist()
        matched = [sorted(q_set & (set(_doc_tokens(mid, tg, task, lib))
                                   | set(split_words(mid))))
                   for mid, tg, task, lib in zip(out["id"], tags, out["pipelineTag"],
                                                 out.get("libraryName", [None] * len(out)))]
        out.insert(8, "matched_terms", matched)
        recs = out.to_dict("records")
        out.insert(9, "reason", [self._reason(rec, m, f["exact"][i], f["format"][i], r.parsed)
                                 for i, (rec, m) in enumerate(zip(recs, matched))])
        return out

    def _reason(self, r: dict, matched: list[str], exact: float, fmt: float,
                parsed: ParsedQuery) -> str:
        parts = []
        if exact:
            parts.append("its name is the query")
        elif r["name"] > 0:
            parts.append(f"name match {r['name']:.2f}")
        if r["task"] > 0:
            parts.append(f"task {r.get('pipelineTag')} (from “{' '.join(parsed.task_words)}”)")
        if fmt > 0:
            parts.append(f"format {', '.join(parsed.formats)}")
        parts.append(f"semantic {r['semantic']:.2f}")
        if matched:
            parts.append(f"lexical {r['lexical']:.2f} on " + ", ".join(matched[:6]))
        pop = [f"{int(r.get('downloads', 0) or 0):,} downloads"]
        if r.get("likes"):
            pop.append(f"{int(r['likes']):,} likes")
        if r.get("family_size"):
            pop.append(f"{int(r['family_size']):,} derivatives")
        parts.append(f"adoption {r['popularity']:.2f} (" + ", ".join(pop) + ")")
        if r["confidence"] == "low":
            parts.append("low confidence: only a weak semantic match")
        return " · ".join(parts)

    def _empty(self) -> pd.DataFrame:
        cols = ["id", "score", "confidence", "semantic", "lexical", "name", "task",
                "popularity", "matched_terms", "reason"]
        return pd.DataFrame(columns=cols + [c for c in self.table_.column_names
                                            if c not in ("id", "tags")])

    def options(self) -> dict[str, list[str]]:
        """Values the filters can take: task, library, license, relation."""
        check_is_fitted(self, "n_models_")
        out = {}
        for attr, col in (("task", "pipelineTag"), ("library", "libraryName"),
                          ("license", "license")):
            codes, lookup = self.categories_[col]
            codes = np.asarray(codes)
            counts = np.bincount(codes[codes >= 0], minlength=len(lookup))
            names = list(lookup)
            out[attr] = [names[i] for i in np.argsort(-counts) if counts[i] > 0]
        out["relation"] = ["base", *RELATIONS]
        return out


def _write_arrow(path: Path, table: pa.Table) -> None:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def _read_arrow(path: Path) -> pa.Table:
    return pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()


# -- building from the graph, saving, loading ------------------------------------------------
SEARCH_DIR = "search"


def search_folder(root=None, generation: str | None = None) -> Path | None:
    """Where the index of a graph generation is saved: ``<root>/<generation>/results/search``
    (the current generation by default; None when there is none, e.g. under Neo4j)."""
    from graph.generations import Generations
    from graph.store import db_root, neo4j_configured

    root = Path(root or db_root())
    if generation is None:
        if neo4j_configured():
            return root / "neo4j" / "results" / SEARCH_DIR
        generation = Generations(root).current_name()
    return root / generation / "results" / SEARCH_DIR if generation else None


def build_search(store=None, *, root=None, encoder: TextEncoder | None = None,
                 persist: bool = True, save_to: str | Path | None = None,
                 **params) -> HybridSearch:
    """Batch builder: read the graph, embed what the vector cache lacks, fit a `HybridSearch`
    (and `save` it to `save_to` when given). ``search.build_info_`` holds the embedding
    counts (``embedded``, ``encoded``, ``reused``, ``variant``) and timings."""
    from analytics import model_rows
    from analytics.embeddings import embed_models, encoder_for, model_texts
    from graph.store import db_root, store_or_open

    t0 = time.perf_counter()
    with store_or_open(store, root=root) as store:
        frame = model_rows.model_text_frame(store)
    t1 = time.perf_counter()
    encoder = encoder or encoder_for(root or db_root())
    vectors, info = embed_models(frame["id"], model_texts(frame), encoder,
                                 root=root or db_root(), persist=persist)
    t2 = time.perf_counter()
    search = HybridSearch(encoder=encoder, **params).fit(frame, vectors)
    info = {**info, "read_s": t1 - t0, "embed_s": t2 - t1,
            "fit_s": time.perf_counter() - t2, "encoder": encoder.key}
    search.build_info_ = info
    if save_to is not None:
        search.save(save_to)
    return search


def save_search(search: HybridSearch, folder: str | Path) -> Path:
    return search.save(folder)


def load_search(folder: str | Path) -> HybridSearch:
    return HybridSearch.load(folder)


def open_search(store=None, *, root=None) -> HybridSearch:
    """The current generation's saved index if there is one, else a fresh `build_search`
    (saved for next time when the generation folder is writable)."""
    folder = search_folder(root)
    if folder is not None and (folder / "manifest.json").exists():
        try:
            return HybridSearch.load(folder)
        except (ValueError, OSError, KeyError):
            pass  # an older format or a broken folder: rebuild below
    search = build_search(store, root=root)
    if folder is not None:
        try:
            search.save(folder)
        except OSError:
            pass
    return search
