"""Evaluation of search, recommendation and tracing: `python -m analytics.evaluate`.

* **search relevance** (`analytics.search_relevance`): queries with the models a Hub user
  would accept (known items, families, tasks, intents, nonsense), success@1/5/10 and MRR@10
  per query type for the current ranking, the previous one and simple baselines, on the part
  the ranking was tuned on and on a held-out part. Uses the generation's saved search index
  (or builds it from the vector cache).

Then two tasks on links held out of the graph, after HuggingBench (on HuggingKG):

* **dataset recommendation** — hold out a seeded sample of Model→Dataset (TRAINED_ON) links;
  for each model with a held-out link, rank every dataset that has a training link, with the
  model's remaining (training) datasets excluded; Recall@k and NDCG@k per model, averaged.
* **model tracing** — hold out a seeded sample of child→parent lineage links (both ends real
  models); rank base-model candidates for each child, the child's other known parents
  filtered out; MRR and Hits@1/10 per held-out link (a true parent missing from the ranked
  candidates counts as a miss, reciprocal rank 0).
* **model tracing, hard** — the real case of a model that declares no base: every link of
  the held-out children is removed (not only the held-out one), their texts are rebuilt
  without any base, `base_model:` tags, or mention of a parent (id, URL, name) in the card,
  and the tracer ranks every model of the graph (`pool="all"`), from what survives: the
  name, the author's habits, tags, task, library, parameter counts where known, creation
  order and the scrubbed text. Its weights are learnt on training links with their texts
  scrubbed the same way.

Everything is refitted without the held-out links: the model texts (and so the vectors) of
affected models are rebuilt from training links only and re-embedded in memory (the vector
cache supplies every unchanged text), and popularity counts use training links only.
Baselines in the same table: popularity (datasets by number of training models; bases by
number of training derivatives) and random (seeded).

Differences from HuggingBench's protocol: HuggingBench splits user→resource interactions
8:1:1 over its own KG (HuggingKG, 2025 crawl) and ranks all entities of the type; here a
sample (default 2,000 links) of the July-2024 snapshot is held out, and ranking covers
datasets with at least one training link and, for tracing, models with a known derivative or
among the 20,000 most downloaded (the method's candidate pool). The numbers are therefore
comparable in spirit, not to the decimal.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time

import numpy as np
import pandas as pd

from analytics.embeddings import TextEncoder, embed_models, encoder_for, model_texts
from analytics.recommend import BaseModelTracer, ModelRecommender, scrubbed_texts
from analytics.retrieval import HybridSearch, top_k

log = logging.getLogger(__name__)

KS = (5, 10, 20, 40)
HUGGINGBENCH = {
    "dataset recommendation": {"method": "HuggingBench best (KGCL / LightGCL)", "Recall@40": 0.306},
    "model tracing": {"method": "HuggingBench best (TransE)", "MRR": 0.559, "Hits@1": 0.450,
                      "Hits@10": 0.756},
    "model tracing (hard)": {"method": "HuggingBench best (TransE, easy protocol)",
                             "MRR": 0.559, "Hits@1": 0.450, "Hits@10": 0.756},
}


def _dcg(hit_ranks: list[int]) -> float:
    return float(sum(1.0 / math.log2(r + 1) for r in hit_ranks))


def ranking_metrics(ranked: np.ndarray, truth: set, ks=KS) -> dict[str, float]:
    """Recall@k and NDCG@k of one ranked list (best first) against a set of relevant items."""
    out = {}
    pos = {item: i + 1 for i, item in enumerate(ranked[: max(ks)])}
    hits = sorted(pos[t] for t in truth if t in pos)
    for k in ks:
        hk = [r for r in hits if r <= k]
        out[f"Recall@{k}"] = len(hk) / len(truth) if truth else 0.0
        ideal = _dcg(list(range(1, min(len(truth), k) + 1)))
        out[f"NDCG@{k}"] = _dcg(hk) / ideal if ideal > 0 else 0.0
    return out


def split_holdout(links: pd.DataFrame, eligible: pd.Series, sample: int, seed: int
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(held-out, training): a seeded sample of the eligible rows, and every other row."""
    pool = links.index[eligible.to_numpy()]
    rng = np.random.default_rng(seed)
    n = min(int(sample), len(pool))
    held_idx = np.sort(rng.choice(pool, n, replace=False)) if n else pool[:0]
    return links.loc[held_idx], links.drop(index=held_idx)


