"""Resetting per-process state in a child after ``os.fork()``.

A process that talked to the MAuth service before forking (gunicorn ``--preload``,
Celery prefork, a module-level authenticator) hands its children copies of the same
keep-alive sockets: the children then read each other's answers. Locks held by a
parent's thread at the fork stay locked forever in the child, and fetches in flight
there never finish in it. Objects holding such state register here; after a fork
each live one gets ``_after_fork_in_child()`` called in the child (the registry holds
weak references, so registering keeps nothing alive).
"""

from __future__ import annotations

import os
import weakref
from typing import Protocol


class ForkAware(Protocol):
    def _after_fork_in_child(self) -> None: ...


_live: weakref.WeakSet[ForkAware] = weakref.WeakSet()


def register(obj: ForkAware) -> None:
    """Call ``obj._after_fork_in_child()`` in every child forked while ``obj`` lives."""
    _live.add(obj)


def _reset_in_child() -> None:
    for obj in list(_live):
        try:
            obj._after_fork_in_child()
        except Exception:  # noqa: S112 - one object's failure must not stop the others
            continue


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_reset_in_child)
