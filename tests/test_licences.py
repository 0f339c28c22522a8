"""analytics/licences.py: the compatibility rules, the batch audit on the mini graph (checked
against a plain-Python reference), the write into a graph, and the full snapshot."""
from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest

from analytics import licences as L
from graph import queries as q
from graph import views_queries as vq
from graph.generations import Generations
from graph.kuzu_store import KuzuStore

DOCS = Path(__file__).resolve().parent.parent / "docs" / "licences.md"


# -- the rules ---------------------------------------------------------------------------
@pytest.mark.parametrize("base, child, verdict", [
    # the examples: a CC-BY-NC or Llama base with Apache-2.0 children
    ("cc-by-nc-4.0", "apache-2.0", "conflict"),
    ("llama2", "apache-2.0", "conflict"),
    ("llama3", "mit", "conflict"),
    ("llama3", "llama3", "same"),
    ("llama3", "llama3.1", "conflict"),  # a copy of *this* agreement must go with derivatives
    ("llama3", None, "missing"),
    ("llama3", "other", "unknown"),  # a custom licence may carry the Llama terms
    ("gemma", "apache-2.0", "conflict"),
    ("gemma", "gemma", "same"),
    ("mrl", "apache-2.0", "conflict"),
    ("mrl", "cc-by-nc-4.0", "conflict"),  # non-commercial, but drops the agreement
    # permissive bases let derivatives carry anything, but not nothing
    ("apache-2.0", "mit", "compatible"),
    ("mit", "apache-2.0", "compatible"),
    ("apache-2.0", "cc-by-nc-4.0", "compatible"),
    ("apache-2.0", "llama3", "compatible"),
    ("mit", "other", "compatible"),
    ("bsd-3-clause", None, "missing"),
    ("cc-by-4.0", "cc-by-sa-4.0", "compatible"),
    ("cc0-1.0", "gpl-3.0", "compatible"),
    # RAIL: any RAIL licence carries the use restrictions, nothing else does
    ("openrail++", "creativeml-openrail-m", "compatible"),
    ("creativeml-openrail-m", "openrail", "compatible"),
    ("openrail", "mit", "conflict"),
    ("openrail++", "apache-2.0", "conflict"),
    ("creativeml-openrail-m", "gpl-3.0", "conflict"),
    ("openrail++", "cc-by-nc-4.0", "conflict"),
    # non-commercial, share-alike, no derivatives
    ("cc-by-nc-4.0", "cc-by-nc-sa-4.0", "compatible"),
    ("cc-by-nc-4.0", "cc-by-4.0", "conflict"),
    ("cc-by-nc-4.0", "llama3", "conflict"),
    ("cc-by-nc-sa-4.0", "cc-by-nc-4.0", "conflict"),
    ("cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0", "compatible"),
    ("cc-by-sa-4.0", "gpl-3.0", "compatible"),
    ("cc-by-sa-4.0", "cc-by-sa-3.0", "conflict"),
    ("cc-by-sa-4.0", "apache-2.0", "conflict"),
    ("cc-by-nd-4.0", "cc-by-nd-4.0", "conflict"),
    ("cc-by-nc-nd-4.0", "cc-by-nc-nd-4.0", "conflict"),
    ("gpl-3.0", "agpl-3.0", "compatible"),
    ("agpl-3.0", "gpl-3.0", "conflict"),
    ("gpl-2.0", "gpl-3.0", "unknown"),  # only if the base says "or any later version"
    ("gpl-3.0", "mit", "conflict"),
    ("lgpl-2.1", "gpl-2.0", "compatible"),
    # nothing stated, or terms unknown
    (None, None, "unstated"),
    (None, "apache-2.0", "unknown"),
    ("other", "other", "same"),
    ("other", "apache-2.0", "unknown"),
    ("cc", "cc-by-4.0", "unknown"),
    ("some-new-licence", "mit", "unknown"),
    # spelling
    ("Apache-2.0", "apache-2.0", "same"),
    (" MIT ", "mit", "same"),
    ("llama-3", "llama3", "same"),
    ("", "mit", "unknown"),
    (float("nan"), None, "unstated"),
])
def test_edge_verdict(base, child, verdict):
    v = L.edge_verdict(base, child)
    assert v.verdict == verdict, v.reason
    if verdict in ("conflict", "compatible", "missing", "unknown") and base not in (None, ""):
        assert v.reason  # every non-trivial verdict says why


