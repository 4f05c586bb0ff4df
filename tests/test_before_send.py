"""``before_send``: hooks run inside ``track()``, before encoding, and fail closed.

Every test checks what a real loopback server received, so "dropped" means "never sent".
"""

from __future__ import annotations

import copy
import inspect
import logging
from typing import Any, Callable

import pytest

import segment_clone as analytics
from segment_clone import Client
from segment_clone.consumer import MAX_MSG_SIZE
from segment_clone.errors import MessageDropped

from .server import ScriptedServer

MakeClient = Callable[..., Client]
Message = dict[str, Any]
Errors = list[tuple[BaseException, list[Message]]]


def scrub_email(message: Message) -> Message:
    message["properties"].pop("email", None)
    message["context"].get("traits", {}).pop("email", None)
    return message


def sent(client: Client, server: ScriptedServer) -> list[Message]:
    assert client.flush(timeout=10) == 0
    return server.messages()


@pytest.fixture
def errors() -> Errors:
    return []


@pytest.fixture
def hooked(make_client: MakeClient, errors: Errors) -> Callable[..., Client]:
    """A client with ``before_send=hooks`` whose ``on_error`` calls are recorded."""

    def make(hooks: Any, **kwargs: Any) -> Client:
        return make_client(before_send=hooks, on_error=lambda e, b: errors.append((e, b)), **kwargs)

    return make


def test_a_hook_scrubs_what_is_sent_and_never_touches_the_callers_objects(
    server: ScriptedServer, hooked: Callable[..., Client]
) -> None:
    client = hooked(scrub_email)
    properties = {"email": "ada@example.com", "plan": "pro"}
    context = {"traits": {"email": "ada@example.com", "name": "Ada"}}
    before = copy.deepcopy((properties, context))
    ok, msg = client.track("u1", "Signed Up", properties, context=context)
    assert ok
    assert (properties, context) == before  # nested values too: the hook had its own copy
    assert msg["properties"] == {"plan": "pro"}
    assert msg["context"]["traits"] == {"name": "Ada"}
    assert sent(client, server) == [msg]  # the returned message is exactly what was sent


def test_hooks_see_the_assembled_message_and_run_in_order(
    server: ScriptedServer, hooked: Callable[..., Client]
) -> None:
    seen: list[Message] = []

    def first(message: Message) -> Message:
        seen.append(copy.deepcopy(message))
        return {**message, "properties": {**message["properties"], "order": ["first"]}}

    def second(message: Message) -> Message:
        message["properties"]["order"].append("second")
        return message

    client = hooked([first, second])
    ok, msg = client.track("u1", "E", {"n": 1})
    assert ok
    [assembled] = seen
    assert assembled["type"] == "track" and assembled["userId"] == "u1"
    assert assembled["messageId"] == msg["messageId"]
    assert assembled["timestamp"] == msg["timestamp"]
    assert assembled["context"]["library"]["name"] == "analytics-python"
    assert msg["properties"] == {"n": 1, "order": ["first", "second"]}
    assert sent(client, server) == [msg]


