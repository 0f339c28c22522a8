"""What every page shares: the graph generation it reads, the cached store, one cache helper
for graph calls, stored results of the scheduled job, empty-graph handling and the picker.

Everything is keyed by the graph `Generation` (`graph.store`): when ingest publishes a new one
(a new embedded folder, or a newer finished run on Neo4j), the next rerun reads it, and the
caches of the old one are dropped. Pages never compute whole-graph results: they read what the
scheduled job stored (`stored`), and fall back to the previous generation's while the newest
one's are being built. The app server loads the current generation's results before it
answers (`warm_up`) and each new generation's in a thread (`keep_warm`), so the first request
after a restart or an ingest finds them loaded.
"""
from __future__ import annotations

import gc
import logging
import re
import threading
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar
from urllib.parse import quote

import streamlit as st

from analytics.pipeline import ABOUT, ID_INDEX
from analytics.results import Results, find_ready
from app_pages.loaders import LOADERS
from graph.errors import GraphEmpty, GraphError
from graph.store import Generation, GraphStore, current_generation, db_root, neo4j_configured, open_store

T = TypeVar("T")
log = logging.getLogger(__name__)

_BACKTICKS = re.compile(r"`+")


# -- text from data and users --------------------------------------------------------------
def md_text(value: Any) -> str:
    """`value` (a model id, a `?model=` parameter, any text from data or users) for a call
    that renders Markdown — st.markdown/caption/info/warning/error/subheader, metric labels
    and values, widget labels — shown literally, as inline code: nothing inside a code span
    is read as a link, image, emphasis, bare URL, LaTeX or Streamlit directive (escaping
    the punctuation is not enough: Streamlit still autolinks a bare `http://…`). The fence is
    longer than any run of backticks in the text, so the text cannot close it; line breaks
    become spaces."""
    text = " ".join(str(value).splitlines()) or " "
    fence = "`" * (1 + max((len(m) for m in _BACKTICKS.findall(text)), default=0))
    # CommonMark strips one space on each side when both are there (not from all-space text)
    pad = " " if text.strip() and (text[0] in "` " or text[-1] in "` ") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def hub_url(model_id: str) -> str:
    """The model's page on the Hugging Face Hub; the id is percent-encoded, so it cannot
    leave the path (no ')' to end a Markdown link, no '?', '#' or host)."""
    return "https://huggingface.co/" + quote(str(model_id), safe="/")


# -- the generation and the store -------------------------------------------------------------
def _close(store: GraphStore) -> None:
    try:
        store.close()
    except Exception:  # noqa: BLE001 - closing an old generation must never break a page
        pass


@st.cache_resource(max_entries=1, show_spinner="Opening the graph…", on_release=_close)
def _store(key: str) -> GraphStore:
    """One read-only store per generation key (embedded: the key names its folder)."""
    if neo4j_configured():
        return open_store(read_only=True)
    return open_store(read_only=True, root=Path(key.split(":", 1)[1]).parent)


@st.cache_data(ttl=10, show_spinner=False)
def _neo4j_generation() -> Generation:
    # Neo4j changes in place: ask which run finished last, at most every 10 s
    return _store("neo4j:").generation()


def generation() -> Generation:
    """The generation pages read now; raises `GraphEmpty` when nothing was published yet."""
    gen = _neo4j_generation() if neo4j_configured() else current_generation()
    if gen is None:
        raise GraphEmpty(f"no graph yet in {db_root()}: run `python -m ingest run` first")
    return gen


def get_store() -> GraphStore:
    """The read-only store of the current generation."""
    gen = generation()
    return _store("neo4j:" if gen.backend == "neo4j" else gen.key)


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


def _function_key(fn: types.FunctionType) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


@st.cache_data(max_entries=512, show_spinner=False,
               hash_funcs={types.FunctionType: _function_key})
def _cached_call(key: str, fn: Callable[..., Any], args: tuple, kwargs: tuple) -> Any:
    return fn(get_store(), *args, **dict(kwargs))


