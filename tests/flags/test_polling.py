"""The definitions poller: a daemon thread that stops when told and at exit, is started again
in a forked child, and never holds the interpreter open. Real threads, real processes."""

from __future__ import annotations

import threading
from typing import Callable

from segment_clone.mixpanel import Mixpanel

from ..mixpanel.conftest import Log
from ..processes import run_script
from ..server import Reply, ScriptedServer
from .conftest import definitions, flag

MakeMp = Callable[..., tuple[Mixpanel, Log]]


def pollers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "mixpanel-flags-poller"]


def test_polling_refreshes_on_a_daemon_thread_until_stopped(
    server: ScriptedServer, make_mp: MakeMp
) -> None:
    server.script(Reply(body=definitions()), Reply(body=definitions(flag())))
    server.default = Reply(body=definitions(flag()))
    mp, _ = make_mp(config={"enable_polling": True, "polling_interval_in_seconds": 0.01})
    before = set(pollers())
    mp.local_flags.start_polling_for_definitions()
    (thread,) = set(pollers()) - before
    assert thread.daemon
    server.wait_for(3)  # the first fetch and two polls
    assert mp.local_flags.is_enabled("new_checkout", {"distinct_id": "u"})
    mp.local_flags.stop_polling_for_definitions()
    thread.join(5)
    assert not thread.is_alive()


def test_a_forked_child_polls_on_its_own_thread(server: ScriptedServer) -> None:
    server.default = Reply(body=definitions(flag()))
    result = run_script(
        """
        import os, sys, threading
        from segment_clone.mixpanel import LocalFlagsConfig, Mixpanel

        class Sink:  # exposures stay in the process
            def send(self, endpoint, message):
                pass

        config = LocalFlagsConfig(api_host=sys.argv[1], polling_interval_in_seconds=3600)
        mp = Mixpanel("tok", consumer=Sink(), local_flags_config=config)
        mp.local_flags.start_polling_for_definitions()
        pid = os.fork()
        if pid == 0:
            names = [t.name for t in threading.enumerate()]
            ok = names.count("mixpanel-flags-poller") == 1
            ok = ok and mp.local_flags.is_enabled("new_checkout", {"distinct_id": "u"})
            mp.local_flags._fetch_flag_definitions()  # on the child's own HTTP client
            os._exit(0 if ok else 3)
        assert os.waitpid(pid, 0)[1] == 0
        """,
        server.url,
    )
    assert result.returncode == 0, result.stderr
    assert len(server.requests) == 2


def test_a_polling_process_exits_without_stopping_it(server: ScriptedServer) -> None:
    """The poller waits an hour between fetches; the interpreter must exit at once anyway."""
    server.default = Reply(body=definitions(flag()))
    result = run_script(
        """
        import sys
        from segment_clone.mixpanel import LocalFlagsConfig, Mixpanel

        config = LocalFlagsConfig(api_host=sys.argv[1], polling_interval_in_seconds=3600)
        Mixpanel("tok", local_flags_config=config).local_flags.start_polling_for_definitions()
        print("started")
        """,
        server.url,
        timeout=20,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "started"


def test_without_the_extra_a_flags_config_names_the_install_command() -> None:
    result = run_script(
        """
        import sys
        sys.modules["httpx"] = None  # as if segment-clone[flags] were not installed
        from segment_clone.mixpanel import LocalFlagsConfig, Mixpanel, MixpanelException

        Mixpanel("tok")  # no flags, no httpx needed
        import segment_clone.collector, segment_clone.testing  # serving flags needs none either
        try:
            Mixpanel("tok", local_flags_config=LocalFlagsConfig())
        except MixpanelException as error:
            print(error)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'segment-clone[flags]'" in result.stdout
