"""Hybrid model search: dense MiniLM cosine + TF-IDF over id tokens and tags + graph signals.

`HybridSearch` is fitted on `graph.retrieval_queries.model_text_frame` rows and their
vectors (`analytics.embeddings.embed_models`). A query is answered in two stages so top-10
over 760k models stays well under 100 ms on two cores:

1. candidates: the `n_candidates` best rows by a *coarse* dense score (the vectors projected
   on their top `coarse_dim` principal axes, float32, one BLAS mat-vec), plus the best rows by
   lexical score (only the posting lists of the query's terms are touched: CSC columns);
2. exact rerank of the candidates: full 384-d cosine (float16 rows → float32), lexical
   cosine, popularity; the weighted sum orders the results.

Filters (task, library, licence, lineage relation, quantized, created after) are boolean
masks applied before stage 1, so a selective filter still returns k results.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from analytics.embeddings import DIM, TextEncoder, clean_tags, split_words

RELATIONS = ("finetune", "adapter", "quantized", "merge", "unknown")
_REL_BIT = {r: 1 << i for i, r in enumerate(RELATIONS)}
_QUANT_MARKERS = re.compile(r"(?:^|[^a-z])(gguf|gptq|awq|exl2|ggml|bnb|bitsandbytes|4bit|8bit|"
                            r"4-bit|8-bit|int4|int8|q4_k_m|q8_0|quantized|mlx-4bit|fp8|hqq|"
                            r"nf4)(?:$|[^a-z])", re.I)
_STOP = frozenset(ENGLISH_STOP_WORDS) | {"model", "models", "want", "need", "good", "best"}
_ONNX_FAILED = False
_RAW = re.compile(r"[/_\-.\s:+,()\[\]]+")


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
    if _QUANT_MARKERS.search(mid or ""):
        return True
    return any(_quant_tag(str(t)) for t in (tags if tags is not None else ()))


@lru_cache(maxsize=200_000)
def _quant_tag(tag: str) -> bool:
    return bool(_QUANT_MARKERS.search(tag))


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


class HybridSearch(BaseEstimator):
    """Natural-language search over models: dense + lexical + popularity, with filters.

    Parameters
    ----------
    encoder : TextEncoder or None, default=None
        Encodes queries; must be the encoder that made the fitted vectors (None: default one).
    w_dense, w_lexical, w_popularity : float, default=1.0, 0.5, 0.3
        Weights of the semantic cosine, the lexical TF-IDF cosine and the popularity score
        (each in [0, 1]) in the final score.
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
    lexical_ : TfidfVectorizer
    terms_ : scipy.sparse.csc_matrix (n_models, n_terms)
    popularity_ : ndarray (n_models,) in [0, 1]
    frame_ : DataFrame of the display columns

    Examples
    --------
    >>> search = HybridSearch().fit(frame, vectors)       # doctest: +SKIP
    >>> search.search("german ner", k=5, filters=SearchFilters(library="transformers"))
    """

    def __init__(self, *, encoder: TextEncoder | None = None, w_dense: float = 1.0,
                 w_lexical: float = 0.5, w_popularity: float = 0.3, coarse_dim: int = 64,
                 n_candidates: int = 1000, common_df: float = 0.05, fast_queries: bool = True,
                 random_state=0):
        self.encoder = encoder
        self.w_dense = w_dense
        self.w_lexical = w_lexical
        self.w_popularity = w_popularity
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
                            "(graph.retrieval_queries.model_text_frame)")
        if vectors.ndim != 2 or vectors.shape[1] != DIM or len(vectors) != len(models):
            raise ValueError(f"vectors must be ({len(models)}, {DIM}), got {vectors.shape}")
        if not 1 <= int(self.coarse_dim) <= DIM:
            raise ValueError(f"coarse_dim must be in [1, {DIM}], got {self.coarse_dim!r}")
        if int(self.n_candidates) < 1:
            raise ValueError(f"n_candidates must be >= 1, got {self.n_candidates!r}")
        models = models.reset_index(drop=True)
        self.ids_ = models["id"].to_numpy(dtype=str)
        self.n_models_ = len(models)
        self.row_of_ = {m: i for i, m in enumerate(self.ids_)}
        self.vectors_ = vectors
        self._fit_coarse(vectors)
        self._fit_lexical(models)
        self._fit_signals(models)
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
        self.lexical_ = TfidfVectorizer(analyzer=lambda d: d, sublinear_tf=True, dtype=np.float32)
        terms = self.lexical_.fit_transform(docs)
        self.terms_ = terms.tocsc()
        self.terms_rows_ = terms.tocsr()
        self.df_ = np.diff(self.terms_.indptr)
        self.vocab_ = None

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
        keep = [c for c in ("id", "author", "pipelineTag", "libraryName", "license",
                            "downloads", "likes", "createdAt", "family_size") if c in models]
        self.frame_ = models[keep].copy()
        self.frame_["relation"] = [",".join(dict.fromkeys(r)) if r is not None and
                                   not isinstance(r, float) and len(r) else "base"
                                   for r in rels]
        self.frame_["quantized"] = quant
        self.doc_terms_ = None  # computed lazily for the reasons of the shown rows
        self._tags = col("tags", None).to_numpy()
        self._task = col("pipelineTag", None).to_numpy()
        self._lib = col("libraryName", None).to_numpy()

    # -- helpers -------------------------------------------------------------------------
    def _encoder(self) -> TextEncoder:
        if self.encoder is None:
            self.encoder = TextEncoder()
        return self.encoder

    def _query_encoder(self) -> TextEncoder:
        """Queries go through the fp32 network in onnxruntime when the corpus encoder is the
        torch bf16/fp32 one (same vector space: cosine 0.9999 with bf16; 3 ms vs 8.5 per
        query); if the ONNX export is unavailable, through the corpus encoder itself."""
        qe = getattr(self, "_qenc", None)
        if qe is None:
            enc = self._encoder()
            qe = enc
            global _ONNX_FAILED
            if self.fast_queries and enc.variant in ("bf16", "fp32") and not _ONNX_FAILED:
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

    def mask(self, filters: SearchFilters | None) -> np.ndarray | None:
        """Boolean row mask for `filters` (None when nothing is filtered); the last few masks
        are kept, since people page through one set of filters with many queries."""
        check_is_fitted(self, "ids_")
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
            rels = [filters.relation] if isinstance(filters.relation, str) else list(filters.relation)
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

    def _query_terms(self, query: str):
        q = self.lexical_.transform([lexical_tokens(query)])
        if self.vocab_ is None:
            self.vocab_ = self.lexical_.get_feature_names_out()
        return q, [self.vocab_[i] for i in q.indices]

    def lexical_scores(self, query: str, *, rare_only: bool = False
                       ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Rows with a nonzero lexical cosine, their scores and the query's known terms.

        rare_only: use only terms held by at most `common_df` of the models (the rarest one
        if all are common) — posting lists of words like "text" span half the Hub."""
        q, names = self._query_terms(query)
        if q.nnz == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32), []
        cols, data = q.indices, q.data.astype(np.float32)
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

    # -- the query -----------------------------------------------------------------------
    def search(self, query: str, k: int = 10, filters: SearchFilters | None = None
               ) -> pd.DataFrame:
        """Top-`k` models for a natural-language query, with score components and a reason.

        Columns: id, score, semantic, lexical, popularity, matched_terms, reason, and the
        display properties (author, pipelineTag, libraryName, license, downloads, likes,
        createdAt, family_size, relation, quantized)."""
        check_is_fitted(self, "ids_")
        if not isinstance(query, str) or not query.strip():
            raise ValueError("query must be a non-empty string")
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k!r}")
        mask = self.mask(filters)
        qv = self.encode_query(query)
        d_rows = self._coarse_candidates(qv, max(self.n_candidates, 4 * k), mask)
        l_rows, l_scores, _ = self.lexical_scores(query, rare_only=True)
        if mask is not None and len(l_rows):
            keep = mask[l_rows]
            l_rows, l_scores = l_rows[keep], l_scores[keep]
        if len(l_rows) > self.n_candidates:
            top = np.argpartition(-l_scores, self.n_candidates - 1)[: self.n_candidates]
            l_rows = l_rows[top]
        cand = np.union1d(d_rows, l_rows)
        if not len(cand):
            return self._empty()
        semantic = self._exact(cand, qv)
        q, q_terms = self._query_terms(query)
        lexical = np.asarray(self.terms_rows_[cand] @ q.T.toarray().astype(np.float32)
                             ).ravel() if q.nnz else np.zeros(len(cand), np.float32)
        pop = self.popularity_[cand]
        score = self.w_dense * semantic + self.w_lexical * lexical + self.w_popularity * pop
        top = np.argsort(-score, kind="stable")[: int(k)]
        rows = cand[top]
        out = self.frame_.iloc[rows].reset_index(drop=True)
        out.insert(1, "score", score[top])
        out.insert(2, "semantic", semantic[top])
        out.insert(3, "lexical", lexical[top])
        out.insert(4, "popularity", pop[top])
        q_set = set(q_terms)
        matched = [sorted(q_set & set(_doc_tokens(self.ids_[r], self._tags[r], self._task[r],
                                                  self._lib[r]))) for r in rows]
        out.insert(5, "matched_terms", matched)
        out.insert(6, "reason", [self._reason(rec, m) for rec, m in
                                 zip(out.to_dict("records"), matched)])
        return out

    def _reason(self, r: dict, matched: list[str]) -> str:
        parts = [f"semantic {r['semantic']:.2f}"]
        if matched:
            parts.append(f"lexical {r['lexical']:.2f} on " + ", ".join(matched[:6]))
        pop = [f"{int(r.get('downloads', 0) or 0):,} downloads"]
        if r.get("likes"):
            pop.append(f"{int(r['likes']):,} likes")
        if r.get("family_size"):
            pop.append(f"{int(r['family_size']):,} derivatives")
        parts.append(f"popularity {r['popularity']:.2f} (" + ", ".join(pop) + ")")
        return " · ".join(parts)

    def _empty(self) -> pd.DataFrame:
        cols = ["id", "score", "semantic", "lexical", "popularity", "matched_terms", "reason"]
        return pd.DataFrame(columns=cols + [c for c in self.frame_.columns if c != "id"])

    def options(self) -> dict[str, list[str]]:
        """Values the filters can take: task, library, license, relation."""
        check_is_fitted(self, "ids_")
        out = {}
        for attr, col in (("task", "pipelineTag"), ("library", "libraryName"),
                          ("license", "license")):
            codes, lookup = self.categories_[col]
            counts = np.bincount(codes[codes >= 0], minlength=len(lookup))
            names = list(lookup)
            out[attr] = [names[i] for i in np.argsort(-counts) if counts[i] > 0]
        out["relation"] = ["base", *RELATIONS]
        return out


