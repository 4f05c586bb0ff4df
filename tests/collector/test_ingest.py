"""The Segment tracking API of the collector, over real HTTP."""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import socket
import zlib
from typing import Any, Callable

import pytest

from segment_clone.collector import MAX_BODY_BYTES, MAX_MESSAGE_BYTES, Collector

from ..api import call, get, post, track

TYPES = ("track", "identify", "page", "screen", "group", "alias")


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def test_batch_is_stored_message_by_message_as_received(collector: Collector) -> None:
    batch = [track("u1", "A", "m1"), {"type": "identify", "anonymousId": "a1", "traits": {"x": 1}}]
    reply = post(collector.url, "/v1/batch", {"batch": batch, "sentAt": "now", "writeKey": "k"})
    assert reply.status == 200
    assert reply.json() == {"success": True}
    assert get(collector.url, "/api/events") == {"total": 2, "events": batch}


@pytest.mark.parametrize("type_", TYPES)
def test_single_message_endpoints_store_their_type(collector: Collector, type_: str) -> None:
    message = {"userId": "u1", "messageId": f"m-{type_}", "writeKey": "secret"}
    reply = post(collector.url, f"/v1/{type_}", message)
    assert reply.status == 200, reply.body
    [stored] = collector.events()
    assert stored == {"userId": "u1", "messageId": f"m-{type_}", "type": type_}


def test_single_endpoint_refuses_a_message_of_another_type(collector: Collector) -> None:
    reply = post(collector.url, "/v1/track", {"type": "identify", "userId": "u1"})
    assert reply.status == 400
    assert reply.json()["code"] == "invalid_request"
    assert collector.events() == []


def test_gzip_bodies_are_inflated(collector: Collector) -> None:
    reply = post(collector.url, "/v1/batch", {"batch": [track(message_id="g1")]}, gzip=True)
    assert reply.status == 200
    assert [m["messageId"] for m in collector.events()] == ["g1"]


def test_unknown_content_encoding_is_refused(collector: Collector) -> None:
    body = json.dumps({"batch": [track()]}).encode()
    reply = call(collector.url, "POST", "/v1/batch", body, {"Content-Encoding": "br"})
    assert reply.status == 415
    assert collector.events() == []


