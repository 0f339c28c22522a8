"""Base models read from card prose (ingest.cards) and README fetching (ingest.card_fetch)."""
from __future__ import annotations

import pytest

from ingest.card_fetch import CardFetchingSource, declares_base
from ingest.cards import card_link_precision, extract_card_links
from ingest.hub import HubSource
from ingest.records import ModelRecord
from ingest.sources import LiveHubSource
from tests.conftest import shared_data_or_skip
from tests.fakehub import FakeHub

TRAINER = ("# my-model\n\nThis model is a fine-tuned version of "
           "[meta-llama/Llama-2-7b-chat-hf](https://huggingface.co/meta-llama/Llama-2-7b-chat-hf)"
           " on the generator dataset.\n")
MERGEKIT = """---
tags: [merge]
---
# merged

The following models were included in the merge:
* [a/left](https://huggingface.co/a/left)
* [b/right](https://huggingface.co/b/right)

```yaml
slices:
  - sources:
      - model: a/left
        layer_range: [0, 32]
      - model: b/right
        layer_range: [0, 32]
merge_method: slerp
base_model: a/left
```
"""
GGUF = ("static quants of https://huggingface.co/deepseek-ai/DeepSeek-R1\n\nIf you are unsure "
        "how to use GGUF files, refer to one of [TheBloke's READMEs]"
        "(https://huggingface.co/TheBloke/KafkaLM-70B-German-V0.1-GGUF) for more details.")


@pytest.mark.parametrize("text,expected", [
    (TRAINER, [("meta-llama/Llama-2-7b-chat-hf", None, "trainer")]),
    ("This model is a fine-tuned version of [distilbert-base-uncased]"
     "(https://huggingface.co/distilbert-base-uncased) on imdb.",
     [("distilbert-base-uncased", None, "trainer")]),
    ("This model is a fine-tuned version of microsoft/phi-2 on the None dataset.",
     [("microsoft/phi-2", None, "trainer")]),
    (MERGEKIT, [("a/left", "merge", "mergekit"), ("b/right", "merge", "mergekit")]),
    (GGUF, [("deepseek-ai/DeepSeek-R1", "quantized", "quantized")]),
    ("This repo contains GGUF format model files for [Meta's Llama 2 7B]"
     "(https://huggingface.co/meta-llama/Llama-2-7b-hf).",
     [("meta-llama/Llama-2-7b-hf", "quantized", "quantized")]),
    ("The Model [x/y-4bit](https://huggingface.co/x/y-4bit) was converted to MLX format from "
     "[org/y](https://huggingface.co/org/y) using mlx-lm.", [("org/y", "quantized", "quantized")]),
    ("- Original model: [Llama 2](https://huggingface.co/meta-llama/Llama-2-7b-chat-hf)",
     [("meta-llama/Llama-2-7b-chat-hf", "quantized", "quantized")]),
    ("A LoRA adapter for [org/base](https://huggingface.co/org/base).",
     [("org/base", "adapter", "adapter")]),
    # not links: a dataset URL, a one-model "merge", prose without a pattern
    ("This model is a fine-tuned version of https://huggingface.co/datasets/x/y", []),
    ("```yaml\nmodels:\n  - model: a/only\nmerge_method: passthrough\n```", []),
    ("We love https://huggingface.co/org/x and fine-tuning.", []),
    (None, []), ("", []),
])
def test_extract_card_links(text, expected):
    got = [(c.parent, c.relation, c.pattern) for c in extract_card_links(text)]
    assert got == expected


def test_own_id_is_never_its_own_parent():
    text = "This model is a fine-tuned version of [u/me](https://huggingface.co/u/me)."
    assert extract_card_links(text, own_id="u/me") == ()


def test_card_links_only_when_nothing_is_declared():
    rec = ModelRecord.from_api({"id": "u/child", "card": TRAINER, "tags": ["peft"],
                                "library_name": "peft"})
    assert [(b.parent, b.source, b.inferred, b.pattern) for b in rec.base_models] == [
        ("meta-llama/Llama-2-7b-chat-hf", "card_text", True, "trainer")]
    declared = ModelRecord.from_api({"id": "u/child", "card": TRAINER,
                                     "tags": ["base_model:org/declared"]})
    assert [(b.parent, b.source) for b in declared.base_models] == [("org/declared", "tag")]
    merge = ModelRecord.from_api({"id": "u/m", "card": MERGEKIT, "tags": ["merge"]})
    assert {(b.parent, b.relation) for b in merge.base_models} == {("a/left", "merge"),
                                                                   ("b/right", "merge")}


