"""A FastAPI app that tracks from its handlers, scrubs PII with ``before_send``, and delivers
what is pending with ``ashutdown()`` when the server stops.

Run against the local collector: ``segment-clone collector --port 8787`` in one terminal, then
``SEGMENT_HOST=http://127.0.0.1:8787 uvicorn --app-dir examples asgi_app:app`` in another, and
``curl -X POST localhost:8000/signup -H 'content-type: application/json' -d '{"email": "a@b.c"}'``.
Stop uvicorn with Ctrl-C: the lifespan's shutdown delivers what is still queued.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

import segment_clone as analytics

PII = ("email", "phone")


def scrub_pii(message: dict[str, Any]) -> dict[str, Any]:
    """Keep personal data out of analytics: the hook runs inside ``track()``, on a copy."""
    for field in ("traits", "properties"):
        for key in PII:
            message.get(field, {}).pop(key, None)
    return message


analytics.write_key = os.environ.get("SEGMENT_WRITE_KEY", "demo-write-key")
analytics.host = os.environ.get("SEGMENT_HOST", "http://127.0.0.1:8787")
analytics.before_send = scrub_pii


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    # The server has stopped taking requests: deliver what is queued, without blocking the loop.
    pending = await analytics.ashutdown(timeout=5)
    stats = analytics.stats()
    print(f"analytics: delivered {stats['delivered']}, pending {pending}", flush=True)


app = FastAPI(lifespan=lifespan)


class Signup(BaseModel):
    email: str
    plan: str = "free"


@app.post("/signup")
async def signup(body: Signup) -> dict[str, Any]:
    user_id = str(uuid.uuid4())
    # track() is a plain call: it queues the event and returns, it never waits on the network.
    _, identify = analytics.identify(user_id, {"email": body.email, "plan": body.plan})
    ok, track = analytics.track(user_id, "Signed Up", {"plan": body.plan, "email": body.email})
    return {
        "user_id": user_id,
        "tracked": ok,
        "message_ids": [identify["messageId"], track["messageId"]],
    }