def holdout_links(models: pd.DataFrame, ds: pd.DataFrame, lin: pd.DataFrame, sample: int,
                  seed: int):
    """(held-out, training) Model→Dataset links and (held-out, training) lineage links.

    Only links between real (non-stub) models are held out; the same seed always draws the
    same links, whatever order the engine returned them in."""
    ids = set(models["id"])
    ds = ds.sort_values(["model", "dataset"], kind="stable").reset_index(drop=True)
    lin = lin.sort_values(["child", "parent"], kind="stable").reset_index(drop=True)
    held_ds, train_ds = split_holdout(ds, ds["model"].isin(ids), sample, seed)
    ok_lin = lin["child"].isin(ids) & lin["parent"].isin(ids) & (lin["child"] != lin["parent"])
    held_lin, train_lin = split_holdout(lin, ok_lin, sample, seed + 1)
    return held_ds, train_ds, held_lin, train_lin


def evaluate_relevance(store=None, *, root=None, search=None) -> dict:
    """The search relevance table: {"summary": rows, "per_query": rows, "seconds": s}."""
    from analytics.retrieval import open_search
    from analytics.search_relevance import evaluate_search

    t0 = time.perf_counter()
    search = search if search is not None else open_search(store, root=root)
    summary, per = evaluate_search(search)
    return {"summary": summary.to_dict("records"), "per_query": per.to_dict("records"),
            "seconds": time.perf_counter() - t0}


def evaluate(store=None, *, root=None, sample: int = 2000, seed: int = 0, ks=KS,
             encoder: TextEncoder | None = None, n_train_tracer: int = 2000,
             hard: bool = True, relevance: bool = True, links: bool = True) -> dict:
    """Run the search relevance set and both link tasks; returns {"setup": …, "search
    relevance": {...}, "dataset recommendation": rows, "model tracing": rows, "model tracing
    (hard)": rows} where rows are dicts of method → metrics (baselines included)."""
    from analytics import model_rows
    from graph import retrieval_queries as rq
    from graph.store import db_root, store_or_open

    t0 = time.perf_counter()
    out: dict = {}
    with store_or_open(store, root=root) as store:
        if relevance:
            out["search relevance"] = evaluate_relevance(store, root=root)
        if not links:
            out["setup"] = {"seconds": {"total": time.perf_counter() - t0}}
            return out
        models = rq.model_frame(store)
        ds = rq.model_dataset_links(store)
        lin = rq.lineage_links(store)
        params = model_parameters(store) if hard else None
    held_ds, train_ds, held_lin, train_lin = holdout_links(models, ds, lin, sample, seed)

    frame = model_rows.attach_links(models, train_ds, train_lin)
    encoder = encoder or encoder_for(root or db_root())
    vectors, info = embed_models(frame["id"], model_texts(frame), encoder,
                                 root=root or db_root(), persist=False)
    t_prep = time.perf_counter() - t0
    index = HybridSearch(encoder=encoder, random_state=seed).fit(frame, vectors)
    rec = ModelRecommender(random_state=seed).fit(frame, vectors, train_ds, train_lin,
                                                  index=index)
    t1 = time.perf_counter()
    ds_rows = _eval_datasets(rec, held_ds, ks, seed)
    t_ds = time.perf_counter() - t1
    t2 = time.perf_counter()
    tracer = BaseModelTracer(random_state=seed, n_train=n_train_tracer).fit(
        frame, vectors, train_lin, index=index)
    tr_rows = _eval_tracing(tracer, held_lin, train_lin, vectors, seed)
    t_tr = time.perf_counter() - t2
    t3 = time.perf_counter()
    hard_rows, hard_setup = (_eval_tracing_hard(frame, vectors, index, held_lin, train_lin,
                                                lin, params, seed, n_train_tracer)
                             if hard and len(held_lin) else ({}, {}))
    t_hard = time.perf_counter() - t3
    out = {
        **out,
        "setup": {"models": len(models), "model_dataset_links": len(ds),
                  "lineage_links": len(lin), "held_out_dataset_links": len(held_ds),
                  "held_out_models": int(held_ds["model"].nunique()),
                  "held_out_lineage_links": len(held_lin), "seed": seed,
                  "re_embedded_texts": info["embedded"], "reused_vectors": info["reused"],
                  "embed_seconds": info["seconds"], "encoder": encoder.key,
                  "tracer_pool": int(len(tracer.pool_)),
                  "tracer_weights": dict(zip(tracer_feature_names(), map(float, tracer.weights_))),
                  "seconds": {"prepare": t_prep, "datasets": t_ds, "tracing": t_tr,
                              "tracing_hard": t_hard, "total": time.perf_counter() - t0},
                  "tracing_hard": hard_setup},
        "dataset recommendation": ds_rows,
        "model tracing": tr_rows,
    }
    if hard_rows:
        out["model tracing (hard)"] = hard_rows
    return out


