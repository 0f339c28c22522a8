"""How the pages read each result the scheduled job stores: one loader per result name.

`app_pages.common.stored(name)` loads a result with its loader here, once per generation;
`app_pages.common.warm_up` runs them all before the first request needs them.
"""
from __future__ import annotations

from typing import Any, Callable

from analytics.forecasts import ForecastTable
from analytics.id_index import ModelIdIndex
from analytics.licences import LicenceAudit
from analytics.pipeline import (
    ABOUT,
    FORECASTS,
    ID_INDEX,
    LICENCE_AUDIT,
    OVERVIEW,
    PUBLISHERS,
    RECOMMENDER,
    SEARCH,
    TRENDS,
)
from analytics.recommend import ModelRecommender
from analytics.results import Results
from analytics.retrieval import HybridSearch
from analytics.trends import Trends


def load_search(results: Results) -> tuple[HybridSearch, ModelRecommender]:
    """The saved search index and recommender (memory-mapped), each run once on a query as
    the Search page runs them (the query encoder starts, lookups build), so a user's first
    search pays for none of it."""
    search = HybridSearch.load(results.folder(SEARCH))
    recommender = ModelRecommender.load(results.folder(RECOMMENDER), search)
    top = search.search("text classification", k=10)
    if len(top):
        recommender.similar_models(top["id"].iloc[0], k=10)
        recommender.datasets_for_model(top["id"].iloc[0], k=10)
    return search, recommender


#: result name → how a page reads it; the order is the warm-up's (the pages users open first)
LOADERS: dict[str, Callable[[Results], Any]] = {
    ABOUT: lambda results: results.load_json(ABOUT),
    OVERVIEW: lambda results: results.load_object(OVERVIEW),
    ID_INDEX: lambda results: ModelIdIndex.from_frame(results.load_frame(ID_INDEX)),
    FORECASTS: lambda results: ForecastTable.load(results.folder(FORECASTS)),
    LICENCE_AUDIT: lambda results: LicenceAudit.load(results.folder(LICENCE_AUDIT)),
    PUBLISHERS: lambda results: results.load_frame(PUBLISHERS),
    TRENDS: lambda results: Trends.load(results.folder(TRENDS)),
    SEARCH: load_search,
}
