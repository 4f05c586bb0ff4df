"""The ``segment-clone`` command: ``collector``, ``events``, ``send``, ``plan`` and ``map``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import events_cli, map_cli, plan_cli, send_cli
from .collector import command


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
    events_cli.add_arguments(events)
    events.set_defaults(run=events_cli.run)

    send = commands.add_parser("send", help="send messages through the SDK")
    send_cli.add_arguments(send)
    send.set_defaults(run=send_cli.run)

    plan = commands.add_parser("plan", help="check messages against a tracking plan")
    plan_cli.add_arguments(plan)
    plan.set_defaults(run=plan_cli.run)

    mapping = commands.add_parser("map", help="show what Segment messages become in a destination")
    map_cli.add_arguments(mapping)
    mapping.set_defaults(run=map_cli.run)

    args = parser.parse_args(argv)
    status: int = args.run(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
