"""OAuth end to end on this machine: a key pair, a collector that knows the public half, and the
SDK fetching bearer tokens with the private half.

Creates an RSA key pair, writes the public key to a temporary folder, prints the collector
command and starts it on a free port, sends a few events with OAuth, and prints what the
collector stored and the tokens it issued. Everything stays on 127.0.0.1. Exits 1 if any event
was lost or reported through ``on_error``.

    python examples/oauth.py
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import segment_clone as analytics

CLIENT_ID = "example-client"
KEY_ID = "example-key-1"
LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""Everything here is local: never route it through a proxy from the environment."""


def make_key_pair() -> tuple[str, str]:
    """A fresh RSA key: the private key (PKCS#8 PEM) and its public key (SPKI PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public.decode()


def start_collector(command: list[str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on http://127.0.0.1:"):
        proc.kill()
        proc.wait(10)
        raise SystemExit(f"the collector did not start: {line!r}")
    return proc, line.removeprefix("listening on ")


def get(url: str) -> Any:
    with LOCAL.open(url, timeout=10) as response:
        return json.load(response)


def send_events(url: str, private_key: str, errors: list[str]) -> list[str]:
    """Send a few events with OAuth; returns the messageIds the SDK accepted."""
    analytics.write_key = "example-write-key"  # still required; with OAuth the Bearer token rules
    analytics.host = url
    analytics.oauth_client_id = CLIENT_ID
    analytics.oauth_client_key = private_key
    analytics.oauth_key_id = KEY_ID
    analytics.oauth_auth_server = url
    analytics.on_error = lambda exc, batch: errors.append(f"{exc} ({len(batch)} messages)")
    results = [
        analytics.identify("user-42", {"email": "ada@example.com"}),
        analytics.track("user-42", "Signed Up", {"plan": "pro"}),
        analytics.track("user-42", "Invited Teammate", {"count": 2}),
        analytics.page("user-42", "Docs", "OAuth"),
    ]
    pending = analytics.shutdown(timeout=20)
    if pending:
        errors.append(f"{pending} messages still pending after 20 s")
    return [msg["messageId"] for ok, msg in results if ok]


def main() -> int:
    os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1"  # the SDK honours proxy vars
    private_key, public_key = make_key_pair()
    with tempfile.TemporaryDirectory(prefix="segment-clone-oauth-") as tmp:
        pem = Path(tmp) / "public.pem"
        pem.write_text(public_key)
        command = [
            sys.executable, "-m", "segment_clone.collector", "--port", "0",
            "--db", str(Path(tmp) / "events.db"), "--oauth-client-id", CLIENT_ID,
            "--oauth-key-id", KEY_ID, "--oauth-public-key", str(pem),
        ]  # fmt: skip
        print("collector command:")
        print("  " + shlex.join(command))
        collector, url = start_collector(command)
        errors: list[str] = []
        try:
            print(f"collector listening on {url}; sending events with OAuth")
            sent = send_events(url, private_key, errors)
            stored = get(f"{url}/api/events")["events"]
            tokens = get(f"{url}/api/oauth")
        finally:
            collector.send_signal(signal.SIGTERM)
            collector.wait(10)

    print(f"\nstored {len(stored)} events:")
    for msg in stored:
        what = msg.get("event") or msg.get("name") or ""
        print(f"  {msg['type']:<9} {msg['userId']:<8} {what}")
    uses = sum(token["uses"] for token in tokens["recent"])
    print(f"tokens issued: {tokens['issued']}, batches they authorised: {uses}, ", end="")
    print(f"refused requests: {tokens['refused'] or 'none'}")
    lost = set(sent) - {msg["messageId"] for msg in stored}
    for error in errors:
        print(f"error: {error}")
    ok = len(sent) == 4 and not lost and not errors and uses > 0 and collector.returncode == 0
    print("OK: every event arrived with a bearer token" if ok else f"FAILED: {len(lost)} lost")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
