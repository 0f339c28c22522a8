"""Cypher console: one read-only query at a time, with a row cap and a time limit."""
from __future__ import annotations

import streamlit as st

from graph.errors import QueryError, QueryRefused, QueryTimeout
from graph.readonly import (
    DEFAULT_ROW_CAP,
    DEFAULT_TIMEOUT_S,
    EXAMPLES,
    display_frame,
    run_console_query,
    schema_overview,
)
from pages.common import csv_download, require_store

st.title("Cypher console")
store = require_store()
st.caption(f"Read-only: writes, schema changes, procedure calls, file access and multiple "
           f"statements are refused, and the graph is opened read-only. At most "
           f"{DEFAULT_ROW_CAP:,} rows, {DEFAULT_TIMEOUT_S:g} s. Backend: {store.dialect.name}.")


def _use_example() -> None:
    name = st.session_state.get("console_example")
    if name:
        st.session_state["console_query"] = EXAMPLES[name]


if "console_query" not in st.session_state:
    st.session_state["console_query"] = next(iter(EXAMPLES.values()))
st.selectbox("Examples", list(EXAMPLES), index=None, key="console_example",
             placeholder="load an example query…", on_change=_use_example)
query = st.text_area("Query", key="console_query", height=160)
run = st.button("Run", type="primary", key="console_run")

with st.expander("Schema"):
    node_df, rel_df = schema_overview()
    st.dataframe(node_df, hide_index=True, key="schema_nodes")
    st.dataframe(rel_df, hide_index=True, key="schema_rels")
    st.caption("Lineage relations point from the derivative to its base model. Kùzu uses "
               "`label(r)` where Neo4j uses `type(r)`.")

if run:
    try:
        result = run_console_query(store, query, row_cap=DEFAULT_ROW_CAP,
                                   timeout_s=DEFAULT_TIMEOUT_S)
    except QueryRefused as e:
        st.error(str(e), icon="🚫")
    except QueryTimeout:
        st.error(f"The query ran past {DEFAULT_TIMEOUT_S:g} s and was stopped. Add a LIMIT or "
                 "narrow the MATCH.", icon="⏱️")
    except QueryError as e:
        st.error(f"The engine rejected the query: {e}")
    else:
        more = f" (capped at {result.row_cap:,}; more rows exist)" if result.truncated else ""
        st.success(f"{len(result.frame):,} rows{more} in {result.seconds:.2f} s")
        st.dataframe(display_frame(result.frame), hide_index=True, key="console_result")
        csv_download(result.frame, "Download result (CSV)", "query_result.csv",
                     key="console_csv")
