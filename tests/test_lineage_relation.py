"""Learnt relation typing: batch features, the estimator, the shipped model, the ingest step,
and the family-grouped evaluation on the real typed links."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ingest.lineage_eval import grouped_folds, hide_recorded, listing_shape, scores
from ingest.records import ModelRecord
from ingest.relation_features import (
    NUMERIC_COLUMNS,
    author_habits,
    feature_matrix,
    link_frame,
    link_tokens,
    model_frame,
)
from ingest.relation_model import MODEL_PATH, RelationTyper, retype_links, shipped_typer
from tests.conftest import shared_data_or_skip


def _rec(**d) -> ModelRecord:
    return ModelRecord.from_api(d)


GGUF = dict(id="TheBloke/Foo-7B-GGUF", tags=["gguf", "base_model:org/Foo-7B"],
            library_name="transformers")
LORA = dict(id="u/foo-lora", tags=["peft", "safetensors", "base_model:org/Foo-7B"],
            library_name="peft")
MERGE = dict(id="u/foo-slerp", tags=["mergekit", "merge", "base_model:org/Foo-7B",
                                     "base_model:org/Bar-7B"], library_name="transformers")
SFT = dict(id="u/foo-sft", tags=["trl", "sft", "generated_from_trainer",
                                 "base_model:org/Foo-7B"], library_name="transformers")


def _training_set(n: int = 30) -> tuple[list[ModelRecord], list[str], list[str]]:
    """Listing-shaped records of four kinds in several families (deterministic)."""
    recs, y, fam = [], [], []
    for i in range(n):
        for family in ("Foo", "Bar", "Baz"):
            for kind, rel in ((GGUF, "quantized"), (LORA, "adapter"), (MERGE, "merge"),
                              (SFT, "finetune")):
                d = {**kind, "id": kind["id"].replace("foo", f"{family.lower()}{i}")
                     .replace("Foo", f"{family}{i}"),
                     "tags": [t.replace("Foo", family) for t in kind["tags"]]}
                r = _rec(**d)
                recs.append(r)
                y += [rel] * len(r.base_models)  # one label per link, in link_frame's order
                fam += [family] * len(r.base_models)
    return recs, y, fam


def test_link_frame_and_tokens_are_batch_over_records():
    recs = [_rec(**GGUF), _rec(**LORA), _rec(**MERGE),
            _rec(id="x/typed", tags=["base_model:quantized:org/Foo-7B"])]
    links = link_frame(recs)
    # typed links are recorded, not inferred: not in the frame
    assert links["child"].tolist() == ["TheBloke/Foo-7B-GGUF", "u/foo-lora", "u/foo-slerp",
                                       "u/foo-slerp"]
    assert links["n_parents"].tolist() == [1, 1, 2, 2]
    assert links["files"].isna().all()  # listing records list no files
    tokens = link_tokens(links)
    by_row = tokens.groupby("row")["tok"].agg(set)
    assert {"t:gguf", "l:transformers", "n:gguf"} <= by_row[0]
    assert {"t:peft", "l:peft", "n:lora"} <= by_row[1]
    assert "t:mergekit" in by_row[2] and "n:slerp" in by_row[2]
    habits = author_habits(model_frame(recs))
    X = feature_matrix(links, ["t:gguf", "t:peft"], habits)
    assert X.shape == (4, 2 + len(NUMERIC_COLUMNS)) and X.dtype == np.float32
    assert X[0, 0] == 1 and X[1, 1] == 1 and X[0, 1] == 0
    assert habits.loc["TheBloke", "author_quant_share"] == 1.0


def test_files_are_features_where_the_record_lists_them():
    full = _rec(id="u/adapter-x", tags=["base_model:org/b"],
                siblings=[{"rfilename": "adapter_config.json"},
                          {"rfilename": "adapter_model.safetensors"}])
    repr_style = _rec(id="u/q", tags=["base_model:org/b"],
                      siblings=["RepoSibling(rfilename='model-Q4_K_M.gguf', size=None)"])
    assert repr_style.files == ("model-Q4_K_M.gguf",)
    links = link_frame([full, repr_style])
    toks = link_tokens(links).groupby("row")["tok"].agg(set)
    assert {"f:adapter_config", "f:adapter_model"} <= toks[0] and "f:gguf" in toks[1]


def test_typer_fits_predicts_and_round_trips(tmp_path):
    recs, y, fam = _training_set()
    links = link_frame(recs)
    assert len(links) == len(y)
    y, fam = np.asarray(y, object), np.asarray(fam, object)
    habits = author_habits(model_frame(recs))
    typer = RelationTyper(max_iter=20, min_samples_leaf=2).fit(links, y, groups=fam,
                                                              habits=habits)
    assert set(typer.classes_) == {"finetune", "adapter", "quantized", "merge"}
    pred = typer.predict(links, habits)
    assert (pred == y).mean() == 1.0
    proba = typer.predict_proba(links, habits)
    assert np.allclose(proba.sum(axis=1), 1.0)
    path = typer.save(tmp_path / "m.json")
    again = RelationTyper.load(path)
    assert np.abs(again.predict_proba(links, habits) - proba).max() < 1e-4
    assert (again.predict(links, habits) == pred).all()


def test_typer_matches_scikit_learn_exactly():
    from sklearn.ensemble import HistGradientBoostingClassifier

    recs, y, fam = _training_set(10)
    links = link_frame(recs)
    y = np.asarray(y, object)
    typer = RelationTyper(max_iter=15, min_samples_leaf=2, class_weight_power=0.0,
                          min_groups=1).fit(links, y)
    X = feature_matrix(links, typer.vocabulary_, None)
    clf = HistGradientBoostingClassifier(max_iter=15, max_leaf_nodes=15, min_samples_leaf=2,
                                         l2_regularization=1.0, learning_rate=0.1,
                                         early_stopping=False, random_state=0).fit(X, y)
    assert np.abs(clf.predict_proba(X) - typer.predict_proba(links)).max() < 1e-9


@pytest.mark.parametrize("links,y,message", [
    (pd.DataFrame(), [], "no links"),
    (None, ["finetune"], "1 labels"),
    (None, ["fork"], "unknown relations"),
])
def test_typer_validates_in_fit(links, y, message):
    recs = [_rec(**GGUF)]
    frame = link_frame(recs) if links is None else links
    if message == "1 labels":
        frame = pd.concat([frame, frame], ignore_index=True)
    with pytest.raises(ValueError, match=message):
        RelationTyper().fit(frame, y)


def test_shipped_model_is_small_and_types_the_obvious_cases():
    assert MODEL_PATH.exists() and MODEL_PATH.stat().st_size < 1_000_000
    typer = shipped_typer()
    assert typer is not None
    recs = [_rec(**GGUF), _rec(**LORA), _rec(**MERGE), _rec(**SFT)]
    links = link_frame(recs)
    pred = typer.predict(links, author_habits(model_frame(recs)))
    assert pred.tolist() == ["quantized", "adapter", "merge", "merge", "finetune"]


def test_retype_links_keeps_recorded_relations():
    recs = [_rec(id="u/typed-lora", tags=["peft", "base_model:finetune:org/x"]),
            _rec(id="u/card-rel", tags=["gguf", "base_model:org/x"],
                 cardData={"base_model": "org/x", "base_model_relation": "finetune"}),
            _rec(id="u/plain-GGUF", tags=["gguf", "base_model:org/x"]),
            _rec(id="u/merge-card", tags=["merge"],
                 card="```yaml\nmodels:\n  - model: a/x\n  - model: b/y\nmerge_method: ties\n```")]
    before = [[(b.relation, b.inferred) for b in r.base_models] for r in recs]
    assert before[0] == [("finetune", False)] and before[1] == [("finetune", False)]
    typed = retype_links(recs)
    assert typed == 1  # only u/plain-GGUF: recorded types and definite card patterns stay
    assert [(b.relation, b.inferred) for b in recs[0].base_models] == [("finetune", False)]
    assert [(b.relation, b.inferred) for b in recs[1].base_models] == [("finetune", False)]
    assert [(b.relation, b.inferred, b.source) for b in recs[2].base_models] == [
        ("quantized", True, "tag")]
    assert {b.relation for b in recs[3].base_models} == {"merge"}


def test_hide_recorded_and_listing_shape():
    d = {"id": "u/x", "tags": ["gguf", "base_model:org/a", "base_model:quantized:org/a",
                               "base_model:adapter:org/b"],
         "cardData": {"base_model_relation": "quantized", "license": "mit"},
         "baseModels": {"relation": "merge", "models": [{"id": "org/c"}]},
         "siblings": [{"rfilename": "a.gguf"}], "library_name": "gguf"}
    hidden = hide_recorded(d)
    assert sorted(hidden["tags"]) == ["base_model:org/a", "base_model:org/b", "base_model:org/c",
                                      "gguf"]
    assert hidden["cardData"] == {"license": "mit"} and "baseModels" not in hidden
    rec = ModelRecord.from_api(hidden)
    assert all(b.inferred for b in rec.base_models)
    assert set(listing_shape(hidden)) == {"id", "tags", "library_name"}


def test_scores_and_folds():
    y = np.array(["finetune", "adapter", "quantized", "merge", "finetune"], object)
    p = np.array(["finetune", "adapter", "finetune", "merge", "finetune"], object)
    s = scores(y, p)
    assert s["accuracy"] == 0.8 and s["per_relation"]["quantized"]["recall"] == 0.0
    assert s["per_relation"]["finetune"]["precision"] == round(2 / 3, 4)
    assert s["confusion"]["quantized"]["finetune"] == 1
    fam = np.array(["a"] * 5 + ["b"] * 3 + ["c"] * 2 + ["d"])
    folds = grouped_folds(fam, 2)
    assert sorted(np.concatenate(folds).tolist()) == list(range(11))
    for f in folds:  # no family is split across folds
        assert not set(fam[f]) & set(fam[np.setdiff1d(np.arange(11), f)])


def test_family_grouped_accuracy_on_the_typed_links():
    """The issue's goal, on links from families the model never saw, for both input shapes."""
    from ingest.lineage_eval import evaluate, labelled_links

    trees = shared_data_or_skip("trees-2025")
    listing = shared_data_or_skip("hub-2024-07")
    data = labelled_links(trees, [listing])
    assert data.counts["with_child_record"] > 3500 and data.counts["families"] >= 10
    result = evaluate(data, n_splits=5)
    for shape in ("full", "listing"):
        learnt, rules = result[shape]["learnt"], result[shape]["rules"]
        assert learnt["accuracy"] >= 0.95 and learnt["accuracy"] > rules["accuracy"]
        for rel, pr in learnt["per_relation"].items():
            assert pr["precision"] >= 0.85 and pr["recall"] >= 0.85, (shape, rel, pr)
        assert result[shape]["majority"]["accuracy"] < 0.6


