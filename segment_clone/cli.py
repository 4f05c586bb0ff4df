"""The ``segment-clone`` command: ``collector``, ``events`` and ``send``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import orjson

from . import send_cli
from .collector import command
from .collector.server import DEFAULT_DB
from .collector.store import EventStore, Query


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="segment-clone", description="Tools around the segment_clone analytics SDK."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "collector", help="run a local tracking API that stores events in SQLite"
    )
    command.add_arguments(serve)
    serve.set_defaults(run=command.run)

    events = commands.add_parser("events", help="print events stored by a collector")
    add_events_arguments(events)
    events.set_defaults(run=run_events)

    send = commands.add_parser("send", help="send messages through the SDK")
    send_cli.add_arguments(send)
    send.set_defaults(run=send_cli.run)

    args = parser.parse_args(argv)
    status: int = args.run(args)
    return status


def add_events_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=DEFAULT_DB, help="SQLite file (default: ./%(default)s)")
    parser.add_argument("--type", help="only this message type (track, identify, ...)")
    parser.add_argument("--user-id", help="only messages with this userId (Mixpanel: distinct_id)")
    parser.add_argument("--event", help="only track events with this name")
    parser.add_argument(
        "--source", help="only messages received through this API (segment, mixpanel)"
    )
    parser.add_argument(
        "--limit", type=_positive, help="only the most recent N (still printed oldest first)"
    )
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--count", action="store_true", help="print the number of matches only")
    what.add_argument(
        "--stats", action="store_true", help="print counts by source and type, as JSON"
    )


def run_events(args: argparse.Namespace) -> int:
    """Print matching messages as JSON lines, oldest first (or their count, or the stats)."""
    if not Path(args.db).is_file():
        print(f"segment-clone events: no database at {args.db}", file=sys.stderr)
        return 1
    query = Query(args.type, args.user_id, args.event, args.source, args.limit)
    with EventStore(args.db) as store:
        if args.stats:
            sys.stdout.write(orjson.dumps(store.stats(), option=orjson.OPT_INDENT_2).decode())
            sys.stdout.write("\n")
        elif args.count:
            print(store.count(Query(args.type, args.user_id, args.event, args.source)))
        else:
            for stored in store.find(query):
                sys.stdout.write(stored.body + "\n")
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


if __name__ == "__main__":
    sys.exit(main())
