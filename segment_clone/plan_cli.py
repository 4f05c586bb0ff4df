"""``segment-clone plan check PLAN FILE.jsonl``: a tracking plan against a file, offline, for CI.

Each line is one message, Segment's or Mixpanel's (the output of ``segment-clone events`` is
such a file). Every violation is printed with its line number; the exit status is 1 when there
is any, or any line that is not a message, and 2 when the plan or the file cannot be read.
"""

from __future__ import annotations

import argparse
import sys

import orjson

from .collector.plan import PlanError, load_plan
from .collector.subjects import guess_subject


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="plan_command", required=True, metavar="COMMAND")
    check = commands.add_parser("check", help="check a JSON-lines file of messages against a plan")
    check.add_argument("plan", metavar="PLAN", help="the plan (Segment rules or compact form)")
    check.add_argument("file", metavar="FILE", help="one message per line")


def run(args: argparse.Namespace) -> int:
    try:
        plan = load_plan(args.plan)
        lines = open(args.file, "rb")  # noqa: SIM115 (closed below)
    except PlanError as e:
        return _fail(str(e))
    except OSError as e:
        return _fail(f"cannot read {args.file}: {e.strerror}")
    checked = broken = invalid = found = 0
    with lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            checked += 1
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as e:
                broken += 1
                print(f"line {number}: not JSON: {e}")
                continue
            subject = guess_subject(record) if isinstance(record, dict) else None
            if subject is None:
                broken += 1
                print(f"line {number}: neither a Segment message nor a Mixpanel record")
                continue
            violations = subject.check(plan)
            invalid += bool(violations)
            found += len(violations)
            for v in violations:
                label = subject.key or subject.kind
                print(f"line {number} ({label}): {v.type} {v.field}: {v.message}")
    print(
        f"{checked} message(s) checked against {plan.name}: {found} violation(s) in {invalid}"
        f" message(s)" + (f", {broken} unreadable line(s)" if broken else ""),
        file=sys.stderr,
    )
    return 1 if found or broken else 0


def _fail(message: str) -> int:
    print(f"segment-clone plan: {message}", file=sys.stderr)
    return 2
