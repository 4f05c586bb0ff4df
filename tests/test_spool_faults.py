"""The spool under real faults: acknowledgements the kernel refuses (``RLIMIT_NOFILE``), the
directory removed or replaced by a file under a running client, idle forked children, dead
owners, and a signal handler that tracks while its thread is inside the spool.

Tests run as root, where a read-only ``chmod`` does not bite; a file in place of the directory
is the fault that makes ``mkdir`` fail for every user."""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import tracemalloc
from pathlib import Path

import pytest

from segment_clone import Client
from segment_clone import spool as spool_module
from segment_clone.spool import Spool, SpoolFull

from .processes import run_script, start_script
from .server import Reply, ScriptedServer
from .test_spool import SPOOLED_PRODUCER

NO_FILES_FOR_ONE_BATCH = """
import os, resource, sys
from segment_clone import Client
client = Client("wk", host=sys.argv[1], spool_path=sys.argv[2], upload_interval=30)
client.track("u", "before")
assert client.flush(timeout=10) == 0  # the connection is open now, and kept alive
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
lowest = os.open(os.devnull, os.O_RDONLY)
os.close(lowest)
resource.setrlimit(resource.RLIMIT_NOFILE, (lowest, hard))  # no descriptor can be opened
client.track("u", "during")
print("pending while no file can be opened:", client.flush(timeout=3), flush=True)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
client.track("u", "after")
print("pending once files can be opened:", client.flush(timeout=3), flush=True)
"""


def test_an_acknowledgement_the_kernel_refuses_is_written_with_the_next_batch(
    server: ScriptedServer, tmp_path: Path
) -> None:
    """EMFILE when the ack log is opened: the batch is still finished (flush returns 0), and
    its acknowledgement goes out with the next batch's, so nothing is replayed next run."""
    spool = tmp_path / "events.spool"
    result = run_script(NO_FILES_FOR_ONE_BATCH, server.url, str(spool), timeout=30)
    assert result.returncode == 0, result.stderr
    assert "pending while no file can be opened: 0" in result.stdout
    assert "pending once files can be opened: 0" in result.stdout
    assert result.stderr.count("cannot write to the spool") == 1
    assert [m["event"] for m in server.acknowledged()] == ["before", "during", "after"]
    assert Spool(spool).adopt_orphans() == []  # every acknowledgement reached the disk