def model_parameters(store) -> pd.DataFrame:
    """id, parameters (safetensors/GGUF totals) of every model that has a count."""
    from graph import queries as q

    return q.model_parameters(store)


def _tracer_rank(tracer, child_row: int, parent_row: int, vector, other: set) -> float:
    """Rank of the true parent among the tracer's candidates for a child (the child's other
    known parents removed); inf when it is not among them."""
    cand, scores = tracer.rank_rows(child_row, np.asarray(vector, np.float32))
    keep = ~np.isin(cand, list(other)) if other else np.ones(len(cand), bool)
    cand, scores = cand[keep], scores[keep]
    hit = np.flatnonzero(cand == parent_row)
    return int((scores > scores[hit[0]]).sum()) + 1 if len(hit) else np.inf


def _rank_summary(ranks: dict[str, list]) -> dict:
    """MRR, Hits@1, Hits@10 and the number of links per method, from ranks (inf: missed)."""
    out = {}
    for name, r in ranks.items():
        r = np.asarray(r, dtype=float)
        out[name] = {"MRR": float(np.mean(1.0 / r)) if len(r) else 0.0,
                     "Hits@1": float(np.mean(r <= 1)) if len(r) else 0.0,
                     "Hits@10": float(np.mean(r <= 10)) if len(r) else 0.0,
                     "links": int(len(r))}
    return out


def _eval_tracing_hard(frame: pd.DataFrame, vectors: np.ndarray, index: HybridSearch,
                       held: pd.DataFrame, train_lin: pd.DataFrame, lin: pd.DataFrame,
                       params: pd.DataFrame | None, seed: int, n_train: int
                       ) -> tuple[dict, dict]:
    """The hard protocol (module docstring): (metrics per method, setup figures)."""
    children = set(held["child"])
    train_hard = train_lin[~train_lin["child"].isin(children)]
    hard_frame = frame
    if params is not None and len(params):
        hard_frame = frame.merge(params, on="id", how="left") if "parameters" not in frame \
            else frame
    tracer = BaseModelTracer(pool="all", random_state=seed, n_train=n_train).fit(
        hard_frame, vectors, train_hard, index=index, train_texts=scrubbed_texts)
    row_of = index.row_of_
    parents_of = lin.groupby("child")["parent"].agg(list).to_dict()
    order = sorted(children)
    rows = frame.set_index("id").loc[order].reset_index()
    texts = scrubbed_texts(rows, [parents_of.get(c, []) for c in order])
    vecs = index._encoder().encode(texts)
    vec_of = dict(zip(order, vecs))
    n = len(index.ids_)
    pop = tracer.children_all_.astype(np.float64)
    pop_order = np.argsort(-pop, kind="stable")
    pop_rank = np.empty(n, np.int64)
    pop_rank[pop_order] = np.arange(1, n + 1)
    rng = np.random.default_rng(seed)
    ranks = {"hybrid (ours), every model": [], "popularity, every model": [],
             "random, every model": []}
    in_cand = 0
    for child, parent in zip(held["child"], held["parent"]):
        c, p = row_of[child], row_of[parent]
        other = {row_of[x] for x in parents_of.get(child, ()) if x in row_of and x != parent}
        rank = _tracer_rank(tracer, c, p, vec_of[child], other)
        in_cand += bool(np.isfinite(rank))
        ranks["hybrid (ours), every model"].append(rank)
        excl = other | {c}
        better = pop_rank[p] - 1 - sum(1 for e in excl if pop_rank[e] < pop_rank[p])
        ranks["popularity, every model"].append(better + 1)
        ranks["random, every model"].append(int(rng.integers(1, n - len(excl) + 1)))
    out = _rank_summary(ranks)
    out["_parent_in_candidates"] = in_cand / max(len(held), 1)
    setup = {"children": len(children), "links_removed": int(len(train_lin) - len(train_hard)),
             "ranked_against": n, "with_parameters": int(np.isfinite(tracer.log_params_).sum()),
             "weights": dict(zip(tracer_feature_names(), map(float, tracer.weights_)))}
    return out, setup


