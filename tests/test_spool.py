"""The durable spool: unit behaviour, exit with the server down, kill -9, shared files."""

from __future__ import annotations

import os
import signal
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from segment_clone import Client
from segment_clone import spool as spool_module
from segment_clone.errors import MessageDropped
from segment_clone.spool import Spool, SpoolFull

from .processes import run_script, start_script
from .server import Reply, ScriptedServer


def test_add_remove_and_size(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "events.spool", max_bytes=100)
    a, b, c = b"a" * 40, b"b" * 40, b"c" * 40
    spool.add(a)
    spool.add(b)
    assert spool.size == 80
    with pytest.raises(SpoolFull):
        spool.add(c)
    spool.remove([a])
    assert spool.size == 40
    spool.add(c)
    spool.close()


def test_identical_messages_are_tracked_separately(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "events.spool")
    first, second = b"same", bytes(b"same!"[:4])  # equal, but two messages
    spool.add(first)
    spool.add(second)
    spool.remove([first])
    spool.close()
    survivor = Spool(tmp_path / "events.spool")
    assert survivor.adopt_orphans() == [b"same"]
    survivor.close()


def test_messages_of_a_closed_owner_are_adopted_in_order(tmp_path: Path) -> None:
    first = Spool(tmp_path / "events.spool")
    messages = [b"m%d" % i for i in range(5)]
    for m in messages:
        first.add(m)
    first.remove([messages[1]])
    first.close()
    second = Spool(tmp_path / "events.spool")
    orphans = second.adopt_orphans()
    assert orphans == [b"m0", b"m2", b"m3", b"m4"]
    assert second.adopt_orphans() == []  # already ours
    second.remove(orphans)
    assert second.size == 0
    second.close()
    assert Spool(tmp_path / "events.spool").adopt_orphans() == []
    logs = list((tmp_path / "events.spool").glob("*/*.log"))
    assert all(not log.read_bytes().strip(b"\0") for log in logs)  # only unused active logs


def test_messages_of_a_live_owner_are_never_adopted(tmp_path: Path) -> None:
    live = Spool(tmp_path / "events.spool")
    live.add(b"mine")
    other = Spool(tmp_path / "events.spool")
    assert other.adopt_orphans() == []
    live.close()
    assert other.adopt_orphans() == [b"mine"]
    other.close()


def test_a_line_cut_short_by_a_crash_is_not_replayed(tmp_path: Path) -> None:
    first = Spool(tmp_path / "events.spool")
    first.add(b'{"n":1}')
    first.close()
    [log] = (tmp_path / "events.spool").glob("*/1.log")
    with open(log, "ab") as f:
        f.write(b'{"n":2')  # the process died inside the write
    assert Spool(tmp_path / "events.spool").adopt_orphans() == [b'{"n":1}']


def test_a_message_is_in_the_log_when_add_returns(tmp_path: Path) -> None:
    """What ``kill -9`` relies on: the line is in the file (the kernel's page cache) at once."""
    spool = Spool(tmp_path / "events.spool")
    spool.add(b'{"n":1}')
    [log] = (tmp_path / "events.spool").glob("*/1.log")
    assert log.read_bytes().rstrip(b"\0") == b'{"n":1}\n'
    spool.close()
    assert log.read_bytes() == b'{"n":1}\n'  # closing cuts the reserved zeros


NO_ROOM = """
import resource, signal, sys
from segment_clone import spool as spool_module
from segment_clone.spool import Spool, SpoolFull
spool_module.SEGMENT_BYTES = 4096
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file past the limit: EFBIG, not a signal
spool = Spool(sys.argv[1])
spool.add(b"a" * 2000)
spool.add(b"b" * 2000)  # the segment is now too full for a third
_, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (1024, hard))  # no file may grow past 1 KiB
try:
    spool.add(b"c" * 2000)
except SpoolFull as e:
    print("refused:", e)
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
spool.add(b"d" * 2000)
spool.close()
"""


def test_no_room_for_a_new_segment_is_spool_full_and_passes(tmp_path: Path) -> None:
    """The kernel refuses the next segment's blocks (here: a file-size limit): the message is
    refused with ``SpoolFull`` and no segment is mapped that the disk cannot back (a write to it
    would be SIGBUS); once there is room again, the spool goes on."""
    result = run_script(NO_ROOM, str(tmp_path / "events.spool"))
    assert result.returncode == 0, result.stderr
    assert "refused: cannot start a spool segment" in result.stdout
    orphans = Spool(tmp_path / "events.spool").adopt_orphans()
    assert orphans == [b"a" * 2000, b"b" * 2000, b"d" * 2000]


def test_a_forked_child_leaves_the_parents_log_whole(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "events.spool")
    spool.add(b"parent-1")
    pid = os.fork()
    if pid == 0:  # the child: its own owner; its mapping of the parent's log is only unmapped
        try:
            spool.reopen_after_fork()
            spool.add(b"child-1")
        finally:
            os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    spool.add(b"parent-2")
    spool.close()
    assert sorted(Spool(tmp_path / "events.spool").adopt_orphans()) == [
        b"child-1",
        b"parent-1",
        b"parent-2",
    ]


def test_full_segments_are_rotated_and_deleted_once_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool_module, "SEGMENT_BYTES", 100)
    spool = Spool(tmp_path / "events.spool")
    messages = [b"x" * 30 + b"%02d" % i for i in range(10)]
    for m in messages:
        spool.add(m)
    owner = tmp_path / "events.spool" / spool.owner
    # 33 bytes a line: a segment of 100 bytes holds 3 lines
    assert sorted(p.name for p in owner.glob("*.log")) == ["1.log", "2.log", "3.log", "4.log"]
    assert (owner / "1.log").read_bytes() == b"".join(m + b"\n" for m in messages[:3])  # cut
    spool.remove(messages)
    assert [p.name for p in owner.glob("*.log")] == ["4.log"]  # only the active one stays
    spool.close()


