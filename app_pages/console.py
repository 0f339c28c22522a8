"""Cypher console: one read-only query at a time, run in a sandboxed worker process."""
from __future__ import annotations

import streamlit as st

from app_pages.common import csv_download, generation, require_store
from graph.errors import GraphError, QueryError, QueryRefused, QueryTimeout
from graph.readonly import (
    DEFAULT_ROW_CAP,
    DEFAULT_TIMEOUT_S,
    EXAMPLES,
    display_frame,
    run_console_query,
    schema_overview,
)
from graph.sandbox import (
    ConsoleBusy,
    ConsoleSandbox,
    QueryOutOfMemory,
    ResultTooLarge,
    SandboxTarget,
    WorkerCrashed,
)


def _close(sandbox: ConsoleSandbox) -> None:
    sandbox.close()


@st.cache_resource(max_entries=1, show_spinner=False, on_release=_close)
def _sandbox(key: str) -> ConsoleSandbox:
    """One sandbox (a warm worker) per graph generation, shared by every session."""
    return ConsoleSandbox(SandboxTarget.current())


st.title("Cypher console")
store = require_store()
sandbox = _sandbox(generation().key)  # starts the warm worker while the user types
limits = sandbox.limits
st.caption(f"Read-only, checked against the engine's own plan: writes, schema changes, file "
           f"access, procedures, table functions and session commands are refused. Each query "
           f"runs in a separate worker process with no secrets, at most {DEFAULT_ROW_CAP:,} rows, "
           f"{DEFAULT_TIMEOUT_S:g} s and {limits.max_rss_mb:,} MB. Backend: "
           f"{store.dialect.name}.")


if sandbox.landlock_abi == 0:
    st.warning("This system has no Landlock, so the console's worker process cannot be "
               "locked out of files and the network; the engine's plan check and the other "
               "limits still apply.", icon="⚠️")
elif sandbox.isolation:
    st.caption(f"Worker isolation: {sandbox.isolation}.")


def _use_example() -> None:
    name = st.session_state.get("console_example")
    if name:
        st.session_state["console_query"] = EXAMPLES[name]


if "console_query" not in st.session_state:
    st.session_state["console_query"] = next(iter(EXAMPLES.values()))
st.selectbox("Examples", list(EXAMPLES), index=None, key="console_example",
             placeholder="load an example query…", on_change=_use_example)
query = st.text_area("Query", key="console_query", height=160, max_chars=limits.max_chars)
run = st.button("Run", type="primary", key="console_run")

with st.expander("Schema"):
    node_df, rel_df = schema_overview()
    st.dataframe(node_df, hide_index=True, key="schema_nodes")
    st.dataframe(rel_df, hide_index=True, key="schema_rels")
    st.caption("Lineage relations point from the derivative to its base model. Kùzu uses "
               "`label(r)` where Neo4j uses `type(r)`.")


def _failed(title: str, detail: object, *, icon: str, warning: bool = False) -> None:
    """A short message of ours, then the details as plain text (engine messages quote the
    query: never rendered as Markdown)."""
    (st.warning if warning else st.error)(title, icon=icon)
    st.code(str(detail), language=None, wrap_lines=True)


if run:
    try:
        result = run_console_query(sandbox, query, row_cap=DEFAULT_ROW_CAP,
                                   timeout_s=DEFAULT_TIMEOUT_S)
    except QueryRefused as e:
        _failed("Refused: the console runs one read-only statement (no writes, file access, "
                "procedures or session commands).", e, icon="🚫")
    except QueryTimeout as e:
        _failed(f"The query ran past {DEFAULT_TIMEOUT_S:g} s and was stopped. Add a LIMIT or "
                "narrow the MATCH.", e, icon="⏱️")
    except QueryOutOfMemory as e:
        _failed(f"The query needed more than {limits.max_rss_mb:,} MB and was stopped. Add a "
                "LIMIT, aggregate earlier or avoid huge lists and strings.", e, icon="🧱")
    except WorkerCrashed as e:
        _failed("The query crashed the console's worker process, which was replaced; the app "
                "and other users are unaffected.", e, icon="💥")
    except ConsoleBusy as e:
        _failed("The console is busy.", e, icon="⏳", warning=True)
    except ResultTooLarge as e:
        _failed("The result is too large to show.", e, icon="📦")
    except QueryError as e:
        _failed("The engine rejected the query.", e, icon="⚠️")
    except GraphError as e:
        _failed("The console could not run the query.", e, icon="⚠️")
    else:
        more = f" (capped at {result.row_cap:,}; more rows exist)" if result.truncated else ""
        st.success(f"{len(result.frame):,} rows{more} in {result.seconds:.2f} s")
        st.dataframe(display_frame(result.frame), hide_index=True, key="console_result")
        csv_download(result.frame, "Download result (CSV)", "query_result.csv",
                     key="console_csv")
