"""Parsing Hub API objects: both record shapes, lineage tags, dates, bad input."""
from __future__ import annotations

import pytest

from ingest.errors import RecordError
from ingest.lineage import IdResolver, infer_relation, parse_base_models
from ingest.records import DatasetRecord, ModelRecord, parse_datetime


def test_listing_record_camel_case():
    rec = ModelRecord.from_api({
        "_id": "x", "id": "org/child", "likes": 3, "downloads": 10,
        "tags": ["transformers", "dataset:squad", "arxiv:2106.09685", "license:mit",
                 "base_model:org/parent"],
        "pipeline_tag": "text-generation", "library_name": "transformers",
        "createdAt": "2024-05-01T10:00:00.000Z"})
    assert rec.id == "org/child" and rec.author == "org"
    assert rec.datasets == ("squad",) and rec.arxiv == ("2106.09685",) and rec.license == "mit"
    assert rec.created_at.year == 2024 and rec.created_at.tzinfo is not None
    assert [(b.parent, b.relation, b.inferred) for b in rec.base_models] == [
        ("org/parent", "finetune", True)]


def test_modelinfo_snake_case_with_typed_tags_and_card():
    rec = ModelRecord.from_api({
        "id": "a/q-GGUF", "created_at": "2025-01-02 03:04:05+00:00",
        "tags": ["gguf", "base_model:a/base", "base_model:quantized:a/base"],
        "card_data": "base_model:\n- a/base\nlicense: apache-2.0\n",
        "safetensors": {"total": 7_000_000}})
    assert [(b.parent, b.relation, b.inferred, b.source) for b in rec.base_models] == [
        ("a/base", "quantized", False, "typed_tag")]
    assert rec.license == "apache-2.0" and rec.parameters == 7_000_000


def test_backfill_date_is_unknown():
    assert parse_datetime("2022-03-02T23:29:04.000Z") is None
    assert parse_datetime("2022-03-02T23:29:05.000Z") is None
    assert parse_datetime("2022-03-02T23:29:06.000Z") is not None


@pytest.mark.parametrize("data,reason", [
    ({"likes": 1}, "missing_id"),
    (["not", "a", "dict"], "not_an_object"),
    ({"id": "has space/x"}, "bad_id"),
])
def test_malformed_records_raise_with_reason(data, reason):
    with pytest.raises(RecordError) as err:
        ModelRecord.from_api(data)
    assert err.value.reason == reason


def test_huge_tag_list_is_truncated_and_flagged():
    rec = ModelRecord.from_api({"id": "a/b", "tags": [f"t{i}" for i in range(5000)]})
    assert len(rec.tags) == 2000 and rec.issues == {"tags:too_many(kept)": 1}


def test_card_base_model_list_and_relation():
    links = parse_base_models("m/merged", [], ["a/x", "b/y"], None)
    assert {(link.parent, link.relation) for link in links} == {("a/x", "merge"), ("b/y", "merge")}
    links = parse_base_models("m/l", [], "a/x", "adapter")
    assert [(link.relation, link.inferred) for link in links] == [("adapter", False)]


@pytest.mark.parametrize("child,tags,library,expected", [
    ("u/llama-3-8b-GGUF", ["gguf"], None, "quantized"),
    ("u/model-4bit", [], "transformers", "quantized"),
    ("u/lora", ["peft"], "peft", "adapter"),
    ("u/merged", ["mergekit"], "transformers", "merge"),
    ("u/chat-ft", ["transformers"], "transformers", "finetune"),
])
def test_relation_inference(child, tags, library, expected):
    assert infer_relation(child, tags, 1, library=library) == expected


def test_id_resolver_legacy_and_case():
    resolver = IdResolver(["openai-community/gpt2", "FacebookAI/xlm-roberta-base", "Org/Model"])
    assert resolver.resolve("gpt2") == ("openai-community/gpt2", True)
    assert resolver.resolve("xlm-roberta-base") == ("FacebookAI/xlm-roberta-base", True)
    assert resolver.resolve("org/model") == ("Org/Model", True)
    assert resolver.resolve("nobody/here") == ("nobody/here", False)
    resolver.add("openai-community/gpt2")  # adding twice must not make it ambiguous
    assert resolver.resolve("gpt2")[1]


