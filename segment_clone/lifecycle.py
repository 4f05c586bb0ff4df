"""The process-wide lifecycle registry of everything that sends in the background.

An object that queues messages must flush them when the interpreter exits (including in a
forked ``multiprocessing`` child, which ends with ``os._exit`` and so skips ``atexit``) and must
re-initialise itself in a forked child, whose copies of the parent's queue, locks and threads
are not its own. Members join with ``register`` and leave with ``unregister`` (at shutdown);
the registry itself installs one exit hook, one multiprocessing finalizer and one fork hook,
once, so that a program that creates many clients leaks no callbacks.

The registry holds weak references, so registering never keeps an idle object alive; ``hold``
keeps one alive while it has work in flight.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing.util
import os
import threading
import weakref
from functools import partial
from typing import Protocol

EXIT_GRACE = 0.5
"""Seconds an exit hook waits for stopped threads beyond the flush budget, so that a batch
whose retry wait was cut short is back in the queue before the leftovers are counted."""

log = logging.getLogger("segment")


class Lifecycle(Protocol):
    def _at_exit(self) -> None: ...

    def _after_fork(self) -> None: ...


class _Registry:
    """The members of this process. Owner: the process; guard: ``_lock`` (re-entrant, held
    only around dict and set operations, so a weakref callback or a signal handler that runs
    while it is held cannot deadlock). A forked child gets a new lock and never touches the
    parent's, which a thread that does not exist in the child may hold."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._members: dict[int, weakref.ReferenceType[Lifecycle]] = {}
        self._held: set[Lifecycle] = set()
        self.exited = False
        """Set once the exit flush ran in this process: ``atexit`` and ``multiprocessing``'s
        finalizer both fire at a normal exit, and the flush must run once."""

    def register(self, obj: Lifecycle) -> bool:
        """Add ``obj``; False if the exit flush has already begun, and so may not see it."""
        key = id(obj)
        ref = weakref.ref(obj, partial(self._forget, key))
        with self._lock:
            self._members[key] = ref
            return not self.exited

    def unregister(self, obj: Lifecycle) -> None:
        with self._lock:
            ref = self._members.get(id(obj))
            if ref is not None and ref() is obj:
                del self._members[id(obj)]
            self._held.discard(obj)

    def _forget(self, key: int, ref: weakref.ReferenceType[Lifecycle]) -> None:
        with self._lock:
            if self._members.get(key) is ref:
                del self._members[key]

    def hold(self, obj: Lifecycle) -> None:
        with self._lock:
            self._held.add(obj)

    def release(self, obj: Lifecycle) -> None:
        with self._lock:
            self._held.discard(obj)

    def members(self) -> list[Lifecycle]:
        with self._lock:
            refs = list(self._members.values())
        return [obj for obj in (ref() for ref in refs) if obj is not None]

    def at_exit(self) -> None:
        with self._lock:
            if self.exited:
                return
            self.exited = True
        for obj in self.members():
            try:
                obj._at_exit()
            except Exception:
                log.exception("exit flush failed")

    def after_fork_in_child(self) -> None:
        """Runs in the child, where only the forking thread exists: replaces the lock without
        taking the old one, then lets every member replace its own state."""
        self._lock = threading.RLock()
        self.exited = False
        for obj in self.members():
            obj._after_fork()

    def add_mp_finalizer(self) -> None:
        """``multiprocessing`` children clear inherited finalizers, so this is re-added in each
        child by the (inherited) after-fork callback."""
        multiprocessing.util.Finalize(None, self.at_exit, exitpriority=0)


_registry = _Registry()
atexit.register(_registry.at_exit)
_registry.add_mp_finalizer()
multiprocessing.util.register_after_fork(_registry, _Registry.add_mp_finalizer)
os.register_at_fork(after_in_child=_registry.after_fork_in_child)


def register(obj: Lifecycle) -> bool:
    """Flush ``obj`` at interpreter exit and re-initialise it in forked children; False if the
    exit flush has already begun (a caller then must not accept messages it would owe)."""
    return _registry.register(obj)


def unregister(obj: Lifecycle) -> None:
    """``obj`` has shut down: no exit flush, no fork hook, no longer kept alive."""
    _registry.unregister(obj)


def hold(obj: Lifecycle) -> None:
    """Keep ``obj`` alive while it has threads running: what it accepted is still owed, even
    when the application has dropped its last reference to it."""
    _registry.hold(obj)


def release(obj: Lifecycle) -> None:
    _registry.release(obj)