def tracer_feature_names():
    from analytics.recommend import TRACE_FEATURES

    return TRACE_FEATURES


def _eval_datasets(rec: ModelRecommender, held: pd.DataFrame, ks, seed: int) -> dict:
    kmax = max(ks)
    col_of = {d: i for i, d in enumerate(rec.dataset_ids_)}
    rng = np.random.default_rng(seed)
    per = {"hybrid (ours)": [], "task popularity": [], "popularity": [], "random": []}
    n_unrankable = 0
    for model, group in held.groupby("model", sort=True):
        truth = {col_of[d] for d in group["dataset"] if d in col_of}
        n_unrankable += int(group["dataset"].nunique() - len(truth))
        truth_all = len(set(group["dataset"]))
        r = rec.index_.row_of_[model]
        known = rec.links_[r].indices
        scores = rec.dataset_scores(model)
        pop = rec.dataset_popularity_.astype(np.float64).copy()
        task_pop = rec.task_prior_.get(rec.tasks_[r], rec.global_prior_).astype(np.float64) \
            + 1e-6 * pop / max(pop.max(), 1)
        rnd = rng.random(len(pop))
        for name, s in (("hybrid (ours)", scores), ("task popularity", task_pop),
                        ("popularity", pop), ("random", rnd)):
            s = s.copy()
            s[known] = -np.inf
            ranked = top_k(s, kmax)
            m = ranking_metrics(ranked, truth, ks)
            # datasets without any training link cannot be ranked by anyone: misses
            if truth_all > len(truth):
                m = {key: v * len(truth) / truth_all if key.startswith("Recall") else v
                     for key, v in m.items()}
            per[name].append(m)
    out = {}
    for name, rows in per.items():
        df = pd.DataFrame(rows)
        out[name] = {c: float(df[c].mean()) for c in df.columns} if len(df) else {}
        out[name]["models"] = len(df)
    out["_unrankable_links"] = n_unrankable
    return out


def _eval_tracing(tracer: BaseModelTracer, held: pd.DataFrame, train_lin: pd.DataFrame,
                  vectors: np.ndarray, seed: int) -> dict:
    row_of = tracer.index_.row_of_
    known = train_lin.groupby("child")["parent"].agg(set).to_dict()
    rng = np.random.default_rng(seed)
    pool_rank_pop = np.argsort(-tracer.pool_children_, kind="stable")
    pop_rank_of = np.empty(len(pool_rank_pop), np.int64)
    pop_rank_of[pool_rank_pop] = np.arange(1, len(pool_rank_pop) + 1)
    ranks = {"hybrid (ours)": [], "popularity": [], "random": []}
    in_pool = 0
    for child, parent in zip(held["child"], held["parent"]):
        c, p = row_of[child], row_of[parent]
        other = {row_of[x] for x in known.get(child, ()) if x in row_of and x != parent}
        ranks["hybrid (ours)"].append(_tracer_rank(tracer, c, p, vectors[c], other))
        pos = tracer.pool_pos_.get(p)
        in_pool += pos is not None
        if pos is None:
            ranks["popularity"].append(np.inf)
            ranks["random"].append(np.inf)
            continue
        better = pop_rank_of[pos] - 1
        # other known parents and the child itself ranked above do not count
        excl = [tracer.pool_pos_[x] for x in other | {c} if x in tracer.pool_pos_]
        better -= int(sum(pop_rank_of[e] < pop_rank_of[pos] for e in excl))
        ranks["popularity"].append(better + 1)
        ranks["random"].append(int(rng.integers(1, len(tracer.pool_) - len(excl) + 1)))
    out = _rank_summary(ranks)
    out["_parent_in_pool"] = in_pool / max(len(held), 1)
    return out


