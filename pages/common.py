"""Helpers shared by the pages: the cached store, cached graph calls, empty-graph handling,
the type-ahead model picker and the first-run seed ingest.

The store is a `st.cache_resource` keyed by the graph generation: when ingest publishes a
new generation (`graph.generations`), the next rerun opens it and the old one is closed.
Query results are `st.cache_data` keyed by the generation too, so they never go stale.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

import streamlit as st

from graph.errors import GraphEmpty, GraphError
from graph.generations import Generations
from graph.store import GraphStore, db_root, neo4j_configured, open_store

SEED_LIMIT_DEFAULT = 5000


# -- the store ------------------------------------------------------------------------------
def generation_key() -> str:
    """Identifies the graph the app should read now (changes when ingest publishes)."""
    if neo4j_configured():
        return "neo4j:" + os.environ.get("NEO4J_URI", "")
    root = db_root()
    return f"{root}:{Generations(root).current_name() or ''}"


def graph_generation() -> str:
    """Alias of `generation_key` for pages that key their caches by it."""
    return generation_key()


def _close(store: GraphStore) -> None:
    try:
        store.close()
    except Exception:  # noqa: BLE001 - closing an old generation must never break a page
        pass


@st.cache_resource(max_entries=1, show_spinner="Opening the graph…", on_release=_close)
def _open_store(key: str) -> GraphStore:
    root = None if neo4j_configured() else Path(key.rsplit(":", 1)[0])
    return open_store(read_only=True, root=root)


def get_store() -> GraphStore:
    """The read-only store of the current generation (raises GraphEmpty if there is none)."""
    key = generation_key()
    if key.endswith(":") and not neo4j_configured():
        raise GraphEmpty(f"no graph yet in {db_root()}")
    return _open_store(key)


@st.cache_data(max_entries=512, show_spinner=False)
def _cached_call(key: str, fn_path: str, args: tuple, kwargs: tuple) -> Any:
    module, name = fn_path.rsplit(".", 1)
    fn = getattr(importlib.import_module(module), name)
    return fn(_open_store(key), *args, **dict(kwargs))


def cached(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`fn(store, *args, **kwargs)` for a graph function, cached per generation."""
    key = generation_key()
    if key.endswith(":") and not neo4j_configured():
        raise GraphEmpty(f"no graph yet in {db_root()}")
    return _cached_call(key, f"{fn.__module__}.{fn.__name__}", args,
                        tuple(sorted(kwargs.items())))


@st.cache_resource(max_entries=1, show_spinner="Indexing model ids…")
def _id_index(key: str):
    from graph.insights import ModelIdIndex

    return ModelIdIndex.from_store(_open_store(key))


def id_index():
    """The type-ahead index of all model ids, built once per generation."""
    get_store()
    return _id_index(generation_key())


@st.cache_resource(max_entries=1, show_spinner="Loading the search index (vectors come from "
                                                "the cache; about a minute on the full graph)…")
def _search_index(key: str):
    from analytics.retrieval import build_search

    return build_search(_open_store(key))[0]


def search_index():
    """The fitted hybrid model search over the current generation (built once, cached)."""
    return _search_index(generation_key())


def warm_up_in_background() -> None:
    """Open the store, build the id index and the search index in a background thread
    (once per generation) so the first type-ahead or search does not wait for them."""
    import threading

    from streamlit import runtime

    if not runtime.exists():  # AppTest / bare mode: keep runs deterministic
        return
    key = generation_key()
    if key.endswith(":") and not neo4j_configured():
        return
    if _WARMED.get("key") == key:
        return
    _WARMED["key"] = key

    def work() -> None:
        try:
            _id_index(key)
            if os.environ.get("HUBATLAS_WARM_SEARCH", "1") != "0":
                # The slowest cold start (about a minute on 760k models). It shares the GIL
                # and the cores with the pages meanwhile: they render ~2x slower for that
                # minute, in exchange for a Search page that is ready when first opened.
                _search_index(key)
        except Exception:  # noqa: BLE001 - a failed warm-up just means a cold first search
            _WARMED.pop("key", None)

    threading.Thread(target=work, name="hubatlas-warm-up", daemon=True).start()


_WARMED: dict[str, str] = {}


