"""The type-ahead index of model ids behind every model picker."""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

#: a bare name resolves to its most downloaded match when that has this many times the
#: downloads of the next one (`gpt2` -> openai-community/gpt2, not a copy of it)
DOMINANT = 10.0


class ModelIdIndex:
    """All model ids in memory for type-ahead: prefix and substring search, best first.

    Built once per graph generation (one scan, ~1.5 s and ~100 MB for 760k ids); a search is
    a vectorised substring scan in Arrow plus a sort of the hits (a few ms to ~50 ms).
    Ranking: exact id, exact name (after the "org/"), id prefix, name prefix, then any
    substring; within a rank, most downloaded first ("gpt2" → openai-community/gpt2 first).
    """

    def __init__(self, ids: Iterable[str], downloads: Iterable[Any] | None = None):
        ids = pa.array(list(ids), type=pa.string())
        dl = (np.zeros(len(ids)) if downloads is None else
              pd.to_numeric(pd.Series(list(downloads), dtype=object), errors="coerce")
              .fillna(0).to_numpy(dtype="float64"))
        lower = pc.utf8_lower(ids)
        order = pc.sort_indices(lower).to_numpy()
        self.ids_ = np.asarray(ids.take(pa.array(order)).to_pylist(), dtype=object)
        self.downloads_ = dl[order]
        self._lower = lower.take(pa.array(order))
        self._lower_np = np.asarray(self._lower.to_pylist(), dtype=object)
        # the name part after "org/", for "llama" → "meta-llama/Llama-3…" style matches
        self._names = pc.utf8_lower(pc.replace_substring_regex(
            pa.array(self.ids_.tolist(), type=pa.string()), pattern="^[^/]*/", replacement=""))
        self._names_np = np.asarray(self._names.to_pylist(), dtype=object)
        self._set = set(self.ids_.tolist())

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> "ModelIdIndex":
        """From a frame with `id` and `downloads` columns (`graph.queries.model_ids_downloads`)."""
        return cls(frame["id"].tolist(), frame["downloads"].tolist())

    def __len__(self) -> int:
        return len(self.ids_)

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._set

    def resolve(self, text: str | None) -> str | None:
        """The model `text` means, when it means one: the id itself; the one id equal to it
        ignoring case; else a bare legacy name (`distilbert-base-uncased`) whose name part
        matches exactly one id, or whose most downloaded match has at least `DOMINANT` times
        the downloads of the next (the canonical repo, not a copy of it)."""
        text = (text or "").strip()
        if text in self._set:
            return text
        lo, hi = self._prefix_range(text.lower())
        exact = [i for i in self.ids_[lo:hi] if i.lower() == text.lower()]
        if len(exact) == 1:
            return exact[0]
        if not text or "/" in text:
            return None
        named = np.flatnonzero(self._names_np == text.lower())
        if len(named) == 1:
            return str(self.ids_[named[0]])
        if len(named) > 1:
            dl = np.sort(self.downloads_[named])[::-1]
            if dl[0] >= DOMINANT * max(dl[1], 1.0):
                return str(self.ids_[named[np.argmax(self.downloads_[named])]])
        return None

    def _prefix_range(self, prefix: str) -> tuple[int, int]:
        lo = int(np.searchsorted(self._lower_np, prefix, side="left"))
        hi = int(np.searchsorted(self._lower_np, prefix + "\U0010ffff", side="left"))
        return lo, hi

    def search(self, text: str | None, limit: int = 50) -> list[str]:
        """Ids containing `text` (case-insensitive), best first, at most `limit`. Words
        separated by spaces may come in any order (`llama 3 8b`): ids containing every word,
        most downloaded first."""
        needle = (text or "").strip().lower()
        if not needle or len(self.ids_) == 0:
            return []

        def mask(arr) -> np.ndarray:
            return arr.to_numpy(zero_copy_only=False).astype(bool)

        words = needle.split()
        if len(words) > 1:
            keep = mask(pc.match_substring(self._lower, words[0]))
            for w in words[1:]:
                keep &= mask(pc.match_substring(self._lower, w))
            hits = np.flatnonzero(keep)
            order = np.argsort(-self.downloads_[hits], kind="stable")[:limit]
            return self.ids_[hits[order]].tolist()
        hits = np.flatnonzero(mask(pc.match_substring(self._lower, needle)))
        if hits.size == 0:
            return []
        take = pa.array(hits)
        lower, names = self._lower.take(take), self._names.take(take)
        rank = np.full(hits.size, 4, dtype=np.int8)
        rank[mask(pc.starts_with(names, needle))] = 3
        rank[mask(pc.starts_with(lower, needle))] = 2
        rank[mask(pc.equal(names, needle))] = 1
        rank[mask(pc.equal(lower, needle))] = 0
        order = np.lexsort((-self.downloads_[hits], rank))[:limit]
        return self.ids_[hits[order]].tolist()