def test_card_link_precision_counts_agreement():
    good = ModelRecord.from_api({"id": "u/a", "card": TRAINER,
                                 "tags": ["base_model:finetune:meta-llama/Llama-2-7b-chat-hf"]})
    bad = ModelRecord.from_api({"id": "u/b", "card": GGUF, "tags": ["base_model:other/x"]})
    report = card_link_precision([good, bad]).as_dict()
    assert report["models_checked"] == 2 and report["links"] == 2
    assert report["precision"] == 0.5
    assert report["per_pattern"]["trainer"]["precision"] == 1.0
    assert report["per_pattern"]["quantized"]["precision"] == 0.0


def test_card_links_on_real_2025_cards():
    """Against the parents the same models declare: the figure in the issue's closing note."""
    from ingest.lineage_eval import card_link_report

    trees = shared_data_or_skip("trees-2025")
    report = card_link_report(trees)
    assert report["models_checked"] > 1500 and report["links"] > 900
    assert report["precision"] >= 0.95
    assert report["per_pattern"]["trainer"]["precision"] >= 0.98


def test_declares_base():
    assert declares_base({"tags": ["base_model:a/b"]})
    assert declares_base({"baseModels": {"relation": "finetune", "models": [{"id": "a/b"}]}})
    assert declares_base({"cardData": {"base_model": "a/b"}})
    assert not declares_base({"tags": ["gguf"], "cardData": {"license": "mit"}})


def test_readmes_are_fetched_politely_for_models_without_a_base():
    models = [{"id": "u/no-base", "tags": ["transformers"], "lastModified": "2024-07-01T00:00:00Z"},
              {"id": "u/declared", "tags": ["base_model:org/x"]},
              {"id": "u/flaky", "tags": []},
              {"id": "u/no-card", "tags": []},
              {"id": "u/over-limit", "tags": []}]
    cards = {"u/no-base": TRAINER, "u/flaky": MERGEKIT, "u/over-limit": TRAINER}
    sleeps: list[float] = []
    with FakeHub(models=models, datasets=[], spaces=[], cards=cards) as hub:
        hub.add_fault(status=503, retry_after="2", nth=1, path="/u/flaky/resolve/main/README.md")
        src = HubSource(endpoint=hub.url, sleep=sleeps.append, backoff_base=0.01)
        wrapped = CardFetchingSource(LiveHubSource(src, kinds=("model",)), src, limit=3,
                                     interval=0.5, sleep=sleeps.append)
        items = {i.data["id"]: i.data for i in wrapped.iter_items()}
        url = hub.url
        readme_requests = [r.path for r in hub.requests if r.path.endswith("README.md")]
    assert items["u/no-base"]["card"] == TRAINER
    assert "card" not in items["u/declared"]          # declares a base: no request
    assert items["u/flaky"]["card"] == MERGEKIT       # 503 then retried after Retry-After
    assert "card" not in items["u/no-card"]           # 404: no card, no error
    assert "card" not in items["u/over-limit"]        # the per-run limit was reached
    assert readme_requests == ["/u/no-base/resolve/main/README.md",
                               "/u/flaky/resolve/main/README.md",
                               "/u/flaky/resolve/main/README.md",
                               "/u/no-card/resolve/main/README.md"]
    assert wrapped.fetched == 3 and wrapped.found == 2
    assert 2.0 in sleeps and sleeps.count(0.5) == 2   # Retry-After honoured; spaced requests
    assert wrapped.name == "hub:" + url  # the wrapped source's name: resumption unchanged
    recs = {i: ModelRecord.from_api(d) for i, d in items.items()}
    assert [b.source for b in recs["u/no-base"].base_models] == ["card_text"]
    assert {b.relation for b in recs["u/flaky"].base_models} == {"merge"}