# -- empty graph and the first-run seed --------------------------------------------------
def seed_limit() -> int:
    try:
        return int(os.environ.get("HUBATLAS_SEED_LIMIT", SEED_LIMIT_DEFAULT))
    except ValueError:
        return SEED_LIMIT_DEFAULT


@st.cache_resource(show_spinner=False)
def _seed_from_snapshot(directory: str, limit: int) -> str:
    """One bounded ingest from HUBATLAS_SNAPSHOT per process (the cache makes it run once)."""
    from ingest.run import ingest
    from ingest.sources import SnapshotSource

    report = ingest(SnapshotSource(Path(directory)), limit=limit)
    return f"loaded {dict(report.loaded)} from {directory}"


def maybe_seed() -> str | None:
    """On first run with no graph: ingest a bounded sample from HUBATLAS_SNAPSHOT if set."""
    directory = os.environ.get("HUBATLAS_SNAPSHOT")
    if neo4j_configured() or not directory:
        return None
    if Generations(db_root()).current_name():
        return None
    try:
        with st.spinner(f"First run: loading up to {seed_limit():,} records per kind from "
                        f"{directory}…"):
            return _seed_from_snapshot(directory, seed_limit())
    except Exception as e:  # noqa: BLE001 - shown to the user, the app keeps running
        st.warning(f"Could not seed the graph from {directory}: {e}")
        return None


def _seed_from_hub(limit: int) -> None:
    from ingest.hub import HubSource
    from ingest.run import ingest
    from ingest.sources import LiveHubSource

    try:
        with st.spinner(f"Loading up to {limit:,} records per kind from the Hub…"):
            ingest(LiveHubSource(HubSource()), limit=limit)
    except Exception as e:  # noqa: BLE001 - e.g. the Hub is unreachable
        st.session_state["seed_error"] = f"Could not load from the Hub: {e}"


def empty_graph_message(error: Exception | None = None) -> None:
    """Say there is no graph yet and how to load one (and offer a small Hub sample)."""
    st.info(
        "**No graph loaded yet.** Load one with\n\n"
        "```\npython -m ingest run --snapshot ../shared/data/hub-2024-07\n```\n"
        f"(or from the live Hub: `python -m ingest run --limit 5000`). Graph folder: "
        f"`{db_root()}`. Set `HUBATLAS_SNAPSHOT` to seed a bounded sample automatically on "
        "first run.")
    if error is not None and not isinstance(error, GraphEmpty):
        st.caption(f"Details: {error}")
    if st.session_state.get("seed_error"):
        st.warning(st.session_state["seed_error"])
    if not neo4j_configured():
        st.button(f"Load a sample of {seed_limit():,} models from the Hub",
                  on_click=_seed_from_hub, args=(seed_limit(),), key="seed_from_hub")


def require_store() -> GraphStore:
    """The store, or an empty-graph message and `st.stop()`."""
    try:
        return get_store()
    except GraphEmpty as e:
        empty_graph_message(e)
        st.stop()
    except GraphError as e:
        st.error(f"The graph could not be opened: {e}")
        st.stop()
    raise AssertionError("unreachable")


# -- type-ahead picker --------------------------------------------------------------------
def _pick(choice_key: str, text_key: str) -> None:
    choice = st.session_state.get(choice_key)
    if choice:
        st.session_state[text_key] = choice


