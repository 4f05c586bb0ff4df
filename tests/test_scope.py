"""``scope``: identity and context for every message built inside, on ``contextvars``."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import segment_clone as analytics
from segment_clone import Client
from segment_clone.collector import Collector

from .processes import run_script


@pytest.fixture
def client() -> Iterator[Client]:
    """A client that builds, encodes and runs hooks, but sends nothing: what ``track`` returns
    is the message as it would go on the wire."""
    yield Client("wk", send=False)


def test_a_call_inside_a_scope_takes_its_identity_and_context(client: Client) -> None:
    with analytics.scope(user_id="u1", anonymous_id="a1", context={"ip": "203.0.113.7"}):
        ok, msg = client.track(event="Signed Up", properties={"plan": "pro"})
    assert ok
    assert (msg["userId"], msg["anonymousId"]) == ("u1", "a1")
    assert msg["context"]["ip"] == "203.0.113.7"
    assert msg["context"]["library"]["name"] == "analytics-python"
    assert msg["properties"] == {"plan": "pro"}


def test_outside_any_scope_nothing_is_added_and_ids_stay_required(client: Client) -> None:
    with analytics.scope(user_id="u1"):
        pass
    _, msg = client.track("u2", "Clicked")
    assert (msg["userId"], msg["anonymousId"]) == ("u2", None)
    assert set(msg["context"]) == {"library"}
    with pytest.raises(AssertionError, match="user_id or anonymous_id"):
        client.track(event="Clicked")


def test_explicit_arguments_win_and_dicts_merge_key_by_key(client: Client) -> None:
    with analytics.scope(
        context={"ip": "203.0.113.7", "locale": "fr-FR"},
        properties={"source": "web", "plan": "free"},
        integrations={"All": False, "Mixpanel": True},
        user_id="u1",
    ):
        _, msg = client.track(
            event="Upgraded",
            properties={"plan": "pro"},
            context={"locale": "de-DE"},
            integrations={"Mixpanel": False},
        )
    assert msg["properties"] == {"source": "web", "plan": "pro"}
    assert msg["context"]["ip"] == "203.0.113.7"
    assert msg["context"]["locale"] == "de-DE"
    assert msg["integrations"] == {"All": False, "Mixpanel": False}


def test_a_call_naming_another_user_keeps_only_what_it_names(client: Client) -> None:
    """An event about someone else must not carry this browser's anonymous id (identity
    resolution would merge the two profiles); one about the scope's user gets it."""
    with analytics.scope(user_id="u1", anonymous_id="a1"):
        _, other = client.track("u2", "Invited")
        _, same = client.track("u1", "Invited")
        _, anon = client.track(anonymous_id="a9", event="Invited")
    assert (other["userId"], other["anonymousId"]) == ("u2", None)
    assert (same["userId"], same["anonymousId"]) == ("u1", "a1")
    assert (anon["userId"], anon["anonymousId"]) == (None, "a9")


def test_every_message_type_takes_the_scope(client: Client) -> None:
    with analytics.scope(user_id=42, context={"ip": "198.51.100.1"}, properties={"p": 1}):
        messages = [
            client.identify(traits={"name": "Ada"})[1],
            client.group(group_id="g1")[1],
            client.page(name="Home")[1],
            client.screen(name="Home")[1],
        ]
        alias = client.alias("old", "new")[1]
    for msg in messages:
        assert msg["userId"] == "42", msg["type"]
        assert msg["context"]["ip"] == "198.51.100.1"
    assert [("properties" in m and m["properties"]) for m in messages] == [
        False,
        False,
        {"p": 1},
        {"p": 1},
    ]
    assert (alias["previousId"], alias["userId"], alias["anonymousId"]) == ("old", "new", None)
    assert alias["context"]["ip"] == "198.51.100.1"


def test_nested_scopes_inherit_unless_fresh(client: Client) -> None:
    with analytics.scope(anonymous_id="a1", context={"ip": "203.0.113.7", "locale": "en"}):
        with client.scope(user_id="u1", context={"locale": "fr"}):
            _, inner = client.track(event="Logged In")
        with analytics.scope(user_id="u2", fresh=True):
            _, fresh = client.track(event="Job Ran")
        _, outer = client.track(event="Viewed")
    assert (inner["userId"], inner["anonymousId"]) == ("u1", "a1")
    assert (inner["context"]["ip"], inner["context"]["locale"]) == ("203.0.113.7", "fr")
    assert (fresh["userId"], fresh["anonymousId"]) == ("u2", None)
    assert "ip" not in fresh["context"]
    assert (outer["userId"], outer["context"]["locale"]) == (None, "en")


def test_before_send_sees_the_merged_message() -> None:
    seen: list[dict[str, Any]] = []

    def hook(msg: dict[str, Any]) -> dict[str, Any]:
        seen.append(msg)
        return msg

    client = Client("wk", send=False, before_send=hook)
    with analytics.scope(user_id="u1", context={"ip": "203.0.113.7"}):
        client.track(event="Clicked")
    assert seen[0]["userId"] == "u1"
    assert seen[0]["context"]["ip"] == "203.0.113.7"


