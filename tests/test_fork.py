"""Fork safety with real processes: preload-style forks, multiprocessing, and a raw fork()."""

from __future__ import annotations

from collections import Counter

from .processes import run_script
from .server import ScriptedServer


def sent_ids(server: ScriptedServer) -> Counter[str]:
    return Counter(m["messageId"] for m in server.messages())


def test_preload_parent_and_forked_children_each_deliver_once(server: ScriptedServer) -> None:
    result = run_script(
        """
        import os, sys
        import segment_clone as analytics
        analytics.write_key = "wk"
        analytics.host = sys.argv[1]
        analytics.upload_interval = 0.05
        for i in range(20):
            analytics.track("parent", "before-fork", {"i": i})
        children = []
        for c in range(3):
            pid = os.fork()
            if pid == 0:  # a worker: tracks, then exits normally without flush()
                for i in range(50):
                    analytics.track(f"child-{c}", "in-child", {"i": i})
                sys.exit(0)
            children.append(pid)
        for pid in children:
            assert os.waitpid(pid, 0)[1] == 0
        for i in range(20):
            analytics.track("parent", "after-fork", {"i": i})
        assert analytics.flush(timeout=20) == 0
        """,
        server.url,
    )
    assert result.returncode == 0, result.stderr
    ids = sent_ids(server)
    assert max(ids.values()) == 1, "a message was sent twice"
    per_user = Counter(m["userId"] for m in server.messages())
    assert per_user == {"parent": 40, "child-0": 50, "child-1": 50, "child-2": 50}


def test_multiprocessing_children_flush_at_exit(server: ScriptedServer) -> None:
    result = run_script(
        """
        import multiprocessing, sys
        import segment_clone as analytics
        analytics.write_key = "wk"
        analytics.host = sys.argv[1]
        analytics.upload_interval = 30  # nothing goes out before the child exits

        def work(n):
            for i in range(25):
                analytics.track(f"mp-{n}", "in-process", {"i": i})
            # no flush(): multiprocessing ends the child with os._exit, skipping atexit

        analytics.track("parent", "first")
        ctx = multiprocessing.get_context("fork")
        procs = [ctx.Process(target=work, args=(n,)) for n in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
            assert p.exitcode == 0
        """,
        server.url,
    )
    assert result.returncode == 0, result.stderr
    per_user = Counter(m["userId"] for m in server.messages())
    assert per_user == {"parent": 1, "mp-0": 25, "mp-1": 25}
    assert max(sent_ids(server).values()) == 1


def test_fork_without_python_hooks_is_caught_by_the_pid_check(server: ScriptedServer) -> None:
    # libc fork() skips os.register_at_fork hooks, as uWSGI does without
    # --py-call-uwsgi-fork-hooks; the PID check on enqueue must still give the child its own
    # queue and threads. Forking without CPython's own after-fork repairs is only sound when
    # no other thread runs, as in a uWSGI master: so the parent's consumer is stopped first,
    # and PyDLL keeps the GIL held across the call.
    result = run_script(
        """
        import ctypes, os, sys
        from segment_clone import Client
        client = Client("wk", host=sys.argv[1], upload_interval=0.05)
        client.track("parent", "before")
        assert client.shutdown(timeout=10) == 0  # delivered, and no consumer thread left
        client.track("parent", "queued-at-fork")  # held in the parent's queue
        pid = ctypes.PyDLL(None).fork()
        if pid == 0:
            ok, _ = client.track("raw-child", "in-child")
            pending = client.flush(timeout=10)
            os._exit(0 if ok and pending == 0 else 3)
        _, status = os.waitpid(pid, 0)
        assert status == 0, status
        client.track("parent", "after")
        assert client.flush(timeout=10) == 0
        """,
        server.url,
    )
    assert result.returncode == 0, result.stderr
    assert max(sent_ids(server).values()) == 1  # the child reseeded its id generator
    assert Counter(m["event"] for m in server.messages()) == {
        "before": 1,
        "queued-at-fork": 1,
        "in-child": 1,
        "after": 1,
    }
