"""Writing a file so that a failure never costs its last good content.

Checkpoints and evaluation results are written to a temp file in the same directory, flushed
and fsync-ed, then renamed over the destination with ``os.replace`` (atomic on POSIX and
Windows within one file system): a full disk (ENOSPC), an I/O error (EIO) or a kill while
writing leaves the previous file as it was, and no temp file behind. A log that only grows
(the metric log) is appended to instead (`append_durably`): a failed append is cut back off,
and a line torn by a kill is dropped before the next one is written.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


class WriteError(OSError):
    """Writing a file failed; the file still holds its previous content (if it had one).

    ``errno`` is the failure's (ENOSPC, EIO, ...) when the writer reported one.
    """


def write_atomically(
    path: str | os.PathLike, write: Callable[[BinaryIO], None], *, what: str
) -> Path:
    """Calls ``write(file)`` on a temp file beside ``path``, then renames it over ``path``.

    Args:
        path: the destination; its directory is created if missing.
        write: writes the whole content into the binary file it is given.
        what: what the file is, for the error message ("checkpoint", "metric log").

    Returns:
        ``path``.

    Raises:
        WriteError: the write, flush, fsync or rename failed with an OSError (or torch's
            RuntimeError for a failed write inside ``torch.save``); the message names the
            file and the cause, and says that the previous content is kept.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp_name, path)
    except BaseException as err:
        # Ctrl-C, a full disk, an I/O error: the destination is untouched, drop the debris.
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        if isinstance(err, (OSError, RuntimeError)):
            kept = "its previous content is kept" if path.exists() else "nothing was written"
            raise _write_error(err, path, what, kept) from err
        raise
    _fsync_dir(path.parent)
    return path


def append_durably(path: str | os.PathLike, line: bytes, *, what: str) -> Path:
    """Appends one newline-terminated ``line`` to ``path`` and fsyncs it.

    The file keeps whole lines only: a failed append is truncated back off, and a last line
    without its newline (a run killed while appending) is dropped before ``line`` is added.
    Each call writes only ``line``, however long the file has grown.

    Raises:
        WriteError: the append failed (ENOSPC, EIO, ...); the file holds the lines it had.
    """
    if not line.endswith(b"\n"):
        raise ValueError(f"append_durably: line must end with a newline, got {line[-20:]!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as file:
        size = file.seek(0, os.SEEK_END)
        if size:
            file.seek(size - 1)
            if file.read(1) != b"\n":  # torn by a kill: keep up to the last whole line
                file.seek(0)
                size = file.read().rfind(b"\n") + 1
                file.truncate(size)
        try:
            file.write(line)
            file.flush()
            os.fsync(file.fileno())
        except OSError as err:
            file.truncate(size)
            raise _write_error(err, path, what, "the lines written before are kept") from err
    return path


def _write_error(err: BaseException, path: Path, what: str, kept: str) -> WriteError:
    cause = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
    message = f"writing the {what} {path} failed ({type(err).__name__}: {cause}); {kept}"
    code = getattr(err, "errno", None)
    return WriteError(message) if code is None else WriteError(code, message)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not possible on every platform (Windows).
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
