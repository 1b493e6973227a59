"""``nodeauthz check-admission FILE``: a saved AdmissionReview through the webhook's logic, offline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from app.admission.options import AdmissionOptions
from app.admission.restriction import check_admission_bytes
from app.admission.review import AdmissionError
from app.cli.errors import UsageError
from app.cli.options import add_authorizer_flags, add_gates_flags, settings_from_args
from app.graph.database import make_read_engine
from app.graph.lookups import StoreLookups
from app.web.app import subject_access_reviewer


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "check-admission", help="run a saved AdmissionReview (or -) through NodeRestriction"
    )
    p.add_argument("file", metavar="FILE")
    add_gates_flags(p)
    add_authorizer_flags(p)
    p.set_defaults(func=cmd_check_admission)


def cmd_check_admission(args: argparse.Namespace) -> int:
    try:
        body = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        raise UsageError(f"{args.file}: cannot read: {exc.strerror or exc}") from exc
    settings = settings_from_args(args)
    options = AdmissionOptions.from_gates(settings.feature_gates)
    engine = make_read_engine(settings.database_url)
    try:
        verdict, described = check_admission_bytes(
            body, StoreLookups(engine, subject_access_reviewer(settings)), options
        )
    except AdmissionError as exc:
        raise UsageError(f"{args.file}: {exc}") from exc
    finally:
        engine.dispose()
    if verdict.allowed:
        print(f"allowed: {described}")
        return 0
    print(f"refused ({verdict.code}): {described}\n  {verdict.message}")
    return 1
