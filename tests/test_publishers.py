"""analytics/publishers.py on the mini graph, checked against plain-Python references."""
from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from analytics import licences as L
from analytics import publishers as P
from graph import queries as q


@pytest.fixture(scope="module")
def edges(mini_store) -> pd.DataFrame:
    return mini_store.frame(f"MATCH (c:Model)-[e:{q.LINEAGE_TYPES}]->(p:Model) "
                            "RETURN c.id AS child, c.author AS ca, c.createdAt AS created, "
                            "p.id AS parent, p.author AS pa, label(e) AS rel")


@pytest.fixture(scope="module")
def mini_store(mini_graph_root):
    from graph.store import open_store

    store = open_store(read_only=True, root=mini_graph_root)
    yield store
    store.close()


@pytest.fixture(scope="module")
def index(mini_store):
    return P.build_publisher_index(mini_store)


def test_index_counts_derivatives_by_others(index, edges):
    pa = edges["pa"].fillna(edges["parent"].str.split("/").str[0])
    others = edges[edges["ca"] != pa].assign(pa=pa)
    expected = Counter(others["pa"])
    got = index.set_index("author")
    for author, n in expected.items():
        assert got.at[author, "derived_by_others"] == n, author
        assert got.at[author, "deriving_authors"] == others.loc[others["pa"] == author,
                                                                "ca"].nunique()
    assert index["derived_by_others"].is_monotonic_decreasing
    assert index["author"].iat[0] == "meta-llama"  # two Llama 3 bases, 89 derivatives by others
    assert got.at["unsloth", "family_conflicts"] >= 30  # apache-2.0 children of a llama2 base
    assert got.at["microsoft", "models"] == 1


def test_profile_of_an_organisation(mini_store, edges):
    p = P.publisher_profile(mini_store, "meta-llama")
    assert p.found
    assert set(p.models["id"]) == {"meta-llama/Meta-Llama-3-8B",
                                   "meta-llama/Meta-Llama-3-8B-Instruct"}
    direct = edges[edges["parent"].str.startswith("meta-llama/") & (edges["ca"] != "meta-llama")]
    assert len(p.derivatives) == len(direct)
    rel = p.by_relation.set_index("relation")["n"]
    assert rel.sum() == len(direct) and set(rel.index) == {"finetune", "adapter", "quantized",
                                                           "merge", "unknown"}
    assert p.by_month["n"].sum() == direct["created"].notna().sum()
    top = p.top_derivers
    assert top["derivatives"].is_monotonic_decreasing
    first = top.iloc[0]
    assert first["derivatives"] == Counter(direct["ca"]).most_common(1)[0][1]
    mix = dict(part.rsplit(" ", 1) for part in first["relations"].split(", "))
    assert sum(map(int, mix.values())) == first["derivatives"]
    # family growth: every descendant at any depth, cumulative
    desc = set(q.descendants(mini_store, "meta-llama/Meta-Llama-3-8B", 10)["id"]) | set(
        q.descendants(mini_store, "meta-llama/Meta-Llama-3-8B-Instruct", 10)["id"])
    assert p.family_size == len(desc)
    assert p.family_growth["total"].iat[-1] + p.undated == p.family_size
    assert p.family_growth["total"].is_monotonic_increasing


def test_profile_of_a_user_and_of_nobody(mini_store):
    p = P.publisher_profile(mini_store, "BramVanroy")
    assert {"BramVanroy/fietje-2", "BramVanroy/fietje-2-instruct"} <= set(p.models["id"])
    assert p.models["children"].max() >= 1  # fietje-2 has derivatives
    nobody = P.publisher_profile(mini_store, "no-such-author")
    assert not nobody.found and nobody.derivatives.empty and nobody.family_growth.empty
    assert nobody.by_relation["n"].sum() == 0


def test_conflicts_in_a_publishers_families(mini_store):
    audit = L.build_licence_audit(mini_store)
    rows = audit.in_families_of("unsloth")
    assert (rows["root"] == "unsloth/llama-3-8b-bnb-4bit").all()
    assert rows["verdict"].iat[0] == "conflict"
    assert audit.offenders(author="johnsutor")["verdict"].eq("conflict").all()


def test_search_authors(index):
    assert P.search_authors(index, "meta-llama")[0] == "meta-llama"
    assert P.search_authors(index, "META")[0] == "meta-llama"
    assert "BramVanroy" in P.search_authors(index, "vanroy")
    assert P.search_authors(index, "") == []
    assert P.author_of("org/name") == "org" and P.author_of("gpt2") is None


def test_index_account_types_unknown_for_a_snapshot(index):
    assert {"account_type", "account_checked"} <= set(index.columns)
    assert set(index["account_type"]) == {"unknown"} and not index["account_checked"].any()
    assert P.account_label("organization", True) == "organisation"
    assert P.account_label("user", True) == "user"
    assert P.account_label("unknown", False) == "account type unknown: not asked yet"
    assert P.account_label("unknown", True) == "account type unknown: not on the Hub"
