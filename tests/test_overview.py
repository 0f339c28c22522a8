"""analytics/overview.py: the Overview aggregates from the named queries, on the mini graph,
checked against plain pandas."""
from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from analytics import overview as O
from graph import queries as q
from graph.schema import LINEAGE_RELS
from tests.mini_graph import edges, models, store  # noqa: F401 - fixtures, found by name


# -- overview --------------------------------------------------------------------------
@pytest.mark.parametrize("by,col", [("task", "task"), ("library", "library")])
def test_uploads_per_month(store, models, by, col):
    got = O.uploads_per_month(q.uploads_by_month(store, by), top=3)
    dated = models[models["createdAt"].notna()]
    assert got["n"].sum() == len(dated)
    assert set(got["group"]) - {O.OTHER, O.NONE} <= set(dated[col].dropna())
    assert len(set(got["group"]) - {O.OTHER, O.NONE}) <= 3
    months = dated["createdAt"].dt.to_period("M").dt.to_timestamp()
    assert got.groupby("month")["n"].sum().to_dict() == months.value_counts().to_dict()


def test_uploads_rejects_unknown_split(store):
    with pytest.raises(ValueError, match="by must be"):
        q.uploads_by_month(store, by="colour")


def test_licence_mix(store, models):
    got = O.licence_mix(q.models_per_licence(store), top=4)
    real = models[models["stub"] != True]  # noqa: E712
    assert got["n"].sum() == len(real)
    assert got["share"].sum() == pytest.approx(1.0)
    named = got[got["licence"] != O.UNSPECIFIED]
    want = Counter(lic for lic in real["license"].dropna() if lic not in O.UNSPECIFIED_PARTS)
    assert dict(zip(named["licence"], named["n"])) == dict(want.most_common(4))
    # one unspecified group, last, saying what it holds
    assert got["licence"].tolist().count(O.UNSPECIFIED) == 1
    assert got["licence"].iloc[-1] == O.UNSPECIFIED
    parts = dict(p.rsplit(" ", 1) for p in got["parts"].iloc[-1].split(", "))
    assert sum(int(v.replace(",", "")) for v in parts.values()) == got["n"].iloc[-1]
    assert int(parts[O.NONE].replace(",", "")) == real["license"].isna().sum()


def test_licence_mix_merges_every_unspecified_bucket():
    rows = pd.DataFrame({"licence": ["mit", "apache-2.0", None, "other", "unknown", "gpl", ""],
                         "n": [50, 40, 10, 5, 3, 2, 1]})
    got = O.licence_mix(rows, top=2)
    assert got["licence"].tolist() == ["mit", "apache-2.0", O.UNSPECIFIED]
    assert got["n"].tolist() == [50, 40, 21]
    assert got["parts"].iloc[-1] == "(none) 11, other 5, unknown 3, (other) 2"


def test_uploads_stop_where_the_observations_end():
    rows = pd.DataFrame({"ym": [202405, 202406, 202407, 202503], "grp": ["a"] * 4,
                         "n": [3, 4, 2, 1]})
    got = O.uploads_per_month(rows, as_of=pd.Timestamp("2024-07-11"))
    assert got["month"].dt.strftime("%Y-%m").tolist() == ["2024-05", "2024-06", "2024-07"]
    assert got["partial"].tolist() == [False, False, True]
    whole = O.uploads_per_month(rows, as_of=pd.Timestamp("2024-07-31"))
    assert not whole["partial"].any()


def test_top_base_models_long_form(store):
    wide = q.top_base_models(store, 10)
    long = O.top_base_models_long(wide)
    assert long.groupby("id")["n"].sum().to_dict() == dict(zip(wide["id"], wide["total"]))
    assert set(long["relation"]) <= set(LINEAGE_RELS)


def test_ingest_run_summary(store):
    runs = O.run_summary(q.ingest_runs(store))
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["status"] == "ok" and run["models"] > 400 and run["rejects"] >= 0
    assert "snapshot" in run["source"]




def test_build_overview_holds_every_part(store, models):
    ov = O.build_overview(store)
    assert ov.nodes["Model"] == len(models)
    assert set(ov.uploads) == set(O.GROUPS)
    assert ov.uploads["task"]["n"].sum() == ov.uploads["library"]["n"].sum()
    assert ov.licences["n"].sum() == (models["stub"] != True).sum()  # noqa: E712
    assert len(ov.runs) == 1 and not ov.top_base.empty


# -- publishers by account type ------------------------------------------------------------
def test_account_mix_keeps_both_kinds_of_unknown_apart():
    rows = pd.DataFrame({"account_type": ["organization", "user", "unknown", "unknown"],
                         "checked": [True, True, False, True], "accounts": [3, 10, 50, 2],
                         "models": [30, 20, 40, 10], "downloads": [900, 50, 40, 10]})
    got = O.account_mix(rows)
    assert got["group"].tolist() == ["organisations", "users", "unknown: not asked yet",
                                     "unknown: not on the Hub"]
    assert got["accounts"].tolist() == [3, 10, 50, 2]
    assert got["model_share"].tolist() == pytest.approx([0.3, 0.2, 0.4, 0.1])
    assert O.account_mix(rows.iloc[:0]).empty


def test_snapshot_accounts_are_all_unknown_not_guessed(store):
    got = O.account_mix(q.publishers_by_account_type(store))
    authors = store.frame("MATCH (m:Model) WHERE m.author IS NOT NULL RETURN "
                          "count(DISTINCT m.author) AS n, count(*) AS models")
    assert got["group"].tolist() == ["unknown: not asked yet"]  # meta-llama too: not guessed
    assert got["models"].iat[0] == authors["models"].iat[0]
    nodes = q.count_nodes(store)
    assert nodes["Account"] == nodes["Account (unknown)"] == got["accounts"].iat[0]
    assert nodes["Account"] >= authors["n"].iat[0]  # + authors of datasets and spaces only
