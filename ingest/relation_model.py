"""The learnt relation typing of `base_model` links, and its use at ingest.

`RelationTyper` is a scikit-learn style estimator over link frames (`ingest.relation_features`):
gradient-boosted trees (scikit-learn's `HistGradientBoostingClassifier`) on the token and
numeric features. After `fit` the trees are exported to plain arrays, and every prediction runs
on those arrays with numpy, so the model shipped in the repository (`relation_model.json`, a few
hundred kB, written by `python -m ingest.relation_train`) predicts exactly what the fitted
estimator did, without pickles.

`retype_links(models)` is the ingest step: every link whose relation the Hub did not record
(`inferred=True`) gets the learnt type; recorded relations (API, typed tags, the card's
`base_model_relation`) and card sentences that state the relation are left alone.
"""
from __future__ import annotations

import json
import logging
import os
import pickle
import select
import signal
import time
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ingest.cards import DEFINITE_PATTERNS
from ingest.records import ModelRecord
from ingest.relation_features import (
    NUMERIC_COLUMNS,
    RELATION_CLASSES,
    author_habits,
    build_vocabulary,
    feature_matrix,
    link_frame,
    link_tokens,
    model_frame,
)

logger = logging.getLogger(__name__)

MODEL_PATH = Path(__file__).with_name("relation_model.json")
FORMAT_VERSION = 1