def test_a_spool_from_an_earlier_release_is_imported(tmp_path: Path) -> None:
    old = tmp_path / "events.spool"
    db = sqlite3.connect(old)
    db.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, owner TEXT, data BLOB)")
    db.executemany("INSERT INTO messages (owner, data) VALUES ('x', ?)", [(b"a",), (b"b",)])
    db.commit()
    db.close()
    spool = Spool(old)
    assert old.is_dir()
    assert spool.adopt_orphans() == [b"a", b"b"]
    spool.close()


def test_rejects_non_positive_max(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="spool_max_bytes"):
        Spool(tmp_path / "events.spool", max_bytes=0)


def test_spool_full_is_reported(server: ScriptedServer, tmp_path: Path) -> None:
    errors: list[tuple[BaseException, list[dict[str, Any]]]] = []
    client = Client(
        "wk",
        host=server.url,
        spool_path=str(tmp_path / "events.spool"),
        spool_max_bytes=600,
        upload_interval=30,
        on_error=lambda e, b: errors.append((e, b)),
    )
    assert client.track("u", "fits")[0]
    ok, msg = client.track("u", "too much", {"pad": "x" * 400})
    assert not ok
    ((exc, batch),) = errors
    assert isinstance(exc, MessageDropped) and exc.reason == "spool_full" and batch == [msg]
    assert client.stats()["dropped"] == {"spool_full": 1}
    assert client.shutdown(timeout=10) == 0


def test_sync_mode_and_spool_are_exclusive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="spool_path"):
        Client("wk", sync_mode=True, spool_path=str(tmp_path / "events.spool"))


SPOOLED_PRODUCER = """
import sys
import segment_clone as analytics
analytics.write_key = "wk"
analytics.host = sys.argv[1]
analytics.spool_path = sys.argv[2]
analytics.shutdown_timeout = float(sys.argv[3])
analytics.upload_size = 10
for i in range(int(sys.argv[4])):
    ok, msg = analytics.track("u", "spooled", {"i": i})
    assert ok
    print(msg["messageId"], flush=True)
"""

REPLAYER = """
import sys
from segment_clone import Client
queue_size = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
client = Client(
    "wk", host=sys.argv[1], spool_path=sys.argv[2], upload_interval=0.05,
    max_queue_size=queue_size,
)
assert client.flush(timeout=30) == 0, client.stats()
print(client.stats()["delivered"], flush=True)
"""


def test_exit_with_server_down_keeps_messages_for_the_next_run(
    server: ScriptedServer, tmp_path: Path
) -> None:
    spool = str(tmp_path / "events.spool")
    server.default = Reply(503)
    first = run_script(SPOOLED_PRODUCER, server.url, spool, "0.5", "30")
    assert first.returncode == 0, first.stderr
    accepted = first.stdout.split()
    assert len(accepted) == 30
    assert "kept in the spool" in first.stderr
    assert server.acknowledged() == []

    server.default = Reply(200)
    second = run_script(REPLAYER, server.url, spool, "8")  # more left over than the queue holds
    assert second.returncode == 0, second.stderr
    assert int(second.stdout) == 30
    delivered = Counter(m["messageId"] for m in server.acknowledged())
    assert set(delivered) == set(accepted)
    assert max(delivered.values()) == 1


def test_sigkill_mid_stream_loses_nothing(server: ScriptedServer, tmp_path: Path) -> None:
    spool = str(tmp_path / "events.spool")
    server.default = Reply(delay=0.01)  # keep some batches in flight
    producer = start_script(SPOOLED_PRODUCER, server.url, spool, "5", "100000")
    assert producer.stdout is not None
    accepted = [producer.stdout.readline().strip() for _ in range(3000)]
    server.wait_for(5)  # some batches were acknowledged before the crash
    producer.send_signal(signal.SIGKILL)
    with producer:  # closes the pipes
        producer.wait(timeout=30)
        # The rest of what was printed before the kill. (Not communicate(): it reads the pipe
        # itself and would skip what readline() had already buffered, cutting an id in two.)
        accepted += producer.stdout.read().split()
    assert producer.returncode == -signal.SIGKILL

    replay = run_script(REPLAYER, server.url, spool)
    assert replay.returncode == 0, replay.stderr
    delivered = Counter(m["messageId"] for m in server.acknowledged())
    missing = set(accepted) - set(delivered)
    assert not missing, f"{len(missing)} accepted messages were lost"
    # At-least-once only where a response was lost: a batch the server acknowledged just as
    # the producer died is replayed. That is at most one batch (upload_size=10) per consumer.
    duplicates = sum(n - 1 for n in delivered.values())
    assert duplicates <= 10


def test_two_live_processes_share_one_spool_without_duplicates(
    server: ScriptedServer, tmp_path: Path
) -> None:
    spool = str(tmp_path / "shared.spool")
    producers = [start_script(SPOOLED_PRODUCER, server.url, spool, "10", "300") for _ in range(2)]
    accepted = []
    for p in producers:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        accepted += out.split()
    assert len(accepted) == 600
    delivered = Counter(m["messageId"] for m in server.acknowledged())
    assert set(delivered) == set(accepted)
    assert max(delivered.values()) == 1
