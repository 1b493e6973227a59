"""The writer's liveness signal: a lock per lease epoch, held by that epoch's writer while its process lives.

A dead writer's lease would otherwise stand until it expires (15 s by default).
Both databases offer a lock that the operating system or the server drops the
moment its holder's process dies, and that another process can test without
waiting:

- PostgreSQL: a session-level advisory lock on a dedicated connection; the
  server drops it when the session ends (the client's socket closes when its
  process dies).
- SQLite: a byte-range lock on a sidecar file, ``<database>-writer.lock``; the
  kernel drops it when the process's file descriptor closes. A SQLite file is
  shared only by processes on one host, so a host-local lock sees them all.
  It is an open-file-description lock (``F_OFD_SETLK``): unlike ``flock`` it
  locks one byte per epoch, and unlike classic ``fcntl`` locks it belongs to
  the descriptor, not the process, so two lease managers in one process
  exclude each other as two processes do.

Why one lock *per epoch* rather than one lock: a writer that took over from a
paused (SIGSTOPped) one cannot get the single lock the paused one still holds;
when the paused one resumes, learns it was deposed and lets go, its successor
would look dead to every candidate until it grabbed the lock itself. With a
lock per epoch the writer of epoch E takes lock E before its takeover commits,
so from the moment a replica can read epoch E in the row, lock E is held for
as long as that writer lives. Taking lock E+1 first also settles a race of two
candidates before either writes the row.

Where the lock cannot be used (no ``F_OFD_SETLK``, an unwritable directory, a
broken connection) the methods answer "not free" and "not held": a candidate
then falls back to the lease's observation rule (``app.ha.lease``), which only
makes a takeover later, never wrong.
"""

from __future__ import annotations

import abc
import fcntl
import logging
import os
import struct
import threading
import zlib
from typing import Any

from sqlalchemy import Engine

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5


def _signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def lease_key(lease: str) -> int:
    """A 31-bit number for a lease name: the lock namespace of that lease's epochs."""
    return zlib.crc32(f"nodeauthz-writer-lease:{lease}".encode()) & 0x7FFFFFFF


class LivenessLocks(abc.ABC):
    """Non-blocking locks on one lease's epochs. Thread-safe; every method answers at once."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held: set[int] = set()

    def hold(self, epoch: int) -> bool:
        """Take (or keep) the lock of ``epoch``; False if another process holds it or it cannot be had."""
        with self._mutex:
            try:
                if epoch in self._held and self._still_held():
                    return True
                self._held.discard(epoch)
                if self._try_lock(epoch):
                    self._held.add(epoch)
                    return True
            except Exception as exc:  # noqa: BLE001 - no signal only delays takeovers
                self._lost(exc)
            return False

    def holds(self, epoch: int) -> bool:
        """Whether this object took the lock of ``epoch`` (and has not let go or lost it)."""
        with self._mutex:
            return epoch in self._held

    def release(self, epoch: int) -> None:
        with self._mutex:
            if epoch not in self._held:
                return
            self._held.discard(epoch)
            try:
                self._unlock(epoch)
            except Exception as exc:  # noqa: BLE001 - a lost session has dropped the lock anyway
                self._lost(exc)

    def is_free(self, epoch: int) -> bool:
        """True if nobody holds the lock of ``epoch``: its writer is dead or has let go."""
        with self._mutex:
            if epoch in self._held:
                return False  # ours: this process is alive
            try:
                if not self._try_lock(epoch):
                    return False
                self._unlock(epoch)
                return True
            except Exception as exc:  # noqa: BLE001 - unknown counts as alive
                self._lost(exc)
                return False

    def close(self) -> None:
        with self._mutex:
            self._held.clear()
            self._close()

    def __del__(self) -> None:
        # Dropped without close(): let go, as the process's exit would.
        self._close()

    def _lost(self, exc: Exception) -> None:
        log.warning("writer liveness lock unavailable (%s); takeovers wait for the lease to go silent", exc)
        self._held.clear()
        self._close()

    @abc.abstractmethod
    def _try_lock(self, epoch: int) -> bool: ...

    @abc.abstractmethod
    def _unlock(self, epoch: int) -> None: ...

    @abc.abstractmethod
    def _still_held(self) -> bool:
        """Whether the locks this object took are still in force (its session or file is open)."""

    @abc.abstractmethod
    def _close(self) -> None: ...


class FileLiveness(LivenessLocks):
    """SQLite: one byte of ``<database>-writer.lock`` per epoch, locked with ``F_OFD_SETLK``."""

    def __init__(self, database_path: str, lease: str) -> None:
        super().__init__()
        self.path = f"{database_path}-writer.lock"
        self._base = lease_key(lease) << 32  # each lease its own 2**32-byte range of the file
        self._fd: int | None = None

    def _lock(self, epoch: int, kind: int) -> bool:
        if not hasattr(fcntl, "F_OFD_SETLK"):
            return False  # not Linux: observation only
        if self._fd is None:
            # Not the database: creating it is harmless, and it is never written to.
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        # struct flock on 64-bit Linux: l_type, l_whence, (pad), l_start, l_len, l_pid (0 for OFD), (pad).
        record = struct.pack("hhqqi4x", kind, os.SEEK_SET, self._base + (epoch & 0xFFFFFFFF), 1, 0)
        try:
            fcntl.fcntl(self._fd, fcntl.F_OFD_SETLK, record)
        except (BlockingIOError, PermissionError):  # EAGAIN / EACCES: another descriptor holds it
            return False
        return True

    def _try_lock(self, epoch: int) -> bool:
        return self._lock(epoch, fcntl.F_WRLCK)

    def _unlock(self, epoch: int) -> None:
        self._lock(epoch, fcntl.F_UNLCK)

    def _still_held(self) -> bool:
        return self._fd is not None

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # drops every lock taken through it
            self._fd = None


class AdvisoryLiveness(LivenessLocks):
    """PostgreSQL: ``pg_try_advisory_lock(lease key, epoch)`` on a connection of its own, in autocommit.

    Its own connection, not one from the engine's pool: a session lock lives as
    long as the session, and a pooled connection is shared and recycled.
    """

    def __init__(self, engine: Engine, lease: str) -> None:
        super().__init__()
        self._engine = engine
        self._key = _signed32(lease_key(lease))
        self._conn: Any = None

    def _connection(self) -> Any:
        if self._conn is None:
            cargs, cparams = self._engine.dialect.create_connect_args(self._engine.url)
            cparams.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
            self._conn = self._engine.dialect.loaded_dbapi.connect(*cargs, **cparams)
            self._conn.autocommit = True
        return self._conn

    def _scalar(self, sql: str, epoch: int) -> Any:
        return self._connection().execute(sql, (self._key, _signed32(epoch))).fetchone()[0]

    def _try_lock(self, epoch: int) -> bool:
        return bool(self._scalar("SELECT pg_try_advisory_lock(%s, %s)", epoch))

    def _unlock(self, epoch: int) -> None:
        self._scalar("SELECT pg_advisory_unlock(%s, %s)", epoch)

    def _still_held(self) -> bool:
        # A session that answers still holds its locks; one that was cut (a database restart) lost them.
        if self._conn is None:
            return False
        self._conn.execute("SELECT 1").fetchone()
        return True

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - already broken
                log.debug("closing the liveness connection failed", exc_info=True)