def test_conflict_reasons_cite_the_clause():
    assert "§1.b.i" in L.edge_verdict("llama2", "apache-2.0").reason
    assert "NonCommercial" in L.edge_verdict("cc-by-nc-4.0", "mit").reason
    assert "paragraph 4(a)" in L.edge_verdict("openrail", "mit").reason


def test_the_table_covers_the_licences_common_on_the_hub():
    ids = set(L.table_licences())
    for lid in ["apache-2.0", "mit", "bsd-2-clause", "bsd-3-clause", "cc-by-4.0", "cc-by-sa-4.0",
                "cc-by-nc-4.0", "cc-by-nc-sa-4.0", "openrail", "openrail++",
                "creativeml-openrail-m", "llama2", "llama3", "llama3.1", "gemma", "mrl",
                "gpl-3.0", "agpl-3.0", "other"]:
        assert lid in ids
    for t in L.LICENCES.values():
        assert t.source, f"{t.id} has no source"


def test_permissive_bases_never_conflict_and_no_derivatives_always_do():
    ids = L.table_licences()
    for base in ids:
        t = L.LICENCES[base]
        for child in ids:
            v = L.edge_verdict(base, child).verdict
            if not t.obligations:
                assert v in ("same", "compatible"), (base, child, v)
            if not t.derivatives:
                assert v == "conflict", (base, child, v)


def test_compatibility_table_shape_and_diagonal():
    table = L.compatibility_table()
    ids = L.table_licences()
    assert list(table.index) == ids + ["(none)"] and list(table.columns) == ids + ["(none)"]
    for lid in ids:
        expected = "conflict" if not L.LICENCES[lid].derivatives else "same"
        assert table.at[lid, lid] == expected
        assert table.at[lid, "(none)"] == "missing"
    assert table.at["(none)", "(none)"] == "unstated"
    assert set(table.to_numpy().ravel()) <= set(L.VERDICTS)


def test_docs_list_every_licence_of_the_table():
    text = DOCS.read_text()
    for lid in L.table_licences():
        assert re.search(rf"`{re.escape(lid)}`", text), f"docs/licences.md lacks `{lid}`"
    for verdict in L.VERDICTS:
        assert f"`{verdict}`" in text


# -- the audit, pure ------------------------------------------------------------------------
def _edges(rows):
    cols = ["child", "child_author", "child_licence", "child_downloads", "parent",
            "parent_author", "parent_licence", "parent_downloads", "relation"]
    return pd.DataFrame(rows, columns=cols)


def test_audit_edges_chain_root_inheritors_and_merges():
    # base (llama3) ← ft (apache: conflict) ← q (apache: same) ← q2 (none: missing)
    # merge m has parents ft (10 downloads) and other (99 downloads, mit root): primary = other
    e = _edges([
        ("u/ft", "u", "apache-2.0", 10, "meta/base", "meta", "llama3", 1000, "finetune"),
        ("v/q", "v", "apache-2.0", 5, "u/ft", "u", "apache-2.0", 10, "quantized"),
        ("w/q2", "w", None, 1, "v/q", "v", "apache-2.0", 5, "quantized"),
        ("x/m", "x", "mit", 3, "u/ft", "u", "apache-2.0", 10, "merge"),
        ("x/m", "x", "mit", 3, "o/other", None, "mit", 99, "merge"),
    ])
    a = L.audit_edges(e)
    m = a.models.set_index("id")
    assert m.at["u/ft", "verdict"] == "conflict" and m.at["v/q", "verdict"] == "same"
    assert m.at["w/q2", "verdict"] == "missing"
    assert m.at["v/q", "chain_verdict"] == "conflict"  # inherited from u/ft
    assert m.at["w/q2", "root"] == "meta/base" and m.at["w/q2", "depth"] == 3
    assert m.at["w/q2", "chain"] == ("(none) (w/q2) ← apache-2.0 (v/q) ← apache-2.0 (u/ft) ← "
                                     "llama3 (meta/base)")
    assert m.at["x/m", "parent"] == "o/other" and m.at["x/m", "root"] == "o/other"
    assert m.at["x/m", "verdict"] == "compatible"  # worst of same (mit→mit), compatible
    assert m.at["u/ft", "inheritors"] == 2  # v/q and w/q2 (x/m's primary chain goes elsewhere)
    assert "meta/base" not in m.index  # roots have no verdict row
    fam = a.families.set_index("root")
    assert fam.at["meta/base", "models"] == 3 and fam.at["meta/base", "conflict"] == 1
    assert fam.at["meta/base", "worst"] == "u/ft"
    assert fam.at["o/other", "root_author"] == "o"  # stub parents: author from the id
    pub = a.publishers.set_index("author")
    assert pub.at["u", "conflict"] == 1 and pub.at["meta", "family_conflicts"] == 1
    assert a.edges["primary"].sum() == 4
    assert a.offenders(root="meta/base")["id"].tolist() == ["u/ft"]
    assert a.transitions("conflict").iloc[0][["parent_licence", "licence", "edges"]].tolist() \
        == ["llama3", "apache-2.0", 1]


