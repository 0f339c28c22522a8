"""The Hugging Face Hub as an ingest source: `HubSource`, the one client class.

Everything goes through `huggingface_hub`: the endpoint/token live in a real `HfApi`, requests
use the library's shared HTTP client (`get_session()`: its user agent, request ids and
offline-mode guard) with headers from `build_hf_headers`, and HTTP errors are worded by
`hf_raise_for_status`. What we do NOT use is `HfApi.list_models()`/`paginate()`/`http_backoff()`:

- they hand back `ModelInfo` objects, a lossy, renamed view of the JSON; the loader wants the raw
  API dicts (camelCase) that `ingest.records.*.from_api` parses;
- `http_backoff` sleeps with `time.sleep` (not injectable), caps waits at 8 s, reads
  `Retry-After` only as seconds (not as an HTTP date), and a page whose body is not JSON is
  not retried at all.

So paging (the `Link: <...>; rel="next"` header) and retrying are done here, in ONE place:
`HubSource._get_json`. A retry always re-requests the very same URL, so a listing resumes on
the page that failed: no duplicates, no skipped page.

All iterators are lazy generators; nothing is requested before the first `next()`.
Items are yielded exactly as the API returned them, malformed ones included (a non-object item
or one without an id reaches the caller, whose `from_api` raises `RecordError` for its counters).
"""
from __future__ import annotations

import logging
import os
import re
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Iterator, Sequence, get_args
from urllib.parse import quote, urljoin

from huggingface_hub import HfApi
from huggingface_hub.hf_api import (
    ExpandDatasetProperty_T,
    ExpandModelProperty_T,
    ExpandSpaceProperty_T,
)
from huggingface_hub.utils import (
    HfHubHTTPError,
    build_hf_headers,
    get_session,
    hf_raise_for_status,
    parse_ratelimit_headers,
)

from graph.dates import as_utc, parse_iso
from graph.schema import ACCOUNT_ORGANIZATION, ACCOUNT_USER
from ingest.errors import SourceError

try:  # huggingface_hub 2.x ships its own httpx fork
    import httpx2 as _httpx
except ImportError:  # pragma: no cover - huggingface_hub 1.x uses httpx itself
    import httpx as _httpx

logger = logging.getLogger(__name__)

PUBLIC_ENDPOINT = "https://huggingface.co"
LIBRARY_NAME = "hub-atlas"
LIBRARY_VERSION = "0.1"

#: What this huggingface_hub version declares the Hub accepts, per repo type.
ALLOWED_EXPAND: dict[str, frozenset[str]] = {
    "model": frozenset(get_args(ExpandModelProperty_T)),
    "dataset": frozenset(get_args(ExpandDatasetProperty_T)),
    "space": frozenset(get_args(ExpandSpaceProperty_T)),
}
#: Model properties requested where the installed huggingface_hub declares them: the Hub's own
#: typed parents, its derivative count, all-time downloads and trending score.
MODEL_EXPAND_OPTIONAL: tuple[str, ...] = (
    "baseModels", "childrenModelCount", "downloadsAllTime", "trendingScore")
#: `expand=` properties fetched by default: what ModelRecord/DatasetRecord/SpaceRecord read.
#: Note the Hub's mixed spelling: `pipeline_tag`/`library_name` are snake_case, the rest camel.
MODEL_EXPAND: tuple[str, ...] = (
    "author", "cardData", "createdAt", "downloads", "gated", "gguf", "lastModified",
    "library_name", "likes", "pipeline_tag", "safetensors", "spaces", "tags",
) + tuple(n for n in MODEL_EXPAND_OPTIONAL if n in ALLOWED_EXPAND["model"])
DATASET_EXPAND: tuple[str, ...] = (
    "author", "cardData", "createdAt", "description", "downloads", "gated", "lastModified",
    "likes", "tags",
)
SPACE_EXPAND: tuple[str, ...] = (
    "author", "createdAt", "datasets", "lastModified", "likes", "models", "sdk", "tags",
)
_DEFAULT_EXPAND = {"model": MODEL_EXPAND, "dataset": DATASET_EXPAND, "space": SPACE_EXPAND}
#: the `type` an account overview carries → `Account.accountType`
_HUB_ACCOUNT_TYPES = {"org": ACCOUNT_ORGANIZATION, "user": ACCOUNT_USER}