# -- building from the graph -----------------------------------------------------------------
def build_search(store=None, *, root=None, encoder: TextEncoder | None = None,
                 persist: bool = True, **params) -> tuple[HybridSearch, dict]:
    """Read the graph, embed what the vector cache lacks, fit a `HybridSearch`.

    Returns ``(search, info)``; info has the embedding counts (``embedded``, ``reused``)."""
    from analytics.embeddings import embed_models, model_texts
    from graph import retrieval_queries as rq
    from graph.store import db_root, store_or_open

    with store_or_open(store, root=root) as store:
        frame = rq.model_text_frame(store)
    encoder = encoder or TextEncoder()
    vectors, info = embed_models(frame["id"], model_texts(frame), encoder,
                                 root=root or db_root(), persist=persist)
    search = HybridSearch(encoder=encoder, **params).fit(frame, vectors)
    search.models_frame_ = frame
    return search, info


def load_search(store=None, *, root=None, **params) -> HybridSearch:
    """`build_search` without the info (what the app and the benchmark call)."""
    return build_search(store, root=root, **params)[0]


def graph_version(root=None) -> str:
    """Names the live graph (its generation), so caches can be keyed by it."""
    from graph.generations import Generations
    from graph.store import db_root, neo4j_configured

    if neo4j_configured():
        return "neo4j"
    return Generations(root or db_root()).current_name() or "none"
