"""``segment-clone collector`` and ``python -m segment_clone.collector``: options, run loop."""

from __future__ import annotations

import argparse
import gc
import os
import secrets
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from .faults import Faults, FaultSettings
from .flags import load_definitions
from .guard import TOKEN_ENV, is_loopback
from .intake import PLAN_MODES
from .oauth import DEFAULT_TOKEN_TTL, OAuthSettings
from .plan import Plan, PlanError, load_plan
from .server import DEFAULT_DB, DEFAULT_HOST, DEFAULT_PORT, Collector

WRITE_KEY_ENV = "SEGMENT_CLONE_WRITE_KEY"
"""Write keys, comma-separated: an option's value is visible to every local user (``ps``)."""
MIXPANEL_SECRET_ENV = "SEGMENT_CLONE_MIXPANEL_SECRET"
TOKEN_BYTES = 24


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="port; 0 picks a free one (default: %(default)s)",
    )
    parser.add_argument("--db", default=DEFAULT_DB, help="SQLite file (default: ./%(default)s)")
    parser.add_argument(
        "--write-key",
        action="append",
        default=[],
        metavar="KEY",
        help="accept only this write key (repeatable; or $" + WRITE_KEY_ENV + ");"
        " by default any key is accepted",
    )
    add_access_arguments(parser)
    faults = parser.add_argument_group("fault injection (also settable with POST /api/faults)")
    faults.add_argument(
        "--fail-rate",
        type=float,
        default=0.0,
        metavar="F",
        help="share of ingestion requests to fail, 0..1",
    )
    faults.add_argument(
        "--fail-status",
        type=int,
        default=503,
        metavar="S",
        help="status of a failed request (default: %(default)s)",
    )
    faults.add_argument(
        "--retry-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="Retry-After header on failed requests",
    )
    faults.add_argument(
        "--delay-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="answer every ingestion request this much later",
    )
    add_oauth_arguments(parser)
    add_mixpanel_arguments(parser)
    add_plan_arguments(parser)


def add_access_arguments(parser: argparse.ArgumentParser) -> None:
    access = parser.add_argument_group(
        "access (see the collector's security page: Host and Origin checks, the token)"
    )
    access.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests that name the collector so (repeatable); loopback names"
        " and IP addresses always work",
    )
    access.add_argument(
        "--token",
        type=_non_empty,
        metavar="TOKEN",
        help="the debugger (page and /api/*) needs this token (or $" + TOKEN_ENV + ");"
        " generated when --host is not a loopback address",
    )
    access.add_argument(
        "--no-token",
        action="store_true",
        help="no token even beyond loopback: anyone who can reach the port reads the events",
    )


def access_token(args: argparse.Namespace) -> str | None:
    """The debugger's token: given, or generated for a non-loopback ``--host``; None with
    ``--no-token`` (with a warning when that leaves the events open to the network)."""
    given = args.token or os.environ.get(TOKEN_ENV) or None
    if args.no_token:
        if not is_loopback(args.host):
            print(
                f"segment-clone collector: warning: --no-token on {args.host}: anyone who can"
                " reach this port can read and delete the events",
                file=sys.stderr,
            )
        return None
    if given is None and not is_loopback(args.host):
        return secrets.token_urlsafe(TOKEN_BYTES)
    return given


def add_plan_arguments(parser: argparse.ArgumentParser) -> None:
    plan = parser.add_argument_group(
        "tracking plan (needs the plan extra: pip install 'segment-clone[plan]')"
    )
    plan.add_argument(
        "--plan",
        metavar="PLAN_JSON",
        help="check every message against this plan: Segment Public API rules"
        " or the compact form (see the README)",
    )
    plan.add_argument(
        "--plan-mode",
        choices=PLAN_MODES,
        default="flag",
        help="flag: store messages with their violations (default);"
        " block: answer 400 with the violations and store nothing",
    )


def tracking_plan(args: argparse.Namespace) -> Plan | None:
    """The plan ``--plan`` names, None without it; ``PlanError`` if it cannot be used."""
    if args.plan is None:
        if args.plan_mode != "flag":
            raise PlanError("--plan-mode needs --plan")
        return None
    return load_plan(args.plan)