def test_evaluate_and_report_on_a_small_labelled_set():
    from ingest.lineage_eval import LabelledLinks, evaluate, format_report

    recs, y, fam = _training_set(6)
    links = link_frame(recs)
    data = LabelledLinks(full=links, listing=links, y=np.asarray(y, object),
                         family=np.asarray(fam, object), truth_source=np.full(len(y), "tree"),
                         habits=author_habits(model_frame(recs)),
                         counts={"truth_links": len(y), "tree_links": len(y),
                                 "recorded_links": 0, "with_child_record": len(y),
                                 "children_in_trees": len(recs), "families": 3,
                                 "per_relation": {}})
    result = evaluate(data, n_splits=3, params={"max_iter": 10, "min_samples_leaf": 2})
    assert result["full"]["learnt"]["links"] == len(y)
    assert result["full"]["learnt"]["accuracy"] >= result["full"]["majority"]["accuracy"]
    assert sorted(sum(result["fold_families"], [])) == ["Bar", "Baz", "Foo"]  # one per fold
    text = format_report(result)
    for needle in ("learnt", "rules", "naive_rule", "majority", "grouped by family",
                   "confusion (listing inputs, learnt)"):
        assert needle in text


def test_scores_of_repeated_rows_are_scored_once_and_equal():
    recs, y, _ = _training_set(10)
    links = link_frame(recs)
    typer = RelationTyper(max_iter=10, min_samples_leaf=2, min_groups=1).fit(links, y)
    X = feature_matrix(links, typer.vocabulary_, None)
    repeated = np.vstack([X, X[::-1], X[:3]])
    one_by_one = np.vstack([typer.decision_function(row[None, :]) for row in repeated])
    assert np.array_equal(typer.decision_function(repeated), one_by_one)


