"""analytics/model_rows.py: link lists and family sizes attached to the model rows."""
from __future__ import annotations

import pandas as pd

from analytics.model_rows import attach_links, family_sizes, model_text_frame
from graph import retrieval_queries as rq


def test_family_sizes_count_distinct_descendants_at_any_depth():
    # a diamond (d under b and c, counted once), a self loop, a two-model cycle
    lineage = pd.DataFrame({"child": ["b", "c", "d", "d", "e", "x", "q", "p"],
                            "parent": ["a", "a", "b", "c", "d", "x", "p", "q"]})
    sizes = family_sizes(lineage)
    assert sizes == {"a": 4, "b": 2, "c": 2, "d": 1, "p": 1, "q": 1}  # no model is its own


def test_attach_links_lists_sorted_links_and_zero_for_no_family():
    models = pd.DataFrame({"id": ["a", "b", "z"]})
    datasets = pd.DataFrame({"model": ["a", "a"], "dataset": ["d2", "d1"]})
    lineage = pd.DataFrame({"child": ["b", "b"], "parent": ["y", "a"],
                            "relation": ["merge", "finetune"]})
    out = attach_links(models, datasets, lineage).set_index("id")
    assert out.at["a", "datasets"] == ["d1", "d2"] and out.at["z", "datasets"] == []
    assert out.at["b", "bases"] == ["a", "y"] and out.at["b", "base_relations"] == [
        "finetune", "merge"]
    assert out["family_size"].to_dict() == {"a": 1, "b": 0, "z": 0}
    assert list(models.columns) == ["id"]  # the input frame is left as it was


def test_model_text_frame_is_the_graphs_rows_with_their_links(mini_store):
    frame = model_text_frame(mini_store)
    assert len(frame) == len(rq.model_frame(mini_store))
    lineage = rq.lineage_links(mini_store)
    child, parent = lineage.iloc[0]["child"], lineage.iloc[0]["parent"]
    assert parent in frame.set_index("id").at[child, "bases"]
    assert frame["family_size"].max() > 0
