#!/usr/bin/env python3
"""SCIM 2.0 compliance check of a running server with scim2-tester (PyPI).

    .ci/scim_check.py URL TOKEN [--trace FILE]

URL is the SCIM root (SERVER/scim/v2), TOKEN a SCIM bearer token. Runs every
check of scim2_tester.check_server (discovery, then create, read, replace,
patch and delete for each resource type the server publishes) and prints each
result that is not SUCCESS: its status, resource type, title and reason; for a
failed one also the HTTP exchanges since the result before it (method, path,
request body; status, response body), leaving out the deletions with which
scim2-tester cleans up after each check. Headers are never printed or written, so
neither is the token. --trace FILE writes every exchange as JSON lines.

Closes with `scim2-tester: N passed, N failed, N skipped`: passed counts
SUCCESS, COMPLIANT and ACCEPTABLE; failed DEVIATION, ERROR and CRITICAL;
skipped SKIPPED. Exits 1 when any check failed, 2 when the checker itself
could not run. Needs scim2-tester with its httpx2 extra (.ci/scim.sh installs
the pinned versions).
"""
import argparse
import os
import json
import sys

from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import CheckResult, Status, check_server
from scim2_tester.utils import ResourceManager

PASSED = {Status.SUCCESS, Status.COMPLIANT, Status.ACCEPTABLE}
FAILED = {Status.DEVIATION, Status.ERROR, Status.CRITICAL}
BODY_LIMIT = 1200    # characters of a body shown in a failure
EXCHANGES_SHOWN = 4  # the last exchanges shown before a failure


def main() -> int:
    parser = argparse.ArgumentParser(description="Run scim2-tester against a SCIM 2.0 server.")
    parser.add_argument("url", help="the SCIM root URL, e.g. http://127.0.0.1:8080/scim/v2")
    parser.add_argument(
        "token", nargs="?",
        help="a SCIM bearer token (never printed); better in $SCIM_TOKEN, which keeps it out of the process list "
        "and lets it begin with '-' as base64url tokens may")
    parser.add_argument("--trace", metavar="FILE", help="write every HTTP exchange (no headers) as JSON lines")
    args = parser.parse_args()

    # Every exchange, in order, without headers (the token is in one).
    exchanges: list[dict] = []
    cleaning = [False]

    def record(response) -> None:
        response.read()
        request = response.request
        exchanges.append({
            "cleanup": cleaning[0],
            "method": request.method,
            "path": request.url.raw_path.decode("ascii", "replace"),
            "request_body": request.content.decode("utf-8", "replace") if request.content else None,
            "status": response.status_code,
            "content_type": response.headers.get("content-type"),
            "response_body": response.text or None,
        })

    # Each result remembers how many exchanges had happened when it was made,
    # so that a failure can show the requests that led to it.
    original_init = CheckResult.__init__

    def init(self, *a, **k):
        original_init(self, *a, **k)
        self._exchanges = len(exchanges)

    CheckResult.__init__ = init

    # After each check scim2-tester deletes what the checks created (every
    # resource so far, again and again): those exchanges are marked and left
    # out of the failures (the trace keeps them).
    original_cleanup = ResourceManager.cleanup

    def cleanup(self):
        cleaning[0] = True
        try:
            original_cleanup(self)
        finally:
            cleaning[0] = False

    ResourceManager.cleanup = cleanup

    token = args.token or os.environ.get("SCIM_TOKEN", "")
    if not token:
        parser.error("give the token in $SCIM_TOKEN (or as the second argument)")
    http = Client(base_url=args.url, headers={"Authorization": f"Bearer {token}"}, timeout=30,
                  trust_env=False, event_hooks={"response": [record]})
    try:
        results = check_server(SyncSCIMClient(http), raise_exceptions=False)
    except Exception as exc:  # the checker itself broke: no verdict on the server
        print(f"scim2-tester could not run: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    finally:
        http.close()

    if args.trace:
        with open(args.trace, "w") as trace:
            for exchange in exchanges:
                trace.write(json.dumps(exchange) + "\n")

    previous = 0
    for result in results:
        seen = getattr(result, "_exchanges", previous)
        if result.status is not Status.SUCCESS:
            print(f"{result.status.name} [{result.resource_type or '-'}] {result.title}: {one_line(result.reason)}")
            if result.status in FAILED:
                batch = [e for e in exchanges[previous:seen] if not e["cleanup"]]
                show_exchanges(batch)
                if not batch and result.data is not None:
                    print(f"    data: {clip(repr(result.data))}")
        previous = max(previous, seen)

    passed = sum(r.status in PASSED for r in results)
    failed = sum(r.status in FAILED for r in results)
    skipped = sum(r.status is Status.SKIPPED for r in results)
    print(f"scim2-tester: {passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


def show_exchanges(batch: list[dict]) -> None:
    if not batch:
        print("    (no HTTP exchange since the previous result)")
        return
    if len(batch) > EXCHANGES_SHOWN:
        print(f"    ({len(batch) - EXCHANGES_SHOWN} earlier exchanges not shown)")
    for exchange in batch[-EXCHANGES_SHOWN:]:
        body = f" {clip(exchange['request_body'])}" if exchange["request_body"] else ""
        print(f"    > {exchange['method']} {exchange['path']}{body}")
        answer = f" {clip(exchange['response_body'])}" if exchange["response_body"] else ""
        print(f"    < {exchange['status']} ({exchange['content_type'] or 'no content type'}){answer}")


def one_line(text) -> str:
    return " ".join(str(text).split()) if text is not None else "(no reason given)"


def clip(text: str) -> str:
    text = one_line(text)
    return text if len(text) <= BODY_LIMIT else text[:BODY_LIMIT] + f"… ({len(text)} characters)"


if __name__ == "__main__":
    sys.exit(main())
