"""``make demo``: run the quickstart against a throwaway loopback sink and show what arrived.

Replaced by the collector-backed demo once ``segment_clone.collector`` exists.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

received: list[dict[str, object]] = []


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        received.extend(json.loads(body)["batch"])
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> int:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    env = {**os.environ, "SEGMENT_HOST": f"http://127.0.0.1:{httpd.server_address[1]}"}
    quickstart = Path(__file__).with_name("quickstart.py")
    subprocess.run([sys.executable, str(quickstart)], env=env, check=True)
    httpd.shutdown()
    for msg in received:
        print(f"  {msg['type']:9} {msg.get('event') or msg.get('name') or ''}")
    print(f"received {len(received)} messages")
    return 0 if len(received) == 6 else 1


if __name__ == "__main__":
    sys.exit(main())