def test_audit_of_nothing():
    a = L.audit_edges(_edges([]))
    assert a.models.empty and a.families.empty and a.publishers.empty
    assert a.verdict_counts()["models"].sum() == 0


# -- the audit on the mini graph ------------------------------------------------------------
@pytest.fixture(scope="module")
def audit(mini_store):
    return L.build_licence_audit(mini_store)


@pytest.fixture(scope="module")
def mini_store(mini_graph_root):
    from graph.store import open_store

    store = open_store(read_only=True, root=mini_graph_root)
    yield store
    store.close()


def test_every_edge_judged_like_a_plain_python_reference(mini_store, audit):
    raw = mini_store.frame(f"MATCH (c:Model)-[e:{q.LINEAGE_TYPES}]->(p:Model) "
                           "RETURN c.id AS child, p.id AS parent, c.license AS cl, "
                           "p.license AS pl, p.downloads AS pd")
    assert len(raw) == len(audit.edges) > 300
    got = {(r.child, r.parent): r.verdict for r in audit.edges.itertuples()}
    worst: dict[str, int] = defaultdict(lambda: -1)
    for r in raw.itertuples():
        cl = None if pd.isna(r.cl) else r.cl
        pl = None if pd.isna(r.pl) else r.pl
        expected = L.edge_verdict(pl, cl).verdict
        assert got[(r.child, r.parent)] == expected
        worst[r.child] = max(worst[r.child], L.SEVERITY[expected])
    models = audit.models.set_index("id")
    assert set(models.index) == set(worst)
    for child, code in worst.items():
        assert models.at[child, "verdict"] == L.VERDICTS[code]
    # every model has exactly one family, so the families add up
    assert audit.families["models"].sum() == len(audit.models)
    assert audit.families[list(L.VERDICTS)].to_numpy().sum() == len(audit.models)


def test_chain_reaches_a_root_with_no_parent(mini_store, audit):
    models = audit.models.set_index("id")
    row = models.loc["BramVanroy/fietje-2-chat"]
    assert row["root"] == "microsoft/phi-2" and row["depth"] == 3
    assert row["chain"].endswith("mit (microsoft/phi-2)") and row["chain"].count("←") == 3
    assert q.roots(mini_store, "BramVanroy/fietje-2-chat") == ["microsoft/phi-2"]
    roots = set(audit.models["root"])
    assert not roots & set(audit.models["id"])  # a root never has a parent of its own
    assert all(SEV >= L.SEVERITY[v] for SEV, v in zip(
        audit.models["chain_verdict"].map(L.SEVERITY), audit.models["verdict"]))


def test_llama_family_has_conflicts_in_the_mini_graph(audit):
    fam = audit.families.set_index("root")
    assert fam.at["unsloth/llama-3-8b-bnb-4bit", "conflict"] >= 30  # apache-2.0 children of a
    assert fam.at["unsloth/llama-3-8b-bnb-4bit", "root_licence"] == "llama2"  # "llama2" base
    assert fam.at["meta-llama/Meta-Llama-3-8B", "conflict"] > 0
    assert audit.top_families(1)["root"].iat[0] == "unsloth/llama-3-8b-bnb-4bit"
    pub = audit.top_publishers(3)
    assert pub["conflict"].is_monotonic_decreasing and pub["conflict"].iat[0] > 0


def test_save_and_load_roundtrip(audit, tmp_path):
    audit.save(tmp_path)
    back = L.LicenceAudit.load(tmp_path)
    for name in L.LicenceAudit.FILES:
        pd.testing.assert_frame_equal(getattr(back, name), getattr(audit, name),
                                      check_dtype=False)
    assert back.meta == audit.meta


# -- writing the verdicts into the graph ----------------------------------------------------
def _writable(root: Path) -> KuzuStore:
    return KuzuStore(Generations(root).current_path(), read_only=False)


