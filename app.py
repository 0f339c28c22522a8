"""Hub Atlas: the Streamlit entry point. Wires config, the first-run seed and pages together.

Run: `python app.py [streamlit flags]` (graph from HUBATLAS_DB, or Neo4j when NEO4J_URI is
set): Streamlit, with the pages' imports done and the stored results loaded before the server
answers (and a thread loading each new generation's after an ingest), so the first request
after a restart or an ingest pays for neither. `streamlit run app.py` works too (without).
"""
from __future__ import annotations

import ast
import importlib
import logging
import sys
import threading
from pathlib import Path

import streamlit as st

from app_pages.common import about_banner
from graph.store import current_generation, neo4j_configured

HERE = Path(__file__).resolve().parent

# (file, title, icon, url path)
PAGES = [
    ("app_pages/overview.py", "Overview", ":material/dashboard:", "overview"),
    ("app_pages/lineage.py", "Lineage", ":material/account_tree:", "lineage"),
    ("app_pages/licences.py", "Licence audit", ":material/gavel:", "licences"),
    ("app_pages/publishers.py", "Publishers", ":material/groups:", "publishers"),
    ("app_pages/compare.py", "Compare", ":material/compare_arrows:", "compare"),
    ("app_pages/trends.py", "Trends", ":material/show_chart:", "trends"),
    ("app_pages/forecasts.py", "Forecasts", ":material/trending_up:", "forecasts"),
    ("app_pages/search.py", "Search", ":material/search:", "search"),
    ("app_pages/console.py", "Cypher console", ":material/terminal:", "console"),
]


@st.cache_resource(show_spinner="First run: loading a first graph (the shipped sample when the "
                                "Hub cannot be reached)…")
def _first_run() -> str | None:
    """Once per process: a first graph when none exists, with its derived results; the
    search index (the slow one: every model's text is embedded) follows in the background."""
    if neo4j_configured() or current_generation() is not None:
        return None  # a graph exists: the seed (and the job's heavy imports) are not needed
    from analytics.pipeline import SEARCH, Refresh, build_now
    from ingest.seed import seed_first_run

    try:
        seeded = seed_first_run(refresh=Refresh(skip=(SEARCH,)))
    except Exception as e:  # noqa: BLE001 - shown to the user, the app keeps running
        return f"Could not load a first graph: {e}"
    if seeded is None:
        return None
    threading.Thread(target=build_now, args=([SEARCH],), name="first-run-search",
                     daemon=True).start()
    return f"First run: loaded {seeded.origin} data ({seeded.note})."


def warm_imports() -> list[str]:
    """Import every module the pages import (plotly, neo4j-viz, analytics readers…), read
    from their source; returns their names."""
    names: set[str] = set()
    for path, *_ in PAGES:
        for node in ast.walk(ast.parse((HERE / path).read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
    # Streamlit's own lazy imports of a first script run: the emoji table of the page icon
    # (a regex of every emoji, ~0.4 s to compile)
    names.add("streamlit.emojis")
    for name in sorted(names):
        importlib.import_module(name)
    return sorted(names)


WARM_THREAD = "warm-stored-results"


def start_warming() -> threading.Thread:
    """In the server process: load the current generation's stored results before the server
    answers (a warming thread would slow the first requests it races, by the GIL: measured
    +1.6 s on the overview), then each new generation's after an ingest, in a thread."""
    from app_pages.common import keep_warm, warm_up

    # Streamlit warns on every st.* call made outside a script run; the warm-up makes them
    # on purpose (the cached loaders), so its warnings are noise in the server log
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").addFilter(
        lambda record: record.threadName != WARM_THREAD)

    def first() -> None:
        try:
            warm_up()
        except Exception as e:  # noqa: BLE001 - never stop the app from starting: pages report it
            logging.getLogger(__name__).warning("could not load the stored results: %s", e)

    # before the server answers; st.cache_resource caches are the process's, which the runtime
    # started next uses
    warm = threading.Thread(target=first, name=WARM_THREAD)
    warm.start()
    warm.join()
    thread = threading.Thread(target=keep_warm, name=WARM_THREAD, daemon=True)
    thread.start()
    return thread


if __name__ == "__main__" and not st.runtime.exists():  # `python app.py`: serve it
    from streamlit.web import cli

    warm_imports()
    start_warming()
    sys.argv = ["streamlit", "run", str(Path(__file__).resolve()), *sys.argv[1:]]
    sys.exit(cli.main())

st.set_page_config(page_title="Hub Atlas", page_icon="🕸️", layout="wide")  # no :material: favicon: fetched from fonts.gstatic.com
problem = _first_run()
if problem and problem.startswith("Could not"):
    st.sidebar.warning(problem)
about_banner()
# The pages live in app_pages/, not pages/: Streamlit runs a first request after a restart in
# its legacy mode when a pages/ folder sits beside app.py, and a deep link (/lineage?model=...)
# then ran that page alone, listing every module of the folder as a page.
st.navigation([st.Page(HERE / path, title=title, icon=icon, url_path=url, default=(i == 0))
               for i, (path, title, icon, url) in enumerate(PAGES)]).run()
