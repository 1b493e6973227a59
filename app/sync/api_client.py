"""Talking to the Kubernetes API: the official client's configuration and transport, raw JSON bodies.

The ``kubernetes`` package supplies kubeconfig/in-cluster loading, TLS, auth
(including token refresh) and its urllib3 pool; its model classes are bypassed
(``_preload_content``-style raw responses parsed with orjson), because
deserialising 100k pods into models costs seconds. Callers get plain dicts and
keep only what ``app.graph.derivation.derive`` needs.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from kubernetes import client, config

from app.k8s.watched_resources import CANDIDATES, RESOURCE_NAMES

log = logging.getLogger(__name__)


CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
WATCH_READ_SLACK = 30.0  # a watch read may stay silent up to timeoutSeconds + this
_END = object()


class ApiError(Exception):
    """A non-2xx answer, or an ERROR watch event, carrying the Kubernetes Status code."""

    def __init__(self, status: int, reason: str = "", message: str = "") -> None:
        super().__init__(f"HTTP {status} {reason}: {message}".strip())
        self.status = status
        self.reason = reason
        self.message = message

    def __reduce__(self) -> tuple[type[ApiError], tuple[int, str, str]]:
        # Raised in a list child process and re-raised in the writer: keep the status.
        return (ApiError, (self.status, self.reason, self.message))

    @property
    def expired(self) -> bool:
        """410 Gone/Expired: the resourceVersion or continue token is too old; re-list."""
        return self.status == 410


class StreamEnded(Exception):
    """The watch stream ended cleanly (server timeout): resume from the last resourceVersion."""


@dataclass(frozen=True)
class ResourceSpec:
    name: str  # "pods"
    group: str  # "" for the core group
    version: str
    kind: str  # owner kind (app.k8s.kinds)

    @property
    def path(self) -> str:
        if self.group:
            return f"/apis/{self.group}/{self.version}/{self.name}"
        return f"/api/{self.version}/{self.name}"


@dataclass(frozen=True)
class ListPage:
    items: list[dict[str, Any]]
    resource_version: str
    continue_token: str
    remaining: int | None = None  # metadata.remainingItemCount: how many items the next pages hold


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK
    object: dict[str, Any]
    resource_version: str
    arrived: float  # time.monotonic() when the line was read


def _status_error(status: int, body: bytes) -> ApiError:
    try:
        doc = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        doc = {}
    if not isinstance(doc, dict):
        doc = {}
    return ApiError(status, str(doc.get("reason", "")), str(doc.get("message", body[:200])))


def _resource_version(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    rv = meta.get("resourceVersion") if isinstance(meta, Mapping) else None
    return rv if isinstance(rv, str) else ""


class WatchStream:
    """One open watch: a reader thread turns JSON lines into WatchEvents on a queue.

    The thread lets the consumer batch by time (``get`` with a timeout) while
    reads block; ``close`` shuts the socket down so a blocked read returns.
    """

    def __init__(self, response: Any) -> None:
        self._response = response
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._terminal: BaseException | None = None  # once the stream ended, every get raises this
        self._thread = threading.Thread(target=self._read, name="watch-reader", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        buffer = b""
        try:
            while True:
                data = self._response.read1(65536)
                if not data:
                    break
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                now = time.monotonic()
                for line in lines:
                    if line.strip():
                        self._queue.put(self._parse(line, now))
            self._queue.put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread
            self._queue.put(exc)

    @staticmethod
    def _parse(line: bytes, now: float) -> WatchEvent | ApiError:
        doc = orjson.loads(line)
        kind, obj = doc.get("type"), doc.get("object")
        if not isinstance(obj, dict):
            obj = {}
        if kind == "ERROR":
            return ApiError(
                int(obj.get("code") or 500), str(obj.get("reason", "")), str(obj.get("message", ""))
            )
        return WatchEvent(str(kind), obj, _resource_version(obj), now)

    def get(self, timeout: float) -> WatchEvent | None:
        """The next event, or None if none arrived within ``timeout``.

        Raises StreamEnded at a clean end, ApiError for an ERROR event, or the transport error.
        """
        if self._terminal is not None:
            raise self._terminal
        try:
            item = self._queue.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None
        if item is _END:
            item = StreamEnded()
        if isinstance(item, BaseException):
            self._terminal = item
            raise item
        assert isinstance(item, WatchEvent)
        return item

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._response.shutdown()  # unblocks a read in progress
        except (ValueError, RuntimeError, OSError):
            pass
        self._response.close()
        self._thread.join(timeout=2.0)


class KubeApi:
    """Raw list/watch/discovery over an ``ApiClient``'s configuration and pool."""

    def __init__(
        self, api_client: client.ApiClient, source: tuple[str | None, str | None] | None = None
    ) -> None:
        """``source``: the (kubeconfig, context) it was configured from, so that another process
        (a list child) can configure its own client the same way; None: built some other way."""
        self.api_client = api_client
        self.source = source

    @classmethod
    def from_config(cls, kubeconfig: str | None = None, context: str | None = None) -> KubeApi:
        """--kubeconfig, else $KUBECONFIG, else the in-cluster service account, else ~/.kube/config."""
        configuration = client.Configuration()
        if kubeconfig or os.environ.get("KUBECONFIG"):
            # The kubernetes package ships no type hints: these three calls are untyped.
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, context=context, client_configuration=configuration
            )
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            config.load_kube_config(context=context, client_configuration=configuration)  # type: ignore[no-untyped-call]
        # One connection per concurrent watch plus lists and discovery.
        configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize or 0, 32)
        return cls(client.ApiClient(configuration), (kubeconfig, context))

    def close(self) -> None:
        self.api_client.close()  # type: ignore[no-untyped-call]

    def _get(self, path: str, params: Iterable[tuple[str, Any]], *, read_timeout: float) -> Any:
        method, url, headers, _, _ = self.api_client.param_serialize(
            "GET",
            path,
            query_params=list(params),
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        rest = self.api_client.call_api(
            method, url, header_params=headers, _request_timeout=(CONNECT_TIMEOUT, read_timeout)
        )
        response = rest.response  # the urllib3 response, body not read yet
        if not 200 <= response.status <= 299:
            try:
                raise _status_error(response.status, response.data)
            finally:
                response.release_conn()
        return response

    def get_json(self, path: str, params: Iterable[tuple[str, Any]] = ()) -> Any:
        response = self._get(path, params, read_timeout=READ_TIMEOUT)
        try:
            return orjson.loads(response.data)
        finally:
            response.release_conn()

    def fetch_page(self, spec: ResourceSpec, *, limit: int, continue_token: str = "") -> ListPage:
        params: list[tuple[str, Any]] = [("limit", limit)]
        if continue_token:
            params.append(("continue", continue_token))
        doc = self.get_json(spec.path, params)
        meta = doc.get("metadata") or {}
        items = doc.get("items") or []
        remaining = meta.get("remainingItemCount")
        return ListPage(
            items=[i for i in items if isinstance(i, dict)],
            resource_version=str(meta.get("resourceVersion", "")),
            continue_token=str(meta.get("continue") or ""),
            remaining=remaining if isinstance(remaining, int) else None,
        )

    def watch(self, spec: ResourceSpec, *, resource_version: str, timeout_seconds: int) -> WatchStream:
        params = [
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", timeout_seconds),
        ]
        return WatchStream(self._get(spec.path, params, read_timeout=timeout_seconds + WATCH_READ_SLACK))

    def discover(self, names: Iterable[str] = RESOURCE_NAMES) -> tuple[list[ResourceSpec], dict[str, str]]:
        """The served resources among ``names`` (preferred version first) and why the others were skipped."""
        served: list[ResourceSpec] = []
        skipped: dict[str, str] = {}
        group_versions: dict[str, set[str]] | None = None
        resources_cache: dict[str, set[str]] = {}
        for name in names:
            group, versions, kind = CANDIDATES[name]
            if group and group_versions is None:
                group_versions = self._group_versions()
            available = (group_versions or {}).get(group, set()) if group else {"v1"}
            found = None
            for version in versions:
                if version not in available:
                    continue
                gv = f"{group}/{version}" if group else version
                if gv not in resources_cache:
                    resources_cache[gv] = self._resource_names(gv)
                if name in resources_cache[gv]:
                    found = ResourceSpec(name, group, version, kind)
                    break
            if found is None:
                tried = ", ".join(f"{group}/{v}" if group else v for v in versions)
                skipped[name] = f"not served by the cluster (tried {tried})"
            else:
                served.append(found)
        return served, skipped

    def _group_versions(self) -> dict[str, set[str]]:
        doc = self.get_json("/apis")
        result: dict[str, set[str]] = {}
        for group in doc.get("groups") or []:
            result[group.get("name", "")] = {v.get("version", "") for v in group.get("versions") or []}
        return result

    def _resource_names(self, group_version: str) -> set[str]:
        path = f"/apis/{group_version}" if "/" in group_version else f"/api/{group_version}"
        try:
            doc = self.get_json(path)
        except ApiError as exc:
            if exc.status == 404:
                return set()
            raise
        return {r.get("name", "") for r in doc.get("resources") or []}
