"""Hub Atlas: the Streamlit entry point. Wires config, the first-run seed and pages together.

Run: `streamlit run app.py` (graph from HUBATLAS_DB, or Neo4j when NEO4J_URI is set).
"""
from __future__ import annotations

import threading
from pathlib import Path

import streamlit as st

from analytics.pipeline import SEARCH, Refresh, build_now
from ingest.seed import seed_first_run
from pages.common import about_banner

HERE = Path(__file__).resolve().parent

# (file, title, icon, url path)
PAGES = [
    ("pages/overview.py", "Overview", ":material/dashboard:", "overview"),
    ("pages/lineage.py", "Lineage", ":material/account_tree:", "lineage"),
    ("pages/licences.py", "Licence audit", ":material/gavel:", "licences"),
    ("pages/publishers.py", "Publishers", ":material/groups:", "publishers"),
    ("pages/compare.py", "Compare", ":material/compare_arrows:", "compare"),
    ("pages/trends.py", "Trends", ":material/show_chart:", "trends"),
    ("pages/forecasts.py", "Forecasts", ":material/trending_up:", "forecasts"),
    ("pages/search.py", "Search", ":material/search:", "search"),
    ("pages/console.py", "Cypher console", ":material/terminal:", "console"),
]


@st.cache_resource(show_spinner="First run: loading a first graph (the shipped sample when the "
                                "Hub cannot be reached)…")
def _first_run() -> str | None:
    """Once per process: a first graph when none exists, with its derived results; the
    search index (the slow one: every model's text is embedded) follows in the background."""
    try:
        seeded = seed_first_run(refresh=Refresh(skip=(SEARCH,)))
    except Exception as e:  # noqa: BLE001 - shown to the user, the app keeps running
        return f"Could not load a first graph: {e}"
    if seeded is None:
        return None
    threading.Thread(target=build_now, args=([SEARCH],), name="first-run-search",
                     daemon=True).start()
    return f"First run: loaded {seeded.origin} data ({seeded.note})."


st.set_page_config(page_title="Hub Atlas", page_icon="🕸️", layout="wide")  # no :material: favicon: fetched from fonts.gstatic.com
problem = _first_run()
if problem and problem.startswith("Could not"):
    st.sidebar.warning(problem)
about_banner()
st.navigation([st.Page(HERE / path, title=title, icon=icon, url_path=url, default=(i == 0))
               for i, (path, title, icon, url) in enumerate(PAGES)]).run()