def test_dataset_record():
    rec = DatasetRecord.from_api({"id": "u/d", "tags": ["task_categories:question-answering",
                                                        "license:mit"], "description": "x" * 9000})
    assert rec.tasks == ("question-answering",) and len(rec.description) == 4000


# -- validation at the edge: every field has a type and a range; bad values are counted ------
import math  # noqa: E402
from collections import Counter  # noqa: E402
from datetime import datetime  # noqa: E402

from ingest.records import FIELDS, INT64_MAX, SpaceRecord, merge_records  # noqa: E402

COUNT_POISON = [("lots", "not_an_int"), ("12", "not_an_int"), (True, "not_an_int"),
                (1.5, "not_an_int"), ([1], "not_an_int"), ({"n": 1}, "not_an_int"),
                (-5, "negative"), (2**63, "out_of_range"), (10**40, "out_of_range"),
                (1e29, "out_of_range"), (math.nan, "not_finite"), (math.inf, "not_finite"),
                (-math.inf, "not_finite")]
NAME_POISON = [({"a": 1}, "not_a_string"), (["x"], "not_a_string"), (5, "not_a_string"),
               (True, "not_a_string"), (1.5, "not_a_string"), ("x" * 100_000, "too_long"),
               ("bad\ud800", "bad_unicode")]
DATE_POISON = [("yesterday", "not_a_date"), (12345, "not_a_date"), ({"$date": 1}, "not_a_date"),
               ("2024-13-45", "not_a_date"), ("9999-01-01T00:00:00Z", "out_of_range"),
               ("1970-01-01T00:00:00Z", "out_of_range"), ("2" * 100, "not_a_date")]
LIST_POISON = [("text", "not_a_list"), (5, "not_a_list"), ({"a": 1}, "not_a_list"),
               (True, "not_a_list")]
ITEM_POISON = [(5, "item_not_a_string"), ({"x": 1}, "item_not_a_string"),
               (["nested"], "item_not_a_string"), (None, "item_not_a_string"),
               ("y" * 5000, "item_too_long"), ("bad\ud800", "item_bad_unicode")]

BASE = {"id": "org/m", "downloads": 7, "likes": 3, "pipeline_tag": "text-generation",
        "library_name": "transformers", "createdAt": "2024-05-01T10:00:00.000Z",
        "tags": ["license:mit", "dataset:squad"], "spaces": ["u/space"]}

#: (API field, attribute on ModelRecord, poison list)
MODEL_SCALARS = [("downloads", "downloads", COUNT_POISON), ("likes", "likes", COUNT_POISON),
                 ("pipeline_tag", "pipeline_tag", NAME_POISON),
                 ("library_name", "library", NAME_POISON), ("author", "author", NAME_POISON),
                 ("createdAt", "created_at", DATE_POISON),
                 ("lastModified", "last_modified", DATE_POISON)]


def _case_id(value):
    return type(value).__name__ + ":" + repr(value)[:20]


def assert_typed(rec) -> None:
    """Every attribute has exactly the type its graph property needs."""
    for name in ("author", "pipeline_tag", "library", "gated", "card_text", "sdk",
                 "description"):
        value = getattr(rec, name, None)
        assert value is None or (type(value) is str and value.encode("utf-8")), name
    for name in ("downloads", "likes", "parameters"):
        value = getattr(rec, name, None)
        assert value is None or (type(value) is int and 0 <= value <= INT64_MAX), name
    for name in ("created_at", "last_modified"):
        value = getattr(rec, name)
        assert value is None or (isinstance(value, datetime) and value.tzinfo), name
    for name in ("tags", "licenses", "datasets", "arxiv", "spaces", "tasks", "models"):
        value = getattr(rec, name, ())
        assert type(value) is tuple and all(type(v) is str and v.encode("utf-8")
                                            for v in value), name


