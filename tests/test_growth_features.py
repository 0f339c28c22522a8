"""analytics.growth.features: what a forecaster may know at an origin."""
from __future__ import annotations

import numpy as np

from analytics.growth.features import FEATURE_NAMES, authors_of, origin_features, value_at

COUNTS = np.array([
    [1.0, 1, 3, 3, 3, 7, np.nan],   # org/a: 6 months
    [0.0, 0, 2, 2, 2, 2, 2],        # org/b: 7 months
    [4.0, 4, 4, np.nan, np.nan, np.nan, np.nan],  # legacy id, 3 months
])
IDS = np.array(["org/a", "org/b", "legacy"], dtype=object)
N_OBS = np.array([6, 7, 3])


def col(f, name):
    return f.X[:, FEATURE_NAMES.index(name)]


def test_features_at_the_end_of_every_series():
    f = origin_features(COUNTS, N_OBS, authors_of(IDS), 0)
    assert f.X.shape == (3, len(FEATURE_NAMES))
    np.testing.assert_array_equal(f.last, [7, 2, 4])
    np.testing.assert_array_equal(f.pos, [5, 6, 2])
    np.testing.assert_allclose(np.expm1(col(f, "log_new_1")), [4, 0, 0])
    np.testing.assert_allclose(np.expm1(col(f, "log_new_3")), [4, 0, 4])  # all 3 months old
    np.testing.assert_allclose(col(f, "months_since_new"), [0, 4, 2])
    np.testing.assert_allclose(col(f, "active_months_6"), [3, 1, 1])
    # the author's *other* models: org/a sees org/b's 2, org/b sees org/a's 7, legacy has none
    np.testing.assert_allclose(np.expm1(col(f, "author_log_count"))[:2], [2, 7])
    assert np.isnan(col(f, "author_log_count")[2])
    assert f.eligible.all()


def test_an_origin_reads_nothing_after_it():
    k = 2
    f = origin_features(COUNTS, N_OBS, authors_of(IDS), k)
    later = COUNTS.copy()
    for i, n in enumerate(N_OBS):  # rewrite every month after the origin
        later[i, n - k:n] = 1000
    g = origin_features(later, N_OBS, authors_of(IDS), k)
    np.testing.assert_array_equal(f.X, g.X)
    np.testing.assert_array_equal(f.last, [3, 2, 4])
    # before a series starts: not eligible, count 0
    h = origin_features(COUNTS, N_OBS, authors_of(IDS), 3)
    assert not h.eligible[2] and h.last[2] == 0 and h.pos[2] == -1
    assert value_at(COUNTS, np.array([-1, 0, 2]))[0] == 0