class RelationTyper:
    """Predict finetune / adapter / quantized / merge for child → parent links.

    `fit(links, y, groups=…, habits=…)`: `links` a link frame, `y` the relation per link,
    `groups` the family of each link (tokens seen in fewer than `min_groups` families are left
    out of the vocabulary), `habits` the authors' habits (`author_habits`). Classes are
    weighted by frequency^-`class_weight_power`. `use_files=False` leaves the repo's file
    kinds out: in today's typed data only finetunes come with file lists (the 2025 crawl
    followed finetune children), so file features would learn where a record was crawled,
    not what it is; the Hub's own format tags (`gguf`, `4-bit`, `peft`…) carry the formats.
    """

    def __init__(self, *, learning_rate: float = 0.1, max_iter: int = 150,
                 max_leaf_nodes: int = 15, min_samples_leaf: int = 20,
                 l2_regularization: float = 1.0, class_weight_power: float = 0.5,
                 min_count: int = 3, min_groups: int = 2, use_files: bool = False,
                 random_state: int | None = 0):
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.class_weight_power = class_weight_power
        self.min_count = min_count
        self.min_groups = min_groups
        self.use_files = use_files
        self.random_state = random_state

    def get_params(self, deep: bool = True) -> dict:
        return {k: getattr(self, k) for k in (
            "learning_rate", "max_iter", "max_leaf_nodes", "min_samples_leaf",
            "l2_regularization", "class_weight_power", "min_count", "min_groups", "use_files",
            "random_state")}

    def set_params(self, **params) -> "RelationTyper":
        for k, v in params.items():
            if k not in self.get_params():
                raise ValueError(f"unknown parameter {k!r}")
            setattr(self, k, v)
        return self

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, links: pd.DataFrame, y: Sequence[str], *, groups: Sequence | None = None,
            habits: pd.DataFrame | None = None) -> "RelationTyper":
        from sklearn.ensemble import HistGradientBoostingClassifier
        from threadpoolctl import threadpool_limits

        y = np.asarray(y, dtype=object)
        if len(links) != len(y):
            raise ValueError(f"{len(links)} links but {len(y)} labels")
        if len(y) == 0:
            raise ValueError("no links to learn from")
        unknown = sorted(set(y) - set(RELATION_CLASSES))
        if unknown:
            raise ValueError(f"unknown relations {unknown}; expected {RELATION_CLASSES}")
        if self.max_iter < 1 or self.learning_rate <= 0:
            raise ValueError("max_iter must be >= 1 and learning_rate > 0")
        links = links.reset_index(drop=True)
        groups = np.asarray(groups if groups is not None else np.zeros(len(y)))
        tokens = link_tokens(links)
        min_groups = min(self.min_groups, len(set(groups.tolist())))
        self.vocabulary_ = build_vocabulary(
            tokens, groups, min_count=self.min_count, min_groups=min_groups,
            exclude_prefixes=() if self.use_files else ("f:",))
        X = feature_matrix(links, self.vocabulary_, habits, use_files=self.use_files)
        counts = pd.Series(y).value_counts()
        weights = pd.Series(y).map(counts.astype(float) ** -self.class_weight_power).to_numpy()
        clf = HistGradientBoostingClassifier(
            learning_rate=self.learning_rate, max_iter=self.max_iter,
            max_leaf_nodes=self.max_leaf_nodes, min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization, early_stopping=False,
            random_state=self.random_state)
        with threadpool_limits(1, user_api="openmp"):  # see analytics.growth.pooled: one
            clf.fit(X, y, sample_weight=weights / weights.mean())  # thread, not spin-waits
        self.classes_ = np.asarray(clf.classes_, dtype=object)
        self.n_features_in_ = X.shape[1]
        self.trees_ = _export_trees(clf)
        self._compact()
        self.baseline_ = np.asarray(clf._baseline_prediction, float).reshape(-1)
        if len(self.classes_) == 2:  # binary: one tree per iteration, logit of classes_[1]
            self.baseline_ = self.baseline_[:1]
        return self

    def _compact(self) -> None:
        """`columns_`: the features some split reads (the shipped model: 81 of 517), and the
        trees over those columns only: predicting builds and scans nothing else."""
        self.columns_ = np.unique(np.concatenate(
            [t["feature"][t["feature"] >= 0] for t in self.trees_] or [np.zeros(0, np.int64)]))
        at = np.full(self.n_features_in_, -1, np.int64)
        at[self.columns_] = np.arange(len(self.columns_))
        self._trees = [{**t, "feature": np.where(t["feature"] >= 0, at[t["feature"]], -1)}
                       for t in self.trees_]

    # -- predicting ----------------------------------------------------------------------------
    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Raw scores per class for a feature matrix (`feature_matrix` with `vocabulary_`);
        each distinct row is scored once (links of one family often share every feature)."""
        return self._compact_decision(np.asarray(X)[:, self.columns_])

    def _compact_decision(self, X: np.ndarray) -> np.ndarray:
        """`decision_function` of a matrix of the `columns_` only."""
        X = np.ascontiguousarray(X)
        if X.shape[0] > 1:
            first, inverse = _distinct_rows(X)
            if len(first) < X.shape[0]:
                return self._decision(X[first])[inverse]
        return self._decision(X)

    def _decision(self, X: np.ndarray) -> np.ndarray:
        n = X.shape[0]
        raw = np.tile(self.baseline_, (n, 1))
        columns = np.asfortranarray(X)  # a split reads one feature of many rows
        for tree in self._trees:
            raw[:, tree["class"]] += _tree_values(tree, columns)
        if len(self.classes_) == 2:
            raw = np.column_stack([np.zeros(n), raw[:, 0]])
        return raw

    def predict_proba(self, links: pd.DataFrame, habits: pd.DataFrame | None = None,
                      *, chunk: int = 65_536) -> np.ndarray:
        """Class probabilities (columns in `classes_` order) for every link."""
        out = []
        links = links.reset_index(drop=True)
        for start in range(0, len(links), chunk):
            part = links.iloc[start:start + chunk].reset_index(drop=True)
            raw = self._compact_decision(feature_matrix(
                part, self.vocabulary_, habits, use_files=self.use_files, columns=self.columns_))
            raw -= raw.max(axis=1, keepdims=True)
            e = np.exp(raw)
            out.append(e / e.sum(axis=1, keepdims=True))
        return np.vstack(out) if out else np.zeros((0, len(self.classes_)))

    def predict(self, links: pd.DataFrame, habits: pd.DataFrame | None = None) -> np.ndarray:
        proba = self.predict_proba(links, habits)
        return self.classes_[proba.argmax(axis=1)] if len(proba) else np.array([], object)

    # -- persistence ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": FORMAT_VERSION, "params": self.get_params(),
                "classes": list(self.classes_), "vocabulary": list(self.vocabulary_),
                "numeric": list(NUMERIC_COLUMNS), "baseline": [round(v, 6) for v in self.baseline_],
                "trees": [{"class": t["class"], "feature": t["feature"].tolist(),
                           "threshold": [round(float(v), 4) for v in t["threshold"]],
                           "left": t["left"].tolist(), "right": t["right"].tolist(),
                           "value": [round(float(v), 5) for v in t["value"]]}
                          for t in self.trees_]}

    @classmethod
    def from_dict(cls, data: dict) -> "RelationTyper":
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(f"relation model format {data.get('format')!r}, "
                             f"expected {FORMAT_VERSION}")
        if list(data["numeric"]) != list(NUMERIC_COLUMNS):
            raise ValueError("relation model was trained on other numeric features; retrain it "
                             "with python -m ingest.relation_train")
        self = cls(**{k: v for k, v in data["params"].items() if k in cls().get_params()})
        self.classes_ = np.asarray(data["classes"], dtype=object)
        self.vocabulary_ = list(data["vocabulary"])
        self.n_features_in_ = len(self.vocabulary_) + len(NUMERIC_COLUMNS)
        self.baseline_ = np.asarray(data["baseline"], float)
        self.trees_ = [{"class": int(t["class"]), "feature": np.asarray(t["feature"], np.int64),
                        "threshold": np.asarray(t["threshold"], np.float64),
                        "left": np.asarray(t["left"], np.int64),
                        "right": np.asarray(t["right"], np.int64),
                        "value": np.asarray(t["value"], np.float64)} for t in data["trees"]]
        self._compact()
        return self

    def save(self, path: Path | str) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), separators=(",", ":")), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path | str = MODEL_PATH) -> "RelationTyper":
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def _export_trees(clf) -> list[dict]:
    """HistGradientBoosting predictors → arrays; leaves have left == right == -1."""
    trees = []
    for iteration in clf._predictors:
        for k, predictor in enumerate(iteration):
            nodes = predictor.nodes
            leaf = nodes["is_leaf"].astype(bool)
            if nodes["is_categorical"].any():
                raise ValueError("categorical splits are not exported")
            trees.append({"class": k,
                          "feature": np.where(leaf, -1, nodes["feature_idx"].astype(np.int64)),
                          "threshold": nodes["num_threshold"].astype(np.float64),
                          "left": np.where(leaf, -1, nodes["left"].astype(np.int64)),
                          "right": np.where(leaf, -1, nodes["right"].astype(np.int64)),
                          "value": nodes["value"].astype(np.float64)})
    return trees


def _tree_values(tree: dict, X: np.ndarray) -> np.ndarray:
    """Leaf value of every row (no NaNs in X): the rows are split node by node, so each
    split compares one column (fast when X is column-major) of the rows that reach it."""
    feature, threshold = tree["feature"], tree["threshold"]
    left, right, value = tree["left"], tree["right"], tree["value"]
    out = np.empty(X.shape[0])
    todo = [(0, np.arange(X.shape[0]))]
    while todo:
        node, rows = todo.pop()
        if left[node] < 0:
            out[rows] = value[node]
            continue
        go_left = X[rows, feature[node]] <= threshold[node]
        todo += [(left[node], rows[go_left]), (right[node], rows[~go_left])]
    return out


def _distinct_rows(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first, inverse): one row index per distinct row of X, and each row's distinct row,
    as np.unique gives them. Rows are grouped by a random projection, then checked equal
    to their group's first row (np.unique over the raw bytes when a projection collides)."""
    weights = np.random.default_rng(0).random(X.shape[1])
    key = np.concatenate([X[i:i + 8192].astype(np.float64) @ weights  # (a bounded copy)
                          for i in range(0, len(X), 8192)])
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    if not np.array_equal(X[first][inverse], X):
        rows = X.view(np.dtype((np.void, X.shape[1] * X.itemsize))).ravel()
        _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
        inverse = inverse.ravel()
    return first, inverse