def model_picker(label: str = "Model id", *, key: str = "model", default: Any = None,
                 multiple: bool = False, options: list[str] | None = None,
                 query_param: str | None = "model") -> Any:
    """Type-ahead model picker over every model id of the graph.

    Single (default): type part of an id and pick a match; `?<query_param>=org/name`
    deep-links and the chosen id is written back to the URL so the page can be shared.
    Returns a known id, or None (after saying why) when nothing is chosen or the id is
    unknown. `default` is the id shown when neither the URL nor the user gave one.

    multiple=True: a multiselect over `options` (ids the caller offers, e.g. base models
    with forecasts) with `default` preselected; returns the list of chosen ids.
    """
    if multiple:
        opts = list(options or [])
        known = set(opts)
        opts = [d for d in (default or []) if d not in known] + opts
        return st.multiselect(label, opts, default=list(default or []), key=key,
                              placeholder="type a model id…")
    text_key, choice_key = f"{key}_text", f"{key}_choice"
    if text_key not in st.session_state:
        initial = st.query_params.get(query_param, "") if query_param else ""
        st.session_state[text_key] = initial or (default or "")
    text = st.text_input(label, key=text_key, live="300ms", type="search",
                         placeholder="search model ids, e.g. llama or "
                                     "distilbert/distilbert-base-uncased")
    text = (text or "").strip()
    chosen, matches = None, []
    if text:
        from graph import queries

        if cached(queries.get_model, text) is not None:
            chosen = text  # an exact id (a deep link): no need for the id index
        else:
            index = id_index()  # built once per generation (~2 s on 760k ids)
            chosen = index.resolve(text)
            matches = index.search(text, limit=50)
    others = [m for m in matches if m != chosen]
    if others:
        st.selectbox(f"{len(others)}{'+' if len(matches) == 50 else ''} matching ids "
                     "(most downloaded first)", others, index=None, key=choice_key,
                     placeholder="pick a match…", on_change=_pick, args=(choice_key, text_key))
    if chosen:
        if query_param and st.query_params.get(query_param) != chosen:
            st.query_params[query_param] = chosen
        return chosen
    if text:
        if not matches:
            st.warning(f"No model id contains **{text}**.")
        else:
            st.caption(f"**{text}** is not a model id; pick one of the matches.")
    elif query_param and query_param in st.query_params:
        del st.query_params[query_param]
    return None


def csv_download(df, label: str, file_name: str, key: str) -> None:
    st.download_button(label, df.to_csv(index=False).encode("utf-8"), file_name=file_name,
                       mime="text/csv", key=key)


# -- ids as text, with links ---------------------------------------------------------------
HUB = "https://huggingface.co/"


def hub_url(repo_id: str) -> str:
    """The Hub page of a repo id or a namespace, percent-encoded."""
    return HUB + quote(repo_id, safe="/")


def page_url(page: str, **params: str) -> str:
    """A relative link to one of the app's pages with its deep-link parameters percent-encoded
    (the '/' of an id kept, so a link column can show the id)."""
    if not params:
        return page
    return page + "?" + "&".join(f"{k}={quote(str(v), safe='/')}" for k, v in params.items())


def author_of(repo_id: str) -> str | None:
    """The namespace of 'org/name'; None for a legacy bare name."""
    return repo_id.split("/", 1)[0] if "/" in (repo_id or "") else None


def id_links(model_id: str, *, author: str | None = None, lineage: bool = True,
             container: Any = None) -> None:
    """Show a model id as plain text (never Markdown: an id like `![x](http://evil)` stays
    those characters), then links to the Hub, the Lineage page and its author's page. Only
    the fixed link labels are Markdown; the URLs are percent-encoded."""
    row = (container or st).container(horizontal=True, gap="small")
    row.text(model_id)
    links = [f"[Hub]({hub_url(model_id)})"]
    if lineage:
        links.append(f"[Lineage]({page_url('lineage', model=model_id)})")
    who = author or author_of(model_id)
    if who:
        links.append(f"[Author page]({page_url('publishers', author=who)})")
    row.markdown(" · ".join(links))


def author_links(author: str, *, container: Any = None) -> None:
    """An author/organisation name as plain text with links to the Hub and its page here."""
    row = (container or st).container(horizontal=True, gap="small")
    row.text(author)
    own = page_url("publishers", author=author)
    row.markdown(f"[Hub]({hub_url(author)}) · [Author page]({own})")


def _blank(value: Any) -> bool:
    try:
        return value is None or bool(value != value) or value == ""
    except (TypeError, ValueError):  # pd.NA
        return True


def link_columns(df, **columns: tuple[str, str]):
    """Add a relative link column per `name=(page, param)` built from the column `name`, and
    the `column_config` that shows each as a link labelled with the id itself: returns
    (frame, column_config). Used for tables of ids (id → lineage, author → publishers)."""
    df = df.copy()
    config = {}
    for col, (page, param) in columns.items():
        if col not in df:
            continue
        df[col] = [None if _blank(v) else page_url(page, **{param: str(v)}) for v in df[col]]
        config[col] = st.column_config.LinkColumn(col, display_text=rf"{param}=(.*)")
    return df, config
