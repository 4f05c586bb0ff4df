"""``make compat``: the same generated calls through the real libraries and through us.

hypothesis generates cases: lists of calls with non-ASCII text, emoji, strings near the 32 KB
message limit and the 500 KB batch limit, NaN and infinity, and datetimes with odd offsets. Each
case goes through analytics-python 2.4.0 and through segment_clone, and its Mixpanel twin through
mixpanel 5.4.1's ``BufferedConsumer`` and ours, each side in a process of its own, into one
capturing server on 127.0.0.1. Then it compares, per case:

- which calls each side refused (the exception's type);
- the messages, by ``messageId``, with ``sentAt``, generated times and insert ids removed;
- where each side split the batches (the ids of each request, in order).

The upstream libraries are installed from the package registry into ``.compat/venv-upstream``
(a scratch folder, never committed), once. A difference fails the run unless it is one of the
deliberate ones that ``docs/wire.md`` lists: ``NaN`` and infinity sent as ``null`` (by both
faces); a message that upstream's spaced ``json.dumps`` count refuses and whose bytes as we send
them fit in 32 KB; and batches split differently because we count the bytes we send (compact
JSON) and never pass 499,000 bytes of batch. It also fails if any body we sent is over 500 KB
or any message over 32 KB. Prints the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".compat" / "venv-upstream"
UPSTREAM = ["segment-analytics-python==2.4.0", "mixpanel==5.4.1"]
CASES = 60
"""Generated cases per run (each about 25 calls on average); the run takes about 30 s."""
SEED = 27
MAX_MSG_SIZE = 32 << 10
API_LIMIT = 500_000
Call = tuple[str, tuple[Any, ...], dict[str, Any]]


# -- the cases ---------------------------------------------------------------------------------


def generate(count: int, seed: int) -> list[tuple[list[Call], list[Call]]]:
    """``count`` cases of (Segment calls, Mixpanel calls), the same on every run."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as seeded
    from hypothesis import strategies as st

    odd = [
        timezone.utc,
        timezone(timedelta(seconds=3661)),
        timezone(-timedelta(seconds=2670)),
        timezone(timedelta(hours=5, minutes=30)),
        timezone(timedelta(hours=1, microseconds=5)),
    ]
    alphabet = st.sampled_from('ab z09"\\/\n\t\u00e9\u00df\u4e2d\u6587\u0416\U0001f600\U0001f44d')
    text = st.one_of(st.text(alphabet, max_size=20), st.text(max_size=10))
    when = st.datetimes(
        min_value=datetime(1800, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=st.sampled_from(odd),
    )
    naive = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1))
    scalar = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([math.nan, math.inf, -math.inf]),
        text,
        when,
        naive,
        st.dates(),
    )
    value = st.recursive(
        scalar,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)
        ),
        max_leaves=8,
    )
    props = st.dictionaries(text, value, max_size=6)
    # strings near the limits: per character, the bytes it takes escaped (1, 6 or 12)
    big = st.one_of(
        st.builds(lambda n: "x" * n, st.integers(32_150, 32_650)),
        st.builds(lambda n: "\u00e9" * n, st.integers(5_360, 5_460)),
        st.builds(lambda n: "\u4e2d" * n, st.integers(5_360, 5_460)),
        st.builds(lambda n: "\U0001f600" * n, st.integers(2_680, 2_730)),
        st.builds(lambda n: "\u4e2d" * n, st.integers(2_000, 5_300)),
        st.builds(lambda n: "y" * n, st.integers(12_000, 32_000)),
    )
    uid = st.one_of(st.text(alphabet, min_size=1, max_size=8), st.integers(1, 10**6))

    def segment_call(kind: str, user: Any, p: dict[str, Any], stamp: Any) -> Call:
        kwargs = {"timestamp": stamp}
        if kind == "track":
            return "track", (user, "Order \u00e9v\u00e9nement", p), kwargs
        if kind == "identify":
            return "identify", (user, p), kwargs
        if kind == "group":
            return "group", (user, "g\u4e2d1", p), kwargs
        if kind == "alias":
            return "alias", ("prev", user), kwargs
        return kind, (user, "Docs", "Wire \U0001f600", p), kwargs

    kinds = st.sampled_from(["track"] * 6 + ["identify", "group", "alias", "page", "screen"])
    stamp = st.one_of(st.none(), when)
    small = st.builds(segment_call, kinds, uid, props, stamp)
    large = st.builds(
        segment_call, st.just("track"), uid, st.builds(lambda s: {"s": s}, big), st.none()
    )
    segment = st.one_of(
        st.lists(st.one_of(small, large), min_size=1, max_size=30),
        st.lists(large, min_size=15, max_size=40),  # batches near 475,000 and 500,000 bytes
    )
    mp_props = st.dictionaries(text, st.one_of(scalar, st.lists(scalar, max_size=3)), max_size=5)
    mp_call = st.one_of(
        st.builds(lambda u, p: ("track", (u, "Played \u266b", p), {}), uid, mp_props),
        st.builds(lambda u, p: ("people_set", (u, p), {}), uid, mp_props),
        st.builds(lambda g, p: ("group_set", ("company", g, p), {}), text, mp_props),
        st.builds(
            lambda u, p: ("import_data", (None, u, "old", 1_600_000_000, p), {"api_secret": "s"}),
            uid,
            mp_props,
        ),
    )
    mixpanel = st.lists(mp_call, min_size=1, max_size=80)
    cases: list[tuple[list[Call], list[Call]]] = []

    @seeded(seed)
    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(segment, mixpanel)
    def collect(seg: list[Call], mp: list[Call]) -> None:
        cases.append((seg, mp))

    collect()
    return cases[:count]


