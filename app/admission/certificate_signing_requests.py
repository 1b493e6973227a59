"""NodeRestriction on CertificateSigningRequests (upstream ``admitCSR``). Pure, no I/O.

A node creating a CSR for a kubelet signer must ask for its own identity: the
PEM request's subject CN must be ``system:node:<node>``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from app.admission.lookups import AdmissionLookups
from app.admission.objects import typed
from app.admission.options import AdmissionOptions
from app.admission.review import AdmissionRequest
from app.admission.verdict import Forbidden

KUBELET_SERVING_SIGNER = "kubernetes.io/kubelet-serving"
KUBE_APISERVER_CLIENT_KUBELET_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_SIGNERS = frozenset({KUBELET_SERVING_SIGNER, KUBE_APISERVER_CLIENT_KUBELET_SIGNER})

# Go's pem.Decode takes the first well-formed block anywhere in the input.
_PEM_BLOCK = re.compile(rb"-----BEGIN ([^\r\n-]*)-----\r?\n(.*?)-----END \1-----", re.DOTALL)


class CSRParseError(ValueError):
    """``spec.request`` does not hold a PEM CERTIFICATE REQUEST; the message follows Go's where it can."""


def parse_csr_common_name(pem: bytes) -> str:
    """The subject CN of the first PEM block, as Go's ``certapi.ParseCSR`` + ``Subject.CommonName``.

    Go keeps the last CN attribute when several are present; so does this.
    """
    match = _PEM_BLOCK.search(pem)
    if match is None or match.group(1) != b"CERTIFICATE REQUEST":
        raise CSRParseError("PEM block type must be CERTIFICATE REQUEST")
    body = match.group(2).replace(b"\r", b"")
    # PEM headers ("Key: value" lines then a blank line) precede the base64 body.
    if b":" in body.split(b"\n", 1)[0]:
        body = body.split(b"\n\n", 1)[-1]
    try:
        der = base64.b64decode(b"".join(body.split()), validate=True)
    except (binascii.Error, ValueError):
        raise CSRParseError("PEM block type must be CERTIFICATE REQUEST") from None
    try:
        csr = x509.load_der_x509_csr(der)
        names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError as err:
        raise CSRParseError(f"x509: malformed certificate request: {err}") from None
    if not names:
        return ""
    value = names[-1].value
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def csr_refusal(csr: Mapping[str, Any], node: str) -> str | None:
    """Why ``node`` may not create this CSR, or None. ``csr`` is the v1 object as JSON."""
    spec = csr.get("spec") or {}
    if not isinstance(spec, Mapping):
        return "unable to parse csr: spec must be an object"
    if spec.get("signerName") not in KUBELET_SIGNERS:
        return None
    request = spec.get("request") or ""
    if not isinstance(request, str):
        return "unable to parse csr: spec.request must be a base64 string"
    try:
        pem = base64.b64decode(request, validate=True)
    except (binascii.Error, ValueError):
        # The apiserver decodes []byte fields itself, so this only happens with hand-made reviews.
        return "unable to parse csr: spec.request is not valid base64"
    try:
        common_name = parse_csr_common_name(pem)
    except CSRParseError as err:
        return f"unable to parse csr: {err}"
    if common_name != f"system:node:{node}":
        return f"can only create a node CSR with CN=system:node:{node}"
    return None


def admit_csr(r: AdmissionRequest, node: str, lookups: AdmissionLookups, options: AdmissionOptions) -> None:
    if options.allow_insecure_kubelet_csrs or r.operation != "CREATE":
        return
    if reason := csr_refusal(typed(r, r.object, "CertificateSigningRequest"), node):
        raise Forbidden(reason)
