"""Run one documentation example in this fresh interpreter, refusing every non-loopback address.

``python tests/docs_example_runner.py run|pytest SOURCE DISPLAY_NAME``: ``run`` executes the
file as ``__main__``; ``pytest`` runs it as a test module (examples of the pytest plugin).
SOURCE is the example padded with blank lines, so a traceback names the Markdown line;
DISPLAY_NAME is the Markdown file it came from.

An example that forgets ``host=`` would send to Segment's or Mixpanel's servers. The guard ends
the process at the first lookup of another host (exit 3, from whichever thread asked), instead
of leaving the SDK to retry against the internet in the background.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
REFUSED_EXIT = 3


def guard_network() -> None:
    """End the process at the first name lookup of anything but the loopback."""
    real_getaddrinfo = socket.getaddrinfo

    def loopback_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in LOOPBACK:
            sys.stderr.write(f"the example tried to reach {name}: only 127.0.0.1 is allowed\n")
            sys.stderr.flush()
            os._exit(REFUSED_EXIT)
        return real_getaddrinfo(host, *args, **kwargs)

    socket.getaddrinfo = loopback_only


def main() -> int:
    mode, source_path, display = sys.argv[1:4]
    guard_network()
    if mode == "pytest":
        import pytest

        # Only our plugin: the others installed (Hypothesis, Playwright...) cost a second of CPU.
        os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        options = ["-q", "-p", "no:cacheprovider", "-p", "segment_clone.testing", "-W", "error"]
        return int(pytest.main([*options, source_path]))
    with open(source_path, encoding="utf-8") as f:
        code = compile(f.read(), display, "exec")
    exec(code, {"__name__": "__main__", "__file__": display})
    return 0


if __name__ == "__main__":
    sys.exit(main())
