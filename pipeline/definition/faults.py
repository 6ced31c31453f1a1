"""Faults outside the data: the output folder's storage (read-only, full) and its state (a broken ML Metadata store)
told in one sentence with what to do, and where the traceback of anything unexpected goes.

No TensorFlow or TFX: the CLI checks these before anything runs, and reads errors after.
"""

import contextlib
import datetime
import errno
import os
import sqlite3
import stat
import tempfile
import traceback
from pathlib import Path

SQLITE_HEADER = b"SQLite format 3\x00"
_NO_SPACE = ("No space left on device", "ENOSPC", "Disk quota exceeded", "database or disk is full")
_BROKEN_STORE = ("file is not a database", "database disk image is malformed", "unable to open database file")


class EnvironmentFaultError(Exception):
    """The machine, not the data or the command line, stops the command; the message says what to do."""


def check_writable(folder: str, what: str = "the output folder") -> None:
    """Makes the folder if needed and writes a probe in it.

    Raises:
      EnvironmentFaultError: a read-only file system, no permission, or no space, naming the folder.
    """
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as e:
        raise EnvironmentFaultError(storage_sentence(e, folder, what)) from e


def storage_sentence(error: OSError, folder: str, what: str = "the output folder") -> str:
    if error.errno == errno.EROFS:
        return f"{what} {folder} is on a read-only file system: give a folder on a writable disk"
    if error.errno in (errno.EACCES, errno.EPERM):
        return f"{what} {folder} cannot be written by this user: give a folder you can write, or change its owner"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on the disk of {what} {folder}: free some space and run the same command again"
    return f"{what} {folder} cannot be written: {error.strerror or error}"


def check_metadata(path: str, pipeline_root: str) -> None:
    """Refuses a metadata.sqlite that is not a database any more (overwritten, truncated, damaged inside), and
    artifacts left without their store (a fresh store numbers its executions from 1 again, onto their folders).

    Raises:
      EnvironmentFaultError: naming the file, what it is and how to recover.
    """
    if not os.path.exists(path):
        if _holds_files(pipeline_root):
            raise EnvironmentFaultError(
                f"{pipeline_root} holds the artifacts of earlier runs but their ML Metadata store {path} is gone; a "
                f"new store would write over them. Move them aside too (mv {pipeline_root} {pipeline_root}.old) and "
                "run again: the next run re-runs every component, and the serving folder stays as it is"
            )
        return
    with open(path, "rb") as f:
        header = f.read(len(SQLITE_HEADER))
    if header != SQLITE_HEADER or not _intact(path):
        raise EnvironmentFaultError(broken_store_sentence(path, pipeline_root))


def _holds_files(folder: str) -> bool:
    return any(files for _, _, files in os.walk(folder))


def _intact(path: str) -> bool:
    """SQLite's own quick check of every page, read-only (milliseconds for a store of a few MB); a store another run
    holds locked counts as intact (that run will say more)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)) as db:
            return db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    except sqlite3.OperationalError as e:
        return "locked" in str(e) or "busy" in str(e)
    except sqlite3.DatabaseError:
        return False


def broken_store_sentence(path: str, pipeline_root: str) -> str:
    return (
        f"{path} is not an SQLite database any more; it is ML Metadata's record of this folder's runs (what "
        "caching and the history read). Move it aside with the artifacts it records "
        f"(mv {path} {path}.broken; mv {pipeline_root} {pipeline_root}.broken) and run again: the next run starts a "
        "fresh history and re-runs every component, and the serving folder stays as it is"
    )


def _chain(error: BaseException | None):
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


def no_space(error: BaseException | None) -> bool:
    """Is running out of disk behind the error (an OSError, or TensorFlow's or Beam's wrapping of one)?"""
    for e in _chain(error):
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(marker in str(e) for marker in _NO_SPACE):
            return True
    return False


# What ML Metadata's PostgreSQL source says when the server is gone (refused, restarted, stopped mid-run).
_LOST_SERVER = (
    "PostgreSQL metadata source error",
    "connection pointer is NULL",
    "server closed the connection",
    "terminating connection",
    "could not connect to server",
    "Connection refused",
    "no connection to the server",
    "connection to server was lost",
)


def lost_server(error: BaseException | None) -> bool:
    """Is a shared ML Metadata server that stopped answering behind the error?"""
    return any(marker in str(e) for e in _chain(error) for marker in _LOST_SERVER)


def lost_server_sentence(where: str, during: str = "") -> str:
    return (
        f"the ML Metadata store {where} stopped answering{during}: run the same command again once it is back (the "
        "components it recorded as finished are reused from the cache; the one that was running runs again)"
    )


def broken_store(error: BaseException | None) -> bool:
    """Is an unreadable ML Metadata store behind the error?"""
    return any(marker in str(e) for e in _chain(error) for marker in _BROKEN_STORE)


def private_log_folder() -> Path:
    """This user's own folder for the logs of commands without an output folder: $XDG_STATE_HOME/fraud-pipeline/logs
    (~/.local/state/...), mode 0700; a fresh private folder under the temporary one when that cannot be used (not
    ours, not a folder, open to others). Never a shared /tmp path another user could have planted a link at."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    folder = Path(base) / "fraud-pipeline" / "logs"
    try:
        folder.mkdir(parents=True, mode=0o700, exist_ok=True)
        status = os.lstat(folder)
        if stat.S_ISDIR(status.st_mode) and status.st_uid == os.getuid() and not status.st_mode & 0o077:
            return folder
    except OSError:
        pass
    return Path(tempfile.mkdtemp(prefix="fraud-pipeline-logs-"))


def _open_log(path: Path, exclusive: bool):
    """A log opened for appending without following a symbolic link (and, for a new file, only if it is new)."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_EXCL if exclusive else 0)
    return os.fdopen(os.open(path, flags, 0o600), "a")


def log_path(command: str, output: str | None) -> Path:
    """Where the traceback of an unexpected error goes: the output folder's pipeline.log when the command has one
    that can be written, else a new file of its own in this user's private log folder."""
    if output and os.path.isdir(output) and os.access(output, os.W_OK):
        return Path(output) / "pipeline.log"
    stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
    return private_log_folder() / f"{command}-{stamp}-{os.getpid()}.log"


def record_traceback(error: BaseException, command: str, output: str | None) -> Path:
    """Appends the error's full traceback to the command's log; returns the log's path."""
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    path = log_path(command, output)
    try:
        with _open_log(path, exclusive=path.name != "pipeline.log") as f:
            f.write(f"\n{datetime.datetime.now().isoformat()} fraud-pipeline {command} failed:\n{text}")
    except OSError:
        # A name taken already (a link planted there, a second failure in the same second): a new file's.
        fd, name = tempfile.mkstemp(prefix=f"{command}-", suffix=".log", dir=private_log_folder())
        path = Path(name)
        with os.fdopen(fd, "a") as f:
            f.write(text)
    return path
