"""Asking the API server's authorizer, as NodeRestriction does: a SubjectAccessReview per question.

Upstream's plugin calls the kube-apiserver's own authorizer; a webhook asks it
with ``POST /apis/authorization.k8s.io/v1/subjectaccessreviews``. The call is
made from the admission worker thread (``app.web.admit`` decides off the event
loop), bounded by ``timeout`` (the check deadline), and never raises: a failure
is an answer with ``error`` set, which the rules turn into a refusal naming it.

Where the API server is, decided once at start (``load_target``): ``--kubeconfig``
(env ``NODEAUTHZ_KUBECONFIG``), else ``$KUBECONFIG``, else the pod's service
account when running in a pod (``KUBERNETES_SERVICE_HOST`` is set and the
token file exists), else ``~/.kube/config``, else none (every question is then
answered "not allowed" with that cause). The ``kubernetes`` package is not used
here: the webhook process never loads it (import contract), so this reads the
kubeconfig fields a webhook needs (server, CA, client certificate, bearer token
or token file) with PyYAML and speaks HTTPS with the standard library. Exec and
auth-provider credentials are refused at start with a clear error.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from app.admission.lookups import AccessAnswer, AccessQuestion

SAR_PATH = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
MAX_ANSWER_BYTES = 1024 * 1024


class KubeconfigError(ValueError):
    """The kubeconfig cannot be used for SubjectAccessReviews; the message says why."""


@dataclass(frozen=True)
class ApiTarget:
    """An API server and how to authenticate to it (paths are read at each request: tokens rotate)."""

    server: str
    ca_file: str | None = None
    ca_data: str | None = None
    insecure: bool = False
    cert_file: str | None = None
    key_file: str | None = None
    token: str | None = None
    token_file: str | None = None
    source: str = ""

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file, cadata=self.ca_data)
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.cert_file and self.key_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def bearer(self) -> str | None:
        if self.token_file:
            return Path(self.token_file).read_text().strip()
        return self.token


def _decoded_file(data: str, suffix: str) -> str:
    """Inline ``*-data`` (base64 PEM) as a private file: ``ssl`` loads client keys only from files."""
    fd, path = tempfile.mkstemp(prefix="nodeauthz-", suffix=suffix)
    with os.fdopen(fd, "wb") as f:
        f.write(base64.b64decode(data))
    return path


def _named(items: Any, name: str, what: str, source: str) -> dict[str, Any]:
    for item in items or []:
        if isinstance(item, dict) and item.get("name") == name and isinstance(item.get(what), dict):
            return dict(item[what])
    raise KubeconfigError(f"{source}: no {what} named {name!r}")


def _relative(base: Path, value: Any) -> str | None:
    if not value:
        return None
    path = Path(str(value))
    return str(path if path.is_absolute() else base.parent / path)


def target_from_kubeconfig(path: str, context: str | None = None) -> ApiTarget:
    try:
        return _target_from_kubeconfig(path, context)
    except (ValueError, TypeError, OSError) as exc:  # bad base64, a *-data file that cannot be written
        if isinstance(exc, KubeconfigError):
            raise
        raise KubeconfigError(f"kubeconfig {path}: {exc}") from None


def _target_from_kubeconfig(path: str, context: str | None) -> ApiTarget:
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise KubeconfigError(f"kubeconfig {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise KubeconfigError(f"kubeconfig {path}: not a kubeconfig")
    name = context or doc.get("current-context")
    if not name:
        raise KubeconfigError(f"kubeconfig {path}: no current-context and no --context")
    ctx = _named(doc.get("contexts"), str(name), "context", path)
    cluster = _named(doc.get("clusters"), str(ctx.get("cluster")), "cluster", path)
    user = _named(doc.get("users"), str(ctx.get("user")), "user", path) if ctx.get("user") else {}
    if "exec" in user or "auth-provider" in user:
        raise KubeconfigError(
            f"kubeconfig {path}: user {ctx.get('user')!r} uses exec/auth-provider credentials, which "
            "the webhook cannot run; use a client certificate, a token or a token file"
        )
    server = str(cluster.get("server") or "")
    if not server:
        raise KubeconfigError(f"kubeconfig {path}: cluster {ctx.get('cluster')!r} has no server")
    base = Path(path)
    cert_file = _relative(base, user.get("client-certificate"))
    key_file = _relative(base, user.get("client-key"))
    if user.get("client-certificate-data"):
        cert_file = _decoded_file(str(user["client-certificate-data"]), ".crt")
    if user.get("client-key-data"):
        key_file = _decoded_file(str(user["client-key-data"]), ".key")
    ca_data = cluster.get("certificate-authority-data")
    return ApiTarget(
        server=server.rstrip("/"),
        ca_file=_relative(base, cluster.get("certificate-authority")),
        ca_data=base64.b64decode(str(ca_data)).decode() if ca_data else None,
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        cert_file=cert_file,
        key_file=key_file,
        token=str(user["token"]) if user.get("token") else None,
        token_file=_relative(base, user.get("tokenFile")),
        source=f"kubeconfig {path}",
    )


def load_target(
    kubeconfig: str | None, context: str | None = None, env: dict[str, str] | None = None
) -> tuple[ApiTarget | None, str]:
    """Where SubjectAccessReviews go (see the module's docstring for the order), or None and why not.

    Raises ``KubeconfigError`` only for an explicit ``kubeconfig`` that cannot be used; an implicit
    one ($KUBECONFIG, ~/.kube/config) that cannot be used means none, with the reason.
    """
    if kubeconfig:
        return target_from_kubeconfig(kubeconfig, context), ""
    env = dict(os.environ) if env is None else env
    try:
        return _implicit_target(env, context), ""
    except KubeconfigError as exc:
        return None, str(exc)


def _implicit_target(env: dict[str, str], context: str | None) -> ApiTarget | None:
    from_env = env.get("KUBECONFIG", "").split(os.pathsep)[0]
    if from_env:
        return target_from_kubeconfig(from_env, context)
    token = SERVICE_ACCOUNT_DIR / "token"
    host = env.get("KUBERNETES_SERVICE_HOST")
    if host and token.exists():
        port = env.get("KUBERNETES_SERVICE_PORT", "443")
        host = f"[{host}]" if ":" in host else host
        return ApiTarget(
            server=f"https://{host}:{port}",
            ca_file=str(SERVICE_ACCOUNT_DIR / "ca.crt"),
            token_file=str(token),
            source="in-cluster service account",
        )
    home = Path(env.get("HOME", "~")).expanduser() / ".kube" / "config"
    return target_from_kubeconfig(str(home), context) if home.exists() else None


def review_body(q: AccessQuestion) -> dict[str, Any]:
    """The SubjectAccessReview for ``q``, as the kube-apiserver builds one from authorizer attributes."""
    spec: dict[str, Any] = {
        "user": q.user,
        "groups": list(q.groups),
        "resourceAttributes": {
            "namespace": q.namespace,
            "verb": q.verb,
            "group": q.api_group,
            "version": q.api_version,
            "resource": q.resource,
            "name": q.name,
        },
    }
    if q.uid:
        spec["uid"] = q.uid
    if q.extra:
        spec["extra"] = {k: list(v) for k, v in q.extra.items()}
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}


class SubjectAccessReviewer:
    """``Authorizer`` for ``StoreLookups``: one SubjectAccessReview per question, never raising."""

    def __init__(self, target: ApiTarget | None, timeout: float, why_none: str = "") -> None:
        self.target = target
        self.timeout = timeout
        self.why_none = why_none or "no API server is configured for SubjectAccessReviews (--kubeconfig)"
        try:
            self._context = target.ssl_context() if target and target.server.startswith("https") else None
        except (OSError, ssl.SSLError) as exc:  # a CA or client certificate that cannot be loaded
            raise KubeconfigError(f"{target.source if target else ''}: TLS: {exc}") from None

    def __call__(self, question: AccessQuestion) -> AccessAnswer:
        if self.target is None:
            return AccessAnswer(False, error=self.why_none)
        try:
            return self._ask(self.target, question)
        except TimeoutError:
            return AccessAnswer(False, error=f"SubjectAccessReview: no answer within {self.timeout:g}s")
        except urllib.error.HTTPError as exc:
            return AccessAnswer(False, error=f"SubjectAccessReview: HTTP {exc.code} {_status_message(exc)}")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            return AccessAnswer(False, error=f"SubjectAccessReview: {type(exc).__name__}: {reason}")

    def _ask(self, target: ApiTarget, question: AccessQuestion) -> AccessAnswer:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if bearer := target.bearer():
            headers["Authorization"] = f"Bearer {bearer}"
        request = urllib.request.Request(
            target.server + SAR_PATH, data=orjson.dumps(review_body(question)), headers=headers, method="POST"
        )
        with urllib.request.urlopen(request, timeout=self.timeout, context=self._context) as response:
            doc = orjson.loads(response.read(MAX_ANSWER_BYTES))
        status = doc.get("status") if isinstance(doc, dict) else None
        if not isinstance(status, dict):
            return AccessAnswer(False, error="SubjectAccessReview: the answer has no status")
        return AccessAnswer(
            allowed=status.get("allowed") is True,
            reason=str(status.get("reason") or ""),
            error=str(status.get("evaluationError") or ""),
        )


def _status_message(exc: urllib.error.HTTPError) -> str:
    try:
        doc = orjson.loads(exc.read(MAX_ANSWER_BYTES))
        return str(doc.get("message") or exc.reason)
    except (ValueError, AttributeError, OSError):
        return str(exc.reason)