# -- one side: runs in its own interpreter -----------------------------------------------------


def run_side(side: str, base: str, cases_file: Path, out_file: Path) -> None:
    """Send every case through ``side``'s libraries to ``base``; record the refusals."""
    import logging

    logging.disable(logging.CRITICAL)
    if side == "upstream":
        from mixpanel import BufferedConsumer, Mixpanel
        from segment.analytics import Client
        from segment.analytics.consumer import Consumer
    else:
        from segment_clone import Client  # type: ignore[assignment]
        from segment_clone.mixpanel import BufferedConsumer, Mixpanel  # type: ignore[assignment]
    cases = pickle.loads(cases_file.read_bytes())
    refusals: list[tuple[list[str | None], list[str | None]]] = []
    for n, (seg_calls, mp_calls) in enumerate(cases):
        host = f"{base}/{side}/{n}"
        # Upstream's consumer cuts a batch by time too: it is stopped before the calls and a
        # fresh one drains the queue after them. Ours waits for a full batch or a flush.
        interval = 0.05 if side == "upstream" else 30
        client = Client(
            "wk", host=host, upload_size=100, upload_interval=interval, max_queue_size=10**5
        )
        if side == "upstream":
            client.join()
        seg_refused = [_call(client, name, args, {**kw, "message_id": f"{n}-{i}"})
                       for i, (name, args, kw) in enumerate(seg_calls)]  # fmt: skip
        if side == "upstream":
            consumer = Consumer(client.queue, "wk", host=host, upload_size=100, upload_interval=0.2)
            consumer.start()
            client.queue.join()
            consumer.pause()
            consumer.join()
        else:
            client.shutdown()
        urls = {name: f"{host}/{name}" for name in ("events", "people", "groups", "import")}
        buffered = BufferedConsumer(
            events_url=urls["events"],
            people_url=urls["people"],
            groups_url=urls["groups"],
            import_url=urls["import"],
        )
        mp = Mixpanel("tok", consumer=buffered)
        mp_refused = [_call(mp, name, args, kw) for name, args, kw in mp_calls]
        buffered.flush()
        refusals.append((seg_refused, mp_refused))
    out_file.write_bytes(pickle.dumps(refusals))


