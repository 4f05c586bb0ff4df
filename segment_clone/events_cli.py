"""``segment-clone events``: print what a collector stored, from its database file or over HTTP.

``--url`` reads a running collector through ``/api/entries`` (its filters are the API's), and
``--follow`` then keeps printing new messages until Ctrl-C. Following waits on the server
(``wait=1``), so an idle collector costs one request per ``FOLLOW_WAIT`` seconds.
"""

from __future__ import annotations

import argparse
import http.client
import os
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import orjson

from .collector.guard import TOKEN_ENV
from .collector.server import DEFAULT_DB
from .collector.store import EventStore, Query

PAGE = 500
"""Entries per request (the API's largest page)."""
FOLLOW_WAIT = 30
"""Seconds the collector holds a ``--follow`` request open when nothing new arrives."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--db", help=f"SQLite file (default: ./{DEFAULT_DB})")
    where.add_argument("--url", help="a running collector instead, e.g. http://127.0.0.1:8787")
    parser.add_argument("--type", help="only this message type (track, identify, ...)")
    parser.add_argument("--user-id", help="only messages with this userId (Mixpanel: distinct_id)")
    parser.add_argument("--user", help="only messages with this userId or anonymousId")
    parser.add_argument("--event", help="only track events with this name")
    parser.add_argument(
        "--source", help="only messages received through this API (segment, mixpanel)"
    )
    parser.add_argument(
        "--valid",
        choices=("true", "false"),
        help="only messages that passed (true) or broke (false) the collector's tracking plan",
    )
    parser.add_argument(
        "--limit", type=_positive, help="only the most recent N (still printed oldest first)"
    )
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--count", action="store_true", help="print the number of matches only")
    what.add_argument(
        "--stats", action="store_true", help="print counts by source and type, as JSON"
    )
    what.add_argument(
        "--follow", action="store_true", help="with --url: keep printing new messages (Ctrl-C)"
    )


def run(args: argparse.Namespace) -> int:
    """Print matching messages as JSON lines, oldest first (or their count, or the stats)."""
    if args.follow and args.url is None:
        return _fail("--follow reads a running collector: give --url")
    try:
        if args.url is not None:
            return _from_collector(args)
        return _from_file(args)
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        return 0


def _from_file(args: argparse.Namespace) -> int:
    db = args.db or DEFAULT_DB
    if not Path(db).is_file():
        return _fail(f"no database at {db}")
    query = Query(
        args.type,
        args.user_id,
        args.event,
        args.source,
        user=args.user,
        valid=None if args.valid is None else args.valid == "true",
    )
    with EventStore(db) as store:
        if args.stats:
            _print_json(store.stats())
        elif args.count:
            print(store.count(query))
        else:
            for stored in store.find(replace(query, limit=args.limit)):
                sys.stdout.write(stored.body + "\n")
    return 0


def _from_collector(args: argparse.Namespace) -> int:
    try:
        remote = Remote(args.url)
    except ValueError as e:
        return _fail(str(e))
    filters = {
        "type": args.type,
        "user_id": args.user_id,
        "user": args.user,
        "event": args.event,
        "source": args.source,
        "valid": args.valid,
    }
    filters = {k: v for k, v in filters.items() if v is not None}
    try:
        if args.stats:
            _print_json(remote.get("/api/stats", {}))
        elif args.count:
            print(remote.get("/api/entries", {**filters, "limit": 1})["total"])
        else:
            last = 0
            for entry in remote.entries(filters, args.limit):
                last = _print_entry(entry)
            while args.follow:
                for entry in remote.entries({**filters, "after": last}, None, FOLLOW_WAIT):
                    last = _print_entry(entry)
    except (OSError, http.client.HTTPException, RemoteError) as e:
        return _fail(f"cannot read {args.url}: {e}")
    finally:
        remote.close()
    return 0


class RemoteError(Exception):
    """The collector answered with an error."""


class Remote:
    """A keep-alive connection to a collector's inspection API."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"--url must be an http:// address, got {url!r}")
        self._conn = http.client.HTTPConnection(
            parts.hostname, parts.port or 80, timeout=FOLLOW_WAIT + 30
        )
        # the debugger's token, beyond loopback: from the URL the collector printed, or the env
        token = parse_qs(parts.query).get("token", [os.environ.get(TOKEN_ENV, "")])[0]
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path: str, params: dict[str, Any]) -> Any:
        self._conn.request("GET", f"{path}?{urlencode(params)}", headers=self._headers)
        response = self._conn.getresponse()
        body = orjson.loads(response.read())
        if response.status != 200:
            raise RemoteError(f"{response.status} {body.get('message', '')}".strip())
        return body

    def entries(
        self, filters: dict[str, Any], limit: int | None, wait: float | None = None
    ) -> Iterator[dict[str, Any]]:
        """Matching entries, oldest first: all of them, or the most recent ``limit``; with
        ``wait``, the collector holds the first request that long until one matches."""
        if limit is not None:
            newest: list[dict[str, Any]] = []
            before: dict[str, Any] = {}
            while len(newest) < limit:
                page = min(PAGE, limit - len(newest))
                got = self.get("/api/entries", {**filters, **before, "limit": page})["entries"]
                newest += got
                if len(got) < page:
                    break
                before = {"before": got[-1]["id"]}
            yield from reversed(newest)
            return
        after = filters.pop("after", 0)
        waiting = {} if wait is None else {"wait": 1, "timeout": wait}
        while True:
            params = {**filters, "after": after, "order": "asc", "limit": PAGE, **waiting}
            got = self.get("/api/entries", params)["entries"]
            yield from got
            if len(got) < PAGE:
                return
            after, waiting = got[-1]["id"], {}

    def close(self) -> None:
        self._conn.close()


def _print_entry(entry: dict[str, Any]) -> int:
    sys.stdout.write(entry["raw"] + "\n")
    sys.stdout.flush()
    id_: int = entry["id"]
    return id_


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def _fail(message: str) -> int:
    print(f"segment-clone events: {message}", file=sys.stderr)
    return 1


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value
