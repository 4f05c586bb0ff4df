"""``segment-clone map mixpanel FILE.jsonl``: what a file of Segment messages becomes in Mixpanel.

Each line is one Segment message (the output of ``segment-clone events`` is such a file). Each
record it maps to is printed as one JSON line, ``{"line": N, "endpoint": ..., "record": ...}``;
a message Mixpanel would refuse is reported on standard error with its line and the reason.
The exit status is 1 when any line was refused or unreadable, and 2 when the file cannot be read.
"""

from __future__ import annotations

import argparse
import sys

import orjson

from .destinations.mixpanel_mapping import MappingSettings, Refused, to_mixpanel


def add_arguments(parser: argparse.ArgumentParser) -> None:
    targets = parser.add_subparsers(dest="map_target", required=True, metavar="DESTINATION")
    mixpanel = targets.add_parser("mixpanel", help="map Segment messages to Mixpanel records")
    mixpanel.add_argument("file", metavar="FILE", help="one Segment message per line")
    mixpanel.add_argument(
        "--token", default="MIXPANEL_PROJECT_TOKEN", help="the project token to write into records"
    )
    mixpanel.add_argument(
        "--page-names",
        choices=("viewed", "loaded"),
        default="viewed",
        help='"Viewed {name}" (the default) or "Loaded a Page" for page and screen calls',
    )
    mixpanel.add_argument("--group-key", default="$group_id", help="the $group_key of group calls")
    mixpanel.add_argument("--source-name", help="written as segment_source_name on every event")


def run(args: argparse.Namespace) -> int:
    try:
        settings = MappingSettings(args.token, args.page_names, args.group_key, args.source_name)
        lines = open(args.file, "rb")  # noqa: SIM115 (closed below)
    except ValueError as e:
        return _fail(str(e))
    except OSError as e:
        return _fail(f"cannot read {args.file}: {e.strerror}")
    mapped = refused = 0
    with lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                message = orjson.loads(line)
                if not isinstance(message, dict):
                    raise Refused("not a JSON object")
                records = to_mixpanel(message, settings)
            except (orjson.JSONDecodeError, Refused) as e:
                refused += 1
                print(f"line {number}: {e}", file=sys.stderr)
                continue
            mapped += 1
            for record in records:
                out = {"line": number, "endpoint": record.endpoint, "record": record.body}
                sys.stdout.buffer.write(orjson.dumps(out) + b"\n")
    print(f"{mapped} message(s) mapped, {refused} refused", file=sys.stderr)
    return 1 if refused else 0


def _fail(message: str) -> int:
    print(f"segment-clone map: {message}", file=sys.stderr)
    return 2