def test_prediction_builds_only_the_columns_the_trees_read():
    recs, _, _ = _training_set(10)
    links = link_frame(recs)
    typer = shipped_typer()
    read = {int(f) for t in typer.trees_ for f in t["feature"] if f >= 0}
    assert typer.columns_.tolist() == sorted(read) and len(read) < typer.n_features_in_
    full = feature_matrix(links, typer.vocabulary_, None)
    part = feature_matrix(links, typer.vocabulary_, None, columns=typer.columns_)
    assert np.array_equal(part, full[:, typer.columns_])
    assert np.array_equal(typer._compact_decision(part), typer.decision_function(full))
    assert full.any(axis=0)[typer.columns_].any()  # the links do light up what is read


# -- the vectorised feature paths give exactly what the Python string rules give -------------
NAMES = ["TheBloke/Mistral-7B-Instruct-v0.2-GGUF", "u/llama-3-8b-4bit", "org/x/y-3.5bpw",
         "u/Q4_K_M-iq3_xs", "u/w4a16-int8", "u/a-", "nons", "u/\u212a-8bits",  # Kelvin sign
         "u/\u0130nt4-model", "u/model-\uff14bit", "u/mod\u00e8le-8bits", "u/\u00e9t\u00e9 q5_1"]


def _python_names(ids: list[str]) -> list[str]:
    """The reference: Python's rsplit, lower and re over each id."""
    from ingest.relation_features import _NAME_RULES

    out = []
    for rid in ids:
        text = rid.rsplit("/", 1)[-1].lower()
        for pattern, repl in _NAME_RULES:
            text = pattern.sub(repl, text)
        out.append(text)
    return out


