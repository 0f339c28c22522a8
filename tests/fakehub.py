"""A fake Hugging Face Hub: a real HTTP server on 127.0.0.1 for `HfApi(endpoint=hub.url)`.

    from tests.fakehub import FakeHub, fake_hub   # the fixture, importable into any test module

    with FakeHub() as hub:                         # serves tests/data/hub_pages by default
        src = HubSource(endpoint=hub.url)
        hub.add_fault(status=429, retry_after="3", nth=2, path="/api/models")
        ...
        hub.requests                               # the log: [LoggedRequest(...), ...]

Serves, like the real Hub:
- `GET /api/{models,datasets,spaces}`: `limit` (page size, capped at `max_page_size`),
  `sort` (downloads, likes, lastModified, createdAt, trendingScore) and `direction` (-1 default,
  1), `expand` / `expand[]` (only `_id`, `id` and the named properties; names outside what
  huggingface_hub declares → 400), `search`, `author`; paging through an opaque `cursor` in a
  `Link: <...>; rel="next"` header that repeats every other query parameter.
- `GET /api/{models,datasets,spaces}/{repo_id}` (repo ids contain a slash): the full record,
  404 `RepoNotFound` for unknown ids, 403 `GatedRepo` for ids in `gated`.
- `GET /api/papers/{arxiv_id}`.
- `GET /api/organizations/{name}/overview` and `GET /api/users/{name}/overview` (what
  `HfApi.get_organization_overview` / `get_user_overview` read): the account's overview for
  names in `accounts` (name → "org" or "user"), 404 else, as the Hub answers a name of the
  other kind.
- `GET /{repo_id}/resolve/{revision}/README.md`: the model card text from `cards` (404 else).
- Expand properties the Hub computes, where an item does not carry them itself: `baseModels`
  (`{"relation", "models": [{"id"}]}` from the item's typed `base_model:<rel>:` tags) and
  `childrenModelCount` (items naming the model in a `base_model` tag).
Items are served as given, so a list may hold broken records (non-objects, no id).

Faults (`add_fault`) hit the nth..nth+times-1 requests matching a path: any status with an
optional `Retry-After`, a raw body (e.g. 200 with HTML), a delay (client timeouts) or a
dropped connection. The fake never sleeps on the client's behalf; Retry-After is just a header.
"""
from __future__ import annotations

import base64
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator, Sequence, get_args
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import pytest
from huggingface_hub.hf_api import (
    ExpandDatasetProperty_T,
    ExpandModelProperty_T,
    ExpandSpaceProperty_T,
)

FIXTURE_DIR = Path(__file__).resolve().parent / "data" / "hub_pages"
_KINDS = {"models": "model", "datasets": "dataset", "spaces": "space"}
_EXPAND = {
    "model": frozenset(get_args(ExpandModelProperty_T)),
    "dataset": frozenset(get_args(ExpandDatasetProperty_T)),
    "space": frozenset(get_args(ExpandSpaceProperty_T)),
}
_SORT_KEYS = {"downloads", "likes", "lastModified", "createdAt", "trendingScore"}


def _load_jsonl(path: Path) -> list:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_fixture(kind: str) -> list:
    """A fresh copy of the fixture records: kind in models, datasets, spaces, papers."""
    if kind in ("models", "datasets"):
        return _load_jsonl(FIXTURE_DIR / f"{kind}.jsonl")
    if kind in ("spaces", "papers"):
        return json.loads((FIXTURE_DIR / f"{kind}.json").read_text(encoding="utf-8"))
    raise ValueError(kind)


#: Items a broken page may carry: each makes `from_api` raise RecordError.
BROKEN_ITEMS: list = ["not-a-record", 42, None, ["a", "list"],
                      {"likes": 3, "tags": ["no-id"]}, {"id": "has a space"}]


