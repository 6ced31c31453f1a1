"""Where a command writes a file the user named (predict's --to and --rejects): never onto one of its inputs, never
two processes into one file, never a half-written file under the final name.

Each output is written into a partial file of a name no other process can take (tempfile's O_EXCL, in the
destination's folder so the final rename stays on one file system), under an advisory lock (flock) on a hidden lock
file beside the destination that a second writer of the same destination cannot take; on success the partial file
is flushed to disk and renamed onto the destination at once, on failure it is removed. The lock files are left in
place (removing one would let a third process lock a new file while the second still holds the old).

No TensorFlow: the CLI checks the paths before it imports anything.
"""

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from components.lib import serving
from pipeline.definition.faults import EnvironmentFaultError


class PathClashError(ValueError):
    """An output that is an input, another output, or inside the folder read as input; the message names both."""


def _same(a: Path, b: Path) -> bool:
    """The same file: by device and inode when both exist (a hard link, a symlink, ../ spellings), else by the
    resolved path."""
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def check_paths(inputs: dict[str, list[str]], outputs: dict[str, str]) -> None:
    """Refuses outputs that would destroy an input or each other, before anything is opened for writing.

    Args:
      inputs: a flag (e.g. '--data') -> the files it reads; a folder given as input is its own entry too.
      outputs: a flag (e.g. '--to') -> the file it writes.

    Raises:
      PathClashError: naming the two flags and the path.
    """
    named = list(outputs.items())
    for flag, path in named:
        out = Path(path).expanduser()
        for in_flag, files in inputs.items():
            for file in files:
                source = Path(file).expanduser()
                if source.is_dir():
                    if out.resolve().parent == source.resolve():
                        raise PathClashError(
                            f"{flag} {path} is inside the folder of {in_flag} {file}: the next read of that folder "
                            f"would take it as input; write it elsewhere"
                        )
                elif _same(out, source):
                    raise PathClashError(f"{flag} {path} is the file {in_flag} reads ({file}): it would be destroyed")
    for i, (flag, path) in enumerate(named):
        for other_flag, other in named[i + 1 :]:
            if _same(Path(path).expanduser(), Path(other).expanduser()):
                raise PathClashError(f"{flag} and {other_flag} name the same file ({path}); give two files")


class DestinationBusyError(EnvironmentFaultError):
    """Another process holds the lock of a destination."""


@contextlib.contextmanager
def locked(destination: str) -> Iterator[None]:
    """Holds the advisory lock of a destination for the block (EnvironmentFaultError if another process has it)."""
    target = Path(destination).expanduser().resolve()
    lock_path = target.parent / f".{target.name}.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise DestinationBusyError(
                f"another command is writing {destination} now (it holds {lock_path}); run this one when it has "
                "finished, or give another file"
            ) from e
        yield
    finally:
        os.close(fd)  # releases the lock


def partial_path(destination: str) -> str:
    """A new empty file beside the destination that no other process can have (O_EXCL), named after it."""
    target = Path(destination).expanduser().resolve()
    fd, path = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    try:
        # mkstemp makes it 0600; the file it becomes gets the mode any new file of this user gets.
        os.fchmod(fd, 0o666 & ~_umask())
    finally:
        os.close(fd)
    return path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def commit(partial: str, destination: str) -> None:
    """The partial file flushed to disk and renamed onto the destination (atomic on one file system)."""
    serving.fsync_path(partial)
    os.replace(partial, destination)
    serving.fsync_path(str(Path(destination).expanduser().resolve().parent))


@contextlib.contextmanager
def writing(*destinations: str | None) -> Iterator[list[str | None]]:
    """Locks each destination (None: no such output) and gives a partial path for each, renamed onto it when the
    block ends without an error and removed otherwise."""
    real = [d for d in destinations if d]
    with contextlib.ExitStack() as stack:
        for destination in real:
            stack.enter_context(locked(destination))
        partials = {d: partial_path(d) for d in real}
        try:
            yield [partials.get(d) if d else None for d in destinations]
            for destination, partial in partials.items():
                commit(partial, destination)
        finally:
            for partial in partials.values():
                if os.path.exists(partial):
                    os.remove(partial)