def cached(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(store, *args, **kwargs)` for a per-model graph call, cached per generation."""
    return _cached_call(generation().key, fn, args, tuple(sorted(kwargs.items())))


# -- stored results -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Stored(Generic[T]):
    """A result the scheduled job stored, and the generation it belongs to."""

    value: T
    generation: str
    current: bool  # False: the newest generation's result is not ready yet; this is older


# entries: each result of the current generation and of the one before (while the newest's are
# being built), not of every generation the server has seen
@st.cache_resource(max_entries=3 * len(LOADERS), show_spinner="Loading stored results…")
def _load_stored(key: str, name: str, current_ready: bool) -> Stored | None:
    # `current_ready` is part of the key: an older generation's result stands in only until
    # the current generation's is ready
    found = find_ready(name, generation())
    if found is None:
        return None
    return Stored(LOADERS[name](found.results), found.results.generation.name, found.current)


def stored(name: str) -> Stored | None:
    """The stored result `name` (`analytics.pipeline`) of the newest generation that has it,
    read by its loader (`app_pages.loaders`) once per generation; None when no generation
    has it yet."""
    gen = generation()
    return _load_stored(gen.key, name, Results(gen).ready(name))


def require_stored(name: str, what: str) -> Any:
    """The stored result's value, saying when it is an older generation's; or a message
    and `st.stop()` when the scheduled job has not built it yet."""
    found = stored(name)
    if found is None:
        st.info(f"**{what}** is not computed yet for this graph: the scheduled job builds it "
                "after each ingest (`python -m ingest run`, or `python -m analytics refresh`).")
        st.stop()
    if not found.current:
        st.caption(f"The newest graph's {what.lower()} is still being computed; showing the "
                   f"previous generation's ({found.generation}).")
    return found.value


def warm_up() -> Generation | None:
    """Open the current generation's store and load every stored result the pages read
    (what a first request after a restart or an ingest would otherwise wait for), into the
    same caches the pages use. Returns the generation warmed; None when there is no graph.
    A result that fails to load is left for the page to report."""
    try:
        gen = generation()
        get_store()
    except GraphError:
        return None
    for name in LOADERS:
        try:
            stored(name)
        except Exception as e:  # noqa: BLE001 - the page shows the error when it asks
            log.warning("warm-up: %s of %s did not load: %s", name, gen.name, e)
    return gen


def _ready_state() -> tuple | None:
    # what the page caches are keyed by: the generation, and which of its results are ready
    try:
        gen = generation()
    except GraphError:
        return None
    results = Results(gen)
    return gen, tuple(results.ready(name) for name in LOADERS)


def keep_warm(poll_s: float = 5.0, stop: threading.Event | None = None) -> None:
    """Warm the current generation now, and again whenever the scheduled job publishes a new
    one or finishes one of its results, until `stop` is set. Runs in a thread of the app
    server (`app.py`)."""
    stop = stop or threading.Event()
    warmed = None
    while not stop.is_set():
        state = _ready_state()
        if state is not None and state != warmed:
            warm_up()
            warmed = state
            # The results are millions of long-lived objects (ids, frames): keep them out of
            # the full collection Streamlit runs after every script run (runner.postScriptGC),
            # which otherwise takes ~0.5 s of each page view on the full graph.
            gc.collect()
            gc.freeze()
        stop.wait(poll_s)


def _about() -> dict[str, Any] | None:
    try:
        found = stored(ABOUT)
    except GraphError:
        return None
    return found.value if found is not None else None


def observed_until() -> str | None:
    """The day the graph's observations end (one "as of" for every page), e.g. 2024-07-11."""
    about = _about() or {}
    return (about.get("observed_until") or "")[:10] or None


def about_banner() -> None:
    """Say on every page how far the data goes, and label the shipped sample as such."""
    about = _about()
    if about is None:
        return
    if about.get("observed_until"):
        st.sidebar.caption(f"Data as of **{about['observed_until'][:10]}** (where the graph's "
                           "observations end)")
    if about.get("sample"):
        st.sidebar.info("**Sample data**: a small recorded slice of the Hub (a few dozen model "
                        "families) loaded on first run. Load the real thing with "
                        "`python -m ingest run`.")


# -- empty graph ----------------------------------------------------------------------------------
def empty_graph_message(error: Exception | None = None) -> None:
    """Say there is no graph yet and how to load one."""
    st.info(
        "**No graph loaded yet.** Load one with\n\n"
        "```\npython -m ingest run --snapshot ../shared/data/hub-2024-07\n```\n"
        f"(or from the live Hub: `python -m ingest run --limit 5000`). Graph folder: "
        f"`{db_root()}`.")
    if error is not None and not isinstance(error, GraphEmpty):
        st.caption(f"Details: {error}")


# -- type-ahead picker --------------------------------------------------------------------------
def id_index():
    """The type-ahead index of all model ids (stored by the scheduled job), or None."""
    found = stored(ID_INDEX)
    return found.value if found is not None else None


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
            index = id_index()
            if index is None:
                st.caption("The id index is still being built; type an exact model id.")
            else:
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
            st.warning(f"No model id contains **{md_text(text)}**.")
        else:
            st.caption(f"**{md_text(text)}** is not a model id; pick one of the matches.")
    elif query_param and query_param in st.query_params:
        del st.query_params[query_param]
    return None


def csv_download(df, label: str, file_name: str, key: str) -> None:
    st.download_button(label, df.to_csv(index=False).encode("utf-8"), file_name=file_name,
                       mime="text/csv", key=key)


# -- ids as text, with links ---------------------------------------------------------------
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


#: integer columns shown with thousands separators in every table of models
COUNT_COLUMNS = ("downloads", "likes")


def link_columns(df, **columns: tuple[str, str]):
    """Add a relative link column per `name=(page, param)` built from the column `name`, and
    the `column_config` that shows each as a link labelled with the id itself: returns
    (frame, column_config). Used for tables of ids (id → lineage, author → publishers). The
    config also shows the counts people compare (downloads, likes) with thousands separators."""
    df = df.copy()
    config = {c: st.column_config.NumberColumn(c, format="localized")
              for c in COUNT_COLUMNS if c in df}
    for col, (page, param) in columns.items():
        if col not in df:
            continue
        df[col] = [None if _blank(v) else page_url(page, **{param: str(v)}) for v in df[col]]
        config[col] = st.column_config.LinkColumn(col, display_text=rf"{param}=(.*)")
    return df, config
