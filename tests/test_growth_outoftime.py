"""analytics.growth.outoftime: the 2025 model trees as an out-of-time truth."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd

from analytics.growth import GrowthSeries, LastValue, PooledRateForecaster
from analytics.growth.outoftime import out_of_time, read_trees, tree_counts
from tests.conftest import shared_data_or_skip


def _write_trees(path):
    rows = [
        {"tree_root": "base", "model_id": "org/base", "depth": 0,
         "metadata": "{'id': 'org/base', 'created_at': '2024-01-01 00:00:00+00:00', "
                     "'last_modified': '2025-03-20 10:00:00+00:00'}",
         "children": ["['https://huggingface.co/a/ft1'", "'https://huggingface.co/a/ft2']"],
         "adapters": ["b/lora"], "quantized": [], "merges": []},
        {"tree_root": "base", "model_id": "a/ft1", "depth": 1, "metadata": None,
         "children": ["[]"], "adapters": [], "quantized": ["https://huggingface.co/q/ft1-gguf"],
         "merges": []},
    ]
    with gzip.open(path, "wt") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")


def test_tree_counts_parse_every_list_form(tmp_path):
    _write_trees(tmp_path / "trees.jsonl.gz")
    trees = read_trees(tmp_path / "trees.jsonl.gz")
    edges = pd.DataFrame({"parent": ["org/base", "org/base", "org/base"],
                          "child": ["a/ft1", "gone/deleted", "a/ft1"]})
    c = tree_counts(trees, edges).set_index("model")
    assert c.at["org/base", "observed_2025"] == 3 and c.at["a/ft1", "observed_2025"] == 1
    assert c.at["org/base", "n_children"] == 2 and c.at["org/base", "n_adapters"] == 1
    # the crawl date: latest last_modified of the tree, never before March 2025
    assert c.at["org/base", "crawl_date"] == pd.Timestamp("2025-03-20 10:00", tz="UTC")
    assert c.at["org/base", "july_children"] == 2 and c.at["org/base", "july_still_listed"] == 1
    assert not c["capped"].any()


def test_out_of_time_forecasts_to_the_crawl_date(tmp_path):
    _write_trees(tmp_path / "trees.jsonl.gz")
    counts = tree_counts(read_trees(tmp_path / "trees.jsonl.gz"))
    created = pd.Timestamp("2024-01-05", tz="UTC")
    series = GrowthSeries(ids=np.array(["org/base", "x/other"], dtype=object),
                          counts=np.array([[1.0, 1, 2, 2, 2, 2], [1, 1, 1, 1, 1, 1]]),
                          n_obs=np.array([6, 6]),
                          info=pd.DataFrame({"parent_created": [created, created]}))
    rows = out_of_time(series, counts, {"last_value": LastValue,
                                        "pooled_rate": PooledRateForecaster})
    assert set(rows["model"]) == {"org/base"} and len(rows) == 2
    r = rows[rows["method"] == "last_value"].iloc[0]
    assert r["forecast"] == 2 and r["observed"] == 3
    # six months after 2024-01-05 to 2025-03-20: about 8.5 months
    assert 8.0 < r["horizon_months"] < 9.0


def test_real_trees_2025():
    folder = shared_data_or_skip("trees-2025")
    trees = read_trees(folder / "trees.jsonl.gz")
    assert len(trees) > 2000
    c = tree_counts(trees)
    assert (c["crawl_date"] >= pd.Timestamp("2025-03-01", tz="UTC")).all()
    assert (c["crawl_date"] <= pd.Timestamp("2025-05-01", tz="UTC")).all()
    gemma = c.set_index("model").loc["google/gemma-7b"]
    assert gemma["capped"] and gemma["n_adapters"] == 3000


def test_out_of_time_scores_only_models_with_a_derivative_at_the_end(tmp_path):
    """A model of the trees whose July series ends at 0 (its July children came in the last,
    incomplete month) has no product forecast: no method is scored on it, and it is named."""
    _write_trees(tmp_path / "trees.jsonl.gz")
    counts = tree_counts(read_trees(tmp_path / "trees.jsonl.gz"))
    created = pd.Timestamp("2024-01-05", tz="UTC")
    series = GrowthSeries(ids=np.array(["org/base", "a/ft1"], dtype=object),
                          counts=np.array([[1.0, 1, 2, 2, 2, 2], [0, 0, 0, 0, 0, 0]]),
                          n_obs=np.array([6, 6]),
                          info=pd.DataFrame({"parent_created": [created, created]}))
    rows = out_of_time(series, counts, {"last_value": LastValue,
                                        "pooled_rate": PooledRateForecaster})
    assert set(rows["model"]) == {"org/base"} and len(rows) == 2
    assert rows.attrs["no_derivative_at_end"] == ["a/ft1"]