@dataclass
class Fault:
    """Answer the nth..nth+times-1 requests matching `path` (exact) / `path_prefix` (all
    requests when both are None) with this instead of the real response."""

    status: int = 503
    nth: int = 1
    times: int = 1
    path: str | None = None
    path_prefix: str | None = None
    retry_after: str | None = None
    body: bytes | None = None
    content_type: str = "application/json"
    headers: dict = field(default_factory=dict)
    delay: float = 0.0          # seconds to stall before answering
    drop: bool = False          # close the connection without any response
    seen: int = 0               # matching requests so far
    fired: int = 0              # times this fault answered

    def matches(self, path: str) -> bool:
        if self.path is not None and path != self.path:
            return False
        if self.path_prefix is not None and not path.startswith(self.path_prefix):
            return False
        return True


@dataclass
class LoggedRequest:
    method: str
    path: str          # decoded path, e.g. /api/models/org/name
    query: dict        # name -> list of values
    url: str           # the raw request target (path?query): equal for a retried page
    headers: dict      # lower-case names
    status: int | None = None
    fault: Fault | None = None


def _encode_cursor(offset: int) -> str:
    raw = json.dumps({"$offset": offset}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    return int(json.loads(raw)["$offset"])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"
    timeout = 10

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle + delayed ACK cost
        # ~40 ms per keep-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.server.hub._handle(self)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    hub: "FakeHub"


class FakeHub:
    """A running fake Hub (start with `with FakeHub() as hub:` or `.start()`/`.stop()`).

    Data defaults to the tests/data/hub_pages fixture; pass lists to replace it. `model_infos`
    (id → full record) defaults to the listed models themselves. Mutating `hub.models` etc.
    between requests is allowed.
    """

    def __init__(self, *, models: Sequence | None = None, datasets: Sequence | None = None,
                 spaces: Sequence | None = None, papers: Sequence | None = None,
                 model_infos: dict | None = None, gated: Sequence[str] = (),
                 max_page_size: int = 1000, cards: dict[str, str] | None = None,
                 accounts: dict[str, str] | None = None):
        self.models = list(load_fixture("models") if models is None else models)
        self.datasets = list(load_fixture("datasets") if datasets is None else datasets)
        self.spaces = list(load_fixture("spaces") if spaces is None else spaces)
        papers = load_fixture("papers") if papers is None else papers
        self.papers = {p["id"]: p for p in papers}
        self.model_infos = model_infos
        self.cards = dict(cards or {})
        self.accounts = dict(accounts or {})  # namespace -> "org" | "user"
        self.gated = set(gated)
        self.max_page_size = max_page_size
        self.requests: list[LoggedRequest] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeHub is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeHub":
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.hub = self
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True,
                                        name="fakehub")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "FakeHub":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- test helpers -----------------------------------------------------------------------

    def add_fault(self, **kwargs: Any) -> Fault:
        """Add a `Fault(**kwargs)`; e.g. `add_fault(status=429, retry_after="5", nth=3,
        path="/api/models")`, `add_fault(status=502, times=4)`, `add_fault(status=200,
        body=b"<html>", content_type="text/html")`, `add_fault(drop=True)`."""
        fault = Fault(**kwargs)
        with self._lock:
            self.faults.append(fault)
        return fault

    def requests_to(self, path: str) -> list[LoggedRequest]:
        """Logged requests whose decoded path equals `path`."""
        with self._lock:
            return [r for r in self.requests if r.path == path]

    # ---- serving ----------------------------------------------------------------------------

    def _pick_fault(self, path: str) -> Fault | None:
        chosen = None
        with self._lock:
            for fault in self.faults:
                if not fault.matches(path):
                    continue
                fault.seen += 1
                if chosen is None and fault.nth <= fault.seen < fault.nth + fault.times:
                    fault.fired += 1
                    chosen = fault
        return chosen

    def _handle(self, h: _Handler) -> None:
        split = urlsplit(h.path)
        path = unquote(split.path)
        query = parse_qs(split.query, keep_blank_values=True)
        entry = LoggedRequest("GET", path, query, h.path,
                              {k.lower(): v for k, v in h.headers.items()})
        with self._lock:
            self.requests.append(entry)
        fault = self._pick_fault(path)
        entry.fault = fault
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.drop:
                entry.status = None
                h.close_connection = True
                return
            headers = dict(fault.headers)
            if fault.retry_after is not None:
                headers["Retry-After"] = fault.retry_after
            body = fault.body
            if body is None:
                body = json.dumps({"error": f"injected HTTP {fault.status}"}).encode()
            self._send(h, entry, fault.status, body, fault.content_type, headers)
            return
        try:
            status, payload, headers = self._route(h, path, query)
        except _HttpError as e:
            status, payload = e.status, {"error": e.message}
            headers = {"X-Error-Message": e.message, **e.headers}
        if isinstance(payload, _Text):
            self._send(h, entry, status, payload.text.encode(), "text/plain; charset=utf-8",
                       headers)
            return
        self._send(h, entry, status, json.dumps(payload).encode(), "application/json", headers)

    def _send(self, h: _Handler, entry: LoggedRequest, status: int, body: bytes,
              content_type: str, headers: dict) -> None:
        entry.status = status
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)

    def _route(self, h: _Handler, path: str, query: dict) -> tuple[int, Any, dict]:
        parts = path.strip("/").split("/")
        if len(parts) >= 5 and parts[0] != "api" and parts[2] == "resolve":
            return self._card("/".join(parts[:2]), "/".join(parts[4:]))
        if len(parts) < 2 or parts[0] != "api":
            raise _HttpError(404, f"no route {path}")
        if parts[1] == "papers" and len(parts) == 3:
            paper = self.papers.get(parts[2])
            if paper is None:
                raise _HttpError(404, "Paper not found", {"X-Error-Code": "EntryNotFound"})
            return 200, paper, {}
        if parts[1] in ("organizations", "users") and len(parts) == 4 and parts[3] == "overview":
            return self._overview("org" if parts[1] == "organizations" else "user", parts[2])
        kind = _KINDS.get(parts[1])
        if kind is None:
            raise _HttpError(404, f"no route {path}")
        if len(parts) == 2:
            return self._listing(h, kind, parts[1], query)
        return self._info(kind, "/".join(parts[2:]), query)

    def _overview(self, kind: str, name: str) -> tuple[int, Any, dict]:
        with self._lock:
            found = self.accounts.get(name) == kind
            repos = sum(1 for m in self.models
                        if isinstance(m, dict) and str(m.get("id", "")).startswith(name + "/"))
        if not found:
            what = "Organization" if kind == "org" else "User"
            raise _HttpError(404, f"{what} not found")
        body = {"_id": f"{abs(hash(name)):024x}"[:24], "avatarUrl": f"/avatars/{name}.svg",
                "fullname": name.title(), "type": kind, "numModels": repos,
                "numDatasets": 0, "numSpaces": 0, "numFollowers": 1}
        if kind == "org":
            body.update(name=name, isVerified=False, numUsers=1)
        else:
            body.update(user=name, isPro=False, orgs=[], numLikes=0, numPapers=0)
        return 200, body, {}

    def _card(self, repo_id: str, filename: str) -> tuple[int, Any, dict]:
        with self._lock:
            text = self.cards.get(repo_id) if filename == "README.md" else None
        if text is None:
            raise _HttpError(404, "Entry not found", {"X-Error-Code": "EntryNotFound"})
        return 200, _Text(text), {}

    def _items(self, kind: str) -> list:
        return {"model": self.models, "dataset": self.datasets, "space": self.spaces}[kind]

    @staticmethod
    def _expand_names(kind: str, query: dict) -> list[str] | None:
        names = query.get("expand", []) + query.get("expand[]", [])
        if not names:
            return None
        bad = sorted(set(names) - _EXPAND[kind])
        if bad:
            raise _HttpError(400, f"Invalid expand value(s) {bad}")
        return names

    def _project(self, item: Any, names: list[str] | None) -> Any:
        if names is None or not isinstance(item, dict):
            return item
        keep = {"_id", "id", *names}
        out = {k: v for k, v in item.items() if k in keep}
        if "baseModels" in keep and "baseModels" not in item:
            derived = _typed_base_models(item)
            if derived is not None:
                out["baseModels"] = derived
        if "childrenModelCount" in keep and "childrenModelCount" not in item:
            out["childrenModelCount"] = self._children_count(item.get("id"))
        return out

    def _children_count(self, repo_id: Any) -> int:
        with self._lock:
            models = list(self.models)
        marks = {f"base_model:{repo_id}", *(f"base_model:{r}:{repo_id}" for r in
                                            ("finetune", "adapter", "quantized", "merge"))}
        return sum(1 for m in models if isinstance(m, dict) and isinstance(m.get("tags"), list)
                   and marks & set(m["tags"]))

    def _listing(self, h: _Handler, kind: str, plural: str, query: dict) -> tuple[int, Any, dict]:
        def one(name: str) -> str | None:
            values = query.get(name)
            return values[-1] if values else None

        expand = self._expand_names(kind, query)
        try:
            limit = int(one("limit") or self.max_page_size)
            offset = _decode_cursor(one("cursor")) if one("cursor") else 0
        except (ValueError, KeyError, TypeError):
            raise _HttpError(400, "bad limit or cursor") from None
        limit = max(1, min(limit, self.max_page_size))
        with self._lock:
            items = list(self._items(kind))
        if one("search"):
            items = [i for i in items if isinstance(i, dict) and one("search") in str(i.get("id"))]
        if one("author"):
            items = [i for i in items if isinstance(i, dict)
                     and str(i.get("id", "")).startswith(one("author") + "/")]
        sort = one("sort")
        if sort:
            if sort not in _SORT_KEYS:
                raise _HttpError(400, f"Invalid sort {sort!r}")
            descending = (one("direction") or "-1") != "1"
            keyed = [i for i in items if isinstance(i, dict) and i.get(sort) is not None]
            rest = [i for i in items if not (isinstance(i, dict) and i.get(sort) is not None)]
            items = sorted(keyed, key=lambda i: i[sort], reverse=descending) + rest
        page = [self._project(i, expand) for i in items[offset:offset + limit]]
        headers = {}
        if offset + limit < len(items):
            params = [(k, v) for k, vs in query.items() if k != "cursor" for v in vs]
            params.append(("cursor", _encode_cursor(offset + limit)))
            host = h.headers.get("Host") or self.url.split("://", 1)[1]
            headers["Link"] = f'<http://{host}/api/{plural}?{urlencode(params)}>; rel="next"'
        return 200, page, headers

    def _info(self, kind: str, repo_id: str, query: dict) -> tuple[int, Any, dict]:
        expand = self._expand_names(kind, query)
        if repo_id in self.gated:
            raise _HttpError(403, f"Access to model {repo_id} is restricted.",
                             {"X-Error-Code": "GatedRepo"})
        with self._lock:
            if kind == "model" and self.model_infos is not None:
                record = self.model_infos.get(repo_id)
            else:
                record = next((i for i in self._items(kind)
                               if isinstance(i, dict) and i.get("id") == repo_id), None)
        if record is None:
            raise _HttpError(404, "Repository not found", {"X-Error-Code": "RepoNotFound"})
        return 200, self._project(record, expand), {}


@dataclass
class _Text:
    """A plain-text response body (a README)."""

    text: str


def _typed_base_models(item: dict) -> dict | None:
    """`baseModels` as the Hub serves it, from an item's typed `base_model:<rel>:` tags."""
    tags = item.get("tags") if isinstance(item.get("tags"), list) else []
    typed = [t.split(":", 2) for t in tags if isinstance(t, str) and t.count(":") >= 2
             and t.startswith("base_model:")]
    typed = [(rel, pid) for _, rel, pid in typed
             if rel in ("finetune", "adapter", "quantized", "merge")]
    if not typed:
        return None
    return {"relation": typed[0][0], "models": [{"id": pid} for _, pid in typed]}


class _HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


@pytest.fixture
def fake_hub() -> Iterator[FakeHub]:
    """A running FakeHub over the hub_pages fixture; `fake_hub.url` is its endpoint."""
    with FakeHub() as hub:
        yield hub
