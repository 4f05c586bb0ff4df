"""A per-thread guard that lets a signal handler call ``track()`` on a thread already inside it.

A handler runs between two bytecodes of the frame it interrupts, on that frame's thread. If that
frame holds a lock the handler's call needs (the spool's, the drop reporter's, the queue's, or
one in a ``before_send`` hook), the handler waits for its own thread forever. So a call that
finds its thread already handing a message off takes no lock at all: it leaves the hand-off to
the outer call, which runs it as soon as its own is done, on the same thread.

State is per thread (``threading.local``), so it needs no lock; a deque's ``append`` and
``popleft`` are atomic with respect to a handler, which never runs inside a C call.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Callable


class _State(threading.local):
    def __init__(self) -> None:
        self.busy = False
        """This thread is inside a hand-off. Owner: the thread itself."""
        self.deferred: deque[Callable[[], object]] = deque()
        """Hand-offs of calls made while ``busy`` (by a signal handler), run by the outer
        call on its way out."""


state = _State()


def drain(st: _State) -> None:
    """Run the hand-offs deferred on this thread (by the caller that was ``busy``, after it
    cleared ``busy``). A handler that fires meanwhile defers again, and is run too."""
    while st.deferred:
        st.busy = True
        try:
            while st.deferred:
                st.deferred.popleft()()
        finally:
            st.busy = False