class AuthorHistory:
    """The graph's models of every author an incremental run meets, fetched once per author
    per run, so a batch's links are typed with each author's whole history (a batch alone
    sees a sliver of it)."""

    def __init__(self, store) -> None:
        self.store = store
        self._known: dict[str, pd.DataFrame] = {}
        self._fetched: set[str] = set()

    def habits(self, models: Sequence[ModelRecord]) -> pd.DataFrame:
        from graph import queries as q

        authors = {m.author for m in models if m.author}
        new = sorted(authors - self._fetched)
        if new:
            rows = q.models_of_authors(self.store, new)
            for author, group in rows.groupby("author", sort=False):
                self._known[author] = group[["id", "author", "tags", "library"]]
            self._fetched.update(new)
        batch = model_frame(models)
        known = [self._known[a] for a in authors if a in self._known]
        if known:
            history = pd.concat(known, ignore_index=True)
            history = history[~history["id"].isin(set(batch["id"]))]
            batch = pd.concat([history, batch], ignore_index=True)
        for author, group in batch.groupby("author", sort=False):  # remembered for later batches
            self._known[author] = group
        return author_habits(batch)


def author_habits_for(store, models: Sequence[ModelRecord]) -> pd.DataFrame:
    """Habits of the authors of `models` from every model of theirs in the graph plus these
    records (one-off; an ingest run keeps an `AuthorHistory`)."""
    return AuthorHistory(store).habits(models)


@lru_cache(maxsize=1)
def shipped_typer() -> RelationTyper | None:
    """The model in the repository, or None (logged) when it is missing or unreadable."""
    try:
        return RelationTyper.load(MODEL_PATH)
    except (OSError, ValueError, KeyError) as e:
        logger.warning("relation model %s unusable (%s); relation types fall back to rules",
                       MODEL_PATH, e)
        return None