def _metric_table(res: dict, task: str, cols: list[str]) -> list[str]:
    """One task's rows (method × metric) and HuggingBench's reference row, as text lines."""
    head = f"{'method':40s} " + " ".join(f"{c:>9s}" for c in cols)
    lines = [head, "-" * len(head)]
    for name, m in res[task].items():
        if not name.startswith("_"):  # "_..." keys are notes, not methods
            lines.append(f"{name:40s} " + " ".join(f"{m.get(c, float('nan')):9.3f}" for c in cols))
    hb = HUGGINGBENCH[task]
    lines.append(f"{hb['method']:40s} " + " ".join(
        f"{hb[c]:9.3f}" if c in hb else f"{'':>9s}" for c in cols))
    return lines


def format_report(res: dict, ks=KS) -> str:
    lines = []
    if "search relevance" in res:
        import pandas as pd

        from analytics.search_relevance import METHOD_LABELS, format_table

        rel = res["search relevance"]
        lines += [format_table(pd.DataFrame(rel["summary"]), list(METHOD_LABELS.values())), ""]
        if "dataset recommendation" not in res:
            return "\n".join(lines)
    s = res["setup"]
    lines += [f"HuggingBench-style evaluation (seed {s['seed']}; encoder {s['encoder']}; "
             f"{s['models']:,} models, {s['model_dataset_links']:,} model→dataset links, "
             f"{s['lineage_links']:,} lineage links; {s['re_embedded_texts']} texts re-embedded "
             f"without held-out links; {s['seconds']['total']:.0f}s)", "",
             f"Dataset recommendation: {s['held_out_dataset_links']} held-out links over "
             f"{s['held_out_models']} models"
             f" ({res['dataset recommendation'].get('_unrankable_links', 0)} to datasets with no "
             "training link: unrankable, counted as misses)"]
    lines += _metric_table(res, "dataset recommendation",
                           [f"{m}@{k}" for m in ("Recall", "NDCG") for k in ks])
    lines += ["", f"Model tracing: {s['held_out_lineage_links']} held-out child→parent links; "
              f"candidate pool {s['tracer_pool']:,} models; true parent in pool for "
              f"{res['model tracing'].get('_parent_in_pool', 0):.1%}"]
    lines += _metric_table(res, "model tracing", ["MRR", "Hits@1", "Hits@10"])
    if "model tracing (hard)" in res:
        h = s.get("tracing_hard", {})
        lines += ["", f"Model tracing, hard: the same {s['held_out_lineage_links']} links; their "
                  f"{h.get('children', 0)} children lose every base link and every mention of a "
                  f"parent ({h.get('links_removed', 0)} training links removed); ranked against "
                  f"all {h.get('ranked_against', 0):,} models ({h.get('with_parameters', 0):,} "
                  f"with a parameter count); true parent among the scored candidates for "
                  f"{res['model tracing (hard)'].get('_parent_in_candidates', 0):.1%}"]
        lines += _metric_table(res, "model tracing (hard)", ["MRR", "Hits@1", "Hits@10"])
    lines += ["", "Protocol differs from HuggingBench's (see analytics/evaluate.py docstring): "
              "comparable in spirit, not to the decimal."]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m analytics.evaluate",
                                description=__doc__.split("\n")[0])
    p.add_argument("--sample", type=int, default=2000, help="held-out links per task")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--only", choices=["search", "links"],
                   help="run only the search relevance set, or only the held-out link tasks")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    res = evaluate(sample=a.sample, seed=a.seed, relevance=a.only != "links",
                   links=a.only != "search")
    print(format_report(res))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
