"""The ASGI apps the uvicorn tests serve: each request to ``/track`` tracks one event, as in
``tracked_wsgi`` (same records, same import-time event).

``app`` is what a FastAPI or Starlette user runs: a Starlette app in segment_clone's ASGI
middleware, whose lifespan handler flushes at shutdown. ``unwrapped`` is the same app without
it. ``bare`` is a plain ASGI app in the middleware that ignores the lifespan protocol by
returning, as minimal ASGI apps do.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, MutableMapping
from typing import Any, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from tracked_wsgi import track

from segment_clone.integrations.asgi import SegmentMiddleware


async def page(request: Request) -> JSONResponse:
    return JSONResponse({"messageId": track("Page Served"), "pid": os.getpid()})


unwrapped = Starlette(routes=[Route("/track", page)])
app = SegmentMiddleware(unwrapped)


async def _bare(
    scope: MutableMapping[str, Any],
    receive: Callable[[], Awaitable[Any]],
    send: Callable[[Any], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    body = json.dumps({"messageId": track("Page Served"), "pid": os.getpid()}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


bare = SegmentMiddleware(_bare)
