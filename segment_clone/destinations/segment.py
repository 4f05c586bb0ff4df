"""``segment_clone.destinations.Segment``: a Segment source, as a destination of a client."""

from __future__ import annotations

from ..utils import require


class Segment:
    """A Segment source, by its write key: what a plain ``Client(write_key, host=...)`` sends to.

    :param write_key: the source's write key (never logged, and left out of ``repr``).
    :param host: the API's base URL (``https://api.segment.io`` when None; the EU workspace,
        a proxy or the local collector otherwise).
    """

    label = "segment"

    def __init__(self, write_key: str, host: str | None = None) -> None:
        require("write_key", write_key, str)
        if host is not None:
            require("host", host, str)
            if not host.startswith(("http://", "https://")):
                raise ValueError(f"host must start with http:// or https://, got: {host!r}")
        self.write_key = write_key
        self.host = host

    def __repr__(self) -> str:
        return f"Segment(host={self.host!r})"
