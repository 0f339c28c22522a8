"""What is known about every series at a forecast origin, as a feature matrix.

A batch of series built by :func:`~analytics.growth.series.derivative_series` ends at the same
``as_of`` for every series, so "origin ``k``" — ``k`` months before the end — is the same
calendar month for all of them (within the month each parent's age-months start).  The
features of origin ``k`` read only the months up to the origin: a model trained on origins
``k >= h`` with targets ``h`` months later never sees past the end of its input.

Everything comes from the counts and the model ids (the author is the id's ``org/`` part), so a
wide CSV carries all a forecaster needs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

FEATURE_NAMES = (
    "log_count",          # log1p(derivatives at the origin)
    "log_age",            # log1p(months since the base model's creation)
    "log_new_1", "log_new_2", "log_new_3", "log_new_6", "log_new_12",  # new in the last j months
    "months_since_new",   # months since the last month with a new derivative
    "months_since_first",  # months since the first derivative
    "active_months_6",    # months with a new derivative among the last 6
    "log_max_new",        # log1p(largest monthly number of new derivatives so far)
    "share_new_3",        # share of the count that arrived in the last 3 months
    "author_log_count",   # the author's other base models: log1p(derivatives)
    "author_log_new_3",   # ... log1p(new in the last 3 months)
    "author_log_new_1",   # ... log1p(new in the last month)
    "author_log_models",  # ... log1p(number of base models with a derivative)
)


@dataclass
class OriginFeatures:
    """Features of every series at one origin.

    X        : (n, len(FEATURE_NAMES)) float matrix.
    eligible : (n,) bool — at least one complete month old and one derivative at the origin
               (the series a forecast is made for).
    last     : (n,) count at the origin (0 before the series starts).
    pos      : (n,) int column of the origin in the counts matrix (-1 before the start).
    """

    X: np.ndarray
    eligible: np.ndarray
    last: np.ndarray
    pos: np.ndarray


def value_at(counts: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """``counts[i, pos[i]]``; 0 where ``pos < 0`` (before the base model existed)."""
    out = np.zeros(len(counts))
    ok = pos >= 0
    out[ok] = counts[np.flatnonzero(ok), pos[ok]]
    return out


def authors_of(ids) -> np.ndarray:
    """The ``org`` of ``org/name`` ids ('' for legacy ids without one)."""
    return np.array([s.split("/", 1)[0] if "/" in s else "" for s in map(str, ids)], dtype=object)


def origin_features(counts: np.ndarray, n_obs: np.ndarray, authors: np.ndarray,
                    k: int) -> OriginFeatures:
    """Features of every series ``k`` months before its end (see :data:`FEATURE_NAMES`)."""
    counts = np.asarray(counts, float)
    n, T = counts.shape
    pos = np.asarray(n_obs, int) - 1 - int(k)
    last = value_at(counts, pos)
    filled = np.nan_to_num(counts, nan=0.0)
    new = np.diff(np.concatenate([np.zeros((n, 1)), filled], axis=1), axis=1)
    col = np.arange(T)[None, :]
    seen = col <= pos[:, None]
    grew = (new > 0) & seen
    any_growth = grew.any(axis=1)
    last_growth = np.where(any_growth, T - 1 - np.argmax(grew[:, ::-1], axis=1), -1)
    first_growth = np.where(any_growth, np.argmax(grew, axis=1), -1)
    cols = [np.log1p(last), np.log1p(np.maximum(pos + 1, 0))]
    for j in (1, 2, 3, 6, 12):
        cols.append(np.log1p(np.maximum(last - value_at(counts, pos - j), 0.0)))
    cols.append(np.where(any_growth, pos - last_growth, np.maximum(pos + 1, 0)).astype(float))
    cols.append(np.where(any_growth, pos - first_growth, 0).astype(float))
    cols.append((grew & (col > (pos - 6)[:, None])).sum(axis=1).astype(float))
    cols.append(np.log1p(np.where(seen, new, 0.0).max(axis=1, initial=0.0)))
    new_3 = last - value_at(counts, pos - 3)
    cols.append(np.where(last > 0, new_3 / np.maximum(last, 1.0), 0.0))
    eligible = (pos >= 0) & (last >= 1)
    cols.extend(_author_columns(authors, eligible, last, new_3, last - value_at(counts, pos - 1)))
    return OriginFeatures(X=np.column_stack(cols), eligible=eligible, last=last, pos=pos)


def _author_columns(authors, eligible, last, new_3, new_1) -> list[np.ndarray]:
    """The same author's *other* base models at the origin (NaN for ids without an author)."""
    own = np.column_stack([np.where(eligible, last, 0.0), np.where(eligible, new_3, 0.0),
                           np.where(eligible, new_1, 0.0), eligible.astype(float)])
    frame = pd.DataFrame(own, columns=["count", "new_3", "new_1", "models"])
    frame["author"] = authors
    others = frame.groupby("author")[["count", "new_3", "new_1", "models"]].transform("sum")
    others = others.to_numpy() - own
    others[np.asarray(authors) == ""] = np.nan
    return [np.log1p(np.maximum(others[:, j], 0.0)) for j in range(4)]