#: Retried statuses (plus every 5xx); other 4xx fail at once.
_RETRY_STATUSES = frozenset({408, 425, 429})
#: Transport failures worth retrying (connection refused/reset, timeouts, dropped responses).
_RETRY_EXCEPTIONS: tuple[type[BaseException], ...] = (
    _httpx.TimeoutException, _httpx.NetworkError, _httpx.RemoteProtocolError,
)
#: A Retry-After beyond this is treated as this (a Hub answer of hours would stall ingest).
MAX_RETRY_AFTER = 3600.0


_URL_USERINFO = re.compile(r"(?<=://)[^/@\s?#]+@")
_SECRET_PARAM = re.compile(
    r"(?i)([?&](?:token|access_token|api_key|apikey|key|password|secret|sig|signature)=)[^&#\s]*")


def redact_url(text: str) -> str:
    """`text` (a URL, or a message that quotes URLs) with credentials masked: the user:password
    of `https://user:pass@host` and secret-looking query parameters (`?token=`) become `***`.
    The one place an endpoint is made safe to print, log or store (IngestRun.source...)."""
    return _SECRET_PARAM.sub(r"\1***", _URL_USERINFO.sub("***@", text))


def retry_after_seconds(headers: Any, *, now: datetime | None = None) -> float | None:
    """Seconds to wait per `Retry-After` (delay-seconds or HTTP-date) or the Hub's `RateLimit`
    header (`"api";r=0;t=55`); None when the response names no wait."""
    value = headers.get("retry-after")
    if value is not None and value.strip():
        value = value.strip()
        try:
            return min(MAX_RETRY_AFTER, max(0.0, float(value)))
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None:
            now = now or datetime.now(timezone.utc)
            return min(MAX_RETRY_AFTER, max(0.0, (as_utc(when) - now).total_seconds()))
    info = parse_ratelimit_headers(headers)
    if info is not None and info.remaining == 0:
        return min(MAX_RETRY_AFTER, float(info.reset_in_seconds))
    return None


def _http_error(response: Any) -> BaseException | None:
    """The library's own exception for an error response (kept as the SourceError's cause)."""
    try:
        hf_raise_for_status(response)
    except HfHubHTTPError as e:
        return e
    return None


def _describe(response: Any) -> str:
    """`HTTP 503 (server message)`, short and on one line."""
    message = response.headers.get("x-error-message")
    if not message:
        try:
            body = response.json()
            message = body.get("error") if isinstance(body, dict) else None
        except ValueError:
            message = None
    if not message:
        message = response.text[:120]
    message = " ".join(str(message).split())
    return f"HTTP {response.status_code}" + (f" ({message})" if message else "")


def _json_body(expect_list: bool) -> Callable[[Any], Any]:
    def parse(response: Any) -> Any:
        try:
            data = response.json()
        except ValueError as e:
            raise ValueError(f"body is not valid JSON ({e}; starts {response.text[:60]!r})") from e
        if expect_list and not isinstance(data, list):
            raise ValueError(f"expected a JSON array, got {type(data).__name__}")
        return data
    return parse


def _text_body(response: Any) -> str:
    return response.text


