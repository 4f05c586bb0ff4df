"""Process lifecycle hooks shared by everything that sends in the background.

An object that queues messages must flush them when the interpreter exits (including in a
forked ``multiprocessing`` child, which ends with ``os._exit`` and so skips ``atexit``) and must
re-initialise itself in a forked child, whose copies of the parent's queue, locks and threads
are not its own. The hooks hold only weak references, so registering never keeps an idle
object alive; ``hold`` keeps one alive while it has work in flight.
"""

from __future__ import annotations

import atexit
import multiprocessing.util
import os
import weakref
from functools import partial
from typing import Protocol

EXIT_GRACE = 0.5
"""Seconds an exit hook waits for stopped threads beyond the flush budget, so that a batch
whose retry wait was cut short is back in the queue before the leftovers are counted."""


class Lifecycle(Protocol):
    def _at_exit(self) -> None: ...

    def _after_fork(self) -> None: ...


_held: set[Lifecycle] = set()
_exited: weakref.WeakSet[Lifecycle] = weakref.WeakSet()
"""Objects whose exit flush already ran in this process: ``atexit`` and ``multiprocessing``'s
exit hook both fire at a normal exit, and the flush must run once."""


def register(obj: Lifecycle) -> None:
    """Flush ``obj`` at interpreter exit and re-initialise it in forked children."""
    ref = weakref.ref(obj)
    atexit.register(_at_exit, ref)
    _add_mp_finalizer(obj)
    multiprocessing.util.register_after_fork(obj, _add_mp_finalizer)
    os.register_at_fork(after_in_child=partial(_after_fork, ref))


def hold(obj: Lifecycle) -> None:
    """Keep ``obj`` alive while it has threads running: what it accepted is still owed, even
    when the application has dropped its last reference to it."""
    _held.add(obj)


def release(obj: Lifecycle) -> None:
    _held.discard(obj)


def _at_exit(ref: weakref.ReferenceType[Lifecycle]) -> None:
    obj = ref()
    if obj is not None and obj not in _exited:
        _exited.add(obj)
        obj._at_exit()


def _after_fork(ref: weakref.ReferenceType[Lifecycle]) -> None:
    obj = ref()
    if obj is not None:
        _exited.discard(obj)
        obj._after_fork()


def _add_mp_finalizer(obj: Lifecycle) -> None:
    """``multiprocessing`` children clear inherited finalizers, so this is re-added in each
    child by the (inherited) after-fork callback."""
    multiprocessing.util.Finalize(None, _at_exit, (weakref.ref(obj),), exitpriority=0)
