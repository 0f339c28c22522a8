"""Hub Atlas: the Streamlit entry point. Wires config and pages together, nothing else.

Run: `streamlit run app.py` (graph from HUBATLAS_DB, or Neo4j when NEO4J_URI is set).
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from pages.common import maybe_seed, warm_up_in_background

HERE = Path(__file__).resolve().parent

# (file, title, icon, url path); pages written by others are listed once their file exists
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

st.set_page_config(page_title="Hub Atlas", page_icon="🕸️", layout="wide")  # no :material: favicon: fetched from fonts.gstatic.com
maybe_seed()
warm_up_in_background()
pages = [st.Page(HERE / path, title=title, icon=icon, url_path=url, default=(i == 0))
         for i, (path, title, icon, url) in enumerate(PAGES) if (HERE / path).exists()]
st.navigation(pages).run()
