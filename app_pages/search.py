"""Search models: "which model should I start from for X?".

A thin page: every number comes from `analytics.retrieval` / `analytics.recommend`.
"""
from __future__ import annotations

import datetime as dt
from urllib.parse import quote

import streamlit as st

from analytics.pipeline import SEARCH
from analytics.recommend import ModelRecommender, build_tracer, trace_unlinked
from analytics.retrieval import HybridSearch, SearchFilters
from app_pages.common import hub_url, md_text, require_store, require_stored, stored

ANY = "(any)"


# `version` (the generation whose index is loaded) keys the cached functions below
def _search(version: str) -> HybridSearch:
    return stored(SEARCH).value[0]


def _recommender(version: str) -> ModelRecommender:
    return stored(SEARCH).value[1]


@st.cache_resource(show_spinner="Learning the base-model tracer…")
def _tracer(version: str):
    return build_tracer(_search(version), n_train=1000)


@st.cache_data(max_entries=256, show_spinner=False)
def _results(version: str, query: str, k: int, filters: SearchFilters):
    return _search(version).search(query, k=k, filters=filters)


@st.cache_data(max_entries=256, show_spinner=False)
def _similar(version: str, model_id: str, k: int):
    return _recommender(version).similar_models(model_id, k=k)


@st.cache_data(max_entries=256, show_spinner=False)
def _datasets(version: str, model_id: str, k: int):
    return _recommender(version).datasets_for_model(model_id, k=k)


@st.cache_data(max_entries=64, show_spinner=False)
def _start(version: str, task: str, k: int):
    return _recommender(version).where_to_start(task, k=k)


@st.cache_data(max_entries=64, show_spinner=False)
def _trace(version: str, model_id: str, k: int):
    return trace_unlinked(_tracer(version), model_id, k=k)


HUB = "https://huggingface.co/"


def _lineage_link(model_id: str) -> None:
    """A link to the Lineage page in this tab and session (st.page_link); a relative markdown
    link where the page is run on its own (tests)."""
    label = f"Open {md_text(model_id)} on the Lineage page"
    try:
        st.page_link("app_pages/lineage.py", label=label, icon=":material/account_tree:",
                     query_params={"model": model_id})
    except Exception:  # noqa: BLE001 - no navigation (the page run alone): a plain link
        st.markdown(f"[{label}](./lineage?model={quote(model_id, safe='/')})")
    st.markdown(f"[{md_text(model_id)} on the Hub ↗]({hub_url(model_id)})")


def main() -> None:
    st.title("Search models")
    st.caption("Which model should I start from? The query is read for what it names (a model, "
               "a family, a task), then ranked by meaning (MiniLM embeddings), matching words in "
               "ids and tags, and adoption (downloads, likes, derivatives).")
    require_store()  # an empty graph gets its message here
    require_stored(SEARCH, "The search index")
    version = stored(SEARCH).generation
    search = _search(version)
    opts = search.options()

    if "query" not in st.session_state:  # a shared link (?q=) fills the box once
        st.session_state["query"] = st.query_params.get("q", "")
    query = st.text_input("What do you need?", key="query",
                          placeholder="e.g. german named entity recognition")
    if query.strip() and st.query_params.get("q") != query:
        st.query_params["q"] = query  # the URL carries the query: shareable, survives reloads
    elif not query.strip() and "q" in st.query_params:
        del st.query_params["q"]
    with st.expander("Filters", expanded=False):
        c1, c2, c3 = st.columns(3)
        task = c1.selectbox("Task", [ANY, *opts["task"]])
        library = c2.selectbox("Library", [ANY, *opts["library"]])
        license_ = c3.selectbox("Licence", [ANY, *opts["license"]])
        c4, c5, c6 = st.columns(3)
        relation = c4.multiselect("Relation to its base", opts["relation"],
                                  help="base = no known base model")
        quantized = c5.radio("Quantized", ["any", "yes", "no"], horizontal=True)
        use_date = c6.checkbox("Created after…")
        created = c6.date_input("Created after", value=dt.date(2024, 1, 1),
                                disabled=not use_date, label_visibility="collapsed")
        k = st.slider("Results", 5, 50, 10)
    filters = SearchFilters(
        task=None if task == ANY else task, library=None if library == ANY else library,
        license=None if license_ == ANY else license_, relation=relation or None,
        quantized={"any": None, "yes": True, "no": False}[quantized],
        created_after=str(created) if use_date else None)

    if filters.task:
        with st.expander(f"Where to start for {filters.task}: base models by adoption and growth"):
            st.dataframe(_start(version, filters.task, 10), hide_index=True,
                         width="stretch")

    if not query.strip():
        st.info("Type what you need, e.g. *sentiment analysis for tweets* or "
                "*llama 3 8b instruct gguf*.")
        return
    res = _results(version, query, k, filters)
    if res.empty:
        st.warning("No model matches these filters.")
        return
    if (res["confidence"] == "low").all():
        st.warning(f"No model clearly matches **{query}**: nothing names it or its task, and "
                   "the closest meanings are weak. The results below are guesses.")
    table = res.assign(id=HUB + res["id"])  # shown as the id, links to the Hub
    st.dataframe(
        table[["id", "pipelineTag", "downloads", "license", "confidence", "score", "reason",
               "semantic", "lexical", "name", "popularity", "libraryName", "likes",
               "family_size", "relation"]],
        hide_index=True, width="stretch",
        column_config={
            "id": st.column_config.LinkColumn("model", display_text=r"https://huggingface\.co/(.*)",
                                               help="opens the model on the Hub"),
            "pipelineTag": st.column_config.TextColumn("task"),
            "downloads": st.column_config.NumberColumn(format="localized"),
            "license": st.column_config.TextColumn("licence"),
            "score": st.column_config.NumberColumn(format="%.3f"),
            "semantic": st.column_config.NumberColumn(format="%.2f"),
            "lexical": st.column_config.NumberColumn(format="%.2f"),
            "name": st.column_config.NumberColumn(format="%.2f"),
            "popularity": st.column_config.NumberColumn("adoption", format="%.2f"),
            "family_size": st.column_config.NumberColumn("derivatives")})

    picked = st.selectbox("Look closer at", res["id"].tolist())
    _lineage_link(picked)
    left, right = st.columns(2)
    with left:
        st.subheader("Similar models")
        st.dataframe(_similar(version, picked, 10)[["id", "score", "reason", "downloads"]],
                     hide_index=True, width="stretch")
    with right:
        st.subheader("Datasets to try")
        st.dataframe(_datasets(version, picked, 10), hide_index=True, width="stretch")
    with st.expander("Which base model is it? (ranked as if its base link were unknown)"):
        if st.button("Trace its base model"):
            st.dataframe(_trace(version, picked, 10)[["id", "score", "reason"]],
                         hide_index=True, width="stretch")


main()
