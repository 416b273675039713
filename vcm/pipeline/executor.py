"""Executors run units of work and stream back each unit's results as soon as it is done.

``imap(factory, units)`` yields ``(unit, results)`` in completion order. ``factory()`` builds the
work function once per worker (models load once per process, not per unit), so for the process
and Ray executors it must pickle. Units are pulled lazily, one per free worker, so the caller can
claim each unit just before it runs. A worker that dies (killed, out of memory) loses nothing and
doubles nothing: its units go to a fresh worker, and a unit that kills ``MAX_LOSSES`` workers
while running alone raises :class:`WorkerLost` naming it.
"""

from __future__ import annotations

import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol, TypeVar

from vcm.config import ExecutorConfig

U = TypeVar("U")
R = TypeVar("R")
Factory = Callable[[], Callable[[Any], list[Any]]]
MAX_LOSSES = 3


class WorkerLost(RuntimeError):
    """A worker process died while computing a unit."""


class Executor(Protocol):
    def imap(self, factory: Factory, units: Iterable[U]) -> Iterator[tuple[U, list[Any]]]:
        """Apply ``factory()`` to each unit; yield ``(unit, results)`` as soon as each exists."""
        ...


class Backend(Protocol):
    """What :func:`dispatch` needs from a pool of workers."""

    def capacity(self) -> int: ...                         # units it can run at once, now
    def submit(self, unit: Any) -> Any: ...                # a handle
    def ready(self, handles: list[Any], timeout: float | None) -> list[Any]: ...  # done ones; waits <= timeout
    def result(self, handle: Any) -> list[Any]: ...        # raises WorkerLost if its worker died


def dispatch(units: Iterable[U], backend: Backend) -> Iterator[tuple[U, list[Any]]]:
    """Keep ``backend.capacity()`` units in flight. A pool break fails every unit in flight, so a lost unit
    reruns alone (nothing else in flight) and only a loss while alone counts against it: a unit
    that kills ``MAX_LOSSES`` workers on its own raises :class:`WorkerLost`, never an innocent
    neighbour. A unit source may yield :data:`WAIT` (nothing ready yet, e.g. claimed by another
    run): results in flight are then collected for up to ``POLL`` seconds, never blocked on."""
    todo, retry = iter(units), deque[tuple[int, U]]()
    inflight: dict[Any, tuple[int, U, bool]] = {}  # handle -> (unit number, unit, ran alone)
    losses: Counter[int] = Counter()
    count, exhausted = 0, False
    while True:
        waiting = False
        while len(inflight) < backend.capacity() and not any(alone for _, _, alone in inflight.values()):
            if retry:
                if inflight:
                    break  # wait until the lost unit can run alone
                n, unit = retry.popleft()
                inflight[backend.submit(unit)] = (n, unit, True)
                continue
            if exhausted:
                break
            unit = next(todo, _END)  # type: ignore[arg-type]
            exhausted, waiting = unit is _END, unit is WAIT
            if exhausted or waiting:
                break
            n, count = count, count + 1
            inflight[backend.submit(unit)] = (n, unit, backend.capacity() == 1)
        if not inflight:
            if exhausted and not retry:
                return
            time.sleep(POLL)
            continue
        for handle in backend.ready(list(inflight), POLL if waiting else None):
            n, unit, alone = inflight.pop(handle)
            try:
                out = backend.result(handle)
            except WorkerLost as e:
                losses[n] += alone
                if losses[n] >= MAX_LOSSES:
                    raise WorkerLost(f"a worker died {losses[n]} times while computing {_name(unit)} alone: {e}") from e
                retry.append((n, unit))
                continue
            yield unit, out


WAIT: Any = object()  # from a unit source: no unit can start now, ask again after a poll
POLL = 0.5  # seconds
_END: Any = object()


def _name(unit: Any) -> str:
    return f"unit {unit[0]!r}" if isinstance(unit, tuple) and unit else f"unit {unit!r}"


def set_threads(threads: int | None) -> None:
    """Give torch, OpenCV and the TFLite heads (which read torch's setting) ``threads`` threads."""
    if threads is None:
        return
    import cv2
    import torch

    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)


class InProcessExecutor:
    """Runs units one after another in this process."""

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads

    def imap(self, factory: Factory, units: Iterable[U]) -> Iterator[tuple[U, list[Any]]]:
        fn = None
        for unit in units:
            if unit is WAIT:
                time.sleep(POLL)
                continue
            if fn is None:  # built for the first unit: a run with nothing to do builds nothing
                set_threads(self.threads)
                fn = factory()
            yield unit, fn(unit)


_WORK: tuple[Any, Any] | None = None  # (factory, its work function) in a worker process


def _run_unit(factory: Factory, threads: int, unit: Any) -> list[Any]:
    """Runs in a worker process: build the work function on first use (so a build error comes
    back as that error, not as a broken pool), then apply it."""
    global _WORK
    if _WORK is None or _WORK[0] != factory:
        set_threads(threads)
        _WORK = (factory, factory())
    return list(_WORK[1](unit))


class ProcessExecutor:
    """A pool of ``workers`` spawned processes with ``threads`` threads each."""

    def __init__(self, workers: int | None = None, threads: int | None = None) -> None:
        cores = os.cpu_count() or 1
        self.workers = workers or max(1, cores // (threads or 1))
        self.threads = threads or max(1, cores // self.workers)

    def imap(self, factory: Factory, units: Iterable[U]) -> Iterator[tuple[U, list[Any]]]:
        backend = _PoolBackend(factory, self.workers, self.threads)
        try:
            yield from dispatch(units, backend)
        finally:  # every result is in: workers exit in the background (torch teardown takes ~0.5 s)
            backend.pool.shutdown(wait=False, cancel_futures=True)


class _PoolBackend:
    def __init__(self, factory: Factory, workers: int, threads: int) -> None:
        self.factory, self.workers, self.threads = factory, workers, threads
        self.pool, self.generation, self.broken = self._new_pool(), 0, False
        self.born: dict[Future[list[Any]], int] = {}  # handle -> pool generation it ran in

    def _new_pool(self) -> ProcessPoolExecutor:
        import multiprocessing as mp

        return ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"))

    def capacity(self) -> int:
        return self.workers

    def submit(self, unit: Any) -> Future[list[Any]]:
        try:
            if self.broken:
                raise BrokenProcessPool("a worker died")
            handle = self.pool.submit(_run_unit, self.factory, self.threads, unit)
        except BrokenProcessPool:  # the units in flight fail and are requeued; start a fresh pool
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool, self.broken, self.generation = self._new_pool(), False, self.generation + 1
            handle = self.pool.submit(_run_unit, self.factory, self.threads, unit)
        self.born[handle] = self.generation
        return handle

    def ready(self, handles: list[Future[list[Any]]], timeout: float | None) -> list[Future[list[Any]]]:
        return list(wait(handles, timeout=timeout, return_when=FIRST_COMPLETED)[0])

    def result(self, handle: Future[list[Any]]) -> list[Any]:
        generation = self.born.pop(handle)
        try:
            return handle.result()
        except BrokenProcessPool as e:
            self.broken = self.broken or generation == self.generation
            raise WorkerLost(f"worker process died ({e})") from e


def make_executor(cfg: ExecutorConfig) -> Executor:
    if cfg.type == "process":
        return ProcessExecutor(cfg.workers, cfg.threads)
    if cfg.type == "ray":
        from vcm.pipeline.ray_executor import RayExecutor

        return RayExecutor(cfg.workers, cfg.threads, cfg.address)
    return InProcessExecutor(cfg.threads)
