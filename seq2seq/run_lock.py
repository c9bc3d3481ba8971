"""One writer per run directory: an exclusive OS lock held for a writer's lifetime.

Every command that writes into a run directory (``train``, ``train --resume``,
``average``) holds ``RUN/.lock`` with ``fcntl.flock(LOCK_EX)`` until it ends.  A
second writer is refused at once with the holder's process id::

    runs/g2p: in use by process 4711 (started 2026-11-30 10:12:05 UTC: seq2seq train ...)

The lock belongs to the open file, not to the file's existence: when the holder
ends in any way (exit, exception, SIGKILL, power loss) the operating system
releases it, so a lock left behind by a killed process never blocks the next
writer; the file itself stays and is reused.  Readers (``predict``, ``evaluate``)
never take the lock: checkpoints are replaced atomically and a reader that meets a
half-replaced pair retries (:func:`seq2seq.checkpoint.load_checkpoint`).

POSIX only (Linux, macOS): ``flock`` does not exist on Windows.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys
import time
from pathlib import Path
from typing import Optional

from seq2seq.errors import Seq2SeqError

LOCK_NAME = ".lock"


class RunLock:
    """The writer's lock of one run directory (a context manager).

    Args:
        run_dir: the run directory; it must exist when :meth:`acquire` is called.

    Raises:
        Seq2SeqError: from :meth:`acquire`: another process holds the lock (naming
            its pid and start time), or the directory cannot be written.
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: Optional[int] = None

    def acquire(self) -> "RunLock":
        """Take the lock without waiting and record this process in the lock file.

        Raises:
            Seq2SeqError: ``RUN: in use by process PID (started ...)``, or ``RUN: cannot
                write ...`` (no write permission, a read-only file system).
        """
        if self._fd is not None:
            return self
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise Seq2SeqError(f"{self.run_dir}: cannot write the run directory ({e.strerror or e}); "
                               "choose a run directory you can write to") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_holder(fd)
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise Seq2SeqError(f"{self.path}: cannot lock ({e.strerror or e})") from None
            raise Seq2SeqError(f"{self.run_dir}: in use by {holder or 'another process'}; wait for it to end "
                               "(one writer per run directory)") from None
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        command = " ".join(["seq2seq", *sys.argv[1:]])[:200].replace("\n", " ")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} (started {started}: {command})\n".encode("utf-8", "replace"), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the lock back (the lock file stays; its content no longer names a holder)."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
        except OSError:
            pass
        os.close(self._fd)                     # closing the file releases the flock
        self._fd = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    """The holder's line of a lock file ("process PID (started ...)"), or "" if unreadable."""
    try:
        return os.pread(fd, 400, 0).decode("utf-8", "replace").strip()
    except OSError:
        return ""


__all__ = ["LOCK_NAME", "RunLock"]
