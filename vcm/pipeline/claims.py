"""Claiming units of work in the store, so runs and workers sharing a run folder split the work.

A run claims a unit (one image) just before an executor takes it, renews its claims from a
background thread while it lives, and releases each once its records are stored. A unit claimed
by another live run is waited for: it is either stored by that run or, when that run died and its
claim expired (``claim_ttl``), taken over.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

from vcm.pipeline.executor import WAIT
from vcm.pipeline.store import ResultStore
from vcm.pipeline.worker import REFERENCE, Unit


def new_owner() -> str:
    """A name no other process will take: host, pid and a random tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def still_missing(store: ResultStore, unit: Unit) -> Unit | None:
    """``unit`` reduced to the items not yet stored (None when all are)."""
    sid, points, ref = unit
    keys = [p.key for p in points] + ([REFERENCE] if ref else [])
    missing = set(store.missing(sid, keys))
    if not missing:
        return None
    return sid, [p for p in points if p.key in missing], REFERENCE in missing


def claimed(store: ResultStore, owner: str, ttl: float, units: Iterable[Unit]) -> Iterator[Unit]:
    """Yield each unit once ``owner`` holds its claim, reduced to its missing items. Units that
    another live owner holds are retried until stored or expired; between passes over them this
    yields :data:`~vcm.pipeline.executor.WAIT`, so the executor keeps collecting (and this run
    keeps storing and releasing) its own results meanwhile: two runs never wait on each other."""
    pending = list(units)
    while pending:
        later = []
        for unit in pending:
            if still_missing(store, unit) is None:
                continue
            if not store.claim(unit[0], owner, ttl):
                later.append(unit)
                continue
            left = still_missing(store, unit)  # stored by another run between the two checks?
            if left is None:
                store.release(owner, unit[0])
            else:
                yield left
        if later:
            yield WAIT
        pending = later


class Heartbeat:
    """Renews ``owner``'s claims every ``ttl / 3`` seconds from a background thread."""

    def __init__(self, path: Path, owner: str, ttl: float) -> None:
        self.path, self.owner, self.ttl = path, owner, ttl
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="vcm-claims", daemon=True)

    def _beat(self) -> None:
        store = None
        while not self.stop.wait(self.ttl / 3):
            try:  # keep beating through errors: a dead heartbeat lets others take live units
                store = store or ResultStore(self.path)  # SQLite connections belong to one thread
                store.renew(self.owner, self.ttl)
            except Exception as e:  # noqa: BLE001
                warnings.warn(f"renewing the run's claims failed ({type(e).__name__}: {e}); retrying", stacklevel=1)
        if store is not None:
            store.close()

    def __enter__(self) -> Heartbeat:  # noqa: PYI034
        self.thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        self.stop.set()
        self.thread.join()
