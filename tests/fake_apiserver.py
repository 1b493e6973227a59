"""A fake kube-apiserver for tests: discovery, paged lists and watches over real HTTP.

The official client talks to it unchanged through the kubeconfig it writes.
Tests drive it from their own thread (create/update/delete, compact,
cut_watches, bookmark) while uvicorn serves it from a background thread.
Usage::

    with FakeApiServer(served={"podcertificaterequests": None}) as server:
        api = KubeApi.from_config(str(server.write_kubeconfig(tmp_path / "kubeconfig")))
        server.create("pods", {"metadata": {"namespace": "ns", "name": "p"}, "spec": {"nodeName": "n1"}})
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import copy
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

# resource -> (kind, namespaced)
KINDS: dict[str, tuple[str, bool]] = {
    "pods": ("Pod", True),
    "nodes": ("Node", False),
    "persistentvolumes": ("PersistentVolume", False),
    "volumeattachments": ("VolumeAttachment", False),
    "resourceslices": ("ResourceSlice", False),
    "podcertificaterequests": ("PodCertificateRequest", True),
    "serviceaccounts": ("ServiceAccount", True),
    "persistentvolumeclaims": ("PersistentVolumeClaim", True),
    "csidrivers": ("CSIDriver", False),
}
DEFAULT_SERVED: dict[str, str | None] = {
    "pods": "v1",
    "nodes": "v1",
    "persistentvolumes": "v1",
    "volumeattachments": "storage.k8s.io/v1",
    "resourceslices": "resource.k8s.io/v1",
    "podcertificaterequests": "certificates.k8s.io/v1",
    "serviceaccounts": "v1",
    "persistentvolumeclaims": "v1",
    "csidrivers": "storage.k8s.io/v1",
}
SAR_PATH = "apis/authorization.k8s.io/v1/subjectaccessreviews"
TOKEN = "fake-apiserver-token"
_CUT = object()


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _json(doc: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type="application/json")


@dataclass(eq=False)
class _Watcher:
    resource: str
    bookmarks: bool
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)


class FakeApiServer:
    def __init__(
        self, served: Mapping[str, str | None] | None = None, *, bookmark_interval: float | None = None
    ) -> None:
        """``served``: resource -> group/version it is served at, or None (not served);
        ``bookmark_interval``: send a BOOKMARK to idle bookmark-enabled watches this often."""
        self.served = {**DEFAULT_SERVED, **(served or {})}
        self.bookmark_interval = bookmark_interval
        self.requests: Counter[str] = Counter()  # "list:pods", "watch:pods", "discovery"
        self._lock = threading.Lock()
        self._rv = 100
        self._compacted = 0
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {r: {} for r in KINDS}
        self._history: list[tuple[int, str, str, dict[str, Any]]] = []
        self._snapshots: dict[str, list[dict[str, Any]]] = {}
        self._watchers: list[_Watcher] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        # SubjectAccessReviews: (user, verb, namespace, resource, name) -> allowed, or (allowed,
        # evaluationError); "*" in a key matches anything. Unlisted questions are not allowed.
        self.access: dict[tuple[str, str, str, str, str], bool | tuple[bool, str]] = {}
        self.access_reviews: list[dict[str, Any]] = []  # every review received, in order
        self.access_delay = 0.0  # seconds before each SubjectAccessReview is answered
        self.continue_delay = 0.0  # seconds before each list page after the first is answered
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST"])])

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeApiServer:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="critical", lifespan="off", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake apiserver did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.cut_watches()
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    def __enter__(self) -> FakeApiServer:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def write_kubeconfig(self, path: Path) -> Path:
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": TOKEN}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
        }
        path.write_bytes(orjson.dumps(doc))  # JSON is YAML
        return path

    # -- driving it from tests ---------------------------------------------------------------------

    @property
    def resource_version(self) -> str:
        return str(self._rv)

    def create(self, resource: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        return self._record(resource, "ADDED", obj)

    def update(self, resource: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        return self._record(resource, "MODIFIED", obj)

    def delete(self, resource: str, name: str, namespace: str = "") -> dict[str, Any]:
        obj = self._objects[resource][(namespace, name)]
        return self._record(resource, "DELETED", obj)

    def load(self, resource: str, objs: Iterable[dict[str, Any]]) -> int:
        """Bulk ``create`` for benchmarks: takes ownership of ``objs`` (no copy), returns the count.

        The objects get resourceVersions and history entries as with ``create``, but
        open watches are not notified: load before anyone watches.
        """
        kind, namespaced = KINDS[resource]
        version = self.served.get(resource) or "v1"
        store, count = self._objects[resource], 0
        with self._lock:
            for stored in objs:
                self._rv += 1
                stored.update(kind=kind, apiVersion=version)
                meta = stored.setdefault("metadata", {})
                meta["resourceVersion"] = str(self._rv)
                meta.setdefault("uid", str(uuid.uuid4()))
                store[(meta.get("namespace", "") if namespaced else "", meta.get("name"))] = stored
                self._history.append((self._rv, resource, "ADDED", stored))
                count += 1
        return count

    def compact(self) -> None:
        """Forget all history (watches from older versions get 410) and expire continue tokens."""
        with self._lock:
            self._compacted = self._rv
            self._history.clear()
            self._snapshots.clear()

    def cut_watches(self) -> None:
        """Abort every open watch connection mid-stream (no clean end)."""
        self._broadcast(lambda w: True, _CUT)

    def bookmark(self) -> None:
        """Send a BOOKMARK at the current resourceVersion to every bookmark-enabled watch."""
        with self._lock:
            self._broadcast(lambda w: w.bookmarks, ("BOOKMARK", self._rv))

    def watch_count(self, resource: str) -> int:
        return sum(1 for w in self._watchers if w.resource == resource)

    def _broadcast(self, which: Any, item: Any) -> None:
        if self._loop is None:
            return
        for w in list(self._watchers):
            if which(w):
                self._loop.call_soon_threadsafe(w.queue.put_nowait, item)

    def _record(self, resource: str, type_: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        kind, namespaced = KINDS[resource]
        version = self.served.get(resource) or "v1"
        with self._lock:
            self._rv += 1
            stored = copy.deepcopy(dict(obj))
            stored.update(kind=kind, apiVersion=version)
            meta = stored.setdefault("metadata", {})
            meta["resourceVersion"] = str(self._rv)
            meta.setdefault("uid", str(uuid.uuid4()))
            key = (meta.get("namespace", "") if namespaced else "", meta.get("name"))
            if type_ == "DELETED":
                self._objects[resource].pop(key, None)
            else:
                self._objects[resource][key] = stored
            self._history.append((self._rv, resource, type_, stored))
            self._broadcast(lambda w: w.resource == resource, (type_, stored))
        return stored

    # -- HTTP --------------------------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        self._loop = asyncio.get_running_loop()
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return _json(_status(401, "Unauthorized", "Unauthorized"), 401)
        if request.method == "POST" and request.url.path.strip("/") == SAR_PATH:
            return await self._access_review(request)
        parts = request.url.path.strip("/").split("/")
        resource_gv = {r: gv for r, gv in self.served.items() if gv}
        group_versions = sorted({gv for gv in resource_gv.values() if "/" in gv})
        if len(parts) <= 3 and parts[0] in ("api", "apis"):
            self.requests["discovery"] += 1
        if parts == ["api"]:
            return _json({"kind": "APIVersions", "versions": ["v1"]})
        if parts == ["apis"]:
            groups: dict[str, list[str]] = {}
            for gv in group_versions:
                groups.setdefault(gv.split("/")[0], []).append(gv.split("/")[1])
            return _json(
                {
                    "kind": "APIGroupList",
                    "apiVersion": "v1",
                    "groups": [
                        {
                            "name": g,
                            "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
                            "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]},
                        }
                        for g, vs in groups.items()
                    ],
                }
            )
        gv = "/".join(parts[1:3]) if parts[0] == "apis" else "/".join(parts[1:2])
        if (parts[0] == "api" and len(parts) == 2) or (parts[0] == "apis" and len(parts) == 3):
            names = [r for r, served_gv in resource_gv.items() if served_gv == gv]
            if not names and gv != "v1":
                return _json(
                    _status(404, "NotFound", "the server could not find the requested resource"), 404
                )
            return _json(
                {
                    "kind": "APIResourceList",
                    "groupVersion": gv,
                    "resources": [
                        {
                            "name": r,
                            "kind": KINDS[r][0],
                            "namespaced": KINDS[r][1],
                            "verbs": ["list", "watch"],
                        }
                        for r in names
                    ],
                }
            )
        resource = parts[-1]
        if resource_gv.get(resource) != gv or len(parts) != (3 if parts[0] == "api" else 4):
            return _json(_status(404, "NotFound", "the server could not find the requested resource"), 404)
        query = request.query_params
        if query.get("watch") in ("true", "1"):
            self.requests[f"watch:{resource}"] += 1
            return self._watch(
                resource,
                query.get("resourceVersion") or "",
                query.get("allowWatchBookmarks") == "true",
                float(query.get("timeoutSeconds", 1800)),
            )
        self.requests[f"list:{resource}"] += 1
        if self.continue_delay and query.get("continue"):
            await asyncio.sleep(self.continue_delay)
        return self._list(resource, int(query.get("limit") or 0), query.get("continue") or "")

    async def _access_review(self, request: Request) -> Response:
        review = orjson.loads(await request.body())
        self.access_reviews.append(review)
        if self.access_delay:
            await asyncio.sleep(self.access_delay)
        spec = review.get("spec") or {}
        attrs = spec.get("resourceAttributes") or {}
        asked = (spec.get("user", ""), attrs.get("verb", ""), attrs.get("namespace", ""),
                 attrs.get("resource", ""), attrs.get("name", ""))  # fmt: skip
        answer: bool | tuple[bool, str] = False
        for key, value in self.access.items():
            if all(k in ("*", a) for k, a in zip(key, asked, strict=True)):
                answer = value
                break
        allowed, error = answer if isinstance(answer, tuple) else (answer, "")
        status: dict[str, Any] = {"allowed": allowed}
        if error:
            status["evaluationError"] = error
        return _json({**review, "status": status}, 201)

    def _list(self, resource: str, limit: int, token: str) -> Response:
        with self._lock:
            if token:
                snap_id, offset_text = base64.urlsafe_b64decode(token.encode()).decode().split(":")
                offset = int(offset_text)
                items = self._snapshots.get(snap_id)
                if items is None:
                    return _json(_status(410, "Expired", "The provided continue parameter is too old"), 410)
            else:
                offset, snap_id = 0, uuid.uuid4().hex
                items = [
                    {
                        k: v for k, v in o.items() if k not in ("kind", "apiVersion")
                    }  # list items carry no kind
                    for _, o in sorted(self._objects[resource].items())
                ]
                self._snapshots[snap_id] = items
                items.append({"__rv__": str(self._rv)})  # the snapshot's resourceVersion rides along
            rv = items[-1]["__rv__"]
            objects = items[:-1]
            end = offset + limit if limit else len(objects)
            meta: dict[str, Any] = {"resourceVersion": rv}
            if end < len(objects):
                meta["continue"] = base64.urlsafe_b64encode(f"{snap_id}:{end}".encode()).decode()
                meta["remainingItemCount"] = len(objects) - end
        kind = KINDS[resource][0]
        return _json(
            {
                "kind": f"{kind}List",
                "apiVersion": self.served[resource],
                "metadata": meta,
                "items": objects[offset:end],
            }
        )

    def _watch(self, resource: str, rv_text: str, bookmarks: bool, timeout: float) -> Response:
        watcher = _Watcher(resource, bookmarks)
        with self._lock:
            since = int(rv_text) if rv_text.isdigit() else self._rv
            if since < self._compacted:
                backlog: list[Any] = [
                    ("ERROR", _status(410, "Expired", f"too old resource version: {since}"))
                ]
            else:
                # History is in resourceVersion order: skip to the first entry after ``since``.
                start = bisect.bisect_right(self._history, since, key=lambda entry: entry[0])
                backlog = [(t, o) for _, r, t, o in self._history[start:] if r == resource]
                self._watchers.append(watcher)
        kind = KINDS[resource][0]
        api_version = self.served[resource]

        def line(type_: str, obj: Any) -> bytes:
            return orjson.dumps({"type": type_, "object": obj}) + b"\n"

        def bookmark(rv: int) -> bytes:
            return line(
                "BOOKMARK",
                {"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": str(rv)}},
            )

        async def stream() -> AsyncIterator[bytes]:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            try:
                for type_, obj in backlog:
                    yield line(type_, obj)
                if backlog and backlog[0][0] == "ERROR":
                    return
                while (remaining := deadline - loop.time()) > 0:
                    wait = (
                        min(remaining, self.bookmark_interval)
                        if bookmarks and self.bookmark_interval
                        else remaining
                    )
                    try:
                        item = await asyncio.wait_for(watcher.queue.get(), wait)
                    except TimeoutError:
                        with self._lock:  # queued behind any event already on its way
                            loop.call_soon(watcher.queue.put_nowait, ("BOOKMARK", self._rv))
                        continue
                    if item is _CUT:
                        raise ConnectionAbortedError("watch cut by the test")
                    yield bookmark(item[1]) if item[0] == "BOOKMARK" else line(*item)
            finally:
                with self._lock:
                    if watcher in self._watchers:
                        self._watchers.remove(watcher)

        return StreamingResponse(stream(), media_type="application/json")
