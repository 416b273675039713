"""Executors run units of work (one image each) and stream back their records.

The runner only calls ``imap``; a distributed engine can implement the same method by
shipping units to workers and yielding their records as they arrive.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, TypeVar

U = TypeVar("U")
R = TypeVar("R")


class Executor(Protocol):
    def imap(self, fn: Callable[[U], Iterable[R]], units: Iterable[U]) -> Iterator[R]:
        """Apply ``fn`` to each unit; yield every result as soon as it exists."""
        ...


class InProcessExecutor:
    """Runs units one after another in this process."""

    def imap(self, fn: Callable[[U], Iterable[R]], units: Iterable[U]) -> Iterator[R]:
        for unit in units:
            yield from fn(unit)


EXECUTORS: dict[str, Callable[[], Executor]] = {"inprocess": InProcessExecutor}


def make_executor(name: str) -> Executor:
    if name not in EXECUTORS:
        raise ValueError(f"unknown executor {name!r}; available: {', '.join(EXECUTORS)}")
    return EXECUTORS[name]()