@pytest.mark.parametrize("key,attr,value,problem", [
    (key, attr, v, p) for key, attr, poison in MODEL_SCALARS for v, p in poison],
    ids=lambda x: _case_id(x) if not isinstance(x, str) or len(x) > 30 else x)
def test_bad_scalar_is_dropped_and_counted(key, attr, value, problem):
    rec = ModelRecord.from_api({**BASE, key: value})
    assert getattr(rec, attr) is None or (attr == "author" and rec.author == "org")
    assert rec.issues == Counter({f"{key}:{problem}(dropped)": 1})
    # the rest of the record is intact
    clean = ModelRecord.from_api(BASE)
    for other in ("downloads", "likes", "pipeline_tag", "library", "licenses", "datasets",
                  "spaces", "created_at"):
        if other != attr:
            assert getattr(rec, other) == getattr(clean, other), other
    assert_typed(rec)


@pytest.mark.parametrize("key", ["tags", "spaces"])
@pytest.mark.parametrize("value,problem", LIST_POISON, ids=_case_id)
def test_bad_list_is_dropped_and_counted(key, value, problem):
    rec = ModelRecord.from_api({**BASE, key: value})
    assert rec.issues == Counter({f"{key}:{problem}(dropped)": 1})
    assert rec.downloads == 7 and rec.pipeline_tag == "text-generation"
    assert key not in rec.given  # not given: a later record's list is not wiped by it
    assert_typed(rec)


@pytest.mark.parametrize("value,problem", ITEM_POISON, ids=_case_id)
def test_bad_list_items_are_dropped_one_by_one(value, problem):
    rec = ModelRecord.from_api({**BASE, "tags": ["license:mit", value, "dataset:squad", value]})
    assert rec.tags == ("license:mit", "dataset:squad")
    assert rec.issues == Counter({f"tags:{problem}(dropped)": 2})
    assert rec.license == "mit" and rec.datasets == ("squad",)
    assert_typed(rec)


@pytest.mark.parametrize("data,issue", [
    ({"siblings": 5}, "siblings:not_a_list(dropped)"),
    ({"siblings": [5, {"rfilename": 3}, {"x": 1}]}, "siblings:item_not_a_file(dropped)"),
    ({"cardData": 5}, "cardData:not_an_object(dropped)"),
    ({"cardData": [1, 2]}, "cardData:not_an_object(dropped)"),
    ({"cardData": "x" * 1_000_001}, "cardData:too_long(dropped)"),
    ({"cardData": {"license": {"a": 1}}}, "cardData.license:not_a_list(dropped)"),
    ({"cardData": {"license": [{"a": 1}]}}, "cardData.license:item_not_a_string(dropped)"),
    ({"cardData": {"datasets": 7}}, "cardData.datasets:not_a_list(dropped)"),
    ({"cardData": {"base_model": 7}}, "cardData.base_model:not_a_list(dropped)"),
    ({"cardData": {"base_model": [["a/b"]]}}, "cardData.base_model:item_not_a_string(dropped)"),
    ({"cardData": {"base_model_relation": ["x"]}},
     "cardData.base_model_relation:not_a_string(dropped)"),
    ({"gated": 5}, "gated:not_a_string(dropped)"),
    ({"gated": {"a": 1}}, "gated:not_a_string(dropped)"),
    ({"safetensors": "big"}, "safetensors:not_an_object(dropped)"),
    ({"safetensors": {"total": "lots"}}, "safetensors:not_an_int(dropped)"),
    ({"safetensors": {"total": -1}}, "safetensors:negative(dropped)"),
    ({"safetensors": {"total": 2**64}}, "safetensors:out_of_range(dropped)"),
    ({"gguf": {"total": math.nan}}, "gguf:not_finite(dropped)"),
    ({"card": 5}, "card:not_a_string(dropped)"),
    ({"card": {"text": "x"}}, "card:not_a_string(dropped)"),
], ids=lambda x: x if isinstance(x, str) else None)
def test_nested_and_shaped_fields(data, issue):
    rec = ModelRecord.from_api({**BASE, **data})
    assert issue in rec.issues
    assert rec.downloads == 7 and rec.license == "mit"
    assert_typed(rec)