def _retypable(link) -> bool:
    return link.inferred and not (link.source == "card_text" and link.pattern in DEFINITE_PATTERNS)


def retype_links(models: Sequence[ModelRecord], *, typer: RelationTyper | None = None,
                 habits: pd.DataFrame | Callable[[], pd.DataFrame] | None = None) -> int:
    """Give every inferred link of `models` the learnt relation (in place); returns how many
    links were typed. `habits`: the authors' habits (or a function computing them, called
    only when there is a link to type); default: over these very records."""
    typer = typer or shipped_typer()
    if typer is None or not models:
        return 0
    if not any(_retypable(b) for r in models for b in r.base_models):
        return 0
    links = link_frame(models)
    links = links[[_retypable(models[r].base_models[i])
                   for r, i in zip(links["record"], links["index"])]].reset_index(drop=True)
    if links.empty:
        return 0
    if habits is None:
        habits = author_habits(model_frame(models))
    elif callable(habits):
        habits = habits()
    predicted = typer.predict(links, habits)
    by_record: dict[int, dict[int, str]] = {}
    for rec, idx, rel in zip(links["record"].to_numpy(), links["index"].to_numpy(), predicted):
        by_record.setdefault(int(rec), {})[int(idx)] = str(rel)
    for rec, changes in by_record.items():
        record = models[rec]
        record.base_models = tuple(replace(b, relation=changes[i]) if i in changes else b
                                   for i, b in enumerate(record.base_models))
    return len(predicted)


#: the longest a first load waits for the typing child (the full snapshot takes minutes)
CHILD_TIMEOUT_S = 1800.0


def type_links(links: pd.DataFrame, habits: pd.DataFrame) -> np.ndarray | None:
    """The learnt relation of every link of a link frame (`link_frame`'s columns), or None
    without a model."""
    typer = shipped_typer()
    if typer is None or links.empty:
        return None
    return typer.predict(links, habits)


class ChildTyping:
    """`retype_links` running in a forked child process (see `retype_in_child`); `extra`: the
    learnt relations of the extra link frame, once `wait()` has returned True (None: none)."""

    def __init__(self, models: Sequence[ModelRecord], pid: int, fd: int):
        self.models, self.pid, self.fd = models, pid, fd
        self.extra: np.ndarray | None = None

    def wait(self, timeout_s: float = CHILD_TIMEOUT_S) -> bool:
        """Wait for the child and give the models its relations; False when it failed or
        took longer than `timeout_s` (it is killed; the models are then as they were)."""
        deadline = time.monotonic() + timeout_s
        chunks = []
        with os.fdopen(self.fd, "rb", buffering=0) as fh:
            while True:
                ready, _, _ = select.select([fh], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:  # hung (a lock held at fork time, say): type in the parent
                    os.kill(self.pid, signal.SIGKILL)
                    os.waitpid(self.pid, 0)
                    logger.warning("relation typing in a child process timed out")
                    return False
                chunk = fh.read(1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
        data = b"".join(chunks)
        _, status = os.waitpid(self.pid, 0)
        if status != 0 or not data:
            logger.warning("relation typing in a child process failed (status %s)", status)
            return False
        typed, self.extra = pickle.loads(data)
        for i, relations in typed:
            record = self.models[i]
            record.base_models = tuple(b if b.relation == rel else replace(b, relation=rel)
                                       for b, rel in zip(record.base_models, relations))
        return True


def retype_in_child(models: Sequence[ModelRecord], habits: Callable[[], pd.DataFrame],
                    extra: Callable[[], pd.DataFrame] | None = None) -> ChildTyping | None:
    """Start `retype_links(models, habits=habits)` in a forked child (the other core), and
    `type_links` of the link frame `extra()` (links that are not in records: a first load's
    plain rows), or None where processes cannot fork. `wait()` applies its result to
    `models` and keeps the extra links' relations."""
    if not hasattr(os, "fork") or (extra is None and not any(
            _retypable(b) for r in models for b in r.base_models)):
        return None
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: type, send each record's relations, exit without cleanup
        status = 1
        try:
            os.close(read)
            known = lru_cache(maxsize=1)(habits)  # computed once for both
            retype_links(models, habits=known)
            out = [(i, tuple(b.relation for b in r.base_models)) for i, r in enumerate(models)
                   if any(b.inferred for b in r.base_models)]
            more = type_links(extra(), known()) if extra is not None else None
            with os.fdopen(write, "wb") as fh:
                fh.write(pickle.dumps((out, more), protocol=pickle.HIGHEST_PROTOCOL))
            status = 0
        finally:
            os._exit(status)
    os.close(write)
    return ChildTyping(models, pid, read)
