"""A guard that lets a signal handler call ``track()`` on a thread already inside it.

Python runs signal handlers on the main thread only, between two bytecodes of the frame they
interrupt. If that frame holds a lock the handler's call needs (the spool's, the drop
reporter's, the queue's, or one in a ``before_send`` hook), the handler waits for its own thread
forever; and a re-entrant lock would let it write into the middle of the interrupted update (a
half-written spool record). So a call on the main thread that finds the main thread already
handing a message off takes no lock at all: it leaves the hand-off to the outer call, which runs
it as soon as its own is done. Other threads never run handlers and skip the guard.

The state is the main thread's alone (owner: the main thread; no lock). A deque's ``append`` and
``popleft`` are atomic with respect to a handler, which never runs inside a C call.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from typing import Callable


class _MainThread:
    def __init__(self) -> None:
        self.ident = threading.main_thread().ident
        self.busy = False
        """The main thread is inside a hand-off."""
        self.deferred: deque[Callable[[], object]] = deque()
        """Hand-offs of calls made while ``busy`` (by a signal handler), run by the outer
        call on its way out."""


main = _MainThread()


def drain() -> None:
    """Run the hand-offs deferred on the main thread (by the caller that was ``busy``, after
    it cleared ``busy``). A handler that fires meanwhile defers again, and is run too."""
    while main.deferred:
        main.busy = True
        try:
            while main.deferred:
                main.deferred.popleft()()
        finally:
            main.busy = False


def _after_fork_in_child() -> None:
    """The forking thread is the child's main thread, and no hand-off is in progress there."""
    global main
    main = _MainThread()


os.register_at_fork(after_in_child=_after_fork_in_child)