def test_write_verdicts_into_the_graph_and_query_them(mini_graph_copy):
    store = _writable(mini_graph_copy)
    try:
        audit = L.build_licence_audit(store)
        written = L.write_licence_verdicts(store, audit)
        assert written["models"] == len(audit.models)
        stored = vq.stored_licence_verdicts(store).set_index("id")
        expected = audit.models.set_index("id")
        assert len(stored) == len(expected)
        assert (stored["licenseVerdict"] == expected.loc[stored.index, "verdict"]).all()
        assert (stored["licenseChainVerdict"] ==
                expected.loc[stored.index, "chain_verdict"]).all()
        assert (stored["familyRoot"] == expected.loc[stored.index, "root"]).all()
        # what a user types in the console
        n = store.rows("MATCH (m:Model) WHERE m.licenseVerdict = 'conflict' "
                       "RETURN count(*) AS n")[0]["n"]
        assert n == (audit.models["verdict"] == "conflict").sum() > 0
        top = store.rows("MATCH (m:Model) WHERE m.licenseVerdict = 'conflict' "
                         "RETURN m.familyRoot AS family, count(*) AS n ORDER BY n DESC LIMIT 1")
        assert top[0]["family"] == audit.top_families(1)["root"].iat[0]
        # idempotent, and stale verdicts are cleared: drop one licence and rewrite
        store.write([("MATCH (m:Model {id: 'BramVanroy/fietje-2-chat'}) SET m.license = NULL",
                      {})])
        again = L.build_licence_audit(store)
        L.write_licence_verdicts(store, again)
        row = store.rows("MATCH (m:Model {id: 'BramVanroy/fietje-2-chat'}) "
                         "RETURN m.licenseVerdict AS v")[0]
        assert row["v"] == "missing"
        assert len(vq.stored_licence_verdicts(store)) == len(again.models)
    finally:
        store.close()
    # a later generation reopens the graph and writes again (the scheduled job's case)
    store = _writable(mini_graph_copy)
    try:
        L.write_licence_verdicts(store, L.build_licence_audit(store))
        assert len(vq.stored_licence_verdicts(store)) == len(again.models)
    finally:
        store.close()


def test_a_model_that_lost_its_verdict_is_cleared(mini_graph_copy):
    store = _writable(mini_graph_copy)
    try:
        rows = L.verdict_rows(L.build_licence_audit(store))
        vq.write_licence_verdicts(store, rows, batch=50)
        vq.write_licence_verdicts(store, rows.slice(1), batch=50)
        got = vq.stored_licence_verdicts(store)
    finally:
        store.close()
    assert len(got) == rows.num_rows - 1
    assert rows.column("id")[0].as_py() not in set(got["id"])


# -- the full snapshot -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def full_store(full_graph_root):
    from graph.store import open_store

    store = open_store(read_only=True, root=full_graph_root)
    yield store
    store.close()


def test_full_graph_audit(full_store):
    """The issue's figure: 745 of Meta-Llama-3-8B's 1,139 descendants (two generations) state
    a different licence from their parent (418 changed, 322 dropped, 5 added)."""
    from analytics.family import licence_drift

    llama = "meta-llama/Meta-Llama-3-8B"
    desc = q.descendants(full_store, llama, 2)
    drift = licence_drift(desc, q.get_model(full_store, llama))
    assert len(desc) == 1139 and len(drift) == 745
    assert drift["drift"].value_counts().to_dict() == {"changed": 418, "dropped": 322, "added": 5}
    audit = L.build_licence_audit(full_store)
    assert len(audit.edges) > 120_000
    # the same 745 in the audit's terms: dropped = missing, changed/added = the rest
    judged = audit.edges.set_index(["child", "parent"])
    parents = dict(zip(desc["id"], desc["parent"]))
    v = pd.Series([judged.at[(c, parents[c]), "verdict"] for c in drift["id"]])
    assert (v[drift["drift"].eq("dropped").to_numpy()] == "missing").all()
    counts = audit.verdict_counts().set_index("verdict")["models"]
    assert counts["conflict"] > 4000 and counts["missing"] > 15_000  # measured 4,787; 18,304
    top = audit.top_families(5)["root"].tolist()
    assert {"unsloth/llama-3-8b-bnb-4bit", "stabilityai/stable-diffusion-xl-base-1.0"} <= set(top)