class HubSource:
    """Raw Hub API objects, listed lazily with paging, incremental stop and retries.

    `sleep` (default `time.sleep`) and `timeout` (seconds per request) are extras for tests
    and slow links; every wait this class ever makes goes through `sleep`.
    """

    def __init__(self, *, endpoint: str | None = None, token: str | None = None,
                 page_size: int = 1000, max_retries: int = 6, backoff_base: float = 1.0,
                 backoff_cap: float = 60.0, timeout: float = 30.0,
                 sleep: Callable[[float], Any] = time.sleep):
        if page_size < 1:
            raise ValueError("page_size must be >= 1")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        endpoint = endpoint or os.environ.get("HF_ENDPOINT") or PUBLIC_ENDPOINT
        self.endpoint = endpoint.rstrip("/")
        self.token = token or os.environ.get("HF_TOKEN") or None
        self.page_size = page_size
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.timeout = timeout
        self._sleep = sleep
        # token=False: no implicit token from ~/.cache; only the explicit one or $HF_TOKEN.
        self.api = HfApi(endpoint=self.endpoint, token=self.token or False,
                         library_name=LIBRARY_NAME, library_version=LIBRARY_VERSION)
        self._headers = build_hf_headers(
            token=self.api.token, library_name=self.api.library_name,
            library_version=self.api.library_version, user_agent=self.api.user_agent,
            headers=self.api.headers,
        )

    def __repr__(self) -> str:
        return (f"HubSource(endpoint={redact_url(self.endpoint)!r}, "
                f"authenticated={self.token is not None})")

    # ---- listings ---------------------------------------------------------------------------

    def iter_models(self, *, limit: int | None = None, since: datetime | None = None,
                    expand: Sequence[str] | None = None) -> Iterator[Any]:
        """`GET /api/models` items. With `since`: newest-modified first, stopping at the first
        item last modified before `since`."""
        return self._iter_listing("model", limit=limit, since=since, expand=expand)

    def iter_datasets(self, *, limit: int | None = None, since: datetime | None = None,
                      expand: Sequence[str] | None = None) -> Iterator[Any]:
        """`GET /api/datasets` items (see `iter_models`)."""
        return self._iter_listing("dataset", limit=limit, since=since, expand=expand)

    def iter_spaces(self, *, limit: int | None = None, since: datetime | None = None,
                    expand: Sequence[str] | None = None) -> Iterator[Any]:
        """`GET /api/spaces` items (see `iter_models`)."""
        return self._iter_listing("space", limit=limit, since=since, expand=expand)

    def _expand(self, kind: str, expand: Sequence[str] | None, need: Sequence[str]) -> list[str]:
        if isinstance(expand, str):
            raise TypeError("expand must be a list of property names, not a string")
        names = list(_DEFAULT_EXPAND[kind] if expand is None else expand)
        unknown = sorted(set(names) - ALLOWED_EXPAND[kind])
        if unknown:
            raise ValueError(f"unknown {kind} expand properties {unknown}; "
                             f"allowed: {sorted(ALLOWED_EXPAND[kind])}")
        return list(dict.fromkeys([*names, *need]))

    def _iter_listing(self, kind: str, *, limit: int | None, since: datetime | None,
                      expand: Sequence[str] | None) -> Iterator[Any]:
        # Validate eagerly (this is not a generator), fetch lazily (the inner one is).
        expand_names = self._expand(kind, expand, ["lastModified"] if since else [])
        if limit is not None and limit < 0:
            raise ValueError("limit must be >= 0")
        since_utc = as_utc(since) if since is not None else None
        return self._listing_pages(kind, limit, since_utc, expand_names)

    def _listing_pages(self, kind: str, limit: int | None, since: datetime | None,
                       expand: list[str]) -> Iterator[Any]:
        if limit == 0:
            return
        params: list[tuple[str, Any]] = [
            ("limit", min(self.page_size, limit) if limit else self.page_size)]
        if since is not None:
            # huggingface_hub >= 1.0 dropped `direction`; the Hub sorts descending by default,
            # we still say so explicitly.
            params += [("sort", "lastModified"), ("direction", "-1")]
        params += [("expand", name) for name in expand]
        url: str | None = f"{self.endpoint}/api/{kind}s"
        seen: set[str] = set()
        n = 0
        while url is not None:
            response, page = self._get_json(url, params, expect_list=True)
            nxt = response.links.get("next", {}).get("url")
            next_url = urljoin(str(response.url), nxt) if nxt else None
            for item in page:
                if since is not None and isinstance(item, dict):
                    modified = parse_iso(item.get("lastModified"))
                    if modified is not None and modified < since:
                        return
                yield item
                n += 1
                if limit is not None and n >= limit:
                    return
            if next_url is not None:
                if next_url in seen:
                    raise SourceError(f"{kind} listing loops: next page "
                                      f"{redact_url(next_url)} seen before")
                seen.add(next_url)
            url, params = next_url, None  # the next link carries every query parameter

    # ---- single objects ---------------------------------------------------------------------

    def model_info(self, repo_id: str, *, expand: Sequence[str] | None = None) -> Any:
        """`GET /api/models/{repo_id}`: the full record (cardData, siblings, spaces, ...), or
        None (logged) when the repo is missing, private or gated for this token."""
        params = [("expand", n) for n in self._expand("model", expand, [])] if expand else None
        url = f"{self.endpoint}/api/models/{quote(repo_id, safe='/')}"
        response, data = self._get_json(url, params, passthrough=(401, 403, 404, 410))
        if data is None:
            logger.warning("model_info(%r): HTTP %s %s (%s); skipped", repo_id,
                           response.status_code, response.headers.get("x-error-code") or "",
                           response.headers.get("x-error-message") or "not accessible")
        return data

    def model_card(self, repo_id: str, *, revision: str = "main") -> str | None:
        """The model's README (card text), or None when the repo has none or is not
        accessible. Same retries and backoff as every other request."""
        url = (f"{self.endpoint}/{quote(repo_id, safe='/')}/resolve/"
               f"{quote(revision, safe='')}/README.md")
        response, text = self._get(url, None, parse=_text_body,
                                   passthrough=(401, 403, 404, 410))
        if text is None:
            logger.info("model_card(%r): HTTP %s; no card", repo_id, response.status_code)
        return text

    def paper_info(self, arxiv_id: str) -> Any:
        """`GET /api/papers/{arxiv_id}`, or None (logged) when the Hub has no page for it."""
        url = f"{self.endpoint}/api/papers/{quote(arxiv_id, safe='')}"
        response, data = self._get_json(url, None, passthrough=(404, 410))
        if data is None:
            logger.info("paper_info(%r): HTTP %s; no paper page", arxiv_id, response.status_code)
        return data

    def account_type(self, name: str) -> str | None:
        """What the Hub's account pages say the namespace `name` is: `organization`, `user`,
        or None when it has neither page (a deleted or renamed account).

        Asks `GET /api/organizations/{name}/overview` (what `HfApi.get_organization_overview`
        reads), and on a 404 `GET /api/users/{name}/overview` (`HfApi.get_user_overview`):
        one request for an organisation, two for a user. Those `HfApi` methods neither retry
        nor back off, so the same paths go through `_get_json` here, with the retries and
        backoff of every other request. Raises SourceError when the Hub does not answer."""
        for path, kind in (("organizations", ACCOUNT_ORGANIZATION), ("users", ACCOUNT_USER)):
            url = f"{self.endpoint}/api/{path}/{quote(name, safe='')}/overview"
            _, data = self._get_json(url, None, passthrough=(404,))
            if data is not None:
                said = data.get("type") if isinstance(data, dict) else None
                return _HUB_ACCOUNT_TYPES.get(said, kind)
        return None

    # ---- the one place that requests, retries and sleeps ------------------------------------

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff_cap, self.backoff_base * (2 ** (attempt - 1)))

    def _get_json(self, url: str, params: Any, *, expect_list: bool = False,
                  passthrough: tuple[int, ...] = ()) -> tuple[Any, Any]:
        """GET `url` and decode its JSON body, retrying the SAME request on 408/425/429/5xx,
        transport errors and undecodable bodies. Returns (response, data); data is None for a
        `passthrough` status. Raises SourceError once retries are spent or on other 4xx."""
        return self._get(url, params, parse=_json_body(expect_list), passthrough=passthrough)

    def _get(self, url: str, params: Any, *, parse: Callable[[Any], Any],
             passthrough: tuple[int, ...] = ()) -> tuple[Any, Any]:
        """The retry loop of `_get_json`; `parse(response)` decodes a 2xx body or raises
        ValueError (retried like a bad status)."""
        attempt = 0
        while True:
            attempt += 1
            wait: float | None = None
            cause: BaseException | None = None
            try:
                response = get_session().get(url, params=params, headers=self._headers,
                                             timeout=self.timeout)
            except _RETRY_EXCEPTIONS as e:
                problem, cause = redact_url(f"{type(e).__name__}: {e}"), e
                try:
                    where = redact_url(str(e.request.url))
                except RuntimeError:  # no request attached
                    where = redact_url(url)
            else:
                where = redact_url(str(response.url))
                status = response.status_code
                if status in passthrough:
                    return response, None
                if status in _RETRY_STATUSES or status >= 500:
                    wait = retry_after_seconds(response.headers)
                    problem, cause = _describe(response), _http_error(response)
                elif status >= 400:
                    raise SourceError(f"GET {where} failed: {_describe(response)}") \
                        from _http_error(response)
                else:
                    try:
                        return response, parse(response)
                    except ValueError as e:
                        problem, cause = str(e), e
            if attempt > self.max_retries:
                raise SourceError(
                    f"GET {where} failed after {attempt} attempt(s) "
                    f"({self.max_retries} retries): {problem}") from cause
            delay = wait if wait is not None else self._backoff(attempt)
            logger.warning("GET %s: %s; retry %d/%d in %.1fs", where, problem, attempt,
                           self.max_retries, delay)
            self._sleep(delay)