def test_corrupt_gzip_is_a_400(collector: Collector) -> None:
    body = gzip.compress(json.dumps({"batch": [track()]}).encode())
    for broken in (b"not gzip at all", body[: len(body) // 2]):
        reply = call(collector.url, "POST", "/v1/batch", broken, {"Content-Encoding": "gzip"})
        assert reply.status == 400
        assert reply.json()["code"] == "invalid_gzip"
    assert collector.events() == []


BAD_BODIES: dict[str, Any] = {
    "malformed JSON": b'{"batch": [',
    "not an object": [track()],
    "no batch": {"messages": [track()]},
    "batch not a list": {"batch": track()},
    "message not an object": {"batch": [track(), "track"]},
    "message without type": {"batch": [track(), {"userId": "u1", "event": "E"}]},
    "unknown type": {"batch": [track(), {"type": "purchase", "userId": "u1"}]},
    "no ids": {"batch": [track(), {"type": "track", "event": "E", "anonymousId": ""}]},
    "ids not strings": {"batch": [track(), {"type": "track", "userId": None, "anonymousId": {}}]},
}


@pytest.mark.parametrize("case", BAD_BODIES)
def test_a_bad_request_gets_400_and_stores_nothing(collector: Collector, case: str) -> None:
    reply = post(collector.url, "/v1/batch", BAD_BODIES[case])
    assert reply.status == 400
    error = reply.json()
    assert set(error) == {"code", "message"}
    assert error["code"] in {"invalid_json", "invalid_request"}
    assert collector.events() == []


def test_numeric_user_ids_are_accepted(collector: Collector) -> None:
    reply = post(collector.url, "/v1/batch", {"batch": [{"type": "identify", "userId": 42}]})
    assert reply.status == 200
    assert collector.events(user_id="42") == [{"type": "identify", "userId": 42}]


def test_a_message_over_32kb_is_refused_with_413_and_nothing_stored(collector: Collector) -> None:
    big = track(message_id="big")
    big["properties"] = {"blob": "x" * MAX_MESSAGE_BYTES}
    reply = post(collector.url, "/v1/batch", {"batch": [track(message_id="ok"), big]})
    assert reply.status == 413
    assert reply.json()["code"] == "payload_too_large"
    assert "batch[1]" in reply.json()["message"]
    assert collector.events() == []


def test_a_message_just_under_32kb_is_accepted(collector: Collector) -> None:
    msg = track(message_id="edge")
    overhead = len(json.dumps(msg, separators=(",", ":")).encode())
    msg["properties"] = {"b": "x" * (MAX_MESSAGE_BYTES - overhead - len('"b":""'))}
    assert len(json.dumps(msg, separators=(",", ":")).encode()) == MAX_MESSAGE_BYTES
    assert post(collector.url, "/v1/batch", {"batch": [msg]}).status == 200
    assert collector.wait_for(1)


def test_a_body_over_500kb_is_refused_with_413(collector: Collector) -> None:
    messages = [track(message_id=str(i)) for i in range(MAX_BODY_BYTES // 60)]
    body = json.dumps({"batch": messages}).encode()
    assert len(body) > MAX_BODY_BYTES
    reply = post(collector.url, "/v1/batch", body)
    assert reply.status == 413
    assert reply.headers.get("connection") == "close"
    assert collector.events() == []


def test_the_inflated_size_counts_toward_the_500kb_limit(collector: Collector) -> None:
    messages = [track(message_id=str(i)) for i in range(MAX_BODY_BYTES // 60)]
    body = gzip.compress(json.dumps({"batch": messages}).encode())
    assert len(body) < MAX_BODY_BYTES
    reply = call(collector.url, "POST", "/v1/batch", body, {"Content-Encoding": "gzip"})
    assert reply.status == 413
    assert collector.events() == []


def gzip_bomb(inflated_size: int) -> bytes:
    """A small gzip body that inflates to ``inflated_size`` zero bytes."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(1 << 20)
    parts = [compressor.compress(chunk) for _ in range(inflated_size >> 20)]
    return b"".join(parts) + compressor.flush()


def test_a_gzip_bomb_is_refused_with_413(collector: Collector) -> None:
    bomb = gzip_bomb(32 << 20)
    assert len(bomb) < MAX_BODY_BYTES
    reply = call(collector.url, "POST", "/v1/batch", bomb, {"Content-Encoding": "gzip"})
    assert reply.status == 413
    assert collector.events() == []


def test_a_resent_batch_is_stored_once_and_counted_as_duplicates(collector: Collector) -> None:
    payload = {"batch": [track(message_id="d1"), track(message_id="d2")]}
    assert post(collector.url, "/v1/batch", payload).status == 200
    assert post(collector.url, "/v1/batch", payload).status == 200
    assert [m["messageId"] for m in collector.events()] == ["d1", "d2"]
    stats = get(collector.url, "/api/stats")
    assert (stats["total"], stats["duplicates"]) == (2, 2)


def test_a_repeated_id_within_one_batch_is_stored_once(collector: Collector) -> None:
    payload = {"batch": [track("u1", "first", "same"), track("u1", "second", "same")]}
    assert post(collector.url, "/v1/batch", payload).status == 200
    assert [m["event"] for m in collector.events()] == ["first"]
    assert collector.stats()["duplicates"] == 1


def test_messages_without_message_id_are_all_kept(collector: Collector) -> None:
    payload = {"batch": [track(), track()]}
    assert post(collector.url, "/v1/batch", payload).status == 200
    assert post(collector.url, "/v1/batch", payload).status == 200
    assert len(collector.events()) == 4


def test_keep_alive_serves_many_requests_on_one_connection(collector: Collector) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", collector.port, timeout=10)
    try:
        for i in range(3):
            body = json.dumps({"batch": [track(message_id=f"k{i}")]}).encode()
            conn.request("POST", "/v1/batch", body=body)
            response = conn.getresponse()
            assert response.status == 200
            assert response.read() == b'{"success":true}'
            sock = conn.sock
            assert sock is not None
            if i == 0:
                first = sock
            assert sock is first
    finally:
        conn.close()
    assert len(collector.events()) == 3


def test_unknown_paths_and_methods_get_json_errors(collector: Collector) -> None:
    missing = call(collector.url, "POST", "/v2/batch", b"{}")
    assert (missing.status, missing.json()["code"]) == (404, "not_found")
    wrong = call(collector.url, "GET", "/v1/batch")
    assert (wrong.status, wrong.json()["code"]) == (405, "method_not_allowed")


# -- write keys -------------------------------------------------------------------------------


@pytest.fixture
def keyed(make_collector: Callable[..., Collector]) -> Collector:
    return make_collector(write_keys=["key-a", "key-b"])


@pytest.mark.parametrize(
    ("headers", "body_key"),
    [(basic("key-a"), None), (basic("key-b"), None), ({}, "key-a"), (basic("key-b"), "wrong")],
    ids=["basic a", "basic b", "body key", "header wins"],
)
def test_allowed_write_keys_are_accepted(
    keyed: Collector, headers: dict[str, str], body_key: str | None
) -> None:
    payload: dict[str, Any] = {"batch": [track()]}
    if body_key is not None:
        payload["writeKey"] = body_key
    assert post(keyed.url, "/v1/batch", payload, headers=headers).status == 200
    assert len(keyed.events()) == 1


@pytest.mark.parametrize(
    ("headers", "body_key"),
    [
        (basic("other"), None),
        ({}, "other"),
        ({}, None),
        ({"Authorization": "Basic !!!"}, "key-a"),
        ({"Authorization": "Bearer some-token"}, "key-a"),
        ({"Authorization": "Digest x"}, None),
    ],
    ids=["basic other", "body other", "no key", "malformed basic", "bearer", "other scheme"],
)
def test_other_write_keys_get_401_json(
    keyed: Collector, headers: dict[str, str], body_key: str | None
) -> None:
    payload: dict[str, Any] = {"batch": [track()]}
    if body_key is not None:
        payload["writeKey"] = body_key
    reply = post(keyed.url, "/v1/batch", payload, headers=headers)
    assert reply.status == 401
    assert reply.json()["code"] == "unauthorized"
    assert keyed.events() == []


def test_a_bad_key_is_reported_before_a_malformed_body(keyed: Collector) -> None:
    reply = post(keyed.url, "/v1/batch", b"{not json", headers=basic("other"))
    assert reply.status == 401


def test_single_message_endpoints_check_the_key_and_never_store_it(keyed: Collector) -> None:
    refused = post(keyed.url, "/v1/track", {**track(), "writeKey": "other"})
    assert refused.status == 401
    assert post(keyed.url, "/v1/track", {**track(), "writeKey": "key-a"}).status == 200
    assert "writeKey" not in keyed.events()[0]


def test_without_an_allow_list_any_key_or_none_is_accepted(collector: Collector) -> None:
    assert post(collector.url, "/v1/batch", {"batch": [track()]}).status == 200
    assert post(collector.url, "/v1/batch", {"batch": [track()]}, headers=basic("x")).status == 200
    assert len(collector.events()) == 2


def raw_exchange(collector: Collector, head: bytes) -> bytes:
    """Send ``head`` on a fresh socket and return everything the collector answers."""
    with socket.create_connection(("127.0.0.1", collector.port), timeout=10) as sock:
        sock.sendall(head)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_huge_declared_body_is_refused_without_waiting_for_it(collector: Collector) -> None:
    answer = raw_exchange(
        collector,
        b"POST /v1/batch HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000000\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"Connection: close" in answer


def test_chunked_bodies_need_a_content_length(collector: Collector) -> None:
    answer = raw_exchange(
        collector,
        b"POST /v1/batch HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 411 ")
    assert collector.events() == []