def test_a_directory_removed_under_a_running_client_is_made_again(
    server: ScriptedServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A cleaner removes the spool while a batch is at the server: its acknowledgement finds
    no directory, and the spool is made again with the message still unfinished."""
    spool = tmp_path / "events.spool"
    held = threading.Event()
    server.script(Reply(hold=held))
    client = Client("wk", host=server.url, spool_path=str(spool), upload_interval=0.01)
    try:
        client.track("u", "in flight")
        server.wait_for(1)
        shutil.rmtree(spool)
        client.track("u", "queued")  # into the log whose directory is gone
        with caplog.at_level(logging.WARNING, logger="segment"):
            held.set()
            assert client.flush(timeout=5) == 0
        assert sum("was removed" in r.message for r in caplog.records) == 1
        assert spool.is_dir()
        assert [m["event"] for m in server.acknowledged()] == ["in flight", "queued"]
    finally:
        held.set()
        client.shutdown(timeout=5)
    assert Spool(spool).adopt_orphans() == []


def test_unfinished_messages_are_written_again_when_the_directory_is_made_again(
    tmp_path: Path,
) -> None:
    spool_path = tmp_path / "events.spool"
    spool = Spool(spool_path)
    done, unfinished = b'{"n":1}', b'{"n":2}'
    spool.add(done)
    spool.add(unfinished)
    shutil.rmtree(spool_path)
    spool.remove([done])
    assert [p.read_bytes().rstrip(b"\0") for p in spool_path.glob("*/*.log")] == [b'{"n":2}\n']
    assert spool.unspooled([unfinished]) == []
    spool.close()
    assert Spool(spool_path).adopt_orphans() == [unfinished]


def test_a_directory_removed_before_a_new_segment_is_made_again_with_the_new_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool_module, "SEGMENT_BYTES", 40)
    spool_path = tmp_path / "events.spool"
    spool = Spool(spool_path)
    first, second, third = b"a" * 15, b"b" * 15, b"c" * 15
    spool.add(first)
    spool.add(second)  # the segment is full now
    shutil.rmtree(spool_path)
    spool.add(third)
    spool.close()
    assert Spool(spool_path).adopt_orphans() == [first, second, third]


def test_a_file_in_place_of_the_directory_keeps_messages_in_memory_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool_path = tmp_path / "events.spool"
    spool = Spool(spool_path)
    a, b, c = b'{"n":1}', b'{"n":2}', b'{"n":3}'
    spool.add(a)
    spool.add(b)
    shutil.rmtree(spool_path)
    spool_path.write_bytes(b"not a directory")
    with caplog.at_level(logging.WARNING, logger="segment"):
        spool.remove([a])
        spool.add(c)  # accepted: the queue holds it
        spool.remove([b])
    assert spool.unspooled([b, c]) == [b, c]
    [warning] = caplog.records
    assert "kept in memory only from now on" in warning.message
    spool.close()
    assert spool_path.read_bytes() == b"not a directory"


def test_adding_after_close_is_refused(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "events.spool")
    spool.close()
    with pytest.raises(SpoolFull, match="closed"):
        spool.add(b"late")
    assert list((tmp_path / "events.spool").iterdir()) == []


def test_a_spool_reserves_nothing_before_its_first_message(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "events.spool")
    assert list((tmp_path / "events.spool").iterdir()) == []
    spool.add(b"first")
    [owner] = (tmp_path / "events.spool").iterdir()
    assert owner.name == spool.owner
    spool.remove([b"other"])
    spool.close()


def test_forked_children_that_never_track_reserve_nothing(
    server: ScriptedServer, tmp_path: Path
) -> None:
    spool = tmp_path / "events.spool"
    client = Client("wk", host=server.url, spool_path=str(spool))
    try:
        children = []
        for _ in range(3):
            pid = os.fork()
            if pid == 0:  # the at-fork hook has run; the child exits without tracking
                os._exit(0)
            children.append(pid)
        assert all(os.waitpid(pid, 0)[1] == 0 for pid in children)
        assert list(spool.iterdir()) == []
    finally:
        client.shutdown(timeout=5)


def test_a_dead_owner_is_removed_once_its_messages_are_finished(tmp_path: Path) -> None:
    spool_path = tmp_path / "events.spool"
    dead = Spool(spool_path)
    dead.add(b"m1")
    dead.add(b"m2")
    dead.close()  # its lock released, as by the death of its process
    [dead_dir] = spool_path.iterdir()
    heir = Spool(spool_path)
    orphans = heir.adopt_orphans()
    assert orphans == [b"m1", b"m2"]
    heir.remove(orphans[:1])
    assert dead_dir.is_dir()  # m2 is still the heir's to finish
    heir.remove(orphans[1:])
    assert not dead_dir.exists()
    heir.close()
    assert list(spool_path.iterdir()) == []


def test_a_closed_owner_with_nothing_unfinished_leaves_nothing(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "events.spool")
    data = b"m1"
    spool.add(data)
    spool.remove([data])
    spool.close()
    assert list((tmp_path / "events.spool").iterdir()) == []


SIGNAL_INSIDE_ADD = """
import os, signal, sys
from segment_clone import spool as spool_module
from segment_clone.spool import Spool
spool_module.SEGMENT_BYTES = 4096
spool = Spool(sys.argv[1])
spool.add(b"a" * 3000)
reserve = spool_module._reserve
def reserve_then_signal(fd, size):  # the signal arrives while add() holds the spool
    reserve(fd, size)
    os.kill(os.getpid(), signal.SIGUSR1)
spool_module._reserve = reserve_then_signal
signal.signal(signal.SIGUSR1, lambda signum, frame: spool.add(b"from the handler"))
spool.add(b"b" * 3000)  # starts the next segment
spool.close()
"""


def test_a_signal_handler_may_add_while_its_thread_is_inside_add(tmp_path: Path) -> None:
    """The handler's message is written as soon as the interrupted add is done, after it."""
    spool = tmp_path / "events.spool"
    result = run_script(SIGNAL_INSIDE_ADD, str(spool), timeout=10)
    assert result.returncode == 0, result.stderr
    assert Spool(spool).adopt_orphans() == [b"a" * 3000, b"b" * 3000, b"from the handler"]


MEMORY_AT_EXIT = """
import shutil, sys
from pathlib import Path
from segment_clone import Client
spool = Path(sys.argv[2])
def on_error(exc, batch):
    print("reported", getattr(exc, "reason", type(exc).__name__), *[m["event"] for m in batch])
client = Client(
    "wk", host=sys.argv[1], spool_path=str(spool), upload_interval=30, max_retries=0,
    shutdown_timeout=0.5, on_error=on_error,
)
client.track("u", "first")
shutil.rmtree(spool)
spool.write_bytes(b"not a directory")
assert client.flush(timeout=10) == 0  # its acknowledgement finds no directory: memory only
client.track("u", "second")  # held by the server past shutdown_timeout
"""


def test_at_exit_messages_the_spool_does_not_hold_are_reported(
    server: ScriptedServer, tmp_path: Path
) -> None:
    """Not "kept in the spool": a spool that keeps to memory holds nothing for the next run."""
    held = threading.Event()
    server.script(Reply(503), Reply(hold=held))
    try:
        result = run_script(MEMORY_AT_EXIT, server.url, str(tmp_path / "events.spool"))
    finally:
        held.set()
    assert result.returncode == 0, result.stderr
    assert "reported shutdown second" in result.stdout.splitlines()
    assert "kept in the spool" not in result.stderr


STRESS = """
import json, os, resource, shutil, sys, threading
from pathlib import Path
from segment_clone import Client
from segment_clone import spool as spool_module
sys.setswitchinterval(1e-6)  # a thread switch at almost every bytecode
spool_module.SEGMENT_BYTES = 1 << 14  # segments start (and can fail) while the threads track
host, path, fault = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
lock = threading.Lock()
accepted, reported = [], []
def on_error(exc, batch):
    with lock:
        reported.extend(m["messageId"] for m in batch)
client = Client("wk", host=host, spool_path=str(path), upload_size=20, on_error=on_error)
halfway = threading.Barrier(5, timeout=60)
def produce(n):
    mine = []
    for i in range(200):
        if i == 100:
            halfway.wait()
        ok, msg = client.track("u", "stress", {"n": n, "i": i})
        if ok:
            mine.append(msg["messageId"])
    with lock:
        accepted.extend(mine)
threads = [threading.Thread(target=produce, args=(n,)) for n in range(4)]
for t in threads:
    t.start()
halfway.wait()  # every producer is halfway: the fault strikes now
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if fault != "RLIMIT_NOFILE":  # as a cleaner would: the client may be writing to it meanwhile
    replacement = path.with_name("replacement")
    replacement.write_bytes(b"not a directory")
    for attempt in range(1000):
        shutil.rmtree(path, ignore_errors=True)
        try:
            if fault == "replaced by a file":
                os.rename(replacement, path)
            elif path.exists():
                continue  # a file was written meanwhile
            break
        except OSError:  # made again in between
            continue
    else:
        sys.exit("the fault did not strike")
if fault == "RLIMIT_NOFILE":
    lowest = os.open(os.devnull, os.O_RDONLY)
    os.close(lowest)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest, hard))
for t in threads:
    t.join(60)
resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
pending = client.flush(timeout=60)
with lock:
    print(json.dumps({"pending": pending, "accepted": accepted, "reported": reported}))
"""


@pytest.mark.parametrize("fault", ["removed", "replaced by a file", "RLIMIT_NOFILE"])
def test_stress_every_accepted_message_is_delivered_or_reported_under_a_spool_fault(
    server: ScriptedServer, tmp_path: Path, fault: str
) -> None:
    """Four threads track while the fault strikes, switching threads every microsecond."""
    spool = tmp_path / "events.spool"
    result = run_script(STRESS, server.url, str(spool), fault, timeout=120)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["pending"] == 0
    delivered = {m["messageId"] for m in server.acknowledged()}
    missing = set(outcome["accepted"]) - delivered - set(outcome["reported"])
    assert not missing, f"{len(missing)} accepted messages neither delivered nor reported"
    assert len(outcome["accepted"]) > 400  # the fault refused few, if any
    if fault != "replaced by a file":
        assert Spool(spool).adopt_orphans() == []  # and every acknowledgement is on disk


DELIVERING_AT_EXIT = """
import sys
from segment_clone import Client
client = Client("wk", host=sys.argv[1], spool_path=sys.argv[2], upload_interval=30)
client.track("u", "sent by the exit hook")
print("leaving", flush=True)
"""


def test_the_spool_stays_locked_while_the_exit_hook_delivers(
    server: ScriptedServer, tmp_path: Path
) -> None:
    """Interpreter exit closes nothing of the spool before the exit hook has delivered: if it
    let go of the lock, another client would adopt and send the same messages again."""
    spool = tmp_path / "events.spool"
    held = threading.Event()
    server.script(Reply(hold=held))
    producer = start_script(DELIVERING_AT_EXIT, server.url, str(spool))
    try:
        assert producer.stdout is not None
        assert producer.stdout.readline() == "leaving\n"
        server.wait_for(1)  # the exit hook's request is at the server, held
        other = Spool(spool)
        assert other.adopt_orphans() == []
        other.close()
    finally:
        held.set()
        _, err = producer.communicate(timeout=30)
    assert producer.returncode == 0, err
    assert [m["event"] for m in server.acknowledged()] == ["sent by the exit hook"]
    assert Spool(spool).adopt_orphans() == []


TRACK_FROM_A_HANDLER = """
import os, signal, sys
from segment_clone import Client
from segment_clone import spool as spool_module
spool_module.SEGMENT_BYTES = 4096
client = Client("wk", host=sys.argv[1], spool_path=sys.argv[2])
client.track("u", "first", {"pad": "x" * 3000})
reserve = spool_module._reserve
def reserve_then_signal(fd, size):  # the next track() starts a segment inside the spool
    spool_module._reserve = reserve
    reserve(fd, size)
    os.kill(os.getpid(), signal.SIGUSR1)
spool_module._reserve = reserve_then_signal
signal.signal(signal.SIGUSR1, lambda signum, frame: client.track("u", "from the handler"))
client.track("u", "interrupted", {"pad": "x" * 3000})
print("pending:", client.flush(timeout=10), flush=True)
"""


def test_a_signal_handler_may_track_while_its_thread_is_inside_the_spool(
    server: ScriptedServer, tmp_path: Path
) -> None:
    spool = tmp_path / "events.spool"
    result = run_script(TRACK_FROM_A_HANDLER, server.url, str(spool), timeout=20)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "pending: 0\n"
    delivered = sorted(m["event"] for m in server.acknowledged())
    assert delivered == ["first", "from the handler", "interrupted"]
    assert Spool(spool).adopt_orphans() == []


@pytest.mark.parametrize("status", [200, 503])
def test_an_exit_leaves_only_unfinished_messages_on_disk(
    server: ScriptedServer, tmp_path: Path, status: int
) -> None:
    """All delivered: no directory is left. Server down: the log is cut to its messages (no
    reserved megabytes left behind), and the next run replays them (test_spool.py)."""
    spool = tmp_path / "events.spool"
    server.default = Reply(status)
    result = run_script(SPOOLED_PRODUCER, server.url, str(spool), "0.5", "5")
    assert result.returncode == 0, result.stderr
    logs = list(spool.glob("*/*.log"))
    if status == 200:
        assert list(spool.iterdir()) == []
    else:
        [log] = logs
        assert log.read_bytes().count(b"\n") == 5
        assert b"\0" not in log.read_bytes()


def test_an_owner_that_cannot_be_read_is_left_for_the_next_client(tmp_path: Path) -> None:
    """Adoption runs in ``Client()``: a dead owner it cannot read must not make that fail."""
    spool_path = tmp_path / "events.spool"
    broken = spool_path / "1-dead"
    (broken / "1.log").mkdir(parents=True)  # read() fails: IsADirectoryError
    (broken / "lock").touch()
    spool = Spool(spool_path)
    assert spool.adopt_orphans() == []
    spool.close()
    assert (broken / "1.log").is_dir()


DIES_WITH_ONE_MESSAGE = """
import os, sys
from segment_clone.spool import Spool
Spool(sys.argv[1]).add(b'{"n":1}')
os._exit(0)  # no close: the log keeps its reserved megabytes, as after kill -9
"""


def test_adopting_a_dead_owner_does_not_read_its_reserved_zeros(tmp_path: Path) -> None:
    """Each new client adopts every dead owner: it must not copy 8 MiB per owner to find one
    line. Measured as the memory the adoption allocates (tracemalloc), not as time."""
    spool = tmp_path / "events.spool"
    result = run_script(DIES_WITH_ONE_MESSAGE, str(spool))
    assert result.returncode == 0, result.stderr
    [log] = spool.glob("*/1.log")
    assert log.stat().st_size == spool_module.SEGMENT_BYTES
    heir = Spool(spool)
    tracemalloc.start()
    try:
        assert heir.adopt_orphans() == [b'{"n":1}']
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < spool_module.SEGMENT_BYTES // 8
    heir.close()