def _call(target: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    try:
        getattr(target, name)(*args, **kwargs)
    except Exception as e:
        return type(e).__name__
    return None


# -- the capturing server ----------------------------------------------------------------------


class Capture(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.requests: dict[tuple[str, int], list[tuple[str, bytes]]] = defaultdict(list)
        """(side, case) -> [(endpoint, body)] in arrival order."""


class _Handler(BaseHTTPRequestHandler):
    server: Capture

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding") == "gzip":
            import gzip

            body = gzip.decompress(body)
        _, side, case, *rest = urlsplit(self.path).path.split("/")
        with self.server.lock:
            self.server.requests[(side, int(case))].append(("/".join(rest), body))
        answer = b'{"success": true}' if rest[-1] == "batch" else b'{"status": 1, "error": null}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


# -- comparing ---------------------------------------------------------------------------------


def _nan_to_null(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_null(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_null(v) for v in value]
    return value


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON values (NaN equal to NaN, 1 not equal to True or 1.0)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _segment(requests: list[tuple[str, bytes]]) -> tuple[dict[str, Any], list[list[str]], int]:
    """Messages by id (sentAt and generated timestamps dropped), ids per request, biggest body."""
    messages: dict[str, Any] = {}
    splits: list[list[str]] = []
    requests = [(e, body) for e, body in requests if e == "v1/batch"]
    for _, body in requests:
        batch = json.loads(body)["batch"]
        splits.append([m["messageId"] for m in batch])
        for m in batch:
            messages[m["messageId"]] = m
    return messages, splits, max((len(b) for _, b in requests), default=0)


def _mixpanel(requests: list[tuple[str, bytes]]) -> list[tuple[str, Any]]:
    """(endpoint, records) per request, with generated times and insert ids removed."""
    out = []
    for endpoint, body in requests:
        if endpoint == "v1/batch":
            continue
        records = json.loads(parse_qs(body.decode())["data"][0])
        for r in records:
            r.pop("$time", None)
            generated = ("$insert_id",) if endpoint == "import" else ("time", "$insert_id")
            for key in generated:
                r.get("properties", {}).pop(key, None)
        out.append((endpoint, records))
    return out


class Figures:
    def __init__(self) -> None:
        self.counts: dict[str, int] = defaultdict(int)
        self.unexplained: list[str] = []

    def add(self, name: str, n: int = 1) -> None:
        self.counts[name] += n

    def fail(self, what: str) -> None:
        self.unexplained.append(what)


def compare(
    cases: list[tuple[list[Call], list[Call]]],
    refusals: dict[str, list[tuple[list[str | None], list[str | None]]]],
    capture: Capture,
) -> Figures:
    f = Figures()
    for n, (seg_calls, mp_calls) in enumerate(cases):
        up, us = (_segment(capture.requests[(side, n)]) for side in ("upstream", "ours"))
        _compare_refusals(f, n, refusals["upstream"][n][0], refusals["ours"][n][0], us[0])
        _compare_messages(f, seg_calls, up[0], us[0])
        f.add("segment cases")
        if us[2] > API_LIMIT:
            f.fail(f"case {n}: we sent a body of {us[2]} bytes")
        if up[1] == us[1]:
            f.add("splits identical")
        elif any(sum(_size(up[0][m]) for m in batch) > 499_000 for batch in up[1]):
            f.add("splits: upstream passes 499,000")
        elif set(up[0]) != set(us[0]):
            f.add("splits: a message only we sent")
        else:
            f.add("splits: counted compact")
        ups, ours = (_mixpanel(capture.requests[(side, n)]) for side in ("upstream", "ours"))
        f.add("mixpanel calls", len(mp_calls))
        records = sum(len(r) for _, r in ups)
        f.add("mixpanel records", records)
        f.add("mixpanel requests", len(ups))
        if refusals["upstream"][n][1] != refusals["ours"][n][1]:
            f.fail(f"case {n}: Mixpanel refusals differ")
        if [(e, len(r)) for e, r in ups] != [(e, len(r)) for e, r in ours]:
            f.fail(f"case {n}: Mixpanel requests split differently")
            continue
        f.add("mixpanel requests identical", len(ups))
        for theirs, mine in zip(
            (r for _, rs in ups for r in rs), (r for _, rs in ours for r in rs)
        ):
            if _same(theirs, mine):
                f.add("mixpanel identical")
            elif _same(_nan_to_null(theirs), mine):
                f.add("mixpanel NaN -> null only")
            else:
                pair = f"{json.dumps(theirs)[:300]} != {json.dumps(mine)[:300]}"
                f.fail(f"case {n}: Mixpanel record {pair}")
    return f


def _compare_refusals(
    f: Figures, n: int, up: list[str | None], us: list[str | None], ours: dict[str, Any]
) -> None:
    for i, (a, b) in enumerate(zip(up, us)):
        f.add("segment calls")
        if a == b:
            f.add("refusals agree")
        elif a == "RuntimeError" and b is None and _size(ours[f"{n}-{i}"]) - 1 <= MAX_MSG_SIZE:
            f.add("sent, upstream refused")
        else:
            f.fail(f"case {n} call {i}: upstream {a or 'accepted'}, we {b or 'accepted'}")


def _compare_messages(
    f: Figures, calls: list[Call], up: dict[str, Any], us: dict[str, Any]
) -> None:
    for mid, theirs in up.items():
        ours = us.get(mid)
        if ours is None:
            f.fail(f"message {mid}: sent by upstream only")
            continue
        if _size(ours) - 1 > MAX_MSG_SIZE:
            f.fail(f"message {mid}: over 32 KB as we sent it")
        if calls[int(mid.split("-")[1])][2]["timestamp"] is None:  # generated: drop
            theirs = {k: v for k, v in theirs.items() if k != "timestamp"}
            ours = {k: v for k, v in ours.items() if k != "timestamp"}
        f.add("segment messages")
        if _same(theirs, ours):
            f.add("segment identical")
        elif _same(_nan_to_null(theirs), ours):
            f.add("segment NaN -> null only")
        else:
            f.fail(f"message {mid}: {json.dumps(theirs)[:300]} != {json.dumps(ours)[:300]}")


def _size(message: Any) -> int:
    """Bytes of ``message`` as compact escaped JSON, plus its comma in the batch."""
    return len(json.dumps(message, separators=(",", ":"))) + 1


# -- the run -----------------------------------------------------------------------------------


def upstream_python() -> str:
    python = VENV / "bin" / "python"
    stamp = VENV / (" ".join(UPSTREAM).replace(" ", "+") + ".installed")
    if not stamp.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *UPSTREAM], check=True)
        stamp.touch()
    return str(python)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=CASES)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--io", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        run_side(args.side, args.base, *args.io)
        return 0
    started = time.monotonic()
    pythons = {"upstream": upstream_python(), "ours": sys.executable}
    cases = generate(args.cases, args.seed)
    capture = Capture()
    threading.Thread(target=capture.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{capture.server_address[1]}"
    refusals = {}
    with tempfile.TemporaryDirectory() as tmp:
        cases_file = Path(tmp) / "cases.pickle"
        cases_file.write_bytes(pickle.dumps(cases))
        procs = {}
        for side, python in pythons.items():
            out = Path(tmp) / f"{side}.pickle"
            cmd = [
                python,
                __file__,
                "--side",
                side,
                "--base",
                base,
                "--io",
                str(cases_file),
                str(out),
            ]
            env = {**os.environ, "PYTHONPATH": str(ROOT) if side == "ours" else ""}
            procs[side] = (subprocess.Popen(cmd, env=env, cwd=tempfile.gettempdir()), out)
        for side, (proc, out) in procs.items():
            if proc.wait(timeout=300) != 0:
                print(f"the {side} side failed")
                return 1
            refusals[side] = pickle.loads(out.read_bytes())
    capture.shutdown()
    f = compare(cases, refusals, capture)
    c = f.counts
    took = time.monotonic() - started
    print(
        f"{len(cases)} cases: {c['segment calls']} Segment calls, {c['mixpanel calls']} "
        f"Mixpanel calls ({took:.0f} s)"
    )
    print(
        f"Segment messages: {c['segment identical']}/{c['segment messages']} identical, "
        f"{c['segment NaN -> null only']} differ only by NaN -> null"
    )
    print(
        f"Segment refusals: {c['refusals agree']}/{c['segment calls']} calls agree; "
        f"{c['sent, upstream refused']} sent by us, refused by upstream (its count has the "
        "spaces it sends)"
    )
    print(
        f"Segment batch splits: {c['splits identical']}/{c['segment cases']} cases identical; "
        f"{c['splits: upstream passes 499,000']} where upstream's batch passes 499,000 bytes, "
        f"{c['splits: a message only we sent']} where we sent a message upstream refused, "
        f"{c['splits: counted compact']} where the compact count cuts elsewhere"
    )
    print(
        f"Mixpanel: {c['mixpanel identical']}/{c['mixpanel records']} records identical, "
        f"{c['mixpanel NaN -> null only']} differ only by NaN -> null; "
        f"{c['mixpanel requests identical']}/{c['mixpanel requests']} requests split identically"
    )
    for what in f.unexplained[:20]:
        print("UNEXPLAINED", what)
    if f.unexplained:
        print(f"{len(f.unexplained)} unexplained difference(s)")
    return 1 if f.unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
