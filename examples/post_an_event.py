"""Post one event through the Mixpanel facade (upstream's ``demo/post_an_event.py``).

It sends to a local collector by default, never to Mixpanel unless you say so::

    python examples/post_an_event.py --api-host http://127.0.0.1:8787
    MIXPANEL_TOKEN=... python examples/post_an_event.py --api-host api-eu.mixpanel.com
"""

from __future__ import annotations

import argparse
import os

from segment_clone.mixpanel import Consumer, Mixpanel


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--api-host",
        default=os.environ.get("MIXPANEL_API_HOST", "http://127.0.0.1:8787"),
        help="a Mixpanel host (api.mixpanel.com) or a base URL (default: the local collector)",
    )
    parser.add_argument("--token", default=os.environ.get("MIXPANEL_TOKEN", "demo-token"))
    args = parser.parse_args(argv)

    mp = Mixpanel(args.token, Consumer(api_host=args.api_host, request_timeout=10))
    mp.track("ID", "Script run")
    print(f"posted 'Script run' to {args.api_host}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