def add_oauth_arguments(parser: argparse.ArgumentParser) -> None:
    oauth = parser.add_argument_group(
        "OAuth (POST /token issues bearer tokens for /v1/* to a client that signs RS256 JWTs)"
    )
    oauth.add_argument("--oauth-client-id", metavar="ID", help="the client's id (iss and sub)")
    oauth.add_argument("--oauth-key-id", metavar="KID", help="the id of the client's key (kid)")
    oauth.add_argument(
        "--oauth-public-key", metavar="PEM_FILE", help="the client's RSA public key, PEM"
    )
    oauth.add_argument(
        "--oauth-token-ttl",
        type=int,
        default=DEFAULT_TOKEN_TTL,
        metavar="SECONDS",
        help="lifetime of an access token (default: %(default)s)",
    )


def oauth_settings(args: argparse.Namespace) -> OAuthSettings | None:
    """The OAuth settings the options ask for, None without them; ValueError if incomplete."""
    given = (args.oauth_client_id, args.oauth_key_id, args.oauth_public_key)
    if not any(given):
        return None
    if not all(given):
        raise ValueError("--oauth-client-id, --oauth-key-id and --oauth-public-key go together")
    return OAuthSettings.from_file(*given, token_ttl=args.oauth_token_ttl)


def add_mixpanel_arguments(parser: argparse.ArgumentParser) -> None:
    mixpanel = parser.add_argument_group(
        "Mixpanel (POST /track, /engage, /groups, /import; GET /flags/definitions, /flags)"
    )
    mixpanel.add_argument(
        "--flags",
        metavar="FLAGS_JSON",
        help='serve these feature-flag definitions ({"flags": [...]}, the shape of'
        " Mixpanel's definitions API) on /flags/definitions, and evaluate them on /flags",
    )
    mixpanel.add_argument(
        "--mixpanel-secret",
        type=_non_empty,
        metavar="SECRET",
        help="/import accepts only HTTP Basic auth carrying this project secret"
        " (as the user name, or as a service account's password; or $"
        + MIXPANEL_SECRET_ENV
        + "); by default anyone",
    )


def _from_env(name: str) -> list[str]:
    return [part.strip() for part in os.environ.get(name, "").split(",") if part.strip()]


def _non_empty(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM, then stop cleanly; returns the exit status."""
    try:
        settings = FaultSettings(args.fail_rate, args.fail_status, args.retry_after, args.delay_ms)
        oauth = oauth_settings(args)
        plan = tracking_plan(args)
        write_keys = args.write_key or _from_env(WRITE_KEY_ENV)
        mixpanel_secret = args.mixpanel_secret or os.environ.get(MIXPANEL_SECRET_ENV) or None
        token = access_token(args)
        flags = None if args.flags is None else load_definitions(args.flags)
    except ValueError as e:  # PlanError too
        print(f"segment-clone collector: {e}", file=sys.stderr)
        return 2
    try:
        collector = Collector(
            args.db,
            args.host,
            args.port,
            write_keys,
            Faults(settings),
            oauth=oauth,
            mixpanel_secret=mixpanel_secret,
            plan=plan,
            plan_mode=args.plan_mode,
            allowed_hosts=args.allowed_host,
            token=token,
            flags=flags,
        )
    except ValueError as e:
        print(f"segment-clone collector: --flags: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(
            f"segment-clone collector: cannot listen on {args.host}:{args.port}: {e}",
            file=sys.stderr,
        )
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Each request allocates a few thousand short-lived, acyclic objects (the parsed JSON);
    # with the default threshold the cyclic GC ran twice a request, traversing them all.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        collector.start()
        print(f"listening on {collector.url}", flush=True)
        if token is not None:
            print(f"debugger: {collector.url}/?token={token}", flush=True)
        stop.wait()
    finally:
        collector.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m segment_clone.collector",
        description="A local Segment (and Mixpanel) tracking API that stores events in SQLite.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