def test_a_scope_decorates_sync_and_async_functions(client: Client) -> None:
    scope = analytics.scope(user_id="u1")

    @scope
    def handler(event: str) -> dict[str, Any]:
        return client.track(event=event)[1]

    @scope
    async def ahandler(event: str) -> dict[str, Any]:
        await asyncio.sleep(0)  # the scope survives a suspension
        return client.track(event=event)[1]

    assert handler("Sync")["userId"] == "u1"
    assert asyncio.run(ahandler("Async"))["userId"] == "u1"
    assert handler.__name__ == "handler"
    with pytest.raises(AssertionError):
        client.track(event="Outside")  # the decorator left nothing behind


def test_asyncio_tasks_inherit_the_scope_and_do_not_share_it(client: Client) -> None:
    async def request(user: str) -> list[str]:
        with analytics.scope(user_id=user):
            child = asyncio.create_task(tracked("from a task"))
            await asyncio.sleep(0)
            return [client.track(event="direct")[1]["userId"], await child]

    async def tracked(event: str) -> str:
        await asyncio.sleep(0)
        return str(client.track(event=event)[1]["userId"])

    async def main() -> list[list[str]]:
        return list(await asyncio.gather(*(request(f"u{i}") for i in range(5))))

    assert asyncio.run(main()) == [[f"u{i}", f"u{i}"] for i in range(5)]


def test_a_thread_carries_the_scope_with_copy_context(client: Client) -> None:
    got: dict[str, Any] = {}

    def work(key: str) -> None:
        ok = True
        try:
            got[key] = client.track(event="in thread")[1]["userId"]
        except AssertionError:
            ok = False
        got.setdefault(key, None if ok else "refused")

    with analytics.scope(user_id="u1"):
        plain = threading.Thread(target=work, args=("plain",))
        ctx = contextvars.copy_context()
        carried = threading.Thread(target=ctx.run, args=(work, "carried"))
        for t in (plain, carried):
            t.start()
            t.join()
    assert got == {"plain": "refused", "carried": "u1"}


def test_lazy_user_id_resolves_once_and_a_failing_resolver_gives_none(client: Client) -> None:
    from segment_clone.scopes import Scope

    calls: list[int] = []

    def resolve() -> int:
        calls.append(1)
        return 7

    with Scope(anonymous_id="a1", user_id_resolver=resolve):
        assert not calls  # nothing resolved until a message needs it
        with Scope(context={"k": 1}):
            assert client.track(event="One")[1]["userId"] == "7"
        assert client.track(event="Two")[1]["userId"] == "7"
    assert calls == [1]

    def fail() -> None:
        raise LookupError("no session")

    with Scope(anonymous_id="a1", user_id_resolver=fail):
        _, msg = client.track(event="Three")
    assert (msg["userId"], msg["anonymousId"]) == (None, "a1")


def test_bad_scope_arguments_are_refused() -> None:
    with pytest.raises(AssertionError, match="context"):
        analytics.scope(context=["not", "a", "dict"])  # type: ignore[arg-type]


def test_scoped_messages_reach_the_collector(collector: Collector) -> None:
    client = Client("wk", host=collector.url, upload_interval=0.05)
    try:
        with analytics.scope(user_id="u1", anonymous_id="a1", context={"ip": "203.0.113.7"}):
            client.track(event="Delivered")
        assert client.flush(timeout=10) == 0
    finally:
        client.shutdown(timeout=5)
    [stored] = collector.events(type="track")
    assert (stored["userId"], stored["anonymousId"]) == ("u1", "a1")
    assert stored["context"]["ip"] == "203.0.113.7"


def test_a_forked_child_starts_outside_the_scope() -> None:
    result = run_script(
        """
        import os
        import segment_clone as analytics
        client = analytics.Client("wk", send=False)
        with analytics.scope(user_id="parent"):
            pid = os.fork()
            if pid == 0:
                try:
                    client.track(event="in child")
                except AssertionError:
                    os._exit(3)  # refused: no identity, the scope was reset
                os._exit(4)
            assert client.track(event="in parent")[1]["userId"] == "parent"
        print(os.waitpid(pid, 0)[1] >> 8)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3"


def test_one_scope_object_entered_by_many_threads_at_once(client: Client) -> None:
    """A module-level scope used with ``with`` from request threads: each thread's exit
    restores its own context, whatever the order in which they leave."""
    shared = analytics.scope(context={"app": "shop"})
    inside, leave_first = threading.Barrier(2), threading.Event()
    seen: dict[str, Any] = {}

    def request(user: str, first: bool) -> None:
        with analytics.scope(user_id=user):
            with shared:
                inside.wait(timeout=10)
                if not first:
                    leave_first.wait(timeout=10)  # the other thread leaves first
            if first:
                leave_first.set()
            seen[user] = client.track(event="After")[1]

    threads = [threading.Thread(target=request, args=(u, u == "u1")) for u in ("u1", "u2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    for user in ("u1", "u2"):
        assert seen[user]["userId"] == user  # back in the thread's own enclosing scope
        assert "app" not in seen[user]["context"]
