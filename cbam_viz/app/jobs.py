"""Heavy jobs stay bounded: at most one per session and a few per server at a time.

A heavy job is a download, a faithfulness curve or a randomisation run: seconds to minutes of CPU.
It runs in the session's script thread and reports progress through Streamlit elements, so when
the visitor changes an input, Streamlit stops the run at the next progress update (the job is
cancelled) and the slot is given back on the way out::

    slots = JobSlots(limit=2)
    with slots.hold(session, "deletion and insertion curves"):
        run_the_job(progress=bar.progress)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

DEFAULT_LIMIT = 2  # heavy jobs at a time per server ($CBAM_VIZ_HEAVY_JOBS)


class Busy(RuntimeError):
    """No slot free: the message says why in plain words."""


def server_limit() -> int:
    """The server's limit on concurrent heavy jobs: ``$CBAM_VIZ_HEAVY_JOBS`` (at least 1), else 2."""
    try:
        return max(1, int(os.environ.get("CBAM_VIZ_HEAVY_JOBS", DEFAULT_LIMIT)))
    except ValueError:
        return DEFAULT_LIMIT


class JobSlots:
    """Slots for heavy jobs: ``limit`` per server, one per session."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._running: dict[str, str] = {}  # session -> what it runs

    def running(self) -> int:
        """How many heavy jobs run now."""
        with self._lock:
            return len(self._running)

    @contextmanager
    def hold(self, session: str, what: str) -> Iterator[None]:
        """Hold a slot for ``session`` while the block runs; :class:`Busy` when none is free."""
        with self._lock:
            if session in self._running:
                raise Busy(f"This page is already running the {self._running[session]}: wait for it to finish, "
                           "or change an input to cancel it.")
            if len(self._running) >= self.limit:
                raise Busy(f"The server is busy with {len(self._running)} other long computations (its limit is "
                           f"{self.limit} at a time). Try again in a minute.")
            self._running[session] = what
        try:
            yield
        finally:
            with self._lock:
                del self._running[session]
