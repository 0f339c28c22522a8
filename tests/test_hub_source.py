"""HubSource → huggingface_hub → real HTTP → FakeHub (tests/fakehub.py) over the hub_pages fixture."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from email.utils import formatdate
from typing import get_args

import pytest
from huggingface_hub import HfApi
from huggingface_hub.hf_api import ExpandModelProperty_T

from ingest.errors import RecordError, SourceError
from ingest.hub import (
    ALLOWED_EXPAND,
    DATASET_EXPAND,
    MODEL_EXPAND,
    SPACE_EXPAND,
    HubSource,
    retry_after_seconds,
)
from ingest.records import DatasetRecord, ModelRecord, SpaceRecord
from tests.fakehub import BROKEN_ITEMS, FakeHub, fake_hub, load_fixture  # noqa: F401

LIST = "/api/models"


class Sleeps(list):
    """Injected sleep: records the waits instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def source(hub: FakeHub, **kw) -> tuple[HubSource, Sleeps]:
    sleeps = Sleeps()
    kw.setdefault("token", None)
    return HubSource(endpoint=hub.url, sleep=sleeps, **kw), sleeps


def ids(items) -> list[str]:
    return [i["id"] for i in items]


def _lm(d: dict) -> datetime:
    return datetime.fromisoformat(d["lastModified"].replace("Z", "+00:00"))


@pytest.fixture(autouse=True)
def _no_ambient_token(monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)


# ---- the fixture itself ---------------------------------------------------------------------

def test_fixture_is_small_and_real():
    models, datasets = load_fixture("models"), load_fixture("datasets")
    assert 200 <= len(models) <= 400 and 50 <= len(datasets) <= 200
    assert sum(any(t.startswith("base_model:") for t in m["tags"]) for m in models) >= 100
    assert len({m["id"] for m in models}) == len(models)
    from tests.fakehub import FIXTURE_DIR
    assert sum(p.stat().st_size for p in FIXTURE_DIR.iterdir()) < 400_000  # plain .jsonl


def test_every_fixture_record_parses():
    models = load_fixture("models")
    recs = [ModelRecord.from_api(m) for m in models]
    assert [r.id for r in recs] == ids(models)
    with_tags = [r for r, m in zip(recs, models)
                 if any(t.startswith("base_model:") for t in m["tags"])]
    assert with_tags and all(r.base_models for r in with_tags)
    assert all(DatasetRecord.from_api(d).id for d in load_fixture("datasets"))
    assert all(SpaceRecord.from_api(s).id for s in load_fixture("spaces"))


def test_default_expand_names_are_ones_huggingface_hub_declares():
    assert set(MODEL_EXPAND) <= set(get_args(ExpandModelProperty_T))
    assert set(DATASET_EXPAND) <= ALLOWED_EXPAND["dataset"]
    assert set(SPACE_EXPAND) <= ALLOWED_EXPAND["space"]


# ---- listings -------------------------------------------------------------------------------

def test_full_listing_equals_fixture_and_parses(fake_hub):
    src, sleeps = source(fake_hub)
    items = list(src.iter_models())
    assert ids(items) == ids(load_fixture("models"))
    recs = [ModelRecord.from_api(i) for i in items]
    assert sum(bool(r.base_models) for r in recs) >= 100
    assert any(r.parameters for r in recs) and any(r.licenses for r in recs)
    assert sleeps == []
    (req,) = fake_hub.requests
    assert req.query["limit"] == ["1000"] and set(req.query["expand"]) == set(MODEL_EXPAND)


def test_datasets_and_spaces_listings(fake_hub):
    src, _ = source(fake_hub, page_size=50)
    datasets = list(src.iter_datasets())
    assert ids(datasets) == ids(load_fixture("datasets"))
    assert all(DatasetRecord.from_api(d).id for d in datasets)
    spaces = [SpaceRecord.from_api(s) for s in src.iter_spaces()]
    assert [s.id for s in spaces] == ids(load_fixture("spaces"))
    assert any(s.models for s in spaces) and any(s.datasets for s in spaces)


def test_listing_is_lazy(fake_hub):
    src, _ = source(fake_hub, page_size=10)
    it = src.iter_models()
    assert fake_hub.requests == []
    next(it)
    assert len(fake_hub.requests) == 1