@pytest.mark.parametrize("data,reason", [
    ({"id": 5}, "missing_id"), ({"id": {"a": 1}}, "missing_id"), ({"id": ""}, "missing_id"),
    ({"id": ["a/b"]}, "missing_id"), ({"id": "x" * 300}, "bad_id"),
    ({"id": "bad\ud800/x"}, "bad_id"), ({"id": "tab\there"}, "bad_id"),
    ("a string", "not_an_object"), (5, "not_an_object"), (None, "not_an_object"),
])
def test_bad_ids_reject_the_record(data, reason):
    with pytest.raises(RecordError) as err:
        ModelRecord.from_api(data)
    assert err.value.reason == reason


@pytest.mark.parametrize("value,problem", NAME_POISON, ids=_case_id)
def test_space_sdk_object_is_dropped(value, problem):
    rec = SpaceRecord.from_api({"id": "u/s", "sdk": value, "models": ["org/m", 5],
                                "likes": 2})
    assert rec.sdk is None and rec.models == ("org/m",) and rec.likes == 2
    assert rec.issues == Counter({f"sdk:{problem}(dropped)": 1,
                                  "models:item_not_a_string(dropped)": 1})
    assert_typed(rec)


def test_dataset_fields_are_validated():
    rec = DatasetRecord.from_api({"id": "u/d", "downloads": "lots", "likes": -1,
                                  "description": {"x": 1}, "tags": ["license:mit", 3]})
    assert (rec.downloads, rec.likes, rec.description, rec.license) == (None, None, None, "mit")
    assert rec.issues == Counter({"downloads:not_an_int(dropped)": 1,
                                  "likes:negative(dropped)": 1,
                                  "description:not_a_string(dropped)": 1,
                                  "tags:item_not_a_string(dropped)": 1})


def test_every_declared_field_survives_every_poison():
    """Any poison in any declared field: the record parses (or is rejected by reason) and
    every value has its graph type."""
    poison = [v for _, _, p in MODEL_SCALARS for v, _ in p] + [v for v, _ in LIST_POISON] + [
        [v for v, _ in ITEM_POISON]]
    for kind, cls in (("model", ModelRecord), ("dataset", DatasetRecord),
                      ("space", SpaceRecord)):
        for spec in FIELDS[kind]:
            if spec.name == "id":
                continue
            key = spec.keys[0]
            for value in poison:
                data = {**BASE, "id": "org/x"}
                if spec.name.startswith("cardData."):
                    data["cardData"] = {key: value}
                else:
                    data[key] = value
                rec = cls.from_api(data)
                assert_typed(rec)
                assert sum(rec.issues.values()) >= 0


def test_absent_is_not_zero_and_merging_keeps_what_the_later_lacks():
    listing = ModelRecord.from_api({"id": "a/b", "downloads": 0, "likes": 5,
                                    "tags": ["license:mit"]})
    full = ModelRecord.from_api({"id": "a/b", "pipeline_tag": "fill-mask"})
    assert full.downloads is None and full.likes is None  # absent, not 0
    merged = merge_records(listing, full)
    assert (merged.downloads, merged.likes, merged.pipeline_tag) == (0, 5, "fill-mask")
    assert merged.licenses == ("mit",)  # the later record gives no tags: kept
    later = ModelRecord.from_api({"id": "a/b", "tags": []})  # gives tags: none left
    assert merge_records(listing, later).licenses == ()


def test_future_dates_are_dropped_so_the_watermark_stays_sane():
    rec = ModelRecord.from_api({"id": "a/b", "lastModified": "2999-01-01T00:00:00Z"})
    assert rec.last_modified is None
    assert rec.issues == Counter({"lastModified:out_of_range(dropped)": 1})
