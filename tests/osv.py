"""A stand-in for api.osv.dev's query API, serving advisory records copied from the PyPA advisory database.

The audit asks OSV (pip-audit's `--vulnerability-service osv`) one question per pinned package:
`POST /v1/query` with `{"package": {"name": ..., "ecosystem": "PyPI"}, "version": ...}`, answered with
`{"vulns": [record, ...]}`, or `{}` when no record affects that version. This serves that endpoint over
loopback from the records under tests/fixtures/osv/ (copies of github.com/pypa/advisory-database's
vulns/<package>/<id>.yaml, the files api.osv.dev imports for PyPI), so the audit's whole path runs as in CI,
pip-audit's OSV client included, without the internet.

A record affects a version as OSV decides it: the version is one the record's `affected[].versions`
enumerates, or falls in one of its ECOSYSTEM ranges (from an `introduced` up to, not including, the
next `fixed`, or up to and including a `last_affected`), compared as PyPI versions.
"""

from __future__ import annotations

import datetime
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

RECORDS = Path(__file__).resolve().parent / "fixtures" / "osv"


def load_records(root: Path = RECORDS) -> list[dict[str, Any]]:
    return [yaml.safe_load(path.read_text()) for path in sorted(root.glob("*/*.yaml"))]


def in_ranges(version: Version, ranges: list[dict[str, Any]]) -> bool:
    """Whether `version` is in an ECOSYSTEM range: events in order, an introduced then a fixed or last_affected."""
    for range_ in (r for r in ranges if r["type"] == "ECOSYSTEM"):
        introduced: Version | None = None
        for event in range_["events"]:
            if "introduced" in event:
                introduced = Version(str(event["introduced"]))
            elif introduced is not None and "fixed" in event:
                if introduced <= version < Version(str(event["fixed"])):
                    return True
                introduced = None
            elif introduced is not None and "last_affected" in event:
                if introduced <= version <= Version(str(event["last_affected"])):
                    return True
                introduced = None
        if introduced is not None and version >= introduced:  # introduced and never fixed
            return True
    return False


def same(version: str, listed: str) -> bool:
    """Whether a version an OSV record lists is the one asked about (2.10 and 2.10.0 are one PyPI version)."""
    try:
        return Version(version) == Version(listed)
    except InvalidVersion:
        return version == listed


def affects(record: dict[str, Any], name: str, version: str) -> bool:
    try:
        parsed = Version(version)
    except InvalidVersion:
        parsed = None
    for affected in record.get("affected", []):
        package = affected["package"]
        if package["ecosystem"] != "PyPI" or canonicalize_name(package["name"]) != canonicalize_name(name):
            continue
        if any(same(version, str(listed)) for listed in affected.get("versions", [])):
            return True
        if parsed is not None and in_ranges(parsed, affected.get("ranges", [])):
            return True
    return False


def query(records: list[dict[str, Any]], body: dict[str, Any]) -> dict[str, Any]:
    """api.osv.dev's answer to a /v1/query body naming a PyPI package and version."""
    package, version = body["package"], str(body["version"])
    if package.get("ecosystem") != "PyPI":
        return {}
    vulns = [record for record in records if affects(record, package["name"], version)]
    return {"vulns": vulns} if vulns else {}


def as_json(value: object) -> str:
    """The YAML files hold some timestamps unquoted: OSV serves them as RFC 3339 strings."""
    if isinstance(value, datetime.datetime):
        return value.isoformat().replace("+00:00", "Z")
    raise TypeError(f"{type(value).__name__} is not JSON")


@dataclass
class StandIn:
    url: str  # the query endpoint, for pip-audit's --osv-url
    queries: list[dict[str, Any]] = field(default_factory=list)  # the bodies it answered, in order

    def asked(self) -> dict[str, str]:
        """Package -> version, for every query answered."""
        return {q["package"]["name"]: q["version"] for q in self.queries}


@contextmanager
def serve(records: list[dict[str, Any]] | None = None) -> Iterator[StandIn]:
    """Serve the records on loopback while the block runs."""
    served = load_records() if records is None else records
    queries: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path != "/v1/query":
                self.send_error(404)
                return
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                answer = query(served, body)
            except (ValueError, KeyError, TypeError) as error:
                self.send_error(400, str(error))
                return
            queries.append(body)
            payload = json.dumps(answer, default=as_json).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield StandIn(f"http://127.0.0.1:{server.server_address[1]}/v1/query", queries)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
