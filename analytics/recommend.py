"""Recommendations over the model graph: similar models, datasets to try, where to start,
and tracing a model's unknown base model.

* `ModelRecommender` — similar models (text cosine + shared lineage + shared datasets),
  datasets for a model (what its nearest models were trained on, plus a task prior),
  datasets for a task, and "where to start" base models for a task ranked by adoption
  (derivatives) and recent growth (derivatives per month over the last months).
* `BaseModelTracer` — ranks candidate base models for a model whose base link is unknown,
  from name similarity (character n-grams), embedding similarity, the candidate's
  popularity as a base, same author, shared tags, same task/library and creation order.
  Its feature weights are learnt (logistic regression) from the known links at `fit`.

Both are fitted on `graph.retrieval_queries` frames (models + links) and the model vectors;
nothing here queries the graph, so the evaluation can fit them on training links only.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from analytics.embeddings import clean_tags, model_texts
from analytics.retrieval import HybridSearch, top_k

RECOMMENDER_FORMAT = 1


def _check_links(df: pd.DataFrame, cols: Sequence[str], name: str) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame) or any(c not in df for c in cols):
        raise TypeError(f"{name} must be a DataFrame with columns {list(cols)}")
    return df


def _index_links(ids_a: pd.Series, ids_b: pd.Series, row_of: dict, col_of: dict,
                 shape: tuple[int, int]) -> sparse.csr_matrix:
    a = ids_a.map(row_of)
    b = ids_b.map(col_of)
    ok = a.notna() & b.notna()
    a, b = a[ok].astype(np.int64).to_numpy(), b[ok].astype(np.int64).to_numpy()
    m = sparse.csr_matrix((np.ones(len(a), np.float32), (a, b)), shape=shape)
    m.data[:] = 1.0  # duplicates collapse to one link
    return m


class ModelRecommender(BaseEstimator):
    """Similar models, datasets to try and base models to start from.

    Parameters
    ----------
    n_neighbors : int, default=50
        Nearest models (combined score) whose datasets vote in `datasets_for_model`.
    w_text, w_lineage, w_datasets : float, default=1.0, 0.3, 0.5
        Weights of text cosine, lineage relation (parent/child 1, sibling 0.5) and dataset
        Jaccard in the similar-model score.
    w_task_prior : float, default=0.05
        Weight of "datasets popular with the model's task" in `datasets_for_model`.
    neighbor_power : float, default=3.0
        Neighbour votes are score**power (sharpens toward the closest models).
    growth_months : int, default=6
        Window of the recent-growth measure of `where_to_start`.
    random_state : int or None, default=0
        Seeds the index's principal-axis sample when the recommender fits its own index.

    Attributes
    ----------
    index_ : HybridSearch
    dataset_ids_ : ndarray of str
    links_ : csr_matrix (n_models, n_datasets), training Model→Dataset links
    parents_ : csr_matrix (n_models, n_models), child→parent lineage
    task_prior_ : dict task → ndarray (n_datasets,) in [0, 1]
    dataset_popularity_ : ndarray (n_datasets,), models per dataset
    """

    def __init__(self, *, n_neighbors: int = 50, w_text: float = 1.0, w_lineage: float = 0.3,
                 w_datasets: float = 0.5, w_task_prior: float = 0.05,
                 neighbor_power: float = 3.0, growth_months: int = 6, random_state=0):
        self.n_neighbors = n_neighbors
        self.w_text = w_text
        self.w_lineage = w_lineage
        self.w_datasets = w_datasets
        self.w_task_prior = w_task_prior
        self.neighbor_power = neighbor_power
        self.growth_months = growth_months
        self.random_state = random_state

    def fit(self, models: pd.DataFrame, vectors: np.ndarray, dataset_links: pd.DataFrame,
            lineage: pd.DataFrame, *, index: HybridSearch | None = None) -> "ModelRecommender":
        """Fit on a `model_text_frame`, its vectors, Model→Dataset links (model, dataset) and
        lineage links (child, parent, relation). A fitted `index` over the same rows is
        re-used (it must have been fitted on `models` in the same order)."""
        _check_links(dataset_links, ("model", "dataset"), "dataset_links")
        _check_links(lineage, ("child", "parent"), "lineage")
        if int(self.n_neighbors) < 1:
            raise ValueError(f"n_neighbors must be >= 1, got {self.n_neighbors!r}")
        if index is None:
            index = HybridSearch(random_state=self.random_state).fit(models, vectors)
        elif len(index.ids_) != len(models):
            raise ValueError("index was fitted on other models")
        self.index_ = index
        row_of = index.row_of_
        n = len(index.ids_)
        self.dataset_ids_ = np.array(sorted(set(dataset_links["dataset"].astype(str))), dtype=object)
        col_of = {d: i for i, d in enumerate(self.dataset_ids_)}
        self.links_ = _index_links(dataset_links["model"], dataset_links["dataset"], row_of,
                                   col_of, (n, len(self.dataset_ids_)))
        self.links_csc_ = self.links_.tocsc()
        self.parents_ = _index_links(lineage["child"], lineage["parent"], row_of, row_of, (n, n))
        self.children_ = self.parents_.T.tocsr()
        self.dataset_popularity_ = np.asarray(self.links_.sum(axis=0)).ravel()
        tasks = models["pipelineTag"].to_numpy() if "pipelineTag" in models else np.full(n, None)
        self.tasks_ = tasks
        self.task_prior_ = {}
        for task in pd.unique(tasks[pd.notna(tasks)]):
            counts = np.asarray(self.links_[np.flatnonzero(tasks == task)].sum(axis=0)).ravel()
            top = counts.max() if len(counts) else 0
            if top > 0:
                self.task_prior_[task] = (np.log1p(counts) / np.log1p(top)).astype(np.float32)
        glob = np.log1p(self.dataset_popularity_)
        self.global_prior_ = (glob / glob.max()).astype(np.float32) if glob.max() > 0 else glob
        self._fit_growth(models, lineage)
        return self

    def _fit_growth(self, models: pd.DataFrame, lineage: pd.DataFrame) -> None:
        created = pd.to_datetime(models["createdAt"] if "createdAt" in models else
                                 pd.Series([None] * len(models)), errors="coerce")
        info = pd.DataFrame({"id": models["id"].to_numpy(), "created": created.to_numpy(),
                             "task": models.get("pipelineTag"),
                             "downloads": models.get("downloads", 0)})
        rel = lineage["relation"] if "relation" in lineage else "unknown"
        edges = pd.DataFrame({"child": lineage["child"].to_numpy(),
                              "parent": lineage["parent"].to_numpy(), "relation": rel})
        edges = edges.merge(info.rename(columns={"id": "child", "created": "child_created",
                                                 "task": "child_task"})[
            ["child", "child_created", "child_task"]], on="child", how="left")
        self.as_of_ = edges["child_created"].max() if edges["child_created"].notna().any() \
            else pd.Timestamp.now()
        self.edges_ = edges
        self._model_info = info.set_index("id")
        own = edges.set_index("child")["relation"]
        # Models that are themselves quantisations or adapters are not places to start from.
        self.derived_kind_ = own[own.isin(["quantized", "adapter"])].groupby(level=0).size()

    @property
    def model_info_(self) -> pd.DataFrame:
        """id → created, task, downloads (rebuilt from the index's table after `load`)."""
        info = self.__dict__.get("_model_info")
        if info is None:
            t = self.index_.table_.select(["id", "createdAt", "pipelineTag", "downloads"])
            info = t.to_pandas().rename(columns={"createdAt": "created", "pipelineTag": "task"})
            info["created"] = pd.to_datetime(info["created"], errors="coerce")
            info = self._model_info = info.set_index("id")
        return info

    # -- persistence ---------------------------------------------------------------------
    def save(self, folder) -> Path:
        """Write the fitted state (not the index: save that with `HybridSearch.save`) to
        ``folder/recommender.pkl`` (links, lineage and task priors: a few MB) with a
        manifest; replaced atomically."""
        import json
        import os
        import pickle

        check_is_fitted(self, "index_")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v for k, v in self.__dict__.items() if k not in ("index_", "_model_info")}
        tmp = folder / f"recommender.pkl.tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            pickle.dump({"format": RECOMMENDER_FORMAT, "n_models": len(self.index_.ids_),
                         "state": state}, f, protocol=5)
        os.replace(tmp, folder / "recommender.pkl")
        (folder / "manifest.json").write_text(json.dumps(
            {"format": RECOMMENDER_FORMAT, "n_models": len(self.index_.ids_),
             "datasets": len(self.dataset_ids_)}))
        return folder

    @classmethod
    def load(cls, folder, index: HybridSearch) -> "ModelRecommender":
        """The state `save` wrote, over `index` (the saved index of the same generation)."""
        import pickle

        with open(Path(folder) / "recommender.pkl", "rb") as f:
            blob = pickle.load(f)  # our own file, written by `save` for this generation
        if blob.get("format") != RECOMMENDER_FORMAT or blob["n_models"] != len(index.ids_):
            raise ValueError(f"{folder}: recommender state of another format or index: rebuild")
        self = cls.__new__(cls)
        self.__dict__.update(blob["state"])
        self.index_ = index
        return self

    # -- helpers -------------------------------------------------------------------------
    def _row(self, model_id: str) -> int:
        check_is_fitted(self, "index_")
        try:
            return self.index_.row_of_[model_id]
        except KeyError:
            raise KeyError(f"unknown model {model_id!r}") from None

    def _relatives(self, r: int) -> dict[int, float]:
        rel: dict[int, float] = {}
        parents = self.parents_[r].indices
        for s in parents:
            sib = self.children_[s].indices
            if len(sib) > 200:  # a big family: siblings enter only via the dense search
                sib = sib[:0]
            for x in sib:
                rel[int(x)] = max(rel.get(int(x), 0.0), 0.5)
        for x in np.concatenate([parents, self.children_[r].indices[:500]]):
            rel[int(x)] = 1.0
        rel.pop(r, None)
        return rel

    def _scored_neighbours(self, r: int, n: int) -> pd.DataFrame:
        idx = self.index_
        qv = np.asarray(idx.vectors_[r], dtype=np.float32)
        d_rows, _ = idx.dense_candidates(qv, max(2 * n, 50), exclude=[r])
        rel = self._relatives(r)
        own = self.links_[r].indices
        shared = np.zeros(0, np.int64)
        if len(own):
            counts = np.asarray(self.links_csc_[:, own].sum(axis=1)).ravel()
            counts[r] = 0
            nz = np.flatnonzero(counts)
            if len(nz) > 2 * n:
                nz = nz[np.argpartition(-counts[nz], 2 * n - 1)[: 2 * n]]
            shared = nz
        cand = np.union1d(np.union1d(d_rows, np.fromiter(rel, np.int64, len(rel))), shared)
        cand = cand[cand != r]
        if not len(cand):
            return pd.DataFrame(columns=["row", "score", "text", "lineage", "datasets"])
        text = idx._exact(cand, qv)
        lin = np.array([rel.get(int(c), 0.0) for c in cand], np.float32)
        if len(self.parents_[r].indices):
            sib = np.asarray((self.parents_[cand] @ self.parents_[r].T).todense()).ravel() > 0
            lin = np.maximum(lin, np.where(sib, 0.5, 0.0)).astype(np.float32)
        if len(own):
            inter = np.asarray(self.links_csc_[:, own][cand].sum(axis=1)).ravel()
            size = np.diff(self.links_.indptr)[cand]
            jac = inter / np.maximum(size + len(own) - inter, 1)
        else:
            jac = np.zeros(len(cand))
        score = self.w_text * text + self.w_lineage * lin + self.w_datasets * jac
        out = pd.DataFrame({"row": cand, "score": score, "text": text, "lineage": lin,
                            "datasets": jac})
        return out.sort_values("score", ascending=False, kind="stable").head(n)

    # -- public --------------------------------------------------------------------------
    def similar_models(self, model_id: str, k: int = 10) -> pd.DataFrame:
        """Models like `model_id` (never itself): id, score, text, lineage, datasets, reason."""
        r = self._row(model_id)
        nb = self._scored_neighbours(r, int(k))
        ids = self.index_.ids_
        rows = nb["row"].to_numpy()
        out = nb.assign(id=ids[rows]).drop(columns="row").reset_index(drop=True)
        out["reason"] = [self._sim_reason(x) for x in out.itertuples()]
        props = self.index_.rows_frame(rows).drop(columns="id")
        return pd.concat([out[["id", "score", "text", "lineage", "datasets", "reason"]], props],
                         axis=1)

    @staticmethod
    def _sim_reason(x) -> str:
        parts = [f"text {x.text:.2f}"]
        if x.lineage >= 1:
            parts.append("direct lineage")
        elif x.lineage > 0:
            parts.append("same base model")
        if x.datasets > 0:
            parts.append(f"dataset overlap {x.datasets:.2f}")
        return " · ".join(parts)

    def dataset_scores(self, model_id: str, *, row_vector: np.ndarray | None = None
                       ) -> np.ndarray:
        """Score of every dataset for a model (known datasets not removed)."""
        r = self._row(model_id)
        nb = self._scored_neighbours(r, int(self.n_neighbors))
        w = np.maximum(nb["score"].to_numpy(np.float64), 0) ** self.neighbor_power
        votes = sparse.csr_matrix((w, (np.zeros(len(w), np.int64), nb["row"].to_numpy())),
                                  shape=(1, len(self.index_.ids_))) @ self.links_
        scores = np.asarray(votes.todense()).ravel()
        if scores.max() > 0:
            scores = scores / scores.max()
        prior = self.task_prior_.get(self.tasks_[r], self.global_prior_)
        # a whisper of global popularity orders the datasets no neighbour or task votes for
        return scores + self.w_task_prior * prior + 1e-3 * self.global_prior_

    def datasets_for_model(self, model_id: str, k: int = 10, *, exclude_known: bool = True
                           ) -> pd.DataFrame:
        """Datasets to try for a model: dataset, score, used_by (models like it), reason."""
        r = self._row(model_id)
        scores = self.dataset_scores(model_id)
        if exclude_known:
            scores[self.links_[r].indices] = -np.inf
        top = top_k(scores, k)
        nb = self._scored_neighbours(r, int(self.n_neighbors))
        nb_rows = nb["row"].to_numpy()
        rows = []
        for c in top:
            users = nb_rows[np.isin(nb_rows, self.links_csc_[:, c].indices)]
            names = [self.index_.ids_[u] for u in users[:3]]
            task = self.tasks_[r]
            reason = (f"used by {len(users)} of the {len(nb_rows)} most similar models"
                      + (f" (e.g. {', '.join(names)})" if names else "")
                      if len(users) else f"popular for task {task}" if isinstance(task, str)
                      and task else "popular across the Hub (the model has no task)")
            rows.append({"dataset": self.dataset_ids_[c], "score": float(scores[c]),
                         "used_by": int(len(users)), "models_total": int(self.dataset_popularity_[c]),
                         "reason": reason})
        return pd.DataFrame(rows, columns=["dataset", "score", "used_by", "models_total", "reason"])

    def datasets_for_task(self, task: str, k: int = 10) -> pd.DataFrame:
        """Datasets most used by models of `task`: dataset, models (of the task), score."""
        check_is_fitted(self, "index_")
        rows = np.flatnonzero(self.tasks_ == task)
        counts = np.asarray(self.links_[rows].sum(axis=0)).ravel() if len(rows) else \
            np.zeros(len(self.dataset_ids_))
        top = [c for c in top_k(counts, k) if counts[c] > 0]
        return pd.DataFrame({"dataset": self.dataset_ids_[top],
                             "models": counts[top].astype(int),
                             "score": self.task_prior_.get(task, counts)[top] if top else []})

    def where_to_start(self, task: str | None, k: int = 10, *, as_of=None) -> pd.DataFrame:
        """Base models for a task ranked by adoption and recent growth.

        Columns: id, derivatives (direct, any relation), derivatives_for_task (children with
        that task), recent_per_month (children in the last `growth_months` months / months),
        growth (recent monthly rate / lifetime monthly rate), score, downloads, reason.
        """
        check_is_fitted(self, "index_")
        as_of = pd.Timestamp(as_of) if as_of is not None else self.as_of_
        e = self.edges_
        info = self.model_info_
        ptask = e["parent"].map(info["task"])
        sel = e if task is None else e[(ptask == task) | (e["child_task"] == task)]
        sel = sel[~sel["parent"].isin(self.derived_kind_.index)]
        if sel.empty:
            return pd.DataFrame(columns=["id", "derivatives", "derivatives_for_task",
                                         "recent_per_month", "growth", "score", "downloads",
                                         "reason"])
        start = as_of - pd.DateOffset(months=int(self.growth_months))
        g = sel.assign(recent=(sel["child_created"] >= start) & (sel["child_created"] <= as_of),
                       for_task=(sel["child_task"] == task) if task else True)
        agg = g.groupby("parent").agg(derivatives=("child", "size"), recent=("recent", "sum"),
                                      derivatives_for_task=("for_task", "sum"))
        created = agg.index.map(info["created"]) if len(agg) else []
        age_m = ((as_of - pd.to_datetime(created)).days / 30.44).to_numpy(dtype=float)
        age_m = np.where(np.isfinite(age_m), np.maximum(age_m, 1.0), 36.0)
        agg["recent_per_month"] = agg["recent"] / float(self.growth_months)
        lifetime = agg["derivatives"] / age_m
        agg["growth"] = agg["recent_per_month"] / np.maximum(lifetime, 1e-9)
        a = np.log1p(agg["derivatives_for_task"].astype(float))
        gr = np.log1p(agg["recent_per_month"].astype(float))
        agg["score"] = 0.6 * a / max(a.max(), 1e-9) + 0.4 * gr / max(gr.max(), 1e-9)
        agg["downloads"] = agg.index.map(info["downloads"]).fillna(0).astype(np.int64) \
            if "downloads" in info else 0
        out = agg.sort_values(["score", "derivatives"], ascending=False).head(int(k))
        out = out.reset_index().rename(columns={"parent": "id"}).drop(columns="recent")
        out["reason"] = [f"{int(r.derivatives_for_task)} derivatives for the task, "
                         f"{r.recent_per_month:.1f}/month lately (×{r.growth:.1f} its average)"
                         for r in out.itertuples()]
        return out