def test_paging_across_many_pages_no_duplicates(fake_hub):
    src, _ = source(fake_hub, page_size=17)
    got = ids(src.iter_models())
    expected = ids(load_fixture("models"))
    assert got == expected and len(set(got)) == len(got)
    reqs = fake_hub.requests_to(LIST)
    assert len(reqs) == -(-len(expected) // 17)
    assert "cursor" not in reqs[0].query
    assert all("cursor" in r.query and r.query["limit"] == ["17"] for r in reqs[1:])
    assert len({r.url for r in reqs}) == len(reqs)


def test_limit_stops_early(fake_hub):
    src, _ = source(fake_hub, page_size=10)
    assert ids(src.iter_models(limit=25)) == ids(load_fixture("models"))[:25]
    assert len(fake_hub.requests) == 3
    fake_hub.requests.clear()
    assert ids(src.iter_models(limit=3)) == ids(load_fixture("models"))[:3]
    assert fake_hub.requests[0].query["limit"] == ["3"]
    assert list(src.iter_models(limit=0)) == []


def test_custom_expand_only_returns_those_properties(fake_hub):
    src, _ = source(fake_hub)
    item = next(src.iter_models(expand=["downloads"]))
    assert set(item) == {"_id", "id", "downloads"}
    with pytest.raises(ValueError, match="bogus"):
        src.iter_models(expand=["bogus"])
    assert fake_hub.requests[0].query["expand"] == ["downloads"]


def test_since_is_incremental_and_stops_early(fake_hub):
    by_recent = sorted(load_fixture("models"), key=_lm, reverse=True)
    since = _lm(by_recent[44])
    expected = [m["id"] for m in by_recent if _lm(m) >= since]
    assert 40 <= len(expected) < 60
    src, _ = source(fake_hub, page_size=20)
    got = ids(src.iter_models(since=since, expand=["likes"]))
    assert got == expected
    reqs = fake_hub.requests_to(LIST)
    assert len(reqs) == 3  # 3 of 13 pages: stopped at the first older record
    q = reqs[0].query
    assert q["sort"] == ["lastModified"] and q["direction"] == ["-1"]
    assert "lastModified" in q["expand"]  # added although the caller did not ask for it


def test_since_accepts_naive_utc(fake_hub):
    src, _ = source(fake_hub)
    since = datetime(2024, 7, 1)
    got = list(src.iter_datasets(since=since))
    assert got and all(_lm(d) >= since.replace(tzinfo=timezone.utc) for d in got)


# ---- retries --------------------------------------------------------------------------------

def test_429_retry_after_seconds_is_obeyed_and_resumes_same_page(fake_hub):
    fake_hub.add_fault(status=429, retry_after="7", nth=3, path=LIST)
    src, sleeps = source(fake_hub, page_size=30)
    got = ids(src.iter_models())
    assert got == ids(load_fixture("models"))
    assert sleeps == [7.0]
    reqs = fake_hub.requests_to(LIST)
    assert [r.status for r in reqs[1:5]] == [200, 429, 200, 200]
    assert reqs[2].url == reqs[3].url and "cursor" in reqs[2].query


def test_429_retry_after_http_date(fake_hub):
    when = formatdate(time.time() + 30, usegmt=True)
    fake_hub.add_fault(status=429, retry_after=when, nth=1, path=LIST)
    src, sleeps = source(fake_hub)
    assert len(list(src.iter_models(limit=5))) == 5
    assert len(sleeps) == 1 and 27 <= sleeps[0] <= 30


def test_retry_after_parsing_edge_cases():
    now = datetime(2024, 7, 11, 12, 0, tzinfo=timezone.utc)
    assert retry_after_seconds({"retry-after": "Thu, 11 Jul 2024 11:00:00 GMT"}, now=now) == 0.0
    assert retry_after_seconds({"retry-after": "Thu, 11 Jul 2024 12:00:09 GMT"}, now=now) == 9.0
    assert retry_after_seconds({"retry-after": "1.5"}) == 1.5
    assert retry_after_seconds({"retry-after": "999999"}) == 3600.0
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_429_without_retry_after_uses_ratelimit_header_or_backoff(fake_hub):
    fake_hub.add_fault(status=429, nth=1, path=LIST,
                       headers={"RateLimit": '"api";r=0;t=12'})
    fake_hub.add_fault(status=429, nth=2, path=LIST)
    src, sleeps = source(fake_hub, backoff_base=0.5)
    assert len(list(src.iter_models(limit=1))) == 1
    assert sleeps == [12.0, 1.0]  # RateLimit t=12; then plain backoff (2nd attempt: 0.5 * 2)


def test_5xx_burst_recovers_with_capped_exponential_backoff(fake_hub):
    fake_hub.add_fault(status=503, nth=2, times=4, path=LIST)
    src, sleeps = source(fake_hub, page_size=100, backoff_base=1.5, backoff_cap=5.0)
    assert ids(src.iter_models()) == ids(load_fixture("models"))
    assert sleeps == [1.5, 3.0, 5.0, 5.0]
    reqs = fake_hub.requests_to(LIST)
    assert len({r.url for r in reqs[1:6]}) == 1  # the same page, five times


def test_connection_drop_and_timeout_are_retried(fake_hub):
    fake_hub.add_fault(drop=True, nth=2, path=LIST)
    fake_hub.add_fault(status=200, delay=1.0, nth=4, path=LIST)  # stalls past the timeout
    src, sleeps = source(fake_hub, page_size=100, timeout=0.3)
    assert ids(src.iter_models()) == ids(load_fixture("models"))
    assert len(sleeps) == 2


def test_unreachable_hub_raises_source_error():
    with FakeHub() as hub:
        url = hub.url
    sleeps = Sleeps()
    src = HubSource(endpoint=url, max_retries=2, sleep=sleeps)
    with pytest.raises(SourceError, match=r"3 attempt.*ConnectError") as err:
        list(src.iter_datasets())
    assert "/api/datasets?limit=1000" in str(err.value)
    assert sleeps == [1.0, 2.0]


def test_exhausted_retries_raise_source_error(fake_hub):
    fake_hub.add_fault(status=502, nth=2, times=100, path=LIST)
    src, sleeps = source(fake_hub, page_size=100, max_retries=3)
    it = src.iter_models()
    first_page = [next(it) for _ in range(100)]
    assert ids(first_page) == ids(load_fixture("models"))[:100]
    with pytest.raises(SourceError) as err:
        next(it)
    msg = str(err.value)
    assert "502" in msg and "/api/models" in msg and "cursor=" in msg and "4 attempt" in msg
    assert len(sleeps) == 3 and len(fake_hub.requests_to(LIST)) == 5


def test_non_retryable_4xx_fails_at_once(fake_hub):
    fake_hub.add_fault(status=400, body=b'{"error": "Invalid filter"}', path=LIST)
    src, sleeps = source(fake_hub)
    with pytest.raises(SourceError, match="400"):
        list(src.iter_models())
    assert sleeps == [] and len(fake_hub.requests) == 1


def test_non_json_page_is_retried_then_source_error(fake_hub):
    fake_hub.add_fault(status=200, body=b"<html>Gateway hiccup</html>", content_type="text/html",
                       nth=2, times=2, path=LIST)
    src, sleeps = source(fake_hub, page_size=100)
    assert ids(src.iter_models()) == ids(load_fixture("models"))  # recovered
    assert len(sleeps) == 2
    with FakeHub() as hub:
        hub.add_fault(status=200, body=b"<html>", content_type="text/html", times=99)
        src, _ = source(hub, max_retries=2)
        with pytest.raises(SourceError, match="not valid JSON"):
            list(src.iter_models())
        assert len(hub.requests) == 3


# ---- malformed records ----------------------------------------------------------------------

def test_broken_records_reach_the_caller_as_record_errors():
    good = load_fixture("models")[:12]
    with FakeHub(models=good[:6] + BROKEN_ITEMS + good[6:]) as hub:
        src, _ = source(hub, page_size=5)
        items = list(src.iter_models())
    assert len(items) == len(good) + len(BROKEN_ITEMS)
    parsed, reasons = [], []
    for item in items:
        try:
            parsed.append(ModelRecord.from_api(item).id)
        except RecordError as e:
            reasons.append(e.reason)
    assert parsed == ids(good)
    assert sorted(reasons) == sorted(["not_an_object"] * 4 + ["missing_id", "bad_id"])


# ---- single objects -------------------------------------------------------------------------

def test_model_info_full_record_missing_and_gated():
    models = load_fixture("models")
    full = next(m for m in models if m.get("cardData") and m.get("siblings"))
    with FakeHub(gated=["meta-llama/Llama-2-7b-hf"]) as hub:
        src, sleeps = source(hub)
        info = src.model_info(full["id"])
        assert info == full and ModelRecord.from_api(info).id == full["id"]
        assert hub.requests[-1].path == f"/api/models/{full['id']}"
        assert src.model_info("nobody/no-such-model") is None
        assert src.model_info("meta-llama/Llama-2-7b-hf") is None
        assert [r.status for r in hub.requests] == [200, 404, 403]
        assert sleeps == []


def test_model_info_retries_then_source_error(fake_hub):
    fake_hub.add_fault(status=500, times=10, path_prefix="/api/models/")
    src, sleeps = source(fake_hub, max_retries=1)
    with pytest.raises(SourceError, match="500"):
        src.model_info("Qwen/Qwen2-7B")
    assert len(sleeps) == 1


def test_paper_info(fake_hub):
    src, _ = source(fake_hub)
    assert src.paper_info("2309.00071")["title"].startswith("YaRN")
    assert src.paper_info("0000.00000") is None


# ---- auth and configuration -----------------------------------------------------------------

def test_token_sent_as_authorization_header(fake_hub, monkeypatch):
    src, _ = source(fake_hub, token="hf_explicit")
    next(src.iter_models())
    src.model_info("Qwen/Qwen2-7B")
    assert {r.headers.get("authorization") for r in fake_hub.requests} == {"Bearer hf_explicit"}
    ua = fake_hub.requests[0].headers["user-agent"]
    assert "hub-atlas" in ua and "hf_hub/" in ua

    monkeypatch.setenv("HF_TOKEN", "hf_from_env")
    next(HubSource(endpoint=fake_hub.url).iter_models())
    assert fake_hub.requests[-1].headers.get("authorization") == "Bearer hf_from_env"

    monkeypatch.delenv("HF_TOKEN")
    next(HubSource(endpoint=fake_hub.url).iter_models())
    assert "authorization" not in fake_hub.requests[-1].headers


def test_endpoint_from_env(fake_hub, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url + "/")
    src = HubSource()
    assert src.endpoint == fake_hub.url and src.api.endpoint == fake_hub.url
    assert len(list(src.iter_spaces(limit=2))) == 2
    monkeypatch.delenv("HF_ENDPOINT")
    assert HubSource().endpoint == "https://huggingface.co"


def test_fake_hub_speaks_huggingface_hub_itself():
    """The fake is faithful enough for HfApi's own paging and ModelInfo parsing."""
    with FakeHub(max_page_size=60) as hub:
        api = HfApi(endpoint=hub.url, token=False)
        listed = list(api.list_models(expand=["lastModified", "tags"], sort="last_modified"))
        assert len(listed) == len(load_fixture("models"))
        assert len(hub.requests_to(LIST)) == 5
        stamps = [m.last_modified for m in listed]
        assert stamps == sorted(stamps, reverse=True)
        info = api.model_info("Qwen/Qwen2-7B")
        assert info.id == "Qwen/Qwen2-7B" and info.card_data is not None


# ---- account types --------------------------------------------------------------------------

ACCOUNTS = {"acme-org": "org", "alice": "user"}


def test_account_type_organisation_user_and_neither():
    with FakeHub(accounts=ACCOUNTS) as hub:
        src, sleeps = source(hub)
        assert src.account_type("acme-org") == "organization"
        assert [r.path for r in hub.requests] == ["/api/organizations/acme-org/overview"]
        hub.requests.clear()
        assert src.account_type("alice") == "user"  # the organisation page 404s first
        assert [(r.path, r.status) for r in hub.requests] == [
            ("/api/organizations/alice/overview", 404), ("/api/users/alice/overview", 200)]
        hub.requests.clear()
        assert src.account_type("ghost") is None  # neither page: a deleted or renamed account
        assert [r.status for r in hub.requests] == [404, 404] and sleeps == []


def test_account_type_backs_off_on_429_and_5xx():
    with FakeHub(accounts=ACCOUNTS) as hub:
        hub.add_fault(status=429, retry_after="7", path="/api/organizations/alice/overview")
        hub.add_fault(status=503, times=2, path="/api/users/alice/overview")
        src, sleeps = source(hub)
        assert src.account_type("alice") == "user"
        assert sleeps == [7.0, 1.0, 2.0]  # Retry-After honoured, then capped exponential
        assert len({r.url for r in hub.requests_to("/api/users/alice/overview")}) == 1


def test_account_type_unreachable_raises_source_error():
    with FakeHub() as hub:
        url = hub.url
    src = HubSource(endpoint=url, max_retries=1, sleep=Sleeps())
    with pytest.raises(SourceError, match="/api/organizations/acme-org/overview"):
        src.account_type("acme-org")


def test_fake_hub_account_pages_speak_huggingface_hub_itself():
    """The overview endpoints as HfApi's own get_organization_overview / get_user_overview
    read them: their objects, and a 404 raised for a name of the other kind."""
    from huggingface_hub.utils import HfHubHTTPError

    with FakeHub(accounts=ACCOUNTS) as hub:
        api = HfApi(endpoint=hub.url, token=False)
        org = api.get_organization_overview("acme-org")
        assert org.name == "acme-org" and org.fullname and org.num_users == 1
        user = api.get_user_overview("alice")
        assert user.username == "alice" and user.user_type == "user" and user.orgs == []
        for call, name in ((api.get_organization_overview, "alice"),
                           (api.get_user_overview, "acme-org")):
            with pytest.raises(HfHubHTTPError) as err:
                call(name)
            assert err.value.response.status_code == 404
