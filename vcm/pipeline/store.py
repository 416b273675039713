"""Results in an embedded SQLite database inside the run folder, one row per (image, point).

An image's rows are committed together as soon as they are produced, so a killed run (even
``kill -9``) loses at most the images in progress, and a rerun skips every committed row. Runs
sharing a store claim each unit of work before computing it (``claim``), so no item is computed
twice; a claim whose owner stops renewing it expires.
"""

from __future__ import annotations

import json
import sqlite3
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    key TEXT PRIMARY KEY,      -- sample id + point key
    sample_id TEXT NOT NULL,
    point_key TEXT NOT NULL,
    record BLOB NOT NULL       -- zlib-compressed JSON
);
CREATE TABLE IF NOT EXISTS scores (key TEXT PRIMARY KEY, value TEXT NOT NULL);  -- dataset-level task scores
CREATE TABLE IF NOT EXISTS claims (
    unit TEXT PRIMARY KEY,     -- a unit of work (sample id)
    owner TEXT NOT NULL,       -- the run process computing it
    expires REAL NOT NULL      -- Unix time; renewed while the owner lives
);
"""


def _patiently(fn: Callable[[], T], seconds: float = 60.0) -> T:
    """Call ``fn``, retrying while SQLite says the database is locked. The busy timeout covers
    most waits, but not all (switching to WAL, a snapshot that another process moved past)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def encode_record(record: dict[str, Any]) -> bytes:
    """A record as stored: zlib-compressed JSON with sorted keys."""
    return zlib.compress(json.dumps(record, sort_keys=True).encode(), 6)


class ResultStore:
    """Append-only store of per-item records (JSON-serialisable dicts)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), timeout=60)
        _patiently(lambda: self.db.execute("PRAGMA journal_mode=WAL"))
        self.db.execute("PRAGMA synchronous=FULL")
        _patiently(lambda: self.db.executescript(SCHEMA))

    @staticmethod
    def item_key(sample_id: str, point_key: str) -> str:
        return f"{sample_id}#{point_key}"

    def done(self) -> set[str]:
        return {k for (k,) in self.db.execute("SELECT key FROM items")}

    def put(self, sample_id: str, point_key: str, record: dict[str, Any]) -> None:
        self.put_many([(sample_id, point_key, record)])

    def put_many(self, records: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Store (sample id, point key, record) rows in one transaction: all or none of them."""
        self.put_blobs([(sid, pk, encode_record(rec)) for sid, pk, rec in records])

    def put_blobs(self, rows: list[tuple[str, str, bytes]]) -> None:
        """Store rows already encoded by :func:`encode_record` (e.g. in a worker), in one transaction."""
        self._write("INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?)",
                    [(self.item_key(sid, pk), sid, pk, blob) for sid, pk, blob in rows])

    def missing(self, sample_id: str, point_keys: list[str]) -> list[str]:
        """The point keys of ``sample_id`` not yet stored."""
        have = {pk for (pk,) in self.db.execute("SELECT point_key FROM items WHERE sample_id = ?", (sample_id,))}
        return [k for k in point_keys if k not in have]

    def claim(self, unit: str, owner: str, ttl: float) -> bool:
        """Take ``unit`` for ``owner`` for ``ttl`` seconds unless another owner holds a live claim
        (one atomic statement, safe across processes)."""
        return self._write(
            "INSERT INTO claims VALUES (?, ?, ?) ON CONFLICT(unit) DO UPDATE SET owner = excluded.owner, "
            "expires = excluded.expires WHERE claims.owner = excluded.owner OR claims.expires < ?",
            lambda: [(unit, owner, time.time() + ttl, time.time())]) == 1

    def renew(self, owner: str, ttl: float) -> None:
        """Extend every claim of ``owner`` by ``ttl`` seconds from now."""
        self._write("UPDATE claims SET expires = ? WHERE owner = ?", lambda: [(time.time() + ttl, owner)])

    def release(self, owner: str, unit: str | None = None) -> None:
        """Drop ``owner``'s claim on ``unit`` (all its claims when None)."""
        if unit is None:
            self._write("DELETE FROM claims WHERE owner = ?", [(owner,)])
        else:
            self._write("DELETE FROM claims WHERE owner = ? AND unit = ?", [(owner, unit)])

    def get(self, sample_id: str, point_key: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT record FROM items WHERE key = ?",
                              (self.item_key(sample_id, point_key),)).fetchone()
        return None if row is None else json.loads(zlib.decompress(row[0]))

    def records(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """(sample_id, point_key, record) for every stored item, in key order."""
        for sid, pk, blob in self.db.execute("SELECT sample_id, point_key, record FROM items ORDER BY key"):
            yield sid, pk, json.loads(zlib.decompress(blob))

    def set_meta(self, key: str, value: str) -> None:
        self._write("INSERT OR REPLACE INTO meta VALUES (?, ?)", [(key, value)])

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def score(self, key: str) -> dict[str, Any] | None:
        """A cached dataset-level score (e.g. one point's COCOeval APs), or None."""
        row = self.db.execute("SELECT value FROM scores WHERE key = ?", (key,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def put_score(self, key: str, value: dict[str, Any]) -> None:
        self._write("INSERT OR REPLACE INTO scores VALUES (?, ?)", [(key, json.dumps(value))])

    def _write(self, sql: str, rows: list[tuple[Any, ...]] | Callable[[], list[tuple[Any, ...]]]) -> int:
        """Run ``sql`` for every row in one transaction; the number of rows changed. ``rows`` may
        be a function, called at each attempt (for times taken when the write happens)."""
        def go() -> int:
            with self.db:
                return self.db.executemany(sql, rows() if callable(rows) else rows).rowcount
        return _patiently(go)

    def close(self) -> None:
        self.db.close()