def test_none_stops_the_chain_and_drops_quietly(
    server: ScriptedServer,
    hooked: Callable[..., Client],
    errors: Errors,
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    def sample(message: Message) -> Message | None:
        calls.append("sample")
        return None if message["event"] == "Noise" else message

    def after(message: Message) -> Message:
        calls.append("after")
        return message

    client = hooked([sample, after])
    with caplog.at_level(logging.DEBUG, logger="segment"):
        ok, msg = client.track("u1", "Noise")
    assert not ok and msg["event"] == "Noise"
    assert calls == ["sample"]  # the chain stopped at the first None
    assert client.track("u1", "Signal")[0]
    assert [m["event"] for m in sent(client, server)] == ["Signal"]
    assert client.stats()["dropped"] == {"before_send": 1}
    assert errors == []  # an intended drop is not an error
    assert "Noise" not in caplog.text


def raises(message: Message) -> Message:
    if message["event"] == "Secret":
        raise KeyError("email")
    return message


def returns_a_list(message: Message) -> Any:
    return [message] if message["event"] == "Secret" else message


@pytest.mark.parametrize(
    ("hook", "cause", "complaint"),
    [
        (raises, KeyError, "before_send hook raises raised KeyError: 'email'"),
        (returns_a_list, TypeError, "before_send hook returns_a_list returned list, not a dict"),
    ],
    ids=["raises", "list"],
)
def test_a_failing_hook_drops_the_message_and_reports_it(
    server: ScriptedServer,
    hooked: Callable[..., Client],
    errors: Errors,
    caplog: pytest.LogCaptureFixture,
    hook: Callable[[Message], Any],
    cause: type[Exception],
    complaint: str,
) -> None:
    client = hooked([hook, scrub_email])
    with caplog.at_level(logging.WARNING, logger="segment"):
        results = [client.track("u1", "Secret", {"email": "ada@example.com"}) for _ in range(5)]
    assert not any(ok for ok, _ in results)
    assert client.track("u1", "After")[0]
    assert [m["event"] for m in sent(client, server)] == ["After"]  # fail closed
    assert client.stats()["dropped"] == {"before_send_error": 5}
    assert len(errors) == 5
    error, batch = errors[0]
    assert isinstance(error, MessageDropped) and error.reason == "before_send_error"
    assert isinstance(error.__cause__, cause)
    assert complaint in str(error)
    assert [m["event"] for m in batch] == ["Secret"]
    warnings = [r for r in caplog.records if "before_send_error" in r.getMessage()]
    assert len(warnings) == 1  # five failures, one line: the log is not flooded


def test_a_hook_returning_a_coroutine_is_refused_and_the_coroutine_closed(
    hooked: Callable[..., Client], errors: Errors
) -> None:
    coroutines: list[Any] = []

    async def enrich(message: Message) -> Message:
        return message

    def calls_async(message: Message) -> Any:
        coroutines.append(enrich(message))
        return coroutines[-1]

    assert not hooked(calls_async, send=False).track("u1", "E")[0]
    [(error, _)] = errors
    assert "returned a coroutine" in str(error)
    assert inspect.getcoroutinestate(coroutines[0]) == "CORO_CLOSED"  # no "never awaited"


def test_debug_lets_the_hook_exception_propagate(hooked: Callable[..., Client]) -> None:
    client = hooked(raises, debug=True, send=False)
    with pytest.raises(KeyError, match="email"):
        client.track("u1", "Secret")
    assert client.stats()["dropped"] == {"before_send_error": 1}


@pytest.mark.parametrize(
    ("call", "change", "complaint"),
    [
        ("track", lambda m: {**m, "type": "purchase"}, "type must be one of"),
        ("track", lambda m: {**m, "userId": None}, "needs userId or anonymousId"),
        ("track", lambda m: {**m, "userId": 42}, "needs userId or anonymousId"),
        ("track", lambda m: {k: v for k, v in m.items() if k != "messageId"}, "messageId"),
        ("track", lambda m: {**m, "messageId": 7}, "messageId must be a str"),
        ("group", lambda m: {**m, "groupId": ""}, "needs groupId"),
        ("alias", lambda m: {**m, "previousId": None}, "needs previousId"),
    ],
)
def test_what_a_hook_returns_is_validated_again(
    hooked: Callable[..., Client],
    errors: Errors,
    call: str,
    change: Callable[[Message], Message],
    complaint: str,
) -> None:
    client = hooked(change, send=False)
    args = {"track": ("u1", "E"), "group": ("u1", "acme"), "alias": ("anon", "u1")}[call]
    ok, _ = getattr(client, call)(*args)
    assert not ok
    [(error, _)] = errors
    assert str(error).startswith("[Segment] before_send_error: the message before_send returned")
    assert complaint in str(error)
    assert client.stats()["dropped"] == {"before_send_error": 1}


def test_the_size_limit_applies_to_what_the_hook_returns(hooked: Callable[..., Client]) -> None:
    def trim(message: Message) -> Message:
        message["properties"]["blob"] = message["properties"]["blob"][:100]
        return message

    def grow(message: Message) -> Message:
        message["properties"]["blob"] = "x" * MAX_MSG_SIZE
        return message

    big = {"blob": "x" * MAX_MSG_SIZE}
    ok, msg = hooked(trim, send=False).track("u1", "E", big)
    assert ok and len(msg["properties"]["blob"]) == 100
    with pytest.raises(RuntimeError, match="exceeds 32kb"):
        hooked(grow, send=False).track("u1", "E")


def test_sync_mode_sends_what_the_hook_returns(
    server: ScriptedServer, hooked: Callable[..., Client]
) -> None:
    client = hooked(scrub_email, sync_mode=True)
    ok, msg = client.track("u1", "E", {"email": "ada@example.com", "n": 1})
    assert ok and server.messages() == [msg] and msg["properties"] == {"n": 1}


class AsyncHook:
    async def __call__(self, message: Message) -> Message:
        return message


async def async_hook(message: Message) -> Message:
    return message


@pytest.mark.parametrize(
    ("before_send", "complaint"),
    [
        (async_hook, "coroutine function"),
        (AsyncHook(), "coroutine function"),
        ([scrub_email, async_hook], "coroutine function"),
        ("scrub", "must be callable"),
    ],
    ids=["async-def", "async-call", "in-a-list", "not-callable"],
)
def test_coroutine_hooks_are_refused_at_construction(before_send: Any, complaint: str) -> None:
    with pytest.raises(TypeError, match=complaint):
        Client("wk", send=False, before_send=before_send)


def test_before_send_follows_upstreams_parameters_and_defaults_to_none() -> None:
    parameters = list(inspect.signature(Client).parameters.values())
    assert [p.name for p in parameters[-2:]] == ["before_send", "destinations"]
    assert parameters[-2].default is None and parameters[-1].default is None
    assert Client.DefaultConfig.before_send is None


@pytest.mark.usefixtures("module_client")
def test_the_module_global_applies_to_the_default_client(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert analytics.before_send is None
    monkeypatch.setattr(analytics, "before_send", [scrub_email])
    ok, msg = analytics.track("u1", "E", {"email": "ada@example.com"})
    assert ok and msg["properties"] == {}
    assert analytics.flush(timeout=10) == 0
    assert server.messages() == [msg]
