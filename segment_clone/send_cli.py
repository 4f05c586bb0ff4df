"""``segment-clone send``: one message from the command line, or many from a JSON-lines file.

Messages go through a regular ``Client``, so they are batched and retried like any other. The
command flushes before it exits and exits 1, saying how many, when anything was not delivered.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from typing import Any, Callable, TextIO

import orjson
from dateutil.parser import isoparse

from .client import Client

DEFAULT_HOST = "http://127.0.0.1:8787"
PROGRESS_MIN_LINES = 1000
"""Files at least this long get a progress bar on stderr."""
PROBE_LINES = 100
CHUNK_LINES = 1000
"""``--file`` flushes after the first ``PROBE_LINES`` lines and then every ``CHUNK_LINES``;
when a flush delivered nothing at all, the rest of the file is not sent (the server is down or
refuses the write key), instead of retrying every remaining batch."""

WIRE_TO_ARG = {
    "userId": "user_id",
    "anonymousId": "anonymous_id",
    "event": "event",
    "properties": "properties",
    "traits": "traits",
    "context": "context",
    "integrations": "integrations",
    "timestamp": "timestamp",
    "messageId": "message_id",
    "name": "name",
    "category": "category",
    "groupId": "group_id",
    "previousId": "previous_id",
}
TYPES = ("track", "identify", "page", "screen", "group", "alias")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--write-key",
        default=os.environ.get("SEGMENT_WRITE_KEY"),
        help="write key (default: $SEGMENT_WRITE_KEY)",
    )
    parser.add_argument(
        "--host",
        default=os.environ.get("SEGMENT_HOST", DEFAULT_HOST),
        help="API base URL (default: $SEGMENT_HOST or %(default)s, the local collector)",
    )
    parser.add_argument("--gzip", action="store_true", help="compress request bodies")
    parser.add_argument("--max-retries", type=int, default=3, help="per batch (default: 3)")
    parser.add_argument("--timeout", type=float, default=15, help="seconds per HTTP request")
    parser.add_argument(
        "--file", help="send every message of this JSON-lines file (Segment's wire format)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    types = parser.add_subparsers(dest="type", metavar="TYPE")

    def message(name: str, help: str) -> argparse.ArgumentParser:
        p = types.add_parser(name, help=help)
        p.add_argument("--user-id")
        if name != "alias":
            p.add_argument("--anonymous-id")
        p.add_argument("--context", type=_json_object, metavar="JSON")
        p.add_argument("--integrations", type=_json_object, metavar="JSON")
        p.add_argument("--timestamp", type=isoparse, metavar="ISO8601")
        p.add_argument("--message-id")
        return p

    track = message("track", "an event a user performed")
    track.add_argument("--event", required=True)
    track.add_argument("--properties", type=_json_object, metavar="JSON")
    message("identify", "who a user is").add_argument("--traits", type=_json_object, metavar="JSON")
    for name in ("page", "screen"):
        view = message(name, f"a {name} a user viewed")
        view.add_argument("--name")
        view.add_argument("--category")
        view.add_argument("--properties", type=_json_object, metavar="JSON")
    group = message("group", "a group a user belongs to")
    group.add_argument("--group-id", required=True)
    group.add_argument("--traits", type=_json_object, metavar="JSON")
    message("alias", "link a previous id to a user").add_argument("--previous-id", required=True)


def run(args: argparse.Namespace) -> int:
    if not args.write_key:
        return _usage("give --write-key or set SEGMENT_WRITE_KEY")
    if bool(args.file) == bool(args.type):
        return _usage("give either a message type (track, identify, ...) or --file")
    failures: list[str] = []

    def on_error(exc: BaseException, batch: list[dict[str, Any]]) -> None:
        failures.append(str(exc))

    try:
        client = Client(
            args.write_key,
            host=args.host,
            gzip=args.gzip,
            max_retries=args.max_retries,
            timeout=args.timeout,
            on_error=on_error,
        )
    except (AssertionError, ValueError) as e:
        return _usage(str(e))
    sender = Sender(client, failures)
    try:
        if args.file:
            sender.send_file(args.file, progress=not args.quiet)
        else:
            sender.send_one(args.type, _command_kwargs(args))
    finally:
        sender.finish()
    return sender.report(args.host, quiet=args.quiet)


class Sender:
    """Counts what was attempted against what the client reports delivered."""

    def __init__(self, client: Client, failures: list[str]) -> None:
        self.client = client
        self.failures = failures
        self.attempted = 0
        self.skipped = 0

    def send_one(self, type_: str, kwargs: dict[str, Any], where: str = "") -> None:
        """Hand one message to the client; invalid arguments are counted as not delivered."""
        self.attempted += 1
        method: Callable[..., tuple[bool, dict[str, Any]]] = getattr(self.client, type_)
        try:
            method(**kwargs)
        except (AssertionError, TypeError, ValueError, RuntimeError) as e:
            self.failures.append(f"{where}invalid {type_}: {e}")

    def send_file(self, path: str, progress: bool) -> None:
        with open(path, encoding="utf-8") as f:
            total = sum(1 for line in f if line.strip())
        bar = Progress(total, sys.stderr) if progress and total >= PROGRESS_MIN_LINES else None
        checkpoint = PROBE_LINES
        for number, line in _lines(path):
            self.send_line(number, line)
            if self.attempted >= checkpoint:
                checkpoint += CHUNK_LINES
                self.client.flush()
                if not self.client.stats()["delivered"]:
                    self.skipped = total - self.attempted
                    break
            if bar is not None:
                bar.update(self.attempted)
        if bar is not None:
            bar.update(self.attempted, final=True)

    def send_line(self, number: int, line: str) -> None:
        try:
            type_, kwargs = _wire_kwargs(orjson.loads(line))
        except ValueError as e:  # orjson.JSONDecodeError is a ValueError
            self.attempted += 1
            self.failures.append(f"line {number}: {e}")
            return
        self.send_one(type_, kwargs, where=f"line {number}: ")

    def finish(self) -> None:
        self.client.shutdown()

    def report(self, host: str, quiet: bool) -> int:
        delivered = self.client.stats()["delivered"]
        missing = self.attempted + self.skipped - delivered
        if missing:
            detail = f" (first error: {self.failures[0]})" if self.failures else ""
            print(
                f"error: {missing} of {self.attempted + self.skipped} message(s) not delivered"
                f" to {host}{detail}",
                file=sys.stderr,
            )
            return 1
        if not quiet:
            print(f"delivered {delivered} message(s) to {host}", file=sys.stderr)
        return 0


class Progress:
    """A one-line progress bar, redrawn at most ten times a second."""

    WIDTH = 30

    def __init__(self, total: int, out: TextIO) -> None:
        self.total = total
        self.out = out
        self._last = 0.0

    def update(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last < 0.1:
            return
        self._last = now
        filled = self.WIDTH * done // max(self.total, 1)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        pct = 100 * done // max(self.total, 1)
        self.out.write(f"\rsending [{bar}] {pct:3d}% {done}/{self.total}")
        if final:
            self.out.write("\n")
        self.out.flush()


def _lines(path: str) -> Iterator[tuple[int, str]]:
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                yield number, line


def _wire_kwargs(wire: Any) -> tuple[str, dict[str, Any]]:
    """A wire-format message as ``(method name, keyword arguments)``; ValueError if unusable."""
    if not isinstance(wire, dict):
        raise ValueError("not a JSON object")
    type_ = wire.get("type")
    if type_ not in TYPES:
        raise ValueError(f"unknown or missing type {type_!r}")
    unknown = set(wire) - set(WIRE_TO_ARG) - {"type"}
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
    kwargs = {WIRE_TO_ARG[k]: v for k, v in wire.items() if k != "type"}
    if isinstance(kwargs.get("timestamp"), str):
        kwargs["timestamp"] = isoparse(kwargs["timestamp"])
    if type_ == "alias":
        kwargs.pop("anonymous_id", None)  # alias has no anonymous id; the SDK sends null
    return type_, kwargs


def _command_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    names = set(WIRE_TO_ARG.values())
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def _usage(message: str) -> int:
    print(f"segment-clone send: {message}", file=sys.stderr)
    return 2