def test_normalised_names_match_pythons_rules_on_unicode_names():
    from ingest.relation_features import _normalised_names

    assert _normalised_names(pd.Series(NAMES)).to_pylist() == _python_names(NAMES)
    # the Unicode rows really differ between the two engines (else the test proves nothing)
    import pyarrow as pa
    import pyarrow.compute as pc

    from ingest.relation_features import _NAME_RULES

    ascii_only = pc.ascii_lower(pa.array(["\u212a-8bits", "model-\uff14bit"]))
    for pattern, repl in _NAME_RULES:
        ascii_only = pc.replace_substring_regex(ascii_only, pattern.pattern, repl)
    assert ascii_only.to_pylist() != _python_names(["\u212a-8bits", "model-\uff14bit"])


def test_habit_flags_match_the_string_by_string_rules():
    import pyarrow as pa

    from ingest.relation_features import (
        _ADAPTER_EVIDENCE,
        _MERGE_EVIDENCE,
        _QUANT_EVIDENCE,
        _contains,
        _habit_flags,
    )

    ids = pd.Series(NAMES)
    tags = pd.Series(["gguf base_model:x", "", "exl2", "peft", "lora", "", "mergekit", "",
                      "", "8-bit", "slerp", "base_model:y"])
    library = pd.Series(["PEFT", None, "transformers", "peft", None, "", None, "Peft",
                         None, None, None, None], dtype="str")
    flags = _habit_flags(ids, tags, library)
    # the text the evidence patterns (RE2, as `_contains` has always matched them) look at
    text = pa.array([rid.rsplit("/", 1)[-1] + " " + t for rid, t in zip(NAMES, tags)])
    assert flags["quant"].tolist() == _contains(text, _QUANT_EVIDENCE).tolist()
    assert flags["merge"].tolist() == _contains(text, _MERGE_EVIDENCE).tolist()
    assert flags["adapter"].tolist() == [
        (lib if isinstance(lib, str) else "").lower() == "peft" or found
        for lib, found in zip(library.tolist(), _contains(text, _ADAPTER_EVIDENCE))]
    assert flags["derived"].tolist() == ["base_model:" in t for t in tags]


def test_distinct_rows_and_the_split_tree_walk_score_as_the_row_walk():
    from ingest.relation_model import _distinct_rows, _tree_values

    rng = np.random.default_rng(1)
    X = rng.integers(0, 3, (500, 6)).astype(np.float32)
    first, inverse = _distinct_rows(X)
    assert np.array_equal(X[first][inverse], X) and len(first) == len(np.unique(X, axis=0))
    typer = shipped_typer()
    tree = max(typer.trees_, key=lambda t: len(t["left"]))
    Z = rng.random((300, typer.n_features_in_)).astype(np.float32)
    expect = []
    for row in Z:  # one row at a time, node by node
        node = 0
        while tree["left"][node] >= 0:
            go_left = row[tree["feature"][node]] <= tree["threshold"][node]
            node = tree["left"][node] if go_left else tree["right"][node]
        expect.append(tree["value"][node])
    assert np.array_equal(_tree_values(tree, np.asfortranarray(Z)), np.array(expect))
