"""Licence audit: does each derivative's licence honour its base model's? Families and
publishers ranked by conflicts, one model's licence chain, and the rules with their sources.
Deep link: `?model=org/name` (the "One model" tab)."""
from __future__ import annotations

import streamlit as st

from analytics import licences
from analytics.pipeline import LICENCE_AUDIT
from app_pages.common import (
    cached,
    csv_download,
    id_links,
    link_columns,
    model_picker,
    require_store,
    require_stored,
)
from graph import queries

VERDICT_COLOURS = {"same": "#2ca02c", "compatible": "#98df8a", "unstated": "#c7c7c7",
                   "unknown": "#bcbd22", "missing": "#ff7f0e", "conflict": "#d62728"}

st.title("Licence audit")
st.caption("For every base → derivative link: is the derivative's stated licence the same, "
           "compatible, missing, or in conflict (a stricter base, a looser child)? Rules and "
           "sources below and in docs/licences.md. Not legal advice.")


require_store()
audit = require_stored(LICENCE_AUDIT, "The licence audit")  # the job's result

counts = audit.verdict_counts()
by = counts.set_index("verdict")
m = st.columns(4)
m[0].metric("Lineage links judged", f"{int(by['edges'].sum()):,}")
m[1].metric("Derivatives", f"{int(by['models'].sum()):,}")
m[2].metric("In conflict", f"{int(by.at['conflict', 'models']):,}")
m[3].metric("Licence dropped", f"{int(by.at['missing', 'models']):,}")
st.dataframe(counts, hide_index=True, key="verdict_counts",
             column_config={"models": st.column_config.NumberColumn("derivatives"),
                            "edges": st.column_config.NumberColumn("links")})

# lazy tabs: only the open one runs; a `?model=` deep link opens "One model"
tab_fam, tab_pub, tab_pairs, tab_model, tab_rules = st.tabs(
    ["Families", "Publishers", "Licence pairs", "One model", "Rules"], on_change="rerun",
    key="licence_tab", default="One model" if st.query_params.get("model") else None)

with tab_fam:
    if tab_fam.open:
        st.caption("Families (a root and every model whose primary chain — the most downloaded "
                   "parent at each step — ends there), most conflicts first. Worst offenders: the "
                   "conflicting models whose licence the most descendants inherit.")
        top = audit.top_families(200)
        table, links = link_columns(top, root=("lineage", "model"), root_author=("publishers",
                                                                                 "author"))
        st.dataframe(table, hide_index=True, key="families_table", column_config={
            **links, "conflict_share": st.column_config.ProgressColumn(
                "conflict share", min_value=0.0, max_value=1.0, format="percent")})
        csv_download(audit.families, "Download all families (CSV)", "licence_families.csv",
                     key="families_csv")

with tab_pub:
    if tab_pub.open:
        st.caption("Authors ranked by the conflicting derivatives they published; family columns "
                   "count the models in families rooted at their own models.")
        top = audit.top_publishers(200)
        table, links = link_columns(top, author=("publishers", "author"))
        st.dataframe(table, hide_index=True, key="publishers_table", column_config={
            **links, "conflict_share": st.column_config.ProgressColumn(
                "conflict share", min_value=0.0, max_value=1.0, format="percent")})
        csv_download(audit.publishers, "Download all publishers (CSV)", "licence_publishers.csv",
                     key="publishers_csv")

with tab_pairs:
    if tab_pairs.open:
        verdict = st.segmented_control("Verdict", list(licences.VERDICTS), default="conflict",
                                       key="pairs_verdict")
        pairs = audit.transitions(verdict or None, limit=50)
        st.dataframe(pairs, hide_index=True, key="pairs_table")
        csv_download(audit.edges, "Download every judged link (CSV)", "licence_links.csv",
                     key="edges_csv")

with tab_model:
    if tab_model.open:
        model_id = model_picker("Model id", key="licence_model", query_param="model")
        if model_id is None:
            st.info("Pick a model to see its licence chain up to its root and its verdict.")
        else:
            id_links(model_id)
            row = audit.model(model_id)
            model = cached(queries.get_model, model_id)
            if row is None:
                st.info(f"No base model is recorded for this model, so there is nothing to judge "
                        f"(its licence: {model.license if model else None or 'none stated'}).")
            else:
                c = st.columns(3)
                c[0].metric("Verdict", row["verdict"])
                c[1].metric("Worst on the chain", row["chain_verdict"])
                c[2].metric("Root licence", row["root_licence"] or "—")
                st.markdown("**Licence chain to the root** (model first)")
                st.text(row["chain"])
                st.dataframe(audit.parent_edges(model_id)[
                    ["parent", "relation", "parent_licence", "licence", "verdict", "reason"]],
                    hide_index=True, key="parent_edges")
            desc = cached(queries.descendants, model_id, 10)
            if len(desc):
                st.markdown(f"**Its {len(desc):,} descendants by verdict**")
                st.dataframe(audit.subtree_counts(desc["id"]), hide_index=True, key="desc_verdicts")
                worst = audit.offenders(root=row["root"] if row else model_id, limit=20)
                if len(worst):
                    st.markdown("**Worst offenders in its family**")
                    table, links = link_columns(worst[["id", "author", "licence", "verdict",
                                                       "inheritors", "downloads", "chain"]],
                                                id=("lineage", "model"),
                                                author=("publishers", "author"))
                    st.dataframe(table, hide_index=True, key="offenders", column_config=links)

with tab_rules:
    if tab_rules.open:
        st.caption("What each licence obliges a derivative to keep, with the clause it comes "
                   "from (docs/licences.md explains the rules).")
        st.dataframe(licences.licence_rules(), hide_index=True, key="rules_table")
        common = ["apache-2.0", "mit", "bsd-3-clause", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0",
                  "cc-by-nc-sa-4.0", "cc-by-nc-nd-4.0", "openrail", "openrail++",
                  "creativeml-openrail-m", "llama2", "llama3", "llama3.1", "gemma", "mrl",
                  "gpl-3.0", "agpl-3.0", "other"]
        st.markdown("**Base (rows) → derivative (columns)**")
        matrix = licences.compatibility_table(common)
        st.dataframe(matrix.style.map(lambda v: f"background-color: {VERDICT_COLOURS[v]}33"),
                     key="compat_matrix")
