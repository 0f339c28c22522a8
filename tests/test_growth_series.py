"""analytics.growth.series: series from lineage edges and wide CSVs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics.growth import GrowthDataError, GrowthSeries, derivative_series, read_wide_csv


# --------------------------------------------------------------------------- series building
def _edges():
    ts = pd.Timestamp
    rows = [
        # parent A created 2023-01-01; children in months 0, 0, 2, and one dated before the parent
        ("A", ts("2023-01-01", tz="UTC"), "a1", ts("2023-01-10", tz="UTC"), "finetune"),
        ("A", ts("2023-01-01", tz="UTC"), "a2", ts("2023-01-20", tz="UTC"), "quantized"),
        ("A", ts("2023-01-01", tz="UTC"), "a3", ts("2023-03-15", tz="UTC"), "finetune"),
        (
            "A",
            ts("2023-01-01", tz="UTC"),
            "a3",
            ts("2023-03-15", tz="UTC"),
            "finetune",
        ),  # duplicate edge
        ("A", ts("2023-01-01", tz="UTC"), "a0", ts("2022-12-01", tz="UTC"), "adapter"),
        ("A", ts("2023-01-01", tz="UTC"), "ax", pd.NaT, "merge"),  # undated child
        # parent B: unknown creation -> imputed from first child (2023-02-01)
        ("B", pd.NaT, "b1", ts("2023-02-01", tz="UTC"), "unknown"),
        ("B", pd.NaT, "b2", ts("2023-04-15", tz="UTC"), "unknown"),
        # parent C: too young at as_of
        ("C", ts("2023-05-20", tz="UTC"), "c1", ts("2023-05-25", tz="UTC"), "merge"),
    ]
    return pd.DataFrame(
        rows, columns=["parent", "parent_created", "child", "child_created", "relation"]
    )


def test_derivative_series_counts_window_and_flags():
    gs = derivative_series(_edges(), as_of="2023-06-05")
    assert list(gs.ids) == ["A", "B"]
    assert gs.dropped["younger_than_one_month"] == 1 and gs.dropped["undated_children"] == 1
    a, b = 0, 1
    # A: 5 complete months by 2023-06-05 (age 155 d = 5.09 months) -> n_obs 5
    assert gs.n_obs[a] == 5
    np.testing.assert_array_equal(
        gs.counts[a, :5], [3, 3, 4, 4, 4]
    )  # a0 (before parent), a1, a2 in month 0
    assert gs.info.n_before_parent[a] == 1 and gs.info.n_undated_children[a] == 1
    assert not gs.info.parent_date_imputed[a] and gs.info.parent_date_imputed[b]
    # B: created 2023-02-01 (imputed), 4 complete months; b2 at age ~2.4 months -> month 2
    assert gs.n_obs[b] == 4
    np.testing.assert_array_equal(gs.counts[b, :4], [1, 1, 2, 2])
    assert np.isnan(gs.counts[b, 4:]).all()
    # round trip through the wide CSV form
    back = GrowthSeries.from_wide(gs.to_wide())
    np.testing.assert_array_equal(back.n_obs, gs.n_obs)
    np.testing.assert_array_equal(
        np.nan_to_num(back.counts, nan=-1), np.nan_to_num(gs.counts, nan=-1)
    )


def test_derivative_series_drop_unknown_and_by_relation():
    gs = derivative_series(_edges(), as_of="2023-06-05", unknown_parent="drop")
    assert list(gs.ids) == ["A"] and gs.dropped["unknown_parent_created"] == 1
    gr = derivative_series(_edges(), as_of="2023-06-05", by_relation=True)
    last = gr.counts[np.arange(len(gr)), gr.n_obs - 1]
    rel = dict(zip(zip(gr.ids, gr.relation), last))
    assert (
        rel[("A", "finetune")] == 2 and rel[("A", "quantized")] == 1 and rel[("A", "adapter")] == 1
    )
    assert rel[("B", "unknown")] == 2
    # default as_of = latest child date (2023-05-25): A has 4 complete months, C is too young
    d = derivative_series(_edges())
    assert d.n_obs[0] == 4 and "C" not in set(d.ids)


def test_coverage_end_ignores_a_sparse_later_crawl():
    from analytics.growth import coverage_end

    dense = pd.date_range("2024-01-01", "2024-07-11 18:00", freq="15min", tz="UTC")
    sparse = pd.date_range("2024-08-01", "2025-04-01", freq="3D", tz="UTC")
    end = coverage_end(pd.Series(dense.append(sparse)))
    assert end == dense[-1]
    assert coverage_end(pd.Series([], dtype="datetime64[ns, UTC]")) is None


def test_head_and_truncate_are_origins():
    counts = np.array([[1, 2, 3, 5, 8, np.nan], [0, 1, 1, 1, 2, 4.0]])
    gs = GrowthSeries(ids=np.array(["a", "b"], dtype=object), counts=counts, n_obs=None)
    assert list(gs.n_obs) == [5, 6]
    h = gs.head(4)
    assert h.counts.shape == (2, 4) and list(h.n_obs) == [4, 4]
    t = gs.truncate(2)  # an origin 2 months before the common end
    assert list(t.n_obs) == [3, 4] and np.isnan(t.counts[0, 3:]).all()
    np.testing.assert_array_equal(t.counts[1, :4], [0, 1, 1, 1])
    with pytest.raises(ValueError):
        gs.head(0)


def test_wide_csv_errors_name_the_cell(tmp_path):
    bad = tmp_path / "text.csv"
    bad.write_text("model,0-month,1-month,2-month\nx,1,two,3\n")
    with pytest.raises(GrowthDataError, match="non-numeric value 'two'.*1-month"):
        read_wide_csv(bad)
    gap = tmp_path / "gap.csv"
    gap.write_text("model,0-month,2-month\nx,1,3\n")
    with pytest.raises(GrowthDataError, match="without gaps"):
        read_wide_csv(gap)
    neg = tmp_path / "neg.csv"
    neg.write_text("model,0-month,1-month\nx,1,-3\n")
    with pytest.raises(GrowthDataError, match="negative count"):
        read_wide_csv(neg)