# -- tracing ---------------------------------------------------------------------------------
_NAME_SEP = re.compile(r"[/_\-.\s]+")
#: feature names of `BaseModelTracer`, in the order of its weights
TRACE_FEATURES = ("name", "name_in_child", "text", "popularity", "same_author", "tags",
                  "same_task", "same_library", "created_before", "created_after",
                  "children_text", "author_affinity", "parameters")
_DEFAULT_W = np.array([3.0, 2.0, 3.0, 1.5, 0.5, 1.0, 0.5, 0.3, 0.2, -1.0, 3.0, 1.0, 1.0])
#: pools of candidate bases: models already used as bases (plus the most downloaded), or all
TRACER_POOLS = ("bases", "all")


def _norm_name(mid: str) -> str:
    name = mid.split("/", 1)[-1].lower()
    return " ".join(p for p in _NAME_SEP.split(name) if p)


def _log_parameters(models: pd.DataFrame, n: int) -> np.ndarray:
    if "parameters" not in models:
        return np.full(n, np.nan)
    p = pd.to_numeric(models["parameters"], errors="coerce").to_numpy(np.float64)
    return np.where(p > 0, np.log10(np.where(p > 0, p, 1.0)), np.nan)


class BaseModelTracer(BaseEstimator):
    """Rank candidate base models for a model whose base link is unknown.

    Candidates come from a pool: `pool="bases"` (default) holds every model with at least
    `min_children` known derivatives plus the `n_popular` most downloaded models; `pool="all"`
    holds every model of the graph (the real case: nothing says the base is a known base).
    For one child, the `n_candidates` best pool models by name similarity, by embedding
    similarity and by similarity to a base's known derivatives, the most adopted bases and the
    bases the child's author derived from before are scored with the features of
    `TRACE_FEATURES`: name similarity (character 3-grams) and containment, text cosine, the
    candidate's popularity as a base, same author, shared tags, task and library, creation
    order, how the candidate's known derivatives read, the author's habit of deriving from
    that candidate, and parameter-count closeness (safetensors/GGUF totals, where known).
    The weights are learnt at `fit` by logistic regression on up to `n_train` known
    child→parent links (leave-one-out: the link being learnt from counts toward neither its
    parent's popularity nor the author's habit).

    Parameters
    ----------
    n_candidates : int, default=300
    min_children : int, default=1
    n_popular : int, default=20000
    pool : {"bases", "all"}, default="bases"
    learn_weights : bool, default=True
        False: use fixed, hand-set weights.
    n_train : int, default=3000
    random_state : int, RandomState or None, default=0

    Attributes
    ----------
    pool_ : ndarray of int, candidate rows in the index
    pool_children_ : ndarray, known derivatives of each pool model
    kid_rows_ : ndarray of int, rows with at least one known derivative
    children_sum_ : ndarray (n_kid_rows, 384), sum of the vectors of each one's derivatives
    affinity_ : dict (row, author) → derivatives of that model by that author
    names_ : csr_matrix, character 3-gram TF-IDF of pool names
    weights_ : ndarray (len(TRACE_FEATURES),)
    """

    def __init__(self, *, n_candidates: int = 300, min_children: int = 1,
                 n_popular: int = 20_000, pool: str = "bases", learn_weights: bool = True,
                 n_train: int = 3000, random_state=0):
        self.n_candidates = n_candidates
        self.min_children = min_children
        self.n_popular = n_popular
        self.pool = pool
        self.learn_weights = learn_weights
        self.n_train = n_train
        self.random_state = random_state

    def fit(self, models: pd.DataFrame, vectors: np.ndarray, lineage: pd.DataFrame, *,
            index: HybridSearch | None = None, train_texts=None) -> "BaseModelTracer":
        """`train_texts(rows, parents)`, when given, rebuilds the texts the weights are learnt
        from (default: the rows' texts without their base links)."""
        _check_links(lineage, ("child", "parent"), "lineage")
        if self.pool not in TRACER_POOLS:
            raise ValueError(f"pool must be one of {TRACER_POOLS}, got {self.pool!r}")
        if index is None:
            index = HybridSearch(random_state=self.random_state).fit(models, vectors)
        elif len(index.ids_) != len(models):
            raise ValueError("index was fitted on other models")
        self.index_ = index
        models = models.reset_index(drop=True)
        row_of = index.row_of_
        n = len(models)
        child_rows = lineage["child"].map(row_of)
        parent_rows = lineage["parent"].map(row_of)
        ok = child_rows.notna() & parent_rows.notna() & (lineage["child"] != lineage["parent"])
        c_rows = child_rows[ok].astype(np.int64).to_numpy()
        p_rows = parent_rows[ok].astype(np.int64).to_numpy()
        n_children = np.bincount(p_rows, minlength=n)
        if self.pool == "all":
            pool = np.arange(n, dtype=np.int64)
        else:
            downloads = models["downloads"].to_numpy(np.float64) if "downloads" in models \
                else np.zeros(n)
            popular = np.argsort(-downloads, kind="stable")[: int(self.n_popular)]
            pool = np.union1d(np.flatnonzero(n_children >= int(self.min_children)), popular)
        self.pool_ = pool
        self.pool_pos_ = {int(r): i for i, r in enumerate(pool)}
        self.pos_of_row_ = np.full(n, -1, np.int64)
        self.pos_of_row_[pool] = np.arange(len(pool))
        self.children_all_ = n_children
        self.pool_children_ = n_children[pool]
        self.max_log_children_ = float(np.log1p(max(n_children.max(), 1))) if n else 1.0
        ids = index.ids_
        self.names_vec_ = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 3),
                                          sublinear_tf=True, dtype=np.float32)
        self.names_ = self.names_vec_.fit_transform([_norm_name(ids[r]) for r in pool]) \
            if len(pool) else sparse.csr_matrix((0, 0), dtype=np.float32)
        self.names_t_ = self.names_.T.tocsr()
        # What a base's known derivatives look like (sum of their vectors), and who made them:
        # people derive from the same bases again and again.
        self.kid_rows_ = np.flatnonzero(n_children >= 1)
        self.kid_pos_ = np.full(n, -1, np.int64)
        self.kid_pos_[self.kid_rows_] = np.arange(len(self.kid_rows_))
        self.children_sum_ = np.zeros((len(self.kid_rows_), index.vectors_.shape[1]),
                                      np.float32)
        order = np.argsort(c_rows, kind="stable")
        for s in range(0, len(order), 50_000):
            sel = order[s:s + 50_000]
            np.add.at(self.children_sum_, self.kid_pos_[p_rows[sel]],
                      np.asarray(index.vectors_[c_rows[sel]], np.float32))
        self.children_norm_ = np.maximum(np.linalg.norm(self.children_sum_, axis=1), 1e-9)
        self.authors_ = models["author"].fillna("").to_numpy(dtype=str) if "author" in models \
            else np.array([i.split("/")[0] for i in ids])
        self.affinity_ = pd.Series(1, index=pd.MultiIndex.from_arrays(
            [p_rows, self.authors_[c_rows]])).groupby(level=[0, 1]).sum().to_dict() \
            if len(p_rows) else {}
        bases_of_author: dict[str, set] = {}
        for (r, a) in self.affinity_:
            bases_of_author.setdefault(a, set()).add(int(r))
        self.author_bases_ = {a: np.array(sorted(v), np.int64) for a, v in
                              bases_of_author.items()}
        self.tags_ = models["tags"].to_numpy() if "tags" in models else np.full(n, None)
        self.tasks_ = models["pipelineTag"].to_numpy() if "pipelineTag" in models \
            else np.full(n, None)
        self.libs_ = models["libraryName"].to_numpy() if "libraryName" in models \
            else np.full(n, None)
        self.created_ = pd.to_datetime(models["createdAt"], errors="coerce").to_numpy(
            "datetime64[ns]") if "createdAt" in models else np.full(n, np.datetime64("NaT"))
        self.pool_vectors_ = np.asarray(index.vectors_[pool], np.float32) \
            if self.pool == "bases" else None
        self.log_params_ = _log_parameters(models, n)
        self.top_bases_ = np.argsort(-n_children, kind="stable")[:50]
        self.models_ = models
        self.weights_ = _DEFAULT_W.copy()
        self.intercept_ = 0.0
        if self.learn_weights and len(c_rows):
            self._learn(c_rows, p_rows, train_texts)
        return self

    def _learn(self, c_rows: np.ndarray, p_rows: np.ndarray, train_texts=None) -> None:
        rng = check_random_state(self.random_state)
        take = rng.choice(len(c_rows), min(int(self.n_train), len(c_rows)), replace=False)
        # The stored vectors of known children were embedded from texts that name their
        # base; learn from vectors of the same texts without it, as a model to trace has.
        rows = self.models_.iloc[c_rows[take]].copy()
        if train_texts is not None:
            parents = [[self.index_.ids_[p] for p in p_rows[c_rows == c]] for c in c_rows[take]]
            texts = train_texts(rows, parents)
        else:
            rows["bases"] = [[] for _ in range(len(rows))]
            rows["base_relations"] = [[] for _ in range(len(rows))]
            texts = model_texts(rows)
        vecs = self.index_._encoder().encode(texts)
        X, y = [], []
        for j, i in enumerate(take):
            c, p = int(c_rows[i]), int(p_rows[i])
            cand, feats = self._features(c, vecs[j], loo_parent=p)
            if not len(cand):
                continue
            # every candidate that is a known parent of c is a positive
            label = np.isin(cand, p_rows[c_rows == c])
            if not label.any():
                continue
            X.append(feats)
            y.append(label)
        if not X:
            return
        X, y = np.vstack(X), np.concatenate(y)
        lr = LogisticRegression(C=1.0, max_iter=500, class_weight="balanced")
        lr.fit(X, y)
        self.weights_ = lr.coef_.ravel()
        self.intercept_ = float(lr.intercept_[0])

    def _candidates(self, c: int, vec: np.ndarray, name_q, author: str) -> np.ndarray:
        """Candidate rows for child row `c` (-1: not in the index)."""
        m = min(int(self.n_candidates), len(self.pool_))
        if not m:
            return np.zeros(0, np.int64)
        picks = [self.top_bases_]
        if name_q.nnz:
            name_sim = np.asarray((name_q @ self.names_t_).todense()).ravel()
            picks.append(self.pool_[np.argpartition(-name_sim, m - 1)[:m]])
        if self.pool == "all":
            rows, _ = self.index_.dense_candidates(vec, m, exclude=[c] if c >= 0 else ())
            picks.append(rows)
        else:
            text_sim = self.pool_vectors_ @ vec
            picks.append(self.pool_[np.argpartition(-text_sim, m - 1)[:m]])
        if len(self.kid_rows_):
            kids_sim = (self.children_sum_ @ vec) / self.children_norm_
            mk = min(m, len(self.kid_rows_))
            picks.append(self.kid_rows_[np.argpartition(-kids_sim, mk - 1)[:mk]])
        habit = self.author_bases_.get(author)
        if habit is not None:
            picks.append(habit[:m])
        cand = np.unique(np.concatenate(picks))
        cand = cand[self.pos_of_row_[cand] >= 0]
        return cand[cand != c]

    def _features(self, c: int, vec: np.ndarray, *, loo_parent: int | None = None,
                  child_id: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        ids = self.index_.ids_
        child_id = child_id or ids[c]
        name_q = self.names_vec_.transform([_norm_name(child_id)])
        author = self.authors_[c] if c >= 0 else child_id.split("/")[0]
        cand = self._candidates(c, np.asarray(vec, np.float32), name_q, author)
        if not len(cand):
            return cand, np.zeros((0, len(TRACE_FEATURES)))
        pos = self.pos_of_row_[cand]
        name_sim = np.asarray((self.names_[pos] @ name_q.T).todense()).ravel() if name_q.nnz \
            else np.zeros(len(cand))
        text_sim = self.index_._exact(cand, vec)
        children = self.children_all_[cand].astype(np.float64)
        if loo_parent is not None:
            children = children - (cand == loo_parent)
        pop = np.log1p(np.maximum(children, 0)) / self.max_log_children_
        child_name = _norm_name(child_id)
        in_child = np.array([1.0 if nm and nm in child_name else 0.0
                             for nm in (_norm_name(ids[r]) for r in cand)])
        same_author = (self.authors_[cand] == author).astype(float)
        ctags = set(clean_tags(self.tags_[c])) if c >= 0 else set()
        tag_j = np.array([_jaccard(ctags, set(clean_tags(self.tags_[r]))) for r in cand])
        same_task = np.array([float(c >= 0 and self.tasks_[r] is not None and
                                    self.tasks_[r] == self.tasks_[c]) for r in cand])
        same_lib = np.array([float(c >= 0 and self.libs_[r] is not None and
                                   self.libs_[r] == self.libs_[c]) for r in cand])
        cc = self.created_[c] if c >= 0 else np.datetime64("NaT")
        pc = self.created_[cand]
        known = ~np.isnat(pc) & ~np.isnat(cc)
        before = (known & (pc <= cc)).astype(float)
        after = (known & (pc > cc)).astype(float)
        kpos = self.kid_pos_[cand]
        kids = np.zeros(len(cand))
        has = kpos >= 0
        kids[has] = (self.children_sum_[kpos[has]] @ vec) / self.children_norm_[kpos[has]]
        aff = np.array([self.affinity_.get((int(r), author), 0) for r in cand], float)
        if loo_parent is not None:  # learning from a known link: leave that link out
            j = np.flatnonzero(cand == loo_parent)
            if len(j) and kpos[j[0]] >= 0:
                rest = self.children_sum_[kpos[j[0]]] - np.asarray(self.index_.vectors_[c],
                                                                    np.float32)
                nr = np.linalg.norm(rest)
                kids[j[0]] = float(rest @ vec / nr) if nr > 1e-6 else 0.0
            if len(j):
                aff[j[0]] = max(aff[j[0]] - 1, 0)
        lp = self.log_params_[c] if c >= 0 else np.nan
        diff = np.abs(self.log_params_[cand] - lp)
        params = np.where(np.isnan(diff), 0.0, np.clip(1.0 - diff, -1.0, 1.0))
        feats = np.column_stack([name_sim, in_child, text_sim, pop, same_author, tag_j,
                                 same_task, same_lib, before, after, kids, np.log1p(aff),
                                 params])
        return cand, feats

    def rank(self, model_id: str, k: int = 10, *, vector: np.ndarray | None = None,
             exclude: Sequence[str] = ()) -> pd.DataFrame:
        """Candidate base models for `model_id`, best first: id, score, features, reason.

        `vector` replaces the model's stored vector (e.g. one embedded without its base)."""
        check_is_fitted(self, "weights_")
        c = self.index_.row_of_.get(model_id, -1)
        if c < 0 and vector is None:
            raise KeyError(f"unknown model {model_id!r}: pass its vector")
        vec = np.asarray(vector if vector is not None else self.index_.vectors_[c], np.float32)
        cand, feats = self._features(c, vec, child_id=model_id)
        scores = feats @ self.weights_ + self.intercept_
        out = pd.DataFrame(feats, columns=list(TRACE_FEATURES))
        out.insert(0, "id", self.index_.ids_[cand])
        out.insert(1, "score", scores)
        if exclude:
            out = out[~out["id"].isin(set(exclude))]
        out = out.sort_values("score", ascending=False, kind="stable").head(int(k))
        out["reason"] = [
            " · ".join(p for p in (
                f"name {r.name:.2f}", "name inside child's" if r.name_in_child else "",
                f"text {r.text:.2f}", "same author" if r.same_author else "",
                f"popularity as a base {r.popularity:.2f}",
                "author derived from it before" if r.author_affinity > 0 else "",
                "same size" if r.parameters > 0.9 else "") if p)
            for r in out.itertuples()]
        return out.reset_index(drop=True)

    def rank_rows(self, c: int, vec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(candidate rows, scores) for index row `c` (evaluation fast path)."""
        cand, feats = self._features(c, vec)
        return cand, feats @ self.weights_ + self.intercept_


def scrub_base_mentions(rows: pd.DataFrame, parents: Sequence[Sequence[str]]) -> pd.DataFrame:
    """`rows` as models that never declared a base: `bases`/`base_relations` emptied,
    `base_model:` tags and tags naming a parent dropped, and every mention of a parent (its
    Hub URL, its id, its name when 4+ characters) cut from the card text."""
    out = rows.copy()
    out["bases"] = [[] for _ in range(len(out))]
    out["base_relations"] = [[] for _ in range(len(out))]
    cards, tags = [], []
    for card, tag_list, names in zip(out["cardText"] if "cardText" in out else [None] * len(out),
                                     out["tags"] if "tags" in out else [None] * len(out),
                                     parents):
        ids = [str(p) for p in names]
        keys = {i.lower() for i in ids} | {i.split("/", 1)[-1].lower() for i in ids}
        kept = [t for t in (tag_list if tag_list is not None else [])
                if not str(t).startswith("base_model:")
                and not any(k in str(t).lower() for k in keys)]
        tags.append(kept)
        if isinstance(card, str) and card and ids:
            alts = sorted({re.escape(i) for i in ids}
                          | {re.escape(i.split("/", 1)[-1]) for i in ids
                             if len(i.split("/", 1)[-1]) >= 4}, key=len, reverse=True)
            pattern = re.compile(r"(?:https?://(?:www\.)?(?:huggingface\.co|hf\.co)/)?(?:"
                                 + "|".join(alts) + r")", re.I)
            card = pattern.sub(" ", card)
        cards.append(card)
    if "cardText" in out:
        out["cardText"] = cards
    if "tags" in out:
        out["tags"] = tags
    return out


def scrubbed_texts(rows: pd.DataFrame, parents: Sequence[Sequence[str]]) -> list[str]:
    """The embedding texts of `rows` after `scrub_base_mentions`."""
    return model_texts(scrub_base_mentions(rows, parents))


def _jaccard(a: set, b: set) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


# -- building from the graph -----------------------------------------------------------------
def build_recommender(search: HybridSearch, store=None, *, root=None, save_to=None,
                      **params) -> ModelRecommender:
    """Batch builder: a `ModelRecommender` over the graph's links, sharing a fitted
    `build_search` index (and saved to `save_to` when given)."""
    from graph import retrieval_queries as rq
    from graph.store import store_or_open

    with store_or_open(store, root=root) as store:
        ds, lin = rq.model_dataset_links(store), rq.lineage_links(store)
    rec = ModelRecommender(**params).fit(search.models_frame_, search.vectors_, ds, lin,
                                         index=search)
    if save_to is not None:
        rec.save(save_to)
    return rec


def open_recommender(search: HybridSearch, store=None, *, root=None) -> ModelRecommender:
    """The current generation's saved recommender (``<generation>/results/recommender``) if
    it matches `search`, else a fresh `build_recommender`, saved for next time."""
    from analytics.retrieval import search_folder

    folder = search_folder(root)
    folder = folder.parent / "recommender" if folder is not None else None
    if folder is not None and (folder / "recommender.pkl").exists():
        try:
            return ModelRecommender.load(folder, search)
        except (ValueError, OSError, EOFError, KeyError):
            pass  # another format or index: rebuild below
    rec = build_recommender(search, store, root=root)
    if folder is not None:
        try:
            rec.save(folder)
        except OSError:
            pass
    return rec


def build_tracer(search: HybridSearch, store=None, *, root=None, **params) -> BaseModelTracer:
    """A `BaseModelTracer` learnt from the graph's lineage links, sharing the index."""
    from graph import retrieval_queries as rq
    from graph.store import store_or_open

    with store_or_open(store, root=root) as store:
        lin = rq.lineage_links(store)
    return BaseModelTracer(**params).fit(search.models_frame_, search.vectors_, lin, index=search)


def trace_unlinked(tracer: BaseModelTracer, model_id: str, k: int = 10) -> pd.DataFrame:
    """Rank base models for `model_id` as if its base were unknown: its text is rebuilt
    without base links and re-embedded, and its known parents are not excluded."""
    frame = tracer.models_
    row = frame[frame["id"] == model_id]
    if row.empty:
        raise KeyError(f"unknown model {model_id!r}")
    row = row.copy()
    row["bases"] = [[]]
    row["base_relations"] = [[]]
    vec = tracer.index_._encoder().encode(model_texts(row))[0]
    return tracer.rank(model_id, k=k, vector=vec)
